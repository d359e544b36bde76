import numpy as np
import pandas as pd
import pytest

from sslaudit.data import DATASET_NAMES, TabularSchema, load_dataset
from sslaudit.errors import UserError

HTML = '<b>score</b> & "quoted"'


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "city": rng.choice(["Paris", "Lyon", "?", ""], n),
            HTML: rng.normal(size=n),
            "zip": rng.integers(1000, 1005, n),
            "sex": rng.choice(["F", "M"], n),
            "id": np.arange(n),
            "outcome": rng.choice(["yes", "no", "maybe"], n),
        }
    )
    df.loc[3, "age"] = np.nan
    df.loc[5, HTML] = np.inf
    return df


@pytest.fixture
def table_path(tmp_path):
    p = tmp_path / "people.csv"
    _table().to_csv(p, index=False)
    return p


def test_basic(table_path):
    df = pd.read_csv(table_path, keep_default_na=False)
    ds = load_dataset(str(table_path), label="outcome", protected=["sex"], exclude=["id"], categorical=["zip"])
    assert ds.kind == "tabular" and ds.name == "people"
    assert ds.classes == ["maybe", "no", "yes"]
    assert ds.protected == ["sex"]
    assert ds.schema.names == ["age", "city", HTML, "zip", "sex"]  # protected kept, excluded/label out
    kinds = {f.name: f.kind for f in ds.schema.features}
    assert kinds == {"age": "numeric", "city": "categorical", HTML: "numeric", "zip": "categorical", "sex": "categorical"}
    assert list(ds.train.meta.columns) == ["age", "city", HTML, "zip", "sex", "id"]
    for s in (ds.train, ds.test):
        assert s.x.dtype == np.float32 and np.isfinite(s.x).all()
        np.testing.assert_array_equal(s.meta["id"].to_numpy(), s.index)  # index = data row in the file
        np.testing.assert_array_equal(np.array(ds.classes)[s.y], df["outcome"].to_numpy()[s.index])
    assert sorted(np.concatenate([ds.train.index, ds.test.index]).tolist()) == list(range(40))
    assert len(ds.test) == pytest.approx(8, abs=2)
    city = next(f for f in ds.schema.features if f.name == "city")
    assert city.categories == ["?", "Lyon", "Paris"]  # '?' and empty cells are one missing level


def test_schema_fitted_on_train_rows_and_equals_reference(table_path):
    ds = load_dataset(str(table_path), label="outcome", exclude=["id"])
    feats = ds.train.meta[ds.schema.names]
    cats = [f.name for f in ds.schema.features if f.kind == "categorical"]
    ref = TabularSchema.fit(feats, categorical=cats)
    assert ref.to_json() == ds.schema.to_json()
    np.testing.assert_array_equal(ref.transform(ds.test.meta), ds.test.x)
    age = next(f for f in ds.schema.features if f.name == "age")
    assert age.mean == pytest.approx(np.nanmean(ds.train.meta["age"]))


def test_schema_on_messy_frame_against_hand_computation():
    df = pd.DataFrame(
        {
            "a": ["x", None, "y ", " y", "?", "", np.nan, "z"],
            "b": [1, 2, 3, 4, 5, 6, 7, 8],
            "c": [1.0, np.nan, np.inf, -np.inf, 2.0, 3.0, 4.0, 5.0],
            "d": ["1", "2", "?", "3", "", "4", "5", "6"],
        }
    )
    schema = TabularSchema.fit(df.iloc[:5], log1p=("c",))  # fitted on the first five rows
    a, b, c, d = schema.features
    assert (a.kind, a.categories) == ("categorical", ["?", "x", "y"])  # None and '?' are one level; spaces stripped
    assert (b.kind, b.mean, b.std) == ("numeric", 3.0, pytest.approx(np.sqrt(2)))
    finite = np.log1p(np.array([1.0, 0.0, 2.0]))  # log1p(clip(v, 0)) of the finite values 1, -inf→0, 2
    assert (c.mean, c.std) == (pytest.approx(finite.mean()), pytest.approx(finite.std()))
    assert (d.kind, d.mean) == ("numeric", 2.0)  # '?' and '' are missing
    x = schema.transform(df)
    onehot = x[:, a.start : a.stop]
    np.testing.assert_array_equal(onehot.argmax(1)[:7], [1, 0, 2, 2, 0, 0, 0])  # '', NaN → '?'
    assert onehot[7].sum() == 0  # 'z' was never seen in training: all zeros
    np.testing.assert_allclose(x[:, b.start], (np.arange(1, 9) - 3) / np.sqrt(2), rtol=1e-6)
    assert x[1, c.start] == 0 and x[2, c.start] == 0  # NaN and +inf are imputed with the mean
    np.testing.assert_allclose(x[3, c.start], (0 - finite.mean()) / finite.std(), rtol=1e-6)

    as_cat = TabularSchema.fit(df.iloc[:5], categorical=["a", "b"])
    assert as_cat.features[1].categories == ["1", "2", "3", "4", "5"]
    assert as_cat.transform(df)[5:, as_cat.features[1].start : as_cat.features[1].stop].sum() == 0  # 6, 7, 8 unseen


def test_deterministic_and_stratified(table_path):
    a = load_dataset(str(table_path), label="outcome", seed=5)
    b = load_dataset(str(table_path), label="outcome", seed=5)
    c = load_dataset(str(table_path), label="outcome", seed=6)
    np.testing.assert_array_equal(a.test.index, b.test.index)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.test.index, c.test.index)
    y_all = pd.read_csv(table_path)["outcome"]
    for cls in ("yes", "no", "maybe"):
        n = int((y_all == cls).sum())
        assert int((np.array(a.classes)[a.test.y] == cls).sum()) == round(0.2 * n)


def test_no_label_numeric_label_and_split_column(tmp_path):
    df = _table(20)
    df["klass"] = np.where(np.arange(20) % 3 == 0, 10, 2)
    df["split"] = ["test" if i % 4 == 0 else "train" for i in range(20)]
    p = tmp_path / "s.csv"
    df.to_csv(p, index=False)
    ds = load_dataset(str(p))
    assert ds.classes is None and ds.train.y is None and not ds.has_labels
    np.testing.assert_array_equal(ds.test.index, np.arange(0, 20, 4))
    assert "split" not in ds.train.meta.columns and "split" not in ds.schema.names
    ds = load_dataset(str(p), label="klass")
    assert ds.classes == ["2", "10"]  # numeric labels ordered numerically
    np.testing.assert_array_equal(ds.train.y, (df["klass"].to_numpy()[ds.train.index] == 10).astype(int))


def test_protected_label_stays_in_meta(table_path):
    ds = load_dataset(str(table_path), label="sex", protected=["sex"])
    assert "sex" in ds.train.meta.columns and "sex" not in ds.schema.names
    assert ds.classes == ["F", "M"]


def test_html_names_and_bom(tmp_path):
    p = tmp_path / "h.csv"
    p.write_bytes(("\ufeff" + "<script>x</script>,b\n" + "\n".join(f"{i},{i % 2}" for i in range(6)) + "\n").encode())
    ds = load_dataset(str(p), label="b")
    assert ds.schema.names == ["<script>x</script>"]


@pytest.mark.parametrize(
    "text,kwargs,match",
    [
        ("", {}, "is empty"),
        ("a,b\n", {}, "0 data row"),
        ("a,b\n1,2\n3,4\n5,6\n", {}, "3 data row.*at least 4"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", {"label": "c"}, "label column 'c' not found.*'a', 'b'"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", {"protected": ["sex"]}, "protected column.*'sex'.*not found.*'a', 'b'"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", {"exclude": ["zz"]}, "excluded column.*'zz'.*not found"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", {"categorical": ["q"]}, "categorical column.*'q'.*not found"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", {"label": "a", "exclude": ["b"]}, "no column as encoder input"),
        ("a,b\n1,\n3,\n5,\n7,\n", {"label": "a"}, "no column as encoder input.*without any value"),
        ("a,b\n1,2\n,4\n5,6\n7,8\n", {"label": "a"}, "label column 'a'.*missing in 1 row"),
        ("a,a\n1,2\n3,4\n5,6\n7,8\n", {}, "more than once"),
        ("a,b\n1,2\n3,4,5\n5,6\n7,8\n", {}, "cannot parse.*as many fields"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, match):
    p = _csv(tmp_path, text)
    with pytest.raises(UserError, match=match):
        load_dataset(str(p), **kwargs)


def test_nan_inf_numeric_is_imputed(tmp_path):
    p = _csv(tmp_path, "a,b,y\n1,nan,0\ninf,2,1\n3,-inf,0\n4,5,1\n,7,0\n")
    ds = load_dataset(str(p), label="y", test_fraction=0.4)
    assert all(f.kind == "numeric" for f in ds.schema.features)
    assert np.isfinite(ds.train.x).all() and np.isfinite(ds.test.x).all()


def test_spec_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError) as e:
        load_dataset("mnist")
    for n in DATASET_NAMES:
        assert n in str(e.value)
    with pytest.raises(UserError, match=".csv or .parquet table, a .npz or .npy"):
        load_dataset(str(_csv(tmp_path, "a\n1\n", "t.feather")))
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(UserError, match="not a file"):
        load_dataset(str(tmp_path / "d.csv"))


def test_an_id_column_and_an_unnamed_label_are_warned_about(tmp_path):
    import warnings

    from sslaudit.progress import SslauditWarning

    df = _table(40)
    df["customer_id"] = [f"c{i:04d}" for i in range(40)]  # a distinct text value per row: an ID
    df["income"] = np.where(np.arange(40) % 2 == 0, ">50K", "<=50K")
    p = tmp_path / "ids.csv"
    df.to_csv(p, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_dataset(str(p))
    msgs = [str(w.message) for w in caught if issubclass(w.category, SslauditWarning)]
    assert any("'customer_id'" in m and "--exclude customer_id" in m and "40 one-hot columns" in m for m in msgs), msgs
    assert any("'income'" in m and "--label income" in m for m in msgs), msgs
    with warnings.catch_warnings(record=True) as caught:  # named as it should be: nothing to say
        warnings.simplefilter("always")
        load_dataset(str(p), label="income", exclude=["customer_id"])
    assert not [w for w in caught if issubclass(w.category, SslauditWarning)]
