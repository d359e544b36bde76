"""Known nuisances ("style") applied to clean images, with the label a probe must recover.

Each task draws a continuous value per image from a seeded generator, applies it, and labels
the image with the bin the value falls in (equal-width bins). Geometric nuisances use one
`affine_grid` + `grid_sample` call with zero padding (the background of MNIST-like images):
- rotation: angle uniform in [−90°, 90°), 4 bins of 45°;
- scale: zoom-out factor uniform in [0.5, 1], 3 bins (the object shrinks about the centre);
- brightness: intensities multiplied by a factor uniform in [0.3, 1], 3 bins;
- hflip / vflip: mirrored left–right / upside down with probability ½, 2 classes.
The Fashion-MNIST training augmentation already contains crops (scale), horizontal flips and
brightness jitter, so discriminative SSL is trained to be invariant to those three; rotation and
vertical flips are not augmented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import UserError


@dataclass(frozen=True)
class Nuisance:
    name: str
    low: float
    high: float
    bins: int

    def labels(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value (equal-width bins over [low, high))."""
        b = np.floor((values - self.low) / (self.high - self.low) * self.bins).astype(np.int64)
        return np.clip(b, 0, self.bins - 1)


NUISANCES: dict[str, Nuisance] = {
    "rotation": Nuisance("rotation", -90.0, 90.0, 4),
    "scale": Nuisance("scale", 0.5, 1.0, 3),
    "brightness": Nuisance("brightness", 0.3, 1.0, 3),
    "hflip": Nuisance("hflip", 0.0, 1.0, 2),
    "vflip": Nuisance("vflip", 0.0, 1.0, 2),
}
DEFAULT_TASKS = ("rotation", "scale", "brightness", "hflip", "vflip")


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of N×C×H×W counter-clockwise by its angle (degrees), zero padding."""
    a = degrees.to(x.dtype) * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
    h, w = x.shape[-2:]
    # affine_grid maps output to input coordinates in [-1, 1]² (x right, y down); correct for aspect
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return _warp(x, theta)


def zoom_out(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shrink each image about its centre by `factor` ∈ (0, 1] (zeros fill the border)."""
    theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / factor.to(x.dtype)
    return _warp(x, theta)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_nuisance(name: str, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The nuisance `name` with one value per image; output clamped to [0, 1]."""
    v = values.to(x.device)
    if name == "rotation":
        out = rotate(x, v)
    elif name == "scale":
        out = zoom_out(x, v)
    elif name == "brightness":
        out = x * v.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    elif name in ("hflip", "vflip"):
        flipped = x.flip(-1 if name == "hflip" else -2)
        out = torch.where(v.view(-1, *([1] * (x.ndim - 1))) >= 0.5, flipped, x)
    else:
        raise UserError(f"unknown style task {name!r}: use {', '.join(NUISANCES)}")
    return out.clamp(0.0, 1.0)


def draw_values(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n values of nuisance `name`: uniform over its range (flips: 0 or 1 with probability ½)."""
    nu = NUISANCES[name]
    if name in ("hflip", "vflip"):
        return rng.integers(0, 2, n).astype(np.float64)
    return rng.uniform(nu.low, nu.high, n)


def parse_tasks(text) -> list[str]:
    """'rotation,hflip' → ['rotation', 'hflip']; 'none' → [] (content only)."""
    if str(text).strip().lower() == "none":
        return []
    tasks = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in tasks if t not in NUISANCES]
    if bad:
        raise UserError(f"--tasks {text!r}: unknown task(s) {bad}; choose from {', '.join(NUISANCES)} (comma-separated) or none")
    return tasks


def check_tasks(tasks, kind: str) -> list[str]:
    tasks = list(tasks)
    bad = [t for t in tasks if t not in NUISANCES]
    if bad:
        raise UserError(f"unknown style task(s) {bad}: choose from {', '.join(NUISANCES)}")
    if tasks and kind != "image":
        raise UserError(f"style tasks transform images, but the data is {kind}; pass no style tasks (content only)")
    return tasks
