"""The exact eNTK reference for small n: a plain autograd loop, one sample at a time.

Written independently of the fast paths (no hooks, no torch.func, no factorisation) so that it
can test them. It works on a float64 copy of the module in eval() mode and differentiates every
parameter with `requires_grad`. Costs n·P memory (n·d·P for trNTK): small n only.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn


def _reference_copy(module: nn.Module) -> tuple[nn.Module, list[torch.nn.Parameter]]:
    ref = copy.deepcopy(module).double().eval()
    return ref, [p for p in ref.parameters() if p.requires_grad]


def per_sample_gradients_loop(module: nn.Module, x, kind: str = "pntk") -> torch.Tensor:
    """Flattened per-sample gradients: n × P for pNTK (of Σ_o f_o/√d), n × d × P for trNTK."""
    if kind not in ("pntk", "trntk"):
        raise ValueError(f"unknown kind {kind!r}")
    ref, params = _reference_copy(module)
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    rows = []
    for i in range(x.shape[0]):
        out = ref(x[i : i + 1]).reshape(-1)
        if kind == "pntk":
            gs = torch.autograd.grad(out.sum() / math.sqrt(out.numel()), params, allow_unused=True)
            rows.append(_flat(gs, params))
        else:
            per_o = []
            for o in range(out.numel()):
                gs = torch.autograd.grad(out[o], params, retain_graph=True, allow_unused=True)
                per_o.append(_flat(gs, params))
            rows.append(torch.stack(per_o))
    return torch.stack(rows)


def _flat(gs, params) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(gs, params)])


def exact_kernel(module: nn.Module, a, b, kind: str = "pntk", normalize: bool = True) -> np.ndarray:
    """K(A, B) from the loop's gradients, optionally cosine-normalised (float64)."""
    ga = per_sample_gradients_loop(module, a, kind).reshape(len(a), -1)
    gb = per_sample_gradients_loop(module, b, kind).reshape(len(b), -1)
    k = ga @ gb.T
    if normalize:
        na = ga.pow(2).sum(1).sqrt()
        nb = gb.pow(2).sum(1).sqrt()
        k = k / (na[:, None] * nb[None, :])
    return k.numpy()
