"""ℓ_aug as a `kronfluence` Task, and a small wrapper around the library's Analyzer.

The library's contract, as used here (kronfluence 1.0.1):
- the factors are fitted on the summed per-example loss Σ ℓ_aug with `use_empirical_fisher=True`
  (there are no pseudo-targets to sample for an augmentation-stability loss);
- the encoder is called once per augmented view, so `has_shared_parameters=True` (concatenating
  the views into one call would be taken as separate samples);
- the measurement is ℓ_aug itself.
Two defects of 1.0.1 with `has_shared_parameters=True` are worked around: its pairwise tracker
keeps only the last call's contribution unless per-sample gradients are post-processed
(`enable_post_process_per_sample_gradient=True` with the identity routes it through the
accumulating path), and its self-influence-with-measurement tracker drops the preconditioned
gradient after the first call (an error for 2K calls). Because the measurement equals the loss,
self-influence with measurement is g·P·g, exactly what the plain self-influence computes, so the
plain `compute_self_scores` is used.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from .loss import AugmentationStability

FACTORS = "factors"


def _make_task_class():
    from kronfluence.task import Task

    class AugmentationStabilityTask(Task):
        """Σ_i ℓ_aug(x_i) as both the training loss and the measurement."""

        enable_post_process_per_sample_gradient = True  # see the module docstring

        def __init__(self, loss: AugmentationStability, modules=None):
            self.loss = loss
            self.modules = modules

        def get_influence_tracked_modules(self):
            return self.modules  # None: every Linear / Conv2d

        def compute_train_loss(self, batch, model: nn.Module, sample: bool = False) -> torch.Tensor:
            if sample:
                raise ValueError("ℓ_aug has no targets to sample: fit factors with use_empirical_fisher=True")
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            return self.loss(model, x).sum()

        def compute_measurement(self, batch, model: nn.Module) -> torch.Tensor:
            return self.compute_train_loss(batch, model)

        def post_process_per_sample_gradient(self, module_name: str, gradient: torch.Tensor) -> torch.Tensor:
            return gradient

    return AugmentationStabilityTask


def make_task(loss: AugmentationStability, modules=None):
    """The kronfluence Task for ℓ_aug on `modules` (names; None = all), imported only when called."""
    return _make_task_class()(loss, modules)


class KronfluenceAnalysis:
    """kronfluence's Analyzer on a copy of `encoder`, with its files in a temporary folder."""

    def __init__(
        self,
        encoder: nn.Module,
        loss: AugmentationStability,
        strategy: str,
        *,
        batch_size: int = 128,
        device: str = "cpu",
        quiet: bool = True,
        modules: list[str] | None = None,
        module_partitions: int = 1,
        covariance_dtype: str = "float32",
    ):
        from kronfluence import Analyzer, prepare_model

        self.task = make_task(loss, modules)
        self.strategy = strategy
        self.module_partitions = int(module_partitions)
        self.dtype = torch.float64 if covariance_dtype == "float64" else torch.float32
        self.batch_size = int(batch_size)
        self._tmp = tempfile.TemporaryDirectory(prefix="sslaudit-kronfluence-")
        model = prepare_model(copy.deepcopy(encoder).eval(), self.task)
        self.analyzer = Analyzer(
            "sslaudit",
            model,
            self.task,
            cpu=str(device) == "cpu",
            output_dir=self._tmp.name,
            disable_tqdm=quiet,
            log_level=logging.WARNING,
        )
        self._fitted = False

    def factor_args(self):
        from kronfluence import FactorArguments

        return FactorArguments(
            strategy=self.strategy,
            use_empirical_fisher=True,
            has_shared_parameters=True,
            covariance_max_examples=None,
            lambda_max_examples=None,
            covariance_module_partitions=self.module_partitions,
            lambda_module_partitions=self.module_partitions,
            activation_covariance_dtype=self.dtype,
            gradient_covariance_dtype=self.dtype,
            per_sample_gradient_dtype=self.dtype,
            lambda_dtype=self.dtype,
        )

    def score_args(self, damping: float | None):
        from kronfluence import ScoreArguments

        return ScoreArguments(damping_factor=damping, module_partitions=self.module_partitions, per_sample_gradient_dtype=self.dtype)

    def fit(self, x) -> "KronfluenceAnalysis":
        """Covariances, eigendecomposition and (EK-FAC) corrected eigenvalues on the rows of x."""
        with warnings.catch_warnings():  # kronfluence 1.0 builds torch.cuda.amp.GradScaler, which torch 2.4+ deprecates (a FutureWarning on every CLI run)
            warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)
            self.analyzer.fit_all_factors(FACTORS, rows_dataset(x), per_device_batch_size=self.batch_size, factor_args=self.factor_args(), overwrite_output_dir=True)
        self._fitted = True
        return self

    def factors(self) -> dict[str, dict[str, torch.Tensor]]:
        """{module name: {activation/gradient eigenvectors and eigenvalues, lambda matrix, count}}."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        for group in (self.analyzer.load_eigendecomposition(FACTORS), self.analyzer.load_lambda_matrices(FACTORS)):
            for kind, per_module in (group or {}).items():
                for name, t in per_module.items():
                    out.setdefault(name, {})[kind] = t
        return out

    def self_scores(self, x: torch.Tensor, damping: float | None) -> torch.Tensor:
        self.analyzer.compute_self_scores("self", FACTORS, rows_dataset(x), per_device_train_batch_size=self.batch_size, score_args=self.score_args(damping), overwrite_output_dir=True)
        return self.analyzer.load_self_scores("self")["all_modules"].double()

    def pairwise_scores(self, xq: torch.Tensor, xt: torch.Tensor, damping: float | None) -> torch.Tensor:
        """(queries × train) scores g_qᵀ P g_t computed by the library."""
        self.analyzer.compute_pairwise_scores(
            "pairwise",
            FACTORS,
            rows_dataset(xq),
            rows_dataset(xt),
            per_device_query_batch_size=self.batch_size,
            per_device_train_batch_size=self.batch_size,
            score_args=self.score_args(damping),
            overwrite_output_dir=True,
        )
        return self.analyzer.load_pairwise_scores("pairwise")["all_modules"].double()

    @property
    def output_dir(self) -> Path:
        return Path(self._tmp.name)

    def close(self) -> None:
        self._tmp.cleanup()


class _RowsDataset(Dataset):
    """Rows that decode on demand (an image folder) as a Dataset of 1-tuples, read item by item."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return (torch.as_tensor(np.asarray(self.rows[int(i)], dtype=np.float32)),)


def rows_dataset(x) -> Dataset:
    """kronfluence's input: a TensorDataset of arrays in memory; lazy rows stay lazy."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return TensorDataset(torch.as_tensor(x))
    return _RowsDataset(x)
