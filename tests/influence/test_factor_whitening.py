"""Whitened gradients from per-layer factors (G = Δᵀ A, never formed) equal the reference path:
`per_sample_gradients` (vmap of grad) rotated by `Preconditioner.whiten`."""

import numpy as np
import pytest
import torch
from torch import nn

from sslaudit.methods.influence import InfluenceAnalyzer
from sslaudit.methods.influence.gradients import factors_supported, per_sample_factors, per_sample_gradients, tracked_layers
from sslaudit.methods.influence.loss import AugmentationStability
from sslaudit.methods.influence.scores import whitened_gradients


class SmallConvNet(nn.Module):
    """Biased and bias-free convolutions, a stride, BatchNorm, in-place ReLUs, a Linear on 2-D input."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.c3 = nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(6 * 16, 5)

    def forward(self, x):
        h = torch.relu_(self.bn(self.c1(x)))
        h = nn.functional.relu(self.c2(h), inplace=True)
        h = self.c3(h)
        return self.fc(h.flatten(1))


@pytest.fixture()
def convnet():
    torch.manual_seed(0)
    net = SmallConvNet().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def test_factors_rebuild_the_per_sample_gradients(digits_x, convnet, augment):
    x = torch.as_tensor(digits_x[:5])
    loss = AugmentationStability(augment, draws=2, seed=3)
    layers = tracked_layers(convnet)
    assert factors_supported(convnet, layers)
    ref = per_sample_gradients(convnet, loss, x, layers)
    seen = []
    for layer, a, d in per_sample_factors(convnet, loss, x, layers):
        g = d.transpose(1, 2) @ a
        assert g.shape == ref[layer.name].shape
        torch.testing.assert_close(g, ref[layer.name], atol=1e-6, rtol=1e-4)
        seen.append(layer.name)
    assert seen == [layer.name for layer in layers]


@pytest.mark.parametrize("strategy", ["ekfac", "kfac"])
def test_whitening_from_factors_equals_the_reference(digits_x, convnet, augment, strategy):
    ia = InfluenceAnalyzer(convnet, augment, strategy, draws=2, batch_size=16).fit(digits_x[:32])
    prec = ia._require_prec()
    x = torch.as_tensor(digits_x[32:40])
    ref = prec.whiten(per_sample_gradients(ia.encoder, ia.loss, x, ia.layers))
    fast = whitened_gradients(ia.encoder, ia.loss, ia.layers, prec, x)
    torch.testing.assert_close(fast, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)
    # the Linear layer (R = 2K = 4 rows < its 5 outputs) takes the low-rank branch, the convolutions the dense one
    fc = next(layer for layer in ia.layers if layer.name == "fc")
    rows, cols = fc.shape
    assert 4 * (cols * cols + rows * rows) < rows * cols * (cols + rows)
    # the streaming pass (score_block) takes the factor path too
    ref_train = prec.whiten(per_sample_gradients(ia.encoder, ia.loss, torch.as_tensor(digits_x[:8]), ia.layers))
    np.testing.assert_allclose(ia.self_influence()[:8], ref_train.detach().double().pow(2).sum(1).numpy(), rtol=1e-4)
    ia.close()


def test_frozen_parameters_and_restricted_layers(digits_x, convnet, augment):
    for p in convnet.parameters():
        p.requires_grad_(False)
    x = torch.as_tensor(digits_x[:4])
    loss = AugmentationStability(augment, draws=1, seed=0)
    layers = [layer for layer in tracked_layers(convnet) if layer.name in ("c3", "fc")]
    ref = per_sample_gradients(convnet, loss, x, layers)
    for layer, a, d in per_sample_factors(convnet, loss, x, layers):
        torch.testing.assert_close(d.transpose(1, 2) @ a, ref[layer.name], atol=1e-6, rtol=1e-4)


def test_grouped_convolution_uses_the_reference_path(convnet):
    convnet.c3 = nn.Conv2d(6, 6, 1, groups=2)
    assert not factors_supported(convnet, tracked_layers(convnet))


def test_float64_products_by_column_blocks(monkeypatch):
    from sslaudit.methods.influence import scores

    g = torch.Generator().manual_seed(0)
    w, q = torch.randn(5, 37, generator=g), torch.randn(3, 37, generator=g)
    monkeypatch.setattr(scores, "PRODUCT_COLUMNS", 8)  # five blocks, the last one partial
    torch.testing.assert_close(scores.float64_products(w, q), w.double() @ q.double().t())
    torch.testing.assert_close(scores.float64_products(w, None), w.double().pow(2).sum(1))
