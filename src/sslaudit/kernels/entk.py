"""The empirical NTK of a frozen network: k(x, x′) = ⟨∇θ g(x), ∇θ g(x′)⟩ at the trained weights.

`EntkKernel` linearises the module's output (the backbone representation f(x) ∈ R^d):

- kind "pntk": g(x) = Σ_o f_o(x)/√d (Mohamadi et al. 2023);
- kind "trntk": k = Σ_o ⟨∇θ f_o(x), ∇θ f_o(x′)⟩ (the trace over outputs; d× the cost of pNTK);
- normalize: the cosine-normalised k/√(k(x,x)·k(x′,x′)) (the default, see the KREPES spec).

θ = every parameter with `requires_grad` (or the ones named in `params`). The module is used in
eval() mode: BatchNorm running statistics are frozen and its affine parameters γ, β are part of
θ. The kernel runs on a private copy of the module, in `precision` (float64 by default: block
sizes then do not change the result beyond rounding of 1e-15; "float32" halves the time and
memory and keeps ~1e-6 relative accuracy). Kernel blocks are always accumulated in float64.

Paths: "factorised" (Linear / Conv2d / BatchNorm layers, see factorised.py) is exact and fast;
`layer_projection_dim = k` projects each Conv2d / multi-use Linear layer's weight gradient with
a seeded Kronecker (LoGra-style) projection to k×k on the factorised path (projection.py);
`params` may be a subset preset ("last-stage", "bn", "bn+last") or module names (subset.py).
"general" (torch.func, see general.py) handles any module, optionally with a random projection
(then K is an unbiased approximation). "auto" picks factorised when every parameterised layer is
supported, and on the first block checks it against per-sample gradients of two samples; if they
disagree (a layer used outside its forward, samples that interact) it switches to "general" and
says why in `path_reason`.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .factorised import FactorisedGrads, unsupported_reason
from .factors import KernelFactors
from .general import GeneralGrads

KINDS = ("pntk", "trntk")
PATHS = ("auto", "factorised", "general")
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


class EntkKernel:
    """eNTK of `module`'s output (the backbone representation), at its current weights.

    The module is copied and put in eval() mode: BatchNorm uses its frozen running statistics
    and its affine parameters (γ, β) are part of θ; dropout is off. θ = the parameters with
    `requires_grad` (or those named by `params`: names or prefixes, or a predicate on names).
    `block_size` rows are processed at a time by `__call__`/`diag` (the block functions cap it
    further so a block's factors stay under 256 MB). `seed` seeds the random projection.
    See the module docstring for kind, normalize, path, projection_dim and precision.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        kind: str = "pntk",
        normalize: bool = True,
        path: str = "auto",
        projection_dim: int | None = None,
        block_size: int = 1024,
        seed: int = 0,
        device="cpu",
        params: Iterable[str] | Callable[[str], bool] | None = None,
        precision: str = "float64",
        check: bool = True,
        layer_projection_dim: int | None = None,
    ):
        if kind not in KINDS:
            raise UserError(f"unknown kernel kind {kind!r}: use 'pntk' or 'trntk'")
        if path not in PATHS:
            raise UserError(f"unknown eNTK path {path!r}: use 'auto', 'factorised' or 'general'")
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r}: use 'float64' or 'float32'")
        if projection_dim is not None and int(projection_dim) < 1:
            raise UserError(f"projection_dim must be a positive integer, got {projection_dim}")
        if layer_projection_dim is not None and int(layer_projection_dim) < 1:
            raise UserError(f"--layer-projection-dim {layer_projection_dim}: must be a positive integer (e.g. 16)")
        if int(block_size) < 1:
            raise UserError(f"block_size must be ≥ 1, got {block_size}")
        self.kind, self.normalize, self.block_size, self.seed = kind, bool(normalize), int(block_size), int(seed)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.precision, self.dtype = precision, PRECISIONS[precision]
        self.device = torch.device(device)
        self.module = copy.deepcopy(module).to(device=self.device, dtype=self.dtype).eval()
        self.params_spec = params if params is None or isinstance(params, str) else "custom"
        self.names = _select(self.module, params)
        self.layer_projection_dim = None if layer_projection_dim is None else int(layer_projection_dim)
        if not self.names:
            raise UserError("the eNTK has no parameters to differentiate: no parameter requires grad (or `params` matched none)")
        self._checked = not check
        self.bytes_per_row: float | None = None  # size of one sample's factors, known after the first block
        reason = unsupported_reason(self.module, set(self.names))
        if path == "factorised" and reason:
            raise UserError(f"the factorised eNTK path cannot handle this module ({reason}); use path='general' or 'auto'")
        if path == "factorised" and self.projection_dim is not None:
            raise UserError("projection_dim applies to the general path only; drop it or use path='general'")
        if path == "general":
            self._use_general("requested: path='general'")
        elif reason:
            self._use_general(f"{reason}: using the general torch.func path")
        else:
            self.path_used = "factorised"
            self.path_reason = "every parameterised layer is Linear, Conv2d or BatchNorm (eval): layer-wise factorised gradients"
            if self.projection_dim is not None:
                self.path_reason += " (exact, so projection_dim is not used)"
            projector = None
            if self.layer_projection_dim is not None:
                from .projection import LayerProjector

                projector = LayerProjector(self.layer_projection_dim, self.seed)
                self.path_reason += (
                    f"; Conv2d / multi-use Linear weight gradients projected per layer to {self.layer_projection_dim}×{self.layer_projection_dim} (Kronecker, unbiased approximate kernel)"
                )
            self._impl = FactorisedGrads(self.module, set(self.names), kind, projector)

    def _use_general(self, reason: str) -> None:
        if self.layer_projection_dim is not None:
            raise UserError(
                f"--layer-projection-dim needs the factorised eNTK path, but this module needs the general one ({reason}); drop it and use --kernel-params (a parameter subset) or --projection-dim"
            )
        self.path_used, self.path_reason = "general", reason
        if self.projection_dim is not None:
            self.path_reason += f"; per-sample gradients randomly projected to {self.projection_dim} dims (approximate kernel)"
        self._impl = GeneralGrads(self.module, self.names, self.kind, self.projection_dim, self.seed)
        self._checked = True

    @property
    def signature(self) -> str:
        subset = "all" if self.params_spec is None else f"{self.params_spec}:{len(self.names)}"
        return f"{self.kind}/{self.path_used}/{self.precision}/{self.projection_dim}/{self.layer_projection_dim}/{subset}/{self.seed}"

    def parameter_count(self) -> int:
        params = dict(self.module.named_parameters())
        return int(sum(params[n].numel() for n in self.names))

    def _as_tensor(self, x) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        return t.to(device=self.device, dtype=self.dtype)

    def factors(self, x) -> KernelFactors:
        """Kernel factors of one block of inputs (numpy array or tensor, first axis = samples)."""
        xt = self._as_tensor(x)
        if xt.shape[0] == 0:
            raise UserError("cannot compute the eNTK of an empty block of inputs")
        fac = self._impl(xt, self.signature)
        if not self._checked:
            self._checked = True
            bad = self._probe(xt, fac)
            if bad:
                self._use_general(f"factorised kernel disagreed with per-sample gradients on a probe ({bad}): using the general torch.func path")
                fac = self._impl(xt, self.signature)
        self.bytes_per_row = fac.nbytes / fac.n
        return fac

    def _probe(self, x: torch.Tensor, fac: KernelFactors) -> str | None:
        """Compare the factorised raw kernel of the first samples with torch.func per-sample gradients."""
        k = min(2, x.shape[0])
        ref = GeneralGrads(self.module, self.names, self.kind, None, self.seed)(x[:k], "probe")
        want = ref.raw_gram(ref)
        if self.layer_projection_dim is not None:  # check the unprojected factorisation (the projection is tested on its own)
            sub = FactorisedGrads(self.module, set(self.names), self.kind)(x[:k], "probe")
        else:
            sub = fac.take(torch.arange(k))
        got = sub.raw_gram(sub)
        scale = float(want.abs().max())
        err = float((got - want).abs().max()) / scale if scale > 0 else float(got.abs().max())
        tol = 1e-6 if self.dtype == torch.float64 else 1e-3
        return f"relative error {err:.1e}" if not err <= tol else None

    def between(self, fa: KernelFactors, fb: KernelFactors) -> torch.Tensor:
        """The |a|×|b| float64 kernel block (cosine-normalised if `normalize`)."""
        k = fa.raw_gram(fb)
        if self.normalize:
            k = k * _inv_sqrt(fa.diag)[:, None] * _inv_sqrt(fb.diag)[None, :]
        return k

    def _blocks(self, x) -> list[KernelFactors]:
        n = len(x)
        return [self.factors(x[s : s + self.block_size]) for s in range(0, n, self.block_size)]

    def __call__(self, a, b) -> np.ndarray:
        """K(A, B) as a float64 array, computed block by block (factors of B are kept)."""
        fbs = self._blocks(b)
        rows = []
        for s in range(0, len(a), self.block_size):
            fa = self.factors(a[s : s + self.block_size])
            rows.append(torch.cat([self.between(fa, fb) for fb in fbs], dim=1).cpu().numpy())
        return np.concatenate(rows, axis=0)

    def diag(self, a) -> np.ndarray:
        """k(x, x): ones when normalised (zero for an input whose gradient vanishes), raw values otherwise."""
        d = torch.cat([f.diag for f in self._blocks(a)]).cpu().numpy()
        return (d > 0).astype(np.float64) if self.normalize else d

    def __repr__(self) -> str:
        return f"EntkKernel(kind={self.kind!r}, normalize={self.normalize}, path_used={self.path_used!r}, parameters={self.parameter_count()}, precision={self.precision!r})"


def _inv_sqrt(d: torch.Tensor) -> torch.Tensor:
    safe = torch.where(d > 0, d, torch.ones_like(d))
    return torch.where(d > 0, safe.rsqrt(), torch.zeros_like(d))


def _select(module: nn.Module, params) -> list[str]:
    """Names of the parameters that form θ, in module order."""
    names = [n for n, _ in module.named_parameters()]
    if params is None:
        return [n for n, p in module.named_parameters() if p.requires_grad]
    if callable(params):
        return [n for n in names if params(n)]
    if isinstance(params, str):
        from .subset import resolve_params

        chosen = resolve_params(module, params)
        return [n for n, p in module.named_parameters() if p.requires_grad] if chosen is None else chosen
    wanted = [params] if isinstance(params, str) else list(params)
    chosen = []
    for w in wanted:
        hit = [n for n in names if n == w or n.startswith(w + ".")]
        if not hit:
            raise UserError(f"no parameter named {w!r} in the module; names start with: {', '.join(names[:5])}")
        chosen += hit
    return [n for n in names if n in set(chosen)]


__all__ = ["EntkKernel", "KernelFactors", "KINDS", "PATHS"]
