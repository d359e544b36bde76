"""What does a discriminative feature respond to? Its top-activating samples and saliency.

For feature j and a sample x, the saliency is ∂h_j(x)/∂x (vanilla gradient, encoder in eval
mode so samples do not interact through BatchNorm), reduced to one magnitude per pixel or per
original attribute by `compute.saliency.unit_magnitudes` (the rule RELAX's gradient baseline uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...compute.saliency import unit_magnitudes


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
        maps.append(unit_magnitudes(g, groups))
    sal = np.stack(maps) if maps else np.zeros((0, pos.shape[1]))
    return FeatureSaliency(features, pos, np.asarray(acts, dtype=np.float64).reshape(pos.shape), sal)
