"""A seeded sparse random projection (CountSketch / SJLT) of whitened gradients.

Each of the D gradient coordinates goes to one of p buckets with a random sign, so
E[⟨Sx, Sy⟩] = ⟨x, y⟩ and the sketch needs O(D) memory (a dense D × p Gaussian matrix for a
100k-parameter encoder and p = 1024 would take 400 MB). Identical inputs give identical sketches,
so an exact duplicate keeps normalised influence 1. When D ≤ p the sketch is the identity (exact).
"""

from __future__ import annotations

import torch

from ...seeding import numpy_rng


class CountSketch:
    def __init__(self, dim_in: int, dim_out: int, seed: int = 0):
        self.dim_in = int(dim_in)
        self.exact = self.dim_in <= int(dim_out)
        self.dim_out = self.dim_in if self.exact else int(dim_out)
        if not self.exact:
            rng = numpy_rng(seed, "influence", "sketch", self.dim_in, self.dim_out)
            self.bucket = torch.from_numpy(rng.integers(0, self.dim_out, self.dim_in))
            self.sign = torch.from_numpy(rng.choice([-1.0, 1.0], self.dim_in).astype("float32"))

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """(b, D) → (b, p)."""
        if self.exact:
            return w.float()
        out = torch.zeros(w.shape[0], self.dim_out, dtype=torch.float32, device=w.device)
        return out.index_add_(1, self.bucket.to(w.device), w.float() * self.sign.to(w.device))
