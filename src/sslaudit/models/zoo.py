"""Encoders from the model libraries people train with: torchvision builders by name, timm as `timm:NAME`.

An architecture dict `{"arch": "zoo", "name": "resnet18" | "timm:NAME", "cifar_stem": bool,
"input_shape": [C, H, W], "mean": [...], "std": [...], "output": None | KEY | INDEX}` rebuilds
the module before its weights are loaded with `weights_only=True`: the weights are data, the
code is the library's, so such a run needs no --trust-code. The classification head is removed
(`fc`/`classifier`/`head` → identity), so the module returns the backbone representation.
`cifar_stem` is solo-learn's CIFAR ResNet stem: a 3×3 stride-1 conv1 and no max-pool.
Grey images are repeated to three channels when the network expects RGB.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .encoders import Normalize

HEADS = ("fc", "classifier", "head", "heads")


class SelectOutput(nn.Module):
    """The part `key` (a dict key or tuple index) of a module's output; the tensor itself when None."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def forward(self, out):
        if self.key is None:
            if not isinstance(out, torch.Tensor):
                raise UserError(f"the encoder returns a {type(out).__name__}, not a tensor: choose the embedding with --output KEY|INDEX")
            return out
        try:
            part = out[self.key]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"--output {self.key!r} does not select part of the encoder's {type(out).__name__} output") from None
        return part.flatten(1) if isinstance(part, torch.Tensor) and part.ndim > 2 else part


class ZooEncoder(nn.Module):
    """Images in [0, 1] → normalise (stored mean/std) → library backbone → chosen output."""

    def __init__(self, backbone: nn.Module, mean, std, in_channels: int, net_channels: int, output=None, input_shape=None):
        super().__init__()
        self.normalize = Normalize(list(mean), list(std))
        self.repeat = net_channels if in_channels == 1 and net_channels != 1 else 1
        self.backbone = backbone
        self.select = SelectOutput(output)
        self.input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self._out_dim: int | None = None

    @property
    def out_dim(self) -> int:
        """The representation's width (the projector's input), measured once with a forward pass of
        two blank inputs in eval mode: a library backbone does not state it."""
        if self._out_dim is None:
            if self.input_shape is None:
                raise UserError("the encoder's input shape is unknown, so its output width cannot be measured")
            mode = self.training
            self.eval()
            p = next(self.parameters(), None)
            with torch.no_grad():
                z = self(torch.zeros(2, *self.input_shape, device=None if p is None else p.device))
            self.train(mode)
            self._out_dim = int(z.reshape(2, -1).shape[1])
        return self._out_dim

    def forward(self, x):
        x = self.normalize(x)
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, -1, -1)
        return self.select(self.backbone(x))


def parse_output(text: str | None):
    """--output: an integer is a tuple index, anything else a dict key."""
    if text is None:
        return None
    t = str(text).strip()
    return int(t) if t.lstrip("-").isdigit() else t


def build_backbone(name: str, cifar_stem: bool = False) -> nn.Module:
    """The library's module for `name` (no weights downloaded), its head replaced by identity."""
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise UserError(f"--arch {name} needs timm: pip install 'sslaudit[timm]'") from None
        try:
            net = timm.create_model(name[5:], pretrained=False, num_classes=0)
        except Exception as e:  # timm raises RuntimeError for unknown names
            raise UserError(f"timm has no model {name[5:]!r} ({str(e).splitlines()[0][:160]}); see timm.list_models()") from None
    else:
        import torchvision.models as tvm

        names = set(tvm.list_models(module=tvm))
        if name not in names:
            close = sorted(n for n in names if n[:4] == name[:4])[:8]
            raise UserError(f"torchvision has no model {name!r}" + (f" (similar: {', '.join(close)})" if close else "") + "; or use timm:NAME")
        net = tvm.get_model(name, weights=None)
        for h in HEADS:
            if hasattr(net, h) and isinstance(getattr(net, h), nn.Module):
                setattr(net, h, nn.Identity())
    if cifar_stem:
        conv1 = getattr(net, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or not hasattr(net, "maxpool"):
            raise UserError(f"--cifar-stem applies to ResNets (a conv1 and a maxpool); {name} has none")
        net.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    return net


def first_conv_channels(net: nn.Module) -> int:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 3


def build_zoo_encoder(arch: dict) -> ZooEncoder:
    net = build_backbone(arch["name"], bool(arch.get("cifar_stem")))
    c = int(arch["input_shape"][0])
    return ZooEncoder(net, arch["mean"], arch["std"], c, first_conv_channels(net), arch.get("output"), arch["input_shape"])


def checkpoint_state(obj, where) -> dict:
    """The tensors of a checkpoint: a plain state dict, or Lightning's / solo-learn's `state_dict`
    entry (also `model`, `module`, `encoder`), keeping tensor entries only."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module", "encoder", "backbone"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise UserError(f"{where} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise UserError(f"{where} holds no tensors: give a state dict or a Lightning/solo-learn .ckpt")
    return state


def fit_state(net: nn.Module, state: dict, prefix: str | None, where) -> dict:
    """`state` with `prefix` stripped (keys without it dropped) and head tensors removed, checked
    to match `net` exactly; a mismatch lists every missing and unexpected key."""
    if prefix:
        kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not kept:
            heads = sorted({k.split(".")[0] + "." for k in state})[:10]
            raise UserError(f"no key of {where} starts with --prefix {prefix!r}; its keys start with {', '.join(heads)}")
        state = kept
    ref = net.state_dict()
    state = {k: v for k, v in state.items() if not (k.split(".")[0] in HEADS and k not in ref)}
    missing = sorted(set(ref) - set(state))
    unexpected = sorted(set(state) - set(ref))
    wrong = sorted(k for k in set(ref) & set(state) if tuple(ref[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        hint = ""
        starts = sorted({k.split(".")[0] + "." for k in unexpected})
        if unexpected and len(starts) <= 3 and not prefix:
            hint = f"; the keys start with {', '.join(starts)}: try --prefix {starts[0]}"
        parts = [
            f"missing ({len(missing)}): {', '.join(missing)}" if missing else "",
            f"unexpected ({len(unexpected)}): {', '.join(unexpected)}" if unexpected else "",
            "shape mismatch: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ref[k].shape)}" for k in wrong) if wrong else "",
        ]
        raise UserError(
            f"the weights in {where} do not fit the architecture — "
            + "; ".join(p for p in parts if p)
            + hint
            + (" (a CIFAR ResNet from solo-learn? add --cifar-stem)" if any(k == "conv1.weight" for k in wrong) else "")
        )
    return state
