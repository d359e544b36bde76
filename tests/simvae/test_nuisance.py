"""Known nuisance transforms: identities, exact rotations, bins, and seeded draws."""

import numpy as np
import pytest
import torch

from sslaudit.errors import UserError
from sslaudit.methods.simvae.nuisance import NUISANCES, apply_nuisance, check_tasks, draw_values, rotate, zoom_out


@pytest.fixture
def imgs():
    return torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(0))


def test_identities(imgs):
    ones = torch.ones(5)
    torch.testing.assert_close(apply_nuisance("rotation", imgs, torch.zeros(5)), imgs)
    torch.testing.assert_close(apply_nuisance("scale", imgs, ones), imgs)
    torch.testing.assert_close(apply_nuisance("brightness", imgs, ones), imgs)
    for f in ("hflip", "vflip"):
        torch.testing.assert_close(apply_nuisance(f, apply_nuisance(f, imgs, ones), ones), imgs)
        torch.testing.assert_close(apply_nuisance(f, imgs, torch.zeros(5)), imgs)
    torch.testing.assert_close(apply_nuisance("hflip", imgs, ones), imgs.flip(-1))
    torch.testing.assert_close(apply_nuisance("vflip", imgs, ones), imgs.flip(-2))


def test_rotation_by_quarter_turns_is_exact(imgs):
    # counter-clockwise on screen (row 0 at the top), like np.rot90
    torch.testing.assert_close(rotate(imgs, torch.full((5,), 90.0)), torch.rot90(imgs, 1, (-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(imgs, torch.full((5,), -90.0)), torch.rot90(imgs, -1, (-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(imgs, torch.full((5,), 180.0)), imgs.flip(-1).flip(-2), atol=1e-5, rtol=0)


def test_zoom_out_shrinks_about_the_centre():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:12, 4:12] = 1.0
    y = zoom_out(x, torch.tensor([0.5]))
    assert y.sum().item() == pytest.approx(x.sum().item() / 4, rel=1e-4)
    assert y[..., 6:10, 6:10].min() == pytest.approx(1.0) and y[..., :5, :].max() == 0


def test_brightness_scales_and_labels_bin():
    x = torch.full((2, 1, 4, 4), 0.8)
    torch.testing.assert_close(apply_nuisance("brightness", x, torch.tensor([0.5, 1.0])), torch.stack([x[0] * 0.5, x[1]]))
    rot = NUISANCES["rotation"]
    np.testing.assert_array_equal(rot.labels(np.array([-90, -45.1, -45, 0, 44.9, 45, 89.99])), [0, 0, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(NUISANCES["hflip"].labels(np.array([0.0, 1.0])), [0, 1])


def test_draws_are_seeded_and_in_range():
    for name, nu in NUISANCES.items():
        a = draw_values(name, 500, np.random.default_rng(0))
        np.testing.assert_array_equal(a, draw_values(name, 500, np.random.default_rng(0)))
        assert a.min() >= nu.low and a.max() <= nu.high
        assert len(np.unique(nu.labels(a))) == nu.bins


def test_bad_tasks():
    with pytest.raises(UserError, match="unknown style task"):
        check_tasks(["colour"], "image")
    with pytest.raises(UserError, match="tabular"):
        check_tasks(["rotation"], "tabular")
