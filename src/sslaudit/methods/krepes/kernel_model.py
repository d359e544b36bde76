"""The kernel model f(x) = Ãᵀk_x + γ of a frozen network, and its PC point.

k_x = [k(x̃_1, x), …, k(x̃_m, x)] are the kernel values of x against the m landmarks. At the PC
point Ã0 = U_r Λ_r^{-1/2} (from the Nyström basis of K_mm), K_nm Ã0 are the rank-r Nyström
(kernel-PCA-like) coordinates; γ = −mean_train(K_nm Ã0) centres them (uncentred coordinates make
every cosine close to 1). γ is held fixed through the Gauss–Newton step.

`weights` are the per-landmark coefficients the influence scores use: ΔÃ in the `step` mode,
the fitted Ã = Ã0 W in the `fit` mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UserError


@dataclass
class KernelModel:
    a: np.ndarray  # m×r  current coefficients Ã
    gamma: np.ndarray  # r    offset γ
    weights: np.ndarray  # m×r  coefficients whose rows drive the scores
    mode: str = "pc"  # "pc" | "step" | "fit"

    @property
    def n_landmarks(self) -> int:
        return int(self.a.shape[0])

    @property
    def width(self) -> int:
        return int(self.a.shape[1])

    def embed(self, k: np.ndarray) -> np.ndarray:
        """Surrogate representations of inputs whose landmark kernel rows are `k` (N×m)."""
        k = np.asarray(k, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != self.n_landmarks:
            raise ValueError(f"kernel rows must be N×{self.n_landmarks}, got {k.shape}")
        return k @ self.a + self.gamma

    def landmark_norms(self) -> np.ndarray:
        """‖weights_l‖₂ per landmark (‖ΔÃ_l‖ in the step mode)."""
        return np.linalg.norm(self.weights, axis=1)

    def to_arrays(self) -> dict:
        return {"a": self.a, "gamma": self.gamma, "weights": self.weights}


def check_kernel_values(k: np.ndarray, what: str) -> np.ndarray:
    """Refuse NaN/inf kernel values with a clear message (a diverged encoder, a 0/0 normalisation)."""
    k = np.asarray(k)
    if not np.isfinite(k).all():
        bad = int((~np.isfinite(k)).sum())
        raise UserError(
            f"the kernel {what} has {bad} NaN/infinite value(s): the encoder produces non-finite gradients or an input has a zero gradient under --normalize; check the encoder or use --raw-kernel"
        )
    return k


def centring_offset(k_nm: np.ndarray, a0: np.ndarray, block: int = 65536) -> np.ndarray:
    """γ = −mean over training samples of K_nm Ã0 (accumulated in float64 by blocks)."""
    total = np.zeros(a0.shape[1], dtype=np.float64)
    for s in range(0, len(k_nm), block):
        total += (np.asarray(k_nm[s : s + block], dtype=np.float64) @ a0).sum(0)
    return -total / max(len(k_nm), 1)


def pc_model(a0: np.ndarray, k_nm: np.ndarray, block: int = 65536) -> KernelModel:
    """The PC point: Ã = Ã0, γ centring the training coordinates, no scores yet."""
    a0 = np.asarray(a0, dtype=np.float64)
    return KernelModel(a0.copy(), centring_offset(k_nm, a0, block), np.zeros_like(a0), "pc")


def spectral_entropy(a: np.ndarray) -> float:
    """Shannon entropy of the normalised eigenvalues of ÃᵀÃ (label-free λ criterion)."""
    ev = np.clip(np.linalg.eigvalsh(np.asarray(a, dtype=np.float64).T @ np.asarray(a, dtype=np.float64)), 0, None)
    s = ev.sum()
    if s <= 0:
        return 0.0
    p = ev[ev > 0] / s
    return float(-(p * np.log(p)).sum())
