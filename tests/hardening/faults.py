"""Fault injection helpers: run a command, SIGKILL it when its run manifest shows progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ENV = {**os.environ, "SSLAUDIT_QUIET": "1", "OMP_NUM_THREADS": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sslaudit.cli.main", *args]


def manifest(run: Path) -> dict:
    try:
        return json.loads((run / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"stages": {}, "artefacts": {}}


def kill_when(cmd: list[str], run: Path, ready: Callable[[dict], bool], timeout: float = 300, env: dict | None = None) -> bool:
    """Start cmd; SIGKILL it as soon as ready(manifest) holds. True if it was killed mid-way."""
    proc = subprocess.Popen(cmd, env={**ENV, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready(manifest(run)):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def run_ok(cmd: list[str], env: dict | None = None) -> str:
    """Run cmd to completion (asserting success); returns its stderr."""
    r = subprocess.run(cmd, env={**ENV, **(env or {})}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stderr


def stage_times(run: Path, prefix: str) -> dict:
    return {k: v["finished"] for k, v in manifest(run)["stages"].items() if k.startswith(prefix)}


def artefact_times(run: Path, prefix: str) -> dict:
    return {k: v["written"] for k, v in manifest(run)["artefacts"].items() if k.startswith(prefix)}


def artefact_hashes(run: Path, prefix: str) -> dict:
    return {k: v["sha256"] for k, v in manifest(run)["artefacts"].items() if k.startswith(prefix)}
