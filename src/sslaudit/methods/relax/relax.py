"""`Relax`: Captum-style attribution of a representation, with uncertainty and U-RELAX.

    from sslaudit.methods.relax import Relax
    res = Relax(encoder).attribute(x, n_masks=3000, seed=0)      # x: N×C×H×W, a Dataset or a DataLoader
    res.importance, res.uncertainty, res.u_relax, res.n_masks, res.std_error

For every input x with h = f(x), masked copies x ⊙ M + fill ⊙ (1 − M) are scored by
sim(h, f(masked)); the mask-weighted mean of the scores is the importance R, their weighted
variance the uncertainty U, and U-RELAX keeps R where U is at most a threshold (the lower
median of U by default, as torch.median; or γ · mean(U)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.inputs import as_rows
from ...errors import UserError
from .estimator import estimate
from .masks import MaskFamily, SpatialMasks, default_cells
from .similarity import similarity_function

FILLS = ("zero", "mean", "blur")


@dataclass
class RelaxResult:
    """Maps of shape (B, *units): H×W for images, L for signals, G feature groups for tables."""

    importance: torch.Tensor  # R, float64
    uncertainty: torch.Tensor  # U (normalised weighted variance), float64
    u_relax: torch.Tensor  # R ⊙ 1[U ≤ threshold]
    std_error: torch.Tensor  # pixelwise standard error of R
    n_masks: torch.Tensor  # (B,) masks used per input
    converged: torch.Tensor  # (B,) adaptive stop reached (always True with fixed N)
    threshold: torch.Tensor  # (B,) the U threshold of U-RELAX

    @property
    def max_std_error(self) -> torch.Tensor:
        return self.std_error.flatten(1).amax(dim=1)


def u_relax(importance: torch.Tensor, uncertainty: torch.Tensor, threshold: str | float = "median") -> tuple[torch.Tensor, torch.Tensor]:
    """R ⊙ 1[U ≤ t] per input, t = lower median of U ("median") or γ · mean(U) (a float γ)."""
    u = uncertainty.flatten(1)
    if threshold == "median":
        t = u.median(dim=1).values
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and threshold > 0:
        t = float(threshold) * u.mean(dim=1)
    else:
        raise UserError(f"threshold={threshold!r}: use 'median' or a factor γ > 0 of mean(U)")
    keep = u <= t[:, None]
    return (importance.flatten(1) * keep).reshape(importance.shape), t


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over the spatial dims of N×C×H×W or N×C×L (reflect padding)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    out = x
    for axis in range(2, x.ndim):
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, shape[-1])
        r = min(radius, shape[-1] - 1)
        flat = F.pad(flat, (r, r), mode="reflect") if r > 0 else flat
        if r < radius:
            flat = F.pad(flat, (radius - r, radius - r), mode="replicate")
        out = F.conv1d(flat, k).reshape(shape).movedim(-1, axis)
    return out


class Relax:
    """RELAX for an encoder f: inputs → N×D representations.

    num_cells: mask cells per side, or "auto" (default): cells at least 4 pixels wide and at most
    the reference's 7 per side (`masks.default_cells`: 7 on 28×28, 2 on 8×8 digits).
    fill: "mean" (default; `fill_value`, e.g. the training per-channel mean — the reference masks
    the normalised input, i.e. paints the data mean; without `fill_value` each image's channel
    mean), "zero" (0 in the encoder's input space: black pixels), "blur" (a Gaussian blur of the
    input, σ = `blur_sigma` or size / (2·num_cells)), a number, or a tensor broadcastable to one input.
    similarity: "cosine" (default), "dot", "neg_euclidean", or a callable (h, h') → (n,).
    batch_size: rows (image × mask pairs) per forward pass; mask_batch: masks per estimator step.
    groups: column spans [(start, stop), ...] → tabular mode (N×F inputs, one weight per group).
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_cells: int | str = "auto",
        p: float = 0.5,
        fill: str | float | torch.Tensor = "mean",
        fill_value=None,
        blur_sigma: float | None = None,
        similarity: str | Callable = "cosine",
        batch_size: int = 250,
        mask_batch: int = 100,
        groups: list[tuple[int, int]] | None = None,
        spatial_dims: int = 2,
        device=None,
    ):
        if isinstance(fill, str) and fill not in FILLS:
            raise UserError(f"unknown fill {fill!r}: use one of {', '.join(FILLS)}, a number or a tensor")
        if int(batch_size) < 1 or int(mask_batch) < 1:
            raise UserError(f"batch_size ({batch_size}) and mask_batch ({mask_batch}) must be ≥ 1")
        if groups is None and spatial_dims not in (1, 2):
            raise UserError(f"spatial_dims={spatial_dims}: RELAX masks images (2) or 1-D signals (1); pass groups= for tables")
        if num_cells != "auto" and (isinstance(num_cells, (str, bool)) or int(num_cells) != num_cells or num_cells < 1):
            raise UserError(f"num_cells={num_cells!r}: use a positive integer (the reference uses 7) or 'auto'")
        self.encoder, self.num_cells, self.p = encoder, num_cells if num_cells == "auto" else int(num_cells), float(p)
        self.fill, self.fill_value, self.blur_sigma = fill, fill_value, blur_sigma
        self.sim = similarity_function(similarity)
        self.batch_size, self.mask_batch = int(batch_size), int(mask_batch)
        self.groups, self.spatial_dims = groups, int(spatial_dims)
        if device is None:
            par = next(iter(encoder.parameters()), None)
            device = par.device if par is not None else "cpu"
        self.device = torch.device(device)

    # ---- inputs ------------------------------------------------------------------------------
    def family(self, x: torch.Tensor) -> MaskFamily:
        if self.groups is not None:
            from .tabular import GroupMasks

            if x.ndim != 2:
                raise UserError(f"tabular RELAX needs N×F rows, got inputs of shape {tuple(x.shape)}")
            return GroupMasks(self.groups, x.shape[1], p=self.p)
        want = self.spatial_dims + 2
        if x.ndim != want:
            kind = "N×C×H×W images" if self.spatial_dims == 2 else "N×C×L signals"
            raise UserError(f"RELAX needs {kind} (inputs with spatial dimensions), got shape {tuple(x.shape)}; for tables pass feature groups")
        return SpatialMasks(tuple(x.shape[2:]), self.cells_for(tuple(x.shape[2:])), self.p)

    def cells_for(self, size: tuple[int, ...]) -> int:
        """The mask cells per side used on inputs of spatial `size`."""
        return default_cells(size) if self.num_cells == "auto" else int(self.num_cells)

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """The value a masked-out entry takes, shaped like x."""
        f = self.fill
        if isinstance(f, str) and f == "zero":
            return torch.zeros_like(x)
        if isinstance(f, str) and f == "mean":
            if self.fill_value is not None:
                v = torch.as_tensor(np.asarray(self.fill_value), dtype=x.dtype, device=x.device)
                if self.groups is None and v.ndim == 1:
                    v = v.view((1, -1) + (1,) * self.spatial_dims)
                return torch.broadcast_to(v, x.shape).clone()
            if self.groups is not None:
                raise UserError("fill='mean' on tables needs fill_value (the training column means)")
            return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True).expand_as(x).clone()
        if isinstance(f, str) and f == "blur":
            if self.groups is not None:
                raise UserError("fill='blur' needs spatial inputs; use 'mean' for tables")
            sigma = self.blur_sigma or max(x.shape[2:]) / (2 * self.cells_for(tuple(x.shape[2:])))
            return gaussian_blur(x, float(sigma))
        try:
            return torch.broadcast_to(torch.as_tensor(f, dtype=x.dtype, device=x.device), x.shape).clone()
        except RuntimeError:
            raise UserError(f"a fill tensor of shape {tuple(torch.as_tensor(f).shape)} does not broadcast to inputs of shape {tuple(x.shape)}") from None

    def _prepare(self, inputs) -> torch.Tensor:
        inputs = as_rows(inputs, "inputs")
        x = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs)
        if not torch.is_floating_point(x):
            x = x.float()
        if x.ndim == 0 or len(x) == 0:
            raise UserError("RELAX needs at least one input")
        if not torch.isfinite(x).all():
            raise UserError("the inputs contain NaN or infinite values; clean them first")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(x[s : s + self.batch_size]) for s in range(0, len(x), self.batch_size)])

    # ---- attribution -------------------------------------------------------------------------
    def attribute(
        self,
        inputs,
        n_masks: int | str = 3000,
        *,
        tolerance: float | None = None,
        seed: int = 0,
        threshold: str | float = "median",
        min_masks: int = 200,
        max_masks: int = 30_000,
        control_variate: bool | None = None,
    ) -> RelaxResult:
        """RELAX maps of a batch of inputs. n_masks: an integer N, or "auto" (needs `tolerance`).

        inputs: an array or tensor, a map-style torch Dataset or a DataLoader with shuffle=False
        (`sslaudit.data.inputs.as_rows`); all are held in memory, map i is input i.

        control_variate: subtract each score's linear prediction from the coarse mask pattern and add
        its exact expectation back (same map in expectation, a smaller standard error, so "auto" stops
        sooner). Default: on with n_masks="auto", off with a fixed N (the reference estimator)."""
        if n_masks == "auto":
            if tolerance is None or not tolerance > 0:
                raise UserError(f"n_masks='auto' needs a tolerance > 0 on the pixelwise standard error, got {tolerance}")
            fixed = None
        elif isinstance(n_masks, str) or isinstance(n_masks, bool) or int(n_masks) != n_masks or n_masks < 1:
            raise UserError(f"n_masks={n_masks!r}: use an integer ≥ 1 or 'auto'")
        else:
            fixed = int(n_masks)
        if tolerance is not None and not tolerance > 0:
            raise UserError(f"tolerance={tolerance} must be > 0")
        x = self._prepare(inputs)
        family = self.family(x)
        base = self.baseline(x)
        diff = x - base
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            h0 = self.embed(x)
            score = self._scorer(base, diff, h0, family)
            moments, stats = estimate(
                score,
                len(x),
                family,
                n_masks=fixed,
                tolerance=tolerance,
                seed=seed,
                mask_batch=self.mask_batch,
                min_masks=min_masks,
                max_masks=max_masks,
                device=self.device,
                control_variate=(fixed is None) if control_variate is None else bool(control_variate),
            )
        finally:
            self.encoder.train(was_training)
        shape = (len(x),) + family.unit_shape()
        r = moments.importance.reshape(shape)
        u = moments.uncertainty.reshape(shape)
        ur, t = u_relax(r, u, threshold)
        return RelaxResult(r, u, ur, moments.std_error().reshape(shape), stats.n_masks, stats.converged, t)

    def _scorer(self, base, diff, h0, family):
        bs = self.batch_size

        @torch.no_grad()
        def score(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            m = family.expand(weights.to(torch.float32))
            n_masks = len(weights)
            total = len(rows) * n_masks
            out = torch.empty(total, dtype=torch.float32, device=self.device)
            for s in range(0, total, bs):
                k = torch.arange(s, min(s + bs, total), device=self.device)
                img, msk = rows[k // n_masks], k % n_masks
                masked = base[img] + m[msk] * diff[img]
                out[s : s + len(k)] = self.sim(h0[img], self.encoder(masked)).float()
            return out.reshape(len(rows), n_masks)

        return score
