"""Shared helpers of the Q-Score benchmarks: machine record, seeded data subsets, runs, embeddings."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("SSLAUDIT_DATA", "/work/shared/data")

RUNS = Path(os.environ.get("SSLAUDIT_BENCH_RUNS", "/tmp/sslaudit-bench/qscore"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402,F401  (re-exported: the Q-Score benchmarks record the machine the same way)


def load_subset(name: str, n_train: int | None, n_test: int | None, seed: int = 0):
    """The dataset with seeded subsets of its splits (indices keep their original values)."""
    from sslaudit.data import load_dataset
    from sslaudit.seeding import numpy_rng

    ds = load_dataset(name)

    def take(split, n, key):
        if n is None or n >= len(split):
            return split
        return split.take(np.sort(numpy_rng(seed, "bench-subset", name, key).choice(len(split), n, replace=False)))

    return dataclasses.replace(ds, train=take(ds.train, n_train, "train"), test=take(ds.test, n_test, "test"))


def train(ds, name: str, objective: str, epochs: int, out: Path, *, seed: int = 0, batch_size: int = 256, init=None, extra_loss=None):
    """train_run on the (subset) dataset; returns (run directory, seconds spent)."""
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    t = time.perf_counter()
    cfg = TrainConfig(objective=objective, epochs=epochs, batch_size=batch_size, seed=seed)
    if init is not None:
        import sslaudit

        cfg.arch = sslaudit.load(init).config["arch"]
    path = train_run(data_config(name), cfg, out, dataset=ds, force=True, init=None if init is None else str(init), extra_loss=extra_loss)
    return path, time.perf_counter() - t


def embeddings(run_dir: Path, ds) -> tuple[np.ndarray, np.ndarray]:
    """Backbone representations of the subset's train and test splits."""
    import sslaudit
    from sslaudit.models.embed import embed

    enc = sslaudit.load(run_dir).encoder
    return embed(enc, ds.train.x), embed(enc, ds.test.x)


def stamp() -> dict:
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg": list(os.getloadavg())}
