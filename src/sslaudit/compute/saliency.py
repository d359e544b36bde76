"""Gradient magnitudes per input unit, one rule for every lens that shows a gradient map.

An image's unit is a pixel: the largest |gradient| over its channels. A table's unit is an
original attribute (`TabularSchema.groups()`): the largest |gradient| over its encoded columns,
because a sum would favour categoricals with many one-hot levels (on Adult, native-country's 42
columns dominated every map that way); without groups each column is its own unit.
"""

from __future__ import annotations

import numpy as np
import torch


def unit_magnitudes(grad, groups: list[tuple[int, int]] | None = None):
    """|grad| per unit: N×C×H×W → N×H×W; N×D → N×D, or N×len(groups) with groups.
    Takes and returns a numpy array or a torch tensor alike."""
    if torch.is_tensor(grad):
        a = grad.abs()
        if groups is not None:
            a = a.reshape(len(a), -1)
            return torch.stack([a[:, s:e].amax(dim=1) for s, e in groups], dim=1)
        return a.amax(dim=1) if a.ndim > 2 else a
    a = np.abs(np.asarray(grad))
    if groups is not None:
        a = a.reshape(len(a), -1)
        return np.stack([a[:, s:e].max(axis=1) for s, e in groups], axis=1)
    return a.max(axis=1) if a.ndim > 2 else a
