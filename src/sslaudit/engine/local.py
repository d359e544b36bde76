"""The in-process engine: runs blocks one after another with a progress bar."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from ..progress import progress
from .base import Engine


class LocalEngine(Engine):
    name = "local"

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: dict | None = None, desc: str | None = None) -> Iterator[Any]:
        shared = shared or {}
        for item in progress(items, desc=desc, total=len(items)):
            yield fn(item, **shared)
