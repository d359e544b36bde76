import numpy as np
import pytest

from sslaudit.data import Dataset, Split, holdout_split, validate_dataset
from sslaudit.errors import UserError


def _img(n, fill=0.5):
    return np.full((n, 1, 4, 4), fill, dtype=np.float32)


def test_empty_split_rejected():
    ds = Dataset("toy", "image", Split(_img(3)), Split(_img(0)))
    with pytest.raises(UserError, match="test split of toy is empty"):
        validate_dataset(ds)


def test_nan_inf_images_rejected():
    x = _img(3)
    x[1, 0, 2, 2] = np.nan
    with pytest.raises(UserError, match="train inputs of toy contain NaN or infinite values in 1 sample"):
        validate_dataset(Dataset("toy", "image", Split(x), Split(_img(2))))
    x = _img(3)
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(UserError, match="NaN or infinite"):
        validate_dataset(Dataset("toy", "image", Split(_img(2)), Split(x)))


def test_other_checks():
    with pytest.raises(UserError, match="not in \\[0, 1\\]"):
        validate_dataset(Dataset("toy", "image", Split(_img(2, 2.0)), Split(_img(2))))
    with pytest.raises(UserError, match="3 samples but 2 labels"):
        validate_dataset(Dataset("toy", "image", Split(_img(3), np.zeros(2)), Split(_img(2), np.zeros(2))))
    with pytest.raises(UserError, match="labels for one split only"):
        validate_dataset(Dataset("toy", "image", Split(_img(3), np.zeros(3)), Split(_img(2))))
    with pytest.raises(UserError, match="repeats sample indices"):
        validate_dataset(Dataset("toy", "image", Split(_img(3), index=np.array([2, 1, 2])), Split(_img(2))))
    ok = validate_dataset(Dataset("toy", "image", Split(_img(3).astype(np.float64)), Split(_img(2))))
    assert ok.train.x.dtype == np.float32


def test_holdout_split():
    y = np.array([0] * 10 + [1] * 5 + [2])
    tr, te = holdout_split(16, y, 0.2, 7, "k")
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(16))
    assert (np.diff(tr) > 0).all() and (np.diff(te) > 0).all()
    assert np.bincount(y[te], minlength=3).tolist() == [2, 1, 0]  # a class of one row stays in train
    tr2, te2 = holdout_split(16, y, 0.2, 7, "k")
    assert np.array_equal(te, te2)
    assert not np.array_equal(holdout_split(100, None, 0.2, 7, "k")[1], holdout_split(100, None, 0.2, 8, "k")[1])
    tr, te = holdout_split(3, None, 0.99, 0)
    assert len(tr) >= 1 and len(te) >= 1
    with pytest.raises(UserError, match="at least 2"):
        holdout_split(1, None, 0.2, 0)
