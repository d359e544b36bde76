"""Landmark selection for the Nyström approximation: uniform, kernel k-means++, ridge leverage.

- "uniform": m positions drawn without replacement.
- "kmeans++": D² sampling in the kernel's feature space, distance² = k(x,x) + k(c,c) − 2k(x,c)
  (2 − 2k̃ for the normalised kernel): the first landmark uniformly, each next one with
  probability ∝ its squared distance to the nearest landmark so far.
- "leverage": approximate ridge leverage scores ℓ_j(λ) = [K(K + λnI)⁻¹]_jj by BLESS
  (Rudi et al. 2018): λ halves from max k(x,x) down to the target while a dictionary J, sampled
  from a growing uniform subsample in proportion to the previous scores and importance-weighted
  (W), gives ℓ̃(i) = (k_ii − k_iJ (K_JJ + λnW⁻¹)⁻¹ k_Ji)/(λn). K is never formed: every stage
  costs |U|·|J| kernel entries. Default λ = mean k(x,x)/m, so the effective dimension Σℓ ≤ m.
  The m landmarks are then drawn without replacement with probability ∝ ℓ̃.

kmeans++ and leverage work on a seeded candidate pool (`candidates`, default
min(n, max(4096, 16·m)), further capped so that the pool's kernel factors stay under 1 GB);
uniform draws from all n. Every draw comes from `numpy_rng(seed, "landmarks", method)`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from ..errors import UserError
from ..seeding import numpy_rng
from .blocks import compute_factors
from .entk import EntkKernel

METHODS = ("uniform", "kmeans++", "leverage")
_POOL_BYTES = 1 << 30


def auto_landmarks(n: int) -> int:
    """m_auto = min(n, max(256, ⌈2√n⌉))."""
    return int(min(n, max(256, math.ceil(2 * math.sqrt(n)))))


def resolve_landmark_count(m: int | str, n: int) -> int:
    """`m` as an int ("auto" → auto_landmarks(n)); UserError unless 2 ≤ m ≤ n."""
    if isinstance(m, str):
        if m != "auto":
            raise UserError(f"landmark count {m!r} is not a number; give an integer ≥ 2 or 'auto'")
        m = auto_landmarks(n)
    m = int(m)
    if m < 2:
        raise UserError(f"{m} landmarks is too few; use at least 2 (or 'auto')")
    if m > n:
        raise UserError(f"{m} landmarks requested but only {n} training samples; use at most {n} (or 'auto')")
    return m


def select_landmarks(kernel: EntkKernel, x, m: int | str, method: str = "uniform", seed: int = 0, candidates: int | None = None, engine=None, ridge: float | None = None) -> np.ndarray:
    """Sorted positions into x of m landmarks chosen by `method` (seeded)."""
    n = len(x)
    m = resolve_landmark_count(m, n)
    if method not in METHODS:
        raise UserError(f"unknown landmark selection {method!r}: use one of {', '.join(METHODS)}")
    rng = numpy_rng(seed, "landmarks", method)
    if method == "uniform":
        return np.sort(rng.choice(n, size=m, replace=False))
    pool = _candidate_pool(kernel, x, m, candidates, rng)
    f = compute_factors(kernel, x, rows=pool, engine=engine, desc=f"eNTK factors ({method} candidates)")
    dd = _kernel_diag(kernel, f)
    if method == "kmeans++":
        chosen = _kmeanspp(kernel, f, dd, m, rng)
    else:
        lam = float(dd.mean()) / m if ridge is None else float(ridge)
        if not lam > 0:
            raise UserError(f"the leverage-score ridge must be > 0, got {lam}")
        scores = approximate_leverage(kernel, f, lam, rng)
        chosen = rng.choice(len(pool), size=m, replace=False, p=_probabilities(scores))
    return np.sort(pool[chosen])


def _candidate_pool(kernel, x, m, candidates, rng) -> np.ndarray:
    n = len(x)
    if candidates is None:
        per_row = kernel.factors(x[:2]).nbytes / min(2, n)
        candidates = min(n, max(4096, 16 * m), max(m, int(_POOL_BYTES // max(per_row, 1))))
    candidates = int(candidates)
    if candidates < m:
        raise UserError(f"candidates ({candidates}) must be at least the number of landmarks ({m})")
    if candidates >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=candidates, replace=False))


def _kernel_diag(kernel: EntkKernel, f) -> np.ndarray:
    raw = f.diag.cpu().numpy()
    return (raw > 0).astype(np.float64) if kernel.normalize else raw


def _column(kernel: EntkKernel, f, idx) -> np.ndarray:
    return kernel.between(f, f.take(np.atleast_1d(idx))).cpu().numpy()


def _kmeanspp(kernel, f, dd, m, rng) -> np.ndarray:
    c = f.n
    first = int(rng.integers(c))
    chosen = [first]
    d2 = np.maximum(dd + dd[first] - 2 * _column(kernel, f, first)[:, 0], 0.0)
    for _ in range(1, m):
        total = d2.sum()
        if total > 0:
            nxt = int(rng.choice(c, p=d2 / total))
        else:  # every candidate coincides with a landmark in feature space: fall back to uniform
            rest = np.setdiff1d(np.arange(c), chosen)
            nxt = int(rng.choice(rest))
        chosen.append(nxt)
        d2 = np.minimum(d2, np.maximum(dd + dd[nxt] - 2 * _column(kernel, f, nxt)[:, 0], 0.0))
        d2[chosen] = 0.0
    return np.asarray(chosen)


def approximate_leverage(kernel: EntkKernel, f, lam: float, rng, q1: float = 8.0, q2: float = 8.0) -> np.ndarray:
    """BLESS estimates of the ridge leverage scores [K(K + λnI)⁻¹]_ii of the n = f.n samples of f."""
    n = f.n
    dd = _kernel_diag(kernel, f)
    order = rng.permutation(n)  # nested uniform subsamples: U_h = order[:R_h]
    lam_h = float(dd.max())
    stages = max(1, math.ceil(math.log2(max(lam_h / lam, 1.0))))
    dict_idx, dict_w = np.zeros(0, dtype=int), np.zeros(0)
    for h in range(1, stages + 1):
        lam_h = max(lam, lam_h / 2)
        r_h = int(min(n, math.ceil(q1 * float(dd.max()) / lam_h)))
        u = order[:r_h]
        scores = _scores(kernel, f, dd, u, dict_idx, dict_w, lam_h)
        d_h = n / r_h * scores.sum()
        m_h = int(min(r_h, max(1, math.ceil(q2 * d_h))))
        p = _probabilities(scores)
        draws = rng.choice(r_h, size=m_h, replace=True, p=p)
        uniq, counts = np.unique(draws, return_counts=True)
        dict_idx = u[uniq]
        dict_w = counts * n / (r_h * m_h * p[uniq])  # Σ_J w_j φ_j φ_jᵀ ≈ Σ_i φ_i φ_iᵀ
    return _scores(kernel, f, dd, np.arange(n), dict_idx, dict_w, lam)


def _scores(kernel, f, dd, u, dict_idx, dict_w, lam) -> np.ndarray:
    n = f.n
    if len(dict_idx) == 0:
        return dd[u] / (lam * n)
    fj = f.take(dict_idx)
    k_jj = kernel.between(fj, fj).cpu().numpy()
    k_uj = kernel.between(f.take(u), fj).cpu().numpy()
    a = k_jj + np.diag(lam * n / dict_w)
    try:
        sol = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), k_uj.T)
    except np.linalg.LinAlgError:
        sol = np.linalg.lstsq(a, k_uj.T, rcond=None)[0]
    quad = np.einsum("uj,ju->u", k_uj, sol)
    return np.maximum(dd[u] - quad, 0.0) / (lam * n)


def _probabilities(scores: np.ndarray) -> np.ndarray:
    s = np.maximum(np.asarray(scores, dtype=np.float64), 0.0)
    total = s.sum()
    if not total > 0:
        return np.full(len(s), 1.0 / len(s))
    p = s / total
    if np.count_nonzero(p) < len(p):  # keep every sample reachable so m draws without replacement exist
        p = 0.999 * p + 0.001 / len(p)
    return p / p.sum()


__all__ = ["METHODS", "approximate_leverage", "auto_landmarks", "resolve_landmark_count", "select_landmarks"]
