"""The KREPES lens: representer landmarks of a run's encoder (methods/krepes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..data.dataset import parse_sample_refs
from ..parsing import number
from .base import Lens, LensResult
from .config import nested, opt

AUDIT_STEP_SAMPLE = 8_192  # training samples in the audit's KREPES step when the data has more than 20,000
BIG_PROJECTION = 16  # the audit's per-layer gradient projection for encoders above compute.plan.BIG_BACKBONE parameters
BIG_STEP_SAMPLE = 2_048  # the audit's KREPES step sample for such encoders: every step row is two eNTK rows (ResNet-18 on 2 cores: 56 ms each, docs/scaling.md)
BIG_HELDOUT_SAMPLE = 1_024  # and the step rows whose fresh views score the λ candidates


@dataclass
class KrepesLensConfig:
    """Settings of the KREPES lens (saved in RUN/krepes/config.json): the explainer's own options
    (methods.krepes.KrepesConfig) and which test points are explained."""

    krepes: object = nested("sslaudit.methods.krepes.explainer:KrepesConfig")
    test_points: int = opt(1000, "Size of the seeded sample of the test split that is explained (plus any --index).", parse=number(int, "--test-points", "1000", minimum=0))
    index: tuple[str, ...] = opt((), "Also explain this sample, e.g. test:17 or train:3 (repeatable); Split.index values.", multiple=True, metavar="SPLIT:INDEX")
    concept: tuple[str, ...] = opt((), "Concept-conditioned scores: NAME=COLUMN==VALUE, NAME=label==VALUE or NAME=@FILE (one split:index per line). Repeatable.", multiple=True, metavar="SPEC")
    both_modes: bool = opt(False, "Also compute the other mode and report both modes' fidelity side by side, with the one to trust.", flag="--both-modes")
    lambda_curve: bool = opt(False, "Also compute the fidelity of every λ tried by --lambda auto (uses labels; a diagnostic, never a selection).", flag="--lambda-curve")
    linearise: str = opt(
        "backbone",
        "What the eNTK linearises and the Gauss–Newton step's SSL loss is applied to: backbone (the representation every lens explains) or projector "
        "(projector∘backbone, the output the loss was applied to in training; needs a run sslaudit trained).",
        choices=("backbone", "projector"),
    )
    probe_sample: int = opt(65536, "Training rows (seeded subsample) the Δ-accuracy linear probes are fitted on.", parse=number(int, "--probe-sample", "65536", minimum=2))

    def __post_init__(self):
        self.index = parse_sample_refs(self.index)


class KrepesLens(Lens):
    """Representer landmarks (KREPES): which training samples shaped each test point's representation.

    Writes RUN/krepes/: landmarks.parquet (top-K landmarks per test point with IS and
    attract/repel sign), landmark_norms.parquet, fidelity.json (how far the surrogate can be
    trusted, how λ was chosen, a hub warning), anchoring.parquet, alignment_gap.parquet and
    alignment_gap_kernel.parquet (the same audit for the plain |k| ranking), concepts.parquet (with
    --concept). Kernel blocks are cached: changing only --top-k, --index or --concept reuses them.
    """

    name = "krepes"
    title = "Representer landmarks (KREPES)"
    Config = KrepesLensConfig
    uses_engine = True
    needs_parameter_gradients = True

    def compute(self, run, cfg, ctx) -> LensResult:
        from ..data.dataset import parse_sample_ref
        from ..methods.krepes.pipeline import explain_run

        options = {k: v for k, v in asdict(cfg.krepes).items() if k not in ("objective", "objective_params")}
        out = explain_run(
            run,
            test_points=cfg.test_points,
            refs=[parse_sample_ref(r) for r in cfg.index],
            concepts=cfg.concept,
            both_modes=cfg.both_modes,
            lambda_curve=cfg.lambda_curve,
            engine=ctx.backend,
            probe_sample=cfg.probe_sample,
            linearise=cfg.linearise,
            **options,
        )
        documents = dict(out.documents)
        documents["explainer"] = documents.pop("config")  # RUN/krepes/config.json is the lens configuration
        return LensResult(tables=dict(out.tables), documents=documents)

    def describe(self, result, run):
        fid = result.documents["fidelity"]
        lines = []
        if fid.get("lambda_reason"):
            lines.append(f"λ = {fid['lambda_multiple']:g}× the {fid.get('lambda_scale')} ({fid['lambda_chosen_by']}): {fid['lambda_reason']}")
        if fid.get("kendall_tau") is not None:
            lines.append(
                f"surrogate fidelity: Δ accuracy {fid['delta_accuracy']:+.4f}, Kendall τ {fid['kendall_tau']:.3f} against the centred network "
                f"(raw {fid['kendall_tau_raw']:.3f}, whose ceiling is {fid['kendall_tau_ceiling']:.3f}), linear CKA {fid['linear_cka']:.3f}, "
                f"precision@1 {fid['precision_at_1']:.3f} (cosine baseline {fid['precision_at_1_baseline']:.3f}, largest |k| "
                f"{fid.get('precision_at_1_kernel', float('nan')):.3f}), {fid['n_distinct_top1']} distinct top-1 landmarks"
            )
        kp = fid.get("kernel_parameters") or {}
        if kp.get("spec", "all") != "all" or fid.get("layer_projection_dim"):
            proj = f", weight gradients projected per layer to {fid['layer_projection_dim']}×{fid['layer_projection_dim']}" if fid.get("layer_projection_dim") else ""
            lines.append(f"eNTK over {kp.get('spec', 'all')} parameters ({kp.get('n_parameters', 0):,} of {kp.get('n_parameters_total', 0):,}){proj}")
        kf = fid.get("kernel_fidelity")
        if kf and "relative_frobenius_error" in kf:
            top = kf["top"]
            lines.append(
                f"kernel fidelity on {kf['sample']} samples against the full per-sample-gradient kernel: relative error "
                f"{kf['relative_frobenius_error']:.3f}, top-{top} landmark agreement {kf[f'top{top}_landmark_agreement']:.2f}"
            )
        if fid.get("hub_warning"):
            lines.append(f"warning: {fid['hub_warning']}")
        return lines + [f"KREPES results written to {run.store.root / 'krepes'}"]

    def audit_config(self, run, *, focus, quick):
        from ..methods.krepes.explainer import KrepesConfig

        ds = run.dataset
        n_train, n_test = len(ds.train), len(ds.test)
        if quick:
            k = KrepesConfig(lam=10.0, step_sample=256, landmarks=min(n_train, 64), cg_max_iter=10)
            return KrepesLensConfig(krepes=k, index=tuple(focus), test_points=min(n_test, 30)), "quick audit: small samples and fixed settings (--quick)"
        test_points = min(n_test, 1000 if n_train > 20_000 else 300)
        notes = []
        if test_points < n_test:
            notes.append(f"Landmarks were computed for {test_points:,} seeded test points (of {n_test:,}) plus the focus samples.")
        k = KrepesConfig()
        from ..compute.plan import BIG_BACKBONE, parameter_count

        n_params = parameter_count(run.encoder)
        if n_params > BIG_BACKBONE:  # every landmark would keep all its per-sample weight gradients (ResNet-18: 45 MB each)
            k = replace(k, layer_projection_dim=BIG_PROJECTION)
            notes.append(
                f"The encoder has {n_params:,} parameters, so the eNTK used the per-layer gradient projection k = {BIG_PROJECTION} "
                f"(on a trained ResNet-18 it found the full kernel's top-1 landmark for 80% of test points, and 85% of its top-10, in a quarter of the time and 70% of the memory: docs/scaling.md); "
                f"`sslaudit krepes RUN` computes the full kernel (if --max-memory holds it)."
            )
            if n_train > BIG_STEP_SAMPLE:  # a step row costs two gradient passes of the whole network; the default would be 4 n of them
                k = replace(k, step_sample=BIG_STEP_SAMPLE, heldout_sample=BIG_HELDOUT_SAMPLE)
                notes.append(
                    f"The Gauss–Newton step used a seeded subsample of {BIG_STEP_SAMPLE:,} of the {n_train:,} training samples "
                    f"(two views each; λ scored on fresh views of {BIG_HELDOUT_SAMPLE:,} of them) to fit a CPU budget; landmarks and scores "
                    f"cover all of them. `sslaudit krepes RUN --step-sample all` uses every sample."
                )
        if n_train > 20_000 and k.step_sample > AUDIT_STEP_SAMPLE:  # the step's cost grows with its sample (each CG product is a pass over it); the kernel still covers all rows
            k = replace(k, step_sample=AUDIT_STEP_SAMPLE)
            notes.append(
                f"The Gauss–Newton step used a seeded subsample of {AUDIT_STEP_SAMPLE:,} of the {n_train:,} training samples "
                f"(two views each) to fit the audit's CPU budget; landmarks and scores cover all of them. "
                f"`sslaudit krepes RUN` uses up to 131,072."
            )
        if ds.kind == "image":
            notes.append("The Feature Alignment Gap applies to tabular data and is skipped on images.")
        return KrepesLensConfig(krepes=k, index=tuple(focus), test_points=test_points), " ".join(notes)

    def section(self, collector):
        return collector.krepes()
