"""scikit-learn's embedded `load_digits`: 1,797 8×8 grey images of the digits 0-9.

Images are 1×8×8 float32 in [0, 1] (the 0..16 pixel counts divided by 16). The data has no test
split, so a seeded stratified fraction is held out (`holdout_split`); `Split.index` is the row
number in `load_digits()`, in both splits.
"""

from __future__ import annotations

import numpy as np

from . import holdout_split
from .dataset import Dataset, Split

CLASSES = [str(i) for i in range(10)]


def load_digits_dataset(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = holdout_split(len(x), y, test_fraction, seed, "digits")
    return Dataset(
        name="digits",
        kind="image",
        train=Split(np.ascontiguousarray(x[tr]), y[tr], tr),
        test=Split(np.ascontiguousarray(x[te]), y[te], te),
        classes=list(CLASSES),
        source={
            "origin": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits, test part)",
            "held_out": {"test_fraction": float(test_fraction), "seed": int(seed), "stratified": True},
        },
    )
