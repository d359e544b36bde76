"""Fidelity and quality diagnostics of the surrogate — the ONLY place KREPES touches labels.

- delta_accuracy: linear-probe accuracy of the surrogate minus that of the network (fractions).
- kendall_tau: mean over test points of Kendall τ-b between the cosine similarities to R seeded
  training points in the network's embedding and in the centred surrogate (the spec's definition);
  kendall_tau_centred_network also centres the network's (non-negative, post-ReLU) embedding by its
  training mean, so both sides compare directions around the data's centre.
- precision_at_1: the top-1 landmark by IS shares the test point's label, against the
  cosine-nearest landmark in the network's embedding (the baseline a user would otherwise use).
- confidence_drop: with the landmarks as a labelled reference set in the centred surrogate,
  confidence = share of the k = min(50, m/4) cosine-nearest landmarks carrying the test point's
  label; drop = confidence with all landmarks − confidence without the removed ones; top-10 by IS
  against 10 random ones (seeded per test point).
- class_coverage: how many landmarks, ranked by ‖w_l‖ (‖ΔÃ_l‖), it takes to cover every class
  present among the landmarks.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from ...evaluate.probes import linear_probe
from ...seeding import numpy_rng
from .alignment import group_anchoring


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def delta_accuracy(net_train, net_test, sur_train, sur_test, y_train, y_test, seed: int = 0, network_accuracy: float | None = None) -> dict:
    """`network_accuracy`: the network's probe accuracy when already measured (it does not change between surrogates)."""
    net = linear_probe(net_train, y_train, net_test, y_test, seed=seed).accuracy if network_accuracy is None else network_accuracy
    sur = linear_probe(sur_train, y_train, sur_test, y_test, seed=seed).accuracy
    return {"network_accuracy": net, "surrogate_accuracy": sur, "delta_accuracy": sur - net}


def reference_rows(n_train: int, r: int = 500, seed: int = 0) -> np.ndarray:
    """The R seeded training positions of the Kendall τ comparison."""
    return np.sort(numpy_rng(seed, "krepes", "tau-reference").choice(n_train, size=min(r, n_train), replace=False))


def kendall_tau(net_test, net_ref, sur_test, sur_ref) -> float:
    a = _unit(net_test) @ _unit(net_ref).T
    b = _unit(sur_test) @ _unit(sur_ref).T
    taus = [kendalltau(a[i], b[i], variant="b").statistic for i in range(len(a))]
    taus = np.asarray(taus, dtype=np.float64)
    return float(np.nanmean(taus)) if np.isfinite(taus).any() else float("nan")


def precision_at_1(top1, net_test, net_landmarks, landmark_y, test_y) -> dict:
    baseline = (_unit(net_test) @ _unit(net_landmarks).T).argmax(1)
    ly, ty = np.asarray(landmark_y), np.asarray(test_y)
    return {"precision_at_1": float((ly[np.asarray(top1)] == ty).mean()),
            "precision_at_1_baseline": float((ly[baseline] == ty).mean())}


def _confidence(sim_row: np.ndarray, keep: np.ndarray, ly: np.ndarray, label, k: int) -> float:
    s = np.where(keep, sim_row, -np.inf)
    nn = np.argpartition(-s, k - 1)[:k]
    return float((ly[nn] == label).mean())


def confidence_drop(sur_test, sur_landmarks, landmark_y, test_y, top, n_remove: int = 10, seed: int = 0) -> dict:
    m = len(sur_landmarks)
    k = max(1, min(50, m // 4))
    n_remove = min(n_remove, m - k)
    sim = _unit(sur_test) @ _unit(sur_landmarks).T
    ly = np.asarray(landmark_y)
    drops_top, drops_rand = [], []
    for i in range(len(sim)):
        full = np.ones(m, dtype=bool)
        base = _confidence(sim[i], full, ly, test_y[i], k)
        keep = full.copy()
        keep[np.asarray(top[i])[:n_remove]] = False
        drops_top.append(base - _confidence(sim[i], keep, ly, test_y[i], k))
        keep = full.copy()
        keep[numpy_rng(seed, "krepes", "confidence-random", i).choice(m, n_remove, replace=False)] = False
        drops_rand.append(base - _confidence(sim[i], keep, ly, test_y[i], k))
    return {"confidence_drop_top": float(np.mean(drops_top)), "confidence_drop_random": float(np.mean(drops_rand)),
            "confidence_k": k, "confidence_removed": n_remove}


def class_coverage(landmark_norms, landmark_y) -> int:
    order = np.argsort(-np.asarray(landmark_norms), kind="stable")
    ly = np.asarray(landmark_y)[order]
    need = set(np.unique(ly).tolist())
    seen: set = set()
    for i, y in enumerate(ly.tolist()):
        seen.add(y)
        if seen == need:
            return i + 1
    return len(ly)


def fidelity_report(*, net_train, net_test, sur_train, sur_test, y_train, y_test, landmark_pos, top, landmark_norms,
                    n_reference: int = 500, seed: int = 0, network_accuracy: float | None = None, probe: bool = True) -> dict:
    """All diagnostics for one surrogate. `landmark_pos` index the training rows; `top` (T×K) the landmark list.

    `probe=False` skips the linear probes (Δ accuracy), the costly part, e.g. for curves over λ.
    """
    ref = reference_rows(len(net_train), n_reference, seed)
    ly = np.asarray(y_train)[landmark_pos]
    out = delta_accuracy(net_train, net_test, sur_train, sur_test, y_train, y_test, seed, network_accuracy) if probe else {}
    out["kendall_tau"] = kendall_tau(net_test, net_train[ref], sur_test, sur_train[ref])
    mu = np.asarray(net_train, dtype=np.float64).mean(0)  # variant: the network's embedding centred like the surrogate
    out["kendall_tau_centred_network"] = kendall_tau(net_test - mu, net_train[ref] - mu, sur_test, sur_train[ref])
    out.update(precision_at_1(top[:, 0], net_test, net_train[landmark_pos], ly, y_test))
    out.update(confidence_drop(sur_test, sur_train[landmark_pos], ly, y_test, top, seed=seed))
    out["class_coverage"] = class_coverage(landmark_norms, ly)
    out["n_classes_among_landmarks"] = int(len(np.unique(ly)))
    out["n_reference"] = int(len(ref))
    return out


def label_anchoring(y_test, y_train, landmark_pos, top1):
    """Group anchoring with the class label as the group (for data without protected attributes)."""
    return group_anchoring("label", np.asarray(y_test), np.asarray(y_train)[landmark_pos], top1)
