"""Helpers of the explainer's cached stages: fingerprints of inputs, JSON inside .npz stages, and
the engine job that computes the kernel rows of both augmented views of a block of samples.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn


def fingerprint(*arrays, block: int = 4096) -> str:
    """A content hash of arrays. Images read from files (a folder, a `.npy`, a saved HF dataset)
    are hashed by their encoded sources (their `digest()`: no decoding); other rows that
    decode on demand are hashed block by block (same digest as the decoded float32 array), so the
    whole split is never in memory."""
    h = hashlib.sha256()
    for a in arrays:
        if callable(getattr(a, "digest", None)) and not isinstance(a, np.ndarray):
            h.update(b"digest:" + a.digest().encode())
            continue
        if isinstance(a, np.ndarray) or not hasattr(a, "__len__") or not hasattr(a, "shape"):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype, a.shape)).encode())
            h.update(memoryview(a).cast("B"))
            continue
        h.update(str((np.dtype(np.float32), tuple(a.shape))).encode())
        for s in range(0, len(a), block):
            h.update(memoryview(np.ascontiguousarray(a[s : s + block], dtype=np.float32)).cast("B"))
    return h.hexdigest()[:16]


def module_fingerprint(module: nn.Module) -> str:
    state = module.state_dict()
    return fingerprint(*[state[k].detach().cpu().numpy() for k in sorted(state)]) + f"/{len(state)}"


def _json_array(obj) -> np.ndarray:
    """A JSON document as a uint8 array (so it can sit in a cached .npz stage)."""
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _from_json_array(arr: np.ndarray):
    return json.loads(bytes(np.asarray(arr, dtype=np.uint8)).decode())


def _slice_params(params: dict, s: int, e: int, n: int) -> dict:
    return {k: (v[s:e] if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == n else v) for k, v in params.items()}


def view_kernel_block(rng, *, kernel, x, rows, augment, params, landmark_factors) -> list[np.ndarray]:
    """Kernel rows of both augmented views of x[rows[s:e]] against the landmarks (engine job)."""
    s, e = rng
    xb = torch.as_tensor(np.asarray(x[rows[s:e]]), dtype=torch.float32)
    lf = landmark_factors.to(kernel.device)
    out = []
    for i, p in enumerate(params):
        v = augment.view(i).apply(xb, _slice_params(p, s, e, len(rows)))
        out.append(kernel.between(kernel.factors(v), lf).cpu().numpy())
    return out


def score_block(rng, *, k_test, a, gamma, weights, top_k, f_landmarks=None, sign="radial") -> tuple:
    """Surrogate embeddings, top-K landmark positions, their IS and signs for test rows [s, e) (engine job)."""
    from .scores import influence_scores, top_k as top_positions

    s, e = rng
    k = np.asarray(k_test[s:e], dtype=np.float64)
    f = k @ a + gamma
    score, signs = influence_scores(k, weights, f, f_landmarks, sign)
    top = top_positions(score, top_k)
    return f, top, np.take_along_axis(score, top, 1), np.take_along_axis(signs, top, 1)
