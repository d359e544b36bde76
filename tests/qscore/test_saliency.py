"""Saliency of a feature equals the analytic gradient; top samples and table groups by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from sslaudit.methods.qscore import feature_gradients, feature_saliency
from sslaudit.methods.qscore import figures
from sslaudit.compute.saliency import unit_magnitudes
from sslaudit.methods.qscore.saliency import pick_features, top_activating


def test_top_activating_by_hand():
    h = np.array([[1.0, 5], [3, 5], [2, 0]])
    assert top_activating(h, [0, 1], 2).tolist() == [[1, 2], [0, 1]]  # ties: lower position first


def test_gradient_of_relu_linear_is_analytic():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 4), nn.ReLU())
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    w, b = enc[0].weight.detach().numpy(), enc[0].bias.detach().numpy()
    for j in range(4):
        g = feature_gradients(enc, x, j, batch_size=3)
        active = (x @ w[j] + b[j]) > 0
        assert g == pytest.approx(np.where(active[:, None], w[j][None, :], 0.0), abs=1e-6)


def test_unit_magnitudes_by_hand_numpy_and_torch_alike():
    g = np.array([[1.0, -2, -3, 0.5]])
    groups = [(0, 1), (1, 3), (3, 4)]
    assert unit_magnitudes(g, groups).tolist() == [[1.0, 3.0, 0.5]]  # the largest |·| of a group, not the sum (5)
    assert unit_magnitudes(torch.tensor(g), groups).tolist() == [[1.0, 3.0, 0.5]]
    assert unit_magnitudes(g).tolist() == [[1.0, 2.0, 3.0, 0.5]]  # no groups: each column its own unit
    img = np.array([[[[1.0, -4]], [[-2.0, 3]]]])  # N=1, C=2, H=1, W=2
    assert unit_magnitudes(img).tolist() == [[[2.0, 4.0]]] == unit_magnitudes(torch.tensor(img)).tolist()


def test_feature_saliency_images_and_figures():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        h = enc(torch.tensor(x)).numpy()
    feats = pick_features(np.array([0.1, 0.3, 0.2]), np.array([True, True, False]), 5)
    assert feats.tolist() == [1, 0]
    sal = feature_saliency(enc, x, h, feats, k=4)
    assert sal.saliency.shape == (2, 4, 8, 8) and sal.positions.shape == (2, 4)
    assert sal.activations == pytest.approx(h[sal.positions, feats[:, None]])
    png = figures.image_saliency_figure(x, sal, [str(i) for i in range(8)])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    tab = feature_saliency(nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.ReLU()), x, h, feats, k=2, groups=[(0, 32), (32, 64)])
    assert tab.saliency.shape == (2, 2, 2)
    assert figures.table_saliency_figure(tab, ["a", "b"])[:4] == b"\x89PNG"
