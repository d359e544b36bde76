"""Benchmark: the factorised eNTK against torch.func per-sample gradients, on the Adult MLP.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_kernel.py [--quick] [--threads 2]

1. K(A, B), A = 4096 Adult training rows, B = 512 landmarks, normalised pNTK of the backbone
   output: the fast path (float64 and float32 precision) vs the baseline a user would write —
   vmap(grad) per-sample gradients (float32) and their Gram matrix. Agreement, time, speed-up.
2. The machine's fp32 / fp64 matmul rate measured in the same run, and the share of it reached
   by the kernel stage (FLOPs counted below).
3. K(n = 32,561 training rows, m = auto = 361 landmarks), streamed block by block, on the
   same thread count.
The encoder is the default Adult MLP (108-256-256), untrained: the kernel's cost depends on
the architecture only, not on the weights. JSON → bench/results/krepes_kernel.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from sslaudit.data import load_dataset
from sslaudit.kernels import EntkKernel, auto_landmarks, compute_factors, kernel_to_landmarks
from sslaudit.models.encoders import build_encoder, default_arch

OUT = Path(__file__).parent / "results" / "krepes_kernel.json"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def matmul_gflops(dtype, size: int = 2048, reps: int = 5) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def baseline_kernel(enc, a: torch.Tensor, b: torch.Tensor, chunk: int = 256) -> tuple[np.ndarray, dict]:
    """What a user would write: vmap(grad) per-sample gradients, then the normalised Gram (float32).

    Timed as a whole and per chunk of A: `best_estimate_s` = time(B) + n_chunks × fastest chunk,
    an estimate of the baseline's time on an unloaded machine (the machine is shared).
    """
    params = {k: v.detach() for k, v in enc.named_parameters()}
    d = enc(a[:1]).shape[1]

    def g(p, xi):
        return functional_call(enc, p, (xi.unsqueeze(0),)).sum() / math.sqrt(d)

    per_sample = vmap(grad(g), in_dims=(None, 0))

    def flat(x):
        gs = per_sample(params, x)
        return torch.cat([gs[k].reshape(len(x), -1) for k in params], dim=1)

    t0 = time.perf_counter()
    gb = torch.cat([flat(b[s : s + chunk]) for s in range(0, len(b), chunk)])
    nb = gb.norm(dim=1)
    t_b = time.perf_counter() - t0
    rows, times = [], []
    for s in range(0, len(a), chunk):
        t = time.perf_counter()
        ga = flat(a[s : s + chunk])
        rows.append(((ga @ gb.T) / (ga.norm(dim=1)[:, None] * nb[None, :])).numpy())
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return np.concatenate(rows).astype(np.float64), {"wall_s": wall, "best_estimate_s": t_b + len(times) * min(times), "chunk_s_min": min(times), "chunk_s_max": max(times)}


def fast_kernel(enc, a, b, precision: str, repeats: int) -> tuple[np.ndarray, dict]:
    """The factorised eNTK; the fastest of `repeats` runs (each timed as factors + Gram)."""
    k = EntkKernel(enc, kind="pntk", normalize=True, precision=precision, block_size=1024)
    k.factors(a[:2])  # the one-off factorised-path probe, outside the timing
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fb = compute_factors(k, b)
        fa_blocks = [k.factors(a[s : s + 1024]) for s in range(0, len(a), 1024)]
        t1 = time.perf_counter()
        out = torch.cat([k.between(fa, fb) for fa in fa_blocks]).numpy()
        t2 = time.perf_counter()
        runs.append((t2 - t0, t1 - t0, t2 - t1))
    total, fac, gram = min(runs)
    return out, {"factors_s": fac, "gram_s": gram, "total_s": total, "total_s_all_runs": [r[0] for r in runs], "factor_width": fb.width, "path": k.path_used}


def flops(enc, n_a: int, n_b: int, width: int) -> dict:
    """FLOPs of the kernel stage: forward + δ backward (≈ 2·P each per row) and the Gram products."""
    p = sum(v.numel() for v in enc.parameters())
    fwd_bwd = 4 * p * (n_a + n_b)
    gram = 2 * n_a * n_b * width + 3 * n_a * n_b * 2  # two products per layer + elementwise
    return {"parameters": p, "factors_flop": fwd_bwd, "gram_flop": gram, "total_flop": fwd_bwd + gram}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="A = 1024 rows, B = 256 landmarks, n-scale part on 8192 rows")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--n-a", type=int, default=4096)
    ap.add_argument("--n-b", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the fast path (the fastest is reported)")
    ap.add_argument("--out", default=str(OUT), help="where to write the JSON")
    args = ap.parse_args()
    if args.quick:
        args.n_a, args.n_b = 1024, 256
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    data = load_dataset("adult")
    x = data.train.x
    torch.manual_seed(0)
    enc = build_encoder(default_arch("tabular", x.shape[1:])).eval()
    rng = np.random.default_rng(0)
    a = torch.as_tensor(x[: args.n_a])
    b = torch.as_tensor(x[np.sort(rng.choice(len(x), args.n_b, replace=False))])

    rates = {"fp32_gflops_start": matmul_gflops(torch.float32), "fp64_gflops_start": matmul_gflops(torch.float64)}
    base, base_t = baseline_kernel(enc, a, b)
    base_s = base_t["best_estimate_s"]
    result = {"baseline": base_t}
    fast = {p: fast_kernel(enc, a, b, p, args.repeats) for p in ("float64", "float32")}
    rates["fp32_gflops_end"] = matmul_gflops(torch.float32)
    rates["fp64_gflops_end"] = matmul_gflops(torch.float64)
    rates["fp32_gflops"] = max(rates["fp32_gflops_start"], rates["fp32_gflops_end"])
    rates["fp64_gflops"] = max(rates["fp64_gflops_start"], rates["fp64_gflops_end"])
    for precision, (k, timing) in fast.items():
        fl = flops(enc, args.n_a, args.n_b, timing["factor_width"])
        peak = rates["fp64_gflops" if precision == "float64" else "fp32_gflops"]
        result[precision] = {
            **timing,
            **fl,
            "max_abs_diff_vs_baseline": float(np.abs(k - base).max()),
            "speedup": base_s / timing["total_s"],
            "speedup_wall": base_t["wall_s"] / timing["total_s"],
            "stage_gflops": fl["total_flop"] / timing["total_s"] / 1e9,
            "gram_gflops": fl["gram_flop"] / timing["gram_s"] / 1e9,
            "share_of_fp32_matmul": fl["total_flop"] / timing["total_s"] / 1e9 / rates["fp32_gflops"],
            "share_of_own_precision_matmul": fl["total_flop"] / timing["total_s"] / 1e9 / peak,
        }

    n_full = 8192 if args.quick else len(x)
    xs = x[:n_full]
    m = auto_landmarks(n_full)
    lm_rows = np.sort(rng.choice(n_full, m, replace=False))
    scale = {"n": n_full, "m": m}
    for precision in ("float64", "float32"):
        k = EntkKernel(enc, precision=precision, block_size=4096)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            lm = compute_factors(k, xs, rows=lm_rows)
            knm = kernel_to_landmarks(k, xs, lm)
            times.append(time.perf_counter() - t)
        scale[f"{precision}_s"] = min(times)
        scale[f"{precision}_s_all_runs"] = times
        scale[f"{precision}_checksum"] = float(knm.sum())
    load_end = os.getloadavg()
    report = {
        "benchmark": "krepes_kernel",
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "settings": {
            "data": "adult train (SSLAUDIT_DATA)",
            "encoder": "default MLP 108-256-256, untrained (cost is weight-independent)",
            "kernel": "pntk, cosine-normalised, backbone output",
            "n_a": args.n_a,
            "n_b": args.n_b,
            "baseline": "torch.func vmap(grad) per-sample gradients (float32, chunks of 256) + normalised Gram",
            "timing": "fast path: fastest of --repeats runs; baseline: time(B) + chunks × fastest chunk (both wall times kept); speed-up = baseline best estimate / fast fastest run",
            "quick": args.quick,
        },
        "matmul": rates,
        "k_ab": result,
        "k_nm": scale,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
