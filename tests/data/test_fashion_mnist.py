import gzip
import shutil
import struct

import numpy as np
import pytest

from sslaudit.data import load_dataset
from sslaudit.data.fashion_mnist import CLASSES, FILES
from sslaudit.errors import UserError

from .conftest import FIXTURES, full_data_dir

FM = FIXTURES / "fashion-mnist"


def _raw(name):
    return gzip.open(FM / name, "rb").read()


def _copy(dst):
    dst.mkdir(parents=True, exist_ok=True)
    for f in FILES.values():
        shutil.copy(FM / f, dst / f)
    return dst


def _write(path, data: bytes):
    path.unlink(missing_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def fixture_ds():
    return load_dataset("fashion-mnist", data_dir=FM)


def test_fixture_shapes_values(fixture_ds):
    ds = fixture_ds
    assert ds.kind == "image" and ds.classes == CLASSES and len(CLASSES) == 10
    assert ds.train.x.shape == (600, 1, 28, 28) and ds.test.x.shape == (200, 1, 28, 28)
    assert ds.train.x.dtype == np.float32 and ds.train.x.min() >= 0 and ds.train.x.max() == 1.0
    np.testing.assert_array_equal(ds.train.index, np.arange(600))
    np.testing.assert_array_equal(ds.test.index, np.arange(200))
    imgs = np.frombuffer(_raw("train-images-idx3-ubyte.gz"), np.uint8, offset=16).reshape(-1, 28, 28)
    labs = np.frombuffer(_raw("t10k-labels-idx1-ubyte.gz"), np.uint8, offset=8)
    np.testing.assert_array_equal(ds.train.x[:, 0], imgs.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.test.y, labs)
    assert ds.test.y.dtype == np.int64 and set(ds.train.y) <= set(range(10))


def test_uncompressed_files(tmp_path, fixture_ds):
    for f in FILES.values():
        (tmp_path / f[:-3]).write_bytes(_raw(f))
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.test.x, fixture_ds.test.x)


def test_subfolder_and_env(isolated, tmp_path, fixture_ds):
    _copy(tmp_path / "fashion-mnist")
    isolated.setenv("SSLAUDIT_DATA", str(tmp_path))
    ds = load_dataset("fashion-mnist")
    assert len(ds.train) == 600


def test_missing(isolated, tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


@pytest.mark.parametrize(
    "name,mutate,match",
    [
        ("train-images-idx3-ubyte.gz", lambda b: struct.pack(">I", 2049) + b[4:], "magic number"),
        ("train-labels-idx1-ubyte.gz", lambda b: b[:4] + struct.pack(">I", 601) + b[8:], "header announces 601"),
        ("t10k-images-idx3-ubyte.gz", lambda b: b[:-100], "header announces"),
        ("t10k-images-idx3-ubyte.gz", lambda b: b[:10], "too short"),
        ("t10k-images-idx3-ubyte.gz", lambda b: b[:8] + struct.pack(">II", 32, 32) + b[16:], "not 28×28"),
        ("t10k-labels-idx1-ubyte.gz", lambda b: b[:8] + bytes([11]) + b[9:], "outside 0-9"),
    ],
)
def test_corrupt_files(tmp_path, name, mutate, match):
    d = _copy(tmp_path)
    _write(d / name, mutate(_raw(name)))
    with pytest.raises(UserError, match=match) as e:
        load_dataset("fashion-mnist", data_dir=d)
    assert "download" in str(e.value) or "reinstall" in str(e.value)


def test_not_gzip_and_count_mismatch(tmp_path):
    d = _copy(tmp_path)
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(UserError, match="cannot read.*download"):
        load_dataset("fashion-mnist", data_dir=d)
    d = _copy(tmp_path / "b")
    labs = _raw("t10k-labels-idx1-ubyte.gz")
    _write(d / "t10k-labels-idx1-ubyte.gz", labs[:4] + struct.pack(">I", 199) + labs[8:-1])
    with pytest.raises(UserError, match="200 images but .* 199 labels"):
        load_dataset("fashion-mnist", data_dir=d)


def test_full_fashion_mnist():
    d = full_data_dir("fashion-mnist", list(FILES.values()))
    ds = load_dataset("fashion-mnist", data_dir=d)
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.train.y).tolist() == [6000] * 10
    assert np.bincount(ds.test.y).tolist() == [1000] * 10
    assert 0 <= ds.train.x.min() and ds.train.x.max() <= 1
