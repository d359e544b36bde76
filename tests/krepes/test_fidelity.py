"""Fidelity diagnostics against hand computations."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from sslaudit.methods.krepes import fidelity as fid
from sslaudit.methods.krepes.fit_mode import fit_representer


def test_kendall_tau_matches_scipy_tau_b():
    rng = np.random.default_rng(0)
    net_t, net_r = rng.normal(size=(4, 3)), rng.normal(size=(9, 3))
    sur_t, sur_r = net_t + 0.3 * rng.normal(size=(4, 3)), net_r + 0.3 * rng.normal(size=(9, 3))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    a, b = unit(net_t) @ unit(net_r).T, unit(sur_t) @ unit(sur_r).T
    want = np.mean([kendalltau(a[i], b[i]).statistic for i in range(4)])  # scipy's default is τ-b
    assert fid.kendall_tau(net_t, net_r, sur_t, sur_r) == pytest.approx(want)
    assert fid.kendall_tau(net_t, net_r, 2 * net_t, net_r) == pytest.approx(1.0)  # scale-invariant


def test_precision_at_1_and_cosine_baseline_by_hand():
    net_test = np.array([[1.0, 0.0], [0.0, 1.0]])
    net_land = np.array([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    ly, ty = np.array([0, 1, 1]), np.array([1, 1])
    out = fid.precision_at_1(np.array([2, 0]), net_test, net_land, ly, ty)
    assert out["precision_at_1"] == 0.5  # landmark 2 (label 1) right, landmark 0 (label 0) wrong
    assert out["precision_at_1_baseline"] == 0.5  # nearest: 0 (label 0) wrong, 1 (label 1) right


def test_confidence_drop_by_hand():
    # 8 landmarks on the unit circle; k = min(50, 8 // 4) = 2
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    land = np.c_[np.cos(ang), np.sin(ang)]
    ly = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    test = np.array([[np.cos(0.3), np.sin(0.3)]])  # nearest: landmarks 0 and 1, both label 1
    top = np.array([[0, 1]])  # remove exactly the two supporting landmarks
    out = fid.confidence_drop(test, land, ly, np.array([1]), top, n_remove=2, seed=0)
    assert out["confidence_k"] == 2
    assert out["confidence_drop_top"] == pytest.approx(1.0)  # 1 → 0 (next nearest are 7 and 2, label 0)
    assert 0.0 <= out["confidence_drop_random"] <= 1.0


def test_class_coverage_by_hand():
    norms = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert fid.class_coverage(norms, np.array([0, 0, 1, 0, 2])) == 5
    assert fid.class_coverage(norms, np.array([0, 1, 2, 2, 2])) == 3
    assert fid.class_coverage(norms, np.array([1, 1, 1, 1, 1])) == 1


def test_delta_accuracy_is_zero_for_the_same_representation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] > 0).astype(int)
    out = fid.delta_accuracy(x[:60], x[60:], x[:60], x[60:], y[:60], y[60:])
    assert out["delta_accuracy"] == 0.0 and 0 <= out["network_accuracy"] <= 1


def test_fit_mode_recovers_a_linear_network_exactly():
    """If the network's embedding is linear in the PC coordinates, the fit mode reproduces it."""
    rng = np.random.default_rng(0)
    k = rng.random((50, 6))
    a0 = rng.normal(size=(6, 4))
    gamma = -(k @ a0).mean(0)
    w_true = rng.normal(size=(4, 3))
    f = (k @ a0 + gamma) @ w_true + 5.0
    res = fit_representer(k, a0, gamma, f, mu=1e-12)
    assert res.r2 == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(res.model.embed(k), f - 5.0, atol=1e-6)  # the centred network embedding
    gcv = fit_representer(k, a0, gamma, f + 0.1 * rng.normal(size=f.shape))
    assert gcv.chosen_by == "generalised cross-validation" and gcv.r2 > 0.9
    assert np.allclose(fit_representer(k, a0, gamma, f, mu=0.5, block=7).model.a, fit_representer(k, a0, gamma, f, mu=0.5).model.a)


def test_linear_cka_reference_and_invariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert fid.linear_cka(x, 3.0 * x @ q + 7.0) == pytest.approx(1.0)  # rotation, scale and shift invariant
    y = rng.normal(size=(40, 3))
    xc, yc = x - x.mean(0), y - y.mean(0)
    # the kernel form: HSIC(XXᵀ, YYᵀ) / sqrt(HSIC(XXᵀ, XXᵀ) HSIC(YYᵀ, YYᵀ)) with centred Gram matrices
    kx, ky = xc @ xc.T, yc @ yc.T
    want = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
    assert fid.linear_cka(x, y) == pytest.approx(want)


def test_headline_tau_is_met_by_a_perfect_surrogate_and_the_raw_one_has_a_ceiling():
    """A surrogate equal to the centred network scores τ = 1 on the headline; on the raw (spec) definition it scores
    exactly the ceiling, the raw network against its own centred copy, which is below 1 for a non-negative embedding."""
    rng = np.random.default_rng(0)
    net = np.maximum(rng.normal(size=(300, 6)) + 0.5, 0)  # post-ReLU
    y = (net[:, 0] > net[:, 1]).astype(int)
    mu = net[:200].mean(0)
    lm = np.arange(0, 200, 10)
    sur = net - mu
    k_test = rng.random((100, len(lm)))
    top = np.argsort(-k_test, axis=1)[:, :3]
    rep = fid.fidelity_report(
        net_train=net[:200],
        net_test=net[200:],
        sur_train=sur[:200],
        sur_test=sur[200:],
        y_train=y[:200],
        y_test=y[200:],
        landmark_pos=lm,
        top=top,
        landmark_norms=np.ones(len(lm)),
        n_reference=50,
        k_test=k_test,
    )
    assert rep["kendall_tau"] == pytest.approx(1.0) and rep["kendall_tau_centred_network"] == rep["kendall_tau"]
    assert rep["kendall_tau_raw"] == pytest.approx(rep["kendall_tau_ceiling"]) and rep["kendall_tau_ceiling"] < 0.95
    assert rep["linear_cka"] == pytest.approx(1.0)
    kernel_top1 = np.argmax(k_test, axis=1)
    assert rep["precision_at_1_kernel"] == pytest.approx(float((y[lm][kernel_top1] == y[200:]).mean()))
    assert rep["precision_at_1"] == rep["precision_at_1_kernel"]  # equal norms: IS ranks like |k|
    assert rep["confidence_drop_fraction_removed"] == 1 and rep["confidence_drop_fraction"] == fid.CONFIDENCE_FRACTION


def test_hub_warning():
    from sslaudit.methods.krepes.pipeline import hub_warning

    warn, share = hub_warning(np.array([3] * 90 + list(range(10))), 2000)
    assert warn is not None and "hub" in warn and share == pytest.approx(0.91)  # landmark 3 is also in range(10)
    assert hub_warning(np.arange(100), 2000) == (None, pytest.approx(0.01))
