"""Influence on chosen modules against the whole network (issue 21): on a seeded 1,000-image sample of
a ResNet-18 run that sslaudit trained, how far do `--modules last-stage` rankings move from the
full-model ones?

    SSLAUDIT_DATA=../shared/data PYTHONPATH=src python bench/influence_resnet18.py RUN [--n 1000] [--queries 50]
        [--modules all,last-stage] [--draws 2] [--max-memory 8GB]

Each module choice runs in its own process (its own peak RSS): EK-FAC factors fitted on the n images
(kronfluence), every image's self-influence, and the pairwise influence of `--queries` seeded test
images on the n training images. The parent compares every choice with `all`:
- self-influence: Spearman correlation, and the overlap of the 50 highest (the outlier ranking);
- per query: overlap of the 10 most influential training images (normalised influence, the score the
  per-query duplicate search ranks by) and the mean Spearman correlation over the n images.
JSON → bench/results/influence_resnet18.json.
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

SCRATCH = Path("/tmp/sslaudit-bench-influence-resnet18")


def sample(run, n: int, q: int):
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(run.dataset.train), min(n, len(run.dataset.train)), replace=False))
    te = np.sort(rng.choice(len(run.dataset.test), min(q, len(run.dataset.test)), replace=False))
    return np.asarray(run.dataset.train.x[tr], dtype=np.float32), np.asarray(run.dataset.test.x[te], dtype=np.float32)


def child(args) -> dict:
    import torch

    import sslaudit
    from sslaudit.methods.influence import InfluenceAnalyzer

    torch.set_num_threads(2)
    run = sslaudit.load(args.run)
    x, xq = sample(run, args.n, args.queries)
    t0 = time.perf_counter()
    ia = InfluenceAnalyzer(run.encoder, run.augment, "ekfac", draws=args.draws, modules=args.child, max_memory=args.max_memory)
    ia.fit(x)
    t_fit = time.perf_counter() - t0
    self_inf = ia.self_influence()
    t_self = time.perf_counter() - t0
    raw, norm = ia.pairwise(xq)
    t_all = time.perf_counter() - t0
    SCRATCH.mkdir(parents=True, exist_ok=True)
    np.savez(SCRATCH / f"{args.child}.npz", self_influence=self_inf, pairwise=norm, pairwise_raw=raw)
    return {
        "modules": args.child,
        "layers": len(ia.layers),
        "parameters": int(ia.n_parameters),
        "seconds_fit": t_fit,
        "seconds_self_influence": t_self - t_fit,
        "seconds_pairwise": t_all - t_self,
        "seconds_total": t_all,
        "peak_rss_mb": peak_rss_mb(),
        "memory_plan": ia.memory_plan,
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k


def compare(ref: dict, other: dict) -> dict:
    per_query_top10 = [top_overlap(r, o, 10) for r, o in zip(ref["pairwise"], other["pairwise"])]
    per_query_rho = [spearman(r, o) for r, o in zip(ref["pairwise"], other["pairwise"])]
    n = ref["self_influence"].size
    return {
        "self_influence_spearman": spearman(ref["self_influence"], other["self_influence"]),
        "self_influence_top50_overlap": top_overlap(ref["self_influence"], other["self_influence"], 50),
        "self_influence_top50_overlap_random": 50 / n,
        "pairwise_top10_overlap_mean": float(np.mean(per_query_top10)),
        "pairwise_top10_overlap_random": 10 / n,
        "pairwise_spearman_mean": float(np.mean(per_query_rho)),
        "pairwise_top1_agreement": float(np.mean([np.argmax(r) == np.argmax(o) for r, o in zip(ref["pairwise"], other["pairwise"])])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run sslaudit trained (e.g. bench/resnet18_audit.py --run DIR)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--modules", default="all,last-stage", help="comma-separated --modules values; the first is the reference")
    ap.add_argument("--draws", type=int, default=2, help="augmentation pairs (the audit's --draws 2)")
    ap.add_argument("--max-memory", default="8GB")
    ap.add_argument("--out", default="influence_resnet18")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=float))
        return
    out = {"machine": machine(), "run": args.run, "n_train": args.n, "queries": args.queries, "draws": args.draws, "max_memory": args.max_memory, "modules": {}}
    names = args.modules.split(",")
    for name in names:
        cmd = [sys.executable, __file__, args.run, "--child", name, "--n", str(args.n), "--queries", str(args.queries), "--draws", str(args.draws), "--max-memory", args.max_memory]
        out["modules"][name] = run_child(cmd)
        print(name, json.dumps({k: out["modules"][name].get(k) for k in ("seconds_total", "peak_rss_mb", "parameters", "error")}), flush=True)
        write(args.out, out)
    ref_file = SCRATCH / f"{names[0]}.npz"
    if ref_file.exists() and "error" not in out["modules"][names[0]]:
        ref = dict(np.load(ref_file))
        for name in names[1:]:
            f = SCRATCH / f"{name}.npz"
            if f.exists() and "error" not in out["modules"][name]:
                out["modules"][name][f"vs_{names[0]}"] = compare(ref, dict(np.load(f)))
    out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    write(args.out, out)
    print(json.dumps({k: v.get(f"vs_{names[0]}") for k, v in out["modules"].items()}, indent=1))


if __name__ == "__main__":
    main()
