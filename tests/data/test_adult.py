import hashlib
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from sslaudit.data import TabularSchema, load_dataset
from sslaudit.data.adult import (
    CATEGORICAL,
    COLUMNS,
    LOG1P,
    adult_1m_source_rows,
    build_adult_1m,
    load_adult_1m,
    read_adult_file,
)
from sslaudit.errors import UserError

from .conftest import FIXTURES, full_data_dir

AD = FIXTURES / "adult"


def _file_rows(name, skip=0):
    lines = (AD / name).read_text().splitlines()[skip:]
    return [[v.strip() for v in ln.split(",")] for ln in lines if ln.strip()]


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult", data_dir=AD)


def test_fixture_shapes_and_meta(adult):
    ds = adult
    assert ds.kind == "tabular" and ds.name == "adult" and ds.classes == ["<=50K", ">50K"]
    assert len(ds.train) == 600 and len(ds.test) == 300
    assert ds.train.x.dtype == np.float32 and ds.train.x.shape[1] == ds.schema.width
    assert ds.schema.names == COLUMNS and list(ds.train.meta.columns) == COLUMNS
    assert ds.protected == ["sex", "race"]
    np.testing.assert_array_equal(ds.train.index, np.arange(600))
    np.testing.assert_array_equal(ds.test.index, np.arange(300))
    for split, name, skip in ((ds.train, "adult.data", 0), (ds.test, "adult.test", 1)):
        rows = _file_rows(name, skip)
        assert len(rows) == len(split)
        for i in (0, 17, len(rows) - 1):  # meta row i is file data row i
            assert [str(v) for v in split.meta.iloc[i].tolist()] == rows[i][:14]
        y = np.array([r[14].rstrip(".") == ">50K" for r in rows], dtype=np.int64)
        np.testing.assert_array_equal(split.y, y)
        assert split.meta["age"].dtype == np.int64
    assert "Private" in ds.train.meta["workclass"].tolist()  # stripped


def test_question_mark_is_its_own_level(adult):
    f = {f.name: f for f in adult.schema.features}
    assert "?" in f["workclass"].categories and "?" in f["occupation"].categories
    row = int(np.nonzero((adult.train.meta["workclass"] == "?").to_numpy())[0][0])
    col = f["workclass"].start + f["workclass"].categories.index("?")
    assert adult.train.x[row, col] == 1.0


def test_schema_fitted_on_train_only(adult):
    f = {f.name: f for f in adult.schema.features}
    assert f["sex"].kind == "categorical" and f["age"].kind == "numeric"
    assert f["capital-gain"].log1p and f["capital-loss"].log1p and not f["age"].log1p
    assert f["age"].mean == pytest.approx(adult.train.meta["age"].mean())
    nc = f["native-country"]
    assert "Ireland" not in nc.categories  # only in the test fixture
    rows = np.nonzero((adult.test.meta["native-country"] == "Ireland").to_numpy())[0]
    assert rows.size > 0
    assert (adult.test.x[rows, nc.start : nc.stop] == 0).all()
    # all other rows have exactly one level of each categorical
    for feat in adult.schema.features:
        if feat.kind == "categorical":
            assert (adult.train.x[:, feat.start : feat.stop].sum(1) == 1).all()


def test_fast_schema_equals_reference(adult):
    ref = TabularSchema.fit(adult.train.meta, categorical=CATEGORICAL, log1p=LOG1P)
    assert ref.to_json() == adult.schema.to_json()
    np.testing.assert_array_equal(ref.transform(adult.test.meta), adult.test.x)
    np.testing.assert_array_equal(ref.transform(adult.train.meta), adult.train.x)


def test_protected_and_exclude():
    ds = load_dataset("adult", data_dir=AD, protected=["age"], exclude=["sex", "race"])
    assert ds.protected == ["age"]
    assert "sex" not in ds.schema.names and "race" not in ds.schema.names
    assert "sex" in ds.train.meta.columns
    with pytest.raises(UserError, match="not Adult attributes.*choose from"):
        load_dataset("adult", data_dir=AD, protected=["gender"])
    with pytest.raises(UserError, match="not Adult attributes"):
        load_dataset("adult", data_dir=AD, exclude=["income"])
    with pytest.raises(UserError, match="every Adult attribute"):
        load_dataset("adult", data_dir=AD, exclude=COLUMNS)
    with pytest.raises(UserError, match="only to tables"):
        load_dataset("adult", data_dir=AD, label="income")


def test_missing(isolated, tmp_path):
    with pytest.raises(UserError, match="Census Income"):
        load_dataset("adult", data_dir=tmp_path)


@pytest.mark.parametrize(
    "bad_line,match",
    [
        ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, maybe", "income 'maybe'"),
        ("abc, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K", "age = 'abc'"),
        ("39, State-gov, 77516", "fewer than 15"),
        ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K, extra", "cannot parse"),
    ],
)
def test_damaged_file(tmp_path, bad_line, match):
    shutil.copy(AD / "adult.test", tmp_path / "adult.test")
    lines = (AD / "adult.data").read_text().splitlines()
    lines[5] = bad_line
    (tmp_path / "adult.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=match) as e:
        load_dataset("adult", data_dir=tmp_path)
    assert "download" in str(e.value)


def test_adult_1m_recipe_on_fixture():
    src, y_src = read_adult_file(AD / "adult.data")
    built, y, rows = build_adult_1m(src, y_src, seed=3, n_rows=20000)
    np.testing.assert_array_equal(rows, adult_1m_source_rows(3, n_source=600, n_rows=20000))
    assert list(built.columns) == COLUMNS and len(built) == 20000
    s = src.iloc[rows].reset_index(drop=True)
    np.testing.assert_array_equal(y, y_src[rows])
    for c in CATEGORICAL + ["education-num"]:
        assert built[c].tolist() == s[c].tolist()
    d_age = built["age"] - s["age"]
    assert built["age"].between(17, 90).all() and (d_age.abs() <= 2).all()
    assert set(d_age[(s["age"] > 19) & (s["age"] < 88)]) == {-2, -1, 0, 1, 2}
    assert built["hours-per-week"].between(1, 99).all() and ((built["hours-per-week"] - s["hours-per-week"]).abs() <= 3).all()
    ratio = built["fnlwgt"] / s["fnlwgt"]
    assert 0.5 < ratio.min() and ratio.max() < 2 and 0.07 < np.log(ratio).std() < 0.13
    for c in ("capital-gain", "capital-loss"):
        assert ((built[c] == 0) == (s[c] == 0)).all()
        nz = s[c] > 0
        r = built[c][nz] / s[c][nz]
        assert 0.7 < r.min() and r.max() < 1.4 and r.std() > 0
    assert built["capital-gain"].max() <= 99999
    for c in COLUMNS:
        assert (built[c].dtype == np.int64) == (c not in CATEGORICAL)
    again = build_adult_1m(src, y_src, seed=3, n_rows=20000)[0]
    pd.testing.assert_frame_equal(again, built)
    other = build_adult_1m(src, y_src, seed=4, n_rows=20000)[0]
    assert not other.equals(built)


def test_adult_1m_loader_on_fixture():
    ds = load_adult_1m(data_dir=AD, n_rows=5000, seed=0)
    assert ds.name == "adult-1m" and len(ds.train) == 5000 and len(ds.test) == 300
    np.testing.assert_array_equal(ds.train.index, np.arange(5000))
    assert list(ds.train.meta.columns) == COLUMNS and ds.protected == ["sex", "race"]
    rows = adult_1m_source_rows(0, n_source=600, n_rows=5000)
    assert ds.source["source_rows_sha256"] == hashlib.sha256(rows.astype("<i8").tobytes()).hexdigest()
    ref = TabularSchema.fit(ds.train.meta, categorical=CATEGORICAL, log1p=LOG1P)  # fitted on the built rows
    assert ref.to_json() == ds.schema.to_json()
    np.testing.assert_array_equal(ref.transform(ds.test.meta), ds.test.x)


def test_full_adult():
    d = full_data_dir("adult", ["adult.data", "adult.test"])
    ds = load_dataset("adult", data_dir=d)
    assert len(ds.train) == 32561 and len(ds.test) == 16281
    assert ds.train.y.mean() == pytest.approx(7841 / 32561)
    assert ds.test.y.mean() == pytest.approx(3846 / 16281)
    assert not np.isnan(ds.test.x).any()


@pytest.mark.slow  # builds 1,000,000 rows: a few seconds and ~1 GB
def test_full_adult_1m():
    # builds the 1,000,000 rows (a few seconds): size, ranges, provenance and determinism
    d = full_data_dir("adult", ["adult.data", "adult.test"])
    t = time.perf_counter()
    ds = load_dataset("adult-1m", data_dir=d)
    elapsed = time.perf_counter() - t
    assert len(ds.train) == 1_000_000 and len(ds.test) == 16281
    assert ds.train.x.shape == (1_000_000, ds.schema.width) and ds.train.x.dtype == np.float32
    assert ds.train.index[-1] == 999_999 and list(ds.train.meta.columns) == COLUMNS
    assert abs(ds.train.y.mean() - 7841 / 32561) < 0.003
    assert elapsed < 60
    rows = adult_1m_source_rows(0)
    assert ds.source["source_rows_sha256"] == hashlib.sha256(rows.astype("<i8").tobytes()).hexdigest()
    # determinism: rebuilding the rows gives the same table (the encoding is a pure function of it)
    src, y_src = read_adult_file(d / "adult.data")
    again, y_again, rows_again = build_adult_1m(src, y_src, seed=0)
    np.testing.assert_array_equal(rows_again, rows)
    np.testing.assert_array_equal(y_again, ds.train.y)
    pd.testing.assert_frame_equal(again, ds.train.meta)
