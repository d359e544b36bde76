import numpy as np
import pytest
import torch
from torch import nn

from sslaudit.errors import UserError
from sslaudit.methods.relax import Relax, SpatialMasks, gaussian_blur, u_relax

from .conftest import QuadrantEncoder
from .test_estimator import naive_welford


def naive_relax(encoder, x, n, seed, mask_batch=100):
    """One image and one mask at a time: the reference's loop (zero fill, cosine), float64 Welford."""
    fam = SpatialMasks(tuple(x.shape[2:]))
    masks = torch.cat([fam.draw(seed, b, mask_batch) for b in range((n + mask_batch - 1) // mask_batch)])[:n]
    means, vars_ = [], []
    with torch.no_grad():
        for img in x:
            h = encoder(img[None])
            s = np.array([torch.cosine_similarity(h, encoder(img[None] * m.reshape(1, 1, *x.shape[2:])), dim=1, eps=1e-8).item() for m in masks])
            m, v = naive_welford(s[None], masks.double().numpy())
            means.append(m[0])
            vars_.append(v[0])
    return np.stack(means).reshape(len(x), *x.shape[2:]), np.stack(vars_).reshape(len(x), *x.shape[2:])


def test_batched_equals_naive_per_mask_loop(tiny_conv, images):
    res = Relax(tiny_conv, batch_size=37, mask_batch=40, fill="zero", num_cells=7).attribute(images, n_masks=150, seed=4)  # the reference setting
    r, u = naive_relax(tiny_conv, images, 150, seed=4, mask_batch=40)
    np.testing.assert_allclose(res.importance.numpy(), r, rtol=0, atol=2e-6)
    np.testing.assert_allclose(res.uncertainty.numpy(), u, rtol=1e-3, atol=1e-8)
    assert res.n_masks.tolist() == [150] * 3 and res.importance.dtype == torch.float64


def test_same_seed_same_map_and_batching_invariance(tiny_conv, images):
    rx = Relax(tiny_conv, batch_size=64)
    a = rx.attribute(images, n_masks=200, seed=1)
    b = rx.attribute(images, n_masks=200, seed=1)
    c = rx.attribute(images, n_masks=200, seed=2)
    assert torch.equal(a.importance, b.importance) and torch.equal(a.uncertainty, b.uncertainty)
    assert not torch.allclose(a.importance, c.importance)
    for i in range(len(images)):
        alone = Relax(tiny_conv, batch_size=1).attribute(images[i : i + 1], n_masks=200, seed=1)  # batch size 1 works
        np.testing.assert_allclose(alone.importance[0].numpy(), a.importance[i].numpy(), atol=1e-6)
        np.testing.assert_allclose(alone.uncertainty[0].numpy(), a.uncertainty[i].numpy(), rtol=1e-4, atol=1e-9)


def test_u_relax_keeps_pixels_at_or_below_lower_median():
    imp = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(1, 2, 3)
    unc = torch.tensor([[[0.5, 0.1, 0.4], [0.3, 0.6, 0.2]]], dtype=torch.float64)
    ur, t = u_relax(imp, unc)
    assert t.item() == 0.3  # lower of the two middle values 0.3, 0.4 (torch.median)
    assert torch.equal(ur, torch.tensor([[[0.0, 2.0, 0.0], [4.0, 0.0, 6.0]]], dtype=torch.float64))
    ur2, t2 = u_relax(imp, unc, threshold=1.0)
    assert t2.item() == pytest.approx(unc.mean().item())
    assert torch.equal(ur2 != 0, unc <= unc.mean())
    with pytest.raises(UserError):
        u_relax(imp, unc, threshold="mode")


def test_result_u_relax_consistent(tiny_conv, images):
    res = Relax(tiny_conv).attribute(images, n_masks=100)
    for i in range(len(images)):
        u = res.uncertainty[i].flatten()
        keep = u <= u.median()
        assert keep.sum() == (len(u) + 1) // 2  # exactly the lower half (no ties in continuous U)
        assert torch.equal(res.u_relax[i].flatten()[keep], res.importance[i].flatten()[keep])
        assert (res.u_relax[i].flatten()[~keep] == 0).all()


def test_adaptive_reports_n_and_meets_tolerance(tiny_conv, images):
    res = Relax(tiny_conv).attribute(images, n_masks="auto", tolerance=0.003, seed=0, min_masks=100)
    assert res.converged.all() and (res.n_masks % 100 == 0).all()
    assert (res.max_std_error <= 0.003).all()
    # "auto" uses the control variate by default; a fixed N with it gives the same map
    fixed = Relax(tiny_conv).attribute(images[:1], n_masks=int(res.n_masks[0]), seed=0, control_variate=True)
    np.testing.assert_allclose(fixed.importance[0].numpy(), res.importance[0].numpy(), atol=1e-6)
    plain = Relax(tiny_conv).attribute(images[:1], n_masks=int(res.n_masks[0]), seed=0)
    assert not torch.equal(plain.importance, fixed.importance)
    assert float(plain.max_std_error[0]) > float(fixed.max_std_error[0])


def test_planted_region_recovered():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) + 0.2
    res = Relax(QuadrantEncoder(), fill="zero").attribute(x, n_masks=1500, seed=0)  # 0 is "absent" for this encoder
    for r in res.importance:
        inside, far = r[:6, :6].mean(), r[12:, 12:].mean()
        assert inside > far + 5 * res.std_error.max()
        idx = int(torch.argmax(r))
        assert idx // 16 < 8 and idx % 16 < 8


def test_tabular_groups_planted():
    class UsesGroup1(nn.Module):
        def forward(self, x):
            return torch.stack([x[:, 1] + x[:, 2], torch.ones(len(x))], 1)

    x = torch.tensor([[0.3, 2.0, 1.0, -0.5, 0.7]])
    groups = [(0, 1), (1, 3), (3, 5)]
    res = Relax(UsesGroup1(), groups=groups, fill="mean", fill_value=torch.zeros(5)).attribute(x, n_masks=400)
    assert res.importance.shape == (1, 3)
    assert int(res.importance[0].argmax()) == 1
    assert abs(res.importance[0, 0] - res.importance[0, 2]) < 0.05


def test_fills():
    x = torch.rand(2, 3, 10, 10)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(300, 4))
    assert torch.equal(Relax(enc, fill="zero").baseline(x), torch.zeros_like(x))
    m = Relax(enc, fill="mean", fill_value=[0.1, 0.2, 0.3]).baseline(x)
    assert torch.allclose(m[1, 2], torch.full((10, 10), 0.3))
    per_image = Relax(enc, fill="mean").baseline(x)
    assert torch.allclose(per_image[0, 1], x[0, 1].mean().expand(10, 10))
    const = torch.full((1, 1, 9, 9), 0.7)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)
    blurred = Relax(enc, fill="blur").baseline(x)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    assert torch.allclose(Relax(enc, fill=0.25).baseline(x), torch.full_like(x, 0.25))


@pytest.mark.parametrize(
    "call",
    [
        lambda r, x: r.attribute(x, n_masks=0),
        lambda r, x: r.attribute(x, n_masks="many"),
        lambda r, x: r.attribute(x, n_masks=2.5),
        lambda r, x: r.attribute(x, n_masks="auto"),
        lambda r, x: r.attribute(x, n_masks="auto", tolerance=-1.0),
        lambda r, x: r.attribute(x, n_masks=10, tolerance=0.0),
        lambda r, x: r.attribute(x[:, 0, 0], n_masks=10),  # no spatial dims
        lambda r, x: r.attribute(x * float("nan"), n_masks=10),
        lambda r, x: r.attribute(x[:0], n_masks=10),
    ],
)
def test_bad_inputs(tiny_conv, images, call):
    with pytest.raises(UserError):
        call(Relax(tiny_conv), images)


def test_bad_constructor_args(tiny_conv):
    for kw in (dict(fill="noise"), dict(similarity="kl"), dict(batch_size=0), dict(spatial_dims=3)):
        with pytest.raises(UserError):
            Relax(tiny_conv, **kw)
