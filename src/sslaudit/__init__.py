"""sslaudit: audit self-supervised encoders — what they learned, from which data, and whether to trust it.

import sslaudit
run = sslaudit.load("runs/digits")       # a trained run: .encoder, .dataset, .preprocess
ds = sslaudit.load_dataset("adult")       # real datasets, with split/index bookkeeping
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load": "sslaudit.run:load",
    "Run": "sslaudit.run:Run",
    "train_run": "sslaudit.run:train_run",
    "load_dataset": "sslaudit.data:load_dataset",
    "UserError": "sslaudit.errors:UserError",
    "RunStore": "sslaudit.store:RunStore",
    "get_engine": "sslaudit.engine:get_engine",
    "Krepes": "sslaudit.methods.krepes:Krepes",
    "QScore": "sslaudit.methods.qscore:QScore",
    "InfluenceAnalyzer": "sslaudit.methods.influence:InfluenceAnalyzer",
    "Relax": "sslaudit.methods.relax:Relax",
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sslaudit' has no attribute {name!r}")
    import importlib

    mod, attr = target.split(":")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
