"""`--data FOLDER`: image folders of real Fashion-MNIST images (PNG, WebP, JPEG), decoded per batch."""

import numpy as np
import pytest
import torch

from sslaudit.data import load_dataset
from sslaudit.data.image_folder import FolderImages
from sslaudit.errors import UserError

from .fm_folder import save, write_folder


def test_train_test_folders_pixels_labels_order(tmp_path):
    written = write_folder(tmp_path, formats=("png", "webp", "jpg"))
    ds = load_dataset(tmp_path)
    assert ds.kind == "image" and ds.input_shape == (3, 28, 28) and (len(ds.train), len(ds.test)) == (40, 20)
    assert isinstance(ds.train.x, FolderImages)  # nothing decoded at load time
    assert ds.classes == sorted({p.split("/")[1] for p in written})
    for name, s in (("train", ds.train), ("test", ds.test)):
        mine = sorted(p for p in written if p.startswith(name + "/"))
        assert list(s.paths) == mine  # sorted relative paths, and index = the row in that order
        np.testing.assert_array_equal(s.index, np.arange(len(mine)))
        assert [ds.classes[int(c)] for c in s.y] == [p.split("/")[1] for p in mine]
        x = s.x[:]
        assert x.dtype == np.float32 and x.shape == (len(mine), 3, 28, 28)
        for i, rel in enumerate(mine):
            want = written[rel].astype(np.float32) / 255
            if rel.endswith((".png", ".webp")):  # lossless: every pixel, each channel the grey value
                np.testing.assert_array_equal(x[i], np.broadcast_to(want, (3, 28, 28)))
            else:  # JPEG: close to the source
                assert np.abs(x[i] - want).mean() < 0.03
    np.testing.assert_array_equal(ds.test.x[[4, 1]], ds.test.x[:][[4, 1]])  # fancy, slice and single indexing agree
    np.testing.assert_array_equal(ds.test.x[3], ds.test.x[:][3])
    sub = ds.train.take(np.array([5, 2]))
    assert isinstance(sub.x, FolderImages) and list(sub.paths) == [ds.train.paths[5], ds.train.paths[2]]


def test_grey_images_stay_one_channel(tmp_path):
    written = write_folder(tmp_path, rgb=False, n_train=12, n_test=6)
    ds = load_dataset(tmp_path)
    assert ds.input_shape == (1, 28, 28)
    rel = ds.train.paths[0]
    np.testing.assert_array_equal(ds.train.x[0][0], written[rel].astype(np.float32) / 255)


def test_class_folders_seeded_stratified_holdout(tmp_path):
    written = write_folder(tmp_path, layout="classes", n_train=60)
    every = sorted(written)
    ds = load_dataset(tmp_path, test_fraction=0.25, seed=3)
    assert len(ds.train) + len(ds.test) == 60 and ds.source["layout"].startswith("one folder")
    for s in (ds.train, ds.test):  # index = row number among all files in sorted order
        assert list(s.paths) == [every[i] for i in s.index]
        assert [ds.classes[int(c)] for c in s.y] == [every[i].split("/")[0] for i in s.index]
    counts = {c: sum(p.startswith(c + "/") for p in every) for c in ds.classes}
    for k, c in enumerate(ds.classes):  # stratified: each class holds out round(f · n_class), never all of it
        assert (ds.test.y == k).sum() == min(round(0.25 * counts[c]), counts[c] - 1)
    again = load_dataset(tmp_path, test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.test.index, ds.test.index)
    other = load_dataset(tmp_path, test_fraction=0.25, seed=4)
    assert not np.array_equal(other.test.index, ds.test.index)


def test_flat_folder_is_unlabelled(tmp_path):
    write_folder(tmp_path, layout="flat", n_train=20)
    ds = load_dataset(tmp_path, test_fraction=0.2, seed=0)
    assert not ds.has_labels and ds.classes is None and (len(ds.train), len(ds.test)) == (16, 4)


def test_image_size_resizes_like_antialiased_bilinear(tmp_path):
    written = write_folder(tmp_path, n_train=6, n_test=3)
    save(np.zeros((40, 30), np.uint8), tmp_path / "train" / "Bag" / "big.png", rgb=True)  # another size
    with pytest.raises(UserError, match="different sizes.*--image-size"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, image_size="32x24")
    assert ds.input_shape == (3, 32, 24) and ds.source["resized"]
    i = list(ds.train.paths).index(next(p for p in ds.train.paths if p in written))
    src = torch.as_tensor(written[ds.train.paths[i]], dtype=torch.float32)[None, None]
    want = torch.nn.functional.interpolate(src, size=(32, 24), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255)[0, 0]
    got = torch.as_tensor(ds.train.x[i][0] * 255)
    assert (got - want).abs().max() <= 1.0  # torchvision's uint8 kernel rounds within one level
    assert load_dataset(tmp_path, image_size=16).input_shape == (3, 16, 16)


def test_channel_stats_equal_numpy(tmp_path):
    write_folder(tmp_path, n_train=30, n_test=5)
    x = load_dataset(tmp_path).train.x
    mean, std = x.channel_stats(batch=7)
    full = x[:].astype(np.float64)
    np.testing.assert_allclose(mean, full.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std, full.std(axis=(0, 2, 3)), rtol=1e-7)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda r: None, "holds no images"),
        (lambda r: (r / "train").mkdir(), "no test/ folder"),
        (lambda r: save(np.zeros((8, 8), np.uint8), r / "only" / "a.png", rgb=False), "single class"),
        (lambda r: [save(np.zeros((8, 8), np.uint8), r / p, rgb=False) for p in ("a.png", "c/b.png")], "holds images directly and in the subfolders"),
        (lambda r: [save(np.zeros((8, 8), np.uint8), r / "a.png", rgb=False), (r / "b.png").write_bytes(b"not an image")], "cannot read the image"),
    ],
)
def test_bad_folders_one_line(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(UserError, match=match):
        load_dataset(tmp_path)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from sslaudit.cli.main import main

    write_folder(tmp_path / "imgs", n_train=8, n_test=4)
    damaged = next((tmp_path / "imgs" / "train").rglob("*.png"))
    damaged.write_bytes(damaged.read_bytes()[:60])  # the header survives, the pixels do not
    for args, match in (
        (["--data", str(tmp_path / "missing")], "no folder or file"),
        (["--data", str(tmp_path / "imgs")], "cannot decode the image"),
        (["--data", "digits", "--image-size", "32"], "--image-size applies to folders"),
    ):
        assert main(["train", *args, "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "run"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and match in err and "Traceback" not in err and err.count("\n") == 1
