"""A cost plan before the work: memory and time of the eNTK (KREPES) and of influence, from the
encoder (parameter count, activation sizes, FLOPs of one forward) and the data, so a lens
refuses — with a one-line `error:` naming the option to change — or adapts, instead of
reaching 14 GB.

The estimates come from one no-grad forward of a single input with hooks on every layer:

- eNTK factors per sample (what the landmark factors and every kernel block keep), per selected
  layer: Conv2d weight C_out·C_in·kh·kw numbers (k² with `layer_projection_dim = k`), Linear
  applied once d_in + d_out (the outer-product factorisation), BatchNorm 2·C; ×d for trNTK;
- a block holds its factors twice while the layers' parts are concatenated;
- autograd memory per sample of one forward+backward: the layer outputs kept for the backward
  (≈ 3× the sum of all layer output sizes: output, its gradient, the recorded inputs);
- FLOPs per sample: forward 2·MACs of Conv2d/Linear, backward ≈ 2× forward, plus the factor
  products; time = FLOPs / the throughput measured on that forward (a lower bound: CPU kernels
  of the backward are slower).

Everything is per sample, so the plan scales to any n, m and budget (docs/scaling.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import UserError
from .memory import format_size

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class EncoderCost:
    """Per-sample costs of an encoder for the eNTK (see the module docstring)."""

    n_parameters: int
    n_selected: int
    factor_numbers: int  # eNTK factor numbers per sample (per row of a kernel block / landmark)
    activation_numbers: int  # layer-output numbers of one forward (kept for the backward)
    forward_flops: float
    output_dim: int
    flops_per_second: float  # measured on the probe forward

    @property
    def grad_flops(self) -> float:
        return 3.0 * self.forward_flops

    def to_json(self) -> dict:
        return asdict(self)


def encoder_cost(module: nn.Module, x_one, *, selected: list[str] | None = None, kind: str = "pntk", layer_projection_dim: int | None = None) -> EncoderCost:
    """Measure the per-sample costs with one forward of `x_one` (one input, batch axis included)."""
    params = dict(module.named_parameters())
    sel = set(params) if selected is None else set(selected)
    rec: list[tuple[str, nn.Module, tuple, tuple]] = []

    def hook(name):
        def f(mod, inp, out):
            rec.append((name, mod, tuple(inp[0].shape) if inp and torch.is_tensor(inp[0]) else (), tuple(out.shape) if torch.is_tensor(out) else ()))

        return f

    handles = [m.register_forward_hook(hook(q)) for q, m in module.named_modules() if not list(m.children())]
    xt = torch.as_tensor(x_one)[:1]
    try:
        with torch.no_grad():
            t0 = time.perf_counter()
            out = module(xt)
            dt = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    d = int(out.flatten(1).shape[1])
    width_mult = d if kind == "trntk" else 1
    factor = act = 0
    flops = 0.0
    calls: dict[str, int] = {}
    for q, m, ishape, oshape in rec:
        calls[q] = calls.get(q, 0) + 1
        act += math.prod(oshape[1:]) if oshape else 0
        pre = f"{q}." if q else ""
        w = f"{pre}weight" in sel and getattr(m, "weight", None) is not None
        b = f"{pre}bias" in sel and getattr(m, "bias", None) is not None
        if isinstance(m, nn.Conv2d):
            positions = math.prod(oshape[2:])
            macs = m.weight.numel() * positions
            flops += 2.0 * macs
            if w:
                factor += layer_projection_dim**2 if layer_projection_dim else m.weight.numel()
            if b:
                factor += m.out_channels
        elif isinstance(m, nn.Linear):
            positions = math.prod(oshape[1:-1]) if len(oshape) > 2 else 1
            flops += 2.0 * m.weight.numel() * positions
            if w:
                if len(ishape) == 2 and calls[q] == 1:
                    factor += m.in_features + m.out_features
                else:
                    factor += layer_projection_dim**2 if layer_projection_dim else m.weight.numel()
            elif b:
                factor += m.out_features
        elif isinstance(m, _BN):
            factor += (m.num_features if w else 0) + (m.num_features if b else 0)
    n_sel = sum(params[n].numel() for n in sel if n in params)
    return EncoderCost(sum(p.numel() for p in params.values()), int(n_sel), int(factor * width_mult), int(act), float(flops), d, float(flops / dt) if dt > 0 and flops > 0 else 1e9)


@dataclass
class EntkPlan:
    """What an eNTK computation over n rows against m landmarks will hold and take."""

    bytes_per_factor_row: int
    landmark_factor_bytes: int
    bytes_per_block_row: int  # factors + autograd + the kernel-block arrays of one row
    block_rows: int
    peak_bytes: int
    seconds: float
    cost: dict

    def to_json(self) -> dict:
        return asdict(self)


def plan_entk(
    cost: EncoderCost, *, n_rows: int, m: int, itemsize: int, budget: int | None, in_use: int, reserve: int, block_size: int, min_rows: int = 16, budget_label: str | None = None
) -> EntkPlan:
    """Rows per block under `budget` (bytes, None = no bound); raises a one-line UserError when even
    the landmark factors and `min_rows` rows cannot fit, naming the options that shrink them."""
    per_factor = cost.factor_numbers * itemsize
    lm_bytes = m * per_factor
    per_row = 2 * per_factor + 3 * cost.activation_numbers * itemsize + 6 * 2 * m * 8  # factors twice: the layers' parts and their concatenation
    seconds = (n_rows + m) * cost.grad_flops / cost.flops_per_second + 2.0 * n_rows * m * cost.factor_numbers / cost.flops_per_second
    if budget is None:
        rows = int(block_size)
    else:
        avail = budget - in_use - reserve - lm_bytes
        fit = int(avail // per_row) if avail > 0 else 0
        least = min(int(min_rows), int(block_size))
        rows = int(min(block_size, fit))
        if fit < least:
            need = in_use + reserve + lm_bytes + least * per_row
            label = budget_label or f"--max-memory {format_size(budget)}"
            raise UserError(
                f"{label} cannot hold this eNTK (about {format_size(need)}: {m} landmarks × "
                f"{format_size(per_factor)} of factors for {cost.n_selected:,} parameters, {format_size(in_use)} in use); "
                "use --kernel-params last-stage or bn+last, --layer-projection-dim 16, fewer --landmarks, or raise --max-memory"
            )
    peak = in_use + reserve + lm_bytes + min(rows, max(n_rows, m)) * per_row
    return EntkPlan(int(per_factor), int(lm_bytes), int(per_row), rows, int(peak), float(seconds), cost.to_json())


__all__ = ["EncoderCost", "EntkPlan", "encoder_cost", "plan_entk"]


BIG_BACKBONE = 2_000_000  # parameters above which the audit sizes the gradient lenses down (ResNet-18: 11.2M; the default ConvNet: 93k)


def parameter_count(module: nn.Module) -> int:
    """How many trainable parameters the module has (what the eNTK and influence differentiate)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
