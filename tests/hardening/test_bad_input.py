"""Bad input found by trying it: each ends in one `error:` line (exit 2), never a traceback."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from sslaudit.cli.main import main


def one_line_error(capsys, code, needle):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle.lower() in err.lower(), err


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "$\\foo$": rng.normal(size=n), "c": rng.choice(["x", "y"], n), "one": ["k"] * n, "y": rng.choice([0, 1], n)})
    df.to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv"


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--label", "one"], "single class"),
        (["--label", "y", "--seed", "-1"], "--seed -1"),
        (["--label", "y", "--seed", str(2**40)], "--seed"),
        (["--label", "y", "--lr", "nan"], "--lr nan"),
        (["--label", "y", "--lr", "inf"], "--lr inf"),
        (["--label", "y", "--out", "/proc/x"], "/proc/x"),
        (["--label", "y", "--out", "/proc/self/x/y"], "/proc/self/x/y"),
    ],
)
def test_train_refuses_with_one_line(tmp_path, capsys, table, extra, needle):
    args = ["train", "--data", str(table), "--epochs", "1", "--quiet", *extra]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "r")]
    one_line_error(capsys, main(args), needle)


def test_a_column_named_like_mathtext_in_qscore_and_report(tmp_path, capsys, table):
    """`$\\foo$` used to crash matplotlib's mathtext in the Q-Score figures and the report."""
    run = str(tmp_path / "r")
    assert main(["train", "--data", str(table), "--label", "y", "--epochs", "1", "--out", run, "--quiet"]) == 0
    assert main(["qscore", run, "--fractions", "1", "--max-probe-train", "100", "--saliency-features", "3", "--quiet"]) == 0, capsys.readouterr().err
    assert main(["relax", run, "--tabular-groups", "--index", "test:2", "--masks", "20", "--no-sanity", "--quiet"]) == 0, capsys.readouterr().err
    assert main(["report", run]) == 0, capsys.readouterr().err


def _npz_with_header_only(path, shape, dtype="<u1"):
    """An .npz whose x.npy header claims `shape` but holds (almost) no data: a decompression bomb's header."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", buf.getvalue() + b"\0" * 1024)


def test_npz_bomb_is_refused_from_its_header(tmp_path, capsys, monkeypatch):
    _npz_with_header_only(tmp_path / "bomb.npz", (7_000_000_000,))  # 7 GB of uint8 (+ 28 GB as float32)
    import sslaudit.data.images_npz as mod

    def never(*a, **k):
        raise AssertionError("np.load was called: the archive was read before its size was checked")

    monkeypatch.setattr(mod.np, "load", never)
    code = main(["train", "--data", str(tmp_path / "bomb.npz"), "--out", str(tmp_path / "r"), "--quiet"])
    one_line_error(capsys, code, "GB in memory once decompressed")
    assert not (tmp_path / "r").exists()


def test_npz_over_the_memory_budget(tmp_path, capsys, monkeypatch):
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((20_000, 1, 28, 28), np.uint8))  # ~16 KB on disk, 15 MB + 60 MB in memory
    monkeypatch.setenv("SSLAUDIT_MAX_MEMORY", "32MB")
    one_line_error(capsys, main(["train", "--data", str(tmp_path / "zeros.npz"), "--out", str(tmp_path / "r"), "--quiet"]), "20000×1×28×28 uint8")
    monkeypatch.setenv("SSLAUDIT_MAX_MEMORY", "1GB")
    from sslaudit.data import load_dataset

    assert len(load_dataset(str(tmp_path / "zeros.npz")).train) > 0


def test_saliency_figure_of_a_10000_column_table_is_bounded():
    """The Q-Score saliency figure used to grow with the number of columns (minutes and GBs)."""
    import struct
    from types import SimpleNamespace

    from sslaudit.methods.qscore import figures

    rng = np.random.default_rng(0)
    sal = SimpleNamespace(features=np.arange(8), saliency=rng.random((8, 6, 10_000)))
    names = [f"$c_{{{i}}}$" for i in range(10_000)]
    png = figures.table_saliency_figure(sal, names)
    width, height = struct.unpack(">II", png[16:24])
    assert width * height < 4_000_000, (width, height)
    small = figures.table_saliency_figure(SimpleNamespace(features=np.arange(2), saliency=rng.random((2, 6, 3))), ["a", "b", "c"])
    assert small[:4] == b"\x89PNG"
