"""A sixth lens written against the contract alone (docs/architecture.md, "How to add a lens"):
this one module plus one registry line make it a CLI command, an audit stage and a report section."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sslaudit.lenses import Lens, LensResult
from sslaudit.lenses.config import opt
from sslaudit.parsing import number


@dataclass
class NormsConfig:
    top: int = opt(5, "Training samples with the largest embedding norm kept in norms.parquet.", parse=number(int, "--top", "5", minimum=1))
    power: float = opt(2.0, "Order of the norm.", parse=number(float, "--power", "2", positive=True))
    seed: int = 0


class NormsLens(Lens):
    """Embedding norms: which training samples the encoder maps farthest from the origin."""

    name = "norms"
    title = "Embedding norms (a toy lens)"
    Config = NormsConfig

    def compute(self, run, cfg, ctx) -> LensResult:
        h = run.embeddings("train")
        norm = np.linalg.norm(h, ord=cfg.power, axis=1)
        order = np.argsort(-norm, kind="stable")[: cfg.top]
        table = pd.DataFrame({"split": "train", "index": run.dataset.train.index[order].astype(np.int64), "norm": norm[order]})
        return LensResult(tables={"norms": table}, documents={"summary": {"mean_norm": float(norm.mean()), "power": cfg.power}})

    def describe(self, result, run):
        return [f"largest norm: train:{int(result.tables['norms']['index'].iloc[0])}"]
