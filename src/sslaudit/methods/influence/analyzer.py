"""`InfluenceAnalyzer`: label-free influence of training examples on an SSL encoder.

    ia = InfluenceAnalyzer(encoder, augment, strategy="ekfac").fit(x_train)
    s = ia.self_influence()                      # (n,) g·P·g, high = atypical / outlying
    raw, norm = ia.pairwise(x_query)             # (q, n) influence of each training row on each query
    dups = ia.duplicates(k=100)                  # DataFrame i < j, score (normalised influence)

Per-sample loss: ℓ_aug (see `loss.py`); curvature: EK-FAC / K-FAC fitted by kronfluence on the
training rows, or `identity` (gradient dot products). An encoder without Linear/Conv2d layers
falls back to `identity` over all its parameters, and says so.

Inputs (x_train, x, x_query): arrays, tensors, map-style torch Datasets or DataLoaders with
shuffle=False (`sslaudit.data.inputs.as_rows`); a row's position is its index in the results.
The training rows are held in memory; other inputs are read block by block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...compute.memory import available_budget, format_size, in_use_bytes, parse_size
from ...data.inputs import as_rows, float32_rows
from ...errors import UserError
from ...parsing import number
from ...progress import enabled as progress_enabled
from ...progress import info, warn
from .curvature import Preconditioner, check_damping, check_strategy
from .duplicates import check_pairs, nearest_pairs
from .gradients import Layer, fallback_layers, select_layers, tracked_layers
from .loss import AugmentationStability
from .scores import PRODUCT_COLUMNS, BlockScores, float64_products, normalise, stream_scores, whitened
from .sketch import CountSketch


@dataclass
class InfluenceConfig:
    """Settings of the Influence-SSL lens (saved beside its results)."""

    strategy: str = field(default="ekfac", metadata={"choices": ("ekfac", "kfac", "identity"), "help": "Curvature: EK-FAC or K-FAC (kronfluence), or identity (plain gradient dot products)."})
    damping: float | None = field(
        default=None, metadata={"parse": number(float, "--damping", "0.1", minimum=0.0), "help": "λ added to the curvature [default: 0.1 × each layer's mean eigenvalue, kronfluence's heuristic]."}
    )
    draws: int = field(default=4, metadata={"parse": number(int, "--draws", "4", minimum=1), "help": "Augmentation pairs shared by every example in the loss ℓ_aug (common random numbers)."})
    batch_size: int = field(default=64, metadata={"parse": number(int, "--batch-size", "64", minimum=1), "help": "Examples per block of per-sample gradients (memory ∝ batch size × parameters)."})
    sketch_dim: int = field(
        default=1024, metadata={"parse": number(int, "--sketch-dim", "1024", minimum=1), "help": "Dimension of the sparse projection of the whitened gradients used for the duplicate search."}
    )
    neighbours: int = field(
        default=10, metadata={"flag": "--search-neighbours", "parse": number(int, "--search-neighbours", "10", minimum=1), "help": "Nearest neighbours per example searched for duplicate candidates."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the augmentation draws and the projection."})
    modules: str | None = field(
        default=None,
        metadata={
            "metavar": "all|last-stage|NAMES",
            "help": "Layers influence is computed for: all [default: every Linear / Conv2d], last-stage (the last block and what follows it), or comma-separated module names / prefixes (e.g. trunk.layer4).",
        },
    )
    module_partitions: int = field(
        default=1,
        metadata={
            "parse": number(int, "--module-partitions", "4", minimum=1),
            "help": "kronfluence: fit the covariances, eigenvalue corrections and scores over this many groups of modules at a time (less memory, more passes over the data).",
        },
    )
    covariance_dtype: str = field(
        default="float32", metadata={"choices": ("float32", "float64"), "help": "kronfluence: dtype of the activation / gradient covariances, eigenvalues and per-sample gradients."}
    )
    max_memory: int | str | None = field(
        default=None,
        metadata={
            "help": "Memory bound in bytes or e.g. '4GB' (from --max-memory): the batch size is lowered so a batch of per-sample gradients, activations and factors fits; refuses in one line if one example cannot."
        },
    )

    def __post_init__(self):
        self.strategy = check_strategy(self.strategy)
        self.damping = check_damping(self.damping)
        if self.covariance_dtype not in ("float32", "float64"):
            raise UserError(f"--covariance-dtype {self.covariance_dtype!r}: choose one of float32, float64")
        if self.max_memory is not None:
            self.max_memory = parse_size(self.max_memory)
        if not isinstance(self.module_partitions, (int, np.integer)) or self.module_partitions < 1:
            raise UserError(f"--module-partitions {self.module_partitions!r}: must be a whole number ≥ 1")
        for name in ("draws", "batch_size", "sketch_dim", "neighbours"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"{name}={v!r} must be a whole number ≥ 1")

    def to_json(self) -> dict:
        return asdict(self)


class InfluenceAnalyzer:
    """Self-, pairwise and duplicate influence for an encoder and its augmentations."""

    def __init__(self, encoder: nn.Module, augment, strategy: str = "ekfac", damping: float | None = None, *, device: str = "cpu", engine: str = "local", **options):
        self.config = InfluenceConfig(strategy=strategy, damping=damping, **options)
        self.device = device
        self.engine = engine
        self.encoder = encoder.to(device).eval()
        self.loss = AugmentationStability(augment, self.config.draws, self.config.seed)
        self.layers: list[Layer] = select_layers(self.encoder, tracked_layers(self.encoder), self.config.modules)
        self.strategy = self.config.strategy
        self.memory_plan: dict | None = None
        self.fallback = None
        if not self.layers:
            self.layers = fallback_layers(self.encoder)
            if not self.layers:
                raise UserError("the encoder has no parameters: there is nothing to attribute influence to")
            if self.strategy != "identity":
                self.fallback = (
                    f"the encoder has no layer that {self.strategy.upper()} supports (nn.Linear, nn.Conv2d); falling back to the identity curvature (gradient dot products over all parameters)"
                )
                warn(f"{self.fallback}")
                self.strategy = "identity"
        self.preconditioner: Preconditioner | None = None
        self.x_train: np.ndarray | None = None
        self._kron = None
        self._scores: BlockScores | None = None

    # ---- fitting --------------------------------------------------------------------------------
    @property
    def n_parameters(self) -> int:
        return sum(layer.numel for layer in self.layers)

    def kronfluence(self):
        """The library's Analyzer for this encoder (fitted on the training rows)."""
        if self._kron is None:
            from .task import KronfluenceAnalysis

            if not all(layer.kronecker for layer in self.layers):
                raise UserError("kronfluence needs nn.Linear or nn.Conv2d layers; this encoder has none")
            cfg = self.config
            parts = min(cfg.module_partitions, len(self.layers))  # kronfluence refuses more partitions than modules
            if parts < cfg.module_partitions:
                info(f"influence: --module-partitions {cfg.module_partitions} → {parts} (only {len(self.layers)} tracked modules)")
            self._kron = KronfluenceAnalysis(
                self.encoder,
                self.loss,
                self.strategy,
                batch_size=cfg.batch_size,
                device=self.device,
                quiet=not progress_enabled(),
                modules=[layer.name for layer in self.layers],
                module_partitions=parts,
                covariance_dtype=cfg.covariance_dtype,
            )
            self._kron.fit(self._require_fit())
        return self._kron

    def fit(self, x_train, factors: dict[str, np.ndarray] | None = None) -> "InfluenceAnalyzer":
        """Fit the curvature on the training inputs (or reuse `factors` from `factor_arrays()`)."""
        x_train = float32_rows(x_train, "x_train")  # an image folder stays on disk
        if len(x_train) < 2:
            raise UserError(f"influence needs at least 2 training examples, got {len(x_train)}")
        self.x_train = x_train
        self._scores = None
        self.plan_memory(x_train[:1])
        if self.strategy == "identity":
            self.preconditioner = Preconditioner("identity", self.layers)
        elif factors is not None:
            self.preconditioner = Preconditioner.from_arrays(self.strategy, self.layers, factors, self.config.damping)
        else:
            raw = self.kronfluence().factors()
            self.preconditioner = Preconditioner.from_kronfluence(self.strategy, self.layers, raw, self.config.damping)
        return self

    def plan_memory(self, x_one, held_rows: int = 0) -> dict:
        """Lower `batch_size` so a batch fits under max_memory (or 90% of the available memory), from the
        encoder's costs measured on one input; refuse in one line when even one example cannot fit.

        `held_rows` whitened gradients (the queries of `pairwise`) stay in memory for the whole pass,
        with their float64 copies one block of `PRODUCT_COLUMNS` columns at a time."""
        from ...compute.plan import encoder_cost

        cfg = self.config
        cost = encoder_cost(self.encoder, torch.as_tensor(x_one))
        p = self.n_parameters
        factors = sum(4 * (lay.shape[0] ** 2 + lay.shape[1] ** 2 + lay.numel) for lay in self.layers if lay.kronecker) * (2 if cfg.covariance_dtype == "float64" else 1)
        per_example = 3 * 4 * p + 3 * 4 * 2 * cfg.draws * cost.activation_numbers  # gradients (+ whitened, sketch input); 2K views' activations
        held = int(held_rows) * (4 * p + 8 * min(p, PRODUCT_COLUMNS))
        per_example += 8 * min(p, PRODUCT_COLUMNS) if held_rows else 0  # a batch row's float64 block beside the queries'
        budget = cfg.max_memory if cfg.max_memory is not None else available_budget()
        in_use = in_use_bytes()
        reserve = 256 << 20
        fit = (budget - in_use - reserve - 2 * factors - held) // per_example
        if fit < 1:
            label = f"--max-memory {format_size(budget)}" if cfg.max_memory is not None else f"the available memory ({format_size(budget)}, no --max-memory given)"
            queries = f", {format_size(held)} for {held_rows} whitened queries" if held_rows else ""
            raise UserError(
                f"{label} cannot hold influence on {p:,} parameters (about {format_size(in_use + reserve + 2 * factors + held + per_example)} for one "
                f"example: {format_size(per_example)} of gradients and activations, {format_size(factors)} of factors{queries}, {format_size(in_use)} in use); "
                f"use --modules last-stage, fewer --draws{', fewer queries' if held_rows else ''}, or raise --max-memory"
            )
        batch = int(min(cfg.batch_size, fit))
        if batch < cfg.batch_size:
            info(f"influence plan: --batch-size {cfg.batch_size} → {batch} so a batch fits in {format_size(budget)}")
            self.config.batch_size = batch
            if self._kron is not None:
                self._kron.batch_size = batch
        self.memory_plan = {
            "budget": int(budget),
            "budget_from": "max_memory" if cfg.max_memory is not None else "90% of available memory",
            "rss_at_plan": int(in_use),
            "bytes_per_example": int(per_example),
            "factor_bytes": int(factors),
            "held_rows": int(held_rows),
            "held_bytes": int(held),
            "batch_size": batch,
            "parameters": int(p),
            "modules": [layer.name for layer in self.layers],
        }
        return self.memory_plan

    def factor_arrays(self) -> dict[str, np.ndarray]:
        return self._require_prec().to_arrays()

    def _require_fit(self) -> np.ndarray:
        if self.x_train is None:
            raise UserError("call fit(x_train) before asking for scores")
        return self.x_train

    def _require_prec(self) -> Preconditioner:
        self._require_fit()
        return self.preconditioner

    # ---- scores ---------------------------------------------------------------------------------
    def sketcher(self) -> CountSketch:
        return CountSketch(self.n_parameters, self.config.sketch_dim, self.config.seed)

    def scores(self, x=None, queries=None, sketch: bool = True) -> BlockScores:
        """One streaming pass: self-influence, sketches and (optionally) query scores of `x` (default: train)."""
        x = self._require_fit() if x is None else float32_rows(x, "x")
        q = None if queries is None else self._held_queries(float32_rows(queries, "queries"))
        return self._stream(x, q, sketch)

    def _held_queries(self, xq) -> torch.Tensor:
        """The queries' whitened gradients, which stay in memory for a whole pass: planned for first."""
        self.plan_memory(xq[:1], held_rows=len(xq))
        return self.whiten(xq)

    def _stream(self, x, q: torch.Tensor | None, sketch: bool) -> BlockScores:
        return stream_scores(
            self.encoder,
            self.loss,
            self.layers,
            self._require_prec(),
            x,
            batch_size=self.config.batch_size,
            sketch=self.sketcher() if sketch else None,
            queries=q,
            device=self.device,
            engine=self.engine,
        )

    def train_scores(self) -> BlockScores:
        """Scores of the training rows (computed once, then reused)."""
        if self._scores is None:
            self._scores = self.scores()
        return self._scores

    def set_train_scores(self, scores: BlockScores) -> None:
        """Reuse scores computed earlier (e.g. a cached stage of a run)."""
        self._scores = scores

    def whiten(self, x) -> torch.Tensor:
        """(n, D) whitened gradients of a few inputs: w_iᵀ w_j = g_iᵀ P g_j."""
        return whitened(self.encoder, self.loss, self.layers, self._require_prec(), float32_rows(x, "x"), batch_size=self.config.batch_size, device=self.device)

    def self_influence(self, x=None) -> np.ndarray:
        """s(x) = g(x)ᵀ P g(x) for the training rows (default) or the given inputs."""
        return self.train_scores().self_influence if x is None else self.scores(x, sketch=False).self_influence

    def pairwise(self, x_query, x_train=None) -> tuple[np.ndarray, np.ndarray]:
        """(raw, normalised) influence I(query, train) = g_trainᵀ P g_query, shapes (q, n)."""
        x_query = float32_rows(x_query, "x_query")  # read once (a DataLoader), used twice
        x = self._require_fit() if x_train is None else float32_rows(x_train, "x_train")
        wq = self._held_queries(x_query)
        sq = float64_products(wq, None).numpy()
        res = self._stream(x, wq, sketch=False)
        raw = res.pairwise.T
        return raw, normalise(raw, sq, res.self_influence)

    def pair_scores(self, i: np.ndarray, j: np.ndarray, x=None) -> tuple[np.ndarray, np.ndarray]:
        """Exact (raw, normalised) influence of the row pairs (i[k], j[k]) of `x` (default: train)."""
        x = self._require_fit() if x is None else as_rows(x, "x")
        rows = np.unique(np.concatenate([i, j]))
        if rows.size == 0:
            return np.zeros(0), np.zeros(0)
        w = self.whiten(x[rows])  # float32 rows; products in float64, a chunk of pairs at a time
        pos = {int(r): k for k, r in enumerate(rows)}
        pi = torch.as_tensor([pos[int(r)] for r in i])
        pj = torch.as_tensor([pos[int(r)] for r in j])
        sq = float64_products(w, None)
        step = max(1, int((64 << 20) // (16 * max(w.shape[1], 1))))  # ≈ 64 MB of float64 rows per chunk
        raw = torch.cat([(w[pi[a : a + step]].double() * w[pj[a : a + step]].double()).sum(1) for a in range(0, len(pi), step)])
        den = (sq[pi] * sq[pj]).sqrt()
        norm = torch.where(den > 0, raw / den.clamp(min=1e-300), torch.zeros_like(raw))
        return raw.numpy(), norm.numpy()

    def duplicates(self, k: int = 100, candidates: int | None = None) -> pd.DataFrame:
        """The k most mutually influential training pairs (row positions i < j), exactly rescored.

        Candidates come from a faiss search over sketched whitened gradients (`neighbours` per
        example, the best `candidates` pairs, default 4k); each is rescored exactly. Columns: i, j,
        score (normalised influence), score_raw, score_sketch.
        """
        k = check_pairs(k)
        sk = self.train_scores().sketch
        cand = nearest_pairs(sk, self.config.neighbours).head(candidates or 4 * k)
        cand = self._rescorable(cand)
        raw, norm = self.pair_scores(cand["i"].to_numpy(), cand["j"].to_numpy())
        out = pd.DataFrame({"i": cand["i"].to_numpy(), "j": cand["j"].to_numpy(), "score": norm, "score_raw": raw, "score_sketch": cand["score"].to_numpy()})
        out = out.sort_values(["score", "i", "j"], ascending=[False, True, True], kind="mergesort").head(k)
        return out.reset_index(drop=True)

    def _rescorable(self, cand: pd.DataFrame) -> pd.DataFrame:
        """The best candidate pairs (by sketch score) whose rows' whitened gradients fit the memory
        budget together (a row holds `n_parameters` float32 numbers: 45 MB for a ResNet-18), so the
        exact rescoring cannot exhaust memory; a shortfall is said in a warning."""
        budget = self.config.max_memory if self.config.max_memory is not None else available_budget()
        p = max(self.n_parameters, 1)
        free = budget - in_use_bytes() - (256 << 20) - self.config.batch_size * 3 * 4 * p  # a batch's gradients while it is whitened
        cap = max(2, int(free // (4 * p)))  # the whitened rows, filled into one array (scores.whitened)
        seen: set[int] = set()
        keep = 0
        for i, j in zip(cand["i"].to_numpy(), cand["j"].to_numpy()):
            new = {int(i), int(j)} - seen
            if len(seen) + len(new) > cap:
                break
            seen |= new
            keep += 1
        if keep < len(cand):
            warn(
                f"duplicates: {keep} of {len(cand)} candidate pairs rescored exactly — the whitened gradients of more than {cap} examples "
                f"({self.n_parameters:,} numbers each) would not fit in {format_size(budget)}; use fewer --pairs, fewer --modules, or raise --max-memory"
            )
        return cand.head(keep)

    def check_duplicates(self, sample: int = 200, top: int = 20) -> dict:
        """Compare sketched normalised influence with exact pairwise scores on a seeded sample.

        The exact scores come from kronfluence's `compute_pairwise_scores` when it applies (else
        from the whitened gradients). Returns Spearman correlation over all sampled pairs, the
        largest absolute error, and the overlap of the top pairs found by each.
        """
        from scipy.stats import spearmanr

        from ...seeding import numpy_rng

        x = self._require_fit()
        m = min(int(sample), len(x))
        rows = np.sort(numpy_rng(self.config.seed, "influence", "check").choice(len(x), m, replace=False))
        if all(layer.kronecker for layer in self.layers):
            kron = self.kronfluence()
            xs = torch.as_tensor(x[rows])
            exact = kron.pairwise_scores(xs, xs, self.config.damping).numpy()
            s = np.diag(exact).copy()
            source = "kronfluence.compute_pairwise_scores"
        else:
            w = self.whiten(x[rows])
            exact = float64_products(w, w).numpy()
            s = np.diag(exact).copy()
            source = "whitened gradients (no kronfluence layers)"
        exact_n = normalise(exact, s, s)
        sk = self.train_scores().sketch[rows]
        from ...compute.knn import unit_rows

        u = unit_rows(sk)
        approx = u @ u.T
        iu = np.triu_indices(m, 1)
        e, a = exact_n[iu], approx[iu]
        t = min(top, len(e))
        top_e = set(np.argsort(-e, kind="mergesort")[:t].tolist())
        top_a = set(np.argsort(-a, kind="mergesort")[:t].tolist())
        return {
            "sample": int(m),
            "pairs": int(len(e)),
            "exact_source": source,
            "sketch_dim": self.sketcher().dim_out,
            "sketch_exact": self.sketcher().exact,
            "spearman": float(spearmanr(e, a).statistic),
            "max_abs_error": float(np.abs(e - a).max()),
            "mean_abs_error": float(np.abs(e - a).mean()),
            f"top{t}_overlap": len(top_e & top_a) / max(t, 1),
        }

    def close(self) -> None:
        if self._kron is not None:
            self._kron.close()
            self._kron = None
