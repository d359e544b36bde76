"""Influence scores, Representer Landmarks and concept-conditioned scores.

Contribution of landmark l to test point t: c_l(t) = k(x̃_l, x_t)·w_l ∈ R^r (w = ΔÃ in the step
mode, the fitted Ã in the fit mode). IS(l, t) = ‖c_l(t)‖ = |k(x̃_l, x_t)|·‖w_l‖; the top-K by IS
are the Representer Landmarks of x_t. Sign: attractive (+1) if ⟨c_l(t), f(x_t)⟩ > 0 on the
centred surrogate, repulsive (−1) otherwise. Concept-conditioned: IS(l, t; c) = ⟨c_l(t), v_c⟩
with v_c the unit normal of a linear classifier (a CAV) separating the surrogate's R^r
representations of a concept's positive set from a negative set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UserError


def influence_scores(k_tm: np.ndarray, weights: np.ndarray, f_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IS, sign), both T×m: IS = |k|·‖w_l‖, sign = sign(k·⟨w_l, f_t⟩) (0 counts as repulsive)."""
    k = np.asarray(k_tm, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    score = np.abs(k) * np.linalg.norm(w, axis=1)[None, :]
    align = k * (np.asarray(f_test, dtype=np.float64) @ w.T)
    return score, np.where(align > 0, 1, -1).astype(np.int8)


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Positions (T×K, into the landmark list) of the K largest scores per row; ties → lower position."""
    if k < 1:
        raise UserError(f"--top-k must be ≥ 1, got {k}")
    k = min(int(k), score.shape[1])
    order = np.argsort(-score, axis=1, kind="stable")
    return order[:, :k]


def n_distinct_top1(top: np.ndarray) -> int:
    """How many different landmarks are someone's top-1 (1 = a single 'hub' explains everything)."""
    return int(len(np.unique(top[:, 0]))) if len(top) else 0


@dataclass
class Cav:
    name: str
    vector: np.ndarray  # unit normal in the surrogate's space
    accuracy: float  # training accuracy of the separating classifier (how linear the concept is)
    n_positive: int
    n_negative: int


def fit_cav(name: str, positive: np.ndarray, negative: np.ndarray, seed: int = 0) -> Cav:
    """Logistic-regression CAV on surrogate representations (never the network's)."""
    from sklearn.linear_model import LogisticRegression

    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if len(pos) < 2 or len(neg) < 2:
        raise UserError(f"concept {name!r} needs at least 2 positive and 2 negative samples (has {len(pos)} and {len(neg)}); broaden its definition")
    x = np.concatenate([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x, y)
    v = clf.coef_[0]
    norm = np.linalg.norm(v)
    if not norm > 0:
        raise UserError(f"concept {name!r}: the positive and negative sets cannot be separated in the surrogate's space; choose a more specific concept")
    return Cav(name, v / norm, float(clf.score(x, y)), len(pos), len(neg))


def concept_scores(k_tm: np.ndarray, weights: np.ndarray, cav: Cav) -> np.ndarray:
    """IS(l, t; c) = k(x̃_l, x_t)·⟨w_l, v_c⟩ (T×m, signed)."""
    return np.asarray(k_tm, dtype=np.float64) * (np.asarray(weights, dtype=np.float64) @ cav.vector)[None, :]
