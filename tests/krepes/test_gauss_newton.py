"""Gauss–Newton products, CG and the step against dense autograd references."""
import numpy as np
import pytest
import torch

from sslaudit.methods.krepes.dense_reference import dense_gauss_newton, dense_gradient, dense_step
from sslaudit.methods.krepes.gauss_newton import (
    KernelLossProblem, StepConfig, ViewBatches, conjugate_gradient, gauss_newton_step, mean_gn_eigenvalue,
)
from sslaudit.methods.krepes.kernel_model import centring_offset
from sslaudit.methods.krepes.losses import KernelSSLLoss
from sslaudit.models.objectives import barlow_loss, byol_loss, nt_xent, vicreg_loss

OBJECTIVES = ["simclr", "barlow", "vicreg", "byol"]


def tiny_problem(objective, n=12, m=5, r=3, batch=6, seed=0):
    """Kernel rows of two noisy views of n samples against m landmarks (a stand-in kernel)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 4))
    k1 = np.tanh(feats @ rng.normal(size=(4, m)))
    k2 = k1 + 0.3 * rng.normal(size=(n, m))
    a0 = rng.normal(size=(m, r)) * 0.5
    gamma = centring_offset(k1, a0)
    views = ViewBatches(k1, k2, batch, seed=seed)
    return KernelLossProblem(KernelSSLLoss(objective), views, a0, gamma), k1, k2, a0, gamma


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_split_reproduces_the_training_loss(objective):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(8, 4, generator=g, dtype=torch.float64)
    loss = KernelSSLLoss(objective)
    if objective == "simclr":
        ref = nt_xent(z1, z2, 0.5)
    elif objective == "barlow":
        ref = barlow_loss(z1, z2)
    elif objective == "vicreg":
        ref = vicreg_loss(z1, z2)
    else:
        t1, t2 = z1 + 0.1, z2 - 0.2
        ref = byol_loss(z1, t2) + byol_loss(z2, t1)
        assert torch.allclose(loss.loss(z1, z2, t1, t2), ref)
        return
    assert torch.allclose(loss.loss(z1, z2), ref)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gn_product_equals_dense_jtqj(objective):
    prob, k1, k2, a0, gamma = tiny_problem(objective)
    g_dense = dense_gauss_newton(prob.loss, k1, k2, prob.views.batches, a0, gamma)
    assert np.allclose(g_dense, g_dense.T, atol=1e-10)
    assert np.linalg.eigvalsh(g_dense).min() > -1e-9  # PSD
    rng = np.random.default_rng(3)
    for _ in range(3):
        d = rng.normal(size=a0.shape)
        fast = prob.gn_matvec(torch.as_tensor(d)).numpy().reshape(-1)
        assert np.allclose(fast, g_dense @ d.reshape(-1), rtol=1e-8, atol=1e-10)
    val, grad = prob.value_and_grad(prob.a0)
    dval, dgrad = dense_gradient(prob.loss, k1, k2, prob.views.batches, a0, gamma)
    assert val == pytest.approx(dval, rel=1e-10)
    assert np.allclose(grad.numpy(), dgrad, atol=1e-10)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_cg_equals_direct_dense_solve(objective):
    prob, k1, k2, a0, gamma = tiny_problem(objective)
    g_dense = dense_gauss_newton(prob.loss, k1, k2, prob.views.batches, a0, gamma)
    _, grad = prob.value_and_grad(prob.a0)
    lam = 0.5 * np.trace(g_dense) / g_dense.shape[0] + 1e-3
    x, res, _ = conjugate_gradient(lambda d: prob.gn_matvec(d) + lam * d, -grad, tol=1e-12, max_iter=200)
    direct = dense_step(g_dense, grad.numpy(), lam)
    assert res < 1e-9
    assert np.allclose(x.numpy(), direct, rtol=1e-7, atol=1e-10)


def test_hutchinson_estimates_the_mean_eigenvalue():
    prob, k1, k2, a0, gamma = tiny_problem("barlow")
    g_dense = dense_gauss_newton(prob.loss, k1, k2, prob.views.batches, a0, gamma)
    est = mean_gn_eigenvalue(prob, probes=50, seed=0)
    assert est == pytest.approx(np.trace(g_dense) / g_dense.shape[0], rel=0.3)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_step_lowers_the_loss(objective):
    prob, *_ = tiny_problem(objective, n=16, batch=8)
    cfg = StepConfig(lam="auto", lambda_grid=(1.0, 10.0), cg_max_iter=10, hutchinson_probes=2)
    res = gauss_newton_step(prob, cfg)
    assert res.accepted and res.loss_after < res.loss_before
    assert res.loss_after == pytest.approx(prob.value(prob.a0 + torch.as_tensor(res.delta)))
    assert len(res.candidates) == 2 and res.lambda_chosen_by == "spectral-entropy peak"
    if objective == "simclr":
        again = gauss_newton_step(prob, cfg)
        assert np.array_equal(res.delta, again.delta)  # same seed, same result


def test_step_backtracks_or_rejects():
    """A nearly undamped step on SimCLR overshoots: it must be shortened or rejected, never raise L."""
    prob, *_ = tiny_problem("simclr", n=24, batch=8, seed=4)
    res = gauss_newton_step(prob, StepConfig(lam=1e-8, cg_max_iter=40, cg_tol=1e-12, max_backtracks=30, hutchinson_probes=2))
    assert res.loss_after <= res.loss_before
    if res.accepted:
        assert prob.value(prob.a0 + torch.as_tensor(res.delta)) < res.loss_before
    else:
        assert not res.delta.any()
    rej = gauss_newton_step(prob, StepConfig(lam=1e-8, cg_max_iter=40, max_backtracks=0, hutchinson_probes=2))
    if not rej.accepted:
        assert rej.loss_after == rej.loss_before and rej.step_length == 0.0


def test_batch_order_is_seeded_and_independent_of_compute_blocks():
    prob_a, *_ = tiny_problem("vicreg", n=20, batch=5, seed=2)
    prob_b, *_ = tiny_problem("vicreg", n=20, batch=5, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(prob_a.views.batches, prob_b.views.batches))
    assert sorted(np.concatenate(prob_a.views.batches).tolist()) == list(range(20))


class DictCheckpoint:
    """An in-memory StepCheckpoint that can simulate a crash after a given number of saves."""

    def __init__(self, crash_after=None):
        self.saved, self.crash_after, self.loads = {}, crash_after, []

    def load(self, name):
        self.loads.append(name)
        return self.saved.get(name)

    def save(self, name, arrays):
        self.saved[name] = {k: np.array(v, copy=True) for k, v in arrays.items()}
        if self.crash_after is not None and len(self.saved) >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_step_resumes_from_its_finished_candidates(monkeypatch):
    from sslaudit.methods.krepes import gauss_newton as gn

    prob, *_ = tiny_problem("simclr", n=16, batch=8)
    cfg = StepConfig(lam="auto", lambda_grid=(1.0, 10.0, 100.0), cg_max_iter=10, hutchinson_probes=2)
    ref = gauss_newton_step(prob, cfg)
    ckpt = DictCheckpoint(crash_after=3)  # start, λ = 100×, λ = 10× saved; killed before 1×
    with pytest.raises(KeyboardInterrupt):
        gauss_newton_step(prob, cfg, ckpt)
    assert set(ckpt.saved) == {"start", "lambda-0", "lambda-1"}
    ckpt.crash_after = None
    solved = []
    real = gn._solve_and_backtrack
    monkeypatch.setattr(gn, "_solve_and_backtrack", lambda problem, grad, loss0, lam, c, x0: solved.append(lam) or real(problem, grad, loss0, lam, c, x0))
    again = gauss_newton_step(prob, cfg, ckpt)
    assert len(solved) == 1 and solved[0] == pytest.approx(1.0 * again.mean_eigenvalue)  # only the missing λ was solved
    assert np.array_equal(again.delta, ref.delta) and again.loss_after == ref.loss_after and again.lam == ref.lam
    assert [c["loss_after"] for c in again.candidates] == [c["loss_after"] for c in ref.candidates]
