"""Encoders (MLP for tables, small ConvNet and ResNet for images), projector and predictor heads.

An `Encoder` takes float32 inputs — images N×C×H×W in [0, 1] (normalisation is inside the
module) or encoded table rows — and returns the backbone representation, which ends in a ReLU
(non-negative, like a ResNet's pooled features) because some lenses (Q-Score) need that.
Architectures are described by a JSON-able dict so that a run can rebuild them before loading
weights with `weights_only=True`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError

ARCHS = ("mlp", "convnet", "resnet")


class Normalize(nn.Module):
    """(x − mean) / std per channel, with the statistics as buffers (saved with the weights)."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLPTrunk(nn.Module):
    """Linear–ReLU blocks; no normalisation layers, so the factorised eNTK path applies."""

    def __init__(self, in_dim: int, hidden: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x):
        return self.net(x.flatten(1))


class ConvTrunk(nn.Module):
    """conv3×3–BN–ReLU blocks with 2× max-pooling between them, then global average pooling."""

    def __init__(self, in_ch: int, widths: list[int], image_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_ch, image_size
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1 and size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_dim = c

    def forward(self, x):
        return self.net(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNetTrunk(nn.Module):
    """A small ResNet: a stem and one BasicBlock per width (stride 2 after the first)."""

    def __init__(self, in_ch: int, widths: list[int], image_size: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c, size = [], widths[0], image_size
        for i, w in enumerate(widths):
            stride = 2 if i > 0 and size >= 4 else 1
            blocks.append(BasicBlock(c, w, stride))
            size = math.ceil(size / stride)
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c

    def forward(self, x):
        return self.pool(self.blocks(self.stem(x)))


class Encoder(nn.Module):
    """Inputs (images in [0, 1] or encoded table rows) → non-negative backbone representation."""

    def __init__(self, trunk: nn.Module, normalize: nn.Module | None = None):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.trunk = trunk
        self.out_dim: int = trunk.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.normalize(x))


def mlp_head(in_dim: int, hidden: int, out_dim: int, batchnorm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(), nn.Linear(hidden, out_dim)]
    return nn.Sequential(*layers)


def default_arch(kind: str, input_shape: tuple[int, ...], arch: str | None = None, cifar_stem: bool = False) -> dict:
    """The default architecture description for a dataset kind and input shape; `arch` outside
    ARCHS is a torchvision builder name or `timm:NAME` (models/zoo.py), trained from scratch with
    solo-learn's projector size (2048 hidden, 256 out)."""
    if arch is None or arch == "auto":
        arch = "mlp" if kind == "tabular" else "convnet"
    if cifar_stem and arch in ARCHS:
        raise UserError(f"--cifar-stem applies to a torchvision ResNet (--arch resnet18, resnet50, …), not to --arch {arch}")
    if arch not in ARCHS:
        if len(input_shape) != 3:
            raise UserError(f"--arch {arch} needs images (C×H×W inputs), got inputs of shape {tuple(input_shape)}; use --arch mlp")
        from .zoo import build_backbone

        build_backbone(arch, cifar_stem)  # an unknown name or a stem it cannot take fails here, before anything is written
        return {"arch": "zoo", "name": arch, "cifar_stem": bool(cifar_stem), "input_shape": list(input_shape), "output": None, "proj_hidden": 2048, "proj_dim": 256}
    if arch == "mlp":
        return {"arch": "mlp", "input_shape": list(input_shape), "hidden": [256, 256], "proj_hidden": 256, "proj_dim": 64}
    if len(input_shape) != 3:
        raise UserError(f"the {arch} architecture needs images (C×H×W inputs), got inputs of shape {tuple(input_shape)}; use --arch mlp")
    widths = [32, 64, 128]
    return {"arch": arch, "input_shape": list(input_shape), "widths": widths, "proj_hidden": 256, "proj_dim": 128}


def build_encoder(arch: dict) -> nn.Module:
    shape = tuple(arch["input_shape"])
    kind = arch["arch"]
    if kind == "zoo":  # a torchvision / timm builder by name (models/zoo.py)
        from .zoo import build_zoo_encoder

        return build_zoo_encoder(arch)
    if kind == "mlp":
        return Encoder(MLPTrunk(int(math.prod(shape)), list(arch["hidden"])))
    c, h, _ = shape
    norm = Normalize(arch.get("mean", [0.5] * c), arch.get("std", [0.25] * c))
    if kind == "convnet":
        return Encoder(ConvTrunk(c, list(arch["widths"]), h), norm)
    if kind == "resnet":
        return Encoder(ResNetTrunk(c, list(arch["widths"]), h), norm)
    raise UserError(f"unknown architecture {kind!r}: use one of {', '.join(ARCHS)}")


class SSLModel(nn.Module):
    """Encoder + projector (+ predictor for BYOL). Lenses use `.encoder`; training uses all."""

    def __init__(self, arch: dict, predictor: bool = False):
        super().__init__()
        self.arch = dict(arch)
        self.encoder = build_encoder(arch)
        d = self.encoder.out_dim
        self.projector = mlp_head(d, arch["proj_hidden"], arch["proj_dim"])
        self.predictor = mlp_head(arch["proj_dim"], arch["proj_hidden"], arch["proj_dim"]) if predictor else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))
