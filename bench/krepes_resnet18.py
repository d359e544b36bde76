"""KREPES on a ResNet-18-sized encoder (11.2M parameters, CIFAR stem) on 32×32 RGB Fashion-MNIST:
time and peak memory of the full eNTK against a parameter subset and the per-layer projection,
and how far the subset / projection moves the landmarks (top-10 agreement, p@1, Δacc).

    flock /tmp/sslaudit-cpu.lock python bench/krepes_resnet18.py [--n 1000] [--test 200] [--landmarks 64] [--run RUN]

Every configuration runs in its own process (so its peak RSS is its own) with the same seeded
sample, landmarks and test points; the parent compares their top-10 landmarks with the full kernel's.
The encoder is NOT SSL-trained (no CPU time for that here): seeded He initialisation, BatchNorm
running statistics calibrated on the 1,000 training images — the kernel-approximation question
(does the cheap kernel pick the full kernel's landmarks?) does not need trained weights, but p@1 and
Δacc are those of an untrained network and say nothing about a trained one.
Fashion-MNIST 28×28 grey → 32×32 RGB: zero-padded by 2 and the channel repeated.

`--run RUN` (issue 21): the encoder of a run sslaudit trained instead (e.g. bench/resnet18_audit.py's
ResNet-18 on its 10,000-image folder), on a seeded sample of n training and t test images of that
run's own data — p@1 and Δacc are then those of a trained network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, run_child, write  # noqa: E402

CONFIGS = {
    "full": {},
    "last-stage": {"kernel_params": "last-stage"},
    "bn+last": {"kernel_params": "bn+last"},
    "projection-16": {"layer_projection_dim": 16},
    "projection-64": {"layer_projection_dim": 64},
}
SCRATCH = Path("/work/runs/21/bench-resnet18")


def resnet18():
    """ResNet-18 with a CIFAR stem (3×3 conv, no max-pool): 2 BasicBlocks per stage, widths 64–512."""
    import torch
    from torch import nn

    from sslaudit.models.encoders import BasicBlock, Encoder, Normalize

    class Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            blocks, c = [], 64
            for i, w in enumerate((64, 128, 256, 512)):
                blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
                c = w
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.out_dim = 512

        def forward(self, x):
            return self.pool(self.blocks(self.stem(x)))

    torch.manual_seed(0)
    return Encoder(Trunk(), Normalize([0.5] * 3, [0.25] * 3))


def data(n: int, t: int):
    import os

    from sslaudit.data.fashion_mnist import read_idx

    root = Path(os.environ.get("SSLAUDIT_DATA", "/work/shared/data")) / "fashion-mnist"
    rng = np.random.default_rng(0)

    def load(img, lab, k):
        x, y = read_idx(root / img, images=True), read_idx(root / lab, images=False)
        pos = np.sort(rng.choice(len(x), k, replace=False))
        x = np.pad(x[pos].astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
        return np.repeat(x[:, None], 3, axis=1), y[pos].astype(np.int64)

    xtr, ytr = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", n)
    xte, yte = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", t)
    return xtr, ytr, xte, yte


def run_data(run_dir: str, n: int, t: int):
    """A seeded sample of n training and t test images of a run's own data, and the run's encoder."""
    import sslaudit

    run = sslaudit.load(run_dir)
    rng = np.random.default_rng(0)

    def take(split, k):
        pos = np.sort(rng.choice(len(split), min(k, len(split)), replace=False))
        return np.asarray(split.x[pos], dtype=np.float32), np.asarray(split.y[pos], dtype=np.int64)

    xtr, ytr = take(run.dataset.train, n)
    xte, yte = take(run.dataset.test, t)
    return xtr, ytr, xte, yte, run.encoder.eval()


def calibrate(enc, x):
    import torch

    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    enc.train()
    with torch.no_grad():
        for s in range(0, len(x), 100):
            enc(torch.as_tensor(x[s : s + 100]))
    return enc.eval()


def child(name: str, args) -> None:
    import torch

    from sslaudit.methods.krepes import Krepes
    from sslaudit.methods.krepes import fidelity as fid
    from sslaudit.models.embed import embed

    torch.set_num_threads(2)
    if args.run:
        xtr, ytr, xte, yte, enc = run_data(args.run, args.n, args.test)
    else:
        xtr, ytr, xte, yte = data(args.n, args.test)
        enc = calibrate(resnet18(), xtr)
    t0 = time.perf_counter()
    net_tr, net_te = embed(enc, xtr), embed(enc, xte)
    k = Krepes(enc, mode="fit", landmarks=args.landmarks, precision="float32", max_memory=args.max_memory, seed=0, **CONFIGS[name])
    k.fit(xtr, train_embeddings=net_tr)
    t_fit = time.perf_counter() - t0
    res = k.explain(xte)
    t_all = time.perf_counter() - t0
    dacc = fid.delta_accuracy(net_tr, net_te, k.train_surrogate(), res.embeddings, ytr, yte, seed=0)
    p1 = float(np.mean(ytr[k.landmarks[res.top[:, 0]]] == yte))
    SCRATCH.mkdir(parents=True, exist_ok=True)
    np.savez(SCRATCH / f"{name}.npz", top=res.top, landmarks=k.landmarks, k_test=res.kernel_rows)
    s = k.summary()
    print(
        json.dumps(
            {
                "name": name,
                "options": CONFIGS[name],
                "seconds_fit": t_fit,
                "seconds_total": t_all,
                "peak_rss_mb": peak_rss_mb(),
                "precision_at_1": p1,
                **{kk: dacc[kk] for kk in dacc},
                "kernel_parameters": s["kernel_parameters"],
                "cost_plan": s["cost_plan"],
                "block_rows": s["block_rows"],
                "memory_plan": s["memory_plan"],
                "path_reason": s["path_reason"],
                "fit_r2": (k.fit_result or {}).get("r2"),
            },
            default=float,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--landmarks", type=int, default=64)
    ap.add_argument("--max-memory", default="8GB")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", default="krepes_resnet18", help="results file name (bench/results/<out>.json)")
    ap.add_argument("--run", default=None, help="explain this run's (trained) encoder on its own data instead of the untrained ResNet-18")
    ap.add_argument("--child")
    args = ap.parse_args()
    global SCRATCH
    if args.run:
        SCRATCH = SCRATCH.with_name(SCRATCH.name + "-run")
    if args.child:
        return child(args.child, args)
    out = {
        "machine": machine(),
        "n_train": args.n,
        "n_test": args.test,
        "landmarks": args.landmarks,
        "max_memory": args.max_memory,
        "encoder": f"the encoder of {args.run} (trained by sslaudit)"
        if args.run
        else "ResNet-18, CIFAR stem, 11.2M parameters, untrained (seeded init, BN statistics calibrated on the training sample)",
        "run": args.run,
        "mode": "fit",
        "precision": "float32",
        "configs": {},
    }
    for name in args.configs.split(","):
        cmd = [sys.executable, __file__, "--child", name, "--n", str(args.n), "--test", str(args.test), "--landmarks", str(args.landmarks), "--max-memory", args.max_memory]
        cmd += ["--run", args.run] if args.run else []
        out["configs"][name] = run_child(cmd)
        print(name, json.dumps({k: out["configs"][name].get(k) for k in ("seconds_total", "peak_rss_mb", "precision_at_1", "error")}), flush=True)
    ref = SCRATCH / "full.npz"
    if ref.exists():
        full = np.load(ref)
        for name, r in out["configs"].items():
            f = SCRATCH / f"{name}.npz"
            if name == "full" or "error" in r or not f.exists():
                continue
            z = np.load(f)
            assert np.array_equal(z["landmarks"], full["landmarks"]), "configurations chose different landmarks"
            r["top10_agreement_vs_full"] = float(np.mean([len(set(a) & set(b)) / a.size for a, b in zip(z["top"], full["top"])]))
            r["top1_agreement_vs_full"] = float(np.mean(z["top"][:, 0] == full["top"][:, 0]))
            a, b = z["k_test"].ravel(), full["k_test"].ravel()
            r["k_test_relative_frobenius_error"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
            r["k_test_correlation"] = float(np.corrcoef(a, b)[0, 1])
            if "precision_at_1" in out["configs"].get("full", {}):
                r["delta_p_at_1_vs_full"] = r["precision_at_1"] - out["configs"]["full"]["precision_at_1"]
    out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    write(args.out, out)


if __name__ == "__main__":
    main()
