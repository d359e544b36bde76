"""AUPRC/AUROC bookkeeping vs hand computation and scikit-learn; probe correctness."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from sslaudit.errors import UserError
from sslaudit.evaluate.probes import linear_probe
from sslaudit.methods.qscore import baseline_scores, evaluate_scores, probe_correct, score_metrics


def test_metrics_by_hand():
    correct = np.array([1, 0, 1, 1], bool)
    score = np.array([0.9, 0.8, 0.3, 0.7])
    m = score_metrics(score, correct)
    # AUROC: positive > negative in 1 of 3 pairs; AP: ranks P N P P → (1 + 2/3 + 3/4) / 3
    assert m["auroc"] == pytest.approx(1 / 3)
    assert m["auprc"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_metrics_equal_sklearn_and_prevalence_reported():
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.7
    score = correct + rng.normal(size=500)
    h = np.abs(rng.normal(size=(500, 8)))
    ev = evaluate_scores({"qscore": score, "qscore_v1": -score}, baseline_scores(h), correct)
    assert ev["auprc"] == pytest.approx(average_precision_score(correct, score))
    assert ev["auroc"] == pytest.approx(roc_auc_score(correct, score))
    assert ev["variants"]["qscore_v1"]["auroc"] == pytest.approx(1 - ev["auroc"])
    assert ev["prevalence"] == pytest.approx(correct.mean())
    assert ev["baselines"]["embedding_norm"]["auroc"] == pytest.approx(roc_auc_score(correct, np.linalg.norm(h, axis=1)))
    assert ev["baselines"]["max_activation"]["auprc"] == pytest.approx(average_precision_score(correct, h.max(1)))


def test_one_class_gives_none():
    assert score_metrics(np.arange(3.0), np.ones(3, bool)) == {"auprc": None, "auroc": None}


def test_probe_correct_is_the_linear_probe():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
    xt, yt = rng.normal(size=(50, 5)), rng.integers(0, 3, 50)
    correct, acc = probe_correct(x, y, xt, yt, seed=0)
    ref = linear_probe(x, y, xt, yt, seed=0)
    assert acc == ref.accuracy and correct.tolist() == (ref.predictions == yt).tolist()
    sub, _ = probe_correct(x, y, xt, yt, seed=0, max_train=100)
    assert sub.tolist() == probe_correct(x, y, xt, yt, seed=0, max_train=100)[0].tolist()  # seeded subsample
    with pytest.raises(UserError, match="labels"):
        probe_correct(x, None, xt, yt)
