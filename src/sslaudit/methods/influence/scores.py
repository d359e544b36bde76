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
from .gradients import per_sample_gradients


@dataclass
class BlockScores:
    self_influence: np.ndarray  # (n,) float64
    sketch: np.ndarray | None  # (n, p) float32
    pairwise: np.ndarray | None  # (n, Q) float64: w_i · w_q


def score_block(rows, *, encoder, loss, layers, preconditioner, x, sketch=None, queries=None, device="cpu"):
    """Scores of the training rows [rows[0], rows[1])."""
    xb = torch.as_tensor(np.asarray(x[rows[0] : rows[1]]), dtype=torch.float32, device=device)
    w = preconditioner.whiten(per_sample_gradients(encoder, loss, xb, layers)).detach()
    out = {"self": w.double().pow(2).sum(1).cpu().numpy()}
    if sketch is not None:
        out["sketch"] = sketch(w).cpu().numpy()
    if queries is not None:
        out["pairwise"] = (w.double() @ queries.to(w.device).double().t()).cpu().numpy()
    return out


def whitened(encoder, loss, layers, preconditioner, x, *, batch_size: int = 64, device="cpu") -> torch.Tensor:
    """Whitened gradients (n, D) of a small set of inputs (queries, candidate duplicates)."""
    out = []
    for a, b in block_ranges(len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[a:b]), dtype=torch.float32, device=device)
        out.append(preconditioner.whiten(per_sample_gradients(encoder, loss, xb, layers)).detach().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def stream_scores(encoder, loss, layers, preconditioner, x, *, batch_size=64, sketch=None, queries=None, device="cpu", engine="local", desc="influence") -> BlockScores:
    """Self-influence (and optionally sketches and query scores) for every row of `x`."""
    shared = dict(encoder=encoder, loss=loss, layers=layers, preconditioner=preconditioner, x=x, sketch=sketch, queries=queries, device=device)
    parts = list(get_engine(engine).map(score_block, block_ranges(len(x), batch_size), shared=shared, desc=desc))
    s = np.concatenate([p["self"] for p in parts]) if parts else np.zeros(0)
    sk = np.concatenate([p["sketch"] for p in parts]) if sketch is not None and parts else None
    pw = np.concatenate([p["pairwise"] for p in parts]) if queries is not None and parts else None
    return BlockScores(s, sk, pw)


def normalise(raw: np.ndarray, s_rows: np.ndarray, s_cols: np.ndarray) -> np.ndarray:
    """I_ij / √(s_i s_j); 0 where a self-influence is 0 (a zero gradient influences nothing)."""
    den = np.sqrt(np.outer(np.maximum(s_rows, 0), np.maximum(s_cols, 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, raw / np.where(den > 0, den, 1.0), 0.0)
    return out
