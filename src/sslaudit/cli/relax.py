"""`sslaudit relax`: RELAX maps (importance, uncertainty, U-RELAX) of chosen inputs of a run."""
from __future__ import annotations

import click

from ..errors import UserError
from .options import common, trust_option, number_or_keyword, sample_refs


def parse_masks(text: str) -> int | str:
    return number_or_keyword(text, "auto", int, f"--masks {text!r}: give a number of masks ≥ 1 (e.g. 3000) or 'auto'",
                             f"--masks {text}: the number of masks must be ≥ 1 (e.g. 3000), or 'auto'", minimum=1)


CHUNK = 8  # inputs attributed together before their results are stored


@click.command("relax")
@click.argument("run", type=click.Path())
@click.option("--index", "indices", multiple=True, required=True, help="An input to explain as split:index, e.g. test:17 (repeatable).")
@click.option("--masks", default="3000", show_default=True, help="Number of random masks N, or 'auto': draw batches until the largest pixelwise standard error of the importance is ≤ --tolerance.")
@click.option("--tolerance", type=float, default=None, help="With --masks auto: target standard error of the importance (similarity units) [default: 0.002].")
@click.option("--max-masks", type=click.IntRange(1), default=30_000, show_default=True, help="With --masks auto: stop here even if the tolerance is not reached.")
@click.option("--control-variate/--no-control-variate", "control_variate", default=None, help="Subtract each score's linear prediction from the coarse mask pattern (its exact mean is added back): the same map in expectation with a smaller standard error, so --masks auto stops sooner [default: on with --masks auto, off with a fixed N, which is the reference estimator].")
@click.option("--batch-size", type=int, default=250, show_default=True, help="Masked inputs per forward pass (inputs × masks are batched together).")
@click.option("--fill", type=click.Choice(["zero", "mean", "blur"]), default="mean", show_default=True, help="What masked-out pixels become: the training per-channel mean (= the reference's 0 in normalised input space), 0 (black), or a blur of the input. Tables always use the training mean.")
@click.option("--cells", default="auto", show_default=True, help="Mask cells per side (the coarse grid of each random mask), or 'auto': cells at least 4 pixels wide, at most the reference's 7 per side (7 on 28×28 Fashion-MNIST, 2 on 8×8 digits).")
@click.option("--tabular-groups", is_flag=True, help="Tables: mask whole original features (column groups of the schema) instead of image regions.")
@click.option("--eval-steps", type=click.IntRange(2), default=20, show_default=True, help="Steps of the deletion / insertion curves in evaluation.json.")
@click.option("--localisation/--no-localisation", default=True, show_default=True, help="Images: score each map's localisation of the object, taken as the non-zero pixels (meaningful for black-background images such as Fashion-MNIST and digits).")
@click.option("--no-sanity", is_flag=True, help="Skip the model-randomisation sanity check (it reruns RELAX on a re-initialised encoder).")
@trust_option
@common
def command(run, indices, masks, tolerance, max_masks, control_variate, batch_size, fill, cells, tabular_groups, eval_steps, localisation, no_sanity, seed, device, trust_code):
    """Explain which parts of each chosen input the representation depends on (RELAX).

    Writes RUN/relax/<split>-<index>.npz (importance, uncertainty, u_relax, std_error, n_masks),
    a PNG per input (input, importance, uncertainty, U-RELAX) and evaluation.json (deletion /
    insertion AUC of RELAX, U-RELAX, gradient saliency, reversed RELAX and random maps — pixel-wise
    and at the mask scale; complexity; sparseness; localisation of the non-zero pixels; the
    model-randomisation sanity check, its threshold from a permutation null). Finished inputs are reused by a rerun with the same
    settings.
    """
    import numpy as np

    from ..methods.relax import Relax, schema_masks
    from ..methods.relax.evaluation import evaluate_relax
    from ..methods.relax.figures import overlay_png
    from ..progress import info
    from ..run import load

    n_masks = parse_masks(masks)
    if tolerance is not None and not tolerance > 0:
        raise UserError(f"--tolerance {tolerance}: the standard-error target must be > 0 (e.g. 0.002)")
    if tolerance is not None and n_masks != "auto":
        raise UserError("--tolerance applies to --masks auto; drop it or pass --masks auto")
    if n_masks == "auto" and tolerance is None:
        tolerance = 0.002
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} must be ≥ 1")
    num_cells = number_or_keyword(cells, "auto", int, f"--cells {cells!r}: give a number of cells per side ≥ 1 (e.g. 7) or 'auto'",
                                  f"--cells {cells}: the number of cells per side must be ≥ 1 (e.g. 7), or 'auto'", minimum=1)
    refs = list(dict.fromkeys(sample_refs(indices)))
    r = load(run, device=device, trust_code=trust_code)
    ds = r.dataset
    spatial = ds.kind == "image" and ds.train.x.ndim in (3, 4)
    if not spatial and not tabular_groups:
        raise UserError(f"{run} holds {ds.kind} data without spatial dimensions: RELAX masks image regions; pass --tabular-groups to mask whole features instead")
    if spatial and tabular_groups:
        raise UserError("--tabular-groups applies to tables; this run holds images")
    positions = [(split, int(idx), ds.split(split).position_of(int(idx), split)) for split, idx in refs]
    x = np.stack([ds.split(split).x[pos] for split, _, pos in positions]).astype(np.float32)
    names = None
    if tabular_groups:
        family, fill_value, names = schema_masks(ds)
        relax = Relax(r.encoder, fill="mean", fill_value=fill_value, groups=family.groups, batch_size=batch_size, device=device)
    else:
        train_mean = ds.train.x.mean(axis=tuple(i for i in range(ds.train.x.ndim) if i != 1))
        relax = Relax(r.encoder, fill=fill, fill_value=train_mean if fill == "mean" else None, num_cells=num_cells, batch_size=batch_size, spatial_dims=ds.train.x.ndim - 2, device=device)
    weights = r.weights_key
    control_variate = (n_masks == "auto") if control_variate is None else control_variate
    cfg = {"masks": n_masks, "tolerance": tolerance, "max_masks": max_masks, "control_variate": control_variate, "fill": "mean" if tabular_groups else fill, "groups": tabular_groups,
           "seed": seed, "num_cells": relax.cells_for(tuple(x.shape[2:])) if spatial else None, "p": relax.p, "weights": weights}
    store = r.store
    rel = [f"relax/{split}-{idx:d}" for split, idx, _ in positions]  # built from parsed integers only
    todo = [i for i, name in enumerate(rel) if not store.stage_done(name, cfg)]
    with store.lock():
        # fixed chunks of the requested inputs, each input stored as soon as its chunk is done: an
        # interrupted run keeps them. A chunk with any input missing is attributed whole again, so
        # every map is computed in the same batch as in an uninterrupted run: the encoder's float32
        # kernels can round differently when the batch's composition changes, and a resumed run must
        # give the same bytes. Finished inputs are not rewritten.
        missing = set(todo)
        for chunk in [list(range(c, min(c + CHUNK, len(rel)))) for c in range(0, len(rel), CHUNK)]:
            if missing.isdisjoint(chunk):
                continue
            res = relax.attribute(x[chunk], n_masks, tolerance=tolerance, seed=seed, max_masks=max_masks, control_variate=control_variate)
            for j, i in enumerate(chunk):
                if i not in missing:
                    continue
                split, idx, _ = positions[i]
                arrays = {k: getattr(res, k)[j].cpu().numpy() for k in ("importance", "uncertainty", "u_relax", "std_error", "n_masks", "converged", "threshold")}
                store.write_npz(f"{rel[i]}.npz", stage=rel[i], **arrays)
                png = overlay_png(x[i], arrays["importance"], arrays["uncertainty"], arrays["u_relax"], labels=names,
                                  title=f"{split}:{idx} — N = {int(arrays['n_masks'])} masks, max std. error {float(arrays['std_error'].max()):.4f}")
                store.write_bytes(f"{rel[i]}.png", png, stage=rel[i])
                store.mark_done(rel[i], cfg, [f"{rel[i]}.npz", f"{rel[i]}.png"], {"n_masks": int(arrays["n_masks"])})
                if not bool(arrays["converged"]):
                    info(f"warning: {split}:{idx} did not reach --tolerance {tolerance} within --max-masks {max_masks}")
        stored = [store.read_npz(f"{name}.npz") for name in rel]
        result = _stack(stored)
        ev = evaluate_relax(relax, x, result, n_masks=n_masks, tolerance=tolerance, seed=seed, steps=eval_steps, sanity=not no_sanity, max_masks=max_masks, control_variate=control_variate,
                            foreground="nonzero" if spatial and localisation else None)
        ev["inputs"] = [f"{split}:{idx}" for split, idx, _ in positions]
        ev["n_masks"] = [int(np.asarray(s["n_masks"]).reshape(-1)[0]) for s in stored]
        ev["settings"] = cfg
        store.write_json("relax/evaluation.json", ev, stage="relax/evaluation")
    click.echo(f"RELAX maps of {len(rel)} input(s) written to {store.root / 'relax'} (npz + png per input, evaluation.json)")
    for name, m in ev["maps"].items():
        click.echo(f"  {name:9s} deletion AUC {m['deletion_auc']:.4f} · insertion AUC {m['insertion_auc']:.4f}")
    if "sanity_check" in ev:
        sc = ev["sanity_check"]
        verdict = "not decided (needs ≥ 3 inputs for the null)" if sc["passed"] is None else "passed" if sc["passed"] else "FAILED"
        thr = "" if sc.get("threshold") is None else f" (threshold {sc['threshold']:.3f} from mismatched inputs)"
        click.echo(f"  sanity check (randomised encoder): Spearman {sc['spearman_mean']:.3f}, SSIM {sc['ssim_mean']:.3f}{thr} → {verdict}")


def _stack(stored: list[dict]):
    import numpy as np
    import torch

    from ..methods.relax import RelaxResult

    scalars = ("n_masks", "converged", "threshold")  # saved as 1-element arrays
    t = {k: torch.as_tensor(np.stack([np.asarray(s[k]).reshape(-1)[0] if k in scalars else s[k] for s in stored])) for k in stored[0]}
    return RelaxResult(t["importance"], t["uncertainty"], t["u_relax"], t["std_error"], t["n_masks"], t["converged"], t["threshold"])
