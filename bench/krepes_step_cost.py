"""Cost of the Gauss–Newton step's building blocks at Adult-1M's default sizes, per objective.

One Gauss–Newton product (G·d over every SSL batch of the step sample) is what each CG
iteration and each Hutchinson probe costs; the step needs probes + CG iterations (one multi-shift
run for all λ) of them plus a loss evaluation per backtrack. Each product is timed twice in the
same run: as now (z = KÃ0 + γ kept per batch, SimCLR's closed-form inner map) and as before
(z recomputed, torch.func jvp/vjp). The cost does not depend on the kernel's values, so
seeded random kernel rows stand in for K(views, landmarks); the SSL batches are the real ones.

    .venv/bin/python bench/krepes_step_cost.py [--samples 131072] [--landmarks 2000] [--rank 256 64]
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

from sslaudit.methods.krepes.gauss_newton import KernelLossProblem, ViewBatches  # noqa: E402
from sslaudit.methods.krepes.losses import KernelSSLLoss  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=131_072)
    ap.add_argument("--landmarks", type=int, default=2000)
    ap.add_argument("--rank", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--objectives", nargs="+", default=["simclr", "barlow", "vicreg"])
    ap.add_argument("--batches", type=int, default=16, help="SSL batches timed (the product is a sum over batches: time scales linearly)")
    ap.add_argument("--ssl-batch-size", type=int, default=256)
    args = ap.parse_args()
    start = machine()
    rng = np.random.default_rng(0)
    n, m, bs = args.batches * args.ssl_batch_size, args.landmarks, args.ssl_batch_size
    k1 = rng.random((n, m), dtype=np.float32) * 0.2 + 0.4
    k2 = k1 + rng.normal(0, 0.02, size=(n, m)).astype(np.float32)
    rows = []
    full_batches = args.samples // bs
    for r in args.rank:
        a0 = rng.normal(size=(m, r)) / np.sqrt(m)
        gamma = -(k1[:1024].astype(np.float64) @ a0).mean(0)
        d = torch.as_tensor(rng.normal(size=(m, r)))
        for obj in args.objectives:
            timed = {}
            for label, keep, analytic in (("previous", False, False), ("now", True, True)):
                # previous: z = KÃ0 + γ recomputed and the inner map through torch.func jvp/vjp in every product;
                # now: z kept per batch and (SimCLR) the closed-form inner product
                prob = KernelLossProblem(KernelSSLLoss(obj), ViewBatches(k1, k2, bs, seed=0), a0, gamma, keep_point=keep)
                prob.analytic = analytic
                prob.gn_matvec(d)  # warm-up (and, when kept, computes z)
                t = time.perf_counter()
                prob.gn_matvec(d)
                timed[label] = (time.perf_counter() - t) / len(prob.views)
            gn, gn_prev = timed["now"], timed["previous"]
            t = time.perf_counter()
            prob.value(prob.a0 + d)
            val = (time.perf_counter() - t) / len(prob.views)
            row = {
                "objective": obj,
                "rank": r,
                "landmarks": m,
                "ssl_batch_size": bs,
                "seconds_per_batch_gn_product": gn,
                "seconds_per_batch_gn_product_previous": gn_prev,
                "product_speedup": gn_prev / gn,
                "seconds_per_batch_loss": val,
                "step_sample": args.samples,
                "batches_at_step_sample": full_batches,
                "seconds_per_gn_product_at_step_sample": gn * full_batches,
                "seconds_per_gn_product_at_step_sample_previous": gn_prev * full_batches,
                "seconds_per_loss_at_step_sample": val * full_batches,
            }
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    write("krepes_step_cost", {"machine": start, "rows": rows, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
