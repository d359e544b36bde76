"""Parameter subsets and the per-layer (Kronecker, LoGra-style) projection against the exact kernel.

The reference is the independent autograd-loop per-sample gradients (exact.py) and, for the
subset, torch.func per-sample gradients of only the chosen parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

from sslaudit.errors import UserError
from sslaudit.kernels import EntkKernel, exact_kernel, per_sample_gradients_loop
from sslaudit.kernels.subset import describe_params, last_stage_prefix, resolve_params
from sslaudit.models.encoders import build_encoder

from .conftest import _randomise_bn


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(3)
    enc = build_encoder({"arch": "resnet", "input_shape": [3, 8, 8], "widths": [4, 6]})
    _randomise_bn(enc, 3)
    return enc.eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(5).random((6, 3, 8, 8)).astype(np.float32)


def func_kernel(module, x, names):
    """Raw pNTK from torch.func per-sample gradients of the parameters `names` only (float64)."""
    mod = __import__("copy").deepcopy(module).double().eval()
    params = dict(mod.named_parameters())
    chosen = {n: params[n].detach() for n in names}
    fixed = {**{n: p.detach() for n, p in params.items() if n not in chosen}, **dict(mod.named_buffers())}
    xt = torch.as_tensor(x).double()
    d = mod(xt[:1]).shape[1]

    def g(p, xi):
        return functional_call(mod, {**fixed, **p}, (xi.unsqueeze(0),)).sum() / d**0.5

    grads = vmap(grad(g), in_dims=(None, 0))(chosen, xt)
    flat = torch.cat([grads[n].reshape(len(x), -1) for n in names], dim=1)
    return (flat @ flat.T).numpy()


def rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("spec", ["last-stage", "bn", "bn+last", "trunk.stem,trunk.blocks.1.conv2"])
def test_subset_kernel_is_the_exact_kernel_restricted_to_the_subset(resnet, images, spec):
    k = EntkKernel(resnet, normalize=False, params=spec)
    assert k.path_used == "factorised"
    want = func_kernel(resnet, images, k.names)
    assert rel_err(k(images, images), want) <= 1e-10
    # the same numbers from the loop reference's columns of those parameters
    full = per_sample_gradients_loop(resnet, images)
    cols, start = [], 0
    for n, p in resnet.named_parameters():
        if n in k.names:
            cols.append(torch.arange(start, start + p.numel()))
        start += p.numel()
    g = full[:, torch.cat(cols)]
    assert rel_err(k(images, images), (g @ g.T).numpy()) <= 1e-10


def test_subset_presets_select_what_they_say(resnet):
    assert last_stage_prefix(resnet) == "trunk.blocks.1"
    last = resolve_params(resnet, "last-stage")
    assert last and all(n.startswith("trunk.blocks.1.") for n in last)
    bn = resolve_params(resnet, "bn")
    assert bn and all(".bn" in n or n.startswith("trunk.stem.1") or n.startswith("trunk.blocks.1.short.1") for n in bn)
    assert all(dict(resnet.named_parameters())[n].dim() == 1 for n in bn)
    assert resolve_params(resnet, "all") is None and resolve_params(resnet, None) is None
    info = describe_params(resnet, last)
    assert 0 < info["share"] < 1 and info["n_parameters"] == sum(dict(resnet.named_parameters())[n].numel() for n in last)
    with pytest.raises(UserError, match="no parameter or module named"):
        resolve_params(resnet, "trunk.nope")


def test_projected_kernel_converges_to_the_exact_kernel(resnet, images):
    want = exact_kernel(resnet, images, images, normalize=False)
    errs = {d: rel_err(EntkKernel(resnet, normalize=False, layer_projection_dim=d, seed=1)(images, images), want) for d in (2, 8, 32)}
    assert errs[32] < errs[8] < errs[2]
    assert errs[32] < 0.15
    kn = EntkKernel(resnet, normalize=True, layer_projection_dim=32, seed=1)
    assert rel_err(kn(images, images), exact_kernel(resnet, images, images)) < 0.1


def test_projected_raw_kernel_is_unbiased(resnet, images):
    """The mean over 60 seeds of a k=4 sketch is within a few standard errors of the exact kernel."""
    want = exact_kernel(resnet, images, images, normalize=False)
    draws = np.stack([EntkKernel(resnet, normalize=False, layer_projection_dim=4, seed=s)(images, images) for s in range(60)])
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    z = np.abs(mean - want) / se
    assert np.median(z) < 1.5 and z.max() < 5  # one draw's error is ~20× the error of the mean
    assert rel_err(mean, want) < 0.25 * rel_err(draws[0], want)


def test_projection_is_seeded_and_keeps_k_squared_numbers_per_layer(resnet, images):
    a = EntkKernel(resnet, layer_projection_dim=4, seed=7)
    b = EntkKernel(resnet, layer_projection_dim=4, seed=7)
    c = EntkKernel(resnet, layer_projection_dim=4, seed=8)
    assert np.array_equal(a(images, images), b(images, images))
    assert not np.allclose(a(images, images), c(images, images))
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in resnet.modules())
    n_bn = sum(p.numel() for n, p in resnet.named_parameters() if p.dim() == 1)
    assert a.factors(images).width == n_conv * 16 + n_bn
    assert "projected per layer" in a.path_reason and a.signature != c.signature


def test_projection_with_a_subset(resnet, images):
    k = EntkKernel(resnet, normalize=False, params="last-stage", layer_projection_dim=64, seed=2)
    want = func_kernel(resnet, images, k.names)
    assert rel_err(k(images, images), want) < 0.2


def test_projection_needs_the_factorised_path(resnet):
    with pytest.raises(UserError, match="--layer-projection-dim needs the factorised"):
        EntkKernel(resnet, path="general", layer_projection_dim=4)
    with pytest.raises(UserError, match="positive"):
        EntkKernel(resnet, layer_projection_dim=0)


def test_factors_assembled_block_by_block_equal_one_block(resnet, images):
    from sslaudit.kernels import compute_factors

    for k in (EntkKernel(resnet), EntkKernel(resnet, layer_projection_dim=3, params="bn+last")):
        a, b = compute_factors(k, images, block_size=4), k.factors(images)
        assert a.n == len(images) and np.array_equal(a.diag.numpy(), b.diag.numpy())
        assert np.array_equal(k.between(a, a).numpy(), k.between(b, b).numpy())
