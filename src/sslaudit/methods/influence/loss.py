"""The label-free per-sample loss: stability of the representation under augmentation.

ℓ_aug(x; θ) = (1/K) Σ_k d(f_θ(t_k(x)), f_θ(t′_k(x))), d = ‖u/‖u‖ − v/‖v‖‖² = 2 − 2·cos(u, v).

Common random numbers: the K pairs of augmentation draws (t_k, t′_k) are drawn once from the
seed and applied to every example, so ℓ_aug is a deterministic function of (x, θ), the same seed
gives the same gradients, and an exact duplicate gets exactly the gradient of its original.
The loss of one example does not depend on the other rows of its batch (the encoder runs in
eval mode), which is what makes it a per-sample loss that influence functions can use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...data.augment import as_augment
from ...errors import UserError
from ...seeding import torch_generator


def stability_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise squared ℓ2 distance of ℓ2-normalised embeddings (2 − 2·cos), shape (b,)."""
    zu = F.normalize(u.flatten(1), dim=1, eps=1e-12)
    zv = F.normalize(v.flatten(1), dim=1, eps=1e-12)
    return (zu - zv).pow(2).sum(1)


@dataclass
class AugmentationStability:
    """ℓ_aug with `draws` augmentation pairs shared by every example (common random numbers).

    `augment` is an `sslaudit.data.augment.Augment` (anything with `sample(n, g)` and
    `apply(x, params)`); the draws come from `torch_generator(seed, "influence", "draws")`.
    """

    augment: object
    draws: int = 4
    seed: int = 0

    def __post_init__(self):
        if int(self.draws) < 1:
            raise UserError(f"draws={self.draws}: the augmentation-stability loss needs at least 1 pair of draws")
        self.draws = int(self.draws)
        g = torch_generator(self.seed, "influence", "draws")
        self.augment = as_augment(self.augment)
        self.params = [(self.augment.view(0).sample(1, g), self.augment.view(1).sample(1, g)) for _ in range(self.draws)]

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 2K augmented views of a batch, ordered t_1(x), t′_1(x), t_2(x), …"""
        out = []
        for p, q in self.params:
            out += [self.augment.view(0).apply(x, p), self.augment.view(1).apply(x, q)]
        return out

    def from_views(self, encoder: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
        """Per-sample loss (b,) from precomputed views; the encoder is called once per view."""
        total = None
        for k in range(self.draws):
            d = stability_distance(encoder(views[2 * k]), encoder(views[2 * k + 1]))
            total = d if total is None else total + d
        return total / self.draws

    def __call__(self, encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ℓ_aug(x_i; θ) for every row of `x`, shape (b,)."""
        return self.from_views(encoder, self.views(x))
