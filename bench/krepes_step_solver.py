"""The Gauss–Newton step's solver before and after issue 18, on the same real kernel rows, in the same process.

- previous: the landmark basis (products O(S·m·r), float64), λ in multiples (1, 10, 100, 1000) of the mean GN
  eigenvalue from 8 Hutchinson probes, the spectral-entropy rule (what KREPES did before issue 18);
- landmark, new λ: the landmark basis with the new λ scale (curvature along ∇L, multiples 0.1, 1, 10);
- eigenbasis float64 / float32: the same step in the Nyström eigenbasis (view rows rotated once, ψ = K·U_r;
  products O(S·r²)), float32 products with float64 reductions (the new default) and in float64.

The kernel rows are the stored K(views, landmarks) of a finished `sslaudit krepes` run, cut to the first
`--samples` step samples (whole SSL batches, already in batch order); Ã0, γ and U_r are that run's. Each solver is
timed from the start point (loss, gradient and λ scale, plus the rotation for the eigenbasis) through CG and
backtracking of every candidate. Records products, seconds, and how far the eigenbasis steps are from the
landmark step at the same λ (relative difference of ΔÃ and of the outputs K·ΔÃ on the step rows, loss after).
The λ choice itself (held-out loss) is not part of this comparison: every solver's candidates are reported.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_step_solver.py bench/_runs/adult1m [--samples 4096]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402

from sslaudit.methods.krepes import gauss_newton as gn  # noqa: E402
from sslaudit.methods.krepes.eigenbasis import EigenbasisProblem, RotatedViews, to_landmarks  # noqa: E402
from sslaudit.methods.krepes.losses import KernelSSLLoss  # noqa: E402


class FirstBatches(gn.StoredViewBatches):
    """The first `n_batches` SSL batches of a stored [K¹ | K²] matrix."""

    def __init__(self, mat, batch_size: int, n_batches: int):
        super().__init__(mat, batch_size)
        self.n_batches = min(n_batches, super().__len__())

    def __len__(self) -> int:
        return self.n_batches


def counted(problem):
    calls = {"products": 0, "losses": 0}
    gm, val = problem.gn_matvec, problem.value
    problem.gn_matvec = lambda d: calls.__setitem__("products", calls["products"] + 1) or gm(d)
    problem.value = lambda a: calls.__setitem__("losses", calls["losses"] + 1) or val(a)
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", help="a run on which `sslaudit krepes` (step mode) has finished")
    ap.add_argument("--samples", type=int, default=4096, help="step samples used (first whole SSL batches of the run's views)")
    ap.add_argument("--out", default="krepes_step_solver")
    ap.add_argument("--skip-previous", action="store_true", help="leave out the previous solver (the slowest)")
    args = ap.parse_args()
    start_machine = machine()
    import sslaudit
    from sslaudit.data.augment import make_augment
    from sslaudit.methods.krepes.explainer import Krepes

    run = sslaudit.load(args.run)
    params = (run.config.get("train") or {}).get("params") or {}
    k = Krepes(run.encoder, objective=run.objective, objective_params=params, cache=run.store, max_memory="6GB")
    k.fit(run.dataset.train.x, augment=make_augment(run.dataset))  # every stage reused from the run
    if k.stages.get("step") != "reused":
        sys.exit(f"{args.run}: run `sslaudit krepes {args.run}` first (its step was not stored); stages {k.stages}")
    views = k._views()["disk"]
    kc = k.config
    loss = KernelSSLLoss(kc.objective, kc.objective_params)
    n_batches = args.samples // kc.ssl_batch_size
    new_cfg = gn.StepConfig(lam="auto", lambda_grid=(0.1, 1.0, 10.0), cg_tol=kc.cg_tol, cg_max_iter=kc.cg_max_iter, seed=kc.seed, lambda_rule="entropy")
    old_cfg = gn.StepConfig(lam="auto", lambda_grid=(1.0, 10.0, 100.0, 1000.0), cg_tol=kc.cg_tol, cg_max_iter=kc.cg_max_iter, seed=kc.seed, lambda_scale="mean-eigenvalue", lambda_rule="entropy")
    u, ev = k.basis.eigenvectors, k.basis.eigenvalues

    def landmark():
        return gn.KernelLossProblem(loss, FirstBatches(views, kc.ssl_batch_size, n_batches), k.basis.a0, k.pc.gamma, keep_point=True)

    def eigen(dtype):
        return lambda: EigenbasisProblem(loss, RotatedViews(FirstBatches(views, kc.ssl_batch_size, n_batches), u, dtype), ev, k.pc.gamma, keep_point=True)

    solvers = [
        ("previous: landmark basis, float64, Hutchinson-scaled (1, 10, 100, 1000)", landmark, old_cfg, False),
        ("landmark basis, float64, curvature-scaled (0.1, 1, 10)", landmark, new_cfg, False),
        ("eigenbasis, float64, curvature-scaled (0.1, 1, 10)", eigen("float64"), new_cfg, True),
        ("eigenbasis, float32 products, curvature-scaled (0.1, 1, 10) [new default]", eigen("float32"), new_cfg, True),
    ]
    if args.skip_previous:
        solvers = solvers[1:]
    rows, deltas = {}, {}
    for name, make, cfg, is_eigen in solvers:
        t = time.perf_counter()
        problem = make()
        t_setup = time.perf_counter() - t
        calls = counted(problem)
        res = gn.gauss_newton_step(problem, cfg)
        secs = time.perf_counter() - t
        lift = (lambda d: to_landmarks(u, d)) if is_eigen else (lambda d: d)  # noqa: E731
        deltas[name] = [lift(c["delta"]) for c in res.candidates]
        rows[name] = {
            "seconds": secs,
            "setup_seconds": t_setup,
            **calls,
            "loss_before": res.loss_before,
            "lambda_scale": res.lambda_scale,
            "lambda_scale_value": res.scale_value,
            "curvature_along_gradient": res.curvature,
            "mean_gn_eigenvalue": res.mean_eigenvalue,
            "candidates": [{kk: v for kk, v in c.items() if kk != "delta"} for c in res.candidates],
        }
        print(name, {kk: v for kk, v in rows[name].items() if kk != "candidates"}, flush=True)
    ref_name = "landmark basis, float64, curvature-scaled (0.1, 1, 10)"
    k_rows = FirstBatches(views, kc.ssl_batch_size, n_batches)
    k1 = np.concatenate([k_rows.get(i)[0].numpy() for i in range(len(k_rows))])
    agreement = {}
    for name in rows:
        if name == ref_name or name.startswith("previous"):
            continue
        per = []
        for da, db in zip(deltas[ref_name], deltas[name]):
            oa, ob = k1 @ da, k1 @ db
            per.append(
                {
                    "delta_relative_difference": float(np.linalg.norm(db - da) / max(np.linalg.norm(da), 1e-300)),
                    "output_relative_difference": float(np.linalg.norm(ob - oa) / max(np.linalg.norm(oa), 1e-300)),
                }
            )
        agreement[name] = {"against": ref_name, "per_candidate": per, "loss_after": [(a["loss_after"], b["loss_after"]) for a, b in zip(rows[ref_name]["candidates"], rows[name]["candidates"])]}
    first = next(iter(rows))
    new = "eigenbasis, float32 products, curvature-scaled (0.1, 1, 10) [new default]"
    payload = {
        "machine": start_machine,
        "run": str(args.run),
        "step_samples": n_batches * kc.ssl_batch_size,
        "ssl_batches": n_batches,
        "landmarks": int(len(k.landmarks)),
        "rank": int(k.basis.rank),
        "objective": kc.objective,
        "cg_max_iter": kc.cg_max_iter,
        "cg_tol": kc.cg_tol,
        "solvers": rows,
        "agreement_with_the_landmark_step": agreement,
        "speedup_new_over_first": rows[first]["seconds"] / rows[new]["seconds"],
        "first": first,
        "peak_rss_mb": peak_rss_mb(),
        "note": "the machine is shared (see loadavg); times are inflated by other jobs",
    }
    write(args.out, payload)


if __name__ == "__main__":
    main()
