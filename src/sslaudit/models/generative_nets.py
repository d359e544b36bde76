"""Networks of the generative objectives: a Gaussian encoder q(z|x) and decoders p(x|z).

The encoder reuses the SSL trunk of `encoders.build_encoder` (same MLP / ConvNet / ResNet as
SimCLR or VICReg runs), followed by two linear heads for the posterior mean and log-variance.
Its `forward` returns the posterior mean, so `sslaudit.load(RUN).encoder` of a SimVAE / VAE run
is an ordinary `nn.Module` from inputs to an N×z representation that every lens can use.
Decoders map z to the mean of a Gaussian likelihood: a sigmoid output for images (pixels live
in [0, 1]), a linear one for encoded table rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .encoders import build_encoder

PAPER_MLP = [2000, 500, 500]  # the reference MLP for (Fashion-)MNIST: 784-2000-500-500-2z


class GaussianEncoder(nn.Module):
    """x → (mean, log-variance) of q(z|x); `forward(x)` is the posterior mean (N×z)."""

    def __init__(self, arch: dict, z_dim: int):
        super().__init__()
        self.body = build_encoder(arch)
        self.mean = nn.Linear(self.body.out_dim, z_dim)
        self.logvar = nn.Linear(self.body.out_dim, z_dim)
        self.out_dim = z_dim

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mean(h), self.logvar(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(self.body(x))


class MLPDecoder(nn.Module):
    """z → Linear–ReLU blocks → flat output reshaped to the input shape."""

    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, ...], sigmoid: bool):
        super().__init__()
        layers: list[nn.Module] = []
        d = z_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, int(math.prod(out_shape))))
        self.net = nn.Sequential(*layers)
        self.out_shape = tuple(out_shape)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z).view(len(z), *self.out_shape)
        return torch.sigmoid(out) if self.sigmoid else out


class ConvDecoder(nn.Module):
    """z → a (H/4)×(W/4) feature map → two stride-2 transposed convolutions → C×H×W in [0, 1]."""

    def __init__(self, z_dim: int, widths: list[int], out_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = out_shape
        self.out_shape = (c, h, w)
        self.start = (math.ceil(h / 4), math.ceil(w / 4))
        w0, w1, w2 = widths[-1], widths[-2] if len(widths) > 1 else widths[-1], widths[0]
        self.fc = nn.Linear(z_dim, w0 * self.start[0] * self.start[1])
        self.w0 = w0
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(w0, w1, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(w1, w2, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w2, c, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(self.fc(z).view(len(z), self.w0, *self.start))
        c, h, w = self.out_shape
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


def generative_arch(arch: dict, params: dict) -> dict:
    """The encoder architecture, with the MLP widths overridden by params['hidden'] if given."""
    arch = dict(arch)
    hidden = params.get("hidden")
    if hidden is not None:
        if hidden == "paper":
            hidden = PAPER_MLP
        if arch["arch"] != "mlp":
            raise UserError(f"params hidden={hidden!r} sets MLP widths but the encoder is a {arch['arch']}; use --arch mlp")
        if not isinstance(hidden, (list, tuple)) or not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise UserError(f"params hidden={hidden!r} must be a list of positive layer widths, e.g. [2000, 500, 500] (or 'paper')")
        arch["hidden"] = list(hidden)
    return arch


def build_decoder(arch: dict, params: dict, z_dim: int) -> nn.Module:
    """The decoder: 'conv' by default for image ConvNets/ResNets, else an MLP mirroring the encoder."""
    shape = tuple(arch["input_shape"])
    is_image = len(shape) == 3
    kind = params.get("decoder") or ("conv" if is_image and arch["arch"] in ("convnet", "resnet") else "mlp")
    if kind == "conv":
        if not is_image:
            raise UserError(f"decoder 'conv' needs images, but the inputs have shape {shape}; use decoder 'mlp'")
        return ConvDecoder(z_dim, list(arch.get("widths") or [32, 64, 128]), shape)
    if kind == "mlp":
        hidden = list(reversed(arch["hidden"])) if arch["arch"] == "mlp" else [256, 512]
        return MLPDecoder(z_dim, hidden, shape, sigmoid=is_image)
    raise UserError(f"unknown decoder {kind!r}: use 'mlp' or 'conv'")
