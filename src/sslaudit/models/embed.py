"""Representations of many inputs, block by block, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.inputs import as_rows


@torch.no_grad()
def embed(module: nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu") -> np.ndarray:
    """module(x) for every row of x as a float32 numpy array (module put in eval mode).

    x: an array, a tensor, a map-style torch Dataset (read `batch_size` items at a time) or a
    DataLoader with shuffle=False (read once); see `sslaudit.data.inputs.as_rows`."""
    x = as_rows(x, "x")
    was_training = module.training
    module.eval()
    out = []
    try:
        for s in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[s : s + batch_size]), dtype=torch.float32, device=device)
            out.append(module(xb).float().cpu().numpy())
    finally:
        module.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)
