"""Fidelity and quality diagnostics of the surrogate — the ONLY place KREPES touches labels.

- delta_accuracy: linear-probe accuracy of the surrogate minus that of the network (fractions).
- kendall_tau (the headline): mean over test points of Kendall τ-b between the cosine similarities
  to R seeded training points in the network's embedding centred by its training mean and in the
  (centred) surrogate — like compared with like. kendall_tau_raw is the spec's original definition
  (the raw, non-negative post-ReLU network embedding against the centred surrogate); a perfect
  surrogate cannot reach 1 on it: kendall_tau_ceiling = τ of the raw network against its own
  centred copy is its ceiling (0.75 on digits, 0.58 on Fashion-MNIST). kendall_tau_centred_network
  = kendall_tau (the old name, kept).
- linear_cka: linear CKA between the centred network and surrogate embeddings of the test points.
- precision_at_1: the top-1 landmark by IS shares the test point's label, against the
  cosine-nearest landmark in the network's embedding (the baseline a user would otherwise use)
  and the largest |k| (precision_at_1_kernel: the eNTK's nearest landmark, with no SSL pull).
- confidence_drop: with the landmarks as a labelled reference set in the centred surrogate,
  confidence = share of the k = min(50, m/4) cosine-nearest landmarks carrying the test point's
  label; drop = confidence with all landmarks − confidence without the removed ones; top-10 by IS
  against 10 random ones (seeded per test point). confidence_drop_fraction_*: the same with the
  top CONFIDENCE_FRACTION·m landmarks by IS removed (and as many random ones), comparable across m.
- sign_<contrastive|radial> (with the weights): how well an attract/repel sign separates labels.
  The attractive ranking orders the landmarks by IS·sign (most attractive first), the repulsive
  ranking by −IS·sign; a meaningful sign gives the attractive ranking a high precision@1 (its
  top landmark shares the test point's label), the repulsive one a low one, and removing the top
  10 attractive landmarks costs more confidence than removing the top 10 repulsive ones.
- class_coverage: how many landmarks, ranked by ‖w_l‖ (‖ΔÃ_l‖), it takes to cover every class
  present among the landmarks.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from ...evaluate.probes import linear_probe
from ...seeding import numpy_rng
from .alignment import group_anchoring


CONFIDENCE_FRACTION = 0.01  # share of the landmarks removed by the m-comparable confidence drop


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


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same rows: ‖YᵀX‖²_F / (‖XᵀX‖_F‖YᵀY‖_F), columns centred."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(np.linalg.norm(y.T @ x) ** 2 / den) if den > 0 else float("nan")


def top_by_score(k_test: np.ndarray, landmark_norms: np.ndarray, n: int) -> np.ndarray:
    """Positions (T×n) of the n largest IS = |k|·‖w_l‖ per row, largest first (ties → lower position)."""
    score = np.abs(np.asarray(k_test, dtype=np.float64)) * np.asarray(landmark_norms, dtype=np.float64)[None, :]
    n = int(min(n, score.shape[1]))
    return np.argsort(-score, axis=1, kind="stable")[:, :n]


def nearest(queries, base, k: int) -> np.ndarray:
    """Positions (T×k) of the k cosine-nearest rows of `base` for every query, nearest first.

    Exact inner-product search on unit vectors (compute.knn), so no dense T×m similarity matrix is held.
    """
    from ...compute.knn import inner_product_search

    q, b = _unit(queries).astype(np.float32), _unit(base).astype(np.float32)
    return inner_product_search(q, b, k)[1]


def precision_at_1(top1, net_test, net_landmarks, landmark_y, test_y) -> dict:
    baseline = nearest(net_test, net_landmarks, 1)[:, 0]
    ly, ty = np.asarray(landmark_y), np.asarray(test_y)
    return {"precision_at_1": float((ly[np.asarray(top1)] == ty).mean()), "precision_at_1_baseline": float((ly[baseline] == ty).mean())}


def _confidence(sim_row: np.ndarray, keep: np.ndarray, ly: np.ndarray, label, k: int) -> float:
    s = np.where(keep, sim_row, -np.inf)
    nn = np.argpartition(-s, k - 1)[:k]
    return float((ly[nn] == label).mean())


def _confidence_from_list(nn_row: np.ndarray, removed: np.ndarray, ly: np.ndarray, label, k: int) -> float:
    """Share of the first k neighbours (nearest first) that are not removed and carry `label`."""
    kept = nn_row[~np.isin(nn_row, removed)][:k]
    return float((ly[kept] == label).mean())


def confidence_drop(sur_test, sur_landmarks, landmark_y, test_y, top, n_remove: int = 10, seed: int = 0) -> dict:
    """With at most n_remove removals, the k + n_remove nearest landmarks (faiss) hold every k-NN set needed."""
    m = len(sur_landmarks)
    k = max(1, min(50, m // 4))
    n_remove = min(n_remove, m - k)
    nn = nearest(sur_test, sur_landmarks, k + n_remove)
    ly = np.asarray(landmark_y)
    drops_top, drops_rand = [], []
    for i in range(len(nn)):
        base = float((ly[nn[i, :k]] == test_y[i]).mean())
        drops_top.append(base - _confidence_from_list(nn[i], np.asarray(top[i])[:n_remove], ly, test_y[i], k))
        rand = numpy_rng(seed, "krepes", "confidence-random", i).choice(m, n_remove, replace=False)
        drops_rand.append(base - _confidence_from_list(nn[i], rand, ly, test_y[i], k))
    return {"confidence_drop_top": float(np.mean(drops_top)), "confidence_drop_random": float(np.mean(drops_rand)), "confidence_k": k, "confidence_removed": n_remove}


def confidence_drop_dense(sur_test, sur_landmarks, landmark_y, test_y, top, n_remove: int = 10, seed: int = 0) -> dict:
    """The dense T×m reference of `confidence_drop` (tests)."""
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
    return {"confidence_drop_top": float(np.mean(drops_top)), "confidence_drop_random": float(np.mean(drops_rand)), "confidence_k": k, "confidence_removed": n_remove}


def sign_fidelity(k_test, weights, sur_test, sur_landmarks, landmark_y, test_y, sign: str, n: int = 10, seed: int = 0) -> dict:
    """Label agreement of the attractive and repulsive rankings of one sign (see the module docstring)."""
    from .scores import influence_scores

    score, sgn = influence_scores(k_test, weights, sur_test, sur_landmarks, sign)
    signed = score * sgn
    ly, ty = np.asarray(landmark_y), np.asarray(test_y)
    n = int(min(n, score.shape[1]))
    attract = np.argsort(-signed, axis=1, kind="stable")[:, :n]
    repel = np.argsort(signed, axis=1, kind="stable")[:, :n]
    top_is = np.argsort(-score, axis=1, kind="stable")[:, :n]
    out = {
        "sign": sign,
        "precision_at_1_attract": float((ly[attract[:, 0]] == ty).mean()),
        "precision_at_1_repel": float((ly[repel[:, 0]] == ty).mean()),
        f"same_label_top{n}_attract": float((ly[attract] == ty[:, None]).mean()),
        f"same_label_top{n}_repel": float((ly[repel] == ty[:, None]).mean()),
        f"attract_share_top{n}_by_is": float((np.take_along_axis(sgn, top_is, 1) > 0).mean()),
        "attract_share": float((sgn > 0).mean()),
    }
    out["confidence_drop_attract"] = confidence_drop(sur_test, sur_landmarks, ly, ty, attract, n_remove=n, seed=seed)["confidence_drop_top"]
    out["confidence_drop_repel"] = confidence_drop(sur_test, sur_landmarks, ly, ty, repel, n_remove=n, seed=seed)["confidence_drop_top"]
    return out


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


def probe_rows(n_train: int, size: int | None, seed: int = 0) -> np.ndarray | None:
    """The seeded training subsample the linear probes are fitted on (None = all n)."""
    if size is None or n_train <= size:
        return None
    return np.sort(numpy_rng(seed, "krepes", "probe-sample").choice(n_train, size=size, replace=False))


def fidelity_report(
    *,
    net_train,
    net_test,
    sur_train,
    sur_test,
    y_train,
    y_test,
    landmark_pos,
    top,
    landmark_norms,
    n_reference: int = 500,
    seed: int = 0,
    network_accuracy: float | None = None,
    probe: bool = True,
    probe_sample: int | None = None,
    net_mean: np.ndarray | None = None,
    k_test: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict:
    """All diagnostics for one surrogate. `landmark_pos` index the training rows; `top` (T×K) the landmark list.

    `net_train` / `sur_train` need only `len()` and indexing by an integer array (lazy row
    providers at scale). `probe_sample`: fit the linear probes on a seeded subsample of that many
    training rows (None = all); `net_mean`: the network's mean training embedding if already known.
    `probe=False` skips the linear probes (Δ accuracy), the costly part, e.g. for curves over λ.
    `k_test` (T×m kernel rows of the test points) adds the plain-|k| precision@1 and the confidence
    drop at a fixed fraction of m; with `weights` (the surrogate's score weights, m×r) also the
    label agreement of both attract/repel signs (`sign_fidelity`).
    """
    n = len(net_train)
    ref = reference_rows(n, n_reference, seed)
    ly = np.asarray(y_train)[landmark_pos]
    out = {}
    if probe:
        pr = probe_rows(n, probe_sample, seed)
        idx = np.arange(n) if pr is None else pr
        out = delta_accuracy(net_train[idx], net_test, sur_train[idx], sur_test, np.asarray(y_train)[idx], y_test, seed, network_accuracy)
        out["probe_train_rows"] = int(len(idx))
    net_ref, sur_ref = np.asarray(net_train[ref], dtype=np.float64), sur_train[ref]
    mu = np.asarray(net_train, dtype=np.float64).mean(0) if net_mean is None else np.asarray(net_mean, dtype=np.float64)
    net_test = np.asarray(net_test, dtype=np.float64)
    out["kendall_tau"] = kendall_tau(net_test - mu, net_ref - mu, sur_test, sur_ref)
    out["kendall_tau_centred_network"] = out["kendall_tau"]
    out["kendall_tau_raw"] = kendall_tau(net_test, net_ref, sur_test, sur_ref)
    out["kendall_tau_ceiling"] = kendall_tau(net_test, net_ref, net_test - mu, net_ref - mu)
    out["linear_cka"] = linear_cka(net_test - mu, sur_test)
    net_lm = net_train[landmark_pos]
    out.update(precision_at_1(top[:, 0], net_test, net_lm, ly, y_test))
    out["n_distinct_top1_baseline"] = int(len(np.unique(nearest(net_test, net_lm, 1)[:, 0]))) if len(net_test) else 0
    out.update(confidence_drop(sur_test, sur_train[landmark_pos], ly, y_test, top, seed=seed))
    out["confidence_drop_ratio"] = out["confidence_drop_top"] / out["confidence_drop_random"] if out["confidence_drop_random"] > 0 else None
    if k_test is not None:
        k_test = np.asarray(k_test, dtype=np.float64)
        kernel_top1 = np.argmax(np.abs(k_test), axis=1)
        out["precision_at_1_kernel"] = float((ly[kernel_top1] == np.asarray(y_test)).mean())
        out["n_distinct_top1_kernel"] = int(len(np.unique(kernel_top1)))
        n_frac = max(1, int(round(CONFIDENCE_FRACTION * len(landmark_pos))))
        frac = confidence_drop(sur_test, sur_train[landmark_pos], ly, y_test, top_by_score(k_test, landmark_norms, n_frac), n_remove=n_frac, seed=seed)
        out.update(
            {
                "confidence_drop_fraction": CONFIDENCE_FRACTION,
                "confidence_drop_fraction_removed": frac["confidence_removed"],
                "confidence_drop_fraction_top": frac["confidence_drop_top"],
                "confidence_drop_fraction_random": frac["confidence_drop_random"],
                "confidence_drop_fraction_ratio": frac["confidence_drop_top"] / frac["confidence_drop_random"] if frac["confidence_drop_random"] > 0 else None,
            }
        )
    if k_test is not None and weights is not None:
        from .scores import SIGNS

        sur_lm = np.asarray(sur_train[landmark_pos], dtype=np.float64)
        for sign in SIGNS:
            out[f"sign_{sign}"] = sign_fidelity(k_test, weights, sur_test, sur_lm, ly, y_test, sign, seed=seed)
    out["class_coverage"] = class_coverage(landmark_norms, ly)
    out["n_classes_among_landmarks"] = int(len(np.unique(ly)))
    out["n_reference"] = int(len(ref))
    return out


def label_anchoring(y_test, y_train, landmark_pos, top1):
    """Group anchoring with the class label as the group (for data without protected attributes)."""
    return group_anchoring("label", np.asarray(y_test), np.asarray(y_train)[landmark_pos], top1)
