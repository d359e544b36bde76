"""Shared fixtures: digits images, a tiny MLP encoder and its augmentation, a tiny trained run."""

import numpy as np
import pytest
import torch

from sslaudit.data.augment import ImageAugment
from sslaudit.models.encoders import Encoder, MLPTrunk


@pytest.fixture(scope="session")
def digits_x():
    from sklearn.datasets import load_digits

    return (load_digits().images[:160, None] / 16.0).astype(np.float32)


@pytest.fixture()
def tiny_encoder():
    torch.manual_seed(0)
    enc = Encoder(MLPTrunk(64, [12, 6])).eval()
    with torch.no_grad():  # positive biases: no dead units, no all-zero embeddings
        for m in enc.modules():
            if isinstance(m, torch.nn.Linear):
                m.bias.fill_(0.1)
    return enc


@pytest.fixture(scope="session")
def augment():
    return ImageAugment((1, 8, 8), crop_scale=(0.6, 1.0), hflip=0.0, brightness=0.3, contrast=0.3, noise=0.05)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    path = tmp_path_factory.mktemp("influence") / "run"
    cfg = TrainConfig(objective="simclr", epochs=1, batch_size=128, arch={"arch": "mlp", "input_shape": [1, 8, 8], "hidden": [32, 16], "proj_hidden": 32, "proj_dim": 16})
    train_run(data_config("digits"), cfg, path)
    return path
