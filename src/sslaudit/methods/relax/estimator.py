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


class ControlVariateMoments:
    """RELAX with a control variate: scores minus their linear prediction from mask features.

    With features f of each mask (the mask pooled to the cell grid) and per-image coefficients β
    fitted on a pilot of masks, s̃ = s − (f − E f)ᵀβ has the same weighted ratio up to a constant
    known exactly from the mask generator:
        R_p = E[s w_p] / E[w_p] = E[s̃ w_p] / E[w_p] + βᵀ Cov(f, w_p) / E[w_p].
    The importance is therefore estimated from s̃ (smaller variance when the score follows the
    coarse mask pattern) plus that constant; its standard error is the ratio estimator's on s̃.
    The uncertainty U stays the weighted variance of the raw scores. β is fitted on the first
    masks, which are then reused (a bias of order 1/N, far below the standard error).
    """

    def __init__(self, n_images: int, family: MaskFamily, device="cpu"):
        self.raw = WeightedMoments(n_images, family.units, device)
        self.cv = RelaxMoments(n_images, family.units, device)
        mean_f, cov_fw, mean_w = (t.to(device) for t in family.cv_moments())
        self.family, self.mean_f, self.cov_fw, self.mean_w = family, mean_f, cov_fw, mean_w
        self.beta = torch.zeros(n_images, len(mean_f), dtype=torch.float64, device=device)

    def fit(self, rows: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> None:
        """β of images `rows` by ridge-stabilised least squares on the pilot's scores (|rows|×M, M×P weights)."""
        f = self.family.cv_features(weights).to(torch.float64) - self.mean_f
        f = f - f.mean(0)
        s = scores.to(torch.float64)
        s = s - s.mean(dim=1, keepdim=True)
        gram = f.T @ f
        ridge = 1e-6 * float(gram.diagonal().mean().clamp_min(1e-12))
        self.beta[rows] = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype, device=gram.device), f.T @ s.T).T

    def update(self, rows: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> None:
        w = weights.to(torch.float64)
        self.raw.update(rows, scores, w)
        pred = self.beta[rows] @ (self.family.cv_features(weights).to(torch.float64) - self.mean_f).T
        self.cv.update(rows, scores.to(torch.float64) - pred, w)

    @property
    def importance(self) -> torch.Tensor:
        return self.cv.importance + (self.beta @ self.cov_fw) / self.mean_w

    @property
    def uncertainty(self) -> torch.Tensor:
        return self.raw.variance()

    def std_error(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.cv.std_error(rows)


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
    control_variate: bool = False,
    device="cpu",
    desc: str = "RELAX masks",
) -> tuple[RelaxMoments | ControlVariateMoments, EstimateStats]:
    """Draw mask batches, score them for every still-active image, and accumulate the moments.

    `score(rows, weights)` returns the |rows| × M similarity scores of images `rows` under the
    M × P mask `weights`. Fixed N (`n_masks`): every image sees the first N masks of the seed's
    stream. Adaptive (`n_masks=None`): an image stops after the first batch (and at least
    `min_masks` masks) where its largest pixelwise standard error is ≤ `tolerance`, or at
    `max_masks`; its N is reported. `control_variate`: the first min(`min_masks`, N) masks are a
    pilot that fits each image's control variate (`ControlVariateMoments`), then feed the estimate.
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
    limit = int(n_masks) if n_masks is not None else int(max_masks)
    moments = ControlVariateMoments(n_images, family, device) if control_variate else RelaxMoments(n_images, family.units, device)
    pilot_size = min(int(min_masks), limit) if control_variate else 0
    pilot: list[tuple[torch.Tensor, torch.Tensor]] = []  # (scores, weights) of the pilot batches
    fitted = not control_variate
    used = torch.zeros(n_images, dtype=torch.long)
    converged = torch.zeros(n_images, dtype=torch.bool)
    active = torch.arange(n_images)
    bar = progress(total=limit, desc=desc)
    batch = 0
    try:
        while len(active) and int(used[active].max()) < limit:
            take = min(mask_batch, limit - int(used[active[0]]))
            weights = family.draw(seed, batch, mask_batch)[:take].to(device)
            batch += 1
            scores = score(active.to(device), weights)
            used[active] += take
            bar.update(take)
            if not fitted:  # the pilot: every image is still active
                pilot.append((scores, weights))
                if int(used[active[0]]) < min(pilot_size, limit):
                    continue
                fitted, rows = True, active.to(device)
                moments.fit(rows, torch.cat([p[0] for p in pilot], dim=1), torch.cat([p[1] for p in pilot]))
                for sc, wt in pilot:
                    moments.update(rows, sc, wt)
                pilot.clear()
            else:
                moments.update(active.to(device), scores, weights)
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
