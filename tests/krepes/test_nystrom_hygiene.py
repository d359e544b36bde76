"""Nyström rank hygiene (eigenvalue floor, explained variance) and centred K_mm against dense references (issue #18, item 4)."""

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.kernels import fit_nystrom
from sslaudit.methods.krepes.explainer import Krepes, KrepesConfig

from .conftest import NoiseAugment, tiny_encoder


def _kernel(m=30, p=12, decay=0.5, seed=0):
    """A PSD m×m kernel of rank p with geometrically decaying spectrum and a large constant part."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, p)) * decay ** np.arange(p)[None, :]
    return x @ x.T + 2.0


def test_floor_zero_and_variance_one_keep_the_old_rank():
    k = _kernel()
    old = fit_nystrom(k, rank=25)
    for new in (fit_nystrom(k, rank=25, floor=0.0), fit_nystrom(k, rank=25, variance=1.0)):
        assert new.rank == old.rank and new.dropped == old.dropped
        assert np.array_equal(new.a0, old.a0) and np.array_equal(new.eigenvalues, old.eigenvalues)


def test_floor_keeps_exactly_the_eigenvalues_above_it():
    k = _kernel()
    ev = np.sort(np.linalg.eigvalsh(k))[::-1]
    for floor in (1e-4, 1e-3, 1e-2, 0.3):
        b = fit_nystrom(k, floor=floor)
        assert b.rank == int((ev >= floor * ev[0]).sum())
        assert b.eigenvalues[-1] >= floor * b.eigenvalues[0]
        assert b.summary()["floor"] == floor
    assert fit_nystrom(k, rank=3, floor=1e-4).rank == 3  # the requested rank still caps it


def test_variance_rule_keeps_the_fewest_eigenpairs_reaching_the_share():
    k = _kernel()
    ev = np.sort(np.linalg.eigvalsh(k))[::-1]
    ev = ev[ev > 1e-6 * ev[0]]
    for q in (0.5, 0.9, 0.99, 0.999):
        b = fit_nystrom(k, variance=q)
        share = np.cumsum(ev) / ev.sum()
        naive = next(i + 1 for i, s in enumerate(share) if s >= q)
        assert b.rank == naive


def test_centred_basis_equals_a_dense_centred_eigendecomposition():
    k = _kernel()
    m = len(k)
    h = np.eye(m) - np.ones((m, m)) / m
    kc = h @ k @ h
    ev, u = np.linalg.eigh(kc)
    ev, u = ev[::-1], u[:, ::-1]
    b = fit_nystrom(k, centre=True, rank=6)
    assert b.centred and b.rank == 6
    assert np.allclose(b.eigenvalues, ev[:6], rtol=1e-10, atol=1e-12 * ev[0])
    assert np.allclose(np.abs(b.eigenvectors.T @ u[:, :6]), np.eye(6), atol=1e-8)  # same eigenvectors up to sign
    assert np.allclose(b.eigenvectors.T @ np.ones(m), 0, atol=1e-10)  # ⟂ 1
    # the Nyström reconstruction of the centred kernel from the centred basis
    assert np.allclose(b.eigenvectors @ np.diag(b.eigenvalues) @ b.eigenvectors.T, u[:, :6] @ np.diag(ev[:6]) @ u[:, :6].T, atol=1e-9 * ev[0])
    # the constant direction is never kept: full rank is m − 1 at most
    assert fit_nystrom(k, centre=True).rank <= min(m - 1, 12)


def test_centred_coordinates_are_kernel_pca_up_to_the_constant_gamma_absorbs():
    """K_xm Ã0 with the centred basis differs from the landmark-centred kPCA coordinates H(k_x − K_mm1/m)Ã0 by one constant row."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 5))
    full = np.exp(-0.5 * ((z[:, None] - z[None]) ** 2).sum(-1))
    lm = np.arange(20)
    k_mm, k_xm = full[np.ix_(lm, lm)], full[:, lm]
    b = fit_nystrom(k_mm, centre=True, rank=8)
    m = len(lm)
    h = np.eye(m) - np.ones((m, m)) / m
    proper = (k_xm - k_mm.mean(1)[None, :]) @ h @ b.a0
    diff = k_xm @ b.a0 - proper
    assert np.allclose(diff, diff[:1], atol=1e-10)
    # and after centring by the training mean (γ) the two are identical
    assert np.allclose(k_xm @ b.a0 - (k_xm @ b.a0).mean(0), proper - proper.mean(0), atol=1e-10)


def test_bad_values_are_one_line_user_errors():
    k = _kernel()
    for kw in ({"floor": -0.1}, {"floor": 1.0}, {"variance": 0.0}, {"variance": 1.5}):
        with pytest.raises(UserError):
            fit_nystrom(k, **kw)
    for kw in ({"nystrom_floor": 1.0}, {"nystrom_variance": 0.0}, {"sign": "sideways"}):
        with pytest.raises(UserError):
            KrepesConfig(**kw).check()


def test_krepes_options_reach_the_basis(tiny):
    enc, x, aug = tiny
    base = Krepes(enc, landmarks=20, step_sample=40, ssl_batch_size=20, lam=10.0).fit(x, augment=aug)
    cut = Krepes(tiny_encoder(), landmarks=20, step_sample=40, ssl_batch_size=20, lam=10.0, nystrom_floor=1e-2, centre_kmm=True).fit(x, augment=NoiseAugment())
    assert cut.basis.centred and cut.basis.floor == 1e-2 and not base.basis.centred
    ev = np.sort(np.linalg.eigvalsh((lambda c: c - c.mean(0) - c.mean(1)[:, None] + c.mean())(np.asarray(cut.k_mm, dtype=np.float64))))[::-1]
    assert cut.basis.rank == min(int((ev >= 1e-2 * ev[0]).sum()), 5)  # 5 = the tiny encoder's width
    assert cut.summary()["nystrom"]["centred"] is True
    res = cut.explain(x[:5])
    assert res.top.shape == (5, 10) and np.isfinite(res.top_scores).all()


def test_a_cached_step_is_not_reused_across_nystrom_options(tiny, tmp_path):
    from sslaudit.store import RunStore

    enc, x, aug = tiny
    store = RunStore(tmp_path / "run", create=True)
    opts = dict(landmarks=20, step_sample=40, ssl_batch_size=20, lam=10.0)
    first = Krepes(enc, cache=store, **opts).fit(x, augment=aug)
    again = Krepes(enc, cache=store, **opts).fit(x, augment=aug)
    assert first.step_result["accepted"] and np.abs(first.model.weights).max() > 0  # a real step, so reuse is checked on non-zero weights
    assert again.stages["step"] == "reused" and np.array_equal(again.model.weights, first.model.weights)
    for change in ({"centre_kmm": True}, {"nystrom_floor": 0.5}):  # (the rank-1 basis of floor 0.5 may find no step that lowers the loss: a warning, not a failure)
        other = Krepes(enc, cache=store, **opts, **change).fit(x, augment=aug)
        assert other.stages["kernel_mm"] == "reused" and other.stages["step"] == "computed"
    cut = Krepes(enc, cache=store, **opts, nystrom_floor=0.5)
    cut.fit(x, augment=aug)
    assert cut.stages["step"] == "reused" and cut.basis.rank < first.basis.rank
