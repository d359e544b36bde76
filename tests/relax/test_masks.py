import pytest
import torch
import torch.nn.functional as F

from sslaudit.errors import UserError
from sslaudit.methods.relax import GroupMasks, SpatialMasks, relax_masks


def reference_style_masks(n, shape, num_cells, p, g):
    """The reference algorithm written plainly: per-mask crop loop."""
    pad = num_cells // 2
    grid = (torch.rand(n, 1, num_cells, num_cells, generator=g) < p).float()
    up = F.pad(F.interpolate(grid, size=shape, mode="bilinear", align_corners=False), (pad,) * 4, mode="reflect")
    sx = torch.randint(0, num_cells, (n,), generator=g)
    sy = torch.randint(0, num_cells, (n,), generator=g)
    out = torch.empty(n, 1, *shape)
    for i in range(n):
        out[i] = up[i, :, sx[i] : sx[i] + shape[0], sy[i] : sy[i] + shape[1]]
    return out


def test_matches_reference_procedure():
    a = relax_masks(40, (28, 20), generator=torch.Generator().manual_seed(3))
    b = reference_style_masks(40, (28, 20), 7, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_shape_range_mean(p):
    m = relax_masks(4000, (16, 16), p=p, generator=torch.Generator().manual_seed(0))
    assert m.shape == (4000, 1, 16, 16) and m.dtype == torch.float32
    assert m.min() >= 0 and m.max() <= 1 and 0 < m.mean() < 1
    assert abs(m.mean().item() - p) < 0.01
    assert (m.mean(0) - p).abs().max() < 0.05  # every pixel's mean is p
    assert len(torch.unique(m)) > 10  # smooth, not binary


def test_seeded_and_prefix_stable():
    fam = SpatialMasks((12, 12))
    assert torch.equal(fam.draw(5, 0, 100), fam.draw(5, 0, 100))
    assert not torch.equal(fam.draw(5, 0, 100), fam.draw(6, 0, 100))
    assert not torch.equal(fam.draw(5, 0, 100), fam.draw(5, 1, 100))
    assert fam.draw(5, 0, 100).shape == (100, 144)


def test_one_dimensional_masks():
    m = relax_masks(500, (30,), num_cells=5, generator=torch.Generator().manual_seed(0))
    assert m.shape == (500, 1, 30) and m.min() >= 0 and m.max() <= 1
    assert abs(m.mean().item() - 0.5) < 0.03


def test_group_masks_expand():
    fam = GroupMasks([(0, 1), (1, 4), (4, 5)], 5, p=0.5)
    w = fam.draw(0, 0, 300)
    assert w.shape == (300, 3) and set(torch.unique(w).tolist()) <= {0.0, 1.0}
    e = fam.expand(w)
    assert e.shape == (300, 5)
    assert torch.equal(e[:, 1], w[:, 1]) and torch.equal(e[:, 3], w[:, 1]) and torch.equal(e[:, 4], w[:, 2])


@pytest.mark.parametrize("kw", [dict(num_cells=0), dict(p=0.0), dict(p=1.0), dict(num_cells=2.5)])
def test_bad_parameters(kw):
    with pytest.raises(UserError):
        relax_masks(2, (12, 12), **kw)


def test_too_small_input_and_bad_groups():
    with pytest.raises(UserError, match="too small"):
        relax_masks(2, (3, 3), num_cells=7)
    with pytest.raises(UserError, match="uncovered"):
        GroupMasks([(0, 2)], 3)
    with pytest.raises(UserError, match="outside"):
        GroupMasks([(0, 4)], 3)


def test_default_cells_per_image_size():
    from sslaudit.methods.relax import Relax
    from sslaudit.methods.relax.masks import default_cells

    assert default_cells((224, 224)) == 7 and default_cells((28, 28)) == 7  # the reference's grid
    assert default_cells((16, 16)) == 4 and default_cells((8, 8)) == 2  # cells ≥ 4 pixels: no 1-pixel cells on digits
    assert default_cells((100,)) == 7 and default_cells((3, 3)) == 2
    rx = Relax(torch.nn.Flatten())
    assert rx.num_cells == "auto" and rx.fill == "mean"  # the library defaults: auto cells, the reference's mean fill
    assert rx.family(torch.zeros(1, 1, 8, 8)).num_cells == 2 and rx.family(torch.zeros(1, 1, 28, 28)).num_cells == 7
    assert Relax(torch.nn.Flatten(), num_cells=5).family(torch.zeros(1, 1, 28, 28)).num_cells == 5
    for bad in (0, 2.5, "many", True):
        with pytest.raises(UserError):
            Relax(torch.nn.Flatten(), num_cells=bad)
