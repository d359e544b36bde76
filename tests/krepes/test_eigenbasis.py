"""The step in the Nyström eigenbasis against the landmark-basis step (the reference), and float32 against float64."""

import numpy as np
import pytest
import torch

from sslaudit.kernels import fit_nystrom
from sslaudit.methods.krepes.eigenbasis import EigenbasisProblem, RotatedViews, point_bytes, to_landmarks
from sslaudit.methods.krepes.gauss_newton import KernelLossProblem, StepConfig, ViewBatches, gauss_newton_step
from sslaudit.methods.krepes.kernel_model import centring_offset
from sslaudit.methods.krepes.losses import KernelSSLLoss

OBJECTIVES = ["simclr", "barlow", "vicreg", "byol"]


def problems(objective, rank, n=32, m=8, p=10, batch=8, seed=0, dtype="float64", keep_point=True, spread=1.0):
    """Both problems on the same view kernel rows: a linear kernel on p features, the landmarks' features
    3 strong directions plus `spread` × isotropic ones (K_mm full rank; small `spread` = a small Nyström tail)."""
    rng = np.random.default_rng(seed)
    lm = rng.normal(size=(m, 3)) @ rng.normal(size=(3, p)) + spread * rng.normal(size=(m, p))
    x = rng.normal(size=(n, p))
    k1 = (x + 0.3 * rng.normal(size=x.shape)) @ lm.T / p
    k2 = (x + 0.3 * rng.normal(size=x.shape)) @ lm.T / p
    basis = fit_nystrom(lm @ lm.T / p, rank=rank)
    assert basis.rank == min(rank, m)
    gamma = centring_offset(k1, basis.a0)
    loss = KernelSSLLoss(objective)
    views = ViewBatches(k1, k2, batch, seed=seed)
    full = KernelLossProblem(loss, views, basis.a0, gamma, keep_point=keep_point)
    eig = EigenbasisProblem(loss, RotatedViews(views, basis.eigenvectors, dtype), basis.eigenvalues, gamma, keep_point=keep_point)
    return full, eig, basis


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("rank", [8, 5])
def test_eigenbasis_product_equals_the_landmark_product(objective, rank):
    """U_rᵀ G (U_r D) = G_eig D, loss and U_rᵀ∇L agree: exact (float64 rounding) for r = m and for r < m alike."""
    full, eig, basis = problems(objective, rank)
    u = torch.as_tensor(basis.eigenvectors)
    assert torch.allclose(u @ eig.a0, full.a0, rtol=1e-12, atol=1e-14)
    l_f, g_f = full.value_and_grad(full.a0)
    l_e, g_e = eig.value_and_grad(eig.a0)
    assert l_e == pytest.approx(l_f, rel=1e-12)
    assert torch.allclose(g_e, u.T @ g_f, rtol=1e-9, atol=1e-12)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        d = torch.randn(eig.a0.shape, generator=gen, dtype=torch.float64)
        assert torch.allclose(eig.gn_matvec(d), u.T @ full.gn_matvec(u @ d), rtol=1e-9, atol=1e-12)
    b = eig.a0 + 0.1 * torch.randn(eig.a0.shape, generator=gen, dtype=torch.float64)
    assert eig.value(b) == pytest.approx(full.value(u @ b), rel=1e-12)


@pytest.mark.parametrize("objective", ["simclr", "barlow"])
def test_eigenbasis_step_equals_the_landmark_step_when_r_is_m(objective):
    full, eig, basis = problems(objective, rank=8)
    cfg = StepConfig(lam="auto", lambda_grid=(0.1, 1.0), cg_max_iter=200, cg_tol=1e-12)
    a, b = gauss_newton_step(full, cfg), gauss_newton_step(eig, cfg)
    assert a.curvature == pytest.approx(b.curvature, rel=1e-9)
    for ca, cb in zip(a.candidates, b.candidates):
        lifted = to_landmarks(basis.eigenvectors, cb["delta"])
        assert np.linalg.norm(lifted - ca["delta"]) <= 1e-8 * np.linalg.norm(ca["delta"])
        assert cb["loss_after"] == pytest.approx(ca["loss_after"], rel=1e-10)


def test_eigenbasis_step_when_r_is_below_m_stays_close():
    """r < m: the eigenbasis step is the landmark step restricted to span(U_r). With a small Nyström tail (the
    kernel rows' components outside span(U_r) scale with the dropped eigenvalues' square roots) the outputs of the
    two steps on the training views agree within 5% of the step's output change and the loss decreases within 5%."""
    full, eig, basis = problems("simclr", rank=5, spread=0.05)
    cfg = StepConfig(lam=0.1, cg_max_iter=200, cg_tol=1e-12)
    a, b = gauss_newton_step(full, cfg), gauss_newton_step(eig, cfg)
    lifted = to_landmarks(basis.eigenvectors, b.delta)
    k1, _ = full.views.get(0)
    out_a, out_b = k1.numpy() @ a.delta, k1.numpy() @ lifted
    assert np.linalg.norm(out_a - out_b) <= 0.05 * np.linalg.norm(out_a)
    drop_a, drop_b = a.loss_before - a.loss_after, b.loss_before - b.loss_after
    assert drop_b == pytest.approx(drop_a, rel=0.05) and drop_b > 0


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_float32_products_match_float64_within_1e_4(objective):
    """float32 products with float64 accumulation: relative error ≤ 1e-4 on products, gradient and loss."""
    _, e64, _ = problems(objective, rank=6, n=64, dtype="float64")
    _, e32, _ = problems(objective, rank=6, n=64, dtype="float32")
    assert e32.views.psi1.dtype == torch.float32
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        d = torch.randn(e64.a0.shape, generator=gen, dtype=torch.float64)
        p64, p32 = e64.gn_matvec(d), e32.gn_matvec(d)
        assert p32.dtype == torch.float64
        assert torch.linalg.norm(p32 - p64) <= 1e-4 * torch.linalg.norm(p64)
    l64, g64 = e64.value_and_grad(e64.a0)
    l32, g32 = e32.value_and_grad(e32.a0)
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert torch.linalg.norm(g32 - g64) <= 1e-4 * torch.linalg.norm(g64)
    cfg = StepConfig(lam=1.0, cg_max_iter=30, cg_tol=1e-8)
    s64, s32 = gauss_newton_step(e64, cfg), gauss_newton_step(e32, cfg)
    assert np.linalg.norm(s32.delta - s64.delta) <= 1e-3 * np.linalg.norm(s64.delta)


def test_kept_simclr_state_does_not_change_the_product():
    _, kept, _ = problems("simclr", rank=6, keep_point=True)
    _, fresh, _ = problems("simclr", rank=6, keep_point=False)
    d = torch.ones(kept.a0.shape, dtype=torch.float64)
    kept.gn_matvec(d)  # fills the cache
    assert torch.equal(kept.gn_matvec(d), fresh.gn_matvec(d))
    assert point_bytes(32, 6, 8, "simclr", 8) == 4 * (2 * 8 * 6 + 2 * 8 * 6 + 2 * 8 + 16 * 16) * 8
