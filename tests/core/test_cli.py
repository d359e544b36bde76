"""The command line: help everywhere, one-line errors for bad input, no tracebacks."""

import os
import subprocess
import sys

import numpy as np
import pytest

ENV = {**os.environ, "SSLAUDIT_QUIET": "1", "OMP_NUM_THREADS": "1"}


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "sslaudit.cli.main", *args], capture_output=True, text=True, env=ENV, timeout=300, **kw)


def assert_clean_error(r, needle):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert lines and needle.lower() in r.stderr.lower(), r.stderr
    assert lines[-1].startswith(("error:", "Error:")), r.stderr


def test_help_on_every_verb():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout
    verbs = [l.split()[0] for l in r.stdout.split("Commands:")[1].strip().splitlines() if l.strip() and not l.startswith("    ")]
    for verb in verbs:
        h = run(verb, "--help")
        assert h.returncode == 0 and "Usage" in h.stdout, (verb, h.stderr)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--data", "nosuchdata", "--out", "{tmp}/r"], "unknown"),
        (["train", "--data", "{tmp}/missing.csv", "--out", "{tmp}/r"], "missing.csv"),
        (["train", "--data", "digits", "--batch-size", "1", "--out", "{tmp}/r"], "batch-size"),
        (["train", "--data", "digits", "--batch-size", "100000", "--out", "{tmp}/r"], "larger than"),
        (["train", "--data", "{tmp}/t.csv", "--label", "nolabel", "--out", "{tmp}/r"], "nolabel"),
        (["train", "--data", "{tmp}/bad.npz", "--out", "{tmp}/r"], "npz"),
        (["train", "--data", "{tmp}/nan.npz", "--out", "{tmp}/r"], "nan"),
        (["info", "{tmp}/nothing"], "no run"),
        (["train", "--data", "digits", "--device", "cuda:7", "--out", "{tmp}/r"], "cuda"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, args, needle):
    """In-process through main() (the same code path as the console script, without start-up cost)."""
    from sslaudit.cli.main import main

    (tmp_path / "t.csv").write_text("a,b,c\n" + "\n".join(f"{i},{i % 3},x{i % 2}" for i in range(20)) + "\n")
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 2, 3, 4, 5), dtype=np.uint8))
    np.savez(tmp_path / "nan.npz", x=np.full((10, 8, 8), np.nan, dtype=np.float32))
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error:") and err.count("\n") == 1 and needle.lower() in err.lower(), err


def test_console_script_prints_no_traceback(tmp_path):
    r = run("train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r"))
    assert_clean_error(r, "missing.csv")


def test_refuses_to_overwrite_a_different_run(tmp_path, capsys):
    from sslaudit.cli.main import main

    out = str(tmp_path / "r")
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", out]) == 0
    assert main(["train", "--data", "digits", "--epochs", "2", "--out", out]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", out]) == 0
