"""End to end: `sslaudit qscore RUN` on a tiny digits run, refusal on negative features, fine-tuning."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sslaudit.cli.main import main


def test_qscore_cli_writes_every_artefact(digits_run, capsys):
    assert main(["qscore", str(digits_run), "--fractions", "0.5,1", "--saliency-features", "3", "--max-probe-train", "400", "-q"]) == 0
    out = digits_run / "qscore"
    scores = pd.read_parquet(out / "scores.parquet")
    assert list(scores.columns) == ["split", "index", "label", "qscore", "qscore_v1", "n_discriminative", "qscore_paper", "qscore_zscore"]
    assert scores.qscore.tolist() == scores.qscore_paper.tolist()  # the paper's v6 form is the default
    import sslaudit

    run = sslaudit.load(digits_run)
    test = scores[scores.split == "test"]
    assert test["index"].tolist() == run.dataset.test.index.tolist()
    feats = pd.read_parquet(out / "features.parquet")
    assert list(feats.columns) == ["feature", "activation_rate", "discriminative"] and len(feats) == run.embeddings("train").shape[1]
    ev = json.loads((out / "evaluation.json").read_text())
    for k in ("auprc", "auroc", "prevalence", "epsilon", "empty_share"):
        assert ev[k] is not None
    assert set(ev["baselines"]) == {"embedding_norm", "max_activation", "mean_activation"} and set(ev["baselines"]["max_activation"]) == {"auprc", "auroc"}
    assert ev["empty_share"] == pytest.approx((test.n_discriminative == 0).mean())
    assert ev["form"] == "paper" and set(ev["variants"]) == {"qscore_v1", "qscore_paper", "qscore_zscore"}
    assert ev["variants"]["qscore_paper"]["auroc"] == pytest.approx(ev["auroc"])
    assert set(ev["within_class_auroc"]) == {"qscore", "embedding_norm", "max_activation", "mean_activation"}
    assert sum(c["n"] for c in ev["per_class"].values()) == len(test)
    assert ((test.qscore == 0) == (test.n_discriminative == 0)).all()
    comp = json.loads((out / "compression.json").read_text())
    assert comp["curve"][-1]["fraction_kept"] == 1.0 and 0 <= comp["droppable_fraction"] < 1
    for png in ("features.png", "saliency.png", "histogram.png", "compression.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert run.store.verify("qscore/scores.parquet")
    printed = capsys.readouterr().out
    assert "AUPRC" in printed and str(out) in printed
    assert main(["qscore", str(digits_run), "--fractions", "0.5,1", "--saliency-features", "3", "--max-probe-train", "400", "-q"]) == 0  # cached rerun
    assert pd.read_parquet(out / "scores.parquet").equals(scores)


def test_qscore_cli_zscore_form_is_a_labelled_option(digits_run):
    assert main(["qscore", str(digits_run), "--form", "zscore", "--fractions", "1", "--saliency-features", "1", "--max-probe-train", "400", "-q"]) == 0
    out = digits_run / "qscore"
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores.qscore.tolist() == scores.qscore_zscore.tolist()
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["form"] == "zscore" and json.loads((out / "config.json").read_text())["config"]["qscore"]["form"] == "zscore"


def test_qscore_cli_bad_options(digits_run, capsys):
    assert main(["qscore", str(digits_run), "--percentiles", "95,50", "-q"]) == 2
    assert "--percentiles" in capsys.readouterr().err
    assert main(["qscore", str(digits_run), "--fractions", "0,2", "-q"]) == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_negative_representation_is_refused(tmp_path, capsys):
    from sslaudit.run import data_config, import_run

    torch.manual_seed(0)
    enc = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 16)))  # a linear encoder: signed features
    enc.save(str(tmp_path / "enc.pt"))
    import_run(data_config("digits"), str(tmp_path / "enc.pt"), None, "simclr", tmp_path / "neg", trust_code=True)  # our own TorchScript
    assert main(["qscore", str(tmp_path / "neg"), "-q", "--trust-code"]) == 2
    err = capsys.readouterr().err
    assert "negative values" in err and "--allow-negative" in err and "Traceback" not in err
    assert main(["qscore", str(tmp_path / "neg"), "--allow-negative", "--fractions", "1", "--saliency-features", "2", "--max-probe-train", "400", "-q", "--trust-code"]) == 0


def test_finetune_cli_with_regulariser(digits_run, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["train", "--init", str(digits_run), "--qscore-reg", "1e-4,1e-4", "--epochs", "1", "--out", str(out), "-q"]) == 0
    rec = json.loads((out / "qscore" / "regularizer.json").read_text())
    assert rec["qscore_reg"] == [1e-4, 1e-4] and rec["discriminative"]
    import sslaudit

    ft, src = sslaudit.load(out), sslaudit.load(digits_run)
    assert ft.config["data"] == src.config["data"] and ft.config["arch"] == src.config["arch"] and ft.config["train"]["epochs"] == 1
    assert not np.array_equal(ft.embeddings("test"), src.embeddings("test"))
    capsys.readouterr()
    assert main(["train", "--init", str(digits_run), "--epochs", "1", "--out", str(out), "-q"]) == 2  # other setting, same --out
    assert "--force" in capsys.readouterr().err
    assert main(["train", "--qscore-reg", "1,1", "--data", "digits", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert main(["train", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "--data is required" in capsys.readouterr().err
