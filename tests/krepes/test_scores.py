"""Influence scores, signs, top-K and concept scores against hand computations."""

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.methods.krepes.scores import concept_scores, fit_cav, influence_scores, n_distinct_top1, top_k


def test_influence_scores_and_signs_by_hand():
    k = np.array([[0.5, -1.0, 2.0]])  # one test point, three landmarks
    w = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])  # ‖w‖ = 5, 1, 1
    f = np.array([[1.0, -1.0]])
    score, sign = influence_scores(k, w, f, sign="radial")
    # IS = |k|·‖w_l‖ ; ⟨k w_l, f⟩ = 0.5·(3−4) = −0.5, −1·(0−1) = 1, 2·(1−0) = 2
    assert np.allclose(score, [[2.5, 1.0, 2.0]])
    assert sign.tolist() == [[-1, 1, 1]]
    top = top_k(score, 2)
    assert top.tolist() == [[0, 2]]
    assert np.allclose(np.linalg.norm(k[0][:, None] * w, axis=1), score[0])  # IS = ‖c_l(t)‖


def test_top_k_ties_and_bounds():
    s = np.array([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert top_k(s, 3).tolist() == [[1, 2, 0], [0, 1, 2]]
    assert top_k(s, 10).shape == (2, 4)
    with pytest.raises(UserError):
        top_k(s, 0)


def test_number_of_distinct_top1():
    top = np.array([[3, 1], [3, 2], [5, 3], [3, 0]])
    assert n_distinct_top1(top) == 2


def test_cav_recovers_a_planted_concept_and_its_sign():
    rng = np.random.default_rng(0)
    direction = np.array([0.0, 1.0, 0.0])
    pos = rng.normal(size=(60, 3)) + 2.0 * direction
    neg = rng.normal(size=(60, 3))
    cav = fit_cav("planted", pos, neg, seed=0)
    assert cav.vector @ direction > 0.9 and cav.accuracy > 0.8
    # landmark 0 moves the representation along the concept, landmark 1 against it, 2 orthogonally
    w = np.array([[0.0, 2.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    k = np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])
    s = concept_scores(k, w, cav)
    assert s[0, 0] > 0 and s[0, 1] < 0 and abs(s[0, 2]) < 0.3 * s[0, 0]
    assert s[1, 0] < 0  # a negative kernel value flips the contribution
    with pytest.raises(UserError):
        fit_cav("tiny", pos[:1], neg)
