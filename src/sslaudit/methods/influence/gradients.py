"""Per-sample gradients of ℓ_aug, laid out per layer the way EK-FAC factors them.

The parameters that influence is computed for are the weights (and biases) of the encoder's
`nn.Linear` and `nn.Conv2d` layers — the layers `kronfluence` supports. The gradient of one such
layer is a d_out × (d_in·k_h·k_w [+1]) matrix: the weight reshaped to 2-D with the bias as the last
column, the layout of kronfluence's Kronecker factors. An encoder with none of these layers falls
back to every trainable parameter, flattened (only the `identity` curvature applies then).
Gradients come from `torch.func` (vmap over samples of grad), in eval mode. `per_sample_factors`
gives the same gradients without forming them: a Linear / Conv2d weight gradient of one example is
G = Σ_r δ_r a_rᵀ over its R = 2K·(positions) rows (its views' layer inputs a and output gradients δ,
from one batched forward and backward with hooks), which `Preconditioner.whiten_factors` rotates as
(Q_Gᵀ Δᵀ)(A Q_A) — for a ResNet's last stage (R = 64 rows at 4×4 positions, d_in = 4,608) about 7×
fewer flops than rotating G.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ...kernels.factorised import recording_hook
from .loss import AugmentationStability, stability_distance

SUPPORTED = (nn.Linear, nn.Conv2d)


@dataclass
class Layer:
    """One block of parameters: its module name, parameter names and gradient-matrix shape."""

    name: str
    params: list[str]
    shape: tuple[int, int]  # (rows, cols) of the per-sample gradient matrix
    kronecker: bool = True  # False: a flattened parameter of the fallback (no EK-FAC factors)
    numel: int = field(init=False)

    def __post_init__(self):
        self.numel = int(self.shape[0] * self.shape[1])


def tracked_layers(encoder: nn.Module) -> list[Layer]:
    """The Linear and Conv2d layers of `encoder` (empty if it has none)."""
    layers = []
    for name, m in encoder.named_modules():
        if isinstance(m, SUPPORTED) and len(list(m.children())) == 0:
            w = m.weight
            rows = w.shape[0]
            cols = int(w[0].numel()) + (1 if m.bias is not None else 0)
            params = [f"{name}.weight"] + ([f"{name}.bias"] if m.bias is not None else [])
            layers.append(Layer(name, params, (rows, cols)))
    return layers


def select_layers(encoder: nn.Module, layers: list[Layer], spec: str | None) -> list[Layer]:
    """The layers under `spec`: None/"all" (every one), "last-stage" (the last block, see
    kernels.subset.last_stage_prefix) or comma-separated module names / prefixes."""
    if spec is None or spec.strip() in ("", "all"):
        return layers
    from ...errors import UserError
    from ...kernels.subset import last_stage_prefix

    wanted = [last_stage_prefix(encoder)] if spec.strip() == "last-stage" else [w.strip() for w in spec.split(",")]
    out = []
    for w in wanted:
        hit = [layer for layer in layers if layer.name == w or layer.name.startswith(w + ".")]
        if not hit:
            raise UserError(f"--modules: no Linear or Conv2d layer named {w!r} or under it; layers are e.g. {', '.join(lay.name for lay in layers[:3])}")
        out += [layer for layer in hit if layer not in out]
    return [layer for layer in layers if layer in out]


def fallback_layers(encoder: nn.Module) -> list[Layer]:
    """Every parameter of `encoder` as its own flattened block (for the identity curvature)."""
    return [Layer(n, [n], (1, int(p.numel())), kronecker=False) for n, p in encoder.named_parameters()]


def _stack_views(loss: AugmentationStability, x: torch.Tensor) -> torch.Tensor:
    return torch.stack(loss.views(x), dim=1)  # (b, 2K, ...)


def per_sample_gradients(encoder: nn.Module, loss: AugmentationStability, x: torch.Tensor, layers: list[Layer]) -> dict[str, torch.Tensor]:
    """∇θ ℓ_aug(x_i) for every row of `x`: {layer name: (b, rows, cols)}."""
    names = [p for layer in layers for p in layer.params]
    all_params = dict(encoder.named_parameters())
    params = {n: all_params[n].detach() for n in names}
    views = _stack_views(loss, x)
    k = loss.draws

    def one(p: dict, v: torch.Tensor) -> torch.Tensor:
        z = functional_call(encoder, p, (v,))  # (2K, d): the 2K views of one example
        return stability_distance(z[0::2], z[1::2]).sum() / k

    g = vmap(grad(one), in_dims=(None, 0))(params, views)
    out = {}
    b = x.shape[0]
    for layer in layers:
        if not layer.kronecker:
            out[layer.name] = g[layer.params[0]].reshape(b, 1, -1)
            continue
        parts = [g[layer.params[0]].reshape(b, layer.shape[0], -1)]
        if len(layer.params) == 2:
            parts.append(g[layer.params[1]].reshape(b, layer.shape[0], 1))
        out[layer.name] = torch.cat(parts, dim=2) if len(parts) == 2 else parts[0]
    return out


def factors_supported(encoder: nn.Module, layers: list[Layer]) -> bool:
    """Whether `per_sample_factors` handles every layer: Kronecker-laid-out Linear layers and
    Conv2d layers that `F.unfold` reproduces (one group, zero padding given as numbers)."""
    mods = dict(encoder.named_modules())
    for layer in layers:
        m = mods.get(layer.name)
        if not layer.kronecker or type(m) not in SUPPORTED:
            return False
        if type(m) is nn.Conv2d and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return False
    return True


def per_sample_factors(encoder: nn.Module, loss: AugmentationStability, x: torch.Tensor, layers: list[Layer]):
    """Per layer, yields (layer, A, Δ) with A (b, R, cols) and Δ (b, R, rows) such that the
    per-sample gradient matrix of `per_sample_gradients` is Δᵢᵀ Aᵢ (bias: a column of ones in A).
    One forward of all 2K views of the batch and one backward of Σᵢ ℓ_aug(xᵢ): the encoder is in
    eval mode, so example i's views receive exactly ∂ℓᵢ/∂z. Layers are yielded one at a time, so
    only one layer's unfolded inputs exist at once."""
    views = _stack_views(loss, x)  # (b, 2K, ...)
    b, v = views.shape[:2]
    mods = dict(encoder.named_modules())
    records: dict[str, list] = {layer.name: [] for layer in layers}

    handles = [mods[layer.name].register_forward_hook(recording_hook(records[layer.name])) for layer in layers]
    try:
        with torch.enable_grad():
            z = encoder(views.flatten(0, 1)).reshape(b, v, -1)
            k = loss.draws
            total = stability_distance(z[:, 0::2].reshape(b * k, -1), z[:, 1::2].reshape(b * k, -1)).sum() / k
            outs = [o for layer in layers for _, o in records[layer.name]]
            deltas = iter(torch.autograd.grad(total, outs))
    finally:
        for h in handles:
            h.remove()
    for layer in layers:
        m = mods[layer.name]
        a_parts, d_parts = [], []
        for a, _ in records.pop(layer.name):
            d = next(deltas).detach()
            if type(m) is nn.Conv2d:
                a = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)  # (b·2K, C·kh·kw, L)
                a_parts.append(a.transpose(1, 2).reshape(b, -1, a.shape[1]))
                d_parts.append(d.flatten(2).transpose(1, 2).reshape(b, -1, d.shape[1]))
            else:
                a_parts.append(a.reshape(b, -1, a.shape[-1]))
                d_parts.append(d.reshape(b, -1, d.shape[-1]))
        a = torch.cat(a_parts, 1) if len(a_parts) > 1 else a_parts[0]
        d = torch.cat(d_parts, 1) if len(d_parts) > 1 else d_parts[0]
        if m.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], a.shape[1], 1)], 2)
        yield layer, a, d
        del a, d, a_parts, d_parts


def flatten(grads: dict[str, torch.Tensor], layers: list[Layer]) -> torch.Tensor:
    """Concatenate per-layer gradient matrices into (b, D) vectors in `layers` order."""
    return torch.cat([grads[layer.name].flatten(1) for layer in layers], dim=1)
