"""The removal experiment on Fashion-MNIST: remove the top / bottom / random x% by self-influence,
retrain with the same configuration and seed, compare linear-probe accuracy.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_removal.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.n, args.epochs = 800, 1
    torch.set_num_threads(args.threads)
    info = machine()
    import sslaudit
    from sslaudit.data import load_dataset
    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.removal import removal_experiment
    from sslaudit.methods.influence.runner import run_influence
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    tmp = Path(args.out or tempfile.mkdtemp(prefix="influence-removal-"))
    tmp.mkdir(parents=True, exist_ok=True)
    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    tr = rng.choice(len(fm.train), args.n, replace=False)
    te = rng.choice(len(fm.test), 2000, replace=False)
    np.savez(tmp / "subset.npz", x=fm.train.x[tr, 0], y=fm.train.y[tr], x_test=fm.test.x[te, 0], y_test=fm.test.y[te])
    t0 = time.perf_counter()
    train_run(data_config(str(tmp / "subset.npz")), TrainConfig(objective="simclr", epochs=args.epochs, batch_size=256, seed=0), tmp / "run")
    run = sslaudit.load(tmp / "run")
    res = run_influence(run, InfluenceConfig(strategy="ekfac", draws=2, batch_size=64), pairs=10, check=0)
    s = res.self_influence
    out = removal_experiment(run, s["index"].to_numpy(), s["score"].to_numpy(), args.fraction)
    for arm in out["arms"].values():
        arm.pop("removed_index", None)
    write(
        "influence_removal_quick" if args.quick else "influence_removal",
        {"machine": info, "settings": {**vars(args), "objective": "simclr", "arch": run.config["arch"]}, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "result": out},
    )
    print(out["summary"])


if __name__ == "__main__":
    main()
