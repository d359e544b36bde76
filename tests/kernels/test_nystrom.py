"""Nyström basis: exact at m = n, PC coordinates, sign fixing, jitter, validation."""

from __future__ import annotations

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.kernels import EntkKernel, exact_kernel, fit_nystrom, nystrom_coordinates


@pytest.fixture(scope="module")
def k_exact(mlp, table_x):
    return exact_kernel(mlp, table_x, table_x)


def test_m_equals_n_reproduces_the_kernel(mlp, table_x, k_exact):
    k = EntkKernel(mlp)(table_x, table_x)
    basis = fit_nystrom(k, rel_tol=1e-12)
    assert basis.rank == len(table_x) and basis.dropped == 0 and basis.jitter == 0.0
    k_nm = k  # every sample is a landmark
    approx = k_nm @ np.linalg.pinv(k) @ k_nm.T
    np.testing.assert_allclose(approx, k_exact, atol=1e-8)
    coords = nystrom_coordinates(k_nm, basis)
    np.testing.assert_allclose(coords @ coords.T, k_exact, atol=1e-8)  # Nyström kernel = K
    vals, vecs = np.linalg.eigh(k_exact)  # exact (uncentred) kernel-PCA coordinates U Λ^{1/2}
    vals, vecs = vals[::-1], vecs[:, ::-1]
    pcs = vecs * np.sqrt(vals)
    signs = np.sign(pcs[np.argmax(np.abs(vecs), axis=0), np.arange(len(vals))])
    np.testing.assert_allclose(coords, pcs * signs, atol=1e-6)


def test_truncated_rank_and_coordinates(k_exact):
    basis = fit_nystrom(k_exact, rank=3)
    assert basis.rank == 3 and basis.dropped == len(k_exact) - 3 and basis.a0.shape == (len(k_exact), 3)
    np.testing.assert_allclose(basis.a0, basis.eigenvectors / np.sqrt(basis.eigenvalues), rtol=1e-12)
    assert np.all(np.diff(basis.eigenvalues) <= 0)


def test_sign_fixing_is_deterministic(k_exact):
    a = fit_nystrom(k_exact)
    again = fit_nystrom(-(-k_exact))
    np.testing.assert_array_equal(a.eigenvectors, again.eigenvectors)
    big = np.abs(a.eigenvectors).argmax(axis=0)
    assert np.all(a.eigenvectors[big, np.arange(a.rank)] > 0)
    # the same kernel with landmarks reordered gives the same vectors, reordered
    p = np.random.default_rng(0).permutation(len(k_exact))
    b = fit_nystrom(k_exact[np.ix_(p, p)])
    np.testing.assert_allclose(b.eigenvectors[:, :5], a.eigenvectors[p, :5], atol=1e-8)


def test_singular_kernel_gets_jitter(k_exact):
    dup = np.concatenate([np.arange(len(k_exact)), [0, 1]])  # duplicated landmarks: rank-deficient
    k = k_exact[np.ix_(dup, dup)]
    basis = fit_nystrom(k)
    assert basis.jitter > 0 and basis.dropped >= 2 and basis.rank <= len(k_exact)
    assert np.isfinite(basis.a0).all()
    indefinite = k_exact.copy()
    indefinite[0, 0] -= 5.0  # a negative diagonal entry: certainly indefinite
    assert np.linalg.eigvalsh(indefinite)[0] < 0
    b2 = fit_nystrom(indefinite)
    assert b2.jitter > 0 and np.all(b2.eigenvalues > 0)
    assert fit_nystrom(k, jitter=0.5).jitter == 0.5


def test_bad_kernels_raise(k_exact):
    bad = k_exact.copy()
    bad[0, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        fit_nystrom(bad)
    with pytest.raises(UserError, match="square"):
        fit_nystrom(k_exact[:3])
    with pytest.raises(UserError):
        fit_nystrom(np.zeros((3, 3)))
    with pytest.raises(UserError):
        fit_nystrom(k_exact, rank=0)
    with pytest.raises(UserError, match="landmark"):
        nystrom_coordinates(k_exact[:, :3], fit_nystrom(k_exact))
