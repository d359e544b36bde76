"""Q-Score v6 and v1 against hand computation and a naive per-sample reference."""

import math

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.methods.qscore import QScore, qscore_v1, qscore_v6


def naive_v6(h, disc, eps, form="paper"):
    out = []
    for row in h:
        mu, sd = row.mean(), row.std()
        if sd == 0:
            out.append(0.0)
            continue
        scale = sd if form == "zscore" else 1.0
        zs = [(v - mu) / scale for j, v in enumerate(row) if disc[j] and v > mu + eps * sd]
        out.append(sum(zs) / len(zs) if zs else 0.0)
    return np.array(out)


def test_v6_matches_a_naive_loop():
    rng = np.random.default_rng(1)
    h = np.maximum(rng.normal(size=(300, 40)), 0)
    disc = rng.random(40) < 0.5
    for form in ("paper", "zscore"):
        q, n = qscore_v6(h, disc, 1.5, form)
        assert q == pytest.approx(naive_v6(h, disc, 1.5, form))
        assert (n == 0).sum() == (naive_v6(h, disc, 1.5, form) == 0).sum()


def test_v6_zscore_form_by_hand_mean_over_two_features():
    # [0, 0, 6, 6, 0, 0, 0, 0]: μ = 1.5, σ = √(2·4.5² + 6·1.5²)/√8 = √(54/8) → z(6) = 4.5/√6.75 ≈ 1.732
    h = np.array([[0, 0, 6, 6, 0, 0, 0, 0.0]])
    z = 4.5 / math.sqrt(6.75)
    q, n = qscore_v6(h, np.ones(8, bool), 1.0, "zscore")
    assert q[0] == pytest.approx(z) and n[0] == 2
    q, n = qscore_v6(h, np.array([0, 0, 1, 0, 0, 0, 0, 0], bool), 1.0, "zscore")
    assert q[0] == pytest.approx(z) and n[0] == 1
    q, n = qscore_v6(h, np.array([1, 1, 0, 0, 1, 1, 1, 1], bool), 1.0, "zscore")
    assert q[0] == 0 and n[0] == 0  # empty L ∩ D → 0


def test_v6_paper_form_by_hand_is_the_default():
    # [0, 0, 6, 2, 0, 0, 0, 0]: μ = 1, σ = √((36 + 4)/8 − 1) = 2 → L at ε = 1 is {j : h > 3} = {2};
    # Q = 6 − μ = 5 (unnormalised). With D = {2, 3}: only feature 2 is in L → still 5. z-form: 5/2.
    h = np.array([[0, 0, 6, 2, 0, 0, 0, 0.0]])
    disc = np.array([0, 0, 1, 1, 0, 0, 0, 0], bool)
    q, n = qscore_v6(h, disc, 1.0)
    assert q[0] == pytest.approx(5.0) and n[0] == 1
    assert qscore_v6(h, disc, 1.0, "zscore")[0][0] == pytest.approx(2.5)
    # at ε = 0.4 (threshold 1.8) feature 3 joins L: Q = mean(6 − 1, 2 − 1) = 3
    assert qscore_v6(h, disc, 0.4)[0][0] == pytest.approx(3.0)
    # the paper form scales with h; the z-form does not
    assert qscore_v6(3 * h, disc, 1.0)[0][0] == pytest.approx(15.0)
    assert qscore_v6(3 * h, disc, 1.0, "zscore")[0][0] == pytest.approx(2.5)
    with pytest.raises(UserError):
        qscore_v6(h, disc, 1.0, "sigma")


def test_estimator_form_option_and_both_forms_reported():
    rng = np.random.default_rng(4)
    h = np.maximum(rng.normal(size=(300, 32)), 0)
    paper, zs = QScore().fit(h), QScore(form="zscore").fit(h)
    a, b = paper.score(h), zs.score(h)
    assert paper.config.form == "paper" and paper.summary()["form"] == "paper"
    assert a.qscore.tolist() == a.qscore_paper.tolist() == b.qscore_paper.tolist()
    assert b.qscore.tolist() == b.qscore_zscore.tolist() == a.qscore_zscore.tolist()
    with pytest.raises(UserError):
        QScore(form="sigma")


def test_v1_by_hand():
    h = np.array([[0, 0, 0, 4.0], [3, 4, 0, 0], [0, 0, 0, 0]])
    # row 0: ĥ = e_4, ‖ĥ‖₁ = 1, max z = √3
    # row 1: μ = 1.75, σ = √(12.75/4); max z = (4 − 1.75)/σ; ĥ = [.6, .8, 0, 0] → ‖ĥ‖₁ = 1.4
    sd = math.sqrt(12.75 / 4)
    assert qscore_v1(h) == pytest.approx([math.sqrt(3), (4 - 1.75) / sd / 1.4, 0.0])


def test_v1_is_scale_invariant_and_prefers_sparse_rows():
    rng = np.random.default_rng(2)
    h = rng.gamma(1.0, size=(50, 16))
    assert qscore_v1(h * 7.0) == pytest.approx(qscore_v1(h))
    sparse, dense = np.zeros((1, 16)), np.ones((1, 16))
    sparse[0, 3], dense[0, 3] = 5, 5
    assert qscore_v1(sparse)[0] > qscore_v1(dense)[0]


def test_same_input_same_result_and_summary():
    rng = np.random.default_rng(3)
    h = np.maximum(rng.normal(size=(400, 64)), 0)
    a, b = QScore().fit(h), QScore().fit(h.copy())
    assert a.score(h).qscore.tolist() == b.score(h).qscore.tolist()
    s = a.summary()
    assert s["n_discriminative"] == int(a.discriminative.sum()) and s["epsilon"] in (4.0, 3.0, 2.0, 1.0)
    assert s["epsilon_met_target"] and s["train_empty_share"] <= 0.1
