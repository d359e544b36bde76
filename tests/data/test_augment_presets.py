"""Colour operations against torchvision's functional ops, presets against lightly's pipelines, specs and asymmetric views."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sslaudit.data import load_dataset
from sslaudit.data.augment import AsymmetricAugment, CallableAugment, ImageAugment, as_augment, make_augment, read_augment_spec, shift_hue
from sslaudit.errors import UserError

from .conftest import FIXTURES

tvf = pytest.importorskip("torchvision.transforms.v2.functional", reason="torchvision is the reference for the colour operations")

OFF = dict(crop_scale=None, hflip=0.0, brightness=0.0, contrast=0.0, noise=0.0)


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion-mnist", data_dir=FIXTURES / "fashion-mnist")


def colourised(fmnist, n: int) -> torch.Tensor:
    """Real Fashion-MNIST images tinted with a seeded colour each (N×3×28×28 in [0, 1], 8-bit values)."""
    g = np.random.default_rng(0)
    x = fmnist.train.x[:n, 0]
    tint = g.uniform(0.2, 1.0, size=(n, 3))
    tint /= tint.max(axis=1, keepdims=True)
    rgb = np.round(x[:, None] * tint[:, :, None, None] * 255) / 255
    return torch.from_numpy(rgb.astype(np.float32))


@pytest.mark.parametrize(
    "option, reference",
    [
        ("brightness", lambda img, p: tvf.adjust_brightness(img, float(p["brightness"]))),
        ("contrast", lambda img, p: tvf.adjust_contrast(img, float(p["contrast"]))),
        ("saturation", lambda img, p: tvf.adjust_saturation(img, float(p["saturation"]))),
        ("hue", lambda img, p: tvf.adjust_hue(img, float(p["hue"]))),
        ("grayscale", lambda img, p: tvf.rgb_to_grayscale(img, num_output_channels=3) if bool(p["grayscale"]) else img),
        ("solarize", lambda img, p: tvf.solarize(img, 0.5) if bool(p["solarize"]) else img),
    ],
)
def test_colour_operation_equals_torchvision(fmnist, option, reference):
    x = colourised(fmnist, 24)
    value = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.9, "hue": 0.5, "grayscale": 0.5, "solarize": 0.5}[option]
    aug = ImageAugment((3, 28, 28), **{**OFF, option: value})
    params = aug.sample(len(x), torch.Generator().manual_seed(3))
    out = aug.apply(x, params)
    ref = torch.stack([reference(x[i], {k: v[i] for k, v in params.items()}) for i in range(len(x))])
    # 1e-4: torchvision's luma weighs red 0.2989 where ITU-R 601 (and PIL) say 0.299
    assert torch.allclose(out, ref, atol=1e-4), (option, (out - ref).abs().max().item())
    if option in ("grayscale", "solarize"):  # the probability is a real coin: some rows changed, some not
        changed = (out - x).flatten(1).abs().amax(1) > 0
        assert 0 < int(changed.sum()) < len(x)


def test_hue_shift_round_trip_and_grey_invariance():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 6, 6, generator=g)
    assert torch.allclose(shift_hue(x, torch.zeros(8)), x, atol=1e-6)
    assert torch.allclose(shift_hue(shift_hue(x, torch.full((8,), 0.3)), torch.full((8,), -0.3)), x, atol=1e-5)
    grey = x[:, :1].expand(8, 3, 6, 6)
    assert torch.allclose(shift_hue(grey, torch.full((8,), 0.25)), grey, atol=1e-6)


def test_colour_options_are_no_ops_on_grey_images_and_keep_old_draws(fmnist):
    x = torch.from_numpy(fmnist.train.x[:16])
    base = make_augment(fmnist)
    coloured = make_augment(fmnist, saturation=0.4, hue=0.1, grayscale=0.2)
    a = base(x, torch.Generator().manual_seed(1))
    b = coloured(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # grey: saturation, hue and grayscale change nothing, and draw nothing


def hue_and_saturation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean hue (turns, circular) and saturation of each image's coloured pixels."""
    mx, imax = x.max(1)
    mn = x.min(1).values
    c = mx - mn
    r, g, b = x.unbind(1)
    safe = c.clamp(min=1e-6)
    h = torch.where(imax == 0, ((g - b) / safe) % 6, torch.where(imax == 1, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    w = ((c > 0.05) & (mx > 0.1)).float().flatten(1)
    ang = 2 * np.pi * h.flatten(1)
    hue = torch.atan2((torch.sin(ang) * w).sum(1), (torch.cos(ang) * w).sum(1)) / (2 * np.pi)
    sat = ((c / mx.clamp(min=1e-6)).flatten(1) * w).sum(1) / w.sum(1).clamp(min=1)
    return hue, sat


def view_statistics(views: torch.Tensor, sources: torch.Tensor) -> dict:
    """Per-view summaries whose means a pipeline's parameter ranges decide (`sources`: each view's original image)."""
    mx, mn = views.amax(1), views.amin(1)
    lum = (0.299 * views[:, 0] + 0.587 * views[:, 1] + 0.114 * views[:, 2]).flatten(1)
    grey = ((mx - mn).flatten(1).amax(1) <= 1.5 / 255).float()
    hv, sv = hue_and_saturation(views)
    hs, ss = hue_and_saturation(sources)
    coloured = (grey == 0) & (sv > 0.05)
    shift = ((hv - hs + 0.5) % 1.0 - 0.5).abs()
    return {
        "mean": lum.mean(1),  # brightness, contrast, solarisation
        "std": lum.std(1),
        "grey": grey,  # grayscale probability
        "background": (lum < 0.05).float().mean(1),  # crop scale
        "edges": (views[..., 1:] - views[..., :-1]).abs().flatten(1).mean(1),  # crop scale (zoom) and blur
        "hue shift": shift[coloured],  # hue jitter
        "saturation change": (sv / ss.clamp(min=1e-6) - 1).abs()[coloured],  # saturation jitter
    }


def lightly_views(transform, x: torch.Tensor, copies: int) -> list[torch.Tensor]:
    """Views of every image by a lightly multi-view transform on 8-bit PIL images, as N×3×H×W in [0, 1]."""
    from PIL import Image

    np.random.seed(0)
    torch.manual_seed(0)
    pil = [Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for img in x]
    out = [[], []]
    for _ in range(copies):
        for im in pil:
            v = transform(im)
            for i in range(2):
                out[i].append(v[i])
    return [torch.stack(o) for o in out]


def ours_views(aug, x: torch.Tensor, copies: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    xs = x.repeat(copies, 1, 1, 1)
    return [aug.view(i)(xs, g) for i in range(2)]


def compare(ours: torch.Tensor, theirs: torch.Tensor, x: torch.Tensor) -> dict:
    """For each statistic: (our mean, lightly's, whether they agree) — a 4.5-σ rule plus 8-bit rounding slack."""
    src = x.repeat(len(ours) // len(x), 1, 1, 1)
    a, b = view_statistics(ours, src), view_statistics(theirs, src)
    out = {}
    for k in a:
        se = (float(a[k].var()) / len(a[k]) + float(b[k].var()) / len(b[k])) ** 0.5
        diff = abs(float(a[k].mean() - b[k].mean()))
        out[k] = (float(a[k].mean()), float(b[k].mean()), diff <= 4.5 * se + 0.004)
    return out


@pytest.fixture(scope="module")
def rgb_folder_like(fmnist):
    """A stand-in for an RGB dataset of 28×28 images (ImageAugment only needs its shape)."""
    return type("RGB", (), {"kind": "image", "name": "rgb-images", "input_shape": (3, 28, 28)})()


@pytest.mark.parametrize("preset", ["simclr", "byol"])
def test_preset_matches_lightly_output_statistics(fmnist, rgb_folder_like, preset):
    pytest.importorskip("lightly", reason="lightly's transforms are the reference for the presets")
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform

    x = colourised(fmnist, 200)
    if preset == "simclr":
        theirs = SimCLRTransform(input_size=28, cj_strength=0.5, normalize=None)  # cj_strength 0.5: 0.4/0.4/0.4/0.1, the CIFAR setting
    else:
        theirs = BYOLTransform(BYOLView1Transform(input_size=28, normalize=None), BYOLView2Transform(input_size=28, normalize=None))
    copies = 12
    ours = make_augment(rgb_folder_like, preset)
    ov, lv = ours_views(ours, x, copies), lightly_views(theirs, x, copies)
    for i in range(2):
        result = compare(ov[i], lv[i], x)
        misses = {k: v for k, v in result.items() if not v[2]}
        assert not misses, f"{preset} view {i + 1}: {misses}"
    # the check can fail: a preset with the crop range of the Fashion-MNIST default (0.5–1) is told apart
    narrow = make_augment(rgb_folder_like, preset, crop_scale=(0.5, 1.0))
    crop_stats = compare(ours_views(narrow, x, copies)[0], lv[0], x)
    assert not (crop_stats["background"][2] and crop_stats["edges"][2] and crop_stats["mean"][2]), crop_stats
    no_hue = make_augment(rgb_folder_like, preset, hue=0.0)
    assert not compare(ours_views(no_hue, x, copies)[0], lv[0], x)["hue shift"][2]
    double_saturation = make_augment(rgb_folder_like, preset, saturation=2 * ours.view(0).saturation)
    assert not compare(ours_views(double_saturation, x, copies)[0], lv[0], x)["saturation change"][2]


def test_byol_preset_is_asymmetric_and_spec_round_trips(tmp_path, rgb_folder_like, fmnist):
    aug = make_augment(rgb_folder_like, "byol")
    assert isinstance(aug, AsymmetricAugment)
    assert aug.view(0).blur_prob == 1.0 and aug.view(1).blur_prob == 0.1
    assert aug.view(0).solarize == 0.0 and aug.view(1).solarize == 0.2
    with pytest.raises(TypeError, match="view"):
        aug.sample(2, torch.Generator())
    spec = {"preset": "byol", "crop_scale": [0.2, 1.0], "views": [{"blur_prob": 0.5}, {}]}
    (tmp_path / "aug.json").write_text(json.dumps(spec))
    (tmp_path / "aug.yaml").write_text("preset: byol\ncrop_scale: [0.2, 1.0]\nviews:\n  - {blur_prob: 0.5}\n  - {}\n")
    for f in ("aug.json", "aug.yaml"):
        got = read_augment_spec(str(tmp_path / f))
        assert got == spec
        a = make_augment(rgb_folder_like, got)
        assert a.view(0).crop_scale == (0.2, 1.0) and a.view(0).blur_prob == 0.5 and a.view(1).blur_prob == 0.1
    assert read_augment_spec("default") == {} and read_augment_spec("simclr") == {"preset": "simclr"}


@pytest.mark.parametrize(
    "value, message",
    [
        ("sim-clr", "neither a preset"),
        ("missing.json", "no such file"),
        ({"preset": "moco"}, "preset 'moco' is unknown"),
        ({"views": [{}]}, "list of two mappings"),
        ({"rotate": 10}, "unknown augmentation option"),
        ({"hue": 0.7}, "hue=0.7 is outside"),
    ],
)
def test_bad_specs_fail_in_one_line(tmp_path, monkeypatch, rgb_folder_like, value, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=message) as e:
        make_augment(rgb_folder_like, value)
    assert "\n" not in str(e.value)


def test_bad_spec_files_and_presets_on_tables(tmp_path):
    (tmp_path / "bad.json").write_text("{crop_scale: ")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="cannot be read"):
        read_augment_spec(str(tmp_path / "bad.json"))
    with pytest.raises(UserError, match="not a mapping"):
        read_augment_spec(str(tmp_path / "list.yaml"))
    adult = load_dataset("adult", data_dir=FIXTURES / "adult")
    with pytest.raises(UserError, match="for images; tables use SCARF"):
        make_augment(adult, "simclr")


def test_user_callable_is_reproducible_per_row_and_checked():
    def jitter(x, g):
        return (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)

    aug = as_augment(jitter)
    assert isinstance(aug, CallableAugment)
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    p = aug.sample(6, torch.Generator().manual_seed(1))
    whole = aug.apply(x, p)
    parts = torch.cat([aug.apply(x[:2], {"seed": p["seed"][:2]}), aug.apply(x[2:], {"seed": p["seed"][2:]})])
    assert torch.equal(whole, parts)  # a row's view does not depend on its batch
    assert torch.equal(whole, aug.apply(x, aug.sample(6, torch.Generator().manual_seed(1))))
    crn = aug.apply(x[:1].expand(3, 1, 4, 4), aug.sample(1, torch.Generator().manual_seed(2)))
    assert torch.equal(crn[0], crn[1])  # one draw shared by every row
    with pytest.raises(UserError, match="accept \\(x, generator\\)"):
        as_augment(lambda x: x)
    with pytest.raises(UserError, match="not an augmentation"):
        as_augment(42)
    with pytest.raises(UserError, match="must return a tensor of the input's shape"):
        as_augment(lambda x, g: x[:, :, :2]).apply(x, {"seed": torch.zeros(6, dtype=torch.int64)})
