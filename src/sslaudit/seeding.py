"""Deterministic random streams derived from a seed and a path of keys.

Every random draw in sslaudit comes from a generator made here, so the same seed gives the
same result whatever ran before (no dependence on global RNG state).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed derived from `seed` and any keys (e.g. 'epoch', 3)."""
    text = "/".join([str(int(seed))] + [str(k) for k in keys]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def torch_generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


def numpy_rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *keys))
