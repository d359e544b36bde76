"""Embedding-space baselines a user would otherwise reach for, computed in the same run.

- outliers: mean cosine distance to the k nearest other training examples (faiss, exact);
- duplicates: the most cosine-similar pairs of embeddings (the same search as influence uses).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...compute.knn import self_search
from .duplicates import nearest_pairs


def knn_distance(emb: np.ndarray, k: int = 10) -> np.ndarray:
    """Mean cosine distance (1 − cos) of each row to its k nearest other rows: high = outlying."""
    n = len(emb)
    if n < 2:
        return np.zeros(n)
    kk = min(int(k) + 1, n)
    sims, idx = self_search(emb, kk - 1)
    own = idx == np.arange(n)[:, None]
    # drop the row itself (or, for exact duplicates, any one of the tied copies)
    first = np.where(own.any(1), own.argmax(1), kk - 1)
    mask = np.ones_like(own)
    mask[np.arange(n), first] = False
    d = (1.0 - sims.astype(np.float64)) * mask
    return d.sum(1) / np.maximum(mask.sum(1), 1)


def embedding_duplicates(emb: np.ndarray, k: int, neighbours: int = 10) -> pd.DataFrame:
    """The k most cosine-similar embedding pairs (i < j, row positions), highest first."""
    return nearest_pairs(emb, neighbours).head(int(k)).reset_index(drop=True)
