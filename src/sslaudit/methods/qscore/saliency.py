"""What does a discriminative feature respond to? Its top-activating samples and saliency.

For feature j and a sample x, the saliency is ∂h_j(x)/∂x (vanilla gradient, encoder in eval
mode so samples do not interact through BatchNorm). For images it is shown as a map (largest
absolute gradient over channels); for tables each original attribute (`TabularSchema.groups()`)
gets the largest |gradient| over its encoded columns — a sum would favour categoricals with many
one-hot levels (native-country's 42 columns dominated every feature that way).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def top_activating(h: np.ndarray, features, k: int) -> np.ndarray:
    """Positions of the k samples with the largest h_ij for each feature j (features×k)."""
    h = np.asarray(h)
    k = min(k, len(h))
    out = []
    for j in features:
        col = h[:, j]
        top = np.lexsort((np.arange(len(col)), -col))[:k]  # ties: lower position first
        out.append(top)
    return np.asarray(out, dtype=np.int64).reshape(len(list(features)), k)


def feature_gradients(encoder: nn.Module, x: np.ndarray, feature: int, *, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """∂h_feature/∂x for every row of x (same shape as x), encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    out = []
    try:
        for s in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[s : s + batch_size]), dtype=torch.float32, device=device).requires_grad_(True)
            h = encoder(xb)
            (g,) = torch.autograd.grad(h[:, feature].sum(), xb)
            out.append(g.detach().cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(out) if out else np.zeros_like(np.asarray(x))


def group_magnitudes(grad: np.ndarray, groups: list[tuple[int, int]]) -> np.ndarray:
    """Largest |gradient| over each attribute's encoded columns (N×n_groups)."""
    a = np.abs(np.asarray(grad).reshape(len(grad), -1))
    return np.stack([a[:, s:e].max(axis=1) for s, e in groups], axis=1)


@dataclass
class FeatureSaliency:
    """Top samples and their saliency for a set of features."""

    features: np.ndarray  # feature numbers, F
    positions: np.ndarray  # F×k positions in the split
    activations: np.ndarray  # F×k values of h_j at those samples
    saliency: np.ndarray  # images: F×k×H×W maps; tables: F×k×n_groups magnitudes


def pick_features(rates: np.ndarray, discriminative: np.ndarray, limit: int) -> np.ndarray:
    """Up to `limit` discriminative features, most frequently activating first."""
    idx = np.flatnonzero(np.asarray(discriminative, dtype=bool))
    order = np.lexsort((idx, -np.asarray(rates)[idx]))
    return idx[order][:limit]


def feature_saliency(encoder: nn.Module, x: np.ndarray, h: np.ndarray, features, *, k: int = 6, groups: list[tuple[int, int]] | None = None, device: str = "cpu") -> FeatureSaliency:
    """Saliency of each feature on its k top-activating samples of (x, h)."""
    features = np.asarray(list(features), dtype=np.int64)
    pos = top_activating(h, features, k)
    maps, acts = [], []
    for j, p in zip(features, pos):
        g = feature_gradients(encoder, x[p], int(j), device=device)
        acts.append(np.asarray(h)[p, j])
        if groups is not None:
            maps.append(group_magnitudes(g, groups))
        else:
            maps.append(np.abs(g).max(axis=1) if g.ndim == 4 else np.abs(g))
    sal = np.stack(maps) if maps else np.zeros((0, pos.shape[1]))
    return FeatureSaliency(features, pos, np.asarray(acts, dtype=np.float64).reshape(pos.shape), sal)
