"""The evaluation probes against naive references."""

import numpy as np

from sslaudit.evaluate.probes import knn_accuracy


def dense_knn_accuracy(a, ya, b, yb, k):
    """The textbook version: every cosine similarity, a full sort, a weighted vote."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    sim = b @ a.T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    classes = np.unique(ya)
    votes = np.stack([((ya[idx] == c) * (1 + 1e-6 * np.take_along_axis(sim, idx, 1))).sum(1) for c in classes], 1)
    return float((classes[votes.argmax(1)] == yb).mean())


def test_knn_accuracy_matches_the_dense_reference():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    ya, yb = rng.integers(0, 5, 3000), rng.integers(0, 5, 700)
    a = (centres[ya] + 1.5 * rng.normal(size=(3000, 16))).astype(np.float32)
    b = (centres[yb] + 1.5 * rng.normal(size=(700, 16))).astype(np.float32)
    for k in (1, 7, 20):
        got, want = knn_accuracy(a, ya, b, yb, k=k), dense_knn_accuracy(a, ya, b, yb, k)
        assert abs(got - want) <= 2 / len(yb)  # at most a float tie at the k-th neighbour differs
        assert 0.3 < got < 1.0  # the planted clusters are found, not perfectly


def test_knn_accuracy_with_fewer_training_rows_than_k():
    a = np.eye(3, dtype=np.float32)  # all three rows vote, one each: the tie goes to the nearest
    assert knn_accuracy(a, np.array([0, 1, 2]), a, np.array([0, 1, 2]), k=20) == 1.0
