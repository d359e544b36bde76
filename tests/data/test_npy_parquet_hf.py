"""`.npy` arrays, Parquet tables and datasets saved with Hugging Face `save_to_disk`, built from the
committed real fixtures (Fashion-MNIST images, UCI Adult rows) and checked against them."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sslaudit.cli.main import main
from sslaudit.data import load_dataset
from sslaudit.errors import UserError
from sslaudit.methods.krepes.stages import fingerprint
from sslaudit.run import load

from .conftest import FIXTURES
from .fm_folder import fashion_mnist_uint8

datasets = pytest.importorskip("datasets")


def adult_frame(n: int = 240) -> pd.DataFrame:
    cols = [
        "age",
        "workclass",
        "fnlwgt",
        "education",
        "education_num",
        "marital_status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
        "native_country",
        "income",
    ]
    df = pd.read_csv(FIXTURES / "adult" / "adult.data", header=None, names=cols, skipinitialspace=True, nrows=n)
    return df


# ------------------------------------------------------------------------------------------ .npy


def test_npy_grey_uint8_is_memory_mapped_and_exact(tmp_path):
    xtr, *_ = fashion_mnist_uint8()
    np.save(tmp_path / "x.npy", xtr[:100])
    ds = load_dataset(tmp_path / "x.npy")
    assert ds.kind == "image" and not ds.has_labels and ds.input_shape == (1, 28, 28)
    assert len(ds.train) + len(ds.test) == 100 and len(ds.test) == 20
    assert isinstance(ds.train.x.array, np.memmap)  # read per batch, never loaded whole
    rows = np.array([7, 0, 33, 2])  # any order: read in file order, returned in the order asked
    want = xtr[ds.train.index[rows]][:, None].astype(np.float32) / 255
    np.testing.assert_allclose(ds.train.x[rows], want, atol=1e-7)
    again = load_dataset(tmp_path / "x.npy")
    assert np.array_equal(again.test.index, ds.test.index)  # the seeded split is reproducible
    worker = pickle.loads(pickle.dumps(ds.test.x))  # a Ray worker maps the file again
    assert np.array_equal(worker[:5], ds.test.x[:5]) and len(pickle.dumps(ds.test.x)) < 2000
    assert fingerprint(again.train.x) == fingerprint(ds.train.x) != fingerprint(ds.train.x.subset(np.arange(5)))  # the cache key: file bytes and rows
    np.save(tmp_path / "shifted.npy", xtr[1:101])
    assert fingerprint(load_dataset(tmp_path / "shifted.npy").train.x) != fingerprint(ds.train.x)


def test_npy_float_rgb_and_table(tmp_path):
    xtr, *_ = fashion_mnist_uint8()
    rgb = np.repeat(xtr[:30, None], 3, axis=1).astype(np.float32) / 255
    np.save(tmp_path / "rgb.npy", rgb)
    ds = load_dataset(tmp_path / "rgb.npy")
    assert ds.input_shape == (3, 28, 28)
    np.testing.assert_array_equal(ds.test.x[:], rgb[ds.test.index])
    table = np.random.default_rng(0).normal(size=(40, 5))
    np.save(tmp_path / "table.npy", table)
    tab = load_dataset(tmp_path / "table.npy")
    assert tab.kind == "tabular" and tab.schema.names == ["0", "1", "2", "3", "4"] and tab.input_shape == (5,)
    z = (table[:, 1] - table[tab.train.index, 1].mean()) / table[tab.train.index, 1].std()  # standardised on train rows
    np.testing.assert_allclose(tab.test.x[:, 1], z[tab.test.index], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((4, 28, 28, 3), np.uint8), "channels last"),
        (np.full((4, 1, 8, 8), 2.0, np.float32), "outside \\[0, 1\\]"),
        (np.full((4, 1, 8, 8), np.nan, np.float32), "NaN"),
        (np.zeros((0, 1, 8, 8), np.uint8), "no images"),
        (np.zeros((4,), np.float32), "expected N×H×W"),
        (np.array(["a", "b"] * 4).reshape(4, 2), "dtype"),
    ],
)
def test_bad_npy_one_line(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(UserError, match=match) as e:
        load_dataset(tmp_path / "bad.npy")
    assert "\n" not in str(e.value)


def test_npy_of_objects_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="pickle"):
        load_dataset(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(UserError, match="np.save"):
        load_dataset(tmp_path / "junk.npy")
    with pytest.raises(UserError, match="do not apply to a .npy"):
        load_dataset(tmp_path / "obj.npy", label="y")


# -------------------------------------------------------------------------------------- Parquet


def test_parquet_encodes_like_the_same_csv(tmp_path):
    df = adult_frame()
    df["split"] = np.where(np.arange(len(df)) % 5 == 0, "test", "train")  # the same splits for both
    df.to_csv(tmp_path / "adult.csv", index=False)
    df.to_parquet(tmp_path / "adult.parquet")
    a = load_dataset(tmp_path / "adult.csv", label="income", protected=["sex"])
    b = load_dataset(tmp_path / "adult.parquet", label="income", protected=["sex"])
    assert b.kind == "tabular" and b.classes == a.classes == ["<=50K", ">50K"]
    assert b.schema.names == a.schema.names
    np.testing.assert_allclose(b.train.x, a.train.x, atol=1e-6)
    assert np.array_equal(b.test.index, a.test.index) and np.array_equal(b.test.y, a.test.y)
    assert b.source["sha256"] and b.source["sha256"] != a.source["sha256"]


def test_parquet_held_out_split_and_bad_files(tmp_path):
    adult_frame().to_parquet(tmp_path / "adult.parquet")
    ds = load_dataset(tmp_path / "adult.parquet", label="income", test_fraction=0.25)
    assert len(ds.test) == pytest.approx(60, abs=1) and ds.source["held_out"]["stratified"]
    (tmp_path / "text.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="cannot read .* as Parquet"):
        load_dataset(tmp_path / "text.parquet")
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "blob": [b"\x89PNG"] * 4}).to_parquet(tmp_path / "blob.parquet")
    with pytest.raises(UserError, match="nested or binary"):
        load_dataset(tmp_path / "blob.parquet")


# ------------------------------------------------------------------- Hugging Face save_to_disk


def png(a: np.ndarray) -> dict:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def save_images(path, *, n_train=60, n_test=20, rgb=False, test_name="test"):
    xtr, ytr, xte, yte, classes = fashion_mnist_uint8()
    conv = (lambda a: np.repeat(a[:, :, None], 3, axis=2)) if rgb else (lambda a: a)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    part = lambda x, y: datasets.Dataset.from_dict({"image": [png(conv(a)) for a in x], "label": y.tolist()}, features=feats)  # noqa: E731
    splits = {"train": part(xtr[:n_train], ytr[:n_train])}
    if n_test:
        splits[test_name] = part(xte[:n_test], yte[:n_test])
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return xtr[:n_train], ytr[:n_train], xte[:n_test], yte[:n_test], classes


def test_hf_image_dataset_dict_pixels_labels_classes(tmp_path):
    xtr, ytr, xte, yte, classes = save_images(tmp_path / "hf", rgb=True, test_name="validation")
    ds = load_dataset(tmp_path / "hf")
    assert ds.kind == "image" and ds.input_shape == (3, 28, 28) and ds.classes == classes
    assert np.array_equal(ds.train.y, ytr) and np.array_equal(ds.test.y, yte) and np.array_equal(ds.test.index, np.arange(20))
    np.testing.assert_allclose(ds.test.x[[3, 1]], np.repeat(xte[[3, 1], None], 3, axis=1) / 255, atol=1e-7)
    assert ds.source["held_out"] == {"splits": ["train", "validation"]}
    worker = pickle.loads(pickle.dumps(ds.train.x))  # a worker opens the folder again, nothing copied
    assert np.array_equal(worker[:4], ds.train.x[:4]) and len(pickle.dumps(ds.train.x)) < 5000
    small = load_dataset(tmp_path / "hf", image_size=16)
    assert small.input_shape == (3, 16, 16)
    assert fingerprint(load_dataset(tmp_path / "hf").train.x) == fingerprint(ds.train.x) not in (fingerprint(small.train.x), fingerprint(ds.test.x))


def test_hf_single_dataset_gets_a_seeded_stratified_holdout(tmp_path):
    xtr, ytr, *_ = save_images(tmp_path / "dd", n_test=0)
    ds = load_dataset(tmp_path / "dd", test_fraction=0.25, seed=3)
    assert len(ds.test) == 15 and ds.source["held_out"]["stratified"]
    np.testing.assert_allclose(ds.test.x[:], xtr[ds.test.index][:, None] / 255, atol=1e-7)
    assert np.array_equal(ds.test.y, ytr[ds.test.index])
    assert np.array_equal(load_dataset(tmp_path / "dd", test_fraction=0.25, seed=3).test.index, ds.test.index)


def test_hf_table_with_class_label(tmp_path):
    df = adult_frame()
    names = sorted(df["income"].unique())
    feats = datasets.Features({c: datasets.Value("int64") if df[c].dtype.kind == "i" else datasets.Value("string") for c in df.columns if c != "income"})
    feats["income"] = datasets.ClassLabel(names=names)
    table = datasets.Dataset.from_pandas(df.assign(income=df["income"].map(names.index)), features=feats, preserve_index=False)
    datasets.DatasetDict({"train": table.select(range(200)), "test": table.select(range(200, 240))}).save_to_disk(str(tmp_path / "tab"))
    ds = load_dataset(tmp_path / "tab", exclude=["fnlwgt"])  # the ClassLabel is found without --label
    assert ds.kind == "tabular" and ds.classes == names and "fnlwgt" not in ds.schema.names
    assert np.array_equal(ds.test.index, np.arange(40)) and len(ds.train) == 200
    assert [names[i] for i in ds.test.y] == df["income"].iloc[200:].tolist()


def test_bad_hf_folders_one_line(tmp_path):
    save_images(tmp_path / "hf", n_train=10, n_test=4)
    (tmp_path / "hf" / "train" / "state.json").write_text("{ not json")
    with pytest.raises(UserError, match="save it again") as e:
        load_dataset(tmp_path / "hf")
    assert "\n" not in str(e.value)
    save_images(tmp_path / "ok", n_train=10, n_test=4)
    with pytest.raises(UserError, match="label column 'nope' not found"):
        load_dataset(tmp_path / "ok", label="nope")
    with pytest.raises(UserError, match="holds images"):
        load_dataset(tmp_path / "ok", exclude=["label"])
    nested = datasets.Dataset.from_dict({"x": [[1.0, 2.0]] * 6, "y": list(range(6))})
    nested.save_to_disk(str(tmp_path / "nested"))
    with pytest.raises(UserError, match="nested values"):
        load_dataset(tmp_path / "nested")


def test_train_and_qscore_on_a_saved_hf_dataset_and_a_npy(tmp_path):
    save_images(tmp_path / "hf", n_train=48, n_test=16)
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "hf"), "--epochs", "1", "--batch-size", "16", "--out", str(run_dir), "--quiet"]) == 0
    run = load(run_dir)
    assert run.config["data"]["spec"] == str((tmp_path / "hf").resolve()) and run.dataset.classes[0] == "T-shirt-top"
    assert run.store.read_json("metrics.json")["linear_probe_accuracy"] is not None
    assert main(["qscore", str(run_dir), "--quiet"]) == 0
    xtr, *_ = fashion_mnist_uint8()
    np.save(tmp_path / "x.npy", xtr[:40])
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "npy-run"), "--quiet"]) == 0
    assert load(tmp_path / "npy-run").dataset.input_shape == (1, 28, 28)
