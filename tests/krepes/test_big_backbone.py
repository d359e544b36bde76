"""KREPES with a parameter subset / per-layer projection, the kernel-fidelity diagnostic and the cost plan."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sslaudit.errors import UserError
from sslaudit.kernels import EntkKernel
from sslaudit.kernels.approximation import blocked_gram, kernel_approximation_report
from sslaudit.methods.krepes import Krepes
from sslaudit.models.encoders import build_encoder
from sslaudit.compute.plan import encoder_cost

FIT = dict(landmarks=8, mode="fit", block_size=8)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(4)
    return build_encoder({"arch": "resnet", "input_shape": [3, 8, 8], "widths": [4, 6]}).eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).random((24, 3, 8, 8)).astype(np.float32)


def test_krepes_subset_kernel_is_the_subset_eNTK_and_is_recorded(resnet, images):
    k = Krepes(resnet, kernel_params="last-stage", **FIT).fit(images)
    ref = EntkKernel(resnet, params="last-stage")
    lm = images[k.landmarks]
    assert np.allclose(k.k_mm, ref(lm, lm), atol=1e-10)
    assert np.allclose(k.k_train, ref(images, lm), atol=1e-6)
    full = Krepes(resnet, **FIT).fit(images)
    assert not np.allclose(k.k_train, full.k_train, atol=1e-3)  # the subset is a different kernel
    s = k.summary()
    assert s["kernel_parameters"]["spec"] == "last-stage" and 0 < s["kernel_parameters"]["share"] < 1
    assert s["cost_plan"]["bytes_per_factor_row"] > 0 and s["cost_plan"]["block_rows"] >= 1
    json.dumps(s)


def test_krepes_projection_is_seeded_and_recorded(resnet, images):
    a = Krepes(resnet, layer_projection_dim=4, seed=3, **FIT).fit(images)
    b = Krepes(resnet, layer_projection_dim=4, seed=3, **FIT).fit(images)
    assert np.array_equal(a.k_train, b.k_train)
    assert a.summary()["layer_projection_dim"] == 4 and "projected per layer" in a.summary()["path_reason"]
    with pytest.raises(UserError, match="--exact"):
        Krepes(resnet, exact=True, layer_projection_dim=4)


def test_blocked_gram_equals_the_one_shot_kernel(resnet, images):
    k = EntkKernel(resnet)
    assert np.allclose(blocked_gram(k, images[:9], max_block_bytes=1), k(images[:9], images[:9]), atol=1e-12)


def test_kernel_fidelity_report(resnet, images):
    y = np.arange(len(images)) % 3
    same = kernel_approximation_report(EntkKernel(resnet), resnet, images, y, sample=16, top=4)
    assert same["relative_frobenius_error"] < 1e-10 and same["top4_landmark_agreement"] == 1.0
    assert same["precision_at_1_full"] == same["precision_at_1_approx"]
    coarse = kernel_approximation_report(EntkKernel(resnet, layer_projection_dim=2), resnet, images, y, sample=16, top=4)
    fine = kernel_approximation_report(EntkKernel(resnet, layer_projection_dim=48), resnet, images, y, sample=16, top=4)
    assert fine["relative_frobenius_error"] < coarse["relative_frobenius_error"]
    # random inputs: every normalised entry is close to the others, so the correlation is the sensitive measure
    assert fine["offdiagonal_correlation"] > 0.8 > 0.5 > coarse["offdiagonal_correlation"]
    assert fine["top1_landmark_agreement"] > coarse["top1_landmark_agreement"]
    again = kernel_approximation_report(EntkKernel(resnet, layer_projection_dim=2), resnet, images, y, sample=16, top=4)
    assert again == coarse


def test_cost_plan_counts_factor_numbers(resnet, images):
    full = encoder_cost(resnet, torch.as_tensor(images[:1]))
    assert full.factor_numbers == sum(p.numel() for p in resnet.parameters())  # conv/BN only: dense gradients
    proj = encoder_cost(resnet, torch.as_tensor(images[:1]), layer_projection_dim=4)
    assert proj.factor_numbers == EntkKernel(resnet, layer_projection_dim=4).factors(images[:2]).width
    sub = EntkKernel(resnet, params="bn")
    assert encoder_cost(resnet, torch.as_tensor(images[:1]), selected=sub.names).factor_numbers == sub.factors(images[:2]).width
    assert full.forward_flops > 0 and full.activation_numbers > 0


def test_plan_refuses_in_one_line_naming_the_options(resnet, images):
    with pytest.raises(UserError) as e:
        Krepes(resnet, max_memory="1MB", **FIT).fit(images)
    msg = str(e.value)
    assert "\n" not in msg and "--kernel-params" in msg and "--layer-projection-dim" in msg and "--max-memory" in msg


PEAK = textwrap.dedent("""
    import sys, numpy as np, torch
    from sslaudit.models.encoders import build_encoder
    from sslaudit.methods.krepes import Krepes
    torch.manual_seed(0)
    enc = build_encoder({"arch": "resnet", "input_shape": [3, 32, 32], "widths": [16, 32, 64]}).eval()
    x = np.random.default_rng(0).random((320, 3, 32, 32)).astype(np.float32)
    k = Krepes(enc, landmarks=16, mode="fit", block_size=4096, max_memory=sys.argv[1]).fit(x)
    # VmHWM, the high-water mark of this process's own memory: ru_maxrss is not reset by exec, so a child
    # spawned (vfork + exec) by a big pytest process would report the parent's peak
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(k.cost_plan["block_rows"], hwm * 1024)
""")


def test_peak_rss_stays_under_max_memory():
    """A 3-stage resnet on 32×32 RGB in float64: blocks of 4096 rows would need GBs of autograd memory;
    under a 1.5 GB budget the plan shrinks them and the process's peak RSS stays under it."""
    budget = 1536 << 20
    out = subprocess.run([sys.executable, "-c", PEAK, str(budget)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows, peak = map(int, out.stdout.split()[-2:])
    assert rows < 320 and peak < budget
    bad = subprocess.run([sys.executable, "-c", PEAK, "200MB"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "cannot hold this eNTK" in bad.stderr


def test_explain_run_states_the_subset_and_writes_the_kernel_fidelity(digits_run):
    import sslaudit
    from sslaudit.methods.krepes.pipeline import explain_run

    r = sslaudit.load(digits_run)
    with r.store.lock():
        out = explain_run(r, test_points=20, mode="fit", landmarks=16, kernel_params="trunk.net.2", kernel_fidelity_sample=24, seed=1)
    fid = out.documents["fidelity"]
    assert fid["kernel_parameters"]["spec"] == "trunk.net.2" and fid["kernel_parameters"]["share"] < 1
    kf = fid["kernel_fidelity"]
    assert kf["sample"] == 24 and 0 < kf["relative_frobenius_error"] and 0 <= kf["top10_landmark_agreement"] <= 1
    assert "precision_at_1_full" in kf and fid["cost_plan"]["block_rows"] >= 1
    assert out.documents["config"]["krepes"]["kernel_params"] == "trunk.net.2"
    json.dumps(out.documents)


def test_cli_options_parse_and_are_recorded(digits_run, tmp_path):
    """The issue-21 options come from KrepesConfig's metadata; --max-memory reaches the cost plan through the context."""
    import shutil

    from sslaudit.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    args = [
        "krepes",
        str(run),
        "--mode",
        "fit",
        "--landmarks",
        "16",
        "--test-points",
        "20",
        "--kernel-params",
        "trunk.net.2",
        "--precision",
        "float32",
        "--kernel-fidelity-sample",
        "16",
        "--layer-projection-dim",
        "4",
        "--max-memory",
        "4GB",
        "-q",
    ]
    assert main(args) == 0
    cfg = json.loads((run / "krepes" / "config.json").read_text())["config"]["krepes"]
    assert (cfg["kernel_params"], cfg["precision"], cfg["kernel_fidelity_sample"], cfg["layer_projection_dim"]) == ("trunk.net.2", "float32", 16, 4)
    fid = json.loads((run / "krepes" / "fidelity.json").read_text())
    assert fid["kernel_parameters"]["spec"] == "trunk.net.2" and fid["kernel_parameters"]["n_tensors"] == 2  # weight and bias of one Linear
    assert fid["kernel_fidelity"]["sample"] == 16 and fid["layer_projection_dim"] == 4
    assert fid["cost_plan"]["budget"] == 4 << 30 and fid["cost_plan"]["budget_from"] == "max_memory"


@pytest.mark.parametrize(
    "args, flags",
    [
        (["--max-memory", "1MB"], ("--max-memory", "--kernel-params", "--layer-projection-dim")),
        (["--layer-projection-dim", "0"], ("--layer-projection-dim",)),
        (["--kernel-fidelity-sample", "1"], ("--kernel-fidelity-sample",)),
        (["--kernel-params", "trunk.nope"], ("--kernel-params",)),
        (["--exact", "--kernel-params", "last-stage"], ("--exact", "--kernel-params")),
    ],
)
def test_cli_refuses_in_one_line_naming_the_flag(digits_run, capsys, args, flags):
    from sslaudit.cli.main import main

    assert main(["krepes", str(digits_run), *args, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and all(f in err for f in flags), err


def test_step_mode_reads_the_stored_training_embeddings_once(digits_run, tmp_path, monkeypatch):
    """Step mode uses the run's stored training embeddings (the audit's earlier lenses write them) instead of
    recomputing the network's rows per diagnostic; the fidelity figures are those of the on-demand path."""
    import shutil

    import sslaudit
    from sslaudit.methods.krepes import pipeline

    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    r = sslaudit.load(run_dir)
    r.embeddings("train")
    net = pipeline.ExplainedNetwork(r)
    assert net.stored_train_embeddings() and not net.stored_train_embeddings(limit_bytes=0)
    assert not pipeline.ExplainedNetwork(r, "projector").stored_train_embeddings()
    opts = dict(test_points=30, mode="step", landmarks=24, step_sample=128, cg_max_iter=5, lam=10.0, seed=2)

    calls = []
    real = pipeline.NetworkRows

    class CountingRows(real):
        def __getitem__(self, rows):
            calls.append(len(np.atleast_1d(rows)))
            return super().__getitem__(rows)

        def mean(self):
            calls.append("mean")
            return super().mean()

    monkeypatch.setattr(pipeline, "NetworkRows", CountingRows)
    with r.store.lock():
        stored = pipeline.explain_run(r, **opts).documents["fidelity"]
    assert calls == []
    monkeypatch.setattr(pipeline.ExplainedNetwork.stored_train_embeddings, "__defaults__", (0,))  # the size limit: nothing is small enough
    with r.store.lock():
        on_demand = pipeline.explain_run(r, **opts).documents["fidelity"]
    assert calls and "mean" in calls
    for key in ("delta_accuracy", "kendall_tau", "kendall_tau_raw", "linear_cka", "precision_at_1", "precision_at_1_baseline"):
        assert stored[key] == pytest.approx(on_demand[key], abs=1e-6), key
