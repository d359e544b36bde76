"""The damped curvature P = (G + λI)⁻¹ as a whitening map of per-sample gradients.

EK-FAC and K-FAC (fitted by `kronfluence`) approximate the empirical Fisher G = mean g gᵀ of ℓ_aug
block-diagonally per layer, in the eigenbasis Q = Q_G ⊗ Q_A of the layer's Kronecker factors,
with eigenvalues Λ (EK-FAC: the corrected ones, mean over samples of (Q_Gᵀ g Q_A)²; K-FAC:
λ_G ⊗ λ_A). The whitened gradient w = (Λ + λ)^(-1/2) ⊙ Q_Gᵀ g Q_A gives every score as a dot
product: self-influence ‖w‖², pairwise influence w_iᵀ w_j — the same numbers the library
computes, in one pass, and ready to be projected for duplicate search. `identity` is w = g
(gradient dot product; damping does not apply, as in kronfluence). Damping `None` is the
library's heuristic, 0.1 × the mean eigenvalue of each layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import UserError
from .gradients import Layer

STRATEGIES = ("ekfac", "kfac", "identity")
HEURISTIC_DAMPING_SCALE = 0.1  # kronfluence's value


def check_strategy(strategy: str) -> str:
    s = str(strategy).lower()
    if s not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    return s


def check_damping(damping) -> float | None:
    if damping is None:
        return None
    try:
        d = float(damping)
    except (TypeError, ValueError):
        raise UserError(f"damping {damping!r} is not a number: give a value ≥ 0, or none for the heuristic") from None
    if not np.isfinite(d) or d < 0:
        raise UserError(f"damping {damping!r} must be a finite number ≥ 0 (or none for 0.1 × the mean eigenvalue)")
    return d


@dataclass
class Preconditioner:
    """Per-layer eigenbases and eigenvalues; `whiten` maps gradients to w with wᵢᵀwⱼ = gᵢᵀ P gⱼ."""

    strategy: str
    layers: list[Layer]
    damping: float | None = None
    factors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # name -> qa, qg, eig

    def __post_init__(self):
        self._scale: dict[str, torch.Tensor] = {}
        self.used_damping: dict[str, float] = {}
        if self.strategy == "identity":
            return
        for layer in self.layers:
            f = self.factors[layer.name]
            eig = f["eig"].double()
            lam = float(HEURISTIC_DAMPING_SCALE * eig.mean()) if self.damping is None else float(self.damping)
            if lam <= 0 and bool((eig <= 0).any()):
                raise UserError(f"layer {layer.name} has zero curvature directions and damping {lam}: give a positive --damping")
            self.used_damping[layer.name] = lam
            self._scale[layer.name] = (eig + lam).rsqrt().float()

    @classmethod
    def from_kronfluence(cls, strategy: str, layers: list[Layer], raw: dict[str, dict[str, torch.Tensor]], damping: float | None) -> "Preconditioner":
        """Build from `KronfluenceAnalysis.factors()` output."""
        factors = {}
        for layer in layers:
            r = raw[layer.name]
            qa, qg = r["activation_eigenvectors"].float(), r["gradient_eigenvectors"].float()
            if strategy == "ekfac":
                eig = r["lambda_matrix"].double() / r["num_lambda_processed"].double()
            else:
                eig = torch.outer(r["gradient_eigenvalues"].double(), r["activation_eigenvalues"].double())
            factors[layer.name] = {"qa": qa, "qg": qg, "eig": eig.clamp(min=0.0)}
        return cls(strategy, layers, damping, factors)

    def whiten(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        """(b, D) whitened gradients from per-layer per-sample gradient matrices."""
        parts = []
        for layer in self.layers:
            g = grads[layer.name]
            if self.strategy != "identity":
                f = self.factors[layer.name]
                qa, qg = f["qa"].to(g.device), f["qg"].to(g.device)
                g = torch.matmul(qg.t(), torch.matmul(g, qa)) * self._scale[layer.name].to(g.device)
            parts.append(g.flatten(1))
        return torch.cat(parts, dim=1)

    def whiten_factors(self, factors) -> torch.Tensor:
        """`whiten` of gradients given as per-layer factors (layer, A, Δ), G = Δᵀ A (`per_sample_factors`):
        each layer takes the cheaper of (Q_Gᵀ Δᵀ)(A Q_A) and forming G then rotating it. Not for identity."""
        parts = {}
        for layer, a, d in factors:
            f = self.factors[layer.name]
            qa, qg = f["qa"].to(a.device), f["qg"].to(a.device)
            r, (rows, cols) = a.shape[1], layer.shape
            if r * (cols * cols + rows * rows) < rows * cols * (cols + rows):
                w = torch.matmul(torch.matmul(d, qg).transpose(1, 2), torch.matmul(a, qa))
            else:
                w = torch.matmul(qg.t(), torch.matmul(torch.matmul(d.transpose(1, 2), a), qa))
            parts[layer.name] = (w * self._scale[layer.name].to(w.device)).flatten(1)
        return torch.cat([parts[layer.name] for layer in self.layers], dim=1)

    # ---- storage as plain arrays (for the run store) -------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in enumerate(self.layers):
            for k, v in self.factors.get(layer.name, {}).items():
                out[f"{i}/{k}"] = v.cpu().numpy()
        return out

    @classmethod
    def from_arrays(cls, strategy: str, layers: list[Layer], arrays: dict[str, np.ndarray], damping: float | None) -> "Preconditioner":
        factors: dict[str, dict[str, torch.Tensor]] = {}
        for key, v in arrays.items():
            i, k = key.split("/")
            factors.setdefault(layers[int(i)].name, {})[k] = torch.from_numpy(v)
        return cls(strategy, layers, damping, factors)
