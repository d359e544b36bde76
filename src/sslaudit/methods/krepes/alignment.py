"""Feature Alignment Gap and group anchoring: which attributes the representer landmarks share.

Agreement of feature ξ between a test point and a landmark: numeric v = 1 − min(|Δx|/Δ_ξ, 1),
with Δ_ξ the IQR over the training rows, falling back to 1.4826·MAD, then the standard
deviation, then an equality test when those are 0 (Adult's capital-gain is 92% zeros);
categorical v = 1 if equal else 0. Ψ(t; ξ) = IS-weighted mean of v over the top-K landmarks of t,
Ψ_rand(t; ξ) = plain mean over all landmarks. Raw gap AG_ξ = mean_t(Ψ − Ψ_rand); normalised gap =
mean_t over test points with Ψ_rand < 1 of (Ψ − Ψ_rand)/(1 − Ψ_rand), which removes the chance
agreement that differs by feature (a binary attribute agrees by chance far more often than a
15-level one). Both carry percentile bootstrap CIs over test points.

Group anchoring: P(group of the top-1 landmark | group of the test point) beside the base rate of
each landmark group among all landmarks (what a top-1 drawn at random would give).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...seeding import numpy_rng


def feature_scale(train_values) -> tuple[float, str]:
    """(Δ_ξ, which statistic) for a numeric feature; (0, 'equality') when every fallback is 0."""
    v = pd.to_numeric(pd.Series(train_values), errors="coerce").dropna().to_numpy(dtype=np.float64)
    if v.size == 0:
        return 0.0, "equality"
    q75, q25 = np.percentile(v, [75, 25])
    if q75 - q25 > 0:
        return float(q75 - q25), "iqr"
    mad = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    if mad > 0:
        return mad, "mad"
    sd = float(v.std())
    if sd > 0:
        return sd, "std"
    return 0.0, "equality"


def is_numeric_column(values) -> bool:
    s = pd.Series(values)
    return bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def agreement(test_values, landmark_values, numeric: bool, scale: float) -> np.ndarray:
    """T×m agreement v between every test point and every landmark."""
    if numeric:
        a = pd.to_numeric(pd.Series(test_values), errors="coerce").to_numpy(dtype=np.float64)
        b = pd.to_numeric(pd.Series(landmark_values), errors="coerce").to_numpy(dtype=np.float64)
        diff = np.abs(a[:, None] - b[None, :])
        if scale > 0:
            v = 1.0 - np.minimum(diff / scale, 1.0)
        else:
            v = (diff == 0).astype(np.float64)
        return np.where(np.isnan(v), 0.0, v)
    a = np.asarray(pd.Series(test_values).astype(str))
    b = np.asarray(pd.Series(landmark_values).astype(str))
    return (a[:, None] == b[None, :]).astype(np.float64)


def _boot_ci(values: np.ndarray, n_boot: int, rng) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def alignment_gap(
    test_meta: pd.DataFrame, landmark_meta: pd.DataFrame, train_meta: pd.DataFrame, top: np.ndarray, top_scores: np.ndarray, features=None, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """One row per feature: gap, gap_normalised, their bootstrap CIs, chance agreement, Δ_ξ.

    `top` (T×K) are positions into the landmark list, `top_scores` their IS (the weights of Ψ).
    """
    features = list(features) if features is not None else [c for c in test_meta.columns if c in landmark_meta.columns]
    w = np.asarray(top_scores, dtype=np.float64)
    wsum = w.sum(1, keepdims=True)
    w = np.where(wsum > 0, w / np.where(wsum > 0, wsum, 1), 1.0 / w.shape[1])  # all-zero IS → plain mean
    rows = []
    for f in features:
        numeric = is_numeric_column(train_meta[f])
        scale, how = feature_scale(train_meta[f]) if numeric else (float("nan"), "categorical")
        v = agreement(test_meta[f].to_numpy(), landmark_meta[f].to_numpy(), numeric, scale if numeric else 0.0)
        psi = (np.take_along_axis(v, top, 1) * w).sum(1)
        psi_rand = v.mean(1)
        raw = psi - psi_rand
        ok = psi_rand < 1 - 1e-12
        norm = np.full_like(raw, np.nan)
        norm[ok] = raw[ok] / (1 - psi_rand[ok])
        rng = numpy_rng(seed, "krepes", "alignment", f)
        lo, hi = _boot_ci(raw, n_boot, rng)
        nlo, nhi = _boot_ci(norm, n_boot, rng)
        rows.append(
            {
                "feature": f,
                "gap": float(raw.mean()),
                "gap_normalised": float(np.nanmean(norm)) if ok.any() else float("nan"),
                "ci_low": lo,
                "ci_high": hi,
                "kind": "numeric" if numeric else "categorical",
                "ci_low_normalised": nlo,
                "ci_high_normalised": nhi,
                "psi": float(psi.mean()),
                "chance_agreement": float(psi_rand.mean()),
                "scale": scale,
                "scale_kind": how,
            }
        )
    return pd.DataFrame(rows)


def group_anchoring(attribute: str, test_groups, landmark_groups, top1: np.ndarray) -> pd.DataFrame:
    """P(group of the top-1 landmark | group of the test point), with landmark-group base rates."""
    tg = np.asarray(pd.Series(test_groups).astype(str))
    lg = np.asarray(pd.Series(landmark_groups).astype(str))
    chosen = lg[np.asarray(top1)]
    levels = sorted(set(lg) | set(tg))
    base = {g: float((lg == g).mean()) for g in levels}
    rows = []
    for t in sorted(set(tg)):
        mask = tg == t
        for g in levels:
            rows.append({"attribute": attribute, "test_group": t, "landmark_group": g, "probability": float((chosen[mask] == g).mean()), "base_rate": base[g], "n_test": int(mask.sum())})
    return pd.DataFrame(rows)
