"""Content/style evaluation: planted ground truth, any run, seeded, store and CLI."""

import numpy as np
import pytest
import torch

import sslaudit
from sslaudit.cli.main import main
from sslaudit.data import load_dataset
from sslaudit.errors import UserError
from sslaudit.methods.simvae import ContentStyle, ContentStyleConfig

FAST = dict(n_train=400, n_test=200, linear_c=[1.0], mlp_alpha=[1.0], mlp_hidden=32, knn_k=[5])


class Pixels(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)


class MeanIntensity(torch.nn.Module):
    """Knows only the overall brightness of an image (a planted style-only representation)."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([m, torch.zeros_like(m)], 1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_planted_content_and_style(digits):
    cfg = ContentStyleConfig(tasks=["brightness", "hflip"], **FAST)
    pix = ContentStyle(Pixels(), cfg).evaluate(digits)
    bright = ContentStyle(MeanIntensity(), cfg).evaluate(digits)
    t = pix.table.set_index("task")
    assert t.loc["content", "linear"] > 0.85 and t.loc["content", "knn"] > 0.85
    assert t.loc["hflip", "linear"] > 0.8  # mirrored digits are easy to tell from pixels
    assert set(t.columns) >= {"linear", "mlp", "knn", "chance", "gmm_ari", "gmm_nmi", "linear_c", "mlp_alpha", "knn_k"}
    assert t.loc["content", "gmm_nmi"] > 0.3 and np.isnan(t.loc["hflip", "gmm_ari"])
    b = bright.table.set_index("task")
    assert b.loc["brightness", "linear"] > b.loc["brightness", "chance"] + 0.25  # style it carries
    assert b.loc["hflip", "linear"] < 0.65 and b.loc["hflip", "knn"] < 0.65  # style it lacks: mean intensity is flip-invariant
    assert b.loc["content", "linear"] < t.loc["content", "linear"] - 0.4


def test_same_seed_same_result_and_validation_only_selection(digits):
    cfg = ContentStyleConfig(tasks=["rotation"], **{**FAST, "linear_c": [0.01, 1.0]}, gmm=False)
    a = ContentStyle(Pixels(), cfg).evaluate(digits).table
    b = ContentStyle(Pixels(), cfg).evaluate(digits).table
    assert a.equals(b)
    assert set(a["linear_c"]) <= {0.01, 1.0} and a["gmm_ari"].isna().all()


def test_bad_inputs(digits):
    with pytest.raises(UserError, match="too small"):
        ContentStyleConfig(n_train=5).resolved("image")
    with pytest.raises(UserError, match="unknown style task"):
        ContentStyle(Pixels(), ContentStyleConfig(tasks=["hue"])).evaluate(digits)


def test_cli_on_a_simclr_run(simclr_run, capsys):
    rc = main(["simvae", str(simclr_run), "--tasks", "vflip", "--n-train", "300", "--n-test", "150", "--mlp-hidden", "8", "--no-gmm", "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "content" in out and "vflip" in out
    run = sslaudit.load(simclr_run)
    table = run.store.read_parquet("simvae/content_style.parquet")
    assert list(table["task"]) == ["content", "vflip"]
    assert not run.store.has("simvae/figures/reconstructions.png")  # no decoder in a SimCLR run
    assert main(["simvae", str(simclr_run), "--tasks", "vflip", "--n-train", "300", "--n-test", "150", "--mlp-hidden", "8", "--no-gmm", "-q"]) == 0  # cached rerun


def test_cli_errors(tmp_path, simclr_run, capsys):
    assert main(["simvae", str(tmp_path / "nope")]) == 2
    assert main(["simvae", str(simclr_run), "--tasks", "hue"]) == 2
    assert "unknown task" in capsys.readouterr().err
