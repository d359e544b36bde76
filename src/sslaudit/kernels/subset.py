"""Parameter subsets θ_S of a big backbone for the eNTK: k_S(x, x′) = ⟨∇_{θ_S} g(x), ∇_{θ_S} g(x′)⟩.

A ResNet-18 has 11M parameters; its full per-sample gradient is 88 MB in float64. The eNTK
restricted to a subset is exactly the full eNTK's share of those parameters (a sum over
parameter groups), so it is cheap and exact for what it covers. A spec is one of:

- "all" (or None): every parameter with `requires_grad`;
- "last-stage": the parameters of the last stage (for the project's `resnet`: its last
  BasicBlock; in general the last block of the last `nn.Sequential` of blocks — see
  `last_stage_prefix`);
- "bn": every BatchNorm affine parameter (γ, β: 2·C per layer, ~10k for a ResNet-18);
- "bn+last": the BatchNorm parameters plus the last stage;
- a comma-separated list of parameter or module names (prefixes: "trunk.blocks.3,trunk.stem.1").
"""

from __future__ import annotations

from torch import nn

from ..errors import UserError

PRESETS = ("all", "last-stage", "bn", "bn+last")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def last_stage_prefix(module: nn.Module) -> str:
    """The module name of the last stage: the last parameterised child of the last `nn.Sequential`
    whose parameterised children are all composite modules (blocks, not bare layers) — the stage
    list `trunk.blocks` of the project's `resnet` (its last BasicBlock); `layer4` → its last block
    for a torchvision-style ResNet. Falls back to the module's last parameterised child."""
    best = None
    for qual, m in module.named_modules():
        if isinstance(m, nn.Sequential):
            kids = [(n, c) for n, c in m.named_children() if any(True for _ in c.parameters())]
            if len(kids) >= 2 and all(any(True for _ in c.children()) for _, c in kids):
                best = (qual, kids[-1][0])
    if best is None:
        kids = [(n, c) for n, c in module.named_children() if any(True for _ in c.parameters())]
        if not kids:
            raise UserError("--kernel-params last-stage: the module has no parameterised child, so it has no last stage; give module names")
        return kids[-1][0]
    qual, child = best
    return f"{qual}.{child}" if qual else child


def bn_parameters(module: nn.Module) -> list[str]:
    out = []
    for qual, m in module.named_modules():
        if isinstance(m, _BN):
            out += [f"{qual}.{n}" if qual else n for n, _ in m.named_parameters(recurse=False)]
    return out


def resolve_params(module: nn.Module, spec) -> list[str] | None:
    """Parameter names selected by `spec` (module order), or None for "all" (every trainable parameter)."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return None
    if not isinstance(spec, str):
        return list(spec)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    spec = spec.strip()
    chosen: set[str] = set()
    if spec in ("last-stage", "bn+last"):
        pre = last_stage_prefix(module)
        chosen |= {n for n in names if n.startswith(pre + ".")}
    if spec in ("bn", "bn+last"):
        bn = bn_parameters(module)
        if not bn and spec == "bn":
            raise UserError("--kernel-params bn: the module has no BatchNorm layer; use last-stage or module names")
        chosen |= set(bn)
    if spec not in PRESETS:
        for w in (s.strip() for s in spec.split(",")):
            hit = {n for n in names if n == w or n.startswith(w + ".")}
            if not hit:
                raise UserError(f"--kernel-params: no parameter or module named {w!r}; use one of {', '.join(PRESETS)} or names such as {', '.join(names[:3])}")
            chosen |= hit
    out = [n for n in names if n in chosen]
    if not out:
        raise UserError(f"--kernel-params {spec}: selects no trainable parameter of this encoder")
    return out


def describe_params(module: nn.Module, selected: list[str]) -> dict:
    """What a subset covers (for fidelity.json / config.json)."""
    params = dict(module.named_parameters())
    total = sum(p.numel() for p in params.values() if p.requires_grad)
    count = sum(params[n].numel() for n in selected)
    return {"n_parameters": int(count), "n_parameters_total": int(total), "share": float(count / total) if total else 0.0, "n_tensors": len(selected), "first": selected[:3], "last": selected[-3:]}


__all__ = ["PRESETS", "bn_parameters", "describe_params", "last_stage_prefix", "resolve_params"]
