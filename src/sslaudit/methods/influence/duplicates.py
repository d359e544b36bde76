"""Duplicate search over all training pairs without an n × n matrix.

Normalised influence I_ij / √(s_i s_j) is the cosine of whitened gradients, so the most
mutually influential pairs are nearest neighbours of the ℓ2-normalised (sketched) whitened
gradients: a faiss inner-product index finds each example's nearest neighbours, the candidate
pairs are kept once (i < j, never i = j), and the caller rescores them exactly.

Per query: ranking a global list of pairs lets same-class look-alikes, whose gradients are
similar, drown the near copies of any one example. `query_neighbours` instead ranks, for every
example, all the other examples by normalised influence (its own top-k), and `partner_ranks` /
`retrieval_metrics` score planted copies that way (recall@k, MRR).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...compute.knn import self_search, unit_rows
from ...errors import UserError


def query_neighbours(z: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the k most cosine-similar other rows (n × k positions, n × k cosines), best first.

    Exact search (faiss flat inner product); the row itself is dropped even when an exact copy
    ties with it. Ties between others are broken by position.
    """
    n = len(z)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0))
    sims, idx = self_search(z, k)
    keep = idx != np.arange(n)[:, None]
    # the row's own slot (or, if it fell off behind exact ties, the last slot) is dropped
    drop = np.where(~keep.all(1), (~keep).argmax(1), k)
    mask = np.ones_like(keep)
    mask[np.arange(n), drop] = False
    return idx[mask].reshape(n, k).astype(np.int64), sims[mask].reshape(n, k).astype(np.float64)


def partner_ranks(z: np.ndarray, queries, partners) -> np.ndarray:
    """Rank (1 = best) of each query's partner among all other rows, by cosine of the rows of z.

    Exact and tie-pessimistic: rank = 1 + the number of other rows (not the query, not the
    partner) whose cosine to the query is ≥ the partner's.
    """
    u = unit_rows(z).astype(np.float64)
    q, p = np.asarray(queries, dtype=np.int64), np.asarray(partners, dtype=np.int64)
    out = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), 256):
        sims = u[q[s : s + 256]] @ u.T
        rows = np.arange(len(sims))
        target = sims[rows, p[s : s + 256]]
        ge = sims >= target[:, None]
        ge[rows, q[s : s + 256]] = False
        ge[rows, p[s : s + 256]] = False
        out[s : s + 256] = 1 + ge.sum(1)
    return out


def retrieval_metrics(ranks, ks=(1, 5, 10, 50)) -> dict:
    """recall@k (share of queries whose partner ranks ≤ k) and mean reciprocal rank."""
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return {"n_queries": 0, "mrr": None, **{f"recall_at_{k}": None for k in ks}}
    return {"n_queries": int(len(r)), "mrr": float((1.0 / r).mean()), "median_rank": float(np.median(r)), **{f"recall_at_{k}": float((r <= k).mean()) for k in ks}}


def nearest_pairs(z: np.ndarray, neighbours: int = 10) -> pd.DataFrame:
    """Pairs (i, j), i < j, of rows that are among each other's `neighbours` most cosine-similar.

    Columns i, j (row positions) and score (cosine), highest first, each pair once.
    """
    n = len(z)
    if n < 2:
        return pd.DataFrame({"i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64), "score": np.zeros(0)})
    k = min(int(neighbours) + 1, n)
    sims, idx = self_search(z, k - 1)
    rows = np.repeat(np.arange(n), k)
    cols, vals = idx.ravel(), sims.ravel().astype(np.float64)
    keep = (cols >= 0) & (cols != rows)
    a, b = np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep])
    df = pd.DataFrame({"i": a.astype(np.int64), "j": b.astype(np.int64), "score": vals[keep]})
    df = df.sort_values(["score", "i", "j"], ascending=[False, True, True], kind="mergesort")
    return df.drop_duplicates(["i", "j"], keep="first").reset_index(drop=True)


def check_pairs(k: int) -> int:
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise UserError(f"--pairs {k!r} is not a whole number: give how many duplicate pairs to keep, e.g. 100") from None
    if k < 1:
        raise UserError(f"--pairs {k}: keep at least 1 duplicate pair")
    return k
