"""Fairness on Adult: self-influence by sex and by race, with Mann–Whitney tests and Cliff's delta.

An MLP encoder is trained (SimCLR with SCARF augmentations) on the Adult training split; the
self-influence (EK-FAC) of a seeded subsample of training rows is compared across the groups of
each protected attribute, beside the k-NN-distance baseline compared the same way.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_adult.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--subsample", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.subsample, args.epochs = 1000, 1
    torch.set_num_threads(args.threads)
    info = machine()
    import sslaudit
    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.fairness import fairness_report
    from sslaudit.methods.influence.runner import run_influence
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    tmp = Path(args.out or tempfile.mkdtemp(prefix="influence-adult-"))
    t0 = time.perf_counter()
    train_run(data_config("adult"), TrainConfig(objective="simclr", epochs=args.epochs, batch_size=256, seed=0), tmp / "run")
    train_s = time.perf_counter() - t0
    run = sslaudit.load(tmp / "run")
    t0 = time.perf_counter()
    res = run_influence(run, InfluenceConfig(strategy="ekfac", draws=4, batch_size=256), pairs=50, subsample=args.subsample, check=0)
    infl_s = time.perf_counter() - t0
    ds = run.dataset
    pos = {int(v): k for k, v in enumerate(ds.train.index)}
    rows = [pos[int(i)] for i in res.knn_outliers["index"]]
    knn_fair = fairness_report(res.knn_outliers["score"].to_numpy(), ds.train.meta.iloc[rows].reset_index(drop=True), list(ds.protected))
    out = {
        "machine": info,
        "settings": {**vars(args), "arch": run.config["arch"], "strategy": "ekfac", "draws": 4},
        "train_seconds": train_s,
        "influence_seconds": infl_s,
        "peak_rss_mb": peak_rss_mb(),
        "encoder_linear_probe": run.store.read_json("metrics.json").get("linear_probe_accuracy"),
        "fairness_self_influence": res.fairness,
        "fairness_knn_distance_baseline": knn_fair,
    }
    write("influence_adult_quick" if args.quick else "influence_adult", out)
    for a, r in res.fairness["by_attribute"].items():
        print(a, [(t["group"], t["versus"], round(t["cliffs_delta"], 3), t["p_value"]) for t in r["tests"]])


if __name__ == "__main__":
    main()
