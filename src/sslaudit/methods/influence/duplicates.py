"""Duplicate search over all training pairs without an n × n matrix.

Normalised influence I_ij / √(s_i s_j) is the cosine of whitened gradients, so the most
mutually influential pairs are nearest neighbours of the ℓ2-normalised (sketched) whitened
gradients: a faiss inner-product index finds each example's nearest neighbours, the candidate
pairs are kept once (i < j, never i = j), and the caller rescores them exactly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...errors import UserError


def unit_rows(z: np.ndarray) -> np.ndarray:
    z = np.ascontiguousarray(z, dtype=np.float32)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return np.ascontiguousarray(z / np.where(norm > 0, norm, 1.0), dtype=np.float32)


def nearest_pairs(z: np.ndarray, neighbours: int = 10) -> pd.DataFrame:
    """Pairs (i, j), i < j, of rows that are among each other's `neighbours` most cosine-similar.

    Columns i, j (row positions) and score (cosine), highest first, each pair once.
    """
    import faiss

    n = len(z)
    if n < 2:
        return pd.DataFrame({"i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64), "score": np.zeros(0)})
    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    u = unit_rows(z)
    index = faiss.IndexFlatIP(u.shape[1])
    index.add(u)
    k = min(int(neighbours) + 1, n)
    sims, idx = index.search(u, k)
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
