"""Engines that execute blocks of work: `local` now, `ray` for clusters."""

from __future__ import annotations

from .base import Engine, block_ranges
from .local import LocalEngine


def get_engine(name: str = "local", address: str | None = None) -> Engine:
    from ..errors import UserError

    if name == "local":
        return LocalEngine()
    if name == "ray":
        try:
            from .ray_engine import RayEngine
        except ImportError as e:  # pragma: no cover - depends on install
            raise UserError(f"the ray engine needs the `ray` package ({e}); install it with pip install 'ray[default]'") from None
        return RayEngine(address=address)
    raise UserError(f"unknown engine {name!r}: use 'local' or 'ray'")


__all__ = ["Engine", "LocalEngine", "block_ranges", "get_engine"]
