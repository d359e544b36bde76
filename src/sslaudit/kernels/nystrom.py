"""Nyström approximation from the landmark kernel K_mm and the PC point Ã0 = U_r Λ_r^{-1/2}.

K_nn ≈ K_nm K_mm⁺ K_mn with K_mm ≈ U_r Λ_r U_rᵀ (the top r eigenpairs), so K_nm Ã0 are rank-r
coordinates whose inner products reproduce the Nyström kernel (kernel-PCA-like coordinates).

Numerics (all float64): K_mm is symmetrised; if its smallest eigenvalue is below
`rel_tol`·λ_max (singular) or negative (indefinite), a jitter is added to the diagonal — by
default just enough to make it positive semi-definite up to rounding,
max(0, −λ_min) + 10·m·eps·λ_max — and reported; eigenvalues under `rel_tol`·λ_max are dropped
(the numerical rank). Each eigenvector's sign is fixed so that its largest-magnitude entry
(first one on ties) is positive: runs are reproducible whatever LAPACK returns.

Rank hygiene (issue #18): near-null eigenpairs (λ/λ_max ≈ 1e-5 on real eNTKs) get weight
Λ^{-1/2} in Ã0, so the PC point and the fit-mode weights along them are tail noise. `floor`
keeps only eigenvalues ≥ floor·λ_max; `variance` keeps the fewest leading eigenpairs whose
eigenvalues sum to that share of the total (both 0/None = off: the numerical rank, as before).
`centre` eigendecomposes the centred landmark kernel H K_mm H (H = I − 11ᵀ/m): kernel PCA about
the landmarks' mean in feature space. Its eigenvectors are ⟂ 1, so K_xm Ã0 differs from the
properly centred coordinates H(k_x − K_mm 1/m) Ã0 only by a constant, which the kernel model's
γ absorbs; the model f = Ãᵀk_x + γ keeps its form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError


@dataclass
class NystromBasis:
    """The truncated eigendecomposition of K_mm and the PC point."""

    landmarks: np.ndarray  # positions of the landmarks (into the data the kernel was built on)
    eigenvalues: np.ndarray  # Λ_r (r,), descending, after jitter
    eigenvectors: np.ndarray  # U_r (m × r), sign-fixed
    a0: np.ndarray  # PC point U_r Λ_r^{-1/2} (m × r)
    jitter: float  # added to the diagonal of K_mm (0 if none was needed)
    rank: int  # r actually used
    dropped: int  # m − r eigenpairs not used (under the tolerance or beyond the requested rank)
    numerical_rank: int = 0  # eigenvalues above rel_tol·λ_max
    rel_tol: float = 1e-6
    floor: float = 0.0  # kept eigenvalues are ≥ floor·λ_max
    variance: float | None = None  # kept eigenvalues explain this share of the total (None: off)
    centred: bool = False  # eigendecomposition of H K_mm H instead of K_mm

    def summary(self) -> dict:
        return {
            "m": int(self.eigenvectors.shape[0]),
            "rank": self.rank,
            "numerical_rank": self.numerical_rank,
            "dropped": self.dropped,
            "jitter": self.jitter,
            "rel_tol": self.rel_tol,
            "floor": self.floor,
            "variance": self.variance,
            "centred": self.centred,
            "eigenvalue_max": float(self.eigenvalues[0]),
            "eigenvalue_min_kept": float(self.eigenvalues[-1]),
        }


def fit_nystrom(
    k_mm,
    rank: int | None = None,
    rel_tol: float = 1e-6,
    jitter: float | None = None,
    landmarks: np.ndarray | None = None,
    floor: float = 0.0,
    variance: float | None = None,
    centre: bool = False,
) -> NystromBasis:
    """Eigendecompose the landmark kernel; `rank=None` keeps the numerical rank (then `floor` and `variance` may cut it)."""
    k = np.asarray(k_mm.detach().cpu().numpy() if isinstance(k_mm, torch.Tensor) else k_mm, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise UserError(f"the landmark kernel must be a square m×m matrix, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise UserError("the landmark kernel K_mm contains NaN or inf; check the encoder's outputs and inputs for non-finite values")
    if rank is not None and int(rank) < 1:
        raise UserError(f"the Nyström rank must be ≥ 1, got {rank}")
    if not 0 < rel_tol < 1:
        raise UserError(f"rel_tol must be in (0, 1), got {rel_tol}")
    if jitter is not None and jitter < 0:
        raise UserError(f"jitter must be ≥ 0, got {jitter}")
    if not 0 <= floor < 1:
        raise UserError(f"the Nyström eigenvalue floor must be in [0, 1) (a share of λ_max, e.g. 1e-3), got {floor}")
    if variance is not None and not 0 < variance <= 1:
        raise UserError(f"the Nyström explained-variance share must be in (0, 1] (e.g. 0.99), got {variance}")
    m = k.shape[0]
    k = (k + k.T) / 2
    if centre:
        k = k - k.mean(0, keepdims=True)
        k = k - k.mean(1, keepdims=True)
        k = (k + k.T) / 2
    vals, vecs = np.linalg.eigh(k)
    lmax = float(vals[-1])
    if not lmax > 0:
        raise UserError("the landmark kernel has no positive eigenvalue (all gradients vanish?); choose other landmarks or another kernel")
    if jitter is None:
        singular = vals[0] < rel_tol * lmax
        jitter = max(0.0, -float(vals[0])) + 10 * m * np.finfo(np.float64).eps * lmax if singular else 0.0
    vals = vals + jitter
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    numerical = int((vals > rel_tol * vals[0]).sum())
    r = numerical if rank is None else min(int(rank), numerical)
    if floor > 0:
        r = min(r, max(1, int((vals[:numerical] >= floor * vals[0]).sum())))
    if variance is not None:
        share = np.cumsum(vals[:numerical]) / vals[:numerical].sum()
        r = min(r, int(np.searchsorted(share, variance * (1 - 1e-12))) + 1)
    vals, vecs = vals[:r], vecs[:, :r].copy()
    big = np.argmax(np.abs(vecs), axis=0)
    vecs *= np.where(vecs[big, np.arange(r)] < 0, -1.0, 1.0)[None, :]
    a0 = vecs / np.sqrt(vals)[None, :]
    pos = np.arange(m) if landmarks is None else np.asarray(landmarks)
    return NystromBasis(pos, vals, vecs, a0, float(jitter), r, m - r, numerical, float(rel_tol), float(floor), None if variance is None else float(variance), bool(centre))


def nystrom_coordinates(k_block, basis: NystromBasis) -> np.ndarray:
    """K_bm Ã0: the rank-r Nyström coordinates of a block of samples (float64, b × r)."""
    k = np.asarray(k_block.detach().cpu().numpy() if isinstance(k_block, torch.Tensor) else k_block, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != basis.a0.shape[0]:
        raise UserError(f"kernel block has shape {k.shape}; it needs one column per landmark ({basis.a0.shape[0]})")
    return k @ basis.a0


__all__ = ["NystromBasis", "fit_nystrom", "nystrom_coordinates"]
