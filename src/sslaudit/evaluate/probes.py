"""Label-using evaluation of a representation: linear probe, k-NN, collapse check.

Labels are used only here and in other evaluation code, never to fit an explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ProbeResult:
    accuracy: float
    predictions: np.ndarray  # test predictions
    probabilities: np.ndarray  # test class probabilities


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *, c: float = 1.0, max_iter: int = 1000, seed: int = 0) -> ProbeResult:
    """Multinomial logistic regression on standardised features (scikit-learn, lbfgs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    clf.fit(np.asarray(train_x, dtype=np.float64), train_y)
    proba = clf.predict_proba(np.asarray(test_x, dtype=np.float64))
    pred = clf.classes_[proba.argmax(1)]
    return ProbeResult(float((pred == test_y).mean()), pred, proba)


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 20, block: int = 2048) -> float:
    """Cosine k-NN with majority vote (ties to the nearest), computed in blocks."""
    a = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)
    b = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(a))
    classes = np.unique(train_y)
    correct = 0
    for s in range(0, len(b), block):
        sim = b[s : s + block] @ a.T
        nn_idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        labels = train_y[nn_idx]
        sims = np.take_along_axis(sim, nn_idx, 1)
        votes = np.stack([((labels == c) * (1 + 1e-6 * sims)).sum(1) for c in classes], 1)
        correct += int((classes[votes.argmax(1)] == test_y[s : s + block]).sum())
    return correct / max(len(b), 1)


def collapse_std(emb: np.ndarray) -> float:
    """Mean per-dimension std of ℓ2-normalised embeddings × √d: ≈1 spread out, → 0 collapsed."""
    z = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return float(z.std(0).mean() * np.sqrt(z.shape[1]))
