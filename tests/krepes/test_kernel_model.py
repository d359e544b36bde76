"""Kernel model: Nyström with m = n equals the exact kernel model; blocks and seeds do not change results."""

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.kernels import exact_kernel, fit_nystrom
from sslaudit.methods.krepes import Krepes
from sslaudit.methods.krepes.dense_reference import exact_kernel_coordinates
from sslaudit.methods.krepes.kernel_model import centring_offset, pc_model, spectral_entropy

FAST = dict(landmarks=12, step_sample=32, ssl_batch_size=16, cg_max_iter=5, lambda_grid=(10.0, 100.0))


def test_nystrom_with_all_points_equals_the_exact_kernel_model(tiny):
    enc, x, _ = tiny
    x = x[:20]
    k_nn = exact_kernel(enc, x, x)
    basis = fit_nystrom(k_nn, rank=5)
    coords = k_nn @ basis.a0  # Nyström coordinates with m = n
    ref = exact_kernel_coordinates(k_nn, 5)
    assert np.allclose(coords, ref, atol=1e-8)
    # and the Krepes explainer with --exact (every sample a landmark) uses exactly that kernel
    k = Krepes(enc, exact=True, mode="fit", rank=5).fit(x)
    assert np.allclose(k.k_train, k_nn, atol=1e-10)
    assert np.allclose(k.k_train @ k.basis.a0, ref, atol=1e-8)
    # the fast (factorised) kernel with m = n gives the same model
    kf = Krepes(enc, landmarks=20, mode="fit", rank=5).fit(x)
    assert np.allclose(kf.k_train, k_nn, atol=1e-8)


def test_pc_point_is_centred():
    rng = np.random.default_rng(0)
    k = rng.random((30, 6))
    a0 = rng.normal(size=(6, 3))
    m = pc_model(a0, k)
    assert np.allclose(m.embed(k).mean(0), 0, atol=1e-12)
    assert np.allclose(centring_offset(k, a0, block=7), centring_offset(k, a0, block=1000))


def test_spectral_entropy_of_isotropic_and_rank_one():
    assert spectral_entropy(np.eye(4)) == pytest.approx(np.log(4))
    assert spectral_entropy(np.outer([1, 2, 3], [1, 0])) == pytest.approx(0.0, abs=1e-9)


def test_block_size_does_not_change_results(tiny):
    enc, x, aug = tiny
    a = Krepes(enc, block_size=7, **FAST).fit(x, augment=aug)
    b = Krepes(enc, block_size=1024, **FAST).fit(x, augment=aug)
    assert np.allclose(a.k_train, b.k_train, atol=1e-6)
    ra, rb = a.explain(x[:5]), b.explain(x[:5])
    assert np.array_equal(ra.top, rb.top)
    assert np.allclose(ra.top_scores, rb.top_scores, rtol=1e-5, atol=1e-9)
    assert a.step_result["loss_after"] == pytest.approx(b.step_result["loss_after"], rel=1e-6)


def test_same_seed_same_result_other_seed_other_landmarks(tiny):
    enc, x, aug = tiny
    a = Krepes(enc, seed=3, **FAST).fit(x, augment=aug).explain(x[:4])
    b = Krepes(enc, seed=3, **FAST).fit(x, augment=aug).explain(x[:4])
    c = Krepes(enc, seed=4, **FAST).fit(x, augment=aug)
    assert np.array_equal(a.top, b.top) and np.array_equal(a.top_scores, b.top_scores)
    assert not np.array_equal(a.landmarks, c.landmarks)


def test_bad_inputs_are_user_errors(tiny):
    enc, x, aug = tiny
    with pytest.raises(UserError, match="only 40 training samples"):
        Krepes(enc, landmarks=41).fit(x, augment=aug)
    with pytest.raises(UserError, match="too few"):
        Krepes(enc, landmarks=1).fit(x, augment=aug)
    with pytest.raises(UserError, match="augmentation"):
        Krepes(enc, landmarks=8).fit(x)  # step mode without views
    with pytest.raises(UserError, match="mode"):
        Krepes(enc, mode="both")
    with pytest.raises(UserError, match="objective"):
        Krepes(enc, objective="simsiam")
    with pytest.raises(UserError, match="n ≤ 5000"):
        Krepes(enc, exact=True, mode="fit").fit(np.zeros((5001, 6), dtype=np.float32))


def test_nan_kernel_is_a_user_error(tiny):
    enc, x, aug = tiny
    with __import__("torch").no_grad():
        enc.trunk.net[0].weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        Krepes(enc, landmarks=8, mode="fit").fit(x)


def test_exact_step_mode_matches_the_fast_kernel_on_views(tiny):
    """--exact computes the view kernel by the per-sample-gradient loop; m = n with the fast
    kernel gives the same kernel rows, hence the same step."""
    enc, x, aug = tiny
    opts = dict(step_sample=8, ssl_batch_size=4, cg_max_iter=3, lambda_grid=(100.0,), rank=4)
    ex = Krepes(enc, exact=True, **opts).fit(x[:8], augment=aug)
    fast = Krepes(enc, landmarks=8, **opts).fit(x[:8], augment=aug)
    assert ex.step_result["loss_after"] <= ex.step_result["loss_before"]
    assert ex.step_result["loss_before"] == pytest.approx(fast.step_result["loss_before"], rel=1e-5)
    assert np.allclose(ex.model.weights, fast.model.weights, atol=1e-5)
