import numpy as np
import pytest
from sklearn.datasets import load_digits

from sslaudit.data import load_dataset
from sslaudit.errors import UserError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_shapes_ranges_labels(digits):
    assert digits.kind == "image" and digits.classes == [str(i) for i in range(10)]
    assert len(digits.train) + len(digits.test) == 1797
    assert len(digits.test) == pytest.approx(0.2 * 1797, abs=10)
    for s in (digits.train, digits.test):
        assert s.x.dtype == np.float32 and s.x.shape[1:] == (1, 8, 8)
        assert s.x.min() >= 0 and s.x.max() <= 1 and s.x.max() == 1.0
        assert s.y.dtype == np.int64 and set(s.y) == set(range(10))
    assert digits.input_shape == (1, 8, 8)


def test_index_is_row_in_load_digits(digits):
    ref = load_digits()
    both = np.concatenate([digits.train.index, digits.test.index])
    assert sorted(both.tolist()) == list(range(1797))
    for s in (digits.train, digits.test):
        np.testing.assert_array_equal(s.x[:, 0], (ref.images[s.index] / 16).astype(np.float32))
        np.testing.assert_array_equal(s.y, ref.target[s.index])


def test_stratified(digits):
    ref = load_digits().target
    for c in range(10):
        n_c = (ref == c).sum()
        assert (digits.test.y == c).sum() == round(0.2 * n_c)


def test_deterministic_and_seeded(digits):
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.test.index, digits.test.index)
    np.testing.assert_array_equal(again.train.x, digits.train.x)
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.test.index, digits.test.index)
    half = load_dataset("digits", test_fraction=0.5)
    assert len(half.test) == pytest.approx(898, abs=10)


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, "abc"])
def test_bad_test_fraction(frac):
    with pytest.raises(UserError, match="between 0 and 1"):
        load_dataset("digits", test_fraction=frac)


def test_table_options_rejected():
    with pytest.raises(UserError, match="--protected and --exclude"):
        load_dataset("digits", protected=["sex"])
    with pytest.raises(UserError, match="--label applies only to tables"):
        load_dataset("digits", label="y")
