"""`Krepes`: representer landmarks of a frozen SSL encoder (sklearn-like fit / explain).

    k = Krepes(encoder, objective="simclr").fit(train_x, augment=make_augment(dataset))
    result = k.explain(test_x)        # top-K landmarks per test point, IS, attract/repel sign

train_x / test_x: arrays, tensors, map-style torch Datasets or DataLoaders with shuffle=False
(`sslaudit.data.inputs.as_rows`); both are held in memory as float32.

Pipeline: eNTK of the encoder (sslaudit.kernels) → landmarks → K_mm, K(train, landmarks) →
Nyström basis and PC point Ã0, centring γ → `step` mode: one Gauss–Newton step on the SSL loss
of the kernel model over two seeded augmented views per (sub-sampled) training sample; `fit`
mode: the representer regression onto the network's embeddings → scores. With a `cache`
(a RunStore, written under its lock) the kernel blocks, landmarks and the step are named stages
reused by a rerun whose inputs did not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ...data.augment import as_augment
from ...data.inputs import as_rows, float32_rows
from ...errors import UserError
from ...progress import info, warn
from ...seeding import numpy_rng, torch_generator
from .gauss_newton import KernelLossProblem, StepConfig, ViewBatches, gauss_newton_step
from .kernel_model import KernelModel, check_kernel_values, pc_model
from .losses import KernelSSLLoss
from .result import KrepesResult
from ...compute.memory import available_budget, format_size, in_use_bytes, parse_size
from ...parsing import keyword_or, number, number_list
from ...compute.ooc import DiskMatrix, drop_stale, stored_matrix
from .stages import _from_json_array, _json_array, fingerprint, module_fingerprint, view_kernel_block
from .scores import SIGNS, n_distinct_top1

EXACT_MAX = 5000
MODES = ("step", "fit")
MEMORY_RESERVE = 512 << 20  # kept free under max_memory for the test rows and the diagnostics


@dataclass
class KrepesConfig:
    """Options of a KREPES explanation (saved beside the results)."""

    objective: str = field(default="simclr", metadata={"cli": False, "help": "SSL objective of the kernel model's step: simclr, barlow, vicreg or byol (a run's own objective)."})
    kernel: str = field(default="pntk", metadata={"choices": ("pntk", "trntk"), "help": "eNTK reduction: pntk (sum of outputs) or trntk (trace over outputs, d× the cost)."})
    normalize: bool = field(
        default=True, metadata={"flag": "--raw-kernel", "help": "Use the raw eNTK instead of the cosine-normalised one (the raw one tends to give the same 'hub' landmarks to every test point)."}
    )
    landmarks: int | str = field(
        default="auto",
        metadata={"parse": keyword_or("auto", int, "--landmarks", "256", what="number of landmarks"), "metavar": "M|auto", "help": "Number of landmarks m, or auto = min(n, max(256, ⌈2√n⌉))."},
    )
    selection: str = field(default="uniform", metadata={"choices": ("uniform", "kmeans++", "leverage"), "help": "How landmarks are chosen (kernel k-means++ and ridge leverage are label-free)."})
    mode: str = field(
        default="step",
        metadata={"choices": MODES, "help": "step: one Gauss–Newton step on the SSL loss of the kernel model (the paper's); fit: regress the kernel model onto the network's embeddings."},
    )
    top_k: int = field(default=10, metadata={"parse": number(int, "--top-k", "10", minimum=1), "help": "Representer landmarks kept per test point."})
    rank: int | None = field(default=None, metadata={"parse": number(int, "--rank", "64", minimum=1), "help": "Nyström rank r [default: min(embedding width, numerical rank of K_mm)]."})
    nystrom_floor: float = field(
        default=0.0,
        metadata={
            "parse": number(float, "--nystrom-floor", "1e-3", minimum=0, maximum=0.999),
            "metavar": "SHARE",
            "help": "Keep only Nyström eigenvalues ≥ this share of the largest (near-null ones make the PC point and fit weights tail noise); 0 = off.",
        },
    )
    nystrom_variance: float | None = field(
        default=None,
        metadata={
            "parse": number(float, "--nystrom-variance", "0.99", positive=True, maximum=1),
            "metavar": "SHARE",
            "help": "Keep the fewest Nyström eigenpairs whose eigenvalues sum to this share of K_mm's trace [default: off].",
        },
    )
    centre_kmm: bool = field(default=False, metadata={"flag": "--centre-kmm", "help": "Eigendecompose the centred landmark kernel H K_mm H (kernel PCA about the landmarks' mean) instead of K_mm."})
    sign: str = field(
        default="radial",
        metadata={
            "choices": SIGNS,
            "help": "Attract/repel sign: contrastive (does the landmark's contribution move the test point's embedding towards the landmark's, to first order in cosine) or radial (⟨c_l, f(x_t)⟩, the older sign).",
        },
    )
    lam: float | str = field(
        default="auto",
        metadata={
            "flag": "--lambda",
            "metavar": "MULTIPLE|auto",
            "parse": keyword_or("auto", float, "--lambda", "10", positive=True),
            "help": "Damping of the step as a multiple of the λ scale (the Gauss–Newton curvature along the loss gradient), or auto (label-free: chosen by --lambda-rule over --lambda-grid).",
        },
    )
    lambda_grid: tuple = field(default=(0.1, 1.0, 10.0), metadata={"parse": number_list("--lambda-grid", "0.1,1,10", lo=0, open_lo=True), "help": "Multiples of the λ scale tried by --lambda auto."})
    lambda_scale: str = field(
        default="gradient-curvature",
        metadata={"choices": ("gradient-curvature", "mean-eigenvalue"), "help": "Unit of λ: gradient-curvature (gᵀGg/gᵀg, g = ∇L) or mean-eigenvalue (Hutchinson tr(G)/(mr), the old unit)."},
    )
    lambda_rule: str = field(
        default="heldout",
        metadata={
            "choices": ("heldout", "entropy"),
            "help": "How --lambda auto chooses: heldout (lowest SSL loss of the kernel model on a fresh, seeded augmentation draw) or entropy (spectral-entropy peak of ÃᵀÃ; barely moves, kept as a diagnostic).",
        },
    )
    heldout_sample: int = field(
        default=16384, metadata={"parse": number(int, "--heldout-sample", "16384", minimum=2), "help": "Step rows (a seeded subset) whose fresh pair of views scores the λ candidates."}
    )
    step_basis: str = field(
        default="eigen",
        metadata={
            "choices": ("eigen", "landmark"),
            "help": "eigen: the step in the Nyström eigenbasis (view rows rotated once, float32 products); landmark: the landmark-basis reference (float64, slower).",
        },
    )
    step_dtype: str = field(default="float32", metadata={"choices": ("float32", "float64"), "help": "Precision of the eigenbasis step's products (reductions and CG are float64)."})
    step_sample: int | str = field(
        default=131072,
        metadata={
            "parse": keyword_or("all", int, "--step-sample", "131072", minimum=2),
            "metavar": "N|all",
            "help": "Training samples (two views each) used by the step at most (seeded subsample), or all.",
        },
    )
    ssl_batch_size: int = field(default=256, metadata={"parse": number(int, "--ssl-batch-size", "256", minimum=2), "help": "SSL batch size of the kernel model's loss (separate from --block-size)."})
    block_size: int = field(default=1024, metadata={"parse": number(int, "--block-size", "1024", minimum=1), "help": "Rows per kernel block (bounds memory; results do not depend on it)."})
    cg_max_iter: int = field(
        default=50, metadata={"parse": number(int, "--cg-max-iter", "50", minimum=1), "help": "Conjugate-gradient iterations at most (one multi-shift CG run solves every λ candidate)."}
    )
    cg_tol: float = field(default=1e-6, metadata={"parse": number(float, "--cg-tol", "1e-6", positive=True), "help": "Relative CG residual at which CG stops."})
    fit_ridge: float | str = field(
        default="gcv", metadata={"parse": keyword_or("gcv", float, "--fit-ridge", "0.01", positive=True), "help": "fit mode: ridge μ, or gcv (label-free generalised cross-validation)."}
    )
    exact: bool = field(default=False, metadata={"flag": "--exact", "help": "Exact full kernel model: every training sample is a landmark and the kernel comes from per-sample gradients (n ≤ 5000)."})
    objective_params: dict = field(default_factory=dict, metadata={"cli": False, "help": "Objective hyper-parameters (temperature, lambd, ...), as the encoder was trained."})
    path: str = field(
        default="auto", metadata={"choices": ("auto", "factorised", "general"), "help": "eNTK path: auto, factorised (MLP/conv layers, no per-sample gradients) or general (per-sample gradients)."}
    )
    projection_dim: int | None = field(
        default=None, metadata={"parse": number(int, "--projection-dim", "4096", minimum=1), "help": "General eNTK path: random projection width of the per-sample gradients [default: none]."}
    )
    kernel_params: str | None = field(
        default=None,
        metadata={
            "metavar": "all|last-stage|bn|bn+last|NAMES",
            "help": "eNTK parameter subset: all [default], last-stage (the last block and what follows it), bn (BatchNorm affine parameters), bn+last, or comma-separated module / parameter names; the kernel is exact for those parameters.",
        },
    )
    layer_projection_dim: int | None = field(
        default=None,
        metadata={
            "parse": number(int, "--layer-projection-dim", "16", minimum=1),
            "metavar": "K",
            "help": "Factorised eNTK path: project each Conv2d / Linear weight gradient per layer to k×k (LoGra-style Kronecker sketch, unbiased) [default: none].",
        },
    )
    precision: str = field(
        default="float64",
        metadata={"choices": ("float64", "float32"), "help": "eNTK factor precision: float64 (block sizes change nothing beyond 1e-15) or float32 (half the memory and time, ~1e-6 relative)."},
    )
    kernel_fidelity_sample: int = field(
        default=0,
        metadata={
            "parse": number(int, "--kernel-fidelity-sample", "64", minimum=0),
            "help": "With --kernel-params / --layer-projection-dim: compare the kernel and its landmark rankings with the full per-sample-gradient kernel on this many seeded training samples (0: off; e.g. 64).",
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of every random draw."})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda."})
    max_memory: int | str | None = field(default=None, metadata={"help": "Memory bound (e.g. '6GB'): sets the kernel block sizes so peak RSS stays under it; None = block_size rows."})

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown KREPES mode {self.mode!r}: use 'step' or 'fit'")
        if int(self.top_k) < 1:
            raise UserError(f"top_k must be ≥ 1, got {self.top_k}")
        if int(self.ssl_batch_size) < 2:
            raise UserError(f"the SSL batch size must be ≥ 2, got {self.ssl_batch_size}")
        if self.step_sample != "all" and (isinstance(self.step_sample, str) or int(self.step_sample) < 2):
            raise UserError(f"step_sample must be ≥ 2, got {self.step_sample}")
        if self.lam != "auto" and not float(self.lam) > 0:
            raise UserError(f"lambda must be a positive multiple of the λ scale ({self.lambda_scale}) or 'auto', got {self.lam}")
        if self.lambda_scale not in ("gradient-curvature", "mean-eigenvalue"):
            raise UserError(f"lambda_scale must be gradient-curvature or mean-eigenvalue, got {self.lambda_scale!r}")
        if self.lambda_rule not in ("heldout", "entropy"):
            raise UserError(f"lambda_rule must be heldout or entropy, got {self.lambda_rule!r}")
        if self.step_basis not in ("eigen", "landmark"):
            raise UserError(f"step_basis must be eigen or landmark, got {self.step_basis!r}")
        if self.step_dtype not in ("float32", "float64"):
            raise UserError(f"step_dtype must be float32 or float64, got {self.step_dtype!r}")
        if int(self.heldout_sample) < 2:
            raise UserError(f"heldout_sample must be ≥ 2, got {self.heldout_sample}")
        if not self.lambda_grid or any(not float(x) > 0 for x in self.lambda_grid):
            raise UserError(f"lambda_grid needs one or more positive multiples, got {self.lambda_grid}")
        if self.rank is not None and int(self.rank) < 1:
            raise UserError(f"rank must be ≥ 1, got {self.rank}")
        if self.sign not in SIGNS:
            raise UserError(f"sign must be one of {', '.join(SIGNS)}, got {self.sign!r}")
        if not 0 <= float(self.nystrom_floor) < 1:
            raise UserError(f"nystrom_floor must be in [0, 1) (a share of the largest eigenvalue, e.g. 1e-3), got {self.nystrom_floor}")
        if self.nystrom_variance is not None and not 0 < float(self.nystrom_variance) <= 1:
            raise UserError(f"nystrom_variance must be in (0, 1] (e.g. 0.99), got {self.nystrom_variance}")
        if self.max_memory is not None:
            parse_size(self.max_memory)
        if self.layer_projection_dim is not None and int(self.layer_projection_dim) < 1:
            raise UserError(f"--layer-projection-dim {self.layer_projection_dim}: must be a positive integer (e.g. 16)")
        if int(self.kernel_fidelity_sample) < 0 or int(self.kernel_fidelity_sample) == 1:
            raise UserError(f"--kernel-fidelity-sample {self.kernel_fidelity_sample}: must be 0 (off) or ≥ 2 (e.g. 64)")
        if self.exact and (self.kernel_params not in (None, "all") or self.layer_projection_dim is not None):
            raise UserError("--exact uses the full per-sample-gradient kernel; drop --kernel-params / --layer-projection-dim or drop --exact")
        KernelSSLLoss(self.objective)  # validates the objective

    def to_json(self) -> dict:
        d = asdict(self)
        d["lambda_grid"] = list(self.lambda_grid)
        return d


class Krepes:
    """Representer landmarks of `encoder` (see the module docstring); options in `KrepesConfig`."""

    def __init__(self, encoder: nn.Module, *, engine=None, cache=None, encoder_id: str | None = None, **options):
        """`encoder_id`: the run's encoder identity (cache keys); default: a hash of the encoder's state."""
        unknown = set(options) - set(KrepesConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown Krepes option(s): {sorted(unknown)}")
        self.config = KrepesConfig(**options)
        self.config.check()
        self.encoder = encoder.eval()
        self.engine = engine
        self.cache = cache
        self.encoder_id = encoder_id
        self.stages: dict[str, str] = {}  # stage → "computed" | "reused"
        self._lf = None

    # ---- cached stages ------------------------------------------------------------------------
    def _stage(self, name: str, key: dict, compute) -> dict:
        if self.cache is None:
            self.stages[name] = "computed"
            return compute()
        stage, rel = f"krepes/{name}", f"krepes/cache/{name}.npz"
        if self.cache.stage_done(stage, key):
            self.stages[name] = "reused"
            return self.cache.read_npz(rel)
        out = compute()
        with self.cache.lock():
            self.cache.write_npz(rel, stage=stage, **out)
            self.cache.mark_done(stage, key, [rel])
        self.stages[name] = "computed"
        return out

    # ---- fitting ----------------------------------------------------------------------------------
    def fit(self, train_x, augment=None, train_embeddings: np.ndarray | None = None) -> "Krepes":
        """Kernel, landmarks, Nyström basis, PC point and the surrogate of the configured mode.

        train_x: an array, a tensor, a map-style torch Dataset or a DataLoader with shuffle=False
        (`sslaudit.data.inputs.as_rows`), held in memory as float32; landmark positions are rows of it."""
        from ...kernels import EntkKernel, fit_nystrom, resolve_landmark_count, select_landmarks

        cfg = self.config
        self.train_x = train_x = float32_rows(train_x, "train_x")  # an image folder stays on disk, decoded block by block
        n = len(train_x)
        if cfg.exact and n > EXACT_MAX:
            raise UserError(f"--exact builds the full {n}×{n} kernel by per-sample gradients; it is limited to n ≤ {EXACT_MAX}: drop --exact (Nyström) or subsample")
        self.augment, self.train_embeddings = (None if augment is None else as_augment(augment)), train_embeddings
        with torch.no_grad():
            d = int(self.encoder(torch.as_tensor(train_x[:2], device=cfg.device)).shape[1])
        self.kernel = (
            None
            if cfg.exact
            else EntkKernel(
                self.encoder,
                kind=cfg.kernel,
                normalize=cfg.normalize,
                path=cfg.path,
                projection_dim=cfg.projection_dim,
                block_size=cfg.block_size,
                seed=cfg.seed,
                device=cfg.device,
                params=cfg.kernel_params,
                layer_projection_dim=cfg.layer_projection_dim,
                precision=cfg.precision,
            )
        )
        self.base_key = {
            "encoder": self.encoder_id or module_fingerprint(self.encoder),
            "train": fingerprint(train_x),
            "kind": cfg.kernel,
            "normalize": cfg.normalize,
            "path": cfg.path,
            "projection_dim": cfg.projection_dim,
            "exact": cfg.exact,
            "seed": cfg.seed,
        }
        if cfg.kernel_params not in (None, "all") or cfg.layer_projection_dim is not None:  # keys of older runs unchanged
            self.base_key.update({"kernel_params": cfg.kernel_params, "layer_projection_dim": cfg.layer_projection_dim})
        if cfg.precision != "float64":
            self.base_key["precision"] = cfg.precision
        m = n if cfg.exact else resolve_landmark_count(cfg.landmarks, n)
        self.cost_plan = None if cfg.exact else self._plan_before(n, m)
        self.lm_key = {**self.base_key, "m": m, "selection": "all" if cfg.exact else cfg.selection}
        if cfg.exact:
            self.landmarks = np.arange(n)
        else:
            self.landmarks = self._stage("landmarks", self.lm_key, lambda: {"positions": select_landmarks(self.kernel, train_x, m, cfg.selection, cfg.seed, engine=self.engine)})["positions"].astype(
                np.int64
            )
        self.k_mm = check_kernel_values(self._stage("kernel_mm", self.lm_key, lambda: {"k": self._landmark_kernel()})["k"], "between landmarks (K_mm)")
        self._plan_memory(m)
        if cfg.exact:  # every training sample is a landmark: K(train, landmarks) = K_mm
            self.k_train = self.k_mm
        elif self.cache is not None:  # out of core: float32 part files of the run store, resumable
            with self.cache.lock():
                self.k_train, done = stored_matrix(
                    self.cache, "krepes/kernel_train", {**self.lm_key, "format": "parts-f32"}, n, m, lambda s, e: (b for _, _, b in self._stream(train_x[s:e], f"K(train[{s}:{e}], landmarks)"))
                )
            self.stages["kernel_train"] = "computed" if done else "reused"
        else:
            self.k_train = check_kernel_values(self._stage("kernel_train", self.lm_key, lambda: {"k": self._rows_to_landmarks(train_x, "K(train, landmarks)")})["k"], "K(train, landmarks)")
        self.basis = fit_nystrom(
            self.k_mm,
            rank=d if cfg.rank is None else int(cfg.rank),
            landmarks=self.landmarks,
            floor=float(cfg.nystrom_floor),
            variance=None if cfg.nystrom_variance is None else float(cfg.nystrom_variance),
            centre=bool(cfg.centre_kmm),
        )
        self.pc = pc_model(self.basis.a0, self.k_train, block=self.read_rows)
        self._models: dict[str, KernelModel] = {}
        self.step_result = self.fit_result = None
        self.model = self.surrogate(cfg.mode)
        return self

    def kernel_parameters(self) -> dict:
        """Which parameters θ the eNTK differentiates (subset spec, counts) — stated in config.json / fidelity.json."""
        from ...kernels.subset import describe_params

        if self.kernel is None:
            return {"spec": "all", **describe_params(self.encoder, [n for n, p in self.encoder.named_parameters() if p.requires_grad])}
        return {"spec": self.config.kernel_params or "all", **describe_params(self.kernel.module, self.kernel.names)}

    @property
    def path_used(self) -> str:
        return "exact" if self.kernel is None else self.kernel.path_used

    @property
    def path_reason(self) -> str:
        return "exact per-sample-gradient kernel (--exact)" if self.kernel is None else self.kernel.path_reason

    def _landmark_factors(self):
        if self._lf is None:
            from ...kernels import compute_factors

            self._lf = compute_factors(self.kernel, self.train_x, rows=self.landmarks, engine=self.engine, desc="eNTK factors (landmarks)")
        return self._lf

    def _landmark_kernel(self) -> np.ndarray:
        if self.kernel is None:
            from ...kernels import exact_kernel

            x = np.asarray(self.train_x, dtype=np.float32)  # --exact: n ≤ EXACT_MAX rows
            return exact_kernel(self.encoder, x, x, kind=self.config.kernel, normalize=self.config.normalize)
        lf = self._landmark_factors()
        return self.kernel.between(lf, lf).cpu().numpy()

    def _plan_before(self, n: int, m: int) -> dict:
        """Estimate the eNTK's memory and time from the encoder before any kernel work; refuse (one-line
        UserError naming the options) when the landmark factors and a 16-row block cannot fit under
        max_memory (or 90% of the available memory), and cap the kernel's block rows to what fits."""
        from ...compute.plan import encoder_cost, plan_entk

        cfg, kern = self.config, self.kernel
        cost = encoder_cost(
            kern.module,
            torch.as_tensor(self.train_x[:1]).to(kern.dtype),
            selected=kern.names,
            kind=cfg.kernel,
            layer_projection_dim=cfg.layer_projection_dim if kern.path_used == "factorised" else None,
        )
        if kern.path_used == "general":
            cost.factor_numbers = (cfg.projection_dim or cost.n_selected) * (cost.output_dim if cfg.kernel == "trntk" else 1)
        budget = parse_size(cfg.max_memory) if cfg.max_memory is not None else available_budget()
        plan = plan_entk(
            cost,
            n_rows=n,
            m=m,
            itemsize=kern.dtype.itemsize,
            budget=budget,
            in_use=in_use_bytes(),
            reserve=MEMORY_RESERVE,
            block_size=cfg.block_size,
            budget_label=None if cfg.max_memory is not None else f"the available memory ({format_size(budget)}, no --max-memory given)",
        )
        kern.block_size = max(1, min(kern.block_size, plan.block_rows))
        self._activation_bytes = 3 * cost.activation_numbers * kern.dtype.itemsize
        out = plan.to_json()
        out["budget"], out["budget_from"] = budget, "max_memory" if cfg.max_memory is not None else "90% of available memory"
        info(
            f"krepes plan: {cost.n_selected:,} of {cost.n_parameters:,} parameters, {format_size(plan.bytes_per_factor_row)} of eNTK factors per row, "
            f"landmark factors {format_size(plan.landmark_factor_bytes)}, blocks of {plan.block_rows} rows, peak ≈ {format_size(plan.peak_bytes)}, "
            f"≥ {plan.seconds:.0f} s of kernel work"
        )
        return out

    def _plan_memory(self, m: int) -> None:
        """Rows per kernel block (`block_rows`) and per read of stored blocks (`read_rows`) under max_memory.

        A kernel block of B rows holds its eNTK factors (bytes_per_row each) and about six B×2m
        float64 arrays (both views' rows, the normalised products and their temporaries); a read
        holds a float32 and a float64 copy of its rows. What the process already holds (inputs,
        model, libraries) is measured, plus a reserve for the test rows and the diagnostics.
        """
        cfg = self.config
        if self.kernel is not None:
            self.kernel.factors(self.train_x[:2])  # measures bytes_per_row
        # a block holds its factors twice while the layers' parts are concatenated (see compute/plan.py)
        per_row = 2 * (getattr(self.kernel, "bytes_per_row", None) or 0) + 6 * 2 * m * 8 + getattr(self, "_activation_bytes", 0)
        if cfg.max_memory is None:
            self.block_rows, self.read_rows, self.memory_plan = int(cfg.block_size), 65536, None
            return
        budget = parse_size(cfg.max_memory)
        reserve = MEMORY_RESERVE
        now = in_use_bytes()
        avail = budget - now - reserve
        cap = cfg.block_size if self.kernel is None else min(cfg.block_size, self.kernel.block_size)  # never above the cost plan's rows
        rows = int(min(cap, avail // per_row)) if avail > 0 else 0
        if rows < min(16, cap):
            need = now + reserve + min(16, cap) * per_row
            raise UserError(
                f"--max-memory {format_size(budget)} is below what this run needs (about {format_size(need)}: {format_size(now)} already "
                f"in use, {format_size(reserve)} reserve, kernel blocks of {format_size(per_row)} per row); raise it or use fewer --landmarks"
            )
        self.block_rows = rows
        self.read_rows = int(max(256, min(65536, avail // (2 * m * 12))))
        self.memory_plan = {"max_memory": budget, "rss_at_plan": now, "reserve": reserve, "block_rows": rows, "read_rows": self.read_rows, "bytes_per_block_row": per_row}

    def _stream(self, x, desc: str):
        from ...kernels import stream_kernel_blocks

        return stream_kernel_blocks(self.kernel, x, self._landmark_factors(), self.block_rows, self.engine, desc)

    def _rows_to_landmarks(self, x, desc: str) -> np.ndarray:
        """K(x, landmarks): float32 for the big training block (float64 for small ones)."""
        if self.kernel is None:
            from ...kernels import exact_kernel

            return exact_kernel(self.encoder, x, self.train_x[self.landmarks], kind=self.config.kernel, normalize=self.config.normalize)
        out = np.empty((len(x), len(self.landmarks)), dtype=np.float32 if len(x) > 4 * self.config.block_size else np.float64)
        for s, e, block in self._stream(x, desc):
            out[s:e] = block
        return out

    def kernel_rows(self, x, name: str | None = None) -> np.ndarray:
        """K(x, landmarks) (T×m), cached as stage krepes/kernel_<name> when a name and a cache are given.

        x: an array, a tensor, a map-style torch Dataset or a DataLoader with shuffle=False."""
        x = np.asarray(as_rows(x, name or "test_x"), dtype=np.float32)
        compute = lambda: {"k": self._rows_to_landmarks(x, f"K({name or 'test'}, landmarks)")}  # noqa: E731
        if name is None:
            return check_kernel_values(compute()["k"], "K(test, landmarks)")
        key = {**self.lm_key, "x": fingerprint(x)}
        return check_kernel_values(self._stage(f"kernel_{name}", key, compute)["k"], f"K({name}, landmarks)")

    # ---- the two surrogates --------------------------------------------------------------------------
    def surrogate(self, mode: str) -> KernelModel:
        """The kernel model of `mode` ('step' or 'fit'), computed once."""
        if mode not in MODES:
            raise UserError(f"unknown KREPES mode {mode!r}: use 'step' or 'fit'")
        if mode not in self._models:
            self._models[mode] = self._step_model() if mode == "step" else self._fit_model()
        return self._models[mode]

    def step_rows(self) -> np.ndarray:
        """Positions of the training samples the step uses (all, or a seeded subsample of step_sample)."""
        n, ss = len(self.train_x), self.config.step_sample
        if ss == "all" or n <= int(ss):
            return np.arange(n)
        return np.sort(numpy_rng(self.config.seed, "krepes", "step-sample").choice(n, int(ss), replace=False))

    def _views(self) -> dict:
        cfg = self.config
        rows = self.step_rows()
        key = {**self.lm_key, "step_sample": cfg.step_sample, "augment": self.augment.config(), "augment_type": type(self.augment).__name__}

        def draw():
            g = torch_generator(cfg.seed, "krepes", "views")
            return [self.augment.view(0).sample(len(rows), g), self.augment.view(1).sample(len(rows), g)]

        if self.kernel is not None and self.cache is not None:
            return self._views_on_disk(rows, key, draw)

        return self._stage("kernel_views", key, lambda: self._view_kernels(rows, draw()))

    def _view_kernels(self, rows, params) -> dict:
        """K(view1, landmarks) and K(view2, landmarks) of `rows` under two drawn augmentations, in memory."""
        cfg = self.config
        if self.kernel is None:
            from ...kernels import exact_kernel

            xb = torch.as_tensor(self.train_x[rows])
            ks = [exact_kernel(self.encoder, self.augment.view(i).apply(xb, p).numpy(), self.train_x[self.landmarks], kind=cfg.kernel, normalize=cfg.normalize) for i, p in enumerate(params)]
            return {"k1": ks[0], "k2": ks[1], "rows": rows}
        k1 = np.empty((len(rows), len(self.landmarks)), dtype=np.float32)
        k2 = np.empty_like(k1)
        for s, e, (b1, b2) in self._view_blocks(rows, params, 0, len(rows)):
            k1[s:e], k2[s:e] = b1, b2
        return {"k1": k1, "k2": k2, "rows": rows}

    def _view_blocks(self, rows, params, start, stop):
        """(s, e, [K(view1), K(view2)]) for rows[start:stop] of the (ordered) step sample, through the engine."""
        from ...engine import block_ranges, get_engine

        engine = self.engine or get_engine("local")
        ranges = [(s + start, e + start) for s, e in block_ranges(stop - start, self.block_rows)]
        shared = {"kernel": self.kernel, "x": self.train_x, "rows": rows, "augment": self.augment, "params": params, "landmark_factors": self._landmark_factors().to("cpu")}
        for (s, e), pair in zip(ranges, engine.map(view_kernel_block, ranges, shared=shared, desc=f"K(views[{start}:{stop}], landmarks)")):
            yield s, e, pair

    def _views_on_disk(self, rows, key, draw) -> dict:
        """Both views' kernel rows as one n_step×2m float32 stored matrix, rows in SSL-batch order
        (batch i = stored rows [iB, (i+1)B)), so each batch of the step is one contiguous read."""
        from .gauss_newton import batch_order

        cfg = self.config
        order = batch_order(len(rows), cfg.ssl_batch_size, cfg.seed)
        m = len(self.landmarks)
        state = {}

        def compute_part(s, e):
            if "params" not in state:
                n_rows = len(rows)
                state["params"] = [{k: (v[torch.as_tensor(order)] if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == n_rows else v) for k, v in p.items()} for p in draw()]
            for _, _, (b1, b2) in self._view_blocks(rows[order], state["params"], s, e):
                yield np.hstack([b1, b2])

        with self.cache.lock():
            mat, done = stored_matrix(self.cache, "krepes/kernel_views", {**key, "ssl_batch_size": cfg.ssl_batch_size, "format": "parts-f32"}, len(order), 2 * m, compute_part)
        self.stages["kernel_views"] = "computed" if done else "reused"
        return {"disk": mat, "rows": rows}

    def heldout_rows(self) -> np.ndarray:
        """Positions of the training samples whose fresh views score the λ candidates (a seeded subset of the step rows)."""
        rows = self.step_rows()
        h = int(self.config.heldout_sample)
        if len(rows) <= h:
            return rows
        return np.sort(numpy_rng(self.config.seed, "krepes", "heldout-rows").choice(rows, h, replace=False))

    def _heldout_views(self) -> dict:
        """Kernel rows of a fresh, seeded pair of augmented views of `heldout_rows` (never used by the step itself)."""
        cfg = self.config
        rows = self.heldout_rows()
        key = {**self.lm_key, "step_sample": cfg.step_sample, "heldout_sample": cfg.heldout_sample, "augment": self.augment.config(), "augment_type": type(self.augment).__name__}

        def compute():
            g = torch_generator(cfg.seed, "krepes", "heldout-views")
            return self._view_kernels(rows, [self.augment.view(0).sample(len(rows), g), self.augment.view(1).sample(len(rows), g)])

        return self._stage("kernel_heldout", key, compute)

    def _step_problems(self, batches, held, loss: KernelSSLLoss, n_rows: int):
        """The step's problem and its held-out twin, in the configured basis."""
        cfg = self.config
        if cfg.step_basis == "landmark":
            keep = self._can_keep_step_point(n_rows * 2 * self.basis.rank * 8)
            self.step_point_kept = keep
            problem = KernelLossProblem(loss, batches, self.basis.a0, self.pc.gamma, keep_point=keep)
            heldout = None if held is None else KernelLossProblem(loss, held, self.basis.a0, self.pc.gamma)
            return problem, heldout
        from .eigenbasis import EigenbasisProblem, RotatedViews, point_bytes

        u, ev = self.basis.eigenvectors, self.basis.eigenvalues
        rotated = RotatedViews(batches, u, cfg.step_dtype)
        item = 4 if cfg.step_dtype == "float32" else 8
        keep = self._can_keep_step_point(point_bytes(len(rotated) * rotated.bs, self.basis.rank, cfg.ssl_batch_size, cfg.objective, item))
        self.step_point_kept = keep
        problem = EigenbasisProblem(loss, rotated, ev, self.pc.gamma, keep_point=keep)
        heldout = None if held is None else EigenbasisProblem(loss, RotatedViews(held, u, cfg.step_dtype, desc="krepes: rotating held-out view rows"), ev, self.pc.gamma)
        return problem, heldout

    def _step_model(self) -> KernelModel:
        cfg = self.config
        if self.augment is None:
            raise UserError("the step mode needs the augmentation the encoder was trained with: pass augment=make_augment(dataset) to fit(), or use mode='fit'")
        views = self._views()
        if "disk" in views:
            from .gauss_newton import StoredViewBatches

            batches = StoredViewBatches(views["disk"], cfg.ssl_batch_size, cfg.device)
        else:
            k1 = check_kernel_values(views["k1"], "K(views, landmarks)")
            k2 = check_kernel_values(views["k2"], "K(views, landmarks)")
            batches = ViewBatches(k1, k2, cfg.ssl_batch_size, cfg.seed, cfg.device)
        scfg = StepConfig(lam=cfg.lam, lambda_grid=tuple(cfg.lambda_grid), cg_tol=cfg.cg_tol, cg_max_iter=cfg.cg_max_iter, seed=cfg.seed, lambda_scale=cfg.lambda_scale, lambda_rule=cfg.lambda_rule)
        use_heldout = cfg.lam == "auto" and cfg.lambda_rule == "heldout"
        key = {
            **self.lm_key,
            "step_sample": cfg.step_sample,
            "augment": self.augment.config(),
            "objective": cfg.objective,
            "params": cfg.objective_params,
            "step": asdict(scfg),
            "ssl_batch_size": cfg.ssl_batch_size,
            "rank": self.basis.rank,
            "basis": cfg.step_basis,
            "dtype": cfg.step_dtype if cfg.step_basis == "eigen" else "float64",
            "heldout_sample": cfg.heldout_sample if use_heldout else None,
        }
        if self.basis.floor > 0 or self.basis.variance is not None or self.basis.centred:  # keys of older runs unchanged
            key["nystrom"] = {"floor": self.basis.floor, "variance": self.basis.variance, "centred": self.basis.centred}

        def compute():
            loss = KernelSSLLoss(cfg.objective, cfg.objective_params)
            held = None
            if use_heldout:
                hv = self._heldout_views()
                held = ViewBatches(
                    check_kernel_values(hv["k1"], "K(held-out views, landmarks)"), check_kernel_values(hv["k2"], "K(held-out views, landmarks)"), cfg.ssl_batch_size, cfg.seed, cfg.device
                )
            problem, heldout = self._step_problems(batches, held, loss, len(views["rows"]))
            res = gauss_newton_step(problem, scfg, None if self.cache is None else StoredStepCheckpoint(self.cache, key), heldout=heldout)
            lift = (lambda d: d) if cfg.step_basis == "landmark" else (lambda d: self.basis.eigenvectors @ d)  # noqa: E731
            s = res.summary()
            curve = s.pop("lambda_curve")
            s["step_basis"], s["step_dtype"] = cfg.step_basis, (cfg.step_dtype if cfg.step_basis == "eigen" else "float64")
            s["n_heldout_samples"] = int(len(held) * min(cfg.ssl_batch_size, len(hv["rows"]))) if held is not None else None
            return {"delta": lift(res.delta), "candidates": np.stack([lift(c["delta"]) for c in res.candidates]), "summary": _json_array(s), "curve": _json_array(curve)}

        out = self._stage("step", key, compute)
        if self.cache is not None:
            with self.cache.lock():  # the finished step supersedes its partial results
                StoredStepCheckpoint(self.cache, key).clear()
        self.step_result = _from_json_array(out["summary"])
        self.step_result["lambda_curve"] = _from_json_array(out["curve"])
        self.step_result["n_step_samples"] = int(len(views["rows"]))
        self.step_result["n_ssl_batches"] = int(len(views["rows"]) // min(cfg.ssl_batch_size, len(views["rows"])))
        self.step_candidates = out["candidates"]
        if not self.step_result["accepted"]:
            warn("no Gauss–Newton step lowered the kernel model's loss; scores are all zero — try a larger --lambda or --mode fit")
        return self.step_model_for(out["delta"])

    def _can_keep_step_point(self, nbytes: int) -> bool:
        """Whether the step's linearisation points (2·S·r float64) fit under max_memory beside what is in use
        (and the plan's reserve); if not, each product recomputes them."""
        if self.config.max_memory is None:
            return True
        return in_use_bytes() + nbytes + MEMORY_RESERVE <= parse_size(self.config.max_memory)

    def step_model_for(self, delta: np.ndarray) -> KernelModel:
        """The step-mode surrogate Ã0 + ΔÃ (γ fixed) for a given ΔÃ (e.g. another λ candidate)."""
        return KernelModel(self.basis.a0 + delta, self.pc.gamma.copy(), np.asarray(delta, dtype=np.float64), "step")

    def _fit_model(self) -> KernelModel:
        from .fit_mode import fit_representer

        if self.train_embeddings is None:
            from ...models.embed import embed

            self.train_embeddings = embed(self.encoder, self.train_x, device=self.config.device)
        res = fit_representer(self.k_train, self.basis.a0, self.pc.gamma, self.train_embeddings, self.config.fit_ridge, block=self.read_rows)
        self.fit_result = {"mu": res.mu, "mu_chosen_by": res.chosen_by, "r2": res.r2, "gcv_curve": res.gcv_curve}
        return res.model

    # ---- explaining -----------------------------------------------------------------------------------
    def explain(self, test_x=None, *, k_test: np.ndarray | None = None, mode: str | None = None, model: KernelModel | None = None, top_k: int | None = None) -> KrepesResult:
        """Representer landmarks of test inputs (give `test_x`, or their kernel rows `k_test`).

        test_x: an array, a tensor, a map-style torch Dataset or a DataLoader with shuffle=False."""
        if not hasattr(self, "model"):
            raise UserError("call fit(train_x, ...) before explain()")
        if k_test is None:
            if test_x is None:
                raise UserError("explain() needs test inputs (test_x) or their kernel rows (k_test)")
            k_test = self.kernel_rows(test_x)
        k_test = np.asarray(k_test, dtype=np.float64)
        model = model or self.surrogate(mode or self.config.mode)
        from ...engine import block_ranges, get_engine
        from .stages import score_block

        engine = self.engine or get_engine("local")
        kk = int(top_k or self.config.top_k)
        if kk < 1:
            raise UserError(f"--top-k must be ≥ 1, got {kk}")
        ranges = block_ranges(len(k_test), 1024) if len(k_test) else []
        shared = {"k_test": k_test, "a": model.a, "gamma": model.gamma, "weights": model.weights, "top_k": kk, "sign": self.config.sign}
        shared["f_landmarks"] = self.landmark_embeddings(model) if self.config.sign == "contrastive" else None
        parts = list(engine.map(score_block, ranges, shared=shared, desc="krepes scores"))
        if parts:
            f, top, scores, signs = (np.concatenate([p[i] for p in parts]) for i in range(4))
        else:
            w = min(kk, len(self.landmarks))
            f, top, scores, signs = np.zeros((0, model.width)), np.zeros((0, w), np.int64), np.zeros((0, w)), np.zeros((0, w), np.int8)
        return KrepesResult(
            landmarks=self.landmarks,
            top=top,
            top_scores=scores,
            top_signs=signs,
            landmark_norms=model.landmark_norms(),
            embeddings=f,
            kernel_rows=k_test,
            mode=model.mode,
            n_distinct_top1=n_distinct_top1(top),
            model=model,
        )

    def landmark_embeddings(self, model: KernelModel | None = None) -> np.ndarray:
        """Surrogate embeddings f(x̃_l) of the landmarks (m×r, from K_mm), which the contrastive sign compares with."""
        return (model or self.model).embed(self.k_mm)

    def train_surrogate(self, model: KernelModel | None = None, rows=None) -> np.ndarray:
        """Surrogate representations of the training samples at `rows` (default: all n, n×r — small n only)."""
        model = model or self.model
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            k = self.k_train.take(rows) if isinstance(self.k_train, DiskMatrix) else np.asarray(self.k_train[rows], dtype=np.float64)
            return model.embed(k)
        n, b = len(self.k_train), self.read_rows
        return np.concatenate([model.embed(self.k_train[s : s + b]) for s in range(0, n, b)]) if n else np.zeros((0, model.width))

    def summary(self) -> dict:
        cfg = self.config
        return {
            "mode": cfg.mode,
            "kernel": cfg.kernel,
            "normalized": cfg.normalize,
            "selection": "all" if cfg.exact else cfg.selection,
            "n_landmarks": int(len(self.landmarks)),
            "rank": int(self.basis.rank),
            "path_used": self.path_used,
            "path_reason": self.path_reason,
            "nystrom": self.basis.summary(),
            "step": self.step_result,
            "fit": self.fit_result,
            "parameters": "encoder parameters in eval() mode (BatchNorm affine parameters included, running statistics frozen)",
            "stages": dict(self.stages),
            "memory_plan": self.memory_plan,
            "cost_plan": getattr(self, "cost_plan", None),
            "kernel_parameters": self.kernel_parameters(),
            "layer_projection_dim": cfg.layer_projection_dim,
            "step_point_kept": getattr(self, "step_point_kept", None),
            "block_rows": self.block_rows,
            "storage": "disk (float32 part files, float64 reductions)" if isinstance(self.k_train, DiskMatrix) else "memory",
        }


class StoredStepCheckpoint:
    """The Gauss–Newton step's finished parts in RUN/krepes/cache/step-<config hash>/: a step killed
    after some λ candidates resumes at the next; parts of another configuration are dropped."""

    def __init__(self, store, key: dict):
        from ...store import config_hash

        self.store, self.folder = store, f"krepes/cache/step-{config_hash(key)}"

    def load(self, name: str) -> dict | None:
        rel = f"{self.folder}/{name}.npz"
        return self.store.read_npz(rel) if self.store.verify(rel) else None

    def save(self, name: str, arrays: dict) -> None:
        with self.store.lock():
            drop_stale(self.store, "krepes/cache/step", self.folder)
            self.store.write_npz(f"{self.folder}/{name}.npz", stage="krepes/step-parts", **arrays)

    def clear(self) -> None:
        drop_stale(self.store, "krepes/cache/step", keep_folder=None)
