"""Does Q-Score tell correctly from wrongly classified samples? (labels used here only)

A linear probe (`sslaudit.evaluate.probes.linear_probe`) is trained on the training
representation; a test sample is positive ("correct") when the probe classifies it correctly.
Each label-free score is then judged by AUPRC (average precision, positive = correct) and
AUROC, beside the prevalence (the AUPRC of an uninformative score) and two label-free
baselines computed from the same representation: the embedding's ℓ2 norm, its largest and its
mean activation. AUPRC grows with the prevalence, so compare it with the prevalence, not with the
paper's ImageNet numbers.
"""

from __future__ import annotations

import numpy as np

from ...errors import UserError
from ...evaluate.probes import linear_probe
from ...seeding import numpy_rng


def subsample(n: int, limit: int | None, seed: int, key: str = "probe") -> np.ndarray:
    """Seeded, sorted positions of at most `limit` of n rows (all rows when limit is None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(numpy_rng(seed, "qscore", key).choice(n, size=int(limit), replace=False))


def probe_correct(train_h, train_y, test_h, test_y, *, seed: int = 0, max_train: int | None = None) -> tuple[np.ndarray, float]:
    """Boolean per-test-sample correctness of the linear probe, and its accuracy."""
    if train_y is None or test_y is None:
        raise UserError("the Q-Score evaluation needs labels (a linear probe decides which samples are correct); this dataset has none")
    rows = subsample(len(train_h), max_train, seed)
    res = linear_probe(train_h[rows], train_y[rows], test_h, test_y, seed=seed)
    return res.predictions == test_y, res.accuracy


def score_metrics(score: np.ndarray, correct: np.ndarray) -> dict:
    """AUPRC (positive = correct) and AUROC of `score`; None when only one class is present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    correct = np.asarray(correct, dtype=bool)
    if correct.all() or not correct.any():
        return {"auprc": None, "auroc": None}
    s = np.asarray(score, dtype=np.float64)
    return {"auprc": float(average_precision_score(correct, s)), "auroc": float(roc_auc_score(correct, s))}


def baseline_scores(h: np.ndarray) -> dict[str, np.ndarray]:
    """Label-free baselines a user would otherwise try: ℓ2 norm, largest and mean activation."""
    h = np.asarray(h, dtype=np.float64)
    return {"embedding_norm": np.linalg.norm(h, axis=1), "max_activation": h.max(axis=1), "mean_activation": h.mean(axis=1)}


def per_class(score: np.ndarray, correct: np.ndarray, y: np.ndarray) -> dict:
    """The within-class view: per true class, n, probe accuracy, mean score and AUROC (labels used).

    A pooled AUROC mixes "ranks the samples of a class" with "differs between easy and hard
    classes"; `within_class_auroc` is the mean over classes with both outcomes of the first.
    """
    from sklearn.metrics import roc_auc_score

    correct, y, s = np.asarray(correct, dtype=bool), np.asarray(y), np.asarray(score, dtype=np.float64)
    rows, aurocs = {}, []
    for c in np.unique(y):
        m = y == c
        acc = float(correct[m].mean())
        auc = float(roc_auc_score(correct[m], s[m])) if 0 < acc < 1 else None
        if auc is not None:
            aurocs.append(auc)
        rows[str(c.item() if hasattr(c, "item") else c)] = {"n": int(m.sum()), "accuracy": acc, "mean_score": float(s[m].mean()), "auroc": auc}
    return {"within_class_auroc": float(np.mean(aurocs)) if aurocs else None, "classes": rows}


def evaluate_scores(scores: dict[str, np.ndarray], baselines: dict[str, np.ndarray], correct: np.ndarray) -> dict:
    """Metrics of Q-Score ('qscore' key first-class), its variants and the baselines."""
    correct = np.asarray(correct, dtype=bool)
    out = {"prevalence": float(correct.mean()) if len(correct) else None, "n": int(len(correct)), "n_correct": int(correct.sum())}
    q = score_metrics(scores["qscore"], correct)
    out.update(q)
    out["variants"] = {k: score_metrics(v, correct) for k, v in scores.items() if k != "qscore"}
    out["baselines"] = {k: score_metrics(v, correct) for k, v in baselines.items()}
    return out
