"""Training history: the loss and a cheap probe of the representation after every epoch.

Stored in the run as RUN/train/history.parquet (one row per epoch) and, on request, written to
TensorBoard as well (`--log tensorboard DIR`), the convention SSL users know from lightly and
solo-learn. The loss is recorded every epoch; the probe, a cosine k-NN on a fixed seeded subsample
(≤ 1,000 training and ≤ 500 test rows), after the first and last epochs and at most ten evenly
spaced ones between (NaN elsewhere), so that it adds about 1% to a 60-epoch digits training;
labels are used only here, to evaluate. The table holds no wall times, so that two runs with the
same seed give the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..seeding import numpy_rng

HISTORY = "train/history.parquet"
PROBE_TRAIN_ROWS = 1_000
PROBE_TEST_ROWS = 500
PROBES = 10  # probed epochs between the first and the last, at most


class EpochProbe:
    """k-NN accuracy and the collapse check of the encoder on a fixed seeded subsample."""

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.enabled = bool(getattr(dataset, "has_labels", False)) and len(dataset.test) > 0
        if not self.enabled:
            return
        n, m = len(dataset.train), len(dataset.test)
        self.tr = np.sort(numpy_rng(seed, "history", "train").choice(n, min(n, PROBE_TRAIN_ROWS), replace=False))
        self.te = np.sort(numpy_rng(seed, "history", "test").choice(m, min(m, PROBE_TEST_ROWS), replace=False))

    @staticmethod
    def due(epoch: int, epochs: int) -> bool:
        """Whether the 1-based `epoch` of `epochs` is probed."""
        every = max(1, -(-epochs // PROBES))
        return epoch == 1 or epoch == epochs or epoch % every == 0

    def __call__(self, encoder, device) -> dict:
        from ..evaluate.probes import collapse_std, knn_accuracy
        from .embed import embed

        if not self.enabled:
            return {}
        a = embed(encoder, self.dataset.train.x[self.tr], device=device)
        b = embed(encoder, self.dataset.test.x[self.te], device=device)
        ya, yb = self.dataset.train.y[self.tr], self.dataset.test.y[self.te]
        return {"knn_accuracy": float(knn_accuracy(a, ya, b, yb)), "collapse_std": float(collapse_std(a))}


class TensorBoardLog:
    """Scalars per epoch into a TensorBoard event file (needs the `tensorboard` package)."""

    def __init__(self, logdir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--log tensorboard needs the tensorboard package: pip install 'sslaudit[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(logdir))

    def epoch(self, row: dict) -> None:
        step = int(row["epoch"])
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)) and np.isfinite(v):
                self.writer.add_scalar(f"train/{k}", float(v), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def parse_log(values) -> TensorBoardLog | None:
    """`--log tensorboard DIR` → a TensorBoardLog; nothing given → None."""
    if not values:
        return None
    kind, target = values
    if kind != "tensorboard":
        raise UserError(f"--log {kind}: only 'tensorboard DIR' is supported")
    return TensorBoardLog(target)
