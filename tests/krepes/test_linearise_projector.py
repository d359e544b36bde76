"""`--linearise projector`: KREPES on projector∘backbone, the output the SSL loss was applied to in training."""

import json
from pathlib import Path

import numpy as np
import torch

from sslaudit import load
from sslaudit.cli.main import main
from sslaudit.kernels.exact import exact_kernel
from sslaudit.methods.krepes.pipeline import ExplainedNetwork
from sslaudit.models.embed import embed

FAST = ["--landmarks", "24", "--test-points", "30", "--step-sample", "128", "--ssl-batch-size", "64", "--cg-max-iter", "4", "-q"]


def test_the_projector_is_linearised_and_the_fidelity_compares_its_output(digits_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir, ignore=shutil.ignore_patterns("krepes"))
    run = load(run_dir)
    net = ExplainedNetwork(run, "projector")
    x = run.dataset.test.x[:6]
    with torch.no_grad():
        want = run.method.model.projector(run.encoder(torch.as_tensor(x)))
    np.testing.assert_allclose(embed(net.module, x), want.numpy(), rtol=1e-5, atol=1e-6)  # projector∘backbone, in eval mode
    assert net.embeddings("test").shape == (len(run.dataset.test), 64) and net.encoder_id != run.encoder_id

    assert main(["krepes", str(run_dir), *FAST, "--linearise", "projector", "--mode", "fit", "--kernel-fidelity-sample", "12"]) == 0
    f = json.loads((run_dir / "krepes" / "fidelity.json").read_text())
    assert f["linearised"] == "projector" and f["rank"] <= 64
    assert f["kernel_fidelity"]["relative_frobenius_error"] < 1e-4  # the eNTK path agrees with the full per-sample-gradient kernel of that module
    assert load(run_dir).store.read_json("krepes/config.json")["config"]["linearise"] == "projector"
    # the kernel of projector∘backbone through KREPES's own path, against a naive per-sample-gradient loop
    from sslaudit.methods.krepes.explainer import Krepes

    xtr = run.dataset.train.x[:60]
    kr = Krepes(net.module, landmarks=12, mode="fit", seed=0).fit(xtr, train_embeddings=embed(net.module, xtr))
    ref = exact_kernel(net.module, torch.as_tensor(x), torch.as_tensor(xtr[kr.landmarks]))
    np.testing.assert_allclose(kr.kernel_rows(x), ref, rtol=1e-4, atol=1e-5)

    from sslaudit.store import RunStore

    before = RunStore(run_dir).manifest["stages"]["krepes/kernel_mm"]["finished"]
    assert main(["krepes", str(run_dir), *FAST, "--mode", "fit"]) == 0  # the default, backbone: a different kernel, recomputed
    g = json.loads((run_dir / "krepes" / "fidelity.json").read_text())
    assert g["linearised"] == "backbone" and RunStore(run_dir).manifest["stages"]["krepes/kernel_mm"]["finished"] != before


def test_an_imported_encoder_has_no_projector(tmp_path, capsys):
    from safetensors.torch import save_file

    from sslaudit.models.encoders import build_encoder

    torch.manual_seed(0)
    mlp = build_encoder({"arch": "mlp", "input_shape": [64], "hidden": [16, 8]})
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(path))
    run_dir = tmp_path / "imported"
    assert main(["import", "--data", "digits", "--encoder", str(path), "--objective", "simclr", "--out", str(run_dir), "-q"]) == 0
    capsys.readouterr()
    assert main(["krepes", str(run_dir), *FAST, "--linearise", "projector"]) == 2
    assert "--linearise projector needs the run's projector" in capsys.readouterr().err
    assert not Path(run_dir / "krepes" / "landmarks.parquet").exists()
