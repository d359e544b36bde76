"""The Gauss–Newton step in the Nyström eigenbasis: rotate the view kernel rows once, ψ = K·U_r.

The PC point is Ã0 = U_r Λ_r^{-1/2}; writing the step as ΔÃ = U_r ΔB (ΔB ∈ R^{r×r}) the kernel
model's outputs are z = K(Ã0 + U_r ΔB) + γ = ψ(Λ_r^{-1/2} + ΔB) + γ with ψ = K U_r (S×r). After one
rotation (S·m·r, one pass over the stored kernel rows) every loss, gradient and Gauss–Newton
product costs O(S·r²) instead of O(S·m·r), and ψ (2·S·r values) is small enough to keep in memory,
so the stored rows are read once instead of once per product.

The step is the landmark-basis step restricted to span(U_r) ⊗ R^r: the GN matrix in these
coordinates is U_rᵀ G U_r (tested equal to the landmark-basis product projected), the same step
when r = m. When r < m the directions of Ã outside span(U_r) are left out; they move the outputs
only through K U_⊥, the part of the kernel rows the Nyström truncation drops.

Products run in `dtype` (float32 by default: half the memory traffic, twice the matmul rate);
each batch's contribution to a loss, gradient or product is accumulated in float64, and CG's
vectors and scalars stay float64. SimCLR's softmax (and the unit rows) at the linearisation point
are cached per batch with `keep_point`.
"""

from __future__ import annotations

import numpy as np
import torch

from ...progress import progress
from .losses import KernelSSLLoss

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class RotatedViews:
    """ψ¹ = K¹U_r and ψ² = K²U_r of every SSL batch of `views` (a ViewBatches / StoredViewBatches),
    computed once and held in memory in `dtype` (batch i = rows [iB, (i+1)B))."""

    def __init__(self, views, u: np.ndarray, dtype: str = "float32", desc: str = "krepes: rotating view kernel rows"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype]
        dev = getattr(views, "device", "cpu")
        read = np.float32 if dtype == "float32" else np.float64
        old = getattr(views, "dtype", np.float64)
        views.dtype = read
        ut = torch.as_tensor(np.asarray(u, dtype=read), device=dev)
        n = len(views)
        self.psi1 = self.psi2 = None
        bar = progress(desc=desc, total=n)
        try:
            for i in range(n):
                k1, k2 = views.get(i)
                p1, p2 = k1.to(ut.dtype) @ ut, k2.to(ut.dtype) @ ut
                if self.psi1 is None:
                    self.bs = len(p1)
                    self.psi1 = torch.empty((n * self.bs, ut.shape[1]), dtype=self.dtype, device=dev)
                    self.psi2 = torch.empty_like(self.psi1)
                self.psi1[i * self.bs : (i + 1) * self.bs] = p1
                self.psi2[i * self.bs : (i + 1) * self.bs] = p2
                bar.update(1)
        finally:
            bar.close()
            views.dtype = old
        self.n_batches, self.device = n, dev
        if self.psi1 is None:
            self.bs = 0

    def __len__(self) -> int:
        return self.n_batches

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.psi1[i * self.bs : (i + 1) * self.bs], self.psi2[i * self.bs : (i + 1) * self.bs]

    @property
    def nbytes(self) -> int:
        return 0 if self.psi1 is None else 2 * self.psi1.numel() * self.psi1.element_size()


class EigenbasisProblem:
    """L(B), ∇L(B) and Gauss–Newton products in the eigenbasis coordinates B (r×r, Ã = U_r B).

    Same interface as `KernelLossProblem` (a0, value, value_and_grad, gn_matvec); a0 = Λ_r^{-1/2}
    as a diagonal matrix. Parameters and results are float64; products run in the rows' dtype."""

    def __init__(self, loss: KernelSSLLoss, rotated: RotatedViews, eigenvalues: np.ndarray, gamma: np.ndarray, keep_point: bool = False):
        self.loss, self.views = loss, rotated
        dev = rotated.device
        self.dtype = rotated.dtype
        self.a0 = torch.diag(torch.as_tensor(1.0 / np.sqrt(np.asarray(eigenvalues, dtype=np.float64)), device=dev))
        self.gamma = torch.as_tensor(gamma, dtype=torch.float64, device=dev)
        self._g = self.gamma.to(self.dtype)
        self._a0 = self.a0.to(self.dtype)
        self._points: dict | None = {} if keep_point else None
        self.analytic = True

    def _point(self, i: int, p1, p2):
        """(z1, z2, GN state) of batch i at the PC point (kept with keep_point)."""
        if self._points is not None and i in self._points:
            return self._points[i]
        z1, z2 = p1 @ self._a0 + self._g, p2 @ self._a0 + self._g
        state = self.loss.gn_state(z1, z2) if self.analytic else None
        out = (z1, z2, state)
        if self._points is not None:
            self._points[i] = out
        return out

    def _targets(self, i, p1, p2):
        if not self.loss.needs_target:
            return None, None
        z1, z2, _ = self._point(i, p1, p2)
        return z1, z2

    def value(self, b: torch.Tensor) -> float:
        bb = b.to(self.dtype)
        total = 0.0
        with torch.no_grad():
            for i in range(len(self.views)):
                p1, p2 = self.views.get(i)
                t1, t2 = self._targets(i, p1, p2)
                total += float(self.loss.loss(p1 @ bb + self._g, p2 @ bb + self._g, t1, t2))
        return total / max(len(self.views), 1)

    def value_and_grad(self, b: torch.Tensor) -> tuple[float, torch.Tensor]:
        bb = b.to(self.dtype)
        total, grad = 0.0, torch.zeros_like(b, dtype=torch.float64)
        for i in range(len(self.views)):
            p1, p2 = self.views.get(i)
            t1, t2 = self._targets(i, p1, p2)
            z1 = (p1 @ bb + self._g).requires_grad_(True)
            z2 = (p2 @ bb + self._g).requires_grad_(True)
            val = self.loss.loss(z1, z2, t1, t2)
            g1, g2 = torch.autograd.grad(val, (z1, z2))
            total += float(val.detach())
            grad += (p1.T @ g1 + p2.T @ g2).to(torch.float64)
        n = max(len(self.views), 1)
        return total / n, grad / n

    def gn_matvec(self, d: torch.Tensor) -> torch.Tensor:
        """(U_rᵀ G U_r)·d at the PC point (without damping), float64 out."""
        dd = d.to(self.dtype)
        out = torch.zeros_like(d, dtype=torch.float64)
        with torch.no_grad():
            for i in range(len(self.views)):
                p1, p2 = self.views.get(i)
                z1, z2, state = self._point(i, p1, p2)
                t1, t2 = (z1, z2) if self.loss.needs_target else (None, None)
                g1, g2 = self._gn_inner(z1, z2, p1 @ dd, p2 @ dd, t1, t2, state)
                out += (p1.T @ g1 + p2.T @ g2).to(torch.float64)
        return out / max(len(self.views), 1)

    def _gn_inner(self, z1, z2, u1, u2, t1, t2, state):
        if self.analytic and self.loss.objective == "simclr":
            return self.loss.gn_inner(z1, z2, u1, u2, analytic=True, state=state)
        with torch.enable_grad():  # the generic path differentiates the inner map
            return self.loss.gn_inner(z1, z2, u1, u2, t1, t2, analytic=self.analytic)


def point_bytes(n_rows: int, rank: int, ssl_batch: int, objective: str, itemsize: int = 4) -> int:
    """Memory the kept linearisation points take: z of both views, plus SimCLR's unit rows, norms and
    2B×2B softmax per batch."""
    bs = max(min(ssl_batch, n_rows), 1)
    n_b = n_rows // bs
    per = 2 * bs * rank
    if objective == "simclr":
        per += 2 * bs * rank + 2 * bs + (2 * bs) ** 2
    return int(n_b * per * itemsize)


def to_landmarks(u: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ã = U_r B: eigenbasis coordinates back to per-landmark coefficients (m×r)."""
    return np.asarray(u, dtype=np.float64) @ np.asarray(b, dtype=np.float64)
