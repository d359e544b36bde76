"""Tiny encoders, augmentations and trained runs shared by the KREPES tests."""

import numpy as np
import pytest
import torch

from sslaudit.data.augment import Augment
from sslaudit.models.encoders import build_encoder


class NoiseAugment(Augment):
    """Additive Gaussian noise with per-row parameters (a stand-in for SCARF in unit tests)."""

    def __init__(self, std=0.3):
        self.std = std

    def sample(self, n, g):
        return {"noise": torch.randn(n, 6, generator=g)}

    def apply(self, x, params):
        return x + self.std * params["noise"].to(x.dtype).expand(len(x), -1)

    def config(self):
        return {"std": self.std}


def tiny_encoder(seed=0, width=6):
    torch.manual_seed(seed)
    return build_encoder({"arch": "mlp", "input_shape": [width], "hidden": [8, 5]}).eval()


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    return tiny_encoder(), x, NoiseAugment()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    out = tmp_path_factory.mktemp("krepes") / "digits"
    train_run(data_config("digits"), TrainConfig(objective="simclr", epochs=1, batch_size=128), out, arch="mlp")
    return out
