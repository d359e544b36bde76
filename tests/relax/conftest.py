"""Shared fixtures of the RELAX tests: tiny encoders with known behaviour and small trained runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class TinyConv(nn.Module):
    """A small seeded ConvNet with BatchNorm (eval mode) — like the project's encoders."""

    def __init__(self, channels: int = 1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.net[1].running_mean.uniform_(-0.1, 0.1, generator=g)
        self.eval()

    def forward(self, x):
        return self.net(x)


class QuadrantEncoder(nn.Module):
    """Planted truth: the representation depends only on the top-left quadrant."""

    def forward(self, x):
        q = x[:, :, : x.shape[2] // 2, : x.shape[3] // 2].flatten(1)
        return torch.stack([q.sum(1), 0.3 * q.shape[1] * torch.ones(len(x)), (q * q).sum(1)], dim=1)


@pytest.fixture
def tiny_conv():
    return TinyConv()


@pytest.fixture
def images():
    return torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    return train_run(data_config("digits"), TrainConfig(objective="simclr", epochs=1, batch_size=256), tmp_path_factory.mktemp("relax") / "digits")


@pytest.fixture(scope="session")
def adult_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    return train_run(data_config("adult", data_dir=FIXTURES / "adult"), TrainConfig(objective="simclr", epochs=1, batch_size=128), tmp_path_factory.mktemp("relax") / "adult")
