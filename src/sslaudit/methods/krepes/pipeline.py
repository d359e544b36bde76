"""KREPES on a run directory: explain a seeded sample of test points (plus requested ones),
then assemble the tables the CLI writes — landmarks, norms, fidelity, alignment gap, anchoring,
concepts. Kernel blocks, landmarks and the step are cached stages of the run's store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...errors import UserError
from ...seeding import numpy_rng
from .explainer import Krepes
from .scores import concept_scores, fit_cav, top_k


@dataclass
class KrepesRunOutput:
    tables: dict = field(default_factory=dict)  # name → DataFrame (written as RUN/krepes/<name>.parquet)
    documents: dict = field(default_factory=dict)  # name → dict (written as RUN/krepes/<name>.json)
    krepes: Krepes | None = None


def choose_test_points(dataset, n_points: int, refs, seed: int) -> list[tuple[str, int]]:
    """(split, position) pairs: a seeded sample of the test split plus every requested ref."""
    n_test = len(dataset.test)
    if n_points < 0:
        raise UserError(f"--test-points must be ≥ 0, got {n_points}")
    sample = np.sort(numpy_rng(seed, "krepes", "test-points").choice(n_test, min(n_points, n_test), replace=False))
    points = [("test", int(p)) for p in sample]
    seen = set(points)
    for split, idx in refs:
        pos = (split, dataset.split(split).position_of(idx, split))
        if pos not in seen:
            points.append(pos)
            seen.add(pos)
    if not points:
        raise UserError("no test points to explain: use --test-points N > 0 or --index test:I")
    return points


LINEARISE = ("backbone", "projector")
STORED_EMBEDDINGS_LIMIT = 512 << 20  # step mode reads the run's stored training embeddings up to this size (Adult-1M's, 1 GB, stay on demand)


class ExplainedNetwork:
    """What KREPES linearises: the run's backbone (the default; the representation every lens
    uses) or projector∘backbone (`linearise="projector"`: the output the SSL loss was applied to
    in training, so the Gauss–Newton step optimises the loss the network saw). `module`,
    `encoder_id` (the cache identity) and `embeddings(split)` (for the fidelity diagnostics)."""

    def __init__(self, run, linearise: str = "backbone"):
        if linearise not in LINEARISE:
            raise UserError(f"--linearise must be one of {', '.join(LINEARISE)}, got {linearise!r}")
        self.run, self.linearise = run, linearise
        if linearise == "backbone":
            self.module, self.encoder_id = run.encoder, run.encoder_id
            return
        if "external" in run.config:
            raise UserError(f"--linearise projector needs the run's projector, but {run.path} holds an imported encoder (no projector): use --linearise backbone")
        from torch import nn

        projector = run.method.model.projector
        self.module = nn.Sequential(run.encoder, projector).to(run.device).eval()
        for p in self.module.parameters():
            p.requires_grad_(True)
        self.encoder_id = f"{run.encoder_id}+projector"
        self._cache: dict = {}

    def stored_train_embeddings(self, limit_bytes: int = STORED_EMBEDDINGS_LIMIT) -> bool:
        """Whether the run already holds the backbone's training embeddings in a file of at most
        `limit_bytes` (the audit's earlier lenses store them), so step mode can read them once instead
        of recomputing the network's rows for every diagnostic (`NetworkRows`)."""
        if self.linearise != "backbone":
            return False
        stored = getattr(self.run, "stored_embeddings", None)  # a Run; other run-like objects compute on demand
        f = stored("train") if stored is not None else None
        return f is not None and f.stat().st_size <= limit_bytes

    def embeddings(self, split: str) -> np.ndarray:
        if self.linearise == "backbone":
            return self.run.embeddings(split)
        if split not in self._cache:
            from ...models.embed import embed

            self._cache[split] = embed(self.module, self.run.dataset.split(split).x, device=self.run.device)
        return self._cache[split]


class NetworkRows:
    """The network's training embeddings computed on demand for the rows a diagnostic needs
    (at 1M rows the full n×d array is GBs); `mean()` streams all rows in blocks."""

    def __init__(self, encoder, x, device: str = "cpu", block: int = 65536):
        self.encoder, self.x, self.device, self.block = encoder, x, device, block

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows) -> np.ndarray:
        from ...models.embed import embed

        return embed(self.encoder, self.x[np.asarray(rows)], device=self.device)

    def mean(self) -> np.ndarray:
        from ...models.embed import embed

        total = None
        for s in range(0, len(self.x), self.block):
            part = np.asarray(embed(self.encoder, self.x[s : s + self.block], device=self.device), dtype=np.float64).sum(0)
            total = part if total is None else total + part
        return total / max(len(self.x), 1)


class SurrogateRows:
    """The surrogate's training representations at given rows (read from the stored K(train, landmarks))."""

    def __init__(self, krepes, model):
        self.k, self.model = krepes, model

    def __len__(self) -> int:
        return len(self.k.k_train)

    def __getitem__(self, rows) -> np.ndarray:
        return self.k.train_surrogate(self.model, rows)


def explain_run(
    run,
    *,
    test_points: int = 1000,
    refs=(),
    concepts=(),
    both_modes: bool = False,
    lambda_curve: bool = False,
    engine=None,
    probe_sample: int | None = 65536,
    linearise: str = "backbone",
    **options,
) -> KrepesRunOutput:
    from . import fidelity as fid
    from .alignment import alignment_gap, group_anchoring
    from .concepts import parse_concept

    ds = run.dataset
    seed = options.get("seed", 0)
    concept_specs = [parse_concept(c) for c in concepts]  # fail early on a malformed spec
    points = choose_test_points(ds, test_points, refs, seed)
    params = (run.config.get("train") or {}).get("params") or {}
    net = ExplainedNetwork(run, linearise)
    k = Krepes(net.module, objective=run.objective, objective_params=params, engine=engine, cache=run.store, encoder_id=net.encoder_id, **options)
    needs_fit = both_modes or options.get("mode", "step") == "fit"
    # the network's training rows: held when fit mode needs them all or the run already stores them
    # (a ResNet-18 audit recomputed 9,000 rows twice here, 150 s), else computed per diagnostic
    held = needs_fit or net.stored_train_embeddings()
    net_train = net.embeddings("train") if held else NetworkRows(net.module, ds.train.x, options.get("device", "cpu"))
    k.fit(ds.train.x, augment=run.augment, train_embeddings=net_train if needs_fit else None)
    net_mean = np.asarray(net_train, dtype=np.float64).mean(0) if held else None

    n_sample = min(test_points, len(ds.test))
    sample = np.array([p for _, p in points[:n_sample]], dtype=np.int64)
    rows = [k.kernel_rows(ds.test.x[sample], "test_sample")] if len(sample) else []
    extra = points[n_sample:]
    extra_test = [p for s, p in extra if s == "test"]
    k_extra_test = k.kernel_rows(ds.test.x[np.array(extra_test)], "test_extra") if extra_test else None
    it = iter(k_extra_test if k_extra_test is not None else [])
    for s, p in extra:
        rows.append((next(it) if s == "test" else np.asarray(k.k_train[p], dtype=np.float64))[None, :])
    k_all = np.concatenate(rows).astype(np.float64)
    split_col = np.array([s for s, _ in points])
    index_col = np.array([ds.split(s).index[p] for s, p in points], dtype=np.int64)
    is_test = split_col == "test"
    test_pos = np.array([p for s, p in points if s == "test"], dtype=np.int64)

    out = KrepesRunOutput(krepes=k)
    res = k.explain(k_test=k_all)
    out.tables["landmarks"] = res.landmark_table(index_col, ds.train.index, split_col)
    out.tables["landmark_norms"] = res.norm_table(ds.train.index)

    summary = {"mode": k.config.mode, "linearised": linearise, **_run_facts(k, res)}
    if ds.has_labels and is_test.any():
        modes = {k.config.mode: (k.model, res)}
        if both_modes:
            other = "fit" if k.config.mode == "step" else "step"
            modes[other] = (k.surrogate(other), k.explain(k_test=k_all, mode=other))
        reports, net_acc = {}, None
        if net_mean is None:
            net_mean = net_train.mean()
        for name, (model, r) in modes.items():
            reports[name] = {
                **fid.fidelity_report(
                    net_train=net_train,
                    net_test=net.embeddings("test")[test_pos],
                    sur_train=SurrogateRows(k, model),
                    sur_test=r.embeddings[is_test],
                    y_train=ds.train.y,
                    y_test=ds.test.y[test_pos],
                    landmark_pos=k.landmarks,
                    top=r.top[is_test],
                    landmark_norms=r.landmark_norms,
                    seed=seed,
                    network_accuracy=net_acc,
                    probe_sample=probe_sample,
                    net_mean=net_mean,
                    k_test=k_all[is_test],
                    weights=model.weights,
                ),
                "n_distinct_top1": r.n_distinct_top1,
            }
            net_acc = reports[name]["network_accuracy"]
        summary.update({kk: v for kk, v in reports[k.config.mode].items()})
        if both_modes:
            summary["modes"] = reports
            trusted = max(reports, key=lambda m_: (np.nan_to_num(reports[m_]["kendall_tau"], nan=-2), -abs(reports[m_]["delta_accuracy"])))
            summary["trusted_mode"] = trusted
            summary["trusted_mode_rule"] = "the mode with the higher Kendall τ against the centred network embedding (label-free), then the smaller |Δ accuracy|"
        if lambda_curve and k.config.mode == "step" and k.step_result and len(k.step_result["lambda_curve"]) > 1:
            curve = []
            for c, delta in zip(k.step_result["lambda_curve"], k.step_candidates):
                model = k.step_model_for(delta)
                r = k.explain(k_test=k_all[is_test], model=model)
                f = fid.fidelity_report(
                    net_train=net_train,
                    net_test=net.embeddings("test")[test_pos],
                    sur_train=SurrogateRows(k, model),
                    sur_test=r.embeddings,
                    y_train=ds.train.y,
                    y_test=ds.test.y[test_pos],
                    landmark_pos=k.landmarks,
                    top=r.top,
                    landmark_norms=r.landmark_norms,
                    seed=seed,
                    probe=False,
                    net_mean=net_mean,
                )
                curve.append(
                    {
                        **c,
                        **{kk: f[kk] for kk in ("kendall_tau", "kendall_tau_raw", "linear_cka", "precision_at_1", "confidence_drop_top", "confidence_drop_random")},
                        "n_distinct_top1": r.n_distinct_top1,
                    }
                )
            summary["lambda_curve"] = curve
        anchoring = [] if ds.protected else [fid.label_anchoring(ds.test.y[test_pos], ds.train.y, k.landmarks, res.top[is_test, 0])]
    else:
        summary["note"] = "no labels (or no test-split points): label-based fidelity diagnostics were not computed"
        anchoring = []
    if k.kernel is not None and int(k.config.kernel_fidelity_sample) > 0:
        from ...kernels.approximation import kernel_approximation_report

        summary["kernel_fidelity"] = kernel_approximation_report(k.kernel, net.module, ds.train.x, ds.train.y if ds.has_labels else None, sample=int(k.config.kernel_fidelity_sample), seed=seed)
    summary["hyperparameters_tuned_with_labels"] = False
    out.documents["fidelity"] = summary

    meta_tr = ds.train.meta
    if ds.kind == "tabular" and meta_tr is not None and is_test.any():
        test_meta = ds.test.meta.iloc[test_pos].reset_index(drop=True)
        lm_meta = meta_tr.iloc[k.landmarks].reset_index(drop=True)
        out.tables["alignment_gap"] = alignment_gap(test_meta, lm_meta, meta_tr, res.top[is_test], res.top_scores[is_test], seed=seed)
        # the same audit for the plain |k| ranking (the eNTK's nearest landmarks, no SSL pull), weights |k|
        k_abs = np.abs(k_all[is_test])
        k_top = top_k(k_abs, k.config.top_k)
        out.tables["alignment_gap_kernel"] = alignment_gap(test_meta, lm_meta, meta_tr, k_top, np.take_along_axis(k_abs, k_top, 1), seed=seed)
        for attr in ds.protected:
            anchoring.append(group_anchoring(attr, test_meta[attr], lm_meta[attr], res.top[is_test, 0]))
    cols = ["attribute", "test_group", "landmark_group", "probability", "base_rate", "n_test"]
    out.tables["anchoring"] = pd.concat(anchoring, ignore_index=True) if anchoring else pd.DataFrame({c: pd.Series(dtype=object) for c in cols})

    if concept_specs:
        out.tables["concepts"], out.documents["concepts"] = _concepts(k, res, ds, concept_specs, k_all, split_col, index_col, seed)
    out.documents["config"] = {"krepes": k.config.to_json(), "summary": k.summary(), "test_points": len(points), "test_points_sampled": int(len(sample)), "both_modes": both_modes}
    return out


HUB_SHARE = 0.1  # warn when fewer than this share of min(test points, landmarks) are someone's top-1 ...
HUB_MAX_SHARE = 0.25  # ... or when one landmark is the top-1 of at least this share of the test points


def hub_warning(top1: np.ndarray, n_landmarks: int) -> tuple[str | None, float]:
    """(warning or None, the largest share of test points that one landmark is the top-1 of)."""
    top1 = np.asarray(top1)
    if not len(top1):
        return None, 0.0
    _, counts = np.unique(top1, return_counts=True)
    share = float(counts.max() / len(top1))
    floor = HUB_SHARE * min(len(top1), n_landmarks)
    if len(counts) < floor or (share >= HUB_MAX_SHARE and len(top1) >= 10):
        return (
            f"hub landmarks: {len(counts)} distinct top-1 landmarks for {len(top1)} test points (a warning below "
            f"{HUB_SHARE:.0%} of min(test points, landmarks) = {floor:.0f}, or when one landmark is the top-1 of ≥ {HUB_MAX_SHARE:.0%}); "
            f"the most frequent one is the top-1 of {share:.0%} of them — the explanations are dominated by a few landmarks "
            "(try a larger --lambda)"
        ), share
    return None, share


def _run_facts(k: Krepes, res) -> dict:
    step = k.step_result or {}
    warning, share = hub_warning(res.top[:, 0] if len(res.top) else res.top, len(k.landmarks))
    return {
        "hub_warning": warning,
        "top1_max_share": share,
        "lambda_reason": step.get("lambda_reason"),
        "lambda_scale": step.get("lambda_scale"),
        "curvature_along_gradient": step.get("curvature_along_gradient"),
        "heldout_loss_before": step.get("heldout_loss_before"),
        "heldout_loss_after": step.get("heldout_loss_after"),
        "lambda_candidates": [
            {kk: c.get(kk) for kk in ("multiple", "lambda", "loss_after", "heldout_loss", "accepted", "entropy", "cg_residual", "cg_iterations", "step_length")} for c in step.get("lambda_curve", [])
        ],
        "step_basis": step.get("step_basis"),
        "step_dtype": step.get("step_dtype"),
        "n_heldout_samples": step.get("n_heldout_samples"),
        "loss_before": step.get("loss_before"),
        "loss_after": step.get("loss_after"),
        "lambda": step.get("lambda"),
        "lambda_multiple": step.get("lambda_multiple"),
        "lambda_chosen_by": step.get("lambda_chosen_by"),
        "mean_gn_eigenvalue": step.get("mean_gn_eigenvalue"),
        "cg_residual": step.get("cg_residual"),
        "cg_iterations": step.get("cg_iterations"),
        "step_accepted": step.get("accepted"),
        "step_length": step.get("step_length"),
        "n_step_samples": step.get("n_step_samples"),
        "fit_ridge": (k.fit_result or {}).get("mu"),
        "fit_r2": (k.fit_result or {}).get("r2"),
        "n_landmarks": int(len(k.landmarks)),
        "rank": int(k.basis.rank),
        "kernel": k.config.kernel,
        "normalized": k.config.normalize,
        "selection": "all" if k.config.exact else k.config.selection,
        "path_used": k.path_used,
        "n_distinct_top1": res.n_distinct_top1,
        "exact": k.config.exact,
        "kernel_parameters": k.kernel_parameters(),
        "layer_projection_dim": k.config.layer_projection_dim,
        "cost_plan": getattr(k, "cost_plan", None),
    }


def _concepts(k: Krepes, res, ds, specs, k_all, split_col, index_col, seed):
    from .concepts import concept_set

    sur_train = SurrogateRows(k, k.model)
    frames, docs = [], {}
    for name, spec in specs:
        cs = concept_set(name, spec, ds, seed)

        def reps(pairs):
            tr = [p for s, p in pairs if s == "train"]
            te = [p for s, p in pairs if s == "test"]
            parts = [sur_train[np.array(tr, dtype=np.int64)]] if tr else []
            if te:
                parts.append(k.model.embed(k.kernel_rows(ds.test.x[np.array(te)])))
            return np.concatenate(parts)

        cav = fit_cav(name, reps(cs.positive), reps(cs.negative), seed)
        score = concept_scores(k_all, k.model.weights, cav)
        top = top_k(np.abs(score), k.config.top_k)
        t, kk = top.shape
        frames.append(
            pd.DataFrame(
                {
                    "concept": name,
                    "split": np.repeat(split_col, kk),
                    "index": np.repeat(index_col, kk),
                    "rank": np.tile(np.arange(1, kk + 1), t),
                    "train_index": ds.train.index[k.landmarks[top]].reshape(-1),
                    "score": np.take_along_axis(score, top, 1).reshape(-1),
                }
            )
        )
        docs[name] = {"spec": spec, "cav_train_accuracy": cav.accuracy, "n_positive": cav.n_positive, "n_negative": cav.n_negative, "space": f"surrogate R^{k.model.width}"}
    return pd.concat(frames, ignore_index=True), docs
