"""`sslaudit krepes` end to end on tiny digits and Adult-fixture runs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sslaudit.cli.main import main
from sslaudit.store import RunStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = ["--landmarks", "24", "--test-points", "30", "--step-sample", "128", "--ssl-batch-size", "64", "--cg-max-iter", "4", "-q"]


def _stage_times(run):
    st = RunStore(run).manifest["stages"]
    return {k: v["finished"] for k, v in st.items() if k.startswith("krepes/")}


def test_digits_end_to_end_and_stage_reuse(digits_run, tmp_path, capsys):
    from sslaudit import load

    run = digits_run
    ds = load(run).dataset
    t1, t2 = int(ds.test.index[0]), int(ds.test.index[-1])
    assert main(["krepes", str(run), *FAST, "--both-modes", "--index", f"test:{t1}", "--index", "train:3"]) == 0
    out = Path(run) / "krepes"
    lm = pd.read_parquet(out / "landmarks.parquet")
    assert list(lm.columns) == ["split", "index", "label", "rank", "train_index", "train_label", "score", "sign"]
    store = RunStore(run)
    assert set(lm["train_index"]) <= set(ds.train.index.tolist())  # Split.index values
    assert {("test", t1), ("train", 3)} <= set(zip(lm["split"], lm["index"]))
    assert lm.groupby(["split", "index"]).size().eq(10).all()
    assert set(lm["sign"]) <= {-1, 1}
    norms = pd.read_parquet(out / "landmark_norms.parquet")
    assert len(norms) == 24 and sorted(norms["rank"]) == list(range(1, 25))
    f = json.loads((out / "fidelity.json").read_text())
    for key in (
        "delta_accuracy",
        "kendall_tau",
        "precision_at_1",
        "precision_at_1_baseline",
        "confidence_drop_top",
        "confidence_drop_random",
        "class_coverage",
        "loss_before",
        "loss_after",
        "lambda",
        "cg_residual",
        "n_landmarks",
        "rank",
        "kernel",
        "selection",
        "path_used",
        "n_distinct_top1",
        "mode",
        "modes",
        "trusted_mode",
    ):
        assert key in f, key
    assert 0 <= f["precision_at_1"] <= 1 and -1 <= f["delta_accuracy"] <= 1
    assert f["loss_after"] <= f["loss_before"] and f["n_landmarks"] == 24
    assert f["n_distinct_top1"] == lm[lm["rank"] == 1]["train_index"].nunique()
    assert set(f["modes"]) == {"step", "fit"} and f["trusted_mode"] in ("step", "fit")
    anch = pd.read_parquet(out / "anchoring.parquet")  # digits: anchoring by class
    assert set(anch["attribute"]) == {"label"}
    assert store.has("krepes/fidelity.json")

    before = _stage_times(run)
    assert {"krepes/kernel_mm", "krepes/kernel_train", "krepes/kernel_views", "krepes/kernel_test_sample", "krepes/step"} <= set(before)
    # scoring-only options: top-k, index, concepts → no kernel block (nor the step) is recomputed
    args = ["krepes", str(run), *FAST, "--top-k", "3", "--index", f"test:{t2}", "--concept", "three=label==3"]
    assert main(args) == 0
    after = _stage_times(run)
    for stage in ("krepes/landmarks", "krepes/kernel_mm", "krepes/kernel_train", "krepes/kernel_views", "krepes/kernel_test_sample", "krepes/step"):
        assert after[stage] == before[stage], stage
    lm3 = pd.read_parquet(out / "landmarks.parquet")
    assert lm3["rank"].max() == 3
    conc = pd.read_parquet(out / "concepts.parquet")
    assert set(conc["concept"]) == {"three"} and conc["rank"].max() == 3
    # changing the kernel does recompute
    assert main(["krepes", str(run), *FAST, "--raw-kernel", "--mode", "fit"]) == 0
    assert _stage_times(run)["krepes/kernel_mm"] != before["krepes/kernel_mm"]


def test_cli_user_errors(digits_run, capsys):
    run = str(digits_run)
    assert main(["krepes", run, *FAST, "--concept", "c=colour==red"]) == 2
    assert "unknown column 'colour'" in capsys.readouterr().err
    assert main(["krepes", run, "--landmarks", "1", "-q"]) == 2
    assert "too few" in capsys.readouterr().err
    assert main(["krepes", run, "--landmarks", "100000", "-q"]) == 2
    assert "training samples" in capsys.readouterr().err
    assert main(["krepes", run, "--index", "test:100000", "-q"]) == 2
    assert "not in the data" in capsys.readouterr().err
    assert main(["krepes", run, "--lambda", "-1", "-q"]) == 2
    assert main(["krepes", run, "--concept", "broken", "-q"]) == 2


def test_adult_fixture_end_to_end(tmp_path):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    if not (FIXTURES / "adult" / "adult.data").is_file():
        pytest.skip("no Adult fixture")
    run = tmp_path / "adult"
    train_run(data_config("adult", data_dir=str(FIXTURES)), TrainConfig(objective="vicreg", epochs=1, batch_size=128), run)
    concept_file = tmp_path / "c.txt"
    concept_file.write_text("# some rows\ntrain:0\ntrain:1\ntrain:2\ntrain:5\n")
    assert main(["krepes", str(run), *FAST, "--concept", "women=sex==Female", "--concept", f"few=@{concept_file}"]) == 0
    out = run / "krepes"
    gap = pd.read_parquet(out / "alignment_gap.parquet")
    assert list(gap.columns[:5]) == ["feature", "gap", "gap_normalised", "ci_low", "ci_high"]
    assert {"sex", "race", "education", "capital-gain"} <= set(gap["feature"])
    assert gap.set_index("feature").loc["capital-gain", "scale_kind"] in ("std", "equality", "iqr")
    assert (gap["ci_low"] <= gap["gap"] + 1e-12).all() and (gap["gap"] <= gap["ci_high"] + 1e-12).all()
    anch = pd.read_parquet(out / "anchoring.parquet")
    assert set(anch["attribute"]) == {"sex", "race"}
    sums = anch.groupby(["attribute", "test_group"])["probability"].sum()
    assert np.allclose(sums, 1.0)
    conc = pd.read_parquet(out / "concepts.parquet")
    assert set(conc["concept"]) == {"women", "few"}
    f = json.loads((out / "fidelity.json").read_text())
    assert f["kernel"] == "pntk" and f["selection"] == "uniform" and -1 <= f["kendall_tau"] <= 1
    assert f["mode"] == "step" and f["cg_residual"] >= 0 and f["lambda"] > 0
