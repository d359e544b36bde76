"""Training: same seed same weights, resume after SIGKILL is bit-identical, BYOL's EMA target."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslaudit.models.methods import build_method
from sslaudit.models.trainer import TrainConfig
from sslaudit.run import data_config, load, train_run

ENV = {**os.environ, "SSLAUDIT_QUIET": "1", "OMP_NUM_THREADS": "1"}


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "model.safetensors")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("objective", ["simclr", "byol", "vicreg", "barlow"])
def test_each_objective_trains_and_is_reproducible(tmp_path, objective):
    cfg = lambda: TrainConfig(objective=objective, epochs=1, batch_size=256, seed=3)
    a = train_run(data_config("digits"), cfg(), tmp_path / "a")
    b = train_run(data_config("digits"), cfg(), tmp_path / "b")
    assert same_weights(weights(a), weights(b))
    m = json.loads((a / "metrics.json").read_text())
    assert 0 <= m["linear_probe_accuracy"] <= 1 and m["collapse_std"] > 0
    run = load(a)
    z = run.encoder(torch.as_tensor(run.dataset.test.x[:4]))
    assert z.shape == (4, run.config["arch"]["widths"][-1]) and bool((z >= 0).all())


def test_byol_target_follows_online_by_ema():
    arch = {"arch": "mlp", "input_shape": [5], "hidden": [8], "proj_hidden": 8, "proj_dim": 4}
    m = build_method("byol", arch)
    before = {k: v.clone() for k, v in m.target.state_dict().items()}
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(1.0)
    m.on_step_end(0.0)  # tau = ema_start = 0.99
    w_t = m.target["encoder"].trunk.net[0].weight
    w_o = m.model.encoder.trunk.net[0].weight
    expected = 0.99 * before["encoder.trunk.net.0.weight"] + 0.01 * w_o
    assert torch.allclose(w_t, expected)
    m.on_step_end(1.0)  # tau = 1 at the end: the target stops moving
    assert float(m.ema) == pytest.approx(1.0)


def _train_cmd(out):
    return [sys.executable, "-m", "sslaudit.cli.main", "train", "--data", "digits", "--epochs", "4", "--batch-size", "64", "--out", str(out), "--quiet"]


def test_sigkill_resume_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(ref), check=True, env=ENV)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(out), env=ENV)
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.is_file():
            try:
                stages = json.loads(manifest.read_text())["stages"]
            except json.JSONDecodeError:
                stages = {}
            if stages.get("train/checkpoint", {}).get("info", {}).get("epoch", -1) >= 0:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the kill came too late to test resumption"
    r = subprocess.run(_train_cmd(out), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert same_weights(weights(ref), weights(out))
