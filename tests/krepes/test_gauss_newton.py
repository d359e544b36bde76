"""Gauss–Newton products, CG and the step against dense autograd references."""

import numpy as np
import pytest
import torch

from sslaudit.methods.krepes.dense_reference import dense_gauss_newton, dense_gradient, dense_step
from sslaudit.methods.krepes.gauss_newton import (
    KernelLossProblem,
    StepConfig,
    ViewBatches,
    conjugate_gradient,
    gauss_newton_step,
    mean_gn_eigenvalue,
    shifted_conjugate_gradient,
)
from sslaudit.methods.krepes.kernel_model import centring_offset
from sslaudit.methods.krepes.losses import KernelSSLLoss
from sslaudit.models.objectives import barlow_loss, byol_loss, nt_xent, vicreg_loss

OBJECTIVES = ["simclr", "barlow", "vicreg", "byol"]


def tiny_problem(objective, n=12, m=5, r=3, batch=6, seed=0, keep_point=False):
    """Kernel rows of two noisy views of n samples against m landmarks (a stand-in kernel)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 4))
    k1 = np.tanh(feats @ rng.normal(size=(4, m)))
    k2 = k1 + 0.3 * rng.normal(size=(n, m))
    a0 = rng.normal(size=(m, r)) * 0.5
    gamma = centring_offset(k1, a0)
    views = ViewBatches(k1, k2, batch, seed=seed)
    return KernelLossProblem(KernelSSLLoss(objective), views, a0, gamma, keep_point=keep_point), k1, k2, a0, gamma


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


@pytest.mark.parametrize("keep_point", [False, True])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_gn_product_equals_dense_jtqj(objective, keep_point):
    prob, k1, k2, a0, gamma = tiny_problem(objective, keep_point=keep_point)
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


@pytest.mark.parametrize("objective", ["simclr", "byol"])
def test_shifted_cg_solves_every_shift_like_a_dense_solve(objective):
    """One multi-shift CG run gives, for every λ, the direct solution of (G + λI)x = −∇L, and its
    recurrence residual is the true residual."""
    prob, k1, k2, a0, gamma = tiny_problem(objective, n=24, m=6, r=3, batch=8, seed=5)
    g_dense = dense_gauss_newton(prob.loss, k1, k2, prob.views.batches, a0, gamma)
    _, grad = prob.value_and_grad(prob.a0)
    mean_eig = np.trace(g_dense) / g_dense.shape[0]
    lams = [1000 * mean_eig, 10 * mean_eig, 0.1 * mean_eig, 0.01 * mean_eig]
    calls = []
    matvec = lambda d: calls.append(1) or prob.gn_matvec(d)  # noqa: E731
    xs, res, iters = shifted_conjugate_gradient(matvec, -grad, lams, tol=1e-11, max_iter=200)
    assert len(calls) == max(iters)  # one product per iteration, shared by all λ
    assert iters[0] < iters[-1]  # strongly damped systems converge first
    for lam, x, rr in zip(lams, xs, res):
        direct = dense_step(g_dense, grad.numpy(), lam)
        assert np.allclose(x.numpy(), direct, rtol=1e-7, atol=1e-10)
        true = np.linalg.norm(-grad.numpy().reshape(-1) - (g_dense + lam * np.eye(len(g_dense))) @ x.numpy().reshape(-1))
        assert rr <= 1e-11 and true / np.linalg.norm(grad.numpy()) == pytest.approx(rr, abs=1e-10)


def test_shifted_cg_with_one_shift_is_plain_cg_and_stops_at_max_iter():
    prob, *_ = tiny_problem("vicreg", n=24, m=6, r=3, batch=8, seed=6)
    _, grad = prob.value_and_grad(prob.a0)
    lam = 0.05
    (x,), (res,), (it,) = shifted_conjugate_gradient(prob.gn_matvec, -grad, [lam], tol=1e-9, max_iter=100)
    ref, ref_res, ref_it = conjugate_gradient(lambda d: prob.gn_matvec(d) + lam * d, -grad, tol=1e-9, max_iter=100)
    assert it == ref_it and np.allclose(x.numpy(), ref.numpy(), rtol=1e-9, atol=1e-12) and res == pytest.approx(ref_res, abs=1e-10)
    (x3,), (res3,), (it3,) = shifted_conjugate_gradient(prob.gn_matvec, -grad, [lam], tol=1e-12, max_iter=3)
    assert it3 == 3 and res3 > 1e-9  # capped, and says so
    zero, zres, zit = shifted_conjugate_gradient(prob.gn_matvec, torch.zeros_like(grad), [1.0, 2.0], max_iter=5)
    assert zit == [0, 0] and zres == [0.0, 0.0] and not any(z.any() for z in zero)
    with pytest.raises(ValueError):
        shifted_conjugate_gradient(prob.gn_matvec, -grad, [1.0, -1.0])


def test_shifted_cg_resumes_bit_identically_from_any_iteration():
    prob, *_ = tiny_problem("simclr", n=24, m=6, r=3, batch=8, seed=7)
    _, grad = prob.value_and_grad(prob.a0)
    lams = [1.0, 0.1, 0.01]
    states = []
    ref = shifted_conjugate_gradient(prob.gn_matvec, -grad, lams, tol=1e-14, max_iter=12, on_iteration=lambda snap: states.append(snap()))
    assert len(states) == 12
    for k in (0, 5, 10):
        saved = {key: np.array(v, copy=True) for key, v in states[k].items()}
        again = shifted_conjugate_gradient(prob.gn_matvec, -grad, lams, tol=1e-14, max_iter=12, state=saved)
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(again[0], ref[0]))
        assert again[1] == ref[1] and again[2] == ref[2]


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
    """An in-memory StepCheckpoint that can simulate a crash after a given number of save calls."""

    def __init__(self, crash_after=None):
        self.saved, self.crash_after, self.loads, self.saves = {}, crash_after, [], 0

    def load(self, name):
        self.loads.append(name)
        return self.saved.get(name)

    def save(self, name, arrays):
        self.saved[name] = {k: np.array(v, copy=True) for k, v in arrays.items()}
        self.saves += 1
        if self.crash_after is not None and self.saves >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_step_resumes_where_it_stopped():
    """Killed after the start point, during CG (after a saved CG state), or after some backtracked
    candidates, a rerun redoes none of the finished work and ends bit-identically."""
    prob, *_ = tiny_problem("simclr", n=16, batch=8)
    cfg = StepConfig(lam="auto", lambda_grid=(1.0, 10.0, 100.0), cg_max_iter=10, cg_tol=1e-14, hutchinson_probes=2)
    ref = gauss_newton_step(prob, cfg)
    n_iter = max(c["cg_iterations"] for c in ref.candidates)
    assert n_iter == 10
    for crash_after, expect in [(1, {"start"}), (4, {"start", "cg-state"}), (13, {"start", "cg-state", "solve", "lambda-0"})]:
        ckpt = DictCheckpoint(crash_after=crash_after)
        with pytest.raises(KeyboardInterrupt):
            gauss_newton_step(prob, cfg, ckpt, save_every_s=0.0)
        assert set(ckpt.saved) == expect
        resumed_at = int(ckpt.saved["cg-state"]["scalars"][3]) if "cg-state" in ckpt.saved else 0
        ckpt.crash_after = None
        products = []
        real = prob.gn_matvec
        prob.gn_matvec = lambda d: products.append(1) or real(d)
        try:
            again = gauss_newton_step(prob, cfg, ckpt, save_every_s=0.0)
        finally:
            del prob.gn_matvec
        assert len(products) == (0 if "solve" in expect else n_iter - resumed_at)  # finished work is not redone
        assert np.array_equal(again.delta, ref.delta) and again.loss_after == ref.loss_after and again.lam == ref.lam
        assert [c["loss_after"] for c in again.candidates] == [c["loss_after"] for c in ref.candidates]


def test_simclr_closed_form_gn_product_equals_the_autograd_path():
    g = torch.Generator().manual_seed(3)
    z1, z2, u1, u2 = (torch.randn(9, 5, generator=g, dtype=torch.float64) for _ in range(4))
    loss = KernelSSLLoss("simclr", {"temperature": 0.3})
    fast = loss.gn_inner(z1, z2, u1, u2)
    slow = loss.gn_inner(z1, z2, u1, u2, analytic=False)
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-13) for a, b in zip(fast, slow))
    prob, *_ = tiny_problem("simclr", n=16, batch=8)
    d = torch.randn(prob.a0.shape, generator=g, dtype=torch.float64)
    closed = prob.gn_matvec(d)
    prob.analytic = False
    assert torch.allclose(closed, prob.gn_matvec(d), rtol=1e-10, atol=1e-13)
