"""The factorised eNTK path: layer-wise per-sample gradients from one forward and one backward.

Forward hooks record each parameterised layer's input a and output z; one backward of the
scalar output g (pNTK: Σ_o f_o/√d; trNTK: every output f_o at once, batched over the output
axis) gives δ = ∂g/∂z for every sample of the block. Then, per layer:

- Linear (applied once, 2-D input): `OuterTerm(δ, a)`, k share (δ·δ′)(a·a′ + 1);
- Linear on >2-D inputs or called several times, Conv2d: the per-sample weight gradient
  Σ_p δ_p a_pᵀ (im2col via `F.unfold` for Conv2d) as a `DenseTerm`;
- BatchNorm (eval mode, running statistics frozen): ∇γ = Σ_p δ_p x̂_p, ∇β = Σ_p δ_p.

Samples must not interact (eval mode); `EntkKernel` checks that on a probe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .factors import DenseTerm, KernelFactors, OuterTerm

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
SUPPORTED = (nn.Linear, nn.Conv2d) + _BN


def unsupported_reason(module: nn.Module, selected: set[str]) -> str | None:
    """Why the factorised path cannot handle `module` (None if it can)."""
    owners: dict[int, str] = {}
    for qual, m in module.named_modules():
        own = [n for n, _ in m.named_parameters(recurse=False) if _join(qual, n) in selected]
        if not own:
            continue
        where = qual or "<root>"
        if type(m) not in SUPPORTED:
            return f"unsupported layer {type(m).__name__} at {where}"
        if type(m) is nn.Conv2d and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return f"unsupported Conv2d options at {where} (groups={m.groups}, padding={m.padding!r}, padding_mode={m.padding_mode})"
        if type(m) in _BN and (not m.track_running_stats or m.running_mean is None):
            return f"BatchNorm without running statistics at {where} mixes the samples of a batch"
        for n, p in m.named_parameters(recurse=False):
            if id(p) in owners:
                return f"parameter {_join(qual, n)} is shared with {owners[id(p)]}"
            owners[id(p)] = _join(qual, n)
    return None


def recording_hook(store: list):
    """A forward hook that appends (layer input, layer output z) to `store`, z a point the output can be
    differentiated at (frozen parameters too), and hands the network a copy of z: an in-place op after
    the layer (nn.ReLU(inplace=True), F.relu_, a residual `out += x`) must not rebase z, whether or not
    a module announces it. Shared by the eNTK factors and influence's per-sample factors."""

    def hook(mod, inp, out):
        z = out if out.requires_grad else out.detach().requires_grad_(True)
        store.append((inp[0].detach(), z))
        return z.clone()

    return hook


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class FactorisedGrads:
    """Computes `KernelFactors` of a block with hooks on the supported layers of `module`."""

    def __init__(self, module: nn.Module, selected: set[str], kind: str, projector=None):
        self.module = module
        self.kind = kind
        self.projector = projector  # a LayerProjector: Conv2d / dense-Linear weight gradients projected to k×k
        self.layers: list[tuple[str, nn.Module, bool, bool]] = []  # (name, layer, weight selected, bias selected)
        for qual, m in module.named_modules():
            if type(m) in SUPPORTED:
                w = _join(qual, "weight") in selected and getattr(m, "weight", None) is not None
                b = _join(qual, "bias") in selected and getattr(m, "bias", None) is not None
                if w or b:
                    self.layers.append((qual, m, w, b))

    def __call__(self, x: torch.Tensor, signature: str) -> KernelFactors:
        records: dict[str, list] = {q: [] for q, *_ in self.layers}
        handles = [m.register_forward_hook(recording_hook(records[q])) for q, m, *_ in self.layers]
        try:
            with torch.enable_grad():
                f = self.module(x).flatten(1)
                zs = [z for q, *_ in self.layers for _, z in records[q]]
                deltas = self._backward(f, zs)
        finally:
            for h in handles:
                h.remove()
        terms: list = []
        dense: list[torch.Tensor] = []
        it = iter(deltas)
        for q, m, w, b in self.layers:
            calls = [(a, next(it)) for a, _ in records[q]]
            if not calls:
                continue
            if type(m) is nn.Linear and len(calls) == 1 and calls[0][0].dim() == 2:
                a, dz = calls[0]
                terms.append(OuterTerm(dz.flatten(1), a if w else None, b))
            else:
                dense += self._dense(q, m, calls, w, b)
        if dense:
            terms.append(DenseTerm(torch.cat(dense, dim=1)))
        diag = sum(t.sq_norms() for t in terms) if terms else torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        return KernelFactors(x.shape[0], diag, terms, signature)

    def _backward(self, f: torch.Tensor, zs: list[torch.Tensor]) -> list[torch.Tensor]:
        """δ = ∂g/∂z per sample: (n, …) for pNTK, (n, d, …) for trNTK."""
        if not zs:
            return []
        n, d = f.shape
        if self.kind == "pntk":
            gs = torch.autograd.grad(f.sum() / math.sqrt(d), zs, allow_unused=True)
            return [torch.zeros_like(z) if g is None else g.detach() for z, g in zip(zs, gs)]
        eye = torch.eye(d, dtype=f.dtype, device=f.device)
        try:
            gs = torch.autograd.grad(f, zs, grad_outputs=eye[:, None, :].expand(d, n, d), is_grads_batched=True, allow_unused=True)
            gs = [torch.zeros((d,) + z.shape, dtype=z.dtype, device=z.device) if g is None else g.detach() for z, g in zip(zs, gs)]
        except RuntimeError:  # an op without a batching rule: one backward per output
            per_o = []
            for o in range(d):
                go = torch.autograd.grad(f[:, o].sum(), zs, retain_graph=True, allow_unused=True)
                per_o.append([torch.zeros_like(z) if g is None else g.detach() for z, g in zip(zs, go)])
            gs = [torch.stack([p[i] for p in per_o]) for i in range(len(zs))]
        return [g.movedim(0, 1) for g in gs]  # (n, d, …)

    def _dense(self, q: str, m: nn.Module, calls: list, w: bool, b: bool) -> list[torch.Tensor]:
        """Explicit per-sample gradients of one layer, summed over its calls, flattened (n × …);
        with a projector the weight part of Conv2d / Linear is the projected k×k gradient."""
        tr = self.kind == "trntk"
        proj = self.projector if w and type(m) in (nn.Linear, nn.Conv2d) else None
        gw = gb = None
        for a, dz in calls:
            if proj is not None:
                fn = proj.conv_weight_grad if type(m) is nn.Conv2d else proj.linear_weight_grad
                cw = fn(q, m, a, dz, tr)
                cb = dz.flatten(-2).sum(-1) if type(m) is nn.Conv2d else (dz.reshape(dz.shape[:2] + (-1, dz.shape[-1])) if tr else dz.reshape(dz.shape[0], -1, dz.shape[-1])).sum(-2)
            elif type(m) is nn.Linear:
                a3 = a.reshape(a.shape[0], -1, a.shape[-1])  # n × L × in
                dz3 = dz.reshape(dz.shape[:2] + (-1, dz.shape[-1])) if tr else dz.reshape(dz.shape[0], -1, dz.shape[-1])
                cw = torch.einsum("ndlo,nli->ndoi", dz3, a3) if tr else torch.einsum("nlo,nli->noi", dz3, a3)
                cb = dz3.sum(-2)
            elif type(m) is nn.Conv2d:
                cols = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)  # n × Ck² × L
                dz3 = dz.flatten(-2)  # n × [d ×] O × L
                cw = torch.einsum("ndol,nkl->ndok", dz3, cols) if tr else torch.einsum("nol,nkl->nok", dz3, cols)
                cb = dz3.sum(-1)
            else:  # BatchNorm in eval mode: x̂ from the frozen running statistics
                shape = (1, -1) + (1,) * (a.dim() - 2)
                xhat = (a - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps)
                if tr:
                    xhat = xhat.unsqueeze(1)
                red = tuple(range(3 if tr else 2, dz.dim()))
                cw = (dz * xhat).sum(red) if red else dz * xhat
                cb = dz.sum(red) if red else dz
            gw = cw if gw is None else gw + cw
            gb = cb if gb is None else gb + cb
        n = calls[0][0].shape[0]
        out = []
        if w:
            out.append(gw.reshape(n, -1))
        if b:
            out.append(gb.reshape(n, -1))
        return out
