"""The SSL loss of the kernel model on two views, split for Gauss–Newton.

Every objective is written as  loss(z1, z2) = outer(inner(z1, z2)) + rest(z1, z2)  where `outer`
is convex in the inner map's output h, so its Hessian Q is PSD and JᵀQJ is a valid Gauss–Newton
curvature; `rest` (VICReg's variance hinge) contributes gradient but no curvature. `q_apply`
gives Q·u analytically (what the fast CG path uses); the dense reference instead differentiates
`outer` twice with autograd, so the two are independent.

- simclr: h = similarity logits of ℓ2-normalised views / τ with the self-similarities masked
  (a constant, so p_ii = 0 and they carry no curvature); outer = row-wise cross-entropy (mean
  over the 2B rows); Q = (diag(p) − ppᵀ)/(2B) per row.
- barlow: h = W ⊙ (C − I) with W = 1 on the diagonal and √λ_BT off it; outer = Σh²; Q = 2I.
- vicreg: h = (√(s/(BD))·(z1 − z2), √(c/D)·offdiag(cov z1), √(c/D)·offdiag(cov z2)); Q = 2I;
  rest = the variance hinge (μ/2)·(v(z1) + v(z2)), as models.objectives.vicreg_loss.
- byol: predictor = identity, targets t = the stop-gradient PC-point embeddings of the other
  view; h = (n(z1) − n(t2), n(z2) − n(t1))/√B; outer = Σh²; Q = 2I.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import jvp, vjp

from ...errors import UserError
from ...models.objectives import DEFAULTS, OBJECTIVES, batch_standardise, variance_hinge

Tensors = tuple[torch.Tensor, ...]
_MASKED = -1e4  # self-similarity logit: exp underflows to exactly 0 in float32/64, and its tangent is 0


class KernelSSLLoss:
    """One SSL objective of the kernel model, with its Gauss–Newton split."""

    def __init__(self, objective: str, params: dict | None = None):
        if objective not in OBJECTIVES:
            raise UserError(f"KREPES supports the objectives {', '.join(OBJECTIVES)}, not {objective!r}")
        self.objective = objective
        allowed = DEFAULTS[objective]
        self.params = {**allowed, **{k: v for k, v in (params or {}).items() if k in allowed}}

    # ---- split ------------------------------------------------------------------------------
    def inner(self, z1: torch.Tensor, z2: torch.Tensor, t1: torch.Tensor | None = None, t2: torch.Tensor | None = None) -> Tensors:
        b, d = z1.shape
        if self.objective == "simclr":
            z = F.normalize(torch.cat([z1, z2]), dim=1)
            logits = z @ z.T / float(self.params["temperature"])
            eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
            return (logits.masked_fill(eye, _MASKED),)
        if self.objective == "barlow":
            c = batch_standardise(z1).T @ batch_standardise(z2) / b
            eye = torch.eye(d, dtype=z1.dtype, device=z1.device)
            w = eye + math.sqrt(float(self.params["lambd"])) * (1 - eye)
            return (w * (c - eye),)
        if self.objective == "vicreg":
            s, cw = float(self.params["sim_weight"]), float(self.params["cov_weight"])
            inv = math.sqrt(s / (b * d)) * (z1 - z2)
            off = ~torch.eye(d, dtype=torch.bool, device=z1.device)

            def cov_off(z):
                zc = z - z.mean(0)
                return (zc.T @ zc / (b - 1))[off]

            return (inv, math.sqrt(cw / d) * cov_off(z1), math.sqrt(cw / d) * cov_off(z2))
        # byol
        if t1 is None or t2 is None:
            raise ValueError("byol needs the target embeddings t1, t2")
        sb = 1.0 / math.sqrt(b)
        return (sb * (F.normalize(z1, dim=1) - F.normalize(t2, dim=1)), sb * (F.normalize(z2, dim=1) - F.normalize(t1, dim=1)))

    def outer(self, h: Tensors) -> torch.Tensor:
        if self.objective == "simclr":
            (lg,) = h
            n2 = lg.shape[0]
            b = n2 // 2
            pos = (torch.arange(n2, device=lg.device) + b) % n2
            return (torch.logsumexp(lg, dim=1) - lg[torch.arange(n2, device=lg.device), pos]).mean()
        return sum((t * t).sum() for t in h)

    def rest(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if self.objective != "vicreg":
            return z1.new_zeros(())
        return float(self.params["var_weight"]) * (variance_hinge(z1) + variance_hinge(z2)) / 2

    def q_apply(self, h: Tensors, u: Tensors) -> Tensors:
        """Q·u, Q = ∇²outer(h) (analytic, PSD)."""
        if self.objective == "simclr":
            (lg,), (uu,) = h, u
            p = torch.softmax(lg, dim=1)
            return ((p * uu - p * (p * uu).sum(1, keepdim=True)) / lg.shape[0],)
        return tuple(2.0 * t for t in u)

    def gn_state(self, z1, z2):
        """What the Gauss–Newton product at (z1, z2) needs that does not depend on the direction:
        for SimCLR the unit rows n, their norms and the softmax p (cached per batch by the step;
        None for the other objectives)."""
        if self.objective != "simclr":
            return None
        tau = float(self.params["temperature"])
        z = torch.cat([z1, z2])
        norm = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-12)  # as F.normalize
        n = z / norm
        logits = n @ n.T / tau
        logits.fill_diagonal_(_MASKED)
        return n, norm, torch.softmax(logits, dim=1)  # p_ii = 0 exactly

    def gn_inner(self, z1, z2, u1, u2, t1=None, t2=None, analytic: bool = True, state=None) -> Tensors:
        """J_hᵀ Q J_h (u1, u2): the inner map's Gauss–Newton product at (z1, z2), in embedding space.

        Generic path: torch.func jvp and vjp of `inner` around `q_apply`. SimCLR has a closed form
        (used unless analytic=False): with n = z/‖z‖ row-wise and P_n = I − nnᵀ, dn = P_n du/‖z‖,
        dL = (dn nᵀ + n dnᵀ)/τ, G = Q·dL, pulled back as P_n (G + Gᵀ) n / (τ‖z‖) — three 2B×2B×d
        matmuls and no autograd graph (tested equal to the generic path and to the dense reference)."""
        if analytic and self.objective == "simclr":
            return self._simclr_gn_inner(z1, z2, u1, u2, state)
        inner = lambda a, b: self.inner(a, b, t1, t2)  # noqa: E731
        h, u = jvp(inner, (z1, z2), (u1, u2))
        _, back = vjp(inner, z1, z2)
        return back(self.q_apply(h, u))

    def _simclr_gn_inner(self, z1, z2, u1, u2, state=None) -> Tensors:
        tau = float(self.params["temperature"])
        n, norm, p = state if state is not None else self.gn_state(z1, z2)
        du = torch.cat([u1, u2])
        dn = (du - n * (n * du).sum(1, keepdim=True)) / norm
        m = dn @ n.T
        dl = (m + m.T) / tau
        pu = p * dl
        g = (pu - p * pu.sum(1, keepdim=True)) / p.shape[0]  # Q·dL; zero on the diagonal
        gn = (g + g.T) @ n / tau
        gz = (gn - n * (n * gn).sum(1, keepdim=True)) / norm
        b = z1.shape[0]
        return gz[:b], gz[b:]

    # ---- the loss -----------------------------------------------------------------------------
    def loss(self, z1, z2, t1=None, t2=None) -> torch.Tensor:
        return self.outer(self.inner(z1, z2, t1, t2)) + self.rest(z1, z2)

    @property
    def needs_target(self) -> bool:
        return self.objective == "byol"
