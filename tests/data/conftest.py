"""Shared helpers for the data tests: fixture paths, full-data discovery, environment isolation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def full_data_dir(name: str, files: list[str]) -> Path:
    """The directory holding the full files of `name` via $SSLAUDIT_DATA, else skip the test."""
    env = os.environ.get("SSLAUDIT_DATA", "")
    for part in env.split(os.pathsep):
        if not part:
            continue
        for d in (Path(part), Path(part) / name):
            if all((d / f).is_file() for f in files):
                return d
    pytest.skip(f"full {name} data absent: set SSLAUDIT_DATA to a directory holding {', '.join(files)} (e.g. ../shared/data)")


@pytest.fixture
def isolated(monkeypatch):
    """No $SSLAUDIT_DATA and no system data directories: only what a test passes is found."""
    from sslaudit.data import locate

    monkeypatch.delenv("SSLAUDIT_DATA", raising=False)
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {})
    return monkeypatch
