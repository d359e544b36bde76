"""Independent dense references for small problems (what every fast path is tested against).

- `dense_gauss_newton`: JᵀQJ formed explicitly: J by torch.autograd.functional.jacobian of the
  inner map with respect to vec(Ã), Q by torch.autograd.functional.hessian of the outer loss
  (not the analytic Q the CG path uses), averaged over the same batches.
- `dense_gradient`: ∇L by autograd.functional.jacobian of the full loss.
- `dense_step`: −(G + λI)⁻¹∇L by a direct solve.
- `exact_kernel_coordinates`: the full kernel model — the rank-r eigendecomposition of K_nn
  itself, whose training coordinates V_r Λ_r^{1/2} Nyström with m = n must reproduce.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.functional import hessian, jacobian

from .losses import KernelSSLLoss


def _batch_fns(loss: KernelSSLLoss, k1, k2, a0, gamma):
    t1 = k1 @ a0 + gamma if loss.needs_target else None
    t2 = k2 @ a0 + gamma if loss.needs_target else None
    shapes: list = []

    def inner_flat(a_vec):
        a = a_vec.view(a0.shape)
        h = loss.inner(k1 @ a + gamma, k2 @ a + gamma, t1, t2)
        shapes[:] = [t.shape for t in h]
        return torch.cat([t.reshape(-1) for t in h])

    def outer_flat(h_vec):
        parts, s = [], 0
        for shp in shapes:
            n = int(np.prod(shp))
            parts.append(h_vec[s : s + n].view(shp))
            s += n
        return loss.outer(tuple(parts))

    def full(a_vec):
        a = a_vec.view(a0.shape)
        z1, z2 = k1 @ a + gamma, k2 @ a + gamma
        return loss.loss(z1, z2, t1, t2)

    return inner_flat, outer_flat, full


def _tensors(k1, k2, rows, a0, gamma):
    f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64))  # noqa: E731
    return f(k1[rows]), f(k2[rows]), f(a0), f(gamma)


def dense_gauss_newton(loss: KernelSSLLoss, k1, k2, batches, a0, gamma) -> np.ndarray:
    """G = mean_b J_bᵀ Q_b J_b as a dense (m·r)×(m·r) matrix (row-major vec of Ã)."""
    p = int(np.prod(np.shape(a0)))
    g = torch.zeros(p, p, dtype=torch.float64)
    for rows in batches:
        tk1, tk2, ta0, tg = _tensors(k1, k2, rows, a0, gamma)
        inner_flat, outer_flat, _ = _batch_fns(loss, tk1, tk2, ta0, tg)
        a_vec = ta0.reshape(-1).clone()
        j = jacobian(inner_flat, a_vec, vectorize=True)  # H×p
        h = inner_flat(a_vec).detach()
        q = hessian(outer_flat, h, vectorize=True)  # H×H
        g += j.T @ q @ j
    return (g / len(batches)).numpy()


def dense_gradient(loss: KernelSSLLoss, k1, k2, batches, a0, gamma, a=None) -> tuple[float, np.ndarray]:
    a = a0 if a is None else a
    total, grad = 0.0, None
    for rows in batches:
        tk1, tk2, ta0, tg = _tensors(k1, k2, rows, a0, gamma)
        _, _, full = _batch_fns(loss, tk1, tk2, ta0, tg)
        a_vec = torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(-1)
        total += float(full(a_vec))
        gb = jacobian(full, a_vec)
        grad = gb if grad is None else grad + gb
    return total / len(batches), (grad / len(batches)).numpy().reshape(np.shape(a0))


def dense_step(g_dense: np.ndarray, grad: np.ndarray, lam: float) -> np.ndarray:
    p = g_dense.shape[0]
    return -np.linalg.solve(g_dense + lam * np.eye(p), grad.reshape(-1)).reshape(grad.shape)


def exact_kernel_coordinates(k_nn: np.ndarray, rank: int) -> np.ndarray:
    """Rank-r coordinates V_r Λ_r^{1/2} of the full kernel (largest-|entry|-positive signs)."""
    k = np.asarray(k_nn, dtype=np.float64)
    ev, vec = np.linalg.eigh((k + k.T) / 2)
    order = np.argsort(ev)[::-1][:rank]
    ev, vec = ev[order], vec[:, order]
    sign = np.sign(vec[np.abs(vec).argmax(0), np.arange(vec.shape[1])])
    return vec * sign * np.sqrt(np.clip(ev, 0, None))
