"""What `Krepes.explain` returns, and its tables keyed by `Split.index` values (never positions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .kernel_model import KernelModel


@dataclass
class KrepesResult:
    landmarks: np.ndarray  # m positions into the training inputs
    top: np.ndarray  # T×K positions into the landmark list, by IS descending
    top_scores: np.ndarray  # T×K influence scores IS
    top_signs: np.ndarray  # T×K +1 attractive, −1 repulsive
    landmark_norms: np.ndarray  # m: ‖ΔÃ_l‖ (step) or ‖Ã_l‖ (fit)
    embeddings: np.ndarray  # T×r centred surrogate representations of the test points
    kernel_rows: np.ndarray  # T×m kernel values against the landmarks
    mode: str
    n_distinct_top1: int
    model: KernelModel

    @property
    def top_train_positions(self) -> np.ndarray:
        """T×K positions into the training inputs of each test point's representer landmarks."""
        return self.landmarks[self.top]

    def landmark_table(self, test_index, train_index, split="test") -> pd.DataFrame:
        """(split, index, rank, train_index, score, sign): one row per explained point and rank;
        train_index is the landmark."""
        t, k = self.top.shape
        return pd.DataFrame(
            {
                "split": np.repeat(np.broadcast_to(np.asarray(split, dtype=object), (t,)), k).astype(str),
                "index": np.repeat(np.asarray(test_index, dtype=np.int64), k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), t),
                "train_index": np.asarray(train_index, dtype=np.int64)[self.top_train_positions].reshape(-1),
                "score": self.top_scores.reshape(-1).astype(np.float64),
                "sign": self.top_signs.reshape(-1).astype(np.int64),
            }
        )

    def norm_table(self, train_index) -> pd.DataFrame:
        """(split, index, norm, rank): the landmarks (training samples) ranked by ‖ΔÃ_l‖ (1 = largest)."""
        order = np.argsort(-self.landmark_norms, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        return pd.DataFrame({"split": "train", "index": np.asarray(train_index, dtype=np.int64)[self.landmarks], "norm": self.landmark_norms.astype(np.float64), "rank": rank})
