"""Block execution: the one interface every lens uses to run work block by block.

A job is a top-level function `fn(item, **shared)` mapped over a sequence of items (block
descriptors: index ranges, sample ids). `shared` holds the large read-only inputs (model weights,
data) that an engine ships once, not once per item. Results come back in item order, so
reductions are deterministic whatever the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence


class Engine(ABC):
    name: str = "base"

    @abstractmethod
    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: dict | None = None, desc: str | None = None) -> Iterator[Any]:
        """Yield fn(item, **shared) for every item, in item order."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def block_ranges(n: int, block: int) -> list[tuple[int, int]]:
    """[start, stop) ranges that cover 0..n in blocks of at most `block`."""
    if block < 1:
        raise ValueError("block size must be ≥ 1")
    return [(s, min(s + block, n)) for s in range(0, n, block)]
