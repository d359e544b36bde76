"""Property-based fuzzing: every bad CSV, npz or command line ends in a clear error, never a
traceback or a hang."""

import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sslaudit.data import load_dataset
from sslaudit.errors import UserError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

cell = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "?", "nan", "inf", "a", "b", "<b>x</b>", '"q,uoted"', "ü", "1e309"]),
    st.text(alphabet=string.printable, max_size=6),
)


@st.composite
def csv_text(draw):
    ncol = draw(st.integers(0, 5))
    nrow = draw(st.integers(0, 12))
    header = [draw(st.text(alphabet=string.ascii_letters + "<>&\"' ,", min_size=0, max_size=6)) for _ in range(ncol)]
    rows = [[draw(cell) for _ in range(ncol + draw(st.integers(-1, 1)))] for _ in range(nrow)]
    return "\n".join([",".join(header)] + [",".join(r) for r in rows]) + draw(st.sampled_from(["", "\n", "\n\n"]))


@FUZZ
@given(text=csv_text(), label=st.sampled_from([None, "a", "x"]))
def test_csv_loader_never_crashes(tmp_path, text, label):
    p = tmp_path / "f.csv"
    p.write_text(text)
    try:
        ds = load_dataset(str(p), label=label)
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert len(ds.train) > 0 and len(ds.test) > 0
    assert np.isfinite(ds.train.x).all() and ds.train.x.dtype == np.float32


@FUZZ
@given(data=st.binary(max_size=64))
def test_garbage_bytes_as_csv_or_npz(tmp_path, data):
    for name in ("g.csv", "g.npz"):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(UserError):
            load_dataset(str(p))


shapes = st.lists(st.integers(0, 6), min_size=0, max_size=5).map(tuple)
dtypes = st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_, np.complex64])


@FUZZ
@given(shape=shapes, dtype=dtypes, fill=st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan, -1.0]), with_y=st.booleans(), key=st.sampled_from(["x", "X", "images"]))
def test_npz_loader_never_crashes(tmp_path, shape, dtype, fill, with_y, key):
    arr = np.full(shape, fill if np.dtype(dtype).kind in "fc" else max(int(np.nan_to_num(fill)), 0)).astype(dtype)
    payload = {key: arr}
    if with_y and shape:
        payload["y"] = np.zeros(shape[0], dtype=np.int64)
    p = tmp_path / "f.npz"
    np.savez(p, **payload)
    try:
        ds = load_dataset(str(p))
    except UserError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert ds.train.x.ndim == 4 and float(ds.train.x.min()) >= 0 and float(ds.train.x.max()) <= 1


def test_npz_with_object_array_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UserError):
        load_dataset(str(p))


VOCAB = [
    "train",
    "info",
    "krepes",
    "relax",
    "qscore",
    "influence",
    "report",
    "audit",
    "--data",
    "--out",
    "--epochs",
    "--batch-size",
    "--seed",
    "--device",
    "--index",
    "--masks",
    "--landmarks",
    "--top-k",
    "--objective",
    "digits",
    "adult",
    "nosuch",
    "test:3",
    "train:-1",
    "test:x",
    "-5",
    "0",
    "1",
    "3.5",
    "nan",
    "cpu",
    "cuda",
    "simclr",
    "auto",
    "/nonexistent",
    "{tmp}",
    "--force",
    "--quiet",
    "--help-me",
]


@FUZZ
@given(tokens=st.lists(st.sampled_from(VOCAB), max_size=8))
def test_cli_arguments_never_traceback(tmp_path, monkeypatch, capsys, tokens):
    """Random command lines end in exit 0 or a clear error; training is replaced by a sentinel."""
    import sslaudit.run as run_mod
    from sslaudit.cli.main import main

    class WouldTrain(Exception):
        pass

    def no_train(*a, **k):
        raise WouldTrain

    monkeypatch.setattr(run_mod, "train_run", no_train)
    args = [t.replace("{tmp}", str(tmp_path)) for t in tokens]
    try:
        code = main(args)
    except WouldTrain:
        return
    except SystemExit as e:  # click's own --help/usage exits are fine
        code = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert code in (0, 1, 2), (args, code, out.err)
