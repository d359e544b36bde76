"""Explanation views of a generative run: figures are real PNGs; directions find planted style."""

import numpy as np
import pytest

import sslaudit
from sslaudit.cli.main import main
from sslaudit.errors import UserError
from sslaudit.methods.simvae import write_explanations

PNG = b"\x89PNG\r\n\x1a\n"


def test_write_explanations(simvae_run):
    run = sslaudit.load(simvae_run)
    written = write_explanations(run, tasks=["brightness", "vflip"], n_directions=300, n_examples=6)
    figs = [w for w in written if w.endswith(".png")]
    assert {f.split("/")[-1] for f in figs} == {"reconstructions.png", "traversals.png", "view_means.png", "latent_importance.png"}
    for f in figs:
        data = run.store.read_bytes(f)  # checksummed in the manifest
        assert data.startswith(PNG) and len(data) > 2000
    d = run.store.read_json("simvae/latent_directions.json")
    assert d["tasks"] == ["content", "brightness", "vflip"]
    imp = np.array(d["importance"])
    assert imp.shape == (3, 10) and np.allclose(imp.sum(1), 1)
    assert run.store.stage_done("simvae/views")


def test_views_need_a_decoder(simclr_run):
    with pytest.raises(UserError, match="simvae, vae or betavae"):
        write_explanations(sslaudit.load(simclr_run))


def test_cli_writes_views_for_a_simvae_run(simvae_run, capsys):
    rc = main(["simvae", str(simvae_run), "--tasks", "brightness", "--n-train", "200", "--n-test", "100", "--mlp-hidden", "8", "--no-gmm", "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "explanation views" in out and "brightness" in out
    assert (simvae_run / "simvae" / "figures" / "traversals.png").is_file()
