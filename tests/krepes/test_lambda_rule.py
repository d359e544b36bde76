"""The label-free λ rule: the held-out SSL loss on a fresh augmentation draw picks the planted-best λ."""

import numpy as np
import pytest

from sslaudit.kernels import fit_nystrom
from sslaudit.methods.krepes.dense_reference import dense_gauss_newton, dense_gradient, dense_step
from sslaudit.methods.krepes.gauss_newton import KernelLossProblem, StepConfig, ViewBatches, choose_candidate, gauss_newton_step
from sslaudit.methods.krepes.kernel_model import centring_offset
from sslaudit.methods.krepes.losses import KernelSSLLoss

GRID = tuple(float(v) for v in 10.0 ** np.arange(-3, 2.01, 0.5))


def shortcut_problem(seed=2, n=64, m=10, p=12, shared=1.0, view=0.2):
    """Kernel rows (linear kernel on p features, m landmarks) of SimCLR view pairs built to have an interior best λ:
    both training views of a sample share a per-sample shortcut vector, which a fresh draw replaces. A weakly damped
    step fits the shortcut (it identifies the training positives and does not transfer), a strongly damped one barely
    moves off the PC point; in between the step learns what the two draws share."""
    rng = np.random.default_rng(seed)
    lm, x = rng.normal(size=(m, p)), rng.normal(size=(n, p))
    sh = shared * rng.normal(size=(n, p))
    k1 = (x + sh + view * rng.normal(size=(n, p))) @ lm.T
    k2 = (x + sh + view * rng.normal(size=(n, p))) @ lm.T
    sh2 = shared * rng.normal(size=(n, p))
    h1 = (x + sh2 + view * rng.normal(size=(n, p))) @ lm.T
    h2 = (x + sh2 + view * rng.normal(size=(n, p))) @ lm.T
    basis = fit_nystrom(lm @ lm.T, rank=4)
    gamma = centring_offset(k1, basis.a0)
    return (k1, k2), (h1, h2), basis, gamma


def test_heldout_rule_recovers_the_planted_best_lambda():
    (k1, k2), (h1, h2), basis, gamma = shortcut_problem()
    loss = KernelSSLLoss("simclr")
    views, held_views = ViewBatches(k1, k2, 16, seed=0), ViewBatches(h1, h2, 16, seed=0)
    prob = KernelLossProblem(loss, views, basis.a0, gamma)
    held = KernelLossProblem(loss, held_views, basis.a0, gamma)
    res = gauss_newton_step(prob, StepConfig(lam="auto", lambda_grid=GRID, cg_max_iter=300, cg_tol=1e-12, max_backtracks=0), heldout=held)
    # independent reference: dense GN matrix and gradient, direct solves, held-out loss by autograd's path
    g = dense_gauss_newton(loss, k1, k2, views.batches, basis.a0, gamma)
    loss0, grad = dense_gradient(loss, k1, k2, views.batches, basis.a0, gamma)
    v = -grad.reshape(-1)
    rho = float(v @ g @ v / (v @ v))
    assert res.scale_value == pytest.approx(rho, rel=1e-9) and res.curvature == pytest.approx(rho, rel=1e-9)
    ref = {}
    for mult in GRID:
        d = dense_step(g, grad, mult * rho)
        assert dense_gradient(loss, k1, k2, views.batches, basis.a0, gamma, a=basis.a0 + d)[0] < loss0  # every candidate accepted
        ref[mult] = dense_gradient(loss, h1, h2, held_views.batches, basis.a0, gamma, a=basis.a0 + d)[0]
    best = min(ref, key=ref.get)
    # the problem has an interior best, clearly better than both ends of the grid
    assert GRID[0] < best < GRID[-1]
    assert ref[best] < min(ref[GRID[0]], ref[GRID[-1]]) - 1e-3
    assert res.lambda_chosen_by == "held-out SSL loss" and res.lam_multiple == best
    for c in res.candidates:
        assert c["heldout_loss"] == pytest.approx(ref[c["multiple"]], rel=1e-7)
    assert res.heldout_loss_before == pytest.approx(dense_gradient(loss, h1, h2, held_views.batches, basis.a0, gamma)[0], rel=1e-10)
    assert "held-out SSL loss" in res.lambda_reason
    # the training loss alone would have picked a weaker damping (a step that fits the shortcut)
    assert min(res.candidates, key=lambda c: c["loss_after"])["multiple"] < best
    again = gauss_newton_step(prob, StepConfig(lam="auto", lambda_grid=GRID, cg_max_iter=300, cg_tol=1e-12, max_backtracks=0), heldout=held)
    assert np.array_equal(again.delta, res.delta)  # same seed, same result


def test_ties_go_to_the_larger_lambda():
    cands = [
        {"multiple": 1.0, "heldout_loss": 2.0, "entropy": 3.0, "accepted": True},
        {"multiple": 0.1, "heldout_loss": 2.0, "entropy": 3.0, "accepted": True},
        {"multiple": 0.01, "heldout_loss": 1.0, "entropy": 1.0, "accepted": False},
    ]
    assert choose_candidate(cands, "heldout")[0]["multiple"] == 1.0  # the rejected 0.01 is not in the pool
    assert choose_candidate(cands, "entropy")[0]["multiple"] == 1.0
    cands[1]["heldout_loss"] = 1.5
    assert choose_candidate(cands, "heldout")[0]["multiple"] == 0.1
