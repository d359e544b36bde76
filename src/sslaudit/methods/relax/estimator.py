"""The RELAX estimator: mask-weighted mean and variance of similarity scores, batched and stable.

For image i and pixel p, with mask weights w_np and scores s_in:
  importance  R_ip = Σ_n w_np s_in / Σ_n w_np
  uncertainty U_ip = Σ_n w_np (s_in − R_ip)² / Σ_n w_np        (normalised, unlike the reference)
  std. error  SE_ip = sqrt(Σ_n w_np² (s_in − R_ip)²) / Σ_n w_np  (delta method for a ratio estimator)
Statistics of each batch of masks are computed with one matrix product per moment on scores
centred by their batch mean, then merged into running totals with Chan's parallel update, all in
float64: no E[s²] − E[s]² cancellation, and memory O(images · pixels) whatever N is. The masks
of a batch are shared by every image (common random numbers), so image i's map does not depend
on which other images are batched with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ...errors import UserError
from ...progress import progress
from .masks import MaskFamily


class WeightedMoments:
    """Running weighted mean and sum of squared deviations per (image, unit), merged batch by batch."""

    def __init__(self, n_images: int, n_units: int, device="cpu"):
        z = lambda: torch.zeros(n_images, n_units, dtype=torch.float64, device=device)  # noqa: E731
        self.weight, self.mean, self.m2 = z(), z(), z()

    @staticmethod
    def batch_stats(scores: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Σw, weighted mean, Σw(s − mean)²) of B×M scores under M×P weights, in float64."""
        s = scores.to(torch.float64)
        w = weights.to(torch.float64)
        centre = s.mean(dim=1, keepdim=True)
        d = s - centre
        total = w.sum(dim=0).expand(len(s), -1)
        s1, s2 = d @ w, (d * d) @ w
        safe = torch.where(total > 0, total, torch.ones_like(total))
        mean = torch.where(total > 0, centre + s1 / safe, torch.zeros_like(total))
        m2 = torch.where(total > 0, (s2 - s1 * s1 / safe).clamp_min(0.0), torch.zeros_like(total))
        return total, mean, m2

    def merge(self, rows: torch.Tensor, total: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Chan et al.'s update of the running statistics of images `rows` with a batch's."""
        wa, ma, qa = self.weight[rows], self.mean[rows], self.m2[rows]
        w = wa + total
        safe = torch.where(w > 0, w, torch.ones_like(w))
        delta = mean - ma
        self.mean[rows] = torch.where(w > 0, ma + delta * total / safe, ma)
        self.m2[rows] = qa + m2 + delta * delta * wa * total / safe
        self.weight[rows] = w

    def update(self, rows: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> None:
        self.merge(rows, *self.batch_stats(scores, weights))

    def variance(self) -> torch.Tensor:
        return self.m2 / torch.where(self.weight > 0, self.weight, torch.ones_like(self.weight))


class RelaxMoments:
    """Importance, uncertainty and standard error: moments under weights w and under w²."""

    def __init__(self, n_images: int, n_units: int, device="cpu"):
        self.by_w = WeightedMoments(n_images, n_units, device)
        self.by_w2 = WeightedMoments(n_images, n_units, device)

    def update(self, rows: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> None:
        w = weights.to(torch.float64)
        self.by_w.update(rows, scores, w)
        self.by_w2.update(rows, scores, w * w)

    @property
    def importance(self) -> torch.Tensor:
        return self.by_w.mean

    @property
    def uncertainty(self) -> torch.Tensor:
        return self.by_w.variance()

    def std_error(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """sqrt(Σw²(s − R)²) / Σw, from Σw²(s − R)² = M2_{w²} + Σw² · (mean_{w²} − R)²."""
        a, b = self.by_w, self.by_w2
        if rows is None:
            rows = torch.arange(len(a.mean), device=a.mean.device)
        gap = b.mean[rows] - a.mean[rows]
        num = (b.m2[rows] + b.weight[rows] * gap * gap).clamp_min(0.0)
        den = a.weight[rows]
        return torch.where(den > 0, num.sqrt() / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(den, float("inf")))


@dataclass
class EstimateStats:
    """How many masks each image used and whether the adaptive stop was reached."""

    n_masks: torch.Tensor  # (B,) int64
    converged: torch.Tensor  # (B,) bool: max std. error ≤ tolerance (always True for fixed N)


def estimate(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_images: int,
    family: MaskFamily,
    *,
    n_masks: int | None,
    tolerance: float | None = None,
    seed: int = 0,
    mask_batch: int = 100,
    min_masks: int = 200,
    max_masks: int = 30_000,
    device="cpu",
    desc: str = "RELAX masks",
) -> tuple[RelaxMoments, EstimateStats]:
    """Draw mask batches, score them for every still-active image, and accumulate the moments.

    `score(rows, weights)` returns the |rows| × M similarity scores of images `rows` under the
    M × P mask `weights`. Fixed N (`n_masks`): every image sees the first N masks of the seed's
    stream. Adaptive (`n_masks=None`): an image stops after the first batch (and at least
    `min_masks` masks) where its largest pixelwise standard error is ≤ `tolerance`, or at
    `max_masks`; its N is reported.
    """
    if mask_batch < 1:
        raise UserError(f"mask batch size {mask_batch} must be ≥ 1")
    if n_masks is None:
        if tolerance is None or not tolerance > 0:
            raise UserError(f"adaptive N needs a tolerance > 0 on the pixelwise standard error, got {tolerance}")
        if max_masks < 1:
            raise UserError(f"max_masks={max_masks} must be ≥ 1")
    elif int(n_masks) != n_masks or n_masks < 1:
        raise UserError(f"the number of masks must be an integer ≥ 1, got {n_masks}")
    moments = RelaxMoments(n_images, family.units, device)
    used = torch.zeros(n_images, dtype=torch.long)
    converged = torch.zeros(n_images, dtype=torch.bool)
    active = torch.arange(n_images)
    limit = int(n_masks) if n_masks is not None else int(max_masks)
    bar = progress(total=limit, desc=desc)
    batch = 0
    try:
        while len(active) and int(used[active].max()) < limit:
            take = min(mask_batch, limit - int(used[active[0]]))
            weights = family.draw(seed, batch, mask_batch)[:take].to(device)
            batch += 1
            scores = score(active.to(device), weights)
            moments.update(active.to(device), scores, weights)
            used[active] += take
            bar.update(take)
            if n_masks is None:
                ready = used[active] >= min(min_masks, limit)
                if ready.any():
                    se = moments.std_error(active.to(device)).amax(dim=1).cpu()
                    done = ready & (se <= tolerance)
                    converged[active[done]] = True
                    active = active[~done]
    finally:
        bar.close()
    if n_masks is not None:
        converged[:] = True
    return moments, EstimateStats(used, converged)
