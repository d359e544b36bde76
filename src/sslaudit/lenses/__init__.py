"""The registry of lenses: one line per lens (name → "module:Class").

The CLI makes a command of every registered lens, the audit runs each one that applies, and the
report shows each one's section. Add a lens by writing one module with a `Lens` subclass and one
line here (or, from outside the package, `register(name, "module:Class")` or an entry point in
the `sslaudit.lenses` group).
"""

from __future__ import annotations

import importlib

from .base import Lens, LensResult
from .context import Context
from .runner import load_result, run_lens

REGISTRY: dict[str, str] = {  # in report order (the audit runs Q-Score first: it picks the focus samples)
    "krepes": "sslaudit.lenses.krepes:KrepesLens",
    "influence": "sslaudit.lenses.influence:InfluenceLens",
    "relax": "sslaudit.lenses.relax:RelaxLens",
    "qscore": "sslaudit.lenses.qscore:QScoreLens",
    "simvae": "sslaudit.lenses.simvae:SimVAELens",
}
_LOADED: dict[str, Lens] = {}
_ENTRY_POINTS_READ = False


def register(name: str, target: str | type) -> None:
    """Add a lens: `target` is "module:Class" or the class itself."""
    REGISTRY[name] = target
    _LOADED.pop(name, None)


def _entry_points() -> None:
    global _ENTRY_POINTS_READ
    if _ENTRY_POINTS_READ:
        return
    _ENTRY_POINTS_READ = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="sslaudit.lenses"):
        REGISTRY.setdefault(ep.name, ep.value)


def names() -> list[str]:
    """Registered lens names, in report order."""
    _entry_points()
    return list(REGISTRY)


def get(name: str) -> Lens:
    """The lens object registered as `name`."""
    from ..errors import UserError

    _entry_points()
    if name not in REGISTRY:
        raise UserError(f"unknown lens {name!r}: choose from {', '.join(REGISTRY)}")
    if name not in _LOADED:
        target = REGISTRY[name]
        if isinstance(target, str):
            mod, attr = target.split(":")
            target = getattr(importlib.import_module(mod), attr)
        lens = target()
        if lens.name != name:
            raise TypeError(f"lens class {target.__name__} is named {lens.name!r} but registered as {name!r}")
        _LOADED[name] = lens
    return _LOADED[name]


__all__ = ["Context", "Lens", "LensResult", "REGISTRY", "get", "load_result", "names", "register", "run_lens"]
