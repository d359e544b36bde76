"""Feature Alignment Gap (raw, normalised, Δ fallbacks) and group anchoring."""

import numpy as np
import pandas as pd
import pytest

from sslaudit.methods.krepes.alignment import agreement, alignment_gap, feature_scale, group_anchoring


def test_scale_fallbacks():
    assert feature_scale([1, 2, 3, 4, 5]) == (pytest.approx(2.0), "iqr")
    s, how = feature_scale([1, 1, 1, 2, 3, 1, 1])  # q25 = 1, q75 = 1.5
    assert how == "iqr" and s == pytest.approx(0.5)
    v = [0] * 8 + [1, 5]  # capital-gain style: IQR 0 and MAD 0 → standard deviation
    s, how = feature_scale(v)
    assert how == "std" and s == pytest.approx(np.std(v))
    assert feature_scale([4, 4, 4]) == (0.0, "equality")  # constant → equality test
    assert feature_scale(["x", None]) == (0.0, "equality")  # nothing numeric


def test_mad_step_of_the_chain():
    """IQR = 0 forces MAD = 0 under linear percentiles (half the values equal the median), so the
    MAD step is reached only through its own statistic: check that it is used when IQR is 0."""
    import sslaudit.methods.krepes.alignment as al

    orig = np.percentile
    try:
        al.np.percentile = lambda v, q: [1.0, 1.0]  # pretend IQR = 0
        s, how = al.feature_scale([0, 1, 2, 3, 10])
    finally:
        al.np.percentile = orig
    assert how == "mad" and s == pytest.approx(1.4826 * 1.0)


def test_agreement_by_hand():
    v = agreement(np.array([0.0, 10.0]), np.array([0.0, 1.0, 4.0]), True, 2.0)
    assert np.allclose(v, [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    v = agreement(np.array([0.0, 3.0]), np.array([0.0, 3.0]), True, 0.0)  # equality test
    assert np.allclose(v, np.eye(2))
    v = agreement(np.array(["a", "b"]), np.array(["a", "a", "b"]), False, 0.0)
    assert np.allclose(v, [[1, 1, 0], [0, 0, 1]])


def test_alignment_gap_hand_computed():
    train = pd.DataFrame({"sex": ["m", "f", "m", "f"], "age": [20, 30, 40, 50]})  # IQR of age = 15
    land = pd.DataFrame({"sex": ["m", "f", "f"], "age": [20, 35, 50]})
    test = pd.DataFrame({"sex": ["m", "f"], "age": [20, 50]})
    top = np.array([[0, 1], [2, 1]])
    scores = np.array([[3.0, 1.0], [1.0, 1.0]])
    df = alignment_gap(test, land, train, top, scores, n_boot=200, seed=0).set_index("feature")
    # sex: t0 agrees with l0 (w .75) not l1 → Ψ=.75, Ψ_rand=1/3; t1 agrees with l2 and l1 → Ψ=1, Ψ_rand=2/3
    raw = [0.75 - 1 / 3, 1 - 2 / 3]
    norm = [(0.75 - 1 / 3) / (2 / 3), (1 / 3) / (1 / 3)]
    assert df.loc["sex", "gap"] == pytest.approx(np.mean(raw))
    assert df.loc["sex", "gap_normalised"] == pytest.approx(np.mean(norm))
    assert df.loc["sex", "ci_low"] <= df.loc["sex", "gap"] <= df.loc["sex", "ci_high"]
    # age, Δ = IQR 15: t0 vs l0 = 1, vs l1 = 1−15/15 = 0, vs l2 = 0 → Ψ=.75, Ψ_rand=1/3
    #                  t1 vs l2 = 1, vs l1 = 1−15/15 = 0 → Ψ = .5, Ψ_rand = 1/3
    assert df.loc["age", "scale"] == pytest.approx(15.0) and df.loc["age", "scale_kind"] == "iqr"
    assert df.loc["age", "gap"] == pytest.approx(np.mean([0.75 - 1 / 3, 0.5 - 1 / 3]))


def test_planted_proxy_feature_shows_up():
    """Landmarks chosen (scored) by a hidden feature: that feature has the largest normalised gap."""
    rng = np.random.default_rng(0)
    m, t = 60, 200
    land = pd.DataFrame({"proxy": rng.integers(0, 4, m).astype(str), "noise": rng.integers(0, 4, m).astype(str), "num": rng.normal(size=m)})
    test = pd.DataFrame({"proxy": rng.integers(0, 4, t).astype(str), "noise": rng.integers(0, 4, t).astype(str), "num": rng.normal(size=t)})
    same = test["proxy"].to_numpy()[:, None] == land["proxy"].to_numpy()[None, :]
    score = same * 1.0 + 0.1 * rng.random((t, m))  # IS favours landmarks sharing the proxy
    top = np.argsort(-score, axis=1)[:, :5]
    df = alignment_gap(test, land, pd.concat([land, test]), top, np.take_along_axis(score, top, 1), n_boot=200).set_index("feature")
    assert df["gap_normalised"].idxmax() == "proxy"
    assert df.loc["proxy", "ci_low"] > 0.5
    assert df.loc["noise", "ci_low"] < 0.1 < df.loc["proxy", "ci_low"]


def test_group_anchoring_by_hand():
    df = group_anchoring("sex", ["m", "m", "f"], ["m", "f", "f", "f"], np.array([0, 1, 2]))
    p = df.set_index(["test_group", "landmark_group"])["probability"]
    assert p[("m", "m")] == 0.5 and p[("m", "f")] == 0.5 and p[("f", "f")] == 1.0
    assert df.set_index(["test_group", "landmark_group"])["base_rate"][("m", "f")] == 0.75
