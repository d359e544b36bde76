"""How many features can be dropped? Linear-probe accuracy vs the fraction of features kept.

Features are ranked without labels: the discriminative ones first, then the others by how far
their activation rate lies from the discriminative band [q_low, q_high] (distance 0 inside the
band); ties — including all of D — are broken by the distance to the band's midpoint, then by
feature number. Keeping the top k of this ranking for growing k gives nested feature sets. The
curve is compared with random feature subsets of the same sizes (the label-free baseline a
user would otherwise try), and summarised by the largest fraction of features that can be
dropped while the probe stays within `tolerance` (1 point) of the full representation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...evaluate.probes import linear_probe
from ...seeding import numpy_rng
from .evaluation import subsample

DEFAULT_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def feature_ranking(rates: np.ndarray, discriminative: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Feature numbers in the label-free keep order (discriminative first, see module doc)."""
    rates = np.asarray(rates, dtype=np.float64)
    lo, hi = band
    dist = np.maximum(lo - rates, 0.0) + np.maximum(rates - hi, 0.0)
    dist = np.where(np.asarray(discriminative, dtype=bool), 0.0, np.maximum(dist, 1e-300))
    mid = np.abs(rates - (lo + hi) / 2)
    return np.lexsort((np.arange(len(rates)), mid, dist))


def curve_sizes(d: int, n_disc: int, fractions=DEFAULT_FRACTIONS) -> list[int]:
    """Sorted distinct numbers of kept features: each fraction of d (rounded up, ≥ 1) and |D|."""
    sizes = {max(1, int(np.ceil(f * d - 1e-9))) for f in fractions if 0 < f <= 1} | {d}
    if n_disc > 0:
        sizes.add(int(n_disc))
    return sorted(sizes)


@dataclass
class CompressionResult:
    curve: list[dict]  # per size: n_kept, fraction_kept, accuracy, random_accuracy, includes D
    full_accuracy: float
    discriminative_accuracy: float | None  # probe on D only
    droppable_fraction: float  # largest 1 − fraction_kept with accuracy ≥ full − tolerance
    tolerance: float
    ranking: list[int]

    def to_json(self) -> dict:
        return dict(self.__dict__)


def compression_curve(
    train_h, train_y, test_h, test_y, *, rates, discriminative, band, fractions=DEFAULT_FRACTIONS, tolerance: float = 0.01, random_baseline: bool = True, seed: int = 0, max_train: int | None = None
) -> CompressionResult:
    """Linear-probe accuracy keeping the top-k ranked features, for k over `fractions` and |D|."""
    train_h = np.asarray(train_h, dtype=np.float64)
    test_h = np.asarray(test_h, dtype=np.float64)
    rows = subsample(len(train_h), max_train, seed)
    tr, ytr = train_h[rows], train_y[rows]
    d = train_h.shape[1]
    disc = np.asarray(discriminative, dtype=bool)
    order = feature_ranking(rates, disc, band)
    rng = numpy_rng(seed, "qscore", "compression-random")

    def acc(cols):
        cols = np.sort(cols)
        return linear_probe(tr[:, cols], ytr, test_h[:, cols], test_y, seed=seed).accuracy

    curve = []
    for k in curve_sizes(d, int(disc.sum()), fractions):
        kept = order[:k]
        row = {"n_kept": k, "fraction_kept": k / d, "accuracy": acc(kept), "kept_is_discriminative": bool(k == disc.sum())}
        if random_baseline:
            row["random_accuracy"] = acc(rng.choice(d, size=k, replace=False)) if k < d else row["accuracy"]
        curve.append(row)
    full = curve[-1]["accuracy"]
    disc_acc = next((r["accuracy"] for r in curve if r["kept_is_discriminative"]), None)
    ok = [r["fraction_kept"] for r in curve if r["accuracy"] >= full - tolerance - 1e-12]
    return CompressionResult(curve, full, disc_acc, 1.0 - min(ok), tolerance, order.tolist())
