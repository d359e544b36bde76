"""Seeded, batched augmentations on torch tensors with explicit random parameters.

Every augmentation separates drawing its random parameters from applying them:

    params = aug.sample(n, g)   # dict of CPU tensors, n parameter sets, drawn with generator g
    out = aug.apply(x, params)  # x: a batch on any device; params are moved to x's device

`aug(x, g)` is `aug.apply(x, aug.sample(len(x), g))`. A parameter batch of size 1 applies to every
row of `x`: that is the common-random-numbers (CRN) mode, the same augmentation draw for every
example (two identical rows then give identical outputs). All randomness comes from `g` (make it
with `sslaudit.seeding.torch_generator`), drawn on the CPU, so the draws are the same on every
device. No Python loop runs over samples.

- `ImageAugment`: random resized crop and flips (one `affine_grid` + `grid_sample` call, output
  the input's H×W), brightness and contrast jitter, optional Gaussian blur (separable, per-sample
  sigma, one grouped convolution per axis), additive Gaussian noise; output clamped to [0, 1].
- `TabularAugment`: SCARF (Bahri et al. 2022): each original feature (a column group of the
  encoded matrix, e.g. all one-hot columns of a categorical) is replaced with probability
  `corruption` by the same feature of a uniformly drawn training row (a draw from the feature's
  empirical marginal; one donor row per sample and feature), then Gaussian noise of std `noise`
  is added to the numeric columns.
- `make_augment(dataset, **overrides)`: the default per dataset (see `DEFAULTS`):
  digits (8×8): crop_scale (0.6, 1), ratio (0.8, 1.25), hflip 0 (digits are not mirror-invariant:
  a flipped 2 or 3 is no digit, some turn into another), brightness/contrast 0.3, noise 0.05, no
  blur — an 8×8 image cannot lose half its area or be blurred without losing the digit;
  fashion-mnist: crop_scale (0.5, 1), hflip 0.5 (clothes are mirror-symmetric), brightness and
  contrast 0.4, noise 0.05, no blur; other images: the `ImageAugment` defaults (crop_scale
  (0.6, 1) when the image side is ≤ 16 pixels); tables: SCARF with corruption 0.6, noise 0.1.
"""

from __future__ import annotations

import inspect
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError


class Augment:
    """Base class: `sample` draws parameters on the CPU with `g`, `apply` uses them."""

    def sample(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), g))

    def config(self) -> dict:
        """The constructor's parameters (for provenance), excluding data tensors."""
        return {}


def _rows(t: torch.Tensor, b: int) -> torch.Tensor:
    """Broadcast a parameter batch of 1 to b rows; check a batch of b."""
    if t.shape[0] == b:
        return t
    if t.shape[0] == 1:
        return t.expand(b, *t.shape[1:])
    raise ValueError(f"augmentation parameters are for {t.shape[0]} samples but the batch has {b}: sample(len(x)) or sample(1)")


def _pair(v, name: str, lo: float, hi: float | None = None) -> tuple[float, float]:
    try:
        a, b = (float(v[0]), float(v[1]))
    except (TypeError, ValueError, IndexError):
        raise UserError(f"augmentation option {name}={v!r} is not a pair of numbers: give (low, high)") from None
    if not (lo <= a <= b) or (hi is not None and b > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f"≥ {lo}"
        raise UserError(f"augmentation option {name}={v!r} is invalid: need low ≤ high, both in {rng}")
    return a, b


def _unit(v, name: str, hi: float = 1.0) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise UserError(f"augmentation option {name}={v!r} is not a number") from None
    if not (0.0 <= f <= hi) or math.isnan(f):
        raise UserError(f"augmentation option {name}={v!r} is outside [0, {hi}]: give a value in that range")
    return f


class ImageAugment(Augment):
    """Random resized crop, flips, brightness/contrast, blur, noise for N×C×H×W images in [0, 1]."""

    def __init__(
        self,
        image_shape: Sequence[int],
        crop_scale: Sequence[float] | None = (0.5, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        vflip: float = 0.0,
        brightness: float = 0.4,
        contrast: float = 0.4,
        noise: float = 0.05,
        blur_prob: float = 0.0,
        blur_sigma: Sequence[float] = (0.1, 1.0),
    ):
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3:
            raise UserError(f"image augmentation needs the image shape as (C, H, W), got {image_shape!r}")
        self.image_shape = shape
        self.crop_scale = (1.0, 1.0) if crop_scale is None else _pair(crop_scale, "crop_scale", 1e-3, 1.0)
        self.ratio = _pair(ratio, "ratio", 1e-3)
        self.hflip = _unit(hflip, "hflip")
        self.vflip = _unit(vflip, "vflip")
        self.brightness = _unit(brightness, "brightness")
        self.contrast = _unit(contrast, "contrast")
        self.noise = _unit(noise, "noise", hi=10.0)
        self.blur_prob = _unit(blur_prob, "blur_prob")
        self.blur_sigma = _pair(blur_sigma, "blur_sigma", 1e-3, 10.0)
        self._crop = self.crop_scale != (1.0, 1.0)  # crop_scale None or (1, 1): no crop (ratio unused)
        self._geometric = self._crop or self.hflip > 0 or self.vflip > 0
        # kernel of 2·⌈2σ_max⌉+1 taps, at most the image side (odd)
        k = 2 * math.ceil(2 * self.blur_sigma[1]) + 1
        side = min(shape[1], shape[2])
        self._ksize = max(1, min(k, side if side % 2 else side - 1))

    def config(self) -> dict:
        return dict(
            kind="image",
            image_shape=list(self.image_shape),
            crop_scale=list(self.crop_scale),
            ratio=list(self.ratio),
            hflip=self.hflip,
            vflip=self.vflip,
            brightness=self.brightness,
            contrast=self.contrast,
            noise=self.noise,
            blur_prob=self.blur_prob,
            blur_sigma=list(self.blur_sigma),
        )

    def sample(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        # uniforms from g; the per-sample arithmetic runs in numpy (tiny arrays: no thread-pool overhead)
        u = torch.rand(n, 10, generator=g, dtype=torch.float64).numpy()
        s_lo, s_hi = self.crop_scale
        area = s_lo + (s_hi - s_lo) * u[:, 0]
        lr_lo, lr_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        r = np.exp(lr_lo + (lr_hi - lr_lo) * u[:, 1])
        w = np.minimum(np.sqrt(area * r), 1.0)  # crop width as a fraction of the image width
        h = np.minimum(np.sqrt(area / r), 1.0)
        if not self._crop:
            w, h = np.ones_like(w), np.ones_like(h)
        theta = np.zeros((n, 2, 3))
        theta[:, 0, 0] = w * np.where(u[:, 4] < self.hflip, -1.0, 1.0)
        theta[:, 0, 2] = (1 - w) * (2 * u[:, 2] - 1)  # crop centre, normalised coordinates in [-1, 1]
        theta[:, 1, 1] = h * np.where(u[:, 5] < self.vflip, -1.0, 1.0)
        theta[:, 1, 2] = (1 - h) * (2 * u[:, 3] - 1)
        sigma = np.where(u[:, 8] < self.blur_prob, self.blur_sigma[0] + (self.blur_sigma[1] - self.blur_sigma[0]) * u[:, 9], 0.0)
        params = {
            "theta": torch.from_numpy(theta.astype(np.float32)),
            "brightness": torch.from_numpy((1 + self.brightness * (2 * u[:, 6] - 1)).astype(np.float32)),
            "contrast": torch.from_numpy((1 + self.contrast * (2 * u[:, 7] - 1)).astype(np.float32)),
            "blur_sigma": torch.from_numpy(sigma.astype(np.float32)),
        }
        if self.noise > 0:
            params["noise"] = torch.randn(n, *self.image_shape, generator=g).mul_(self.noise)
        return params

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        k = self._ksize
        if k <= 1:
            return x
        d = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
        s = sigma.clamp(min=1e-3)[:, None]
        kern = torch.exp(-(d[None, :] ** 2) / (2 * s**2))
        kern = kern / kern.sum(dim=1, keepdim=True)  # σ = 0 (off) gives the identity kernel
        kern = kern.repeat_interleave(c, dim=0)  # (b·c, k)
        p = (k - 1) // 2
        y = x.reshape(1, b * c, hh, ww)
        y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="replicate"), kern[:, None, None, :], groups=b * c)
        y = F.conv2d(F.pad(y, (0, 0, p, p), mode="replicate"), kern[:, None, :, None], groups=b * c)
        return y.reshape(b, c, hh, ww)

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"ImageAugment expects a batch N×C×H×W, got shape {tuple(x.shape)}")
        b = x.shape[0]
        dev, dt = x.device, x.dtype if x.dtype.is_floating_point else torch.float32
        x = x.to(dt)
        if self._geometric:
            theta = _rows(params["theta"].to(dev, dt), b)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.brightness > 0:
            x = x * params["brightness"].to(dev, dt).view(-1, 1, 1, 1)
        if self.contrast > 0:
            c = params["contrast"].to(dev, dt).view(-1, 1, 1, 1)
            x = c * x + (1 - c) * x.mean(dim=(1, 2, 3), keepdim=True)
        if self.brightness > 0 or self.contrast > 0:
            x = x.clamp(0.0, 1.0)
        if self.blur_prob > 0:
            x = self._blur(x, _rows(params["blur_sigma"].to(dev, dt), b))
        if "noise" in params:
            nz = params["noise"].to(dev, dt)
            if nz.shape[1:] != x.shape[1:]:
                raise ValueError(f"noise parameters are for images {tuple(nz.shape[1:])} but the batch holds {tuple(x.shape[1:])}")
            x = x + nz
        return x.clamp(0.0, 1.0)


class TabularAugment(Augment):
    """SCARF corruption of whole features from the empirical marginals, plus numeric noise."""

    def __init__(
        self,
        train_x: torch.Tensor,
        groups: Sequence[tuple[int, int]],
        numeric_cols: Sequence[int] = (),
        corruption: float = 0.6,
        noise: float = 0.1,
    ):
        train_x = torch.as_tensor(train_x)
        if train_x.ndim != 2 or len(train_x) == 0:
            raise UserError(f"tabular augmentation needs a non-empty N×F training matrix, got shape {tuple(train_x.shape)}")
        self.train_x = train_x if train_x.dtype.is_floating_point else train_x.float()
        nf = train_x.shape[1]
        self.groups = [(int(a), int(b)) for a, b in groups]
        col_group = torch.full((nf,), len(self.groups), dtype=torch.long)  # len(groups): never corrupted
        for i, (a, b) in enumerate(self.groups):
            if not (0 <= a < b <= nf):
                raise ValueError(f"feature group ({a}, {b}) does not lie within the {nf} columns")
            col_group[a:b] = i
        self._col_group = col_group
        self._all_grouped = bool((col_group < len(self.groups)).all())
        self.numeric_cols = torch.as_tensor([int(c) for c in numeric_cols], dtype=torch.long)
        if len(self.numeric_cols) and (self.numeric_cols.min() < 0 or self.numeric_cols.max() >= nf):
            raise ValueError(f"numeric columns {numeric_cols} do not lie within the {nf} columns")
        self.corruption = _unit(corruption, "corruption")
        self.noise = _unit(noise, "noise", hi=10.0)
        self._cache: dict = {}

    def config(self) -> dict:
        return dict(kind="tabular", corruption=self.corruption, noise=self.noise, n_groups=len(self.groups))

    def sample(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        ng = len(self.groups)
        params = {
            "mask": torch.rand(n, ng, generator=g) < self.corruption,
            "donor": torch.randint(0, len(self.train_x), (n, ng), generator=g),
        }
        if self.noise > 0 and len(self.numeric_cols):
            params["noise"] = torch.randn(n, len(self.numeric_cols), generator=g) * self.noise
        return params

    def _on(self, dev: torch.device, dt: torch.dtype):
        key = (str(dev), dt)
        if key not in self._cache:
            self._cache[key] = (
                self.train_x.to(dev, dt),
                self._col_group.to(dev),
                self.numeric_cols.to(dev),
                torch.arange(self.train_x.shape[1], device=dev),
            )
        return self._cache[key]

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.train_x.shape[1]:
            raise ValueError(f"TabularAugment expects a batch N×{self.train_x.shape[1]}, got shape {tuple(x.shape)}")
        dev, dt = x.device, x.dtype if x.dtype.is_floating_point else torch.float32
        train, col_group, num, cols = self._on(dev, dt)
        b = x.shape[0]
        mask, donor = params["mask"].to(dev), params["donor"].to(dev)
        if not self._all_grouped:  # an extra, never corrupted group for the ungrouped columns
            mask = torch.cat([mask, torch.zeros(len(mask), 1, dtype=torch.bool, device=dev)], dim=1)
            donor = torch.cat([donor, torch.zeros(len(donor), 1, dtype=torch.long, device=dev)], dim=1)
        mask, donor = _rows(mask[:, col_group], b), _rows(donor[:, col_group], b)
        out = torch.where(mask, train[donor, cols], x.to(dt))
        if "noise" in params:
            out[:, num] += _rows(params["noise"].to(dev, dt), b)
        return out


DEFAULTS: dict[str, dict] = {
    "digits": dict(crop_scale=(0.6, 1.0), ratio=(0.8, 1.25), hflip=0.0, vflip=0.0, brightness=0.3, contrast=0.3, noise=0.05, blur_prob=0.0),
    "fashion-mnist": dict(crop_scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, vflip=0.0, brightness=0.4, contrast=0.4, noise=0.05, blur_prob=0.0),
    "small-image": dict(crop_scale=(0.6, 1.0)),  # other images with a side ≤ 16 pixels
    "image": dict(),
    "tabular": dict(corruption=0.6, noise=0.1),
}


def make_augment(dataset, **overrides) -> Augment:
    """The default augmentation for `dataset` (see `DEFAULTS`), with `overrides` of its options."""
    if dataset.kind == "image":
        cls = ImageAugment
        shape = tuple(dataset.input_shape)
        if dataset.name in DEFAULTS:
            base = DEFAULTS[dataset.name]
        elif len(shape) == 3 and min(shape[1], shape[2]) <= 16:
            base = DEFAULTS["small-image"]
        else:
            base = DEFAULTS["image"]
        fixed = {"image_shape": shape}
    elif dataset.kind == "tabular":
        cls = TabularAugment
        base = DEFAULTS["tabular"]
        schema = dataset.schema
        if schema is None:
            raise UserError(f"the table {dataset.name!r} has no encoding schema: load it with sslaudit.data.load_dataset")
        fixed = {
            "train_x": torch.from_numpy(dataset.train.x),
            "groups": schema.groups(),
            "numeric_cols": [f.start for f in schema.features if f.kind == "numeric"],
        }
    else:
        raise UserError(f"no augmentation for data of kind {dataset.kind!r}: expected 'image' or 'tabular'")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *fixed)]
    bad = [k for k in overrides if k not in allowed]
    if bad:
        raise UserError(f"unknown augmentation option(s) {bad} for {dataset.kind} data: choose from {', '.join(allowed)}")
    return cls(**fixed, **{**base, **overrides})
