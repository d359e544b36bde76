import math

import numpy as np
import pytest
import torch

from sslaudit.methods.relax import EmbeddingSimilarity, Relax, SpatialMasks, explain, gradient_saliency
from sslaudit.methods.relax.evaluation import complexity, deletion_insertion, evaluate_relax, random_maps, randomized_copy, removal_order, sanity_check, sparseness, spearman, ssim

from .conftest import QuadrantEncoder


def test_gini_hand_computed():
    n = 10
    one_hot = np.zeros((1, n))
    one_hot[0, 3] = 5.0
    assert sparseness(one_hot)[0] == pytest.approx(1 - 1 / n)
    assert sparseness(np.full((1, n), 0.8))[0] == pytest.approx(0.0)
    # [0, 1, 2, 3]: q = [0, 1, 2, 3] / 6, Σ(2k − n − 1) q_k / n = (−1 + 2 + 9) / 6 / 4
    assert sparseness(np.array([[3.0, 0.0, 2.0, 1.0]]))[0] == pytest.approx(10 / 24)
    # the offset is removed: [10, 11, 12, 13] scores like [0, 1, 2, 3]
    assert sparseness(np.array([[10.0, 11.0, 12.0, 13.0]]))[0] == pytest.approx(10 / 24)


def test_entropy_hand_computed():
    assert complexity(np.full((1, 16), 2.0))[0] == pytest.approx(math.log(16))
    one_hot = np.zeros((1, 16))
    one_hot[0, 0] = 1
    assert complexity(one_hot)[0] == pytest.approx(0.0)
    assert complexity(np.array([[0.0, 1.0, 1.0]]))[0] == pytest.approx(math.log(2))


def test_rank_correlation_and_ssim():
    a = np.arange(20.0)[None]
    assert spearman(a, a)[0] == pytest.approx(1.0) and spearman(a, -a)[0] == pytest.approx(-1.0)
    assert spearman(a, a**3)[0] == pytest.approx(1.0)  # ranks only
    assert ssim(a, 2 * a + 1)[0] == pytest.approx(1.0)
    assert ssim(a, -a)[0] < 0
    sc = sanity_check(a, -a, max_spearman=0.5)  # the fixed rule is still available
    assert sc["passed"] and sc["spearman_mean"] == pytest.approx(-1.0) and sc["threshold_rule"] == "fixed"
    assert not sanity_check(a, a, max_spearman=0.5)["passed"]
    assert sanity_check(a, -a)["passed"] is None  # one input: no null to compare with


def test_sanity_threshold_from_the_derangement_null():
    rng = np.random.default_rng(0)
    trained = rng.normal(size=(12, 49))
    # the randomised encoder reproduces the trained maps: far above what mismatched inputs share → fail
    copy_like = trained + 0.1 * rng.normal(size=trained.shape)
    sc = sanity_check(trained, copy_like, seed=0)
    assert sc["passed"] is False and sc["spearman_mean"] > sc["threshold"] > sc["null_spearman_mean"] - 0.5
    # unrelated maps → pass; the threshold is the null's 95% quantile, near 0 for independent maps
    sc = sanity_check(trained, rng.normal(size=trained.shape), seed=0)
    assert sc["passed"] is True and abs(sc["null_spearman_mean"]) < 0.1
    # shared generic structure (a common centre bias) raises the null, so a randomised map that only
    # carries that structure passes, while one that also tracks each input's own map fails
    bias = np.linspace(-3, 3, 49)
    tb = trained + bias
    assert sanity_check(tb, rng.normal(size=trained.shape) + bias, seed=0)["passed"] is True
    assert sanity_check(tb, tb + 0.3 * rng.normal(size=trained.shape), seed=0)["passed"] is False
    other = rng.normal(size=trained.shape)
    assert sanity_check(tb, other, seed=3) == sanity_check(tb.copy(), other.copy(), seed=3)  # same seed, same result


def test_null_derangements_have_no_fixed_point():
    from sslaudit.methods.relax.evaluation import derangement_null

    t = np.eye(5)  # Spearman of a row with itself is 1, with any other row −0.25
    null = derangement_null(t, n_permutations=50, seed=1)
    assert null == pytest.approx(np.full(50, -0.25))


def test_localisation_by_hand():
    from sslaudit.methods.relax.evaluation import foreground_of, localisation

    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 0] = 0.7  # the object: one pixel
    fg = foreground_of(x)
    assert fg.tolist() == [[True, False, False, False]]
    good = localisation(np.array([[3.0, 1.0, 1.0, 2.0]]), fg)
    assert good["auroc"][0] == pytest.approx(1.0) and good["foreground_share"][0] == pytest.approx(0.25)
    assert good["mass_share"][0] == pytest.approx(2 / 3)  # q = (m − 1) / Σ(m − 1) = [2, 0, 0, 1] / 3
    bad = localisation(np.array([[0.0, 1.0, 1.0, 2.0]]), fg)
    assert bad["auroc"][0] == pytest.approx(0.0) and bad["mass_share"][0] == 0


def test_mask_scale_random_map_is_smooth_and_seeded():
    from sslaudit.methods.relax import SpatialMasks
    from sslaudit.methods.relax.evaluation import mask_scale_random_maps

    fam = SpatialMasks((28, 28), 7)
    a, b = mask_scale_random_maps(fam, 3, seed=2), mask_scale_random_maps(fam, 3, seed=2)
    assert torch.equal(a, b) and a.shape == (3, 784)
    pix = random_maps((3, 784), seed=2)
    step = lambda m: m.reshape(3, 28, 28).diff(dim=2).abs().mean()  # noqa: E731
    assert step(a) < 0.5 * step(pix)  # neighbouring pixels agree: RELAX's own scale


def test_removal_order_ties_random_but_seeded():
    m = torch.tensor([[0.0, 5.0, 1.0, 1.0, 1.0, 1.0]])
    o = removal_order(m, seed=0)
    assert o[0, 0] == 1 and o[0, -1] == 0
    assert torch.equal(o, removal_order(m, seed=0))


def test_deletion_insertion_planted():
    enc = QuadrantEncoder()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.2
    truth = torch.zeros(2, 8, 8)
    truth[:, :4, :4] = 1.0
    fam = SpatialMasks((8, 8))
    good = deletion_insertion(enc, x, truth.reshape(2, -1), fam, torch.zeros_like(x), steps=16)
    bad = deletion_insertion(enc, x, (1 - truth).reshape(2, -1), fam, torch.zeros_like(x), steps=16)
    assert np.allclose(good["deletion_curve"][:, 0], 1.0, atol=1e-6) and np.allclose(good["insertion_curve"][:, -1], 1.0, atol=1e-6)
    assert (good["deletion_auc"] < bad["deletion_auc"] - 0.1).all() and (good["insertion_auc"] > bad["insertion_auc"] + 0.1).all()
    # the bad map removes irrelevant pixels first: its deletion curve stays at 1 for the first 3/4
    assert np.allclose(bad["deletion_curve"][:, :13], 1.0, atol=1e-6)


def test_saliency_wrapper_is_the_gradient_of_the_similarity(tiny_conv, images):
    sal = gradient_saliency(tiny_conv, images)
    x = images.clone().requires_grad_(True)
    ref = tiny_conv(images).detach()
    (tiny_conv(x) * ref).sum().backward()
    np.testing.assert_allclose(sal.numpy(), x.grad.abs().amax(1).numpy(), rtol=1e-5, atol=1e-7)
    # cosine's gradient vanishes at x' = x (why the baseline uses the dot product)
    assert gradient_saliency(tiny_conv, images, similarity="cosine").abs().max() < 1e-5 * sal.max()
    from captum.attr import IntegratedGradients

    ig = explain(IntegratedGradients, tiny_conv, images, similarity="dot", n_steps=8)
    assert ig.shape == images.shape and torch.isfinite(ig).all()
    assert torch.allclose(EmbeddingSimilarity(tiny_conv, images, "cosine")(images), torch.ones(3), atol=1e-5)


def test_randomized_copy_seeded_and_leaves_global_rng(tiny_conv):
    state = torch.random.get_rng_state()
    a, b = randomized_copy(tiny_conv, 0), randomized_copy(tiny_conv, 0)
    assert torch.equal(state, torch.random.get_rng_state())
    pa, pb, p0 = (list(m.parameters()) for m in (a, b, tiny_conv))
    assert all(torch.equal(u, v) for u, v in zip(pa, pb))
    assert not all(torch.equal(u, v) for u, v in zip(pa, p0))


def test_evaluate_relax_report(tiny_conv, images):
    rx = Relax(tiny_conv)
    res = rx.attribute(images, n_masks=100)
    ev = evaluate_relax(rx, images, res, n_masks=100, steps=6)
    assert set(ev["maps"]) == {"relax", "u_relax", "saliency", "random", "random_mask_scale", "reversed_relax"}
    assert ev["maps"]["reversed_relax"]["deletion_auc"] != ev["maps"]["relax"]["deletion_auc"]
    for m in ev["maps"].values():
        assert 0 <= m["sparseness"] <= 1 and 0 <= m["complexity"] <= math.log(144) + 1e-9
        assert len(m["deletion_auc_per_input"]) == 3
    assert set(ev["sanity_check"]) >= {"spearman_mean", "ssim_mean", "passed"}
