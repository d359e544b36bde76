"""Streaming scores: self-influence, query pairwise influence and sketches, block by block.

One pass over the training rows computes each block's per-sample gradients, whitens them with
the preconditioner and reduces them at once (‖w‖², w·w_q for the queries, the sketch Sw), so
the per-sample gradients of all examples are never held together. Blocks run through
`sslaudit.engine` (`score_block` is a top-level function, as the Ray engine needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...engine import block_ranges, get_engine
from .gradients import factors_supported, per_sample_factors, per_sample_gradients


@dataclass
class BlockScores:
    self_influence: np.ndarray  # (n,) float64
    sketch: np.ndarray | None  # (n, p) float32
    pairwise: np.ndarray | None  # (n, Q) float64: w_i · w_q


def whitened_gradients(encoder, loss, layers, preconditioner, xb: torch.Tensor) -> torch.Tensor:
    """(b, D) whitened gradients of a block: from per-layer factors where every layer allows it (never
    forming the per-sample weight gradients), else from `per_sample_gradients`."""
    if preconditioner.strategy != "identity" and factors_supported(encoder, layers):
        return preconditioner.whiten_factors(per_sample_factors(encoder, loss, xb, layers)).detach()
    return preconditioner.whiten(per_sample_gradients(encoder, loss, xb, layers)).detach()


def score_block(rows, *, encoder, loss, layers, preconditioner, x, sketch=None, queries=None, device="cpu"):
    """Scores of the training rows [rows[0], rows[1])."""
    xb = torch.as_tensor(np.asarray(x[rows[0] : rows[1]]), dtype=torch.float32, device=device)
    w = whitened_gradients(encoder, loss, layers, preconditioner, xb)
    out = {"self": float64_products(w, None).cpu().numpy()}
    if sketch is not None:
        out["sketch"] = sketch(w).cpu().numpy()
    if queries is not None:
        out["pairwise"] = float64_products(w, queries).cpu().numpy()
    return out


PRODUCT_COLUMNS = 1 << 20  # columns converted to float64 at a time (a ResNet-18's whitened rows have 11M)


def float64_products(w: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
    """w·qᵀ (or the squared row norms of w when q is None) accumulated in float64, a block of columns at a
    time: float64 copies of whole rows (89 MB each for a ResNet-18, and of every query) are never made."""
    out = None
    for s in range(0, w.shape[1], PRODUCT_COLUMNS):
        wc = w[:, s : s + PRODUCT_COLUMNS].double()
        part = wc.pow(2).sum(1) if q is None else wc @ q[:, s : s + PRODUCT_COLUMNS].to(w.device).double().t()
        out = part if out is None else out + part
    if out is None:
        return torch.zeros(w.shape[0], dtype=torch.float64) if q is None else torch.zeros(w.shape[0], q.shape[0], dtype=torch.float64)
    return out


def whitened(encoder, loss, layers, preconditioner, x, *, batch_size: int = 64, device="cpu") -> torch.Tensor:
    """Whitened gradients (n, D) of a small set of inputs (queries, candidate duplicates)."""
    out = None  # allocated once the first block gives D: no second copy of all rows while concatenating
    for a, b in block_ranges(len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[a:b]), dtype=torch.float32, device=device)
        w = whitened_gradients(encoder, loss, layers, preconditioner, xb).cpu()
        if out is None:
            out = torch.empty((len(x), w.shape[1]), dtype=w.dtype)
        out[a:b] = w
        del w
    return out if out is not None else torch.zeros(0, 0)


def stream_scores(encoder, loss, layers, preconditioner, x, *, batch_size=64, sketch=None, queries=None, device="cpu", engine="local", desc="influence") -> BlockScores:
    """Self-influence (and optionally sketches and query scores) for every row of `x`."""
    shared = dict(encoder=encoder, loss=loss, layers=layers, preconditioner=preconditioner, x=x, sketch=sketch, queries=queries, device=device)
    # The outputs are allocated once and each block is copied in and dropped: keeping every block's
    # small result alive between the large per-sample-gradient temporaries fragments glibc's heap
    # (its mmap threshold rises after the first large free), which grew the RSS by ~30 MB per block
    # of 64 — 22 GB for the 60,000 Fashion-MNIST images instead of ~1 GB.
    n = len(x)
    s = np.zeros(n)
    sk = np.zeros((n, sketch.dim_out), dtype=np.float32) if sketch is not None else None
    pw = np.zeros((n, len(queries))) if queries is not None else None
    ranges = block_ranges(n, batch_size)
    for (a, b), part in zip(ranges, (engine if hasattr(engine, "map") else get_engine(engine)).map(score_block, ranges, shared=shared, desc=desc)):
        s[a:b] = part["self"]
        if sk is not None:
            sk[a:b] = part["sketch"]
        if pw is not None:
            pw[a:b] = part["pairwise"]
        del part
    return BlockScores(s, sk, pw)


def normalise(raw: np.ndarray, s_rows: np.ndarray, s_cols: np.ndarray) -> np.ndarray:
    """I_ij / √(s_i s_j); 0 where a self-influence is 0 (a zero gradient influences nothing)."""
    den = np.sqrt(np.outer(np.maximum(s_rows, 0), np.maximum(s_cols, 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, raw / np.where(den > 0, den, 1.0), 0.0)
    return out
