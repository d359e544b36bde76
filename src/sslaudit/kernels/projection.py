"""Structured per-layer projection of per-sample weight gradients (LoGra-style, Kronecker).

A Conv2d / Linear layer's per-sample weight gradient is G = Σ_p δ_p a_pᵀ (d_out × d_in, summed
over positions p; d_in = C·kh·kw for a convolution). Projecting it with a Kronecker matrix
P_out ⊗ P_in (entries N(0, 1/k), drawn from the seed and the layer name) gives

    G̃ = P_outᵀ G P_in = Σ_p (P_outᵀ δ_p)(P_inᵀ a_p)ᵀ      (k × k per sample)

so the input activations and the output gradients are projected separately — O(d_in·k + d_out·k)
per sample-position plus k² for the outer product — and G (d_out·d_in numbers) is never formed.
For a convolution P_inᵀ a_p is itself a convolution of the layer input with k filters, so the
im2col matrix (C·kh·kw × positions) is never built either.

Because P_out and P_in are independent with E[P Pᵀ] = I, E⟨G̃, G̃′⟩ = Σ_{p,q} (δ_p·δ′_q)(a_p·a′_q)
= ⟨G, G′⟩: the raw kernel is unbiased and its relative error shrinks like 1/k (per layer, the
product of two Johnson–Lindenstrauss sketches of width k). The cosine-normalised kernel is a
ratio of such estimates: consistent (it converges as k grows), not unbiased.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..seeding import torch_generator


class LayerProjector:
    """Seeded P_in, P_out of width `dim` for each layer (by qualified name), drawn once and cached."""

    def __init__(self, dim: int, seed: int):
        self.dim, self.seed = int(dim), int(seed)
        self._cache: dict[tuple[str, str, torch.dtype, str], torch.Tensor] = {}

    def matrix(self, layer: str, side: str, rows: int, like: torch.Tensor) -> torch.Tensor:
        key = (layer, side, like.dtype, str(like.device))
        p = self._cache.get(key)
        if p is None:
            gen = torch_generator(self.seed, "entk-layer-projection", layer, side)
            p = (torch.randn(rows, self.dim, generator=gen, dtype=torch.float64) / math.sqrt(self.dim)).to(like.dtype).to(like.device)
            self._cache[key] = p
        return p

    def conv_weight_grad(self, layer: str, m: nn.Conv2d, a: torch.Tensor, dz: torch.Tensor, trace: bool) -> torch.Tensor:
        """Projected per-sample weight gradient of a Conv2d call: n × k × k (n × d × k × k for trNTK)."""
        cin = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        p_in = self.matrix(layer, "in", cin, a)  # (C·kh·kw) × k, same ordering as F.unfold
        w_in = p_in.T.reshape(self.dim, m.in_channels, *m.kernel_size)
        ap = F.conv2d(a, w_in, stride=m.stride, padding=m.padding, dilation=m.dilation).flatten(-2)  # n × k × L
        p_out = self.matrix(layer, "out", m.out_channels, a)
        dz3 = dz.flatten(-2)  # n × [d ×] O × L
        if trace:
            return torch.einsum("ndol,oj,nil->ndji", dz3, p_out, ap)
        return torch.einsum("nol,oj,nil->nji", dz3, p_out, ap)

    def linear_weight_grad(self, layer: str, m: nn.Linear, a: torch.Tensor, dz: torch.Tensor, trace: bool) -> torch.Tensor:
        """Projected per-sample weight gradient of a Linear call on (n × … × in) inputs: n × k × k."""
        a3 = a.reshape(a.shape[0], -1, a.shape[-1])
        ap = a3 @ self.matrix(layer, "in", m.in_features, a)  # n × L × k
        p_out = self.matrix(layer, "out", m.out_features, a)
        if trace:
            dz3 = dz.reshape(dz.shape[:2] + (-1, dz.shape[-1]))
            return torch.einsum("ndlo,oj,nli->ndji", dz3, p_out, ap)
        dz3 = dz.reshape(dz.shape[0], -1, dz.shape[-1])
        return torch.einsum("nlo,oj,nli->nji", dz3, p_out, ap)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state


def projected_width(m: nn.Module, dim: int) -> int:
    """Numbers per sample (per output for trNTK) a projected layer keeps for its weight: k²."""
    return dim * dim if isinstance(m, (nn.Conv2d, nn.Linear)) else 0


__all__ = ["LayerProjector", "projected_width"]
