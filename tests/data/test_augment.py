import pytest
import torch

from sslaudit.data import load_dataset
from sslaudit.data.augment import ImageAugment, TabularAugment, make_augment
from sslaudit.errors import UserError
from sslaudit.seeding import torch_generator

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion-mnist", data_dir=FIXTURES / "fashion-mnist")


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult", data_dir=FIXTURES / "adult")


def _imgs(fmnist, n=16):
    return torch.from_numpy(fmnist.train.x[:n])


def test_image_seeded_shape_range(fmnist):
    aug = ImageAugment((1, 28, 28), blur_prob=0.5)
    x = _imgs(fmnist)
    a = aug(x, torch_generator(0, "aug"))
    b = aug(x, torch_generator(0, "aug"))
    c = aug(x, torch_generator(1, "aug"))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, x)


def test_image_crn_mode(fmnist):
    aug = ImageAugment((1, 28, 28), blur_prob=1.0)
    x = _imgs(fmnist, 4)
    p1 = aug.sample(1, torch_generator(0))
    same = aug.apply(torch.stack([x[0], x[0], x[0]]), p1)
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], same[2])
    batch = aug.apply(x, p1)  # one draw applied to every row = each row alone with that draw
    for i in range(4):
        torch.testing.assert_close(batch[i], aug.apply(x[i : i + 1], p1)[0])
    per_row = aug.apply(torch.stack([x[0], x[0]]), aug.sample(2, torch_generator(0)))
    assert not torch.equal(per_row[0], per_row[1])


def test_image_geometry_is_exact(fmnist):
    x = _imgs(fmnist, 3)
    g = torch_generator(0)
    ident = ImageAugment((1, 28, 28), crop_scale=None, hflip=0, brightness=0, contrast=0, noise=0)
    torch.testing.assert_close(ident(x, g), x)
    flip = ImageAugment((1, 28, 28), crop_scale=None, hflip=1.0, brightness=0, contrast=0, noise=0)
    torch.testing.assert_close(flip(x, g), x.flip(-1), atol=1e-5, rtol=0)
    vflip = ImageAugment((1, 28, 28), crop_scale=None, hflip=0.0, vflip=1.0, brightness=0, contrast=0, noise=0)
    torch.testing.assert_close(vflip(x, g), x.flip(-2), atol=1e-5, rtol=0)


def test_blur_and_constant_images():
    aug = ImageAugment((3, 8, 8), crop_scale=None, hflip=0, brightness=0, contrast=0, noise=0, blur_prob=1.0, blur_sigma=(1.0, 1.0))
    const = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(aug(const, torch_generator(0)), const)
    spike = torch.zeros(1, 3, 8, 8)
    spike[..., 4, 4] = 1.0
    out = aug(spike, torch_generator(0))
    assert out[..., 4, 4].max() < 0.5 and out.sum() == pytest.approx(3.0, rel=1e-4)


def test_tabular_corruption_rate_and_donors(adult):
    train = torch.from_numpy(adult.train.x)
    groups = adult.schema.groups()
    aug = TabularAugment(train, groups, [f.start for f in adult.schema.features if f.kind == "numeric"], corruption=0.6, noise=0.0)
    x = torch.from_numpy(adult.train.x[:300])
    p = aug.sample(300, torch_generator(0))
    assert p["mask"].float().mean().item() == pytest.approx(0.6, abs=0.03)
    out = aug.apply(x, p)
    for j, (a, b) in enumerate(groups):
        m = p["mask"][:, j]
        torch.testing.assert_close(out[m, a:b], train[p["donor"][m, j], a:b])  # donor = a training row
        torch.testing.assert_close(out[~m, a:b], x[~m, a:b])
    # every corrupted categorical is still a valid one-hot (or the donor's level)
    for f in adult.schema.features:
        if f.kind == "categorical":
            assert ((out[:, f.start : f.stop].sum(1) - 1).abs() < 1e-6).all()


def test_tabular_noise_seeded_and_crn(adult):
    aug = make_augment(adult)
    assert isinstance(aug, TabularAugment) and aug.corruption == 0.6 and aug.noise == 0.1
    x = torch.from_numpy(adult.test.x[:50])
    a, b = aug(x, torch_generator(2)), aug(x, torch_generator(2))
    assert torch.equal(a, b) and a.shape == x.shape
    p0 = aug.sample(50, torch_generator(2))
    p0["mask"][:] = False
    diff = aug.apply(x, p0) - x
    num = aug.numeric_cols
    assert diff[:, num].std().item() == pytest.approx(0.1, rel=0.2)
    cat_cols = torch.ones(x.shape[1], dtype=torch.bool)
    cat_cols[num] = False
    assert (diff[:, cat_cols] == 0).all()
    p1 = aug.sample(1, torch_generator(3))
    out = aug.apply(torch.stack([x[0], x[0], x[1]]), p1)
    assert torch.equal(out[0], out[1])
    torch.testing.assert_close(out[2], aug.apply(x[1:2], p1)[0])


def test_make_augment_defaults_and_overrides(fmnist):
    dig = make_augment(load_dataset("digits"))
    assert isinstance(dig, ImageAugment) and dig.hflip == 0.0 and dig.crop_scale == (0.6, 1.0) and dig.image_shape == (1, 8, 8)
    fm = make_augment(fmnist)
    assert fm.hflip == 0.5 and fm.image_shape == (1, 28, 28)
    assert make_augment(fmnist, hflip=0.0, noise=0.0).hflip == 0.0
    with pytest.raises(UserError, match="unknown augmentation option.*choose from"):
        make_augment(fmnist, rotate=10)
    with pytest.raises(UserError, match="outside"):
        make_augment(fmnist, hflip=2)
    with pytest.raises(UserError, match="pair"):
        make_augment(fmnist, crop_scale=0.5)


def test_digits_augment_keeps_range():
    ds = load_dataset("digits")
    aug = make_augment(ds)
    x = torch.from_numpy(ds.train.x[:64])
    out = aug(x, torch_generator(0))
    assert out.shape == (64, 1, 8, 8) and 0 <= out.min() and out.max() <= 1
