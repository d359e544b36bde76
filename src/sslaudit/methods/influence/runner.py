"""Influence-SSL on a run directory, with its expensive stages cached in the run store.

Stages: `influence/factors` (kronfluence's EK-FAC/K-FAC factors, keyed by the weights, strategy,
draws, seed and the scored rows) and `influence/scores` (self-influence and the sketched whitened
gradients, keyed by the factors and the damping), and `influence/check` (the sketch against exact
pairwise scores). A rerun with the same settings reuses them. The result tables are returned;
the CLI writes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...errors import UserError
from ...progress import info
from ...seeding import numpy_rng
from ...store import config_hash
from .analyzer import InfluenceAnalyzer, InfluenceConfig
from .baselines import embedding_duplicates, knn_distance
from .duplicates import query_neighbours
from .fairness import fairness_report
from .scores import BlockScores

FACTORS_FILE = "influence/cache/factors.npz"
SCORES_FILE = "influence/cache/scores.npz"


@dataclass
class InfluenceResult:
    self_influence: pd.DataFrame  # split, index, score, rank
    duplicates: pd.DataFrame  # split, index, train_index, score (+ score_raw, score_sketch): training pairs, index < train_index
    pairwise: pd.DataFrame | None  # split, index (the query), train_index, score, score_normalised
    fairness: dict
    knn_outliers: pd.DataFrame  # split, index, score, rank (baseline)
    embedding_duplicates: pd.DataFrame  # split, index, train_index, score (baseline)
    summary: dict = field(default_factory=dict)
    neighbours: pd.DataFrame | None = None  # split, index, rank, train_index, score: each example's most mutually influential others


def subsample_rows(n: int, subsample: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subsample of n rows (all rows if subsample is None or ≥ n)."""
    if subsample is None or int(subsample) >= n:
        return np.arange(n)
    if int(subsample) < 2:
        raise UserError(f"--subsample {subsample}: influence needs at least 2 training examples")
    return np.sort(numpy_rng(seed, "influence", "subsample").choice(n, int(subsample), replace=False))


def resolve_queries(dataset, queries) -> tuple[list[tuple[str, int]], np.ndarray]:
    """(split, index) references → their inputs; out-of-range indices raise a UserError."""
    refs, xs = [], []
    for split, idx in queries:
        s = dataset.split(split)
        xs.append(s.x[s.position_of(int(idx), split)])
        refs.append((split, int(idx)))
    return refs, (np.stack(xs) if xs else np.zeros((0, *dataset.input_shape), np.float32))


def ranked(index: np.ndarray, score: np.ndarray, split: str = "train") -> pd.DataFrame:
    order = np.lexsort((index, -score))
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(1, len(score) + 1)
    return pd.DataFrame({"split": split, "index": index.astype(np.int64), "score": score.astype(np.float64), "rank": rank})


def to_index_pairs(df: pd.DataFrame, index: np.ndarray) -> pd.DataFrame:
    """Pairs of row positions (columns i, j) → a table of training pairs (split, index,
    train_index, …) with index < train_index."""
    a, b = index[df["i"].to_numpy()], index[df["j"].to_numpy()]
    out = pd.DataFrame({"split": "train", "index": np.minimum(a, b).astype(np.int64), "train_index": np.maximum(a, b).astype(np.int64)})
    for c in df.columns.drop(["i", "j"]):
        out[c] = df[c].to_numpy()
    return out


def neighbour_table(z: np.ndarray, index: np.ndarray, k: int) -> pd.DataFrame:
    """Per training example (as a query), its k most mutually influential other examples."""
    idx, sims = query_neighbours(z, k)
    kk = idx.shape[1]
    return pd.DataFrame(
        {
            "split": "train",
            "index": np.repeat(index, kk).astype(np.int64),
            "rank": np.tile(np.arange(1, kk + 1), len(index)).astype(np.int64),
            "train_index": index[idx.reshape(-1)].astype(np.int64),
            "score": sims.reshape(-1),
        }
    )


def run_influence(
    run, cfg: InfluenceConfig, *, pairs: int = 100, queries=(), subsample: int | None = None, check: int = 200, device: str = "cpu", engine: str = "local", knn: int = 10, neighbours: int = 5
) -> InfluenceResult:
    """Self-influence, duplicates, query pairwise scores, fairness and baselines for a run."""
    t0 = time.perf_counter()
    ds = run.dataset
    refs, xq = resolve_queries(ds, queries)  # validate before any heavy work
    rows = subsample_rows(len(ds.train), subsample, cfg.seed)
    x = ds.train.x.subset(rows) if hasattr(ds.train.x, "subset") else ds.train.x[rows]  # an image folder stays on disk
    index = ds.train.index[rows]
    augment = run.augment
    opts = {k: v for k, v in cfg.to_json().items() if k not in ("strategy", "damping")}
    ia = InfluenceAnalyzer(run.encoder, augment, cfg.strategy, cfg.damping, device=device, engine=engine, **opts)
    store = run.store
    weights = run.encoder_id
    fkey = {"weights": weights, "strategy": ia.strategy, "draws": cfg.draws, "seed": cfg.seed, "rows": config_hash(rows.tolist()), "n_params": ia.n_parameters}
    if cfg.modules not in (None, "all"):  # keys of older runs unchanged
        fkey["modules"] = [layer.name for layer in ia.layers]
    timings = {}
    with store.lock():
        t = time.perf_counter()
        if ia.strategy == "identity":
            ia.fit(x)
        elif store.stage_done("influence/factors", fkey):
            ia.fit(x, factors=store.read_npz(FACTORS_FILE))
        else:
            ia.fit(x)
            store.write_npz(FACTORS_FILE, stage="influence/factors", **ia.factor_arrays())
            store.mark_done("influence/factors", fkey, [FACTORS_FILE])
        timings["factors_seconds"] = time.perf_counter() - t
        skey = {**fkey, "damping": cfg.damping, "sketch_dim": cfg.sketch_dim}
        t = time.perf_counter()
        if store.stage_done("influence/scores", skey):
            z = store.read_npz(SCORES_FILE)
            ia.set_train_scores(BlockScores(z["self_influence"], z["sketch"], None))
        else:
            sc = ia.train_scores()
            store.write_npz(SCORES_FILE, stage="influence/scores", self_influence=sc.self_influence, sketch=sc.sketch)
            store.mark_done("influence/scores", skey, [SCORES_FILE])
        timings["scores_seconds"] = time.perf_counter() - t
        ckey = {**skey, "check": int(check)}
        check_res = None
        if check and len(x) >= 3:
            if store.stage_done("influence/check", ckey):
                check_res = store.stage_info("influence/check")
            else:
                t = time.perf_counter()
                check_res = ia.check_duplicates(sample=check)
                check_res["seconds"] = time.perf_counter() - t
                store.mark_done("influence/check", ckey, [], check_res)
    s = ia.self_influence()
    t = time.perf_counter()
    dups = to_index_pairs(ia.duplicates(pairs), index)
    timings["duplicates_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    neigh = neighbour_table(ia.train_scores().sketch, index, neighbours) if neighbours else None
    timings["neighbours_seconds"] = time.perf_counter() - t
    pw = None
    if refs:
        raw, norm = ia.pairwise(xq)
        q = len(refs)
        pw = pd.DataFrame(
            {
                "split": np.repeat([r[0] for r in refs], len(index)),
                "index": np.repeat([r[1] for r in refs], len(index)).astype(np.int64),
                "train_index": np.tile(index, q).astype(np.int64),
                "score": raw.reshape(-1),
                "score_normalised": norm.reshape(-1),
            }
        )
    meta = None if ds.train.meta is None else ds.train.meta.iloc[rows].reset_index(drop=True)
    fair = fairness_report(s, meta, list(ds.protected))
    emb = run.embeddings("train")[rows]
    knn_df = ranked(index, knn_distance(emb, knn))
    emb_dups = to_index_pairs(embedding_duplicates(emb, pairs, cfg.neighbours), index)
    ia.close()
    summary = {
        "config": cfg.to_json(),
        "strategy_requested": cfg.strategy,
        "strategy_used": ia.strategy,
        "fallback": ia.fallback,
        "layers": [{"name": layer.name, "shape": list(layer.shape)} for layer in ia.layers],
        "parameters": ia.n_parameters,
        "n_scored": int(len(rows)),
        "n_train": int(len(ds.train)),
        "subsample": subsample,
        "pairs": int(pairs),
        "damping_used": ia.preconditioner.used_damping if ia.preconditioner else {},
        "duplicate_check": check_res,
        "timings": {**timings, "total_seconds": time.perf_counter() - t0},
        "modules": cfg.modules or "all",
        "memory_plan": ia.memory_plan,
    }
    if ia.fallback:
        info(f"influence: {ia.fallback}")
    return InfluenceResult(ranked(index, s), dups, pw, fair, knn_df, emb_dups, summary, neigh)
