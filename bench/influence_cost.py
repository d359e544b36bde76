"""Cost of self-influence on Fashion-MNIST: time and peak memory versus n, on two threads.

For each n the EK-FAC factors are fitted on the n images (kronfluence) and every image's
self-influence and sketch are computed (one streaming pass). The encoder is the default ConvNet
(randomly initialised weights cost the same as trained ones). If 60,000 is too slow on the shared
machine, smaller n are measured and the time extrapolated linearly (both passes are linear in n);
the JSON says which numbers are measured and which extrapolated.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_cost.py [--quick] [--sizes 500 1000 2000] [--full]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--full", action="store_true", help="also measure n = 60000 (16 min on the idle two-core machine)")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        args.sizes = [200, 400]
    if args.full:
        args.sizes = list(args.sizes) + [60000]
    torch.set_num_threads(args.threads)
    info = machine()
    from sslaudit.data import load_dataset
    from sslaudit.data.augment import make_augment
    from sslaudit.methods.influence import InfluenceAnalyzer
    from sslaudit.models.encoders import build_encoder, default_arch
    from sslaudit.run import image_stats

    ds = load_dataset("fashion-mnist")
    arch = default_arch("image", ds.input_shape)
    arch["mean"], arch["std"] = image_stats(ds.train.x[:5000])
    torch.manual_seed(0)
    enc = build_encoder(arch).eval()
    aug = make_augment(ds)
    rows = []
    for n in args.sizes:
        x = ds.train.x[:n]
        ia = InfluenceAnalyzer(enc, aug, "ekfac", draws=args.draws, batch_size=64)
        t0 = time.perf_counter()
        ia.fit(x)
        t1 = time.perf_counter()
        s = ia.self_influence()
        t2 = time.perf_counter()
        ia.close()
        rows.append(
            {
                "n": n,
                "factors_seconds": t1 - t0,
                "scores_seconds": t2 - t1,
                "total_seconds": t2 - t0,
                "per_1000_seconds": 1000 * (t2 - t0) / n,
                "peak_rss_mb": peak_rss_mb(),
                "finite": bool(np.isfinite(s).all()),
            }
        )
        print(rows[-1], flush=True)
    big = rows[-1]
    ns = np.array([r["n"] for r in rows], float)
    ts = np.array([r["total_seconds"] for r in rows])
    slope, icpt = np.polyfit(ns, ts, 1) if len(rows) > 1 else (ts[0] / ns[0], 0.0)
    out = {
        "machine": info,
        "settings": {**vars(args), "arch": {k: v for k, v in arch.items() if k not in ("mean", "std")}, "parameters": ia.n_parameters, "strategy": "ekfac", "batch_size": 64, "sketch_dim": 1024},
        "measured": rows,
        "linear_fit_seconds": {"slope_per_example": slope, "intercept": icpt},
        "extrapolated_60000": None
        if big["n"] >= 60000
        else {"seconds": slope * 60000 + icpt, "note": "linear extrapolation from the measured sizes; memory is bounded by the block size, plus 60000 × sketch_dim × 4 bytes of sketches (246 MB)"},
    }
    write("influence_cost_quick" if args.quick else "influence_cost", out)


if __name__ == "__main__":
    main()
