"""The RELAX lens: attribution maps (importance, uncertainty, U-RELAX) of chosen inputs (methods/relax)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import parse_sample_refs
from ..errors import UserError
from ..parsing import keyword_or, number
from .base import Lens, LensResult
from .config import opt

CHUNK = 8  # inputs attributed together before their results are stored


@dataclass
class RelaxConfig:
    """Settings of a RELAX explanation (saved in RUN/relax/config.json)."""

    index: tuple[str, ...] = opt((), "An input to explain as split:index, e.g. test:17 (repeatable).", multiple=True, required=True, metavar="SPLIT:INDEX")
    masks: int | str = opt(
        3000,
        "Number of random masks N, or 'auto': draw batches until the largest pixelwise standard error of the importance is ≤ --tolerance.",
        parse=keyword_or("auto", int, "--masks", "3000", minimum=1, what="number of masks"),
        metavar="N|auto",
    )
    tolerance: float | None = opt(None, "With --masks auto: target standard error of the importance (similarity units) [default: 0.002].", parse=number(float, "--tolerance", "0.002", positive=True))
    max_masks: int = opt(30_000, "With --masks auto: stop here even if the tolerance is not reached.", parse=number(int, "--max-masks", "30000", minimum=1))
    control_variate: bool | None = opt(
        None,
        "Subtract each score's linear prediction from the coarse mask pattern (its exact mean is added back): the same map in expectation with a smaller "
        "standard error, so --masks auto stops sooner [default: on with --masks auto, off with a fixed N, which is the reference estimator].",
        parse=lambda v: v,
        tristate=True,
    )
    batch_size: int = opt(250, "Masked inputs per forward pass (inputs × masks are batched together).", parse=number(int, "--batch-size", "250", minimum=1))
    fill: str = opt(
        "mean",
        "What masked-out pixels become: the training per-channel mean (= the reference's 0 in normalised input space), 0 (black), or a blur of the input. Tables always use the training mean.",
        choices=("zero", "mean", "blur"),
    )
    cells: int | str = opt(
        "auto",
        "Mask cells per side (the coarse grid of each random mask), or 'auto': cells at least 4 pixels wide, at most the reference's 7 per side (7 on 28×28 Fashion-MNIST, 2 on 8×8 digits).",
        parse=keyword_or("auto", int, "--cells", "7", minimum=1, what="number of cells per side"),
        metavar="N|auto",
    )
    tabular_groups: bool = opt(False, "Tables: mask whole original features (column groups of the schema) instead of image regions.", flag="--tabular-groups")
    eval_steps: int = opt(20, "Steps of the deletion / insertion curves in evaluation.json.", parse=number(int, "--eval-steps", "20", minimum=2))
    localisation: bool = opt(True, "Images: score each map's localisation of the object, taken as the non-zero pixels (meaningful for black-background images such as Fashion-MNIST and digits).")
    sanity: bool = opt(True, "Skip the model-randomisation sanity check (it reruns RELAX on a re-initialised encoder).", flag="--no-sanity")
    seed: int = 0

    def __post_init__(self):
        self.index = parse_sample_refs(self.index)
        if self.tolerance is not None and self.masks != "auto":
            raise UserError("--tolerance applies to --masks auto; drop it or pass --masks auto")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size} must be ≥ 1")


class RelaxLens(Lens):
    """Explain which parts of each chosen input the representation depends on (RELAX).

    Writes RUN/relax/<split>-<index>.npz (importance, uncertainty, u_relax, std_error, n_masks),
    a PNG per input (input, importance, uncertainty, U-RELAX) and evaluation.json (deletion /
    insertion AUC of RELAX, U-RELAX, gradient saliency, reversed RELAX and random maps — pixel-wise
    and at the mask scale; complexity; sparseness; localisation of the non-zero pixels; the
    model-randomisation sanity check, its threshold from a permutation null). Finished inputs are
    reused by a rerun with the same settings.
    """

    name = "relax"
    title = "Attribution maps (RELAX)"
    Config = RelaxConfig

    # applies to every run: images by region masks, tables with --tabular-groups (checked in compute)

    def skip_command(self, run):
        return f"sslaudit relax {run.path} --tabular-groups"

    def check(self, run, cfg):
        ds = run.dataset
        spatial = ds.kind == "image" and ds.train.x.ndim in (3, 4)
        if not spatial and not cfg.tabular_groups:
            raise UserError(f"{run.path} holds {ds.kind} data without spatial dimensions: RELAX masks image regions; pass --tabular-groups to mask whole features instead")
        if spatial and cfg.tabular_groups:
            raise UserError("--tabular-groups applies to tables; this run holds images")
        if not cfg.index:
            raise UserError("RELAX needs at least one input to explain: --index split:index, e.g. --index test:0")
        return spatial

    def compute(self, run, cfg, ctx) -> LensResult:
        from ..data.dataset import parse_sample_ref
        from ..methods.relax import Relax, schema_masks
        from ..methods.relax.evaluation import evaluate_relax
        from ..methods.relax.figures import overlay_png
        from ..progress import warn

        spatial = self.check(run, cfg)
        tolerance = 0.002 if cfg.masks == "auto" and cfg.tolerance is None else cfg.tolerance
        ds = run.dataset
        refs = list(dict.fromkeys(parse_sample_ref(r) for r in cfg.index))
        positions = [(split, int(idx), ds.split(split).position_of(int(idx), split)) for split, idx in refs]
        x = np.stack([ds.split(split).x[pos] for split, _, pos in positions]).astype(np.float32)
        ctx.require_memory(x.nbytes * cfg.batch_size * 3, f"RELAX batches of {cfg.batch_size} masked inputs", "lower --batch-size")
        names = None
        if cfg.tabular_groups:
            family, fill_value, names = schema_masks(ds)
            relax = Relax(run.encoder, fill="mean", fill_value=fill_value, groups=family.groups, batch_size=cfg.batch_size, device=ctx.device)
        else:
            x_train = ds.train.x
            if cfg.fill != "mean":
                train_mean = None
            elif hasattr(x_train, "channel_stats"):  # an image folder: one streaming pass over its files
                train_mean = x_train.channel_stats()[0].astype(np.float32)
            else:
                train_mean = x_train.mean(axis=tuple(i for i in range(x_train.ndim) if i != 1))
            relax = Relax(run.encoder, fill=cfg.fill, fill_value=train_mean, num_cells=cfg.cells, batch_size=cfg.batch_size, spatial_dims=ds.train.x.ndim - 2, device=ctx.device)
        control_variate = (cfg.masks == "auto") if cfg.control_variate is None else cfg.control_variate
        key = {
            "masks": cfg.masks,
            "tolerance": tolerance,
            "max_masks": cfg.max_masks,
            "control_variate": control_variate,
            "fill": "mean" if cfg.tabular_groups else cfg.fill,
            "groups": cfg.tabular_groups,
            "seed": cfg.seed,
            "num_cells": relax.cells_for(tuple(x.shape[2:])) if spatial else None,
            "p": relax.p,
            "encoder": run.encoder_id,
        }
        store = run.store
        rel = [f"relax/{split}-{idx:d}" for split, idx, _ in positions]  # built from parsed integers only
        # fixed chunks of the requested inputs, each input stored as soon as its chunk is done: an
        # interrupted run keeps them. A chunk with any input missing is attributed whole again, so
        # every map is computed in the same batch as in an uninterrupted run: the encoder's float32
        # kernels can round differently when the batch's composition changes, and a resumed run must
        # give the same bytes. Finished inputs are not rewritten.
        missing = {i for i, name in enumerate(rel) if not store.stage_done(name, key)}
        for chunk in [list(range(c, min(c + CHUNK, len(rel)))) for c in range(0, len(rel), CHUNK)]:
            if missing.isdisjoint(chunk):
                continue
            res = relax.attribute(x[chunk], cfg.masks, tolerance=tolerance, seed=cfg.seed, max_masks=cfg.max_masks, control_variate=control_variate)
            for j, i in enumerate(chunk):
                if i not in missing:
                    continue
                split, idx, _ = positions[i]
                arrays = {k: getattr(res, k)[j].cpu().numpy() for k in ("importance", "uncertainty", "u_relax", "std_error", "n_masks", "converged", "threshold")}
                store.write_npz(f"{rel[i]}.npz", stage=rel[i], **arrays)
                png = overlay_png(
                    x[i],
                    arrays["importance"],
                    arrays["uncertainty"],
                    arrays["u_relax"],
                    labels=names,
                    title=f"{split}:{idx} — N = {int(arrays['n_masks'])} masks, max std. error {float(arrays['std_error'].max()):.4f}",
                )
                store.write_bytes(f"{rel[i]}.png", png, stage=rel[i])
                store.mark_done(rel[i], key, [f"{rel[i]}.npz", f"{rel[i]}.png"], {"n_masks": int(arrays["n_masks"])})
                if not bool(arrays["converged"]):
                    warn(f"{split}:{idx} did not reach --tolerance {tolerance} within --max-masks {cfg.max_masks}")
        stored = [store.read_npz(f"{name}.npz") for name in rel]
        ev = evaluate_relax(
            relax,
            x,
            _stack(stored),
            n_masks=cfg.masks,
            tolerance=tolerance,
            seed=cfg.seed,
            steps=cfg.eval_steps,
            sanity=cfg.sanity,
            max_masks=cfg.max_masks,
            control_variate=control_variate,
            foreground="nonzero" if spatial and cfg.localisation else None,
        )
        ev["inputs"] = [f"{split}:{idx}" for split, idx, _ in positions]
        ev["n_masks"] = [int(np.asarray(s["n_masks"]).reshape(-1)[0]) for s in stored]
        ev["settings"] = key
        return LensResult(documents={"evaluation": ev}, depends=[f"{name}.{ext}" for name in rel for ext in ("npz", "png")])

    def describe(self, result, run):
        ev = result.documents["evaluation"]
        lines = [f"RELAX maps of {len(ev['inputs'])} input(s) written to {run.store.root / 'relax'} (npz + png per input, evaluation.json)"]
        for name, m in ev["maps"].items():
            lines.append(f"  {name:9s} deletion AUC {m['deletion_auc']:.4f} · insertion AUC {m['insertion_auc']:.4f}")
        if "sanity_check" in ev:
            sc = ev["sanity_check"]
            verdict = "not decided (needs ≥ 3 inputs for the null)" if sc["passed"] is None else "passed" if sc["passed"] else "FAILED"
            thr = "" if sc.get("threshold") is None else f" (threshold {sc['threshold']:.3f} from mismatched inputs)"
            lines.append(f"  sanity check (randomised encoder): Spearman {sc['spearman_mean']:.3f}, SSIM {sc['ssim_mean']:.3f}{thr} → {verdict}")
        return lines

    def audit_config(self, run, *, focus, quick):
        if run.dataset.kind != "image":
            return None, "RELAX masks spatial regions and these inputs are table rows (run `sslaudit relax RUN --tabular-groups` for feature-group masks)"
        if quick:
            return RelaxConfig(index=tuple(focus), masks=300, sanity=False), "quick audit: small samples and fixed settings (--quick)"
        return RelaxConfig(index=tuple(focus), masks="auto"), ""

    def section(self, collector):
        return collector.relax()


def _stack(stored: list[dict]):
    import torch

    from ..methods.relax import RelaxResult

    scalars = ("n_masks", "converged", "threshold")  # saved as 1-element arrays
    t = {k: torch.as_tensor(np.stack([np.asarray(s[k]).reshape(-1)[0] if k in scalars else s[k] for s in stored])) for k in stored[0]}
    return RelaxResult(t["importance"], t["uncertainty"], t["u_relax"], t["std_error"], t["n_masks"], t["converged"], t["threshold"])
