"""Definitions of L_i, A_j, D, the ε choice and the empty share, on hand-computed examples."""

import math

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.methods.qscore import QScore, activation_rates, check_representation, fit_features, highly_activating, percentile_band, zscores

# 5 samples × 4 features. A spike row [0,0,0,a]: μ = a/4, σ = a√3/4, so the spike's z = √3 ≈ 1.73
# and the others' z = −1/√3. The all-zero row has σ = 0 and no highly activating feature.
H = np.array([[0, 0, 0, 4], [0, 0, 4, 0], [4, 0, 0, 0], [0, 0, 0, 8], [0, 0, 0, 0]], dtype=float)


def test_zscores_by_hand():
    z, ok = zscores(H)
    assert ok.tolist() == [True, True, True, True, False]
    assert z[0, 3] == pytest.approx(math.sqrt(3))
    assert z[0, 0] == pytest.approx(-1 / math.sqrt(3))
    assert (z[4] == 0).all()


def test_highly_activating_strict_threshold():
    assert highly_activating(H, 1.0).astype(int).tolist() == [[0, 0, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert not highly_activating(H, 2.0).any()  # √3 < 2
    # [0,0,a,a]: z = [−1,−1,1,1]; with ε = 1 the strict inequality keeps nothing
    assert not highly_activating(np.array([[0.0, 0, 3, 3]]), 1.0).any()
    assert highly_activating(np.array([[0.0, 0, 3, 3]]), 0.999).tolist() == [[False, False, True, True]]


def test_activation_rates_by_hand():
    assert activation_rates(highly_activating(H, 1.0)).tolist() == [0.2, 0.0, 0.2, 0.4]


def test_percentile_band_linear_and_inclusive():
    # sorted A = [0, .2, .2, .4]; linear percentile at 50 → position 1.5 → 0.2; at 95 → 2.85 → 0.2 + 0.85·0.2 = 0.37
    disc, lo, hi = percentile_band(np.array([0.2, 0.0, 0.2, 0.4]), (50, 95))
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.37)
    assert disc.tolist() == [True, False, True, False]  # A = 0.2 equals the lower bound: included
    disc, lo, hi = percentile_band(np.array([0.1, 0.3, 0.5]), (0, 100))
    assert disc.all() and (lo, hi) == (0.1, 0.5)  # both bounds inclusive
    with pytest.raises(UserError, match="LOW < HIGH"):
        percentile_band(np.array([0.1, 0.3]), (95, 50))


def test_fit_fixed_epsilon_and_empty_share():
    fit = fit_features(H, epsilon=1, percentiles=(50, 95))
    assert fit.discriminative.tolist() == [True, False, True, False]
    # L ∩ D: s0 {3}∩D = ∅, s1 {2}, s2 {0}, s3 ∅, s4 ∅ → 2 of 5 non-empty
    assert fit.nonempty_share == pytest.approx(0.4) and fit.empty_share == pytest.approx(0.6)
    qs = QScore(epsilon=1).fit(H)
    s = qs.score(H)
    assert s.n_discriminative.tolist() == [0, 1, 1, 0, 0]
    assert s.qscore == pytest.approx([0, 3, 3, 0, 0])  # paper form: one-hot 4 → 4 − μ(1) = 3
    assert s.qscore_zscore == pytest.approx([0, math.sqrt(3), math.sqrt(3), 0, 0])
    assert s.empty_share == pytest.approx(0.6)


def test_auto_epsilon_takes_the_largest_meeting_the_target():
    # d = 12, one spike per row: z_spike = √11 ≈ 3.32 → empty at ε = 4, present at ε = 3
    h = np.zeros((10, 12))
    h[np.arange(10), np.arange(10)] = 5.0
    fit = fit_features(h)
    assert fit.epsilon == 3.0 and fit.met_target
    assert [c["epsilon"] for c in fit.candidates] == [4.0, 3.0]
    assert fit.candidates[0]["nonempty_share"] == 0.0 and fit.nonempty_share == 1.0
    # A = 0.1 on features 0..9 and 0 on 10, 11: band [0.1, 0.1] → D = features 0..9
    assert fit.discriminative.tolist() == [True] * 10 + [False, False]


def test_auto_epsilon_when_no_candidate_meets_the_target():
    fit = fit_features(H)  # only ε = 1 gives any non-empty set (share 0.4 < 0.9)
    assert fit.epsilon == 1.0 and not fit.met_target and fit.empty_share == pytest.approx(0.6)
    assert fit_features(H, min_nonempty=0.4).met_target


def test_refuses_negative_values_and_names_the_option():
    neg = H - 1
    with pytest.raises(UserError, match="--allow-negative"):
        QScore().fit(neg)
    with pytest.raises(UserError, match="negative values"):
        check_representation(neg)
    relu = QScore(allow_negative=True).fit(neg)
    ref = QScore().fit(np.maximum(neg, 0))
    assert relu.score(neg).qscore == pytest.approx(ref.score(np.maximum(neg, 0)).qscore)


def test_shift_mode_leaves_v6_unchanged():
    rng = np.random.default_rng(0)
    h = rng.gamma(0.5, size=(200, 32))
    a = QScore(epsilon=2).fit(h)
    b = QScore(epsilon=2, allow_negative=True, negative="shift").fit(h - 3.0)
    assert b.discriminative.tolist() == a.discriminative.tolist()
    assert b.score(h - 3.0).qscore == pytest.approx(a.score(h).qscore)


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="NaN"):
        QScore().fit(np.array([[1.0, np.nan]]))
    with pytest.raises(UserError, match="not fitted"):
        QScore().score(H)
    with pytest.raises(UserError, match="same encoder"):
        QScore(epsilon=1).fit(H).score(np.ones((2, 5)))
    with pytest.raises(UserError, match="positive"):
        fit_features(H, epsilon=-1)
