"""Any Captum attribution method, explaining a representation instead of a class score.

`EmbeddingSimilarity(encoder, x)` is a module whose forward is sim(f(x'), f(x)) with f(x)
fixed (computed once, no gradient): Captum's Saliency, IntegratedGradients, Occlusion … then
attribute the similarity to the unmasked representation — the score RELAX uses. Captum expands a
batch by repeating it (steps, samples): row r of an expanded batch is compared with reference
row r mod B.

Gradient saliency note [ours]: cosine similarity is at its maximum at x' = x, so its gradient
there is exactly zero; the gradient baseline therefore uses the dot product ⟨f(x'), f(x)⟩ by
default (its gradient is J(x)ᵀ f(x), the direction that moves the representation along itself).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ...compute.saliency import unit_magnitudes
from .similarity import similarity_function


class EmbeddingSimilarity(nn.Module):
    """forward(x') = sim(f(x'), f(x_ref)) per row; f(x_ref) is a fixed buffer."""

    def __init__(self, encoder: nn.Module, reference_inputs: torch.Tensor, similarity: str | Callable = "cosine", batch_size: int = 1024):
        super().__init__()
        self.encoder = encoder
        self.sim = similarity_function(similarity)
        with torch.no_grad():
            ref = torch.cat([encoder(reference_inputs[s : s + batch_size]) for s in range(0, len(reference_inputs), batch_size)])
        self.register_buffer("reference", ref.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(x), device=x.device) % len(self.reference)
        return self.sim(self.reference[rows], self.encoder(x))


def explain(method_cls, encoder: nn.Module, x: torch.Tensor, *, similarity: str | Callable = "cosine", **attribute_kwargs) -> torch.Tensor:
    """Attributions of sim(f(·), f(x)) at x by a Captum method class, e.g. captum.attr.Saliency."""
    was_training = encoder.training
    encoder.eval()
    try:
        model = EmbeddingSimilarity(encoder, x, similarity)
        inp = x.detach().clone().requires_grad_(True)
        return method_cls(model).attribute(inp, **attribute_kwargs).detach()
    finally:
        encoder.train(was_training)


def gradient_saliency(encoder: nn.Module, x, *, similarity: str | Callable = "dot", groups: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """Gradient saliency (captum.attr.Saliency, abs) of the representation similarity, per unit."""
    from captum.attr import Saliency

    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32)
    dev = next(iter(encoder.parameters()), torch.empty(0)).device
    attr = explain(Saliency, encoder, x.to(dev), similarity=similarity, abs=True)
    return unit_magnitudes(attr, groups).to(torch.float64)
