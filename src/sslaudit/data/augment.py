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
import json
import math
from pathlib import Path
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

    def view(self, i: int) -> "Augment":
        """The augmentation of view i (0 or 1) of a pair: the same for both unless asymmetric."""
        return self

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
        saturation: float = 0.0,
        hue: float = 0.0,
        jitter_prob: float = 1.0,
        grayscale: float = 0.0,
        solarize: float = 0.0,
        solarize_threshold: float = 0.5,
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
        self.saturation = _unit(saturation, "saturation")
        self.hue = _unit(hue, "hue", hi=0.5)
        self.jitter_prob = _unit(jitter_prob, "jitter_prob")
        self.grayscale = _unit(grayscale, "grayscale")
        self.solarize = _unit(solarize, "solarize")
        self.solarize_threshold = _unit(solarize_threshold, "solarize_threshold")
        rgb = shape[0] == 3
        self._colour = rgb and (self.saturation > 0 or self.hue > 0 or self.grayscale > 0)  # no-ops on grey images
        # the extra uniforms are drawn only when an option that needs them is on, so the draws of the
        # earlier options (and every stored run trained with them) stay the same
        self._extra = self._colour or self.solarize > 0 or self.jitter_prob < 1
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
            saturation=self.saturation,
            hue=self.hue,
            jitter_prob=self.jitter_prob,
            grayscale=self.grayscale,
            solarize=self.solarize,
            solarize_threshold=self.solarize_threshold,
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
        brightness = 1 + self.brightness * (2 * u[:, 6] - 1)
        contrast = 1 + self.contrast * (2 * u[:, 7] - 1)
        params = {"theta": torch.from_numpy(theta.astype(np.float32)), "blur_sigma": torch.from_numpy(sigma.astype(np.float32))}
        if self._extra:
            v = torch.rand(n, 6, generator=g, dtype=torch.float64).numpy()
            jitter = v[:, 0] < self.jitter_prob  # colour jitter as a whole, with probability jitter_prob
            brightness, contrast = np.where(jitter, brightness, 1.0), np.where(jitter, contrast, 1.0)
            params["saturation"] = torch.from_numpy(np.where(jitter, 1 + self.saturation * (2 * v[:, 1] - 1), 1.0).astype(np.float32))
            params["hue"] = torch.from_numpy(np.where(jitter, self.hue * (2 * v[:, 2] - 1), 0.0).astype(np.float32))
            params["grayscale"] = torch.from_numpy(v[:, 3] < self.grayscale)
            params["solarize"] = torch.from_numpy(v[:, 4] < self.solarize)
        params["brightness"] = torch.from_numpy(brightness.astype(np.float32))
        params["contrast"] = torch.from_numpy(contrast.astype(np.float32))
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
        # colour jitter in torchvision's per-operation semantics (each op clamps to [0, 1]), in a fixed
        # order: brightness, contrast, saturation, hue (torchvision draws the order per call)
        if self.brightness > 0:
            x = (x * _rows(params["brightness"].to(dev, dt), b).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
        if self.contrast > 0:
            c = _rows(params["contrast"].to(dev, dt), b).view(-1, 1, 1, 1)
            x = (c * x + (1 - c) * luma(x).mean(dim=(1, 2, 3), keepdim=True)).clamp(0.0, 1.0)
        if self._colour:
            if self.saturation > 0:
                f = _rows(params["saturation"].to(dev, dt), b).view(-1, 1, 1, 1)
                x = (f * x + (1 - f) * luma(x)).clamp(0.0, 1.0)
            if self.hue > 0:
                x = shift_hue(x, _rows(params["hue"].to(dev, dt), b))
            if self.grayscale > 0:
                grey = _rows(params["grayscale"].to(dev), b).view(-1, 1, 1, 1)
                x = torch.where(grey, luma(x).expand_as(x), x)
        if self.blur_prob > 0:
            x = self._blur(x, _rows(params["blur_sigma"].to(dev, dt), b))
        if "noise" in params:
            nz = params["noise"].to(dev, dt)
            if nz.shape[1:] != x.shape[1:]:
                raise ValueError(f"noise parameters are for images {tuple(nz.shape[1:])} but the batch holds {tuple(x.shape[1:])}")
            x = x + nz
        x = x.clamp(0.0, 1.0)
        if self.solarize > 0:  # after blur and noise, as in BYOL's pipeline (solarisation comes last)
            sol = _rows(params["solarize"].to(dev), b).view(-1, 1, 1, 1)
            x = torch.where(sol & (x >= self.solarize_threshold), 1.0 - x, x)
        return x


def luma(x: torch.Tensor) -> torch.Tensor:
    """The ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B) of N×3×H×W images as N×1×H×W; grey images as they are."""
    if x.shape[1] != 3:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of N×3×H×W RGB images in [0, 1] by `shift` (N,) turns, through HSV."""
    mx, imax = x.max(dim=1)
    mn = x.min(dim=1).values
    chroma = mx - mn
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    r, g, b = x.unbind(1)
    # hue in sixths of a turn, by the channel that holds the maximum (ties go to the first channel)
    h = torch.where(imax == 0, ((g - b) / safe) % 6, torch.where(imax == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(chroma > 0, h, torch.zeros_like(h)) / 6
    s = torch.where(mx > 0, chroma / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(mx))
    h = (h + shift.view(-1, 1, 1)) % 1.0
    # HSV back to RGB: each channel is v − v·s·clamp(min(k, 4 − k), 0, 1) with k = (n + 6h) mod 6
    out = [mx - mx * s * torch.clamp(torch.minimum((n + 6 * h) % 6, 4 - (n + 6 * h) % 6), 0, 1) for n in (5.0, 3.0, 1.0)]
    return torch.stack(out, dim=1).clamp(0.0, 1.0)


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


class AsymmetricAugment(Augment):
    """Different augmentations for the first and the second view (BYOL: blur always on view 1, solarise view 2).

    Consumers that draw views ask for `view(i)`; drawing from the pair itself is an error, because
    it would silently pick one of the two.
    """

    def __init__(self, views: Sequence[Augment]):
        self.views = list(views)
        if len(self.views) != 2:
            raise UserError(f"an asymmetric augmentation has exactly 2 views, got {len(self.views)}: give one option set per view")

    def view(self, i: int) -> Augment:
        return self.views[i % 2]

    def sample(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        raise TypeError("an asymmetric augmentation has one augmentation per view: call .view(i).sample(n, g)")

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        raise TypeError("an asymmetric augmentation has one augmentation per view: call .view(i).apply(x, params)")

    def config(self) -> dict:
        return dict(kind="asymmetric", views=[v.config() for v in self.views])


class CallableAugment(Augment):
    """A user's `fn(x, generator) -> x` as an `Augment`: each row is augmented by its own seeded generator.

    `sample` draws one 63-bit seed per row from `g`; `apply` calls `fn(x[i:i+1], Generator(seed_i))`
    row by row (a Python loop: slower than the built-in augmentations), so a row's view does not
    depend on the batch it is in and the views stay reproducible. A parameter batch of one seed (CRN)
    gives every row the same generator state.
    """

    def __init__(self, fn):
        self.fn = fn

    def sample(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        return {"seed": torch.randint(0, 2**62, (n,), generator=g, dtype=torch.int64)}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        seeds = _rows(params["seed"], x.shape[0]).tolist()
        out = []
        for i, seed in enumerate(seeds):
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            y = self.fn(x[i : i + 1], gen)
            if not isinstance(y, torch.Tensor) or y.shape != x[i : i + 1].shape:
                got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise UserError(f"the augmentation {_name(self.fn)} returned {got} for an input of shape {tuple(x[i : i + 1].shape)}: it must return a tensor of the input's shape")
            out.append(y)
        return torch.cat(out).to(x.device)

    def config(self) -> dict:
        return dict(kind="callable", name=_name(self.fn))


def _name(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def as_augment(obj) -> Augment:
    """An `Augment` as it is; a callable `fn(x, generator)` wrapped in `CallableAugment`."""
    if isinstance(obj, Augment):
        return obj
    if callable(obj):
        try:
            params = [p for p in inspect.signature(obj).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        except (TypeError, ValueError):
            params = None
        if params is not None and len(params) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
            raise UserError(f"the augmentation {_name(obj)} takes {len(params)} argument(s): it must accept (x, generator) and draw all its randomness from the generator, so views are reproducible")
        return CallableAugment(obj)
    raise UserError(f"augment={type(obj).__name__} is not an augmentation: pass an sslaudit.data.augment.Augment or a function fn(x, generator)")


DEFAULTS: dict[str, dict] = {
    "digits": dict(crop_scale=(0.6, 1.0), ratio=(0.8, 1.25), hflip=0.0, vflip=0.0, brightness=0.3, contrast=0.3, noise=0.05, blur_prob=0.0),
    "fashion-mnist": dict(crop_scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, vflip=0.0, brightness=0.4, contrast=0.4, noise=0.05, blur_prob=0.0),
    "small-image": dict(crop_scale=(0.6, 1.0)),  # other images with a side ≤ 16 pixels
    "image": dict(),
    "tabular": dict(corruption=0.6, noise=0.1),
}

# The SSL libraries' image pipelines (lightly's SimCLRTransform with cj_strength 0.5 and BYOLTransform;
# solo-learn's and the BYOL paper's settings): random resized crop 0.08–1, flip 0.5, colour jitter
# with probability 0.8, grayscale 0.2, Gaussian blur σ ∈ [0.1, 2]; no additive noise.
_SSL_IMAGE = dict(crop_scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, vflip=0.0, jitter_prob=0.8, brightness=0.4, contrast=0.4, grayscale=0.2, blur_sigma=(0.1, 2.0), noise=0.0)
PRESETS: dict[str, dict] = {
    "default": {},  # the per-dataset DEFAULTS
    "simclr": dict(_SSL_IMAGE, saturation=0.4, hue=0.1, blur_prob=0.5),
    "byol": dict(_SSL_IMAGE, saturation=0.2, hue=0.1, views=[dict(blur_prob=1.0, solarize=0.0), dict(blur_prob=0.1, solarize=0.2)]),
}


def read_augment_spec(value) -> dict:
    """An augmentation spec from a preset name, a JSON/YAML file's path, or a mapping.

    A spec is `{"preset": NAME, OPTION: VALUE, ..., "views": [{...}, {...}]}`: options apply to both
    views, `views` (two mappings) to one view each; everything is optional. A file is read here, so
    a run stores the spec itself, never a path.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        spec = dict(value)
    else:
        text = str(value)
        if text in PRESETS:
            return {} if text == "default" else {"preset": text}
        path = Path(text).expanduser()
        if path.suffix.lower() not in (".json", ".yaml", ".yml"):
            raise UserError(f"--augment {text!r} is neither a preset ({', '.join(PRESETS)}) nor a .json/.yaml file")
        if not path.is_file():
            raise UserError(f"--augment {text}: no such file; give a preset ({', '.join(PRESETS)}) or an existing .json/.yaml file")
        try:
            if path.suffix.lower() == ".json":
                spec = json.loads(path.read_text())
            else:
                import yaml

                spec = yaml.safe_load(path.read_text())
        except Exception as e:  # a user file: say which and why, in one line
            raise UserError(f"--augment {text} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): fix the file's syntax") from None
        if not isinstance(spec, dict):
            raise UserError(f"--augment {text} holds a {type(spec).__name__}, not a mapping of augmentation options")
    preset = spec.get("preset", "default")
    if preset not in PRESETS:
        raise UserError(f"augmentation preset {preset!r} is unknown: choose from {', '.join(PRESETS)}")
    views = spec.get("views")
    if views is not None and (not isinstance(views, list) or len(views) != 2 or not all(isinstance(v, dict) for v in views)):
        raise UserError("augmentation 'views' must be a list of two mappings of options (view 1, view 2)")
    return spec


def make_augment(dataset, spec=None, **overrides) -> Augment:
    """The augmentation for `dataset`: a preset (default: the per-dataset `DEFAULTS`), the spec's options, then `overrides`."""
    spec = read_augment_spec(spec)
    preset = spec.get("preset", "default")
    options = {k: v for k, v in spec.items() if k not in ("preset", "views")}
    if dataset.kind == "image":
        cls = ImageAugment
        shape = tuple(dataset.input_shape)
        if preset != "default":
            base = {k: v for k, v in PRESETS[preset].items() if k != "views"}
        elif dataset.name in DEFAULTS:
            base = DEFAULTS[dataset.name]
        elif len(shape) == 3 and min(shape[1], shape[2]) <= 16:
            base = DEFAULTS["small-image"]
        else:
            base = DEFAULTS["image"]
        fixed = {"image_shape": shape}
    elif dataset.kind == "tabular":
        if preset != "default":
            raise UserError(f"the augmentation preset {preset!r} is for images; tables use SCARF (preset 'default'), whose options are corruption and noise")
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
    preset_views = PRESETS[preset].get("views") or [{}, {}]
    spec_views = spec.get("views") or [{}, {}]
    merged = {**base, **options, **overrides}
    per_view = [{**merged, **pv, **sv} for pv, sv in zip(preset_views, spec_views)]
    bad = sorted({k for opts in per_view for k in opts if k not in allowed})
    if bad:
        raise UserError(f"unknown augmentation option(s) {bad} for {dataset.kind} data: choose from {', '.join(allowed)}")
    if per_view[0] == per_view[1]:
        return cls(**fixed, **per_view[0])
    return AsymmetricAugment([cls(**fixed, **opts) for opts in per_view])
