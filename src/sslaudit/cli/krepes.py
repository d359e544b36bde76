"""`sslaudit krepes RUN`: representer landmarks of a trained run's encoder (KREPES)."""
from __future__ import annotations

import click

from ..errors import UserError
from .options import common, trust_option, number_or_keyword, sample_refs


def _landmarks(value: str):
    return number_or_keyword(value, "auto", int, f"--landmarks {value!r}: give an integer ≥ 2 or 'auto'")


def _lambda(value: str):
    return number_or_keyword(value, "auto", float, f"--lambda {value!r}: give a positive number (a multiple of the Gauss–Newton curvature along the gradient) or 'auto'",
                             f"--lambda {value}: must be > 0 (a multiple of the Gauss–Newton curvature along the gradient) or 'auto'")


def _step_sample(value: str):
    return number_or_keyword(value, "all", int, f"--step-sample {value!r}: give an integer ≥ 2 or 'all'", f"--step-sample {value}: must be ≥ 2 or 'all'", minimum=2)


@click.command("krepes")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--mode", type=click.Choice(["step", "fit"]), default="step", show_default=True,
              help="step: one Gauss–Newton step on the SSL loss of the kernel model (the paper's); fit: regress the kernel model onto the network's embeddings.")
@click.option("--both-modes", is_flag=True, help="Also compute the other mode and report both modes' fidelity side by side, with the one to trust.")
@click.option("--lambda-curve", is_flag=True, help="Also compute the fidelity of every λ tried by --lambda auto (uses labels; a diagnostic, never a selection).")
@click.option("--landmarks", "landmarks", default="auto", show_default=True, help="Number of landmarks m, or auto = min(n, max(256, ⌈2√n⌉)).")
@click.option("--selection", type=click.Choice(["uniform", "kmeans++", "leverage"]), default="uniform", show_default=True, help="How landmarks are chosen (kernel k-means++ and ridge leverage are label-free).")
@click.option("--kernel", type=click.Choice(["pntk", "trntk"]), default="pntk", show_default=True, help="eNTK reduction: pntk (sum of outputs) or trntk (trace over outputs, d× the cost).")
@click.option("--raw-kernel", is_flag=True, help="Use the raw eNTK instead of the cosine-normalised one (the raw one tends to give the same 'hub' landmarks to every test point).")
@click.option("--exact", is_flag=True, help="Exact full kernel model: every training sample is a landmark and the kernel comes from per-sample gradients (n ≤ 5000).")
@click.option("--top-k", type=int, default=10, show_default=True, help="Representer landmarks kept per test point.")
@click.option("--index", "index", multiple=True, help="Also explain this sample, e.g. test:17 or train:3 (repeatable); Split.index values.")
@click.option("--concept", "concept", multiple=True, help="Concept-conditioned scores: NAME=COLUMN==VALUE, NAME=label==VALUE or NAME=@FILE (one split:index per line). Repeatable.")
@click.option("--test-points", type=int, default=1000, show_default=True, help="Size of the seeded sample of the test split that is explained (plus any --index).")
@click.option("--lambda", "lam", default="auto", show_default=True, help="Damping of the step as a multiple of the Gauss–Newton curvature along the loss gradient, or auto (label-free: the lowest SSL loss on a fresh, seeded augmentation draw of the step rows, over 0.1, 1, 10).")
@click.option("--lambda-rule", type=click.Choice(["heldout", "entropy"]), default="heldout", show_default=True,
              help="How --lambda auto chooses: heldout (lowest SSL loss of the kernel model on a fresh, seeded augmentation draw) or entropy (spectral-entropy peak of ÃᵀÃ; barely moves, kept as a diagnostic).")
@click.option("--step-basis", type=click.Choice(["eigen", "landmark"]), default="eigen", show_default=True,
              help="eigen: the step in the Nyström eigenbasis (view rows rotated once, float32 products); landmark: the landmark-basis reference (float64, slower).")
@click.option("--rank", type=int, default=None, help="Nyström rank r (default min(embedding width, numerical rank of K_mm)).")
@click.option("--step-sample", default="131072", show_default=True, help="Training samples (two views each) used by the step at most (seeded subsample), or all.")
@click.option("--probe-sample", type=int, default=65536, show_default=True, help="Training rows (seeded subsample) the Δ-accuracy linear probes are fitted on.")
@click.option("--max-memory", default=None, help="Memory bound, e.g. 6GB or 512MB: kernel block sizes are set so peak RSS stays under it (large kernel blocks live on disk in RUN/krepes/cache).")
@click.option("--ssl-batch-size", type=int, default=256, show_default=True, help="SSL batch size of the kernel model's loss (separate from --block-size).")
@click.option("--block-size", type=int, default=1024, show_default=True, help="Rows per kernel block (bounds memory; results do not depend on it).")
@click.option("--cg-max-iter", type=int, default=50, show_default=True, help="Conjugate-gradient iterations at most (one multi-shift CG run solves every λ candidate).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Block-execution engine: local, or ray (kernel blocks and scores as tasks on a running Ray cluster).")
@click.option("--address", default=None, help="HOST:PORT of the Ray cluster's head (with --engine ray), as printed by `ray start --head`.")
@trust_option
@common
def command(run, mode, both_modes, lambda_curve, landmarks, selection, kernel, raw_kernel, exact, top_k, index, concept, test_points, lam, lambda_rule, step_basis, rank,
            step_sample, probe_sample, max_memory, ssl_batch_size, block_size, cg_max_iter, engine, address, seed, device, trust_code):
    """Representer landmarks (KREPES): which training samples shaped each test point's representation.

    Writes RUN/krepes/: landmarks.parquet (top-K landmarks per test point with IS and
    attract/repel sign), landmark_norms.parquet, fidelity.json (how far the surrogate can be
    trusted, how λ was chosen, a hub warning), anchoring.parquet, alignment_gap.parquet and
    alignment_gap_kernel.parquet (the same audit for the plain |k| ranking), concepts.parquet (with
    --concept). Kernel blocks are cached: changing only --top-k, --index or --concept reuses them.
    """
    import sslaudit
    from sslaudit.engine import get_engine
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.progress import info

    from sslaudit.methods.krepes.ooc import parse_size

    refs = sample_refs(index)
    step_sample = _step_sample(step_sample)
    if max_memory is not None:
        parse_size(max_memory)
    if probe_sample < 2:
        raise UserError(f"--probe-sample must be ≥ 2, got {probe_sample}")
    if engine == "local" and address:
        raise UserError("--address is only used with --engine ray")
    r = sslaudit.load(run, device=device, trust_code=trust_code)
    if top_k < 1:
        raise UserError(f"--top-k must be ≥ 1, got {top_k}")
    eng = get_engine(engine, address)
    with eng, r.store.lock():
        out = explain_run(
            r, test_points=test_points, refs=refs, concepts=concept, both_modes=both_modes, lambda_curve=lambda_curve, engine=eng,
            probe_sample=probe_sample, max_memory=max_memory,
            mode=mode, landmarks=_landmarks(landmarks), selection=selection, kernel=kernel, normalize=not raw_kernel, exact=exact,
            top_k=top_k, lam=_lambda(lam), lambda_rule=lambda_rule, step_basis=step_basis, rank=rank, step_sample=step_sample, ssl_batch_size=ssl_batch_size, block_size=block_size,
            cg_max_iter=cg_max_iter, seed=seed, device=device,
        )
        for name, df in out.tables.items():
            r.store.write_parquet(f"krepes/{name}.parquet", df, stage="krepes")
        for name, doc in out.documents.items():
            r.store.write_json(f"krepes/{name}.json", doc, stage="krepes")
    fid = out.documents["fidelity"]
    if fid.get("lambda_reason"):
        info(f"λ = {fid['lambda_multiple']:g}× the {fid.get('lambda_scale')} ({fid['lambda_chosen_by']}): {fid['lambda_reason']}")
    if fid.get("kendall_tau") is not None:
        info(f"surrogate fidelity: Δ accuracy {fid['delta_accuracy']:+.4f}, Kendall τ {fid['kendall_tau']:.3f} against the centred network "
             f"(raw {fid['kendall_tau_raw']:.3f}, whose ceiling is {fid['kendall_tau_ceiling']:.3f}), linear CKA {fid['linear_cka']:.3f}, "
             f"precision@1 {fid['precision_at_1']:.3f} (cosine baseline {fid['precision_at_1_baseline']:.3f}, largest |k| "
             f"{fid.get('precision_at_1_kernel', float('nan')):.3f}), {fid['n_distinct_top1']} distinct top-1 landmarks")
    if fid.get("hub_warning"):
        info(f"warning: {fid['hub_warning']}")
    click.echo(f"KREPES results written to {r.store.root / 'krepes'}")
