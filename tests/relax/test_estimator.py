import numpy as np
import pytest
import torch

from sslaudit.errors import UserError
from sslaudit.methods.relax import RelaxMoments, SpatialMasks, WeightedMoments, estimate


def naive_welford(scores, weights):
    """West's weighted Welford, one mask at a time, float64 (the reference's update, normalised)."""
    b, p = scores.shape[0], weights.shape[1]
    w_sum = np.zeros((b, p))
    mean = np.zeros((b, p))
    m2 = np.zeros((b, p))
    for n in range(weights.shape[0]):
        w = weights[n]
        for i in range(b):
            s = scores[i, n]
            w_sum[i] += w
            old = mean[i].copy()
            nz = w_sum[i] > 0
            mean[i][nz] += (w[nz] / w_sum[i][nz]) * (s - old[nz])
            m2[i] += w * (s - old) * (s - mean[i])
    return mean, m2 / np.where(w_sum > 0, w_sum, 1)


def test_batched_equals_naive_loop():
    g = torch.Generator().manual_seed(0)
    weights = SpatialMasks((6, 6)).draw(0, 0, 230).double()
    weights[3] = 0.0  # a mask that hides everything
    scores = torch.rand(4, 230, generator=g, dtype=torch.float64)
    mom = RelaxMoments(4, 36)
    rows = torch.arange(4)
    for s in range(0, 230, 70):  # uneven batches
        mom.update(rows, scores[:, s : s + 70], weights[s : s + 70])
    mean, var = naive_welford(scores.numpy(), weights.numpy())
    np.testing.assert_allclose(mom.importance.numpy(), mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(mom.uncertainty.numpy(), var, rtol=1e-10, atol=1e-14)
    # standard error against its two-pass definition sqrt(Σ w²(s − R)²) / Σ w
    w, s = weights.numpy(), scores.numpy()
    se = np.sqrt(((w[None] ** 2) * (s[:, :, None] - mean[:, None, :]) ** 2).sum(1)) / w.sum(0)
    np.testing.assert_allclose(mom.std_error().numpy(), se, rtol=1e-10)


def test_float64_streaming_beats_cancellation():
    """Huge N, tiny spread around a large offset: E[s²] − E[s]² in float32 is garbage; ours is exact."""
    g = torch.Generator().manual_seed(1)
    n, p = 200_000, 3
    scores = 1000.0 + 0.01 * torch.randn(1, n, generator=g, dtype=torch.float64)
    weights = torch.rand(n, p, generator=g, dtype=torch.float64)
    mom = WeightedMoments(1, p)
    for s in range(0, n, 5000):
        mom.update(torch.tensor([0]), scores[:, s : s + 5000], weights[s : s + 5000])
    w, x = weights.numpy(), scores.numpy()[0]
    mean = (w * x[:, None]).sum(0) / w.sum(0)
    var = (w * (x[:, None] - mean) ** 2).sum(0) / w.sum(0)  # two-pass, float64
    np.testing.assert_allclose(mom.mean.numpy()[0], mean, rtol=1e-13)
    np.testing.assert_allclose(mom.variance().numpy()[0], var, rtol=1e-8)
    w32, x32 = w.astype(np.float32), x.astype(np.float32)[:, None]
    naive32 = (w32 * x32 * x32).sum(0) / w32.sum(0) - ((w32 * x32).sum(0) / w32.sum(0)) ** 2
    assert np.abs(naive32 - var).max() > 0.5 * var.max()  # the test would catch a float32 one-pass formula


def constant_plus_mask_score(rows, weights):
    """Scores that depend on the masks: s = mean weight of the first 4 units, per image offset."""
    base = weights[:, :4].mean(1).double()
    return torch.stack([base + 0.1 * float(r) for r in rows.cpu()])


def test_adaptive_stops_and_reports():
    fam = SpatialMasks((8, 8))
    mom, st = estimate(constant_plus_mask_score, 2, fam, n_masks=None, tolerance=0.004, seed=0, mask_batch=50, min_masks=100)
    assert (st.n_masks % 50 == 0).all() and (st.n_masks >= 100).all() and st.converged.all()
    assert (mom.std_error().amax(1) <= 0.004).all()
    # not reachable → stops at max_masks, flagged
    _, st2 = estimate(constant_plus_mask_score, 1, fam, n_masks=None, tolerance=1e-9, seed=0, mask_batch=50, max_masks=300)
    assert st2.n_masks.tolist() == [300] and not st2.converged.any()


def test_fixed_n_is_prefix_of_stream():
    fam = SpatialMasks((8, 8))
    a, st = estimate(constant_plus_mask_score, 1, fam, n_masks=130, mask_batch=50)
    b = RelaxMoments(1, 64)
    w = torch.cat([fam.draw(0, i, 50) for i in range(3)])[:130]
    b.update(torch.tensor([0]), constant_plus_mask_score(torch.tensor([0]), w), w)
    assert st.n_masks.tolist() == [130]
    np.testing.assert_allclose(a.importance.numpy(), b.importance.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(n_masks=0), dict(n_masks=None, tolerance=0.0), dict(n_masks=None, tolerance=None), dict(n_masks=10, mask_batch=0)])
def test_bad_estimator_args(kw):
    with pytest.raises(UserError):
        estimate(constant_plus_mask_score, 1, SpatialMasks((8, 8)), **kw)


# ---- control variate ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(8, 8), (28, 28), (20,)])
def test_control_variate_moments_are_exact(size):
    """Cov(f, w) and the means from the generator's linearity agree with many drawn masks (z-scores)."""
    fam = SpatialMasks(size)
    e_f, cov, e_w = fam.cv_moments()
    assert torch.allclose(e_w, torch.full_like(e_w, 0.5), atol=1e-12)  # every pixel's mean is p
    s1 = s2 = 0.0
    n = 0
    for b in range(20):
        w = fam.draw(7, b, 1000).double()
        a, c = fam.cv_features(w) - e_f, w - e_w
        s1, s2, n = s1 + a.T @ c, s2 + (a * a).T @ (c * c), n + len(w)
    emp = s1 / n
    z = ((emp - cov) / ((s2 / n - emp**2) / n).sqrt().clamp_min(1e-12)).abs()
    assert 0.4 < float(z.mean()) < 1.3 and float(z.max()) < 6.0  # |N(0,1)| has mean 0.80 (entries are correlated)


def linear_in_pattern(gamma):
    def score(rows, weights):
        f = SpatialMasks((8, 8)).cv_features(weights)
        return torch.stack([0.3 + float(r) + f @ gamma for r in rows.cpu()])

    return score


def test_control_variate_is_exact_for_a_score_linear_in_the_pattern():
    """s = c + γᵀf: the control variate removes all variance, and R_p = c + γᵀE f + γᵀCov(f, w_p)/E w_p."""
    fam = SpatialMasks((8, 8))
    gamma = torch.linspace(-1, 1, 49, dtype=torch.float64)
    mom, st = estimate(linear_in_pattern(gamma), 2, fam, n_masks=300, mask_batch=100, control_variate=True)
    e_f, cov, e_w = fam.cv_moments()
    truth = 0.3 + gamma @ e_f + (gamma @ cov) / e_w
    # (to float32 rounding: the masks are drawn in float32, the moments are exact in float64)
    np.testing.assert_allclose(mom.importance[0].numpy(), truth.numpy(), atol=1e-6)
    np.testing.assert_allclose(mom.importance[1].numpy(), truth.numpy() + 1.0, atol=1e-6)
    assert float(mom.std_error().max()) < 1e-6  # (the ridge of the β fit leaves ~1e-8)
    plain, _ = estimate(linear_in_pattern(gamma), 1, fam, n_masks=300, mask_batch=100)
    assert float(plain.std_error().max()) > 1e-3 and float((plain.importance[0] - truth).abs().max()) > 1e-3


def nonlinear_score(rows, weights):
    """A smooth nonlinear score of the whole mask (what an encoder's similarity looks like)."""
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, weights.shape[1], generator=g, dtype=torch.float64)
    return torch.stack([torch.tanh(weights.double() @ v[int(r)] / 8) for r in rows.cpu()])


def test_control_variate_is_unbiased_with_a_smaller_error():
    fam = SpatialMasks((8, 8))
    truth, _ = estimate(nonlinear_score, 2, fam, n_masks=40_000, mask_batch=2000, seed=11)  # plain, large N
    plain, _ = estimate(nonlinear_score, 2, fam, n_masks=1000, mask_batch=100)
    cv, _ = estimate(nonlinear_score, 2, fam, n_masks=1000, mask_batch=100, control_variate=True)
    assert float(cv.std_error().mean()) < 0.6 * float(plain.std_error().mean())
    z = (cv.importance - truth.importance) / (cv.std_error() ** 2 + truth.std_error() ** 2).sqrt()
    assert float(z.abs().mean()) < 1.2 and float(z.abs().max()) < 5  # agrees within its own error
    np.testing.assert_allclose(cv.uncertainty.numpy(), plain.uncertainty.numpy())  # U is the raw scores' variance
    again, _ = estimate(nonlinear_score, 2, fam, n_masks=1000, mask_batch=100, control_variate=True)
    assert torch.equal(again.importance, cv.importance)  # same seed, same map
    # adaptive: the same tolerance is reached with fewer masks
    tol = float(plain.std_error().amax(1).min())
    _, st_plain = estimate(nonlinear_score, 2, fam, n_masks=None, tolerance=tol, mask_batch=100)
    _, st_cv = estimate(nonlinear_score, 2, fam, n_masks=None, tolerance=tol, mask_batch=100, control_variate=True)
    assert st_cv.converged.all() and (st_cv.n_masks < st_plain.n_masks).all()
