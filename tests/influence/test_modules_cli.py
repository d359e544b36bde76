"""`sslaudit influence` with --modules / --module-partitions / --covariance-dtype, and --max-memory as the plan's budget."""

import json
import shutil

import pytest

from sslaudit.cli.main import main


def test_cli_module_options_parse_and_are_recorded(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = [
        "influence",
        str(run),
        "--modules",
        "trunk.net.2",
        "--module-partitions",
        "2",
        "--covariance-dtype",
        "float64",
        "--max-memory",
        "4GB",
        "--subsample",
        "40",
        "--check",
        "0",
        "--draws",
        "1",
        "--neighbours",
        "0",
        "-q",
    ]
    assert main(args) == 0
    summary = json.loads((run / "influence" / "summary.json").read_text())
    assert [layer["name"] for layer in summary["layers"]] == ["trunk.net.2"] and summary["modules"] == "trunk.net.2"
    plan = summary["memory_plan"]
    assert plan["modules"] == ["trunk.net.2"] and plan["budget"] == 4 << 30 and plan["budget_from"] == "max_memory"
    cfg = json.loads((run / "influence" / "config.json").read_text())["config"]["influence"]
    assert (cfg["modules"], cfg["module_partitions"], cfg["covariance_dtype"]) == ("trunk.net.2", 2, "float64")


@pytest.mark.parametrize(
    "args, flags",
    [
        (["--max-memory", "2MB"], ("--max-memory", "--modules")),
        (["--modules", "trunk.nope"], ("--modules",)),
        (["--module-partitions", "0"], ("--module-partitions",)),
    ],
)
def test_cli_refuses_in_one_line_naming_the_flag(tiny_run, capsys, args, flags):
    assert main(["influence", str(tiny_run), *args, "--subsample", "40", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and all(f in err for f in flags), err
