"""Images read on demand: the base of the image folder, `.npy` and Hugging Face inputs.

A `LazyImages` indexes like an N×C×H×W float32 array in [0, 1] but holds only what it needs to
find each image (paths, a memory map, a table of encoded bytes); pixels are read when rows are
asked for, so memory grows with the batch, not with the number of images. Subclasses give
`__len__`, `subset(rows)` and `uint8(rows)` (or `floats(rows)` when their pixels are floats).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


class LazyImages:
    """N×C×H×W float32 images in [0, 1], read on demand; indexes like a numpy array.

    `x[i]` → one C×H×W array; `x[a:b]`, `x[rows]` → a stacked array of those images;
    `x.subset(rows)` → the same kind over those rows (nothing read); `np.asarray(x)` reads all.
    """

    ndim = 4
    dtype = np.dtype(np.float32)
    channels: int
    size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, *self.size)

    def __len__(self) -> int:
        raise NotImplementedError

    def subset(self, rows) -> "LazyImages":
        raise NotImplementedError

    def uint8(self, rows) -> np.ndarray:
        """The images at positions `rows` as an N×C×H×W uint8 array."""
        raise NotImplementedError

    def floats(self, rows) -> np.ndarray:
        """The images at positions `rows` as N×C×H×W float32 in [0, 1]."""
        return self.uint8(rows).astype(np.float32) / np.float32(255.0)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image {i} is out of range for {len(self)} images")
            return self.floats([i % len(self)])[0]
        if isinstance(key, slice):
            rows = np.arange(len(self))[key]
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.nonzero(rows)[0]
            rows = rows.astype(np.int64).reshape(-1)
        return self.floats(rows)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def channel_stats(self, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std over every image, in one streaming pass (float64 sums)."""
        s = np.zeros(self.channels)
        ss = np.zeros(self.channels)
        for a in range(0, len(self), batch):
            xb = self[a : a + batch].astype(np.float64)
            s += xb.sum(axis=(0, 2, 3))
            ss += (xb**2).sum(axis=(0, 2, 3))
        n = len(self) * self.size[0] * self.size[1]
        mean = s / n
        return mean, np.sqrt(np.maximum(ss / n - mean**2, 0.0))


def fit_image(img, size: tuple[int, int], resize: bool, where: str) -> np.ndarray:
    """A decoded C×H×W image tensor as uint8 of `size` (16-bit scaled down; resized if allowed)."""
    import torch

    if img.dtype != torch.uint8:  # 16-bit PNG
        img = (img.to(torch.int32) >> 8).to(torch.uint8) if img.dtype == torch.uint16 else img.clamp(0, 255).to(torch.uint8)
    if tuple(img.shape[1:]) != tuple(size):
        if not resize:
            raise UserError(f"{where} is {img.shape[2]}×{img.shape[1]} but the other images are {size[1]}×{size[0]}: give --image-size to resize all")
        from torchvision.transforms.v2.functional import resize as resize_image

        img = resize_image(img, list(size), antialias=True)
    return img.numpy()


def decode_bytes(data: bytes, channels: int, size: tuple[int, int], resize: bool, where: str) -> np.ndarray:
    """One encoded image (PNG, JPEG, WebP bytes) as C×H×W uint8 of `size`."""
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        with warnings.catch_warnings():  # torchvision 0.29 warns on every decode that its decoders move to TorchCodec
            warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated", category=DeprecationWarning)
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
    except Exception as e:  # torchvision raises RuntimeError for damaged data
        raise UserError(f"cannot decode the image {where} ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no detail'}): repair or remove it") from None
    return fit_image(img, size, resize, where)
