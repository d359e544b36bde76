"""Shared benchmark plumbing: machine description, load, JSON results under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# The per-mode figures the KREPES benchmarks copy from a fidelity report (KrepesExplainer.fidelity_report).
FIDELITY_KEYS = (
    "network_accuracy",
    "surrogate_accuracy",
    "delta_accuracy",
    "kendall_tau",
    "kendall_tau_raw",
    "kendall_tau_ceiling",
    "linear_cka",
    "precision_at_1",
    "precision_at_1_baseline",
    "precision_at_1_kernel",
    "confidence_drop_top",
    "confidence_drop_random",
    "confidence_drop_fraction_top",
    "confidence_drop_fraction_random",
    "confidence_drop_fraction_removed",
    "class_coverage",
    "n_distinct_top1",
    "n_distinct_top1_baseline",
    "n_distinct_top1_kernel",
)


def machine() -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg_start": os.getloadavg(),
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit the benchmark ran on (with '+dirty' when the work tree had changes), or None."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "loadavg_end": os.getloadavg(), "written": time.strftime("%Y-%m-%d %H:%M:%S"), "git_commit": git_commit()}
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {p}")
    return p


def run_child(cmd: list[str]) -> dict:
    """Run a benchmark's child process and return the JSON object on its last stdout line
    (or {"error": its last stderr line}), with the wall seconds it took."""
    import subprocess

    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        out = {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    else:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t
    return out
