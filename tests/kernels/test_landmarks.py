"""Landmark selection: validation, seeding, spread (k-means++), ridge leverage accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.kernels import EntkKernel, approximate_leverage, auto_landmarks, compute_factors, select_landmarks
from sslaudit.seeding import numpy_rng


def test_auto_landmarks():
    assert auto_landmarks(10) == 10 and auto_landmarks(1000) == 256
    assert auto_landmarks(32561) == 361 and auto_landmarks(1_000_000) == 2000


@pytest.mark.parametrize("m", [1, 0, 15, "many"])
def test_bad_counts(mlp, table_x, m):
    with pytest.raises(UserError):
        select_landmarks(EntkKernel(mlp), table_x, m)
    with pytest.raises(UserError, match="unknown landmark selection"):
        select_landmarks(EntkKernel(mlp), table_x, 3, method="random")


@pytest.mark.parametrize("method", ["uniform", "kmeans++", "leverage"])
def test_seeded(mlp, table_x, method):
    k = EntkKernel(mlp)
    a = select_landmarks(k, table_x, 5, method=method, seed=7)
    b = select_landmarks(k, table_x, 5, method=method, seed=7)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 5 and len(set(a)) == 5 and np.all(np.diff(a) > 0) and a.max() < len(table_x)
    others = {tuple(select_landmarks(k, table_x, 5, method=method, seed=s)) for s in range(6)}
    assert len(others) > 1


def planted_clusters(n_per: int, clusters: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 12)) * 3
    x = np.concatenate([c + 0.01 * rng.normal(size=(n_per, 12)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(clusters), n_per)


def test_kmeanspp_spreads_over_planted_clusters(mlp):
    x, label = planted_clusters(40, 6)
    k = EntkKernel(mlp)
    hits = [len(set(label[select_landmarks(k, x, 6, method="kmeans++", seed=s)])) for s in range(5)]
    assert all(h == 6 for h in hits)
    uniform = [len(set(label[select_landmarks(k, x, 6, method="uniform", seed=s)])) for s in range(5)]
    assert min(uniform) < 6  # uniform draws do collide: the check above can fail


def test_candidate_pool_limits_kmeanspp(mlp):
    x, _ = planted_clusters(40, 6)
    pos = select_landmarks(EntkKernel(mlp), x, 6, method="kmeans++", candidates=30, seed=1)
    assert len(pos) == 6
    with pytest.raises(UserError, match="candidates"):
        select_landmarks(EntkKernel(mlp), x, 6, method="kmeans++", candidates=4)


def test_bless_leverage_matches_exact_ridge_leverage(mlp):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(250, 12)), 4 * rng.normal(size=(10, 12)) + 6]).astype(np.float32)
    kernel = EntkKernel(mlp)
    f = compute_factors(kernel, x)
    k = kernel.between(f, f).numpy()
    n, lam = len(x), 1.0 / 20
    exact = np.diag(k @ np.linalg.inv(k + lam * n * np.eye(n)))
    approx = approximate_leverage(kernel, f, lam, numpy_rng(0, "test"))
    # the scores only vary between about 0.025 and 0.065 here; the planted outliers score higher
    assert np.corrcoef(exact, approx)[0, 1] > 0.8
    assert approx[250:].mean() > 1.2 * approx[:250].mean()
    assert abs(approx.sum() - exact.sum()) / exact.sum() < 0.3  # effective dimension
    chosen = select_landmarks(kernel, x, 20, method="leverage", ridge=lam, seed=0)
    assert len(chosen) == 20
