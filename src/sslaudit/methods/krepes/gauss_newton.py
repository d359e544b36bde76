"""One damped Gauss–Newton step on the SSL loss of the kernel model, by conjugate gradient.

L(Ã) = mean over fixed, seeded batches of views of loss(K¹_b Ã + γ, K²_b Ã + γ). The kernel model
is linear in Ã, so Jacobian products factor through the embeddings: J·D = (K¹D, K²D) followed by
the inner map's jvp in embedding space, Jᵀg = K¹ᵀg¹ + K²ᵀg². The curvature is the PSD
Gauss–Newton matrix G = mean_b J_bᵀ Q_b J_b (see `losses.py`); (G + λI) is never formed, only
applied (torch.func jvp/vjp), in float64. λ is a multiple of G's mean eigenvalue (Hutchinson
probes), fixed or chosen without labels at the peak of the spectral entropy of ÃᵀÃ over a grid.
A step is accepted only if it lowers L; otherwise its length is halved (backtracking).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import jvp, vjp

from ...progress import info, progress
from ...seeding import numpy_rng, torch_generator
from .kernel_model import spectral_entropy
from .losses import KernelSSLLoss


@dataclass
class StepConfig:
    """How the Gauss–Newton step is taken."""

    lam: float | str = "auto"  # multiple of the mean GN eigenvalue, or "auto" (spectral-entropy peak over lambda_grid)
    lambda_grid: tuple = (1.0, 10.0, 100.0, 1000.0)  # multiples of the mean GN eigenvalue tried by "auto"
    cg_tol: float = 1e-6  # relative residual at which CG stops
    cg_max_iter: int = 50  # CG iterations at most (each is one pass over the views)
    hutchinson_probes: int = 8  # Rademacher probes for the mean GN eigenvalue
    max_backtracks: int = 10  # step-length halvings before a step is rejected
    seed: int = 0


class ViewBatches:
    """Kernel rows of two views (n×m each) cut into fixed, seeded SSL batches."""

    def __init__(self, k1: np.ndarray, k2: np.ndarray, batch_size: int, seed: int = 0, device: str = "cpu"):
        if k1.shape != k2.shape:
            raise ValueError("both views need kernel rows of the same shape")
        n = len(k1)
        self.k1, self.k2, self.device = k1, k2, device
        self.batches = ssl_batches(n, batch_size, seed)

    def __len__(self) -> int:
        return len(self.batches)

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.batches[i]
        t = lambda k: torch.as_tensor(np.asarray(k[rows], dtype=np.float64), device=self.device)  # noqa: E731
        return t(self.k1), t(self.k2)


def ssl_batches(n: int, batch_size: int, seed: int = 0) -> list[np.ndarray]:
    """The fixed, seeded SSL batches (sorted positions; the remainder smaller than a batch is dropped)."""
    bs = min(int(batch_size), n)
    order = numpy_rng(seed, "krepes", "ssl-batches").permutation(n)
    return [np.sort(order[s : s + bs]) for s in range(0, n - bs + 1, bs)]


def batch_order(n: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """Positions in SSL-batch order: batch i is [i·B, (i+1)·B) of the result."""
    b = ssl_batches(n, batch_size, seed)
    return np.concatenate(b) if b else np.zeros(0, dtype=np.int64)


class StoredViewBatches:
    """The same batches as `ViewBatches`, read from a stored n_used×2m matrix [K¹ | K²] whose rows are
    already in batch order (see `batch_order`): each batch is one contiguous float32 read, cast to float64."""

    def __init__(self, mat, batch_size: int, device: str = "cpu"):
        self.mat, self.device = mat, device
        self.bs = min(int(batch_size), len(mat)) if len(mat) else int(batch_size)
        self.m = mat.shape[1] // 2
        self._buf = np.empty((self.bs, 2 * self.m), dtype=np.float64)

    def __len__(self) -> int:
        return len(self.mat) // self.bs if self.bs else 0

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.mat.read_rows(i * self.bs, (i + 1) * self.bs, out=self._buf)
        t = torch.as_tensor(k, device=self.device)
        return t[:, : self.m].clone(), t[:, self.m :].clone()


class KernelLossProblem:
    """L(Ã), ∇L(Ã) and Gauss–Newton products at a fixed linearisation point."""

    def __init__(self, loss: KernelSSLLoss, views: ViewBatches, a0: np.ndarray, gamma: np.ndarray):
        self.loss, self.views = loss, views
        dev = views.device
        self.a0 = torch.as_tensor(a0, dtype=torch.float64, device=dev)
        self.gamma = torch.as_tensor(gamma, dtype=torch.float64, device=dev)

    def _targets(self, k1, k2):
        if not self.loss.needs_target:
            return None, None
        return k1 @ self.a0 + self.gamma, k2 @ self.a0 + self.gamma

    def value(self, a: torch.Tensor) -> float:
        total = 0.0
        with torch.no_grad():
            for i in range(len(self.views)):
                k1, k2 = self.views.get(i)
                t1, t2 = self._targets(k1, k2)
                total += float(self.loss.loss(k1 @ a + self.gamma, k2 @ a + self.gamma, t1, t2))
        return total / len(self.views)

    def value_and_grad(self, a: torch.Tensor) -> tuple[float, torch.Tensor]:
        total, grad = 0.0, torch.zeros_like(a)
        for i in range(len(self.views)):
            k1, k2 = self.views.get(i)
            t1, t2 = self._targets(k1, k2)
            z1 = (k1 @ a + self.gamma).requires_grad_(True)
            z2 = (k2 @ a + self.gamma).requires_grad_(True)
            val = self.loss.loss(z1, z2, t1, t2)
            g1, g2 = torch.autograd.grad(val, (z1, z2))
            total += float(val.detach())
            grad += k1.T @ g1 + k2.T @ g2
        b = len(self.views)
        return total / b, grad / b

    def gn_matvec(self, d: torch.Tensor) -> torch.Tensor:
        """G·d at Ã0 (without damping)."""
        out = torch.zeros_like(d)
        for i in range(len(self.views)):
            k1, k2 = self.views.get(i)
            t1, t2 = self._targets(k1, k2)
            z1, z2 = k1 @ self.a0 + self.gamma, k2 @ self.a0 + self.gamma
            inner = lambda u1, u2: self.loss.inner(u1, u2, t1, t2)  # noqa: E731
            h, u = jvp(inner, (z1, z2), (k1 @ d, k2 @ d))
            _, back = vjp(inner, z1, z2)
            g1, g2 = back(self.loss.q_apply(h, u))
            out += k1.T @ g1 + k2.T @ g2
        return out / len(self.views)


def conjugate_gradient(matvec, b: torch.Tensor, *, tol: float = 1e-6, max_iter: int = 50, x0: torch.Tensor | None = None):
    """Solve A x = b for SPD A given only `matvec`; returns (x, relative residual, iterations)."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    bnorm = float(torch.linalg.norm(b)) or 1.0
    rs = float((r * r).sum())
    it = 0
    while it < max_iter and rs ** 0.5 / bnorm > tol:
        it += 1
        ap = matvec(p)
        alpha = rs / float((p * ap).sum())
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float((r * r).sum())
        p = r + (rs_new / rs) * p
        rs = rs_new
    true_res = float(torch.linalg.norm(b - matvec(x))) / bnorm
    return x, true_res, it


def mean_gn_eigenvalue(problem: KernelLossProblem, probes: int, seed: int) -> float:
    """tr(G)/(m·r) from Rademacher probes (Hutchinson)."""
    g = torch_generator(seed, "krepes", "hutchinson")
    shape = tuple(problem.a0.shape)
    est = []
    for _ in range(max(1, probes)):
        v = (torch.randint(0, 2, shape, generator=g).to(torch.float64) * 2 - 1).to(problem.a0.device)
        est.append(float((v * problem.gn_matvec(v)).sum()))
    return float(np.mean(est)) / (shape[0] * shape[1])


@dataclass
class StepResult:
    delta: np.ndarray  # m×r accepted ΔÃ (zeros if rejected)
    accepted: bool
    lam: float  # absolute damping
    lam_multiple: float  # λ / mean GN eigenvalue
    mean_eigenvalue: float
    loss_before: float
    loss_after: float
    cg_residual: float
    cg_iterations: int
    step_length: float
    grad_norm: float
    candidates: list = field(default_factory=list)  # per λ: multiple, lam, loss_after, accepted, entropy, cg_residual, step_length, delta
    lambda_chosen_by: str = "fixed"

    def summary(self) -> dict:
        return {
            "accepted": self.accepted, "lambda": self.lam, "lambda_multiple": self.lam_multiple,
            "mean_gn_eigenvalue": self.mean_eigenvalue, "loss_before": self.loss_before, "loss_after": self.loss_after,
            "cg_residual": self.cg_residual, "cg_iterations": self.cg_iterations, "step_length": self.step_length,
            "grad_norm": self.grad_norm, "lambda_chosen_by": self.lambda_chosen_by,
            "lambda_curve": [{k: v for k, v in c.items() if k != "delta"} for c in self.candidates],
        }


class StepCheckpoint:
    """Where a step keeps its finished parts (the start point, then each λ candidate), so a step
    interrupted after some candidates resumes at the next one. This base class keeps nothing."""

    def load(self, name: str) -> dict | None:
        return None

    def save(self, name: str, arrays: dict) -> None:
        pass


def _solve_and_backtrack(problem, grad, loss0, lam, cfg, x0):
    a0 = problem.a0
    sol, res, iters = conjugate_gradient(lambda d: problem.gn_matvec(d) + lam * d, -grad, tol=cfg.cg_tol, max_iter=cfg.cg_max_iter, x0=x0)
    t = 1.0
    for _ in range(cfg.max_backtracks + 1):
        val = problem.value(a0 + t * sol)
        if np.isfinite(val) and val < loss0:
            return sol, t * sol, val, True, t, res, iters
        t *= 0.5
    return sol, torch.zeros_like(sol), loss0, False, 0.0, res, iters


def gauss_newton_step(problem: KernelLossProblem, cfg: StepConfig, checkpoint: StepCheckpoint | None = None) -> StepResult:
    """The damped GN step from Ã0, with λ fixed or chosen by the spectral-entropy peak.

    With a `checkpoint`, the loss, gradient and mean eigenvalue at Ã0 and every finished λ candidate
    are saved as they complete and reused by a rerun (bit-identical: saved in float64)."""
    ckpt = checkpoint or StepCheckpoint()
    dev = problem.a0.device
    start = ckpt.load("start")
    if start is None:
        loss0, grad = problem.value_and_grad(problem.a0)
        mean_eig = max(mean_gn_eigenvalue(problem, cfg.hutchinson_probes, cfg.seed), 1e-300)
        ckpt.save("start", {"grad": grad.cpu().numpy(), "scalars": np.array([loss0, mean_eig], dtype=np.float64)})
    else:
        (loss0, mean_eig), grad = (float(v) for v in start["scalars"]), torch.as_tensor(start["grad"], device=dev)
    multiples = sorted((float(x) for x in cfg.lambda_grid), reverse=True) if cfg.lam == "auto" else [float(cfg.lam)]
    if start is not None:
        finished = sum(ckpt.load(f"lambda-{i}") is not None for i in range(len(multiples)))
        info(f"krepes: resuming the Gauss–Newton step of an interrupted run ({finished} of {len(multiples)} λ candidates already solved)")
    a0 = problem.a0.cpu().numpy()
    cands, x0 = [], None
    for i, mult in enumerate(progress(multiples, desc="krepes gauss-newton", total=len(multiples))):
        lam = mult * mean_eig
        done = ckpt.load(f"lambda-{i}")
        if done is None:
            sol, delta, val, ok, t, res, iters = _solve_and_backtrack(problem, grad, loss0, lam, cfg, x0)
            sol, d = sol.cpu().numpy(), delta.cpu().numpy()
            ckpt.save(f"lambda-{i}", {"sol": sol, "delta": d, "scalars": np.array([mult, val, float(ok), t, res, iters], dtype=np.float64)})
        else:
            sol, d = done["sol"], done["delta"]
            _, val, ok, t, res, iters = (float(v) for v in done["scalars"])
            ok, iters = bool(ok), int(iters)
        x0 = torch.as_tensor(sol, device=dev)  # warm start the next (smaller) λ
        cands.append({"multiple": mult, "lambda": lam, "loss_after": val, "accepted": ok, "step_length": t,
                      "cg_residual": res, "cg_iterations": iters, "entropy": spectral_entropy(a0 + d), "delta": d})
    pool = [c for c in cands if c["accepted"]] or cands
    best = max(pool, key=lambda c: (c["entropy"], -c["multiple"])) if cfg.lam == "auto" else pool[0]
    return StepResult(
        delta=best["delta"], accepted=best["accepted"], lam=best["lambda"], lam_multiple=best["multiple"],
        mean_eigenvalue=mean_eig, loss_before=loss0, loss_after=best["loss_after"], cg_residual=best["cg_residual"],
        cg_iterations=best["cg_iterations"], step_length=best["step_length"], grad_norm=float(torch.linalg.norm(grad)),
        candidates=cands, lambda_chosen_by="spectral-entropy peak" if cfg.lam == "auto" else "fixed",
    )
