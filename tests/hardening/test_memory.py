"""With --max-memory, KREPES's peak RSS stays under the bound on Adult-1M (1,000,000 training rows)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from .faults import ENV, cli, run_ok


def adult_dir():
    """The folder with the full UCI Adult files via $SSLAUDIT_DATA, else skip."""
    for part in filter(None, os.environ.get("SSLAUDIT_DATA", "").split(os.pathsep)):
        for d in (Path(part), Path(part) / "adult"):
            if (d / "adult.data").is_file() and (d / "adult.test").is_file():
                return d
    pytest.skip("full adult data absent: set SSLAUDIT_DATA to a directory holding adult.data and adult.test (e.g. ../shared/data)")


def peak_rss_of(cmd: list[str], env: dict) -> tuple[int, float]:
    """Run cmd; (exit code, its peak resident set size in GB) from wait4's rusage of that child alone."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    return proc.returncode, usage.ru_maxrss / 2**20  # Linux: KB


@pytest.mark.slow
def test_krepes_on_adult_1m_stays_under_max_memory(tmp_path):
    data = adult_dir()
    env = {**ENV, "SSLAUDIT_DATA": str(data)}
    torch.manual_seed(0)
    from sslaudit.models.encoders import Encoder, MLPTrunk

    torch.save(Encoder(MLPTrunk(108, [256, 256])).state_dict(), tmp_path / "weights.pt")
    run = tmp_path / "run"
    # a state dict of sslaudit's MLP: imported as plain weights (the architecture is recognised), no --trust-code
    run_ok(cli("import", "--data", "adult-1m", "--encoder", str(tmp_path / "weights.pt"), "--out", str(run)), env=env)
    bound_gb = 3.0
    code, peak = peak_rss_of(
        cli(
            "krepes",
            str(run),
            "--max-memory",
            f"{bound_gb:g}GB",
            "--landmarks",
            "400",
            "--step-sample",
            "4096",
            "--test-points",
            "500",
            "--lambda",
            "100",
            "--cg-max-iter",
            "5",
            "--probe-sample",
            "8192",
        ),
        env,
    )
    assert code == 0
    plan = json.loads((run / "krepes" / "explainer.json").read_text())["summary"]["memory_plan"]
    assert plan["max_memory"] == int(bound_gb * 2**30)
    assert peak < bound_gb, f"peak RSS {peak:.2f} GB over --max-memory {bound_gb} GB (plan: {plan})"
    stored = [p for p in (run / "krepes" / "cache").rglob("part-*.f32")]
    assert sum(p.stat().st_size for p in stored) >= 4 * 1_000_000 * 400, "K(train, landmarks) should live on disk, not in memory"
