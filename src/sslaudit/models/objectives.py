"""The four SSL objectives on two batches of projections z1, z2 (B×D), vectorised.

Each is tested against a naive per-element reference formula in tests/models/.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OBJECTIVES = ("simclr", "byol", "vicreg", "barlow")

DEFAULTS = {
    "simclr": {"temperature": 0.5},
    "byol": {"ema_start": 0.99},
    "vicreg": {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0},
    "barlow": {"lambd": 5e-3},
}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy over the 2B views (mean over views)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    b = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, targets)


def byol_loss(p1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """2 − 2·cos(prediction, target) averaged over the batch; the target is not differentiated."""
    return (2 - 2 * F.cosine_similarity(p1, t2.detach(), dim=1)).mean()


def variance_hinge(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's v(Z): mean over dimensions of relu(1 − sqrt(unbiased var + eps))."""
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def vicreg_loss(z1, z2, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0, eps: float = 1e-4):
    """VICReg: λ·MSE + μ·(v(z1) + v(z2))/2 + ν·(c(z1) + c(z2)); the variance terms averaged as in the authors' code (which tuned 25/25/1), not summed as in the paper's eq. 6."""
    b, d = z1.shape
    inv = F.mse_loss(z1, z2)

    def cov(z):
        zc = z - z.mean(dim=0)
        c = zc.T @ zc / (b - 1)
        off = c - torch.diag(torch.diagonal(c))
        return off.pow(2).sum() / d

    return sim_weight * inv + var_weight * (variance_hinge(z1, eps) + variance_hinge(z2, eps)) / 2 + cov_weight * (cov(z1) + cov(z2))


def batch_standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(z − mean)/sqrt(biased var + eps) per dimension: BatchNorm1d(affine=False) in training mode, as Barlow Twins' code."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def barlow_loss(z1, z2, lambd: float = 5e-3, eps: float = 1e-5):
    """Barlow Twins: Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C = cross-correlation of batch-standardised z."""
    b = z1.shape[0]
    c = batch_standardise(z1, eps).T @ batch_standardise(z2, eps) / b
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lambd * off


def pair_loss(objective: str, z1: torch.Tensor, z2: torch.Tensor, **params) -> torch.Tensor:
    """The symmetric objective for the non-BYOL methods."""
    if objective == "simclr":
        return nt_xent(z1, z2, **params)
    if objective == "vicreg":
        return vicreg_loss(z1, z2, **params)
    if objective == "barlow":
        return barlow_loss(z1, z2, **params)
    raise ValueError(f"pair_loss does not handle {objective!r}")
