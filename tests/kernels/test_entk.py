"""The fast eNTK paths against the independent autograd-loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sslaudit.errors import UserError
from sslaudit.kernels import EntkKernel, exact_kernel, per_sample_gradients_loop


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
@pytest.mark.parametrize("normalize", [True, False])
def test_mlp_factorised_equals_exact(mlp, table_x, kind, normalize):
    a, b = table_x[:9], table_x[9:]
    k = EntkKernel(mlp, kind=kind, normalize=normalize)
    assert k.path_used == "factorised"
    want = exact_kernel(mlp, a, b, kind=kind, normalize=normalize)
    got = k(a, b)
    assert got.dtype == np.float64 and got.shape == (9, 5)
    assert rel_err(got, want) <= 1e-10  # float64 factors: agreement to rounding
    k32 = EntkKernel(mlp, kind=kind, normalize=normalize, precision="float32")
    assert rel_err(k32(a, b), want) <= 1e-4


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
def test_convnet_with_batchnorm_equals_exact(convnet, digits_x, kind):
    k = EntkKernel(convnet, kind=kind, normalize=False)
    assert k.path_used == "factorised"  # Conv2d and eval-mode BatchNorm are handled layer-wise
    want = exact_kernel(convnet, digits_x, digits_x[:4], kind=kind, normalize=False)
    assert rel_err(k(digits_x, digits_x[:4]), want) <= 1e-4
    kn = EntkKernel(convnet, kind=kind, normalize=True, precision="float32")
    assert rel_err(kn(digits_x[:4], digits_x), exact_kernel(convnet, digits_x[:4], digits_x, kind=kind)) <= 1e-4


def test_batchnorm_affine_parameters_are_in_theta(convnet):
    k = EntkKernel(convnet)
    assert k.parameter_count() == sum(p.numel() for p in convnet.parameters())
    assert any("weight" in n and p.dim() == 1 for n, p in convnet.named_parameters())  # BN γ counted


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
def test_general_path_equals_exact(convnet, mlp, digits_x, table_x, kind):
    for module, x in ((mlp, table_x), (convnet, digits_x[:6])):
        k = EntkKernel(module, kind=kind, path="general", normalize=False)
        assert k.path_used == "general" and "requested" in k.path_reason
        assert rel_err(k(x, x), exact_kernel(module, x, x, kind=kind, normalize=False)) <= 1e-10


def test_loop_gradients_shapes(mlp, table_x):
    assert per_sample_gradients_loop(mlp, table_x[:3]).shape == (3, sum(p.numel() for p in mlp.parameters()))
    assert per_sample_gradients_loop(mlp, table_x[:3], kind="trntk").shape[:2] == (3, 8)


def test_projection_approximates_and_is_seeded(convnet, digits_x):
    want = exact_kernel(convnet, digits_x, digits_x)
    small = EntkKernel(convnet, path="general", projection_dim=64, seed=3)
    big = EntkKernel(convnet, path="general", projection_dim=8192, seed=3)
    e_small, e_big = np.abs(small(digits_x, digits_x) - want).max(), np.abs(big(digits_x, digits_x) - want).max()
    assert e_big < 0.05 and e_big < e_small
    assert "projected" in big.path_reason
    again = EntkKernel(convnet, path="general", projection_dim=64, seed=3)
    np.testing.assert_array_equal(again(digits_x, digits_x), small(digits_x, digits_x))
    other = EntkKernel(convnet, path="general", projection_dim=64, seed=4)
    assert not np.array_equal(other(digits_x, digits_x), small(digits_x, digits_x))


@pytest.mark.parametrize("path", ["factorised", "general"])
def test_block_size_does_not_change_the_kernel(mlp, table_x, path):
    full = EntkKernel(mlp, kind="trntk", path=path, block_size=1024)(table_x, table_x)
    for bs in (1, 3, 5):
        got = EntkKernel(mlp, kind="trntk", path=path, block_size=bs)(table_x, table_x)
        assert np.abs(got - full).max() <= 1e-12


def test_diag_and_between(mlp, table_x):
    k = EntkKernel(mlp, normalize=False)
    raw = k.diag(table_x)
    np.testing.assert_allclose(raw, np.diag(exact_kernel(mlp, table_x, table_x, normalize=False)), rtol=1e-10)
    kn = EntkKernel(mlp)
    np.testing.assert_array_equal(kn.diag(table_x), np.ones(len(table_x)))
    f = kn.factors(table_x)
    assert f.n == len(table_x) and f.diag.dtype == torch.float64
    block = kn.between(f.take([0, 1]), f)
    assert block.dtype == torch.float64 and block.shape == (2, len(table_x))
    np.testing.assert_allclose(block.numpy()[[0, 1], [0, 1]], 1.0, rtol=1e-12)


class Scaled(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x):
        return x * self.scale


def _with(module, extra):
    return nn.Sequential(module, extra).eval()


@pytest.mark.parametrize("extra,name", [(nn.LayerNorm(8), "LayerNorm"), (Scaled(8), "Scaled")])
def test_unsupported_layer_uses_general_path(mlp, table_x, extra, name):
    model = _with(mlp, extra)
    k = EntkKernel(model, normalize=False)
    assert k.path_used == "general"
    assert name in k.path_reason and "at 1" in k.path_reason
    assert rel_err(k(table_x, table_x), exact_kernel(model, table_x, table_x, normalize=False)) <= 1e-10
    with pytest.raises(UserError, match=name):
        EntkKernel(model, path="factorised")


class WeightOutsideForward(nn.Module):
    """Uses a Linear's weight functionally: the hooks never see it, the probe must."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 8)

    def forward(self, x):
        return torch.relu(nn.functional.linear(x, self.lin.weight, self.lin.bias))


def test_probe_switches_to_general_when_factorised_is_wrong(table_x):
    torch.manual_seed(0)
    model = WeightOutsideForward().eval()
    k = EntkKernel(model, normalize=False)
    got = k(table_x, table_x)
    assert k.path_used == "general" and "probe" in k.path_reason
    assert rel_err(got, exact_kernel(model, table_x, table_x, normalize=False)) <= 1e-10


def test_parameter_selection(mlp, table_x):
    k = EntkKernel(mlp, params=["trunk.net.2"], normalize=False)
    assert k.parameter_count() == 16 * 8 + 8
    frozen = __import__("copy").deepcopy(mlp)
    for p in frozen.trunk.net[0].parameters():
        p.requires_grad_(False)
    want = exact_kernel(frozen, table_x, table_x, normalize=False)
    assert rel_err(k(table_x, table_x), want) <= 1e-10
    with pytest.raises(UserError, match="no parameter named"):
        EntkKernel(mlp, params=["nope"])


def test_bad_options(mlp):
    for kw in ({"kind": "ntk"}, {"path": "fast"}, {"precision": "half"}, {"projection_dim": 0}, {"block_size": 0}):
        with pytest.raises(UserError):
            EntkKernel(mlp, **kw)
    with pytest.raises(UserError, match="general"):
        EntkKernel(mlp, path="factorised", projection_dim=16)


class FunctionalInPlace(nn.Module):
    """In-place ops no module announces (no `inplace=True` attribute): F.relu_ and a residual `+=`."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(12, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = nn.functional.relu_(self.a(x))
        out = self.b(h)
        out += h
        return out


@pytest.mark.parametrize("kind", ["pntk", "trntk"])
def test_functional_in_place_ops_keep_the_factorised_kernel_exact(table_x, kind):
    torch.manual_seed(0)
    model = FunctionalInPlace().eval()
    k = EntkKernel(model, kind=kind, normalize=False)
    got = k(table_x, table_x)
    assert k.path_used == "factorised"  # the layer outputs are copied, so the hooks' records stay the layers' outputs
    assert rel_err(got, exact_kernel(model, table_x, table_x, kind=kind, normalize=False)) <= 1e-10
