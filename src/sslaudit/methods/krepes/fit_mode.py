"""The `fit` mode: the representer expansion of the network itself.

W = argmin ‖Φ W − (F − F̄)‖² + μ‖W‖² with Φ = K_nm Ã0 + γ the centred PC coordinates of the
training samples and F = f_NN(X) the network's embeddings; then Ã = Ã0 W (m×d), γ' = γW, and the
influence scores use the fitted Ã. μ is chosen without labels by generalised cross-validation
of this regression (its targets are the network's outputs, not labels) unless given. Φ is only
touched through ΦᵀΦ and ΦᵀF, accumulated block by block, so n can be large.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernel_model import KernelModel


@dataclass
class FitResult:
    model: KernelModel
    mu: float
    chosen_by: str
    gcv_curve: list
    r2: float  # share of the network embedding's centred variance the surrogate explains (train)


def fit_representer(k_nm: np.ndarray, a0: np.ndarray, gamma: np.ndarray, f_train: np.ndarray, mu: float | str = "gcv", block: int = 65536) -> FitResult:
    a0 = np.asarray(a0, dtype=np.float64)
    n, r = len(k_nm), a0.shape[1]
    f = np.asarray(f_train, dtype=np.float64)
    fbar = f.mean(0)
    gram = np.zeros((r, r))
    cross = np.zeros((r, f.shape[1]))
    for s in range(0, n, block):
        phi = np.asarray(k_nm[s : s + block], dtype=np.float64) @ a0 + gamma
        gram += phi.T @ phi
        cross += phi.T @ (f[s : s + block] - fbar)
    ev, v = np.linalg.eigh((gram + gram.T) / 2)
    ev = np.clip(ev, 0, None)
    proj = v.T @ cross  # = S Uᵀ F_c (rows scaled by singular values)
    s2 = ev
    total = float(((f - fbar) ** 2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        uf2 = np.where(s2[:, None] > 0, proj**2 / np.where(s2[:, None] > 0, s2[:, None], 1), 0.0).sum(1)  # ‖(UᵀF)_i‖²

    def resid(m_):
        shrink = np.where(s2 > 0, m_ / (s2 + m_), 1.0)
        return total - uf2.sum() + float((shrink**2 * uf2).sum()), float((s2 / (s2 + m_)).sum())

    curve = []
    if mu == "gcv":
        top = float(s2.max()) if s2.max() > 0 else 1.0
        for m_ in top * np.logspace(-10, 0, 21):
            res, df = resid(m_)
            curve.append({"mu": float(m_), "gcv": n * res / max(n - df, 1e-9) ** 2})
        best = min(curve, key=lambda c: c["gcv"])
        mu_v, how = best["mu"], "generalised cross-validation"
    else:
        mu_v, how = float(mu), "fixed"
    w = v @ (proj / (s2 + mu_v)[:, None])
    res, _ = resid(mu_v)
    a = a0 @ w
    model = KernelModel(a, np.asarray(gamma, dtype=np.float64) @ w, a.copy(), "fit")
    return FitResult(model, float(mu_v), how, curve, float(1.0 - res / total) if total > 0 else float("nan"))
