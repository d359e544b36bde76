"""RELAX on a trained Fashion-MNIST encoder, mean fill: faithfulness against fair baselines, localisation, sanity.

On seeded test images of a trained run (the default 10-epoch SimCLR ConvNet that `sslaudit audit`
uses) with the library defaults (fill = training mean, cells = auto → 7×7 on 28×28, N fixed):
- deletion / insertion AUC of RELAX, U-RELAX and gradient saliency against a pixel-wise random
  map, a random map at the mask scale (one random RELAX mask) and reversed RELAX (−R);
- localisation of the object (Fashion-MNIST's foreground = its non-zero pixels): the AUROC of each
  map for foreground vs background pixels, and its mass share on the foreground;
- the sanity check with its permutation-null threshold, beside two references measured here: the
  agreement of two independent RELAX estimates of the trained encoder (mask seeds 0 and 1, the
  noise floor) and the mismatched-image null.
Writes bench/results/relax_baselines.json. The run is read (its embedding cache may be written):
pass a copy.

    flock /tmp/sslaudit-cpu.lock .venv/bin/python bench/relax_baselines.py --run RUN [--images 30] [--masks 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402

os.environ.setdefault("SSLAUDIT_DATA", "/work/shared/data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--masks", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="relax_baselines")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import sslaudit
    from sslaudit.methods.relax import Relax
    from sslaudit.methods.relax.evaluation import derangement_null, evaluate_relax, spearman, ssim
    from sslaudit.progress import set_enabled
    from sslaudit.seeding import numpy_rng

    set_enabled(False)
    run = sslaudit.load(a.run)
    ds = run.dataset
    pos = np.sort(numpy_rng(a.seed, "bench", "relax-baselines").choice(len(ds.test), a.images, replace=False))
    x = torch.as_tensor(ds.test.x[pos], dtype=torch.float32)
    train_mean = ds.train.x.mean(axis=(0, 2, 3))
    relax = Relax(run.encoder, fill="mean", fill_value=train_mean)
    t = time.perf_counter()
    res = relax.attribute(x, a.masks, seed=a.seed)
    relax_s = time.perf_counter() - t
    t = time.perf_counter()
    ev = evaluate_relax(relax, x, res, n_masks=a.masks, seed=a.seed, steps=a.steps, sanity=True, foreground="nonzero")
    eval_s = time.perf_counter() - t
    # references for the sanity threshold: two independent estimates of the trained maps
    res2 = relax.attribute(x, a.masks, seed=a.seed + 1)
    floor = spearman(res.importance.numpy(), res2.importance.numpy())
    null = derangement_null(res.importance.numpy(), 200, a.seed)
    sc = ev["sanity_check"]
    refs = {
        "noise_floor_spearman_mean": float(floor.mean()),
        "noise_floor_spearman_min": float(floor.min()),
        "noise_floor_ssim_mean": float(ssim(res.importance.numpy(), res2.importance.numpy()).mean()),
        "mismatched_null_mean": float(null.mean()),
        "mismatched_null_q95": float(np.quantile(null, 0.95)),
        "trained_vs_randomised_mean": sc["spearman_mean"],
        "share_of_images_below_threshold": float(np.mean(np.asarray(sc["spearman"]) < sc["threshold"])),
    }
    table = {
        name: {k: m[k] for k in ("deletion_auc", "insertion_auc", "complexity", "sparseness")}
        | {
            "localisation_auroc": m["localisation"]["auroc"],
            "mass_share": m["localisation"]["mass_share"],
            "foreground_share": m["localisation"]["foreground_share"],
            "deletion_auc_sd": float(np.std(m["deletion_auc_per_input"])),
            "insertion_auc_sd": float(np.std(m["insertion_auc_per_input"])),
        }
        for name, m in ev["maps"].items()
    }
    out = {
        "bench": "relax_baselines",
        "machine": machine(),
        "run": a.run,
        "train": run.config.get("train"),
        "test_positions": pos.tolist(),
        "settings": {
            "images": a.images,
            "masks": a.masks,
            "steps": a.steps,
            "seed": a.seed,
            "fill": "mean (training per-channel mean)",
            "num_cells": relax.cells_for(tuple(x.shape[2:])),
            "similarity": "cosine",
        },
        "relax_seconds": relax_s,
        "evaluation_seconds": eval_s,
        "maps": table,
        "sanity_check": {k: v for k, v in sc.items() if k not in ("spearman", "ssim")},
        "sanity_references": refs,
        "evaluation": ev,
    }
    write(a.out, out)
    for name, m in table.items():
        print(f"{name:18s} del {m['deletion_auc']:.3f} ins {m['insertion_auc']:.3f} loc AUROC {m['localisation_auroc']:.3f} mass {m['mass_share']:.3f} (fg {m['foreground_share']:.3f})")
    print({k: v for k, v in out["sanity_check"].items()}, refs)


if __name__ == "__main__":
    main()
