"""Compression curve bookkeeping and the label-free feature ranking."""

import numpy as np
import pytest

from sslaudit.evaluate.probes import linear_probe
from sslaudit.methods.qscore import QScore, compression_curve, feature_ranking
from sslaudit.methods.qscore.compression import curve_sizes


def test_ranking_by_hand():
    rates = np.array([0.2, 0.0, 0.2, 0.4, 0.5])
    disc = np.array([True, False, True, False, False])
    # D first (tie on distance to the midpoint → feature number), then distance to [0.2, 0.37]:
    # f3 0.03, f4 0.13, f1 0.2
    assert feature_ranking(rates, disc, (0.2, 0.37)).tolist() == [0, 2, 3, 4, 1]


def test_curve_sizes():
    assert curve_sizes(10, 3, (0.25, 0.5, 1.0)) == [3, 5, 10]
    assert curve_sizes(10, 0, (0.01,)) == [1, 10]


def test_curve_bookkeeping():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    h = np.abs(rng.normal(size=(400, 20))) + np.eye(3)[y] @ np.abs(rng.normal(size=(3, 20))) * 2
    tr, te = slice(0, 300), slice(300, 400)
    qs = QScore(epsilon=1).fit(h[tr])
    res = compression_curve(h[tr], y[tr], h[te], y[te], rates=qs.activation_rate, discriminative=qs.discriminative, band=qs.fit_.band, fractions=(0.25, 0.5, 1.0), seed=0)
    n = [r["n_kept"] for r in res.curve]
    assert n == sorted(set(n)) and n[-1] == 20
    assert [r["fraction_kept"] for r in res.curve] == pytest.approx([k / 20 for k in n])
    assert sorted(res.ranking) == list(range(20)) and set(res.ranking[: int(qs.discriminative.sum())]) == set(np.flatnonzero(qs.discriminative))
    assert res.full_accuracy == pytest.approx(linear_probe(h[tr], y[tr], h[te], y[te]).accuracy)
    d_row = [r for r in res.curve if r["kept_is_discriminative"]]
    assert len(d_row) == 1 and d_row[0]["n_kept"] == qs.discriminative.sum() and res.discriminative_accuracy == d_row[0]["accuracy"]
    cols = np.sort(np.flatnonzero(qs.discriminative))
    assert res.discriminative_accuracy == pytest.approx(linear_probe(h[tr][:, cols], y[tr], h[te][:, cols], y[te]).accuracy)
    within = [r["fraction_kept"] for r in res.curve if r["accuracy"] >= res.full_accuracy - 0.01]
    assert res.droppable_fraction == pytest.approx(1 - min(within)) and 0 <= res.droppable_fraction < 1
    again = compression_curve(h[tr], y[tr], h[te], y[te], rates=qs.activation_rate, discriminative=qs.discriminative, band=qs.fit_.band, fractions=(0.25, 0.5, 1.0), seed=0)
    assert again.curve == res.curve  # same seed, same random baseline
