"""Progress bars on long work, silenced by `--quiet` (or SSLAUDIT_QUIET=1)."""

from __future__ import annotations

import os
import sys
from typing import Iterable

_enabled = os.environ.get("SSLAUDIT_QUIET", "") not in ("1", "true", "yes")


def set_enabled(flag: bool) -> None:
    global _enabled
    _enabled = bool(flag)


def enabled() -> bool:
    return _enabled


def progress(iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None, leave: bool = False, **kw):
    from tqdm.auto import tqdm

    if not sys.stderr.isatty():  # a log file: an update every 30 s, not a frame per tenth of a second
        kw.setdefault("mininterval", 30.0)
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=not _enabled, file=sys.stderr, dynamic_ncols=True, **kw)


def info(msg: str) -> None:
    """A status line on stderr (suppressed by --quiet)."""
    if _enabled:
        print(msg, file=sys.stderr, flush=True)


class SslauditWarning(UserWarning):
    """A result to read with care (a collapsed representation, an unconverged estimate, a fallback)."""


def warn(msg: str) -> None:
    """A library warning (warnings.warn): Python code can filter or catch it; the CLI prints it as
    one 'warning: …' line."""
    import warnings

    warnings.warn(msg, SslauditWarning, stacklevel=2)
