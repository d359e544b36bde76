"""One damped Gauss–Newton step on the SSL loss of the kernel model, by conjugate gradient.

L(Ã) = mean over fixed, seeded batches of views of loss(K¹_b Ã + γ, K²_b Ã + γ). The kernel model
is linear in Ã, so Jacobian products factor through the embeddings: J·D = (K¹D, K²D) followed by
the inner map's jvp in embedding space, Jᵀg = K¹ᵀg¹ + K²ᵀg². The curvature is the PSD
Gauss–Newton matrix G = mean_b J_bᵀ Q_b J_b (see `losses.py`); (G + λI) is never formed, only
applied (closed form for SimCLR, torch.func jvp/vjp otherwise), in float64. λ is a multiple of G's
mean eigenvalue (Hutchinson probes), fixed or chosen without labels at the peak of the spectral
entropy of ÃᵀÃ over a grid.
All λ candidates are solved by one multi-shift CG run (one product by G per iteration serves every
λ), and the linearisation point z = KÃ0 + γ of each batch can be kept between products, so a
product costs four B×m×r matmuls instead of six. A step is accepted only if it lowers L;
otherwise its length is halved (backtracking).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...progress import info, progress
from ...seeding import numpy_rng, torch_generator
from .kernel_model import spectral_entropy
from .losses import KernelSSLLoss


@dataclass
class StepConfig:
    """How the Gauss–Newton step is taken."""

    lam: float | str = "auto"  # λ as a multiple of `lambda_scale`, or "auto" (chosen over lambda_grid by `lambda_rule`)
    lambda_grid: tuple = (0.1, 1.0, 10.0)  # multiples of `lambda_scale` tried by "auto"
    cg_tol: float = 1e-6  # relative residual at which CG stops
    cg_max_iter: int = 50  # CG iterations at most, shared by all λ candidates (each is one pass over the views)
    hutchinson_probes: int = 8  # Rademacher probes for the mean GN eigenvalue (lambda_scale="mean-eigenvalue" only)
    max_backtracks: int = 10  # step-length halvings before a step is rejected
    seed: int = 0
    lambda_scale: str = "gradient-curvature"  # unit of λ: gᵀGg/gᵀg (free from CG's first product) or "mean-eigenvalue" (Hutchinson tr(G)/(mr))
    lambda_rule: str = "heldout"  # "auto": lowest held-out SSL loss on fresh views ("heldout"), or the spectral-entropy peak ("entropy")


LAMBDA_SCALES = ("gradient-curvature", "mean-eigenvalue")
LAMBDA_RULES = ("heldout", "entropy")
TIE_RTOL = 1e-9  # held-out losses this close (relative) count as equal: the larger λ (the more damped step) wins


class ViewBatches:
    """Kernel rows of two views (n×m each) cut into fixed, seeded SSL batches."""

    def __init__(self, k1: np.ndarray, k2: np.ndarray, batch_size: int, seed: int = 0, device: str = "cpu"):
        if k1.shape != k2.shape:
            raise ValueError("both views need kernel rows of the same shape")
        n = len(k1)
        self.k1, self.k2, self.device = k1, k2, device
        self.batches = ssl_batches(n, batch_size, seed)
        self.dtype = np.float64  # what get() returns (the eigenbasis rotation reads float32)

    def __len__(self) -> int:
        return len(self.batches)

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.batches[i]
        t = lambda k: torch.as_tensor(np.asarray(k[rows], dtype=self.dtype), device=self.device)  # noqa: E731
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
        self.dtype = np.float64  # what get() returns (the eigenbasis rotation reads float32)
        self._buf = None

    def __len__(self) -> int:
        return len(self.mat) // self.bs if self.bs else 0

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._buf is None or self._buf.dtype != self.dtype:
            self._buf = np.empty((self.bs, 2 * self.m), dtype=self.dtype)
        k = self.mat.read_rows(i * self.bs, (i + 1) * self.bs, out=self._buf)
        t = torch.as_tensor(k, device=self.device)
        return t[:, : self.m].clone(), t[:, self.m :].clone()


class KernelLossProblem:
    """L(Ã), ∇L(Ã) and Gauss–Newton products at a fixed linearisation point.

    With `keep_point`, each batch's z = (K¹Ã0 + γ, K²Ã0 + γ) is computed once and kept (2·S·r
    float64 values for S step samples), which saves two of a product's six B×m×r matmuls."""

    def __init__(self, loss: KernelSSLLoss, views: ViewBatches, a0: np.ndarray, gamma: np.ndarray, keep_point: bool = False):
        self.loss, self.views = loss, views
        dev = views.device
        self.a0 = torch.as_tensor(a0, dtype=torch.float64, device=dev)
        self.gamma = torch.as_tensor(gamma, dtype=torch.float64, device=dev)
        self._points: dict | None = {} if keep_point else None
        self.analytic = True  # the inner map's closed-form GN product where one exists (False: torch.func jvp/vjp)

    def _point(self, i: int, k1, k2) -> tuple[torch.Tensor, torch.Tensor]:
        """z of batch i at Ã0 (also BYOL's stop-gradient targets)."""
        if self._points is not None and i in self._points:
            return self._points[i]
        z = (k1 @ self.a0 + self.gamma, k2 @ self.a0 + self.gamma)
        if self._points is not None:
            self._points[i] = z
        return z

    def _targets(self, i: int, k1, k2):
        return self._point(i, k1, k2) if self.loss.needs_target else (None, None)

    def value(self, a: torch.Tensor) -> float:
        total = 0.0
        with torch.no_grad():
            for i in range(len(self.views)):
                k1, k2 = self.views.get(i)
                t1, t2 = self._targets(i, k1, k2)
                total += float(self.loss.loss(k1 @ a + self.gamma, k2 @ a + self.gamma, t1, t2))
        return total / len(self.views)

    def value_and_grad(self, a: torch.Tensor) -> tuple[float, torch.Tensor]:
        total, grad = 0.0, torch.zeros_like(a)
        for i in range(len(self.views)):
            k1, k2 = self.views.get(i)
            t1, t2 = self._targets(i, k1, k2)
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
            z1, z2 = self._point(i, k1, k2)
            t1, t2 = (z1, z2) if self.loss.needs_target else (None, None)
            g1, g2 = self.loss.gn_inner(z1, z2, k1 @ d, k2 @ d, t1, t2, analytic=self.analytic)
            out += k1.T @ g1 + k2.T @ g2
        return out / len(self.views)


def conjugate_gradient(matvec, b: torch.Tensor, *, tol: float = 1e-6, max_iter: int = 50, x0: torch.Tensor | None = None):
    """Solve A x = b for SPD A given only `matvec`; returns (x, true relative residual, iterations).
    Plain CG: the step uses `shifted_conjugate_gradient`; this is its reference in tests and benches."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    bnorm = float(torch.linalg.norm(b)) or 1.0
    rs = float((r * r).sum())
    it = 0
    while it < max_iter and rs**0.5 / bnorm > tol:
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


def shifted_conjugate_gradient(matvec, b: torch.Tensor, shifts, *, tol: float = 1e-6, max_iter: int = 50, state: dict | None = None, on_iteration=None):
    """Solve (A + σ_j I) x_j = b for every shift σ_j ≥ 0 (A SPD, given only `matvec`) with ONE product
    by A per iteration: multi-shift CG (CG-M, Jegerlehner 1996). CG runs on the smallest shift, the
    slowest to converge; the other systems' residuals stay collinear with its residual, r_j = ζ_j r,
    so their iterates follow from scalar recurrences. A shift stops updating once its relative
    residual ‖b − (A + σ_j)x_j‖/‖b‖ = |ζ_j|‖r‖/‖b‖ is ≤ tol.

    Returns (xs, residuals, iterations) in the order of `shifts`; residuals are the recurrence's.
    `on_iteration(snapshot)` is called after every iteration; `snapshot()`, called before the next
    iteration, copies the state into a dict of float64 arrays from which `state=` resumes the solve
    bit-identically (copied only when asked: a checkpoint every 30 s, not every iteration)."""
    sig = np.asarray([float(x) for x in shifts], dtype=np.float64)
    if sig.size == 0 or not np.all(np.isfinite(sig)) or (sig < 0).any():
        raise ValueError("shifted CG needs one or more finite, non-negative shifts")
    base = float(sig.min())
    delta = sig - base
    bnorm = float(torch.linalg.norm(b)) or 1.0
    k = len(sig)
    if state is None:
        r = b.clone()
        st = {
            "r": r,
            "p": r.clone(),
            "xs": torch.zeros((k, *b.shape), dtype=b.dtype, device=b.device),
            "ps": r.expand(k, *b.shape).clone(),
            "zeta": np.ones(k),
            "zeta_prev": np.ones(k),
            "iters": np.zeros(k),
            "done": np.zeros(k),
            "scalars": np.array([float((r * r).sum()), 1.0, 0.0, 0.0]),
        }
        st["done"][:] = st["scalars"][0] ** 0.5 / bnorm <= tol
    else:
        st = {key: (torch.as_tensor(np.array(v), device=b.device) if key in ("r", "p", "xs", "ps") else np.array(v, dtype=np.float64)) for key, v in state.items()}
    r, p, xs, ps = st["r"], st["p"], st["xs"], st["ps"]
    zeta, zeta_prev, iters, done = st["zeta"], st["zeta_prev"], st["iters"], st["done"]
    rr, alpha_prev, beta_prev, it = (float(v) for v in st["scalars"])
    while it < max_iter and not done.all() and rr > 0:
        ap = matvec(p) + base * p
        alpha = rr / float((p * ap).sum())
        zeta_next = zeta.copy()
        for j in np.flatnonzero(done == 0):
            zeta_next[j] = zeta[j] * zeta_prev[j] * alpha_prev / (alpha * beta_prev * (zeta_prev[j] - zeta[j]) + zeta_prev[j] * alpha_prev * (1.0 + delta[j] * alpha))
            xs[j] += (alpha * zeta_next[j] / zeta[j]) * ps[j]
        r = r - alpha * ap
        rr_new = float((r * r).sum())
        beta = rr_new / rr
        it += 1
        for j in np.flatnonzero(done == 0):
            ps[j] = zeta_next[j] * r + (beta * (zeta_next[j] / zeta[j]) ** 2) * ps[j]
            zeta_prev[j], zeta[j] = zeta[j], zeta_next[j]
            iters[j] = it
            done[j] = abs(zeta[j]) * rr_new**0.5 / bnorm <= tol
        p = r + beta * p
        rr, alpha_prev, beta_prev = rr_new, alpha, beta
        if on_iteration is not None:
            live = {"r": r, "p": p, "xs": xs, "ps": ps, "zeta": zeta, "zeta_prev": zeta_prev, "iters": iters, "done": done}
            scalars = np.array([rr, alpha_prev, beta_prev, it])
            on_iteration(
                lambda live=live, scalars=scalars: {**{key: np.array(v.cpu().numpy() if torch.is_tensor(v) else v, dtype=np.float64, copy=True) for key, v in live.items()}, "scalars": scalars}
            )
    res = np.abs(zeta) * rr**0.5 / bnorm
    return [xs[j] for j in range(k)], [float(v) for v in res], [int(v) for v in iters]


def mean_gn_eigenvalue(problem: KernelLossProblem, probes: int, seed: int) -> float:
    """tr(G)/(m·r) from Rademacher probes (Hutchinson)."""
    g = torch_generator(seed, "krepes", "hutchinson")
    shape = tuple(problem.a0.shape)
    est = []
    for _ in range(max(1, probes)):
        v = (torch.randint(0, 2, shape, generator=g).to(torch.float64) * 2 - 1).to(problem.a0.device)
        est.append(float((v * problem.gn_matvec(v)).sum()))
    return float(np.mean(est)) / (shape[0] * shape[1])


def curvature_along(problem, v: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(vᵀGv / vᵀv, G·v): the Rayleigh quotient of the GN matrix along v, and the product it took."""
    gv = problem.gn_matvec(v)
    vv = float((v * v).sum())
    return (float((v * gv).sum()) / vv if vv > 0 else 0.0), gv


class _FirstProductKept:
    """`matvec` that answers one known product (G·v from the curvature estimate) without recomputing it:
    CG's first product is G·(−∇L), the same vector."""

    def __init__(self, matvec, v: torch.Tensor | None, gv: torch.Tensor | None):
        self.matvec, self.v, self.gv = matvec, v, gv

    def __call__(self, d: torch.Tensor) -> torch.Tensor:
        if self.v is not None and d.shape == self.v.shape and torch.equal(d, self.v):
            out, self.v, self.gv = self.gv, None, None
            return out.clone()
        return self.matvec(d)


@dataclass
class StepResult:
    delta: np.ndarray  # accepted ΔÃ in the problem's coordinates (zeros if rejected)
    accepted: bool
    lam: float  # absolute damping
    lam_multiple: float  # λ / lambda_scale
    mean_eigenvalue: float | None  # Hutchinson tr(G)/(mr) (only with lambda_scale="mean-eigenvalue")
    loss_before: float
    loss_after: float
    cg_residual: float
    cg_iterations: int
    step_length: float
    grad_norm: float
    candidates: list = field(default_factory=list)  # per λ: multiple, lam, loss_after, heldout_loss, accepted, entropy, cg_residual, step_length, delta
    lambda_chosen_by: str = "fixed"
    curvature: float | None = None  # gᵀGg/gᵀg along g = ∇L
    lambda_scale: str = "gradient-curvature"
    scale_value: float = 0.0  # the λ unit's value (curvature or mean eigenvalue)
    lambda_reason: str = ""
    heldout_loss_before: float | None = None  # held-out SSL loss at the PC point (ΔÃ = 0)
    heldout_loss_after: float | None = None

    def summary(self) -> dict:
        return {
            "accepted": self.accepted,
            "lambda": self.lam,
            "lambda_multiple": self.lam_multiple,
            "mean_gn_eigenvalue": self.mean_eigenvalue,
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
            "cg_residual": self.cg_residual,
            "cg_iterations": self.cg_iterations,
            "step_length": self.step_length,
            "grad_norm": self.grad_norm,
            "lambda_chosen_by": self.lambda_chosen_by,
            "lambda_reason": self.lambda_reason,
            "lambda_scale": self.lambda_scale,
            "lambda_scale_value": self.scale_value,
            "curvature_along_gradient": self.curvature,
            "heldout_loss_before": self.heldout_loss_before,
            "heldout_loss_after": self.heldout_loss_after,
            "lambda_curve": [{k: v for k, v in c.items() if k != "delta"} for c in self.candidates],
        }


class StepCheckpoint:
    """Where a step keeps its finished parts (the start point, then each λ candidate), so a step
    interrupted after some candidates resumes at the next one. This base class keeps nothing."""

    def load(self, name: str) -> dict | None:
        return None

    def save(self, name: str, arrays: dict) -> None:
        pass


def _backtrack(problem, sol: torch.Tensor, loss0: float, cfg: StepConfig):
    """The longest step t·sol (t = 1, 1/2, …) that lowers L: (delta, loss, accepted, t)."""
    t = 1.0
    for _ in range(cfg.max_backtracks + 1):
        val = problem.value(problem.a0 + t * sol)
        if np.isfinite(val) and val < loss0:
            return t * sol, val, True, t
        t *= 0.5
    return torch.zeros_like(sol), loss0, False, 0.0


def choose_candidate(cands: list, rule: str) -> tuple[dict, str]:
    """The λ candidate `rule` picks among the accepted ones (all, if none was accepted), and why.

    heldout: the lowest held-out SSL loss; entropy: the spectral-entropy peak of ÃᵀÃ. Ties (within
    TIE_RTOL relative) go to the larger λ — the more damped, shorter step."""
    pool = [c for c in cands if c["accepted"]] or cands
    key = "heldout_loss" if rule == "heldout" else "entropy"
    sign = 1.0 if rule == "heldout" else -1.0  # minimise the held-out loss, maximise the entropy
    best_val = min(sign * c[key] for c in pool)
    tied = [c for c in pool if sign * c[key] <= best_val + TIE_RTOL * abs(best_val)]
    best = max(tied, key=lambda c: c["multiple"])
    what = "held-out SSL loss" if rule == "heldout" else "spectral entropy of ÃᵀÃ"
    others = ", ".join(f"{c['multiple']:g}×: {c[key]:.6g}" for c in cands)
    why = (
        f"{'lowest' if rule == 'heldout' else 'highest'} {what} among the {'accepted ' if any(c['accepted'] for c in cands) else ''}"
        f"candidates ({others}){'; ties go to the larger λ' if len(tied) > 1 else ''}"
    )
    return best, why


def gauss_newton_step(problem, cfg: StepConfig, checkpoint: StepCheckpoint | None = None, save_every_s: float = 30.0, heldout=None) -> StepResult:
    """The damped GN step from Ã0, with λ fixed or chosen without labels.

    λ = multiple × scale, the scale being the curvature of G along ∇L (its Rayleigh quotient, from
    the product CG needs first anyway) or Hutchinson's mean eigenvalue. Every λ candidate is solved
    by the same multi-shift CG run (`shifted_conjugate_gradient`), then backtracked on its own; with
    lam="auto" the candidate is chosen by the held-out SSL loss of `heldout` (the same kind of
    problem on a fresh augmentation draw: one loss evaluation per candidate) or, without it or with
    lambda_rule="entropy", by the spectral-entropy peak. `problem` is a `KernelLossProblem` or an
    `EigenbasisProblem` (anything with a0, value, value_and_grad, gn_matvec). With a `checkpoint`,
    the loss, gradient and λ scale at Ã0, the CG state (at most every `save_every_s` seconds), the
    solutions and every backtracked candidate are saved as they complete and reused by a rerun
    (bit-identical: saved in float64)."""
    if cfg.lambda_scale not in LAMBDA_SCALES:
        raise ValueError(f"lambda_scale must be one of {LAMBDA_SCALES}, got {cfg.lambda_scale!r}")
    if cfg.lambda_rule not in LAMBDA_RULES:
        raise ValueError(f"lambda_rule must be one of {LAMBDA_RULES}, got {cfg.lambda_rule!r}")
    ckpt = checkpoint or StepCheckpoint()
    dev = problem.a0.device
    start = ckpt.load("start")
    kept = (None, None)
    if start is None:
        loss0, grad = problem.value_and_grad(problem.a0)
        curv, g_grad = curvature_along(problem, -grad)
        kept = (-grad, g_grad)
        mean_eig = max(mean_gn_eigenvalue(problem, cfg.hutchinson_probes, cfg.seed), 1e-300) if cfg.lambda_scale == "mean-eigenvalue" else float("nan")
        ckpt.save("start", {"grad": grad.cpu().numpy(), "scalars": np.array([loss0, mean_eig, curv], dtype=np.float64)})
    else:
        (loss0, mean_eig, curv), grad = (float(v) for v in start["scalars"]), torch.as_tensor(start["grad"], device=dev)
    scale = mean_eig if cfg.lambda_scale == "mean-eigenvalue" else max(curv, 1e-300)
    multiples = sorted((float(x) for x in cfg.lambda_grid), reverse=True) if cfg.lam == "auto" else [float(cfg.lam)]
    lams = [mult * scale for mult in multiples]
    solved = ckpt.load("solve")
    partial = None if solved is not None or start is None else ckpt.load("cg-state")
    if start is not None:
        finished = sum(ckpt.load(f"lambda-{i}") is not None for i in range(len(multiples))) if solved is not None else 0
        where = (
            f"CG finished, {finished} of {len(multiples)} λ candidates already backtracked"
            if solved is not None
            else f"CG resumes at iteration {int(partial['scalars'][3])}"
            if partial is not None
            else "start point reused"
        )
        info(f"krepes: resuming the Gauss–Newton step of an interrupted run ({where})")
    if solved is None:
        bar = progress(desc="krepes gauss-newton (CG)", total=cfg.cg_max_iter, initial=int(partial["scalars"][3]) if partial else 0)
        last = [time.monotonic()]

        def on_iteration(snapshot):
            bar.update(1)
            if time.monotonic() - last[0] >= save_every_s:
                ckpt.save("cg-state", snapshot())
                last[0] = time.monotonic()

        matvec = _FirstProductKept(problem.gn_matvec, *kept)
        try:
            xs, residuals, iters = shifted_conjugate_gradient(matvec, -grad, lams, tol=cfg.cg_tol, max_iter=cfg.cg_max_iter, state=partial, on_iteration=on_iteration)
        finally:
            bar.close()
        sols = np.stack([x.cpu().numpy() for x in xs])
        ckpt.save("solve", {"sols": sols, "residuals": np.array(residuals), "iters": np.array(iters, dtype=np.float64)})
    else:
        sols, residuals, iters = solved["sols"], [float(v) for v in solved["residuals"]], [int(v) for v in solved["iters"]]
    a0 = problem.a0.cpu().numpy()
    rule = cfg.lambda_rule if (cfg.lam == "auto" and heldout is not None) else "entropy"
    h_before = None
    if heldout is not None:
        done = ckpt.load("heldout-before")
        if done is None:
            h_before = heldout.value(heldout.a0)
            ckpt.save("heldout-before", {"scalars": np.array([h_before], dtype=np.float64)})
        else:
            h_before = float(done["scalars"][0])
    cands = []
    for i, (mult, lam) in enumerate(zip(multiples, lams)):
        done = ckpt.load(f"lambda-{i}")
        if done is None:
            delta, val, ok, t = _backtrack(problem, torch.as_tensor(sols[i], device=dev), loss0, cfg)
            hval = float("nan") if heldout is None else (heldout.value(heldout.a0 + delta.to(heldout.a0.device)) if ok else h_before)
            d = delta.cpu().numpy()
            ckpt.save(f"lambda-{i}", {"delta": d, "scalars": np.array([val, float(ok), t, hval], dtype=np.float64)})
        else:
            d = done["delta"]
            val, ok, t, hval = (float(v) for v in done["scalars"])
            ok = bool(ok)
        cands.append(
            {
                "multiple": mult,
                "lambda": lam,
                "loss_after": val,
                "heldout_loss": None if heldout is None else hval,
                "accepted": ok,
                "step_length": t,
                "cg_residual": residuals[i],
                "cg_iterations": iters[i],
                "entropy": spectral_entropy(a0 + d),
                "delta": d,
            }
        )
    if cfg.lam == "auto":
        best, why = choose_candidate(cands, rule)
        chosen_by = "held-out SSL loss" if rule == "heldout" else "spectral-entropy peak"
    else:
        best, why, chosen_by = cands[0], f"fixed by the user ({multiples[0]:g}× the {cfg.lambda_scale})", "fixed"
    return StepResult(
        delta=best["delta"],
        accepted=best["accepted"],
        lam=best["lambda"],
        lam_multiple=best["multiple"],
        mean_eigenvalue=None if not np.isfinite(mean_eig) else mean_eig,
        loss_before=loss0,
        loss_after=best["loss_after"],
        cg_residual=best["cg_residual"],
        cg_iterations=best["cg_iterations"],
        step_length=best["step_length"],
        grad_norm=float(torch.linalg.norm(grad)),
        candidates=cands,
        lambda_chosen_by=chosen_by,
        curvature=curv,
        lambda_scale=cfg.lambda_scale,
        scale_value=scale,
        lambda_reason=why,
        heldout_loss_before=h_before,
        heldout_loss_after=best["heldout_loss"],
    )
