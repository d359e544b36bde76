"""The Gauss–Newton step's solver: one multi-shift CG run with kept linearisation points (what
KREPES does) against the previous solver — one warm-started CG run per λ candidate, z = KÃ0 + γ
recomputed in every product — on the same real kernel rows, in the same process.

The kernel rows are the stored K(views, landmarks) of a finished `sslaudit krepes` run (default
settings), cut to the first `--samples` step samples (whole SSL batches, already in batch order);
Ã0 and γ are that run's. Both solvers start from the same loss, gradient and mean eigenvalue
(computed once, not timed); what is timed is everything after: CG for the 4 λ candidates plus
backtracking. Records products (passes over the views), seconds, the λ each picks and how far
their steps differ.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_step_solver.py bench/_runs/adult1m [--samples 16384]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402

from sslaudit.methods.krepes import gauss_newton as gn  # noqa: E402
from sslaudit.methods.krepes.kernel_model import spectral_entropy  # noqa: E402
from sslaudit.methods.krepes.losses import KernelSSLLoss  # noqa: E402


class FirstBatches(gn.StoredViewBatches):
    """The first `n_batches` SSL batches of a stored [K¹ | K²] matrix."""

    def __init__(self, mat, batch_size: int, n_batches: int):
        super().__init__(mat, batch_size)
        self.n_batches = min(n_batches, super().__len__())

    def __len__(self) -> int:
        return self.n_batches


def previous_solver(problem, grad, loss0, mean_eig, cfg):
    """The solver KREPES used before: per λ (largest first) CG warm-started at the previous solution,
    stopped at cg_tol or cg_max_iter, its true residual checked with one more product, then backtracking."""
    multiples = sorted(cfg.lambda_grid, reverse=True)
    cands, x0 = [], None
    for mult in multiples:
        lam = mult * mean_eig
        sol, res, iters = gn.conjugate_gradient(lambda d: problem.gn_matvec(d) + lam * d, -grad, tol=cfg.cg_tol, max_iter=cfg.cg_max_iter, x0=x0)
        delta, val, ok, t = gn._backtrack(problem, sol, loss0, cfg)
        cands.append({"multiple": mult, "loss_after": val, "accepted": ok, "step_length": t, "cg_iterations": iters, "cg_residual": res,
                      "entropy": spectral_entropy(problem.a0.numpy() + delta.numpy()), "delta": delta.numpy()})
        x0 = sol
    return cands


def new_solver(problem, grad, loss0, mean_eig, cfg):
    class Start(gn.StepCheckpoint):  # hands the shared start point to gauss_newton_step
        def load(self, name):
            return {"grad": grad.numpy(), "scalars": np.array([loss0, mean_eig])} if name == "start" else None

    res = gn.gauss_newton_step(problem, cfg, Start())
    return res.candidates


def counted(problem):
    calls = {"products": 0, "losses": 0}
    gm, val = problem.gn_matvec, problem.value
    problem.gn_matvec = lambda d: calls.__setitem__("products", calls["products"] + 1) or gm(d)
    problem.value = lambda a: calls.__setitem__("losses", calls["losses"] + 1) or val(a)
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", help="a run on which `sslaudit krepes` (step mode) has finished")
    ap.add_argument("--samples", type=int, default=16384, help="step samples used (first whole SSL batches of the run's views)")
    ap.add_argument("--out", default="krepes_step_solver")
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
    cfg = gn.StepConfig(lam=kc.lam, lambda_grid=tuple(kc.lambda_grid), cg_tol=kc.cg_tol, cg_max_iter=kc.cg_max_iter, seed=kc.seed)
    loss = KernelSSLLoss(kc.objective, kc.objective_params)
    n_batches = args.samples // kc.ssl_batch_size
    ref = gn.KernelLossProblem(loss, FirstBatches(views, kc.ssl_batch_size, n_batches), k.basis.a0, k.pc.gamma)
    t = time.perf_counter()
    loss0, grad = ref.value_and_grad(ref.a0)
    mean_eig = gn.mean_gn_eigenvalue(ref, cfg.hutchinson_probes, cfg.seed)
    shared_s = time.perf_counter() - t
    rows = {}
    for name, solver, keep in [("previous: CG per λ, warm-started, z recomputed", previous_solver, False),
                               ("multi-shift CG, z kept", new_solver, True)]:
        problem = gn.KernelLossProblem(loss, FirstBatches(views, kc.ssl_batch_size, n_batches), k.basis.a0, k.pc.gamma, keep_point=keep)
        calls = counted(problem)
        t = time.perf_counter()
        cands = solver(problem, grad, loss0, mean_eig, cfg)
        secs = time.perf_counter() - t
        pool = [c for c in cands if c["accepted"]] or cands
        best = max(pool, key=lambda c: (c["entropy"], -c["multiple"]))
        rows[name] = {"seconds": secs, **calls, "chosen_multiple": best["multiple"], "loss_after": best["loss_after"],
                      "candidates": [{kk: v for kk, v in c.items() if kk != "delta"} for c in cands], "_deltas": [c["delta"] for c in cands],
                      "_best": best["delta"]}
        print(name, {kk: v for kk, v in rows[name].items() if not kk.startswith("_") and kk != "candidates"}, flush=True)
    (a, b) = rows.values()
    diffs = [float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-300)) for x, y in zip(a["_deltas"], b["_deltas"])]
    chosen = float(np.linalg.norm(a["_best"] - b["_best"]) / max(np.linalg.norm(a["_best"]), 1e-300))
    for r in rows.values():
        del r["_deltas"], r["_best"]
    payload = {"machine": start_machine, "run": str(args.run), "step_samples": n_batches * kc.ssl_batch_size, "ssl_batches": n_batches,
               "landmarks": int(len(k.landmarks)), "rank": int(k.basis.rank), "objective": kc.objective, "lambda_grid": list(kc.lambda_grid),
               "cg_max_iter": kc.cg_max_iter, "cg_tol": kc.cg_tol, "loss_before": loss0, "mean_gn_eigenvalue": mean_eig,
               "shared_start_seconds": shared_s, "solvers": rows, "speedup": a["seconds"] / b["seconds"],
               "relative_difference_per_candidate": diffs, "relative_difference_of_chosen_steps": chosen, "peak_rss_mb": peak_rss_mb()}
    write(args.out, payload)


if __name__ == "__main__":
    main()
