"""Highly activating and discriminative features of a non-negative representation.

Definitions (Kalibhat et al., "Measuring Self-Supervised Representation Quality for Downstream
Classification using Discriminative Features", AAAI 2024):

- z_ij = (h_ij − μ_i) / σ_i, with μ_i, σ_i the mean and population standard deviation (ddof=0)
  over the d features of sample i. A sample with σ_i = 0 (constant, e.g. all-zero) has no
  highly activating feature.
- L_i = {j : h_ij > μ_i + ε σ_i}  (strict inequality, i.e. z_ij > ε).
- A_j = share of samples whose L_i contains j (activation rate).
- D = {j : q_low ≤ A_j ≤ q_high}, q = numpy.percentile(A, p, method="linear") — both bounds
  inclusive — fitted on the training split.

ε is chosen without labels by default: the largest of (4, 3, 2, 1) that leaves at least 90% of
the training samples with a non-empty L_i ∩ D (with d = 64–128 features, the paper's ε = 4
leaves most sets empty: the largest possible z-score at d = 64 is √63).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UserError

EPSILON_CANDIDATES = (4.0, 3.0, 2.0, 1.0)
NEGATIVE_MODES = ("relu", "shift")


def check_representation(h: np.ndarray, *, allow_negative: bool = False, negative: str = "relu", shift: float | None = None) -> np.ndarray:
    """The representation as float64 N×d, refusing negative values unless `allow_negative`.

    Q-Score reads a large value as "this feature is present", which needs non-negative
    (post-ReLU) features. With `allow_negative=True`: `negative="relu"` sets negative values to
    0 (as a ReLU after the backbone would); `negative="shift"` subtracts `shift` (the training
    minimum, one scalar; values still below it are clipped to 0) — this leaves z-scores, L_i, D
    and the v6 Q-Score unchanged and only changes the v1 variant.
    """
    h = np.asarray(h, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] < 2:
        raise UserError(f"Q-Score needs an N×d representation with d ≥ 2 features, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise UserError("the representation holds NaN or infinite values; check the encoder (training may have diverged)")
    lo = float(h.min()) if h.size else 0.0
    scale = float(np.abs(h).max()) if h.size else 0.0
    if lo < -1e-7 * max(scale, 1.0):
        if not allow_negative:
            raise UserError(
                f"the representation has negative values (min {lo:.4g}): Q-Score reads large activations as present "
                "features and applies to non-negative (post-ReLU) representations; pass --allow-negative "
                "(allow_negative=True) to apply it after a ReLU"
            )
        if negative == "relu":
            return np.maximum(h, 0.0)
        if negative == "shift":
            return np.maximum(h - (lo if shift is None else shift), 0.0)
        raise UserError(f"unknown negative mode {negative!r}: use one of {', '.join(NEGATIVE_MODES)}")
    return np.maximum(h, 0.0)  # rounding noise below zero


def zscores(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample z-scores N×d and a mask of samples with σ_i > 0."""
    mu = h.mean(axis=1, keepdims=True)
    sd = h.std(axis=1, keepdims=True)
    ok = sd[:, 0] > 0
    z = np.zeros_like(h)
    z[ok] = (h[ok] - mu[ok]) / sd[ok]
    return z, ok


def highly_activating(h: np.ndarray, epsilon: float) -> np.ndarray:
    """Boolean N×d mask of L_i = {j : h_ij > μ_i + ε σ_i} (empty where σ_i = 0)."""
    z, ok = zscores(h)
    return (z > epsilon) & ok[:, None]


def activation_rates(mask: np.ndarray) -> np.ndarray:
    """A_j: the share of samples for which feature j is highly activating."""
    return mask.mean(axis=0) if len(mask) else np.zeros(mask.shape[1])


def percentile_band(rates: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, float, float]:
    """D = {j : q_low ≤ A_j ≤ q_high} (linear-interpolated percentiles, inclusive bounds)."""
    p_lo, p_hi = check_percentiles(percentiles)
    lo, hi = (float(v) for v in np.percentile(rates, [p_lo, p_hi], method="linear"))
    return (rates >= lo) & (rates <= hi), lo, hi


def check_percentiles(percentiles) -> tuple[float, float]:
    try:
        p_lo, p_hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise UserError(f"percentiles {percentiles!r}: give two numbers LOW,HIGH such as 50,95") from None
    if not 0 <= p_lo < p_hi <= 100:
        raise UserError(f"percentiles {p_lo:g},{p_hi:g}: need 0 ≤ LOW < HIGH ≤ 100 (e.g. 50,95)")
    return p_lo, p_hi


@dataclass
class FeatureFit:
    """What `fit_features` found on the training split."""

    epsilon: float
    activation_rate: np.ndarray  # A_j, d
    discriminative: np.ndarray  # bool mask of D, d
    band: tuple[float, float]  # (q_low, q_high) of A, inclusive
    nonempty_share: float  # share of training samples with L_i ∩ D ≠ ∅
    met_target: bool  # the chosen ε reached the non-empty target
    candidates: list[dict]  # per candidate ε: nonempty_share, n_discriminative

    @property
    def empty_share(self) -> float:
        return 1.0 - self.nonempty_share


def fit_at(h: np.ndarray, epsilon: float, percentiles) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """A, D, band and non-empty share of L_i ∩ D at one ε."""
    mask = highly_activating(h, epsilon)
    rates = activation_rates(mask)
    disc, lo, hi = percentile_band(rates, percentiles)
    share = float((mask & disc).any(axis=1).mean()) if len(h) else 0.0
    return rates, disc, lo, hi, share


def fit_features(h: np.ndarray, *, epsilon="auto", percentiles=(50.0, 95.0), candidates=EPSILON_CANDIDATES, min_nonempty: float = 0.9) -> FeatureFit:
    """Choose ε (or use the given one) and fit A and D on training representations `h`.

    `epsilon="auto"`: the largest candidate whose non-empty share reaches `min_nonempty`; if
    none does, the candidate with the largest non-empty share (ties: the larger ε) and
    `met_target=False`.
    """
    if len(h) == 0:
        raise UserError("Q-Score needs at least one training sample to fit the discriminative features")
    check_percentiles(percentiles)
    if epsilon != "auto":
        try:
            eps = float(epsilon)
        except (TypeError, ValueError):
            raise UserError(f"epsilon {epsilon!r}: use auto or a positive number such as 4, 3, 2, 1") from None
        if not eps > 0:
            raise UserError(f"epsilon {eps:g}: use a positive number (the paper uses 4)")
        rates, disc, lo, hi, share = fit_at(h, eps, percentiles)
        cand = [{"epsilon": eps, "nonempty_share": share, "n_discriminative": int(disc.sum())}]
        return FeatureFit(eps, rates, disc, (lo, hi), share, share >= min_nonempty, cand)
    cands = sorted((float(c) for c in candidates), reverse=True)
    if not cands:
        raise UserError("no candidate ε to choose from; give at least one (e.g. 4, 3, 2, 1)")
    fits, table = [], []
    for eps in cands:
        fit = fit_at(h, eps, percentiles)
        fits.append((eps, fit))
        table.append({"epsilon": eps, "nonempty_share": fit[4], "n_discriminative": int(fit[1].sum())})
        if fit[4] >= min_nonempty:
            rates, disc, lo, hi, share = fit
            return FeatureFit(eps, rates, disc, (lo, hi), share, True, table)
    eps, (rates, disc, lo, hi, share) = max(fits, key=lambda t: (t[1][4], t[0]))
    return FeatureFit(eps, rates, disc, (lo, hi), share, False, table)
