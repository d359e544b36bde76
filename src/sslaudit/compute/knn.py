"""Exact cosine nearest-neighbour search (faiss flat inner product), the one k-NN of the house.

Used by KREPES's precision@1 baseline, the influence duplicate and neighbour searches and the
embedding outlier baseline; no dense query × base similarity matrix is held.
"""

from __future__ import annotations

import numpy as np


def unit_rows(z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, contiguous; zero rows stay zero)."""
    z = np.ascontiguousarray(z, dtype=np.float32)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return np.ascontiguousarray(z / np.where(norm > 0, norm, 1.0), dtype=np.float32)


def inner_product_search(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, positions), each len(queries) × k, of the k largest inner products with the
    rows of `base`, largest first (pass unit rows for cosine). Exact: faiss IndexFlatIP, float32,
    as many threads as torch uses."""
    import faiss
    import torch

    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    b = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatIP(b.shape[1])
    index.add(b)
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), int(min(k, len(b))))
    return sims, idx.astype(np.int64)


def self_search(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k + 1 most cosine-similar rows of every row of z among all rows (itself included)."""
    u = unit_rows(z)
    return inner_product_search(u, u, k + 1)
