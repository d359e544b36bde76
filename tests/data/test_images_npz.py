import numpy as np
import pytest

from sslaudit.data import load_dataset
from sslaudit.errors import UserError


def _npz(tmp_path, name="imgs.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return str(p)


def test_uint8_grey_with_holdout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 6, 5), dtype=np.uint8)
    y = np.repeat(["cat", "dog"], 25)
    ds = load_dataset(_npz(tmp_path, x=x, y=y), test_fraction=0.2, seed=1)
    assert ds.kind == "image" and ds.name == "imgs" and ds.classes == ["cat", "dog"]
    assert ds.train.x.shape == (40, 1, 6, 5) and ds.test.x.shape == (10, 1, 6, 5)
    assert ds.train.x.dtype == np.float32
    for s in (ds.train, ds.test):
        np.testing.assert_array_equal(s.x[:, 0], x[s.index].astype(np.float32) / 255)  # index = row in x
        np.testing.assert_array_equal(np.array(ds.classes)[s.y], y[s.index])
    assert (ds.test.y == 0).sum() == 5  # stratified
    again = load_dataset(_npz(tmp_path, "b.npz", x=x, y=y), test_fraction=0.2, seed=1)
    np.testing.assert_array_equal(again.test.index, ds.test.index)


def test_float_rgb_with_test_split(tmp_path):
    x = np.random.default_rng(0).random((8, 3, 4, 4))
    xt = np.random.default_rng(1).random((3, 3, 4, 4)).astype(np.float32)
    ds = load_dataset(_npz(tmp_path, x=x, y=np.array([0, 1] * 4), x_test=xt, y_test=np.array([2, 0, 1])))
    assert ds.classes == ["0", "1", "2"] and ds.test.y.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(ds.train.index, np.arange(8))
    np.testing.assert_array_equal(ds.test.index, np.arange(3))
    np.testing.assert_allclose(ds.train.x, x.astype(np.float32))
    unlabelled = load_dataset(_npz(tmp_path, "u.npz", x=x, x_test=xt))
    assert unlabelled.classes is None and not unlabelled.has_labels


@pytest.mark.parametrize(
    "arrays,match",
    [
        (dict(x=np.zeros((4, 5))), "expected N×H×W"),
        (dict(x=np.zeros((4, 1, 2, 2, 2))), "expected N×H×W"),
        (dict(x=np.zeros((0, 4, 4), np.uint8)), "no images"),
        (dict(x=np.full((4, 4, 4), np.nan)), "NaN or infinite"),
        (dict(x=np.full((4, 4, 4), 255.0)), r"outside \[0, 1\]: rescale"),
        (dict(x=np.zeros((4, 4, 4, 3))), r"C = 4.*channels last"),
        (dict(x=np.zeros((4, 2, 4, 4))), "C = 2"),
        (dict(x=np.zeros((4, 4, 4), np.int64)), "dtype int64"),
        (dict(x=np.zeros((4, 4, 4)), y=np.zeros(3)), "3 labels but 'x' has 4"),
        (dict(x=np.zeros((4, 4, 4)), y=np.array([0.5, 1, 1, 0])), "non-integer"),
        (dict(images=np.zeros((4, 4, 4))), "no array named 'x'.*images"),
        (dict(x=np.zeros((4, 4, 4)), y_test=np.zeros(2)), "'y_test' but no 'x_test'"),
        (dict(x=np.zeros((4, 4, 4)), x_test=np.zeros((2, 5, 5))), "same shape"),
        (dict(x=np.zeros((4, 4, 4)), y=np.zeros(4), x_test=np.zeros((2, 4, 4))), "labels for one split only"),
        (dict(x=np.zeros((4, 4, 4)), x_test=np.full((2, 4, 4), np.inf)), "'x_test' has NaN"),
    ],
)
def test_bad_npz(tmp_path, arrays, match):
    with pytest.raises(UserError, match=match):
        load_dataset(_npz(tmp_path, **arrays))


def test_object_arrays_refused(tmp_path):
    x = np.empty(4, dtype=object)
    x[:] = [np.zeros((2, 2))] * 4
    with pytest.raises(UserError, match="Python objects"):
        load_dataset(_npz(tmp_path, x=x))


def test_not_an_npz(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"hello, not a zip")
    with pytest.raises(UserError, match="np.savez"):
        load_dataset(str(p))
    q = tmp_path / "single.npz"
    with open(q, "wb") as f:
        np.save(f, np.zeros((4, 4, 4)))
    with pytest.raises(UserError, match="not a .npz archive"):
        load_dataset(str(q))


def test_table_options_rejected(tmp_path):
    p = _npz(tmp_path, x=np.zeros((4, 4, 4)))
    with pytest.raises(UserError, match="only to tables"):
        load_dataset(p, label="y")
    with pytest.raises(UserError, match="holds images"):
        load_dataset(p, protected=["sex"])
