"""The general eNTK path: torch.func per-sample gradients of any module, optionally projected.

`vmap(grad(g))` (pNTK) or `vmap(jacrev(f))` (trNTK) over `functional_call` gives the gradient of
every sample w.r.t. the selected parameters, in sub-blocks that bound memory. With
`projection_dim = D` each parameter's gradient is multiplied by a seeded Gaussian matrix
R (p × D, entries N(0, 1/D)): E[⟨Rᵀg, Rᵀg′⟩] = ⟨g, g′⟩, so the kernel is then an unbiased
approximation whose relative error shrinks like 1/√D (Johnson–Lindenstrauss).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from ..seeding import torch_generator
from .factors import DenseTerm, KernelFactors

_MAX_ELEMENTS = 1 << 25  # per-sample-gradient numbers held at once (256 MB in float64)
_MAX_PROJ_CACHE = 1 << 26  # projection matrix entries kept in memory between blocks


class GeneralGrads:
    """Per-sample gradients (n × d·P, or n × d·D projected) of `module` w.r.t. `selected`."""

    def __init__(self, module: nn.Module, selected: list[str], kind: str, projection_dim: int | None, seed: int):
        self.module = module
        self.kind = kind
        self.names = selected
        self.projection_dim = projection_dim
        self.seed = seed
        self._proj: dict[str, list[torch.Tensor]] = {}
        self.fallback: str | None = None  # set if vmap failed and a per-sample loop is used

    def _functions(self, d: int):
        params = dict(self.module.named_parameters())
        fixed = {k: v.detach() for k, v in params.items() if k not in self.names}
        fixed.update(dict(self.module.named_buffers()))
        module, kind = self.module, self.kind

        def f(p, xi):
            return functional_call(module, {**fixed, **p}, (xi.unsqueeze(0),)).flatten()

        if kind == "pntk":
            return grad(lambda p, xi: f(p, xi).sum() / math.sqrt(d))
        return jacrev(f)

    def __call__(self, x: torch.Tensor, signature: str) -> KernelFactors:
        params = {k: v.detach() for k, v in self.module.named_parameters() if k in self.names}
        with torch.no_grad():
            d = self.module(x[:1]).flatten(1).shape[1]
        per_sample = self._functions(d)
        count = sum(p.numel() for p in params.values())
        width = d if self.kind == "trntk" else 1
        step = max(1, _MAX_ELEMENTS // max(1, width * count))
        parts = []
        for s in range(0, x.shape[0], step):
            xs = x[s : s + step]
            grads = self._per_sample(per_sample, params, xs)
            parts.append(self._flatten(grads, xs.shape[0], width))
        g = torch.cat(parts) if parts else torch.zeros(0, 0, dtype=x.dtype, device=x.device)
        term = DenseTerm(g)
        return KernelFactors(x.shape[0], term.sq_norms(), [term], signature)

    def _per_sample(self, fn, params, xs):
        if self.fallback is None:
            try:
                return vmap(fn, in_dims=(None, 0))(params, xs)
            except Exception as e:  # an op without a batching rule
                self.fallback = f"vmap failed ({type(e).__name__}); per-sample loop"
        rows = [fn(params, xi) for xi in xs]
        return {k: torch.stack([r[k] for r in rows]) for k in params}

    def _flatten(self, grads: dict, n: int, width: int) -> torch.Tensor:
        if self.projection_dim is None:
            return torch.cat([grads[k].reshape(n, width, -1) for k in self.names], dim=2).reshape(n, -1)
        out = None
        for k in self.names:
            gk = grads[k].reshape(n, width, -1)
            part = self._project(k, gk)
            out = part if out is None else out + part
        return out.reshape(n, -1)

    def _project(self, name: str, g: torch.Tensor) -> torch.Tensor:
        """g (n × w × p) @ R_name (p × D), R drawn in seeded row chunks so its values never depend on memory."""
        p, D = g.shape[-1], self.projection_dim
        rows = self._proj.get(name)
        cache = rows is None and sum(sum(r.numel() for r in v) for v in self._proj.values()) + p * D <= _MAX_PROJ_CACHE
        chunk, out = 1 << 14, None
        for c, s in enumerate(range(0, p, chunk)):
            if rows is not None:
                r = rows[c]
            else:
                gen = torch_generator(self.seed, "entk-projection", name, c)
                r = (torch.randn(min(chunk, p - s), D, generator=gen, dtype=torch.float64) / math.sqrt(D)).to(g.dtype).to(g.device)
                if cache:
                    self._proj.setdefault(name, []).append(r)
            part = g[..., s : s + chunk] @ r
            out = part if out is None else out + part
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_proj"] = {}
        return state
