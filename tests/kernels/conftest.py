"""Tiny encoders and inputs for the kernel tests (built with the project's own builders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslaudit.models.encoders import build_encoder, default_arch


def _randomise_bn(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


@pytest.fixture(scope="session")
def mlp():
    torch.manual_seed(0)
    arch = default_arch("tabular", (12,))
    arch["hidden"] = [16, 8]
    return build_encoder(arch).eval()


@pytest.fixture(scope="session")
def convnet():
    torch.manual_seed(1)
    arch = default_arch("image", (1, 8, 8))
    arch["widths"] = [4, 6]
    enc = build_encoder(arch)
    _randomise_bn(enc, 1)
    return enc.eval()


@pytest.fixture(scope="session")
def table_x():
    return np.random.default_rng(0).normal(size=(14, 12)).astype(np.float32)


@pytest.fixture(scope="session")
def digits_x():
    from sslaudit.data import load_dataset

    return load_dataset("digits").train.x[:10]
