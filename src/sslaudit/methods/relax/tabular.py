"""Feature-group masks for tables: RELAX over the original columns of a TabularSchema.

A categorical feature is one-hot over several encoded columns; masking it must hide all of
them at once, so the masks are hard 0/1 per feature group (each kept with probability p) and
a masked feature takes the training mean of its columns (standardised numerics: ≈ 0; one-hot:
the category frequencies). Importance is then one number per original feature.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import UserError
from ...seeding import torch_generator
from .masks import MaskFamily, check_mask_params


def group_masks(n: int, n_groups: int, *, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """n × n_groups hard 0/1 masks over feature groups (tables): each group kept with prob. p."""
    check_mask_params(1, p)
    return (torch.rand((n, n_groups), generator=generator) < p).float()


class GroupMasks(MaskFamily):
    """Hard masks over column groups of N×F table rows (one group = one original feature)."""

    def __init__(self, groups: list[tuple[int, int]], width: int, p: float = 0.5):
        check_mask_params(1, p)
        if not groups:
            raise UserError("tabular masks need at least one feature group")
        col_group = torch.full((int(width),), -1, dtype=torch.long)
        for g, (a, b) in enumerate(groups):
            if not 0 <= a < b <= width:
                raise UserError(f"feature group {g} spans columns [{a}, {b}), outside the {width} input columns")
            col_group[a:b] = g
        if (col_group < 0).any():
            raise UserError(f"the feature groups leave column(s) {torch.nonzero(col_group < 0).flatten().tolist()[:5]} uncovered; every column needs a group")
        self.groups, self.width, self.p = list(groups), int(width), float(p)
        self.col_group = col_group
        self.units = len(groups)

    def draw(self, seed: int, batch: int, n: int) -> torch.Tensor:
        return group_masks(n, self.units, p=self.p, generator=torch_generator(seed, "relax", "group-masks", batch))

    def expand(self, weights: torch.Tensor) -> torch.Tensor:
        return weights[:, self.col_group.to(weights.device)]

    def unit_shape(self) -> tuple[int, ...]:
        return (self.units,)

    def cv_moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Independent Bernoulli(p) groups: E[w] = p, Cov(w) = p(1 − p) I."""
        p, g = self.p, self.units
        full = torch.full((g,), p, dtype=torch.float64)
        return full, p * (1 - p) * torch.eye(g, dtype=torch.float64), full.clone()


def schema_masks(dataset, p: float = 0.5) -> tuple[GroupMasks, torch.Tensor, list[str]]:
    """Group masks over a tabular dataset's features, the training-mean fill, and the names."""
    if dataset.schema is None:
        raise UserError("feature-group masks need a tabular dataset with a schema (e.g. adult or a .csv)")
    x = np.asarray(dataset.train.x, dtype=np.float64)
    fill = torch.as_tensor(x.mean(axis=0), dtype=torch.float32)
    return GroupMasks(dataset.schema.groups(), x.shape[1], p=p), fill, list(dataset.schema.names)
