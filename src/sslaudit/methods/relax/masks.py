"""RELAX's random masks, and the mask families the estimator draws from.

The reference generator (`relax_masks`): a coarse num_cells^d grid of Bernoulli(p) cells
(1 = keep), upsampled (bi)linearly to exactly the input's spatial size, reflect-padded by
num_cells // 2 on every side, then cropped back at a random offset in [0, num_cells) per axis.
Values lie in [0, 1]; every pixel's mean is exactly p (each value is a convex combination of
cells). A `MaskFamily` turns a seed and a batch number into the batch of weights the estimator
uses (n × P, one weight per pixel or feature group) and expands weights to the input's shape.
Batch b of a seed is the same whatever else is drawn, so N masks are a prefix of N' > N masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...errors import UserError
from ...seeding import torch_generator


REFERENCE_CELLS = 7  # the reference's grid (7×7 on 224×224 ImageNet images: 32-pixel cells)
MIN_CELL_PIXELS = 4


def default_cells(size: tuple[int, ...]) -> int:
    """Mask cells per side for an input of spatial `size`: cells at least 4 pixels wide, at most
    the reference's 7 per side — 7 for 28×28 (4-pixel cells) and larger, 4 for 16×16, 2 for 8×8
    digits (the reference's 7 there would give ≈ 1-pixel cells, i.e. pixel noise)."""
    return int(max(2, min(REFERENCE_CELLS, min(int(s) for s in size) // MIN_CELL_PIXELS)))


def check_mask_params(num_cells: int, p: float) -> None:
    if int(num_cells) != num_cells or num_cells < 1:
        raise UserError(f"num_cells={num_cells} must be a positive integer (the reference uses 7)")
    if not 0.0 < float(p) < 1.0:
        raise UserError(f"p={p} must lie strictly between 0 and 1 (the share of cells kept; the reference uses 0.5)")


def relax_masks(n: int, size: tuple[int, ...], *, num_cells: int = 7, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """n × 1 × *size float32 masks in [0, 1] (1 = keep), drawn on the CPU from `generator`.

    `size` is (H, W) for images or (L,) for 1-D signals.
    """
    check_mask_params(num_cells, p)
    size = tuple(int(s) for s in size)
    d = len(size)
    if d not in (1, 2):
        raise UserError(f"masks need 1 or 2 spatial dimensions, got the spatial size {size}")
    pad = num_cells // 2
    if min(size) <= pad:
        raise UserError(f"inputs of spatial size {size} are too small for {num_cells}×{num_cells} mask cells; use a smaller num_cells (at most {2 * min(size) - 1})")
    grid = (torch.rand((n, 1) + (num_cells,) * d, generator=generator) < p).float()
    up = F.interpolate(grid, size=size, mode="bilinear" if d == 2 else "linear", align_corners=False)
    up = F.pad(up, (pad, pad) * d, mode="reflect")
    shifts = torch.randint(0, num_cells, (d, n), generator=generator)
    rows = shifts[0][:, None] + torch.arange(size[0])
    if d == 1:
        return up[torch.arange(n)[:, None], 0, rows].unsqueeze(1)
    cols = shifts[1][:, None] + torch.arange(size[1])
    return up[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


class MaskFamily:
    """Where masks come from and how a row of per-unit weights covers an input."""

    units: int  # P: pixels (images, signals) or feature groups (tables)

    def draw(self, seed: int, batch: int, n: int) -> torch.Tensor:
        """Batch number `batch` of the stream for `seed`: n × P float32 weights in [0, 1]."""
        raise NotImplementedError

    def expand(self, weights: torch.Tensor) -> torch.Tensor:
        """k × P weights → a tensor broadcastable against k inputs."""
        raise NotImplementedError

    def unit_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    # ---- control variate (see estimator.py) ---------------------------------------------------
    def cv_features(self, weights: torch.Tensor) -> torch.Tensor:
        """n × F features of each mask that a similarity score is regressed on (default: the weights)."""
        return weights.to(torch.float64)

    def cv_moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact (E[f] (F), Cov(f, w) (F × P), E[w] (P)) of the features and weights of a random mask."""
        raise NotImplementedError


class SpatialMasks(MaskFamily):
    """The reference smooth masks over the spatial dimensions of N×C×H×W (or N×C×L) inputs."""

    def __init__(self, size: tuple[int, ...], num_cells: int = 7, p: float = 0.5):
        check_mask_params(num_cells, p)
        self.size, self.num_cells, self.p = tuple(int(s) for s in size), int(num_cells), float(p)
        self.units = math.prod(self.size)
        self._cv = None  # the control-variate moments, computed once on first use
        relax_masks(1, self.size, num_cells=self.num_cells, p=self.p)  # validates the size early

    def draw(self, seed: int, batch: int, n: int) -> torch.Tensor:
        g = torch_generator(seed, "relax", "masks", batch)
        return relax_masks(n, self.size, num_cells=self.num_cells, p=self.p, generator=g).reshape(n, -1)

    def expand(self, weights: torch.Tensor) -> torch.Tensor:
        return weights.reshape((len(weights), 1) + self.size)

    def unit_shape(self) -> tuple[int, ...]:
        return self.size

    def cv_features(self, weights: torch.Tensor) -> torch.Tensor:
        """The mask averaged over the num_cells^d grid (F = num_cells^d): the coarse pattern a score follows."""
        m = weights.to(torch.float64).reshape((len(weights), 1) + self.size)
        pool = F.adaptive_avg_pool2d if len(self.size) == 2 else F.adaptive_avg_pool1d
        return pool(m, (self.num_cells,) * len(self.size)).reshape(len(weights), -1)

    def cv_moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact moments from the generator's linearity: for crop offset o the mask is w = A_o c with
        cells c ~ Bernoulli(p) i.i.d. and o uniform over num_cells^d offsets, so
        E[f wᵀ] = mean_o Φ A_o (p(1−p) I + p² 11ᵀ) A_oᵀ, with Φ the pooling of `cv_features`."""
        if self._cv is None:
            k, d, p = self.num_cells, len(self.size), self.p
            cells = k**d
            pad = k // 2
            eye = torch.eye(cells, dtype=torch.float64).reshape((cells, 1) + (k,) * d)
            up = F.interpolate(eye, size=self.size, mode="bilinear" if d == 2 else "linear", align_corners=False)
            up = F.pad(up, (pad, pad) * d, mode="reflect")
            second = p * (1 - p) * torch.eye(cells, dtype=torch.float64) + p * p
            e_fw = torch.zeros(cells, self.units, dtype=torch.float64)
            e_f = torch.zeros(cells, dtype=torch.float64)
            e_w = torch.zeros(self.units, dtype=torch.float64)
            offsets = [(i, j) for i in range(k) for j in range(k)] if d == 2 else [(i,) for i in range(k)]
            for o in offsets:
                crop = up[(slice(None), 0) + tuple(slice(a, a + n) for a, n in zip(o, self.size))]  # cells × *size
                a_o = crop.reshape(cells, -1).T  # P × cells: mask = a_o @ c
                phi_a = self.cv_features(crop.reshape(cells, -1)).T  # F × cells: features = phi_a @ c
                e_fw += phi_a @ second @ a_o.T
                e_f += phi_a.sum(1) * p
                e_w += a_o.sum(1) * p
            n = len(offsets)
            e_fw, e_f, e_w = e_fw / n, e_f / n, e_w / n
            self._cv = (e_f, e_fw - e_f[:, None] * e_w[None, :], e_w)
        return self._cv
