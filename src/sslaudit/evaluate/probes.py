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


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 20) -> float:
    """Cosine k-NN with majority vote (ties to the nearest), through the house's exact faiss
    search (compute/knn.py), so no test × train similarity matrix is held: memory stays flat at
    65,536 training rows, where a dense block of 2,048 test rows took 2 GB with its argpartition."""
    from ..compute.knn import inner_product_search, unit_rows

    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if len(test_x) == 0:
        return 0.0
    sims, nn_idx = inner_product_search(unit_rows(test_x), unit_rows(train_x), k)
    labels = train_y[nn_idx]
    classes = np.unique(train_y)
    votes = np.stack([((labels == c) * (1 + 1e-6 * sims)).sum(1) for c in classes], 1)
    return float((classes[votes.argmax(1)] == test_y).mean())


def collapse_std(emb: np.ndarray) -> float:
    """Mean per-dimension std of ℓ2-normalised embeddings × √d: ≈1 spread out, → 0 collapsed."""
    z = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return float(z.std(0).mean() * np.sqrt(z.shape[1]))
