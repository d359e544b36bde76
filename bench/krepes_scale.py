"""KREPES at scale on Adult-1M: full default run, scaling in n, the exact model's crossover, Ray vs local.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_scale.py [--quick] [--sizes 62500,125000,...]
        [--skip-full] [--max-memory 6GB] [--exact-sizes 1000,2000,4000] [--ray-sizes 250000] [--agreement-sizes 250000]

`--agreement-sizes` runs each n with the default settings and `--step-sample all`, the default step
sample (131,072) and any `--agreement-samples`, and records how many top-10 landmarks per test point
agree with the full-n step's and every run's fidelity figures, time and peak memory.
`--full-step-samples` repeats the default CLI run on all of Adult-1M with other step samples.

`--ray-sizes` runs each n twice, with the local engine and with `--engine ray` on a real two-node
Ray cluster (head and worker started by `ray start`, one CPU each, inside a loopback-only network
namespace as in the tests; needs root), and records both times and the largest relative difference
of their scores and fidelity figures.

Every configuration runs in its own subprocess (`--child JSON`), which reports its own peak RSS
(resource.getrusage(RUSAGE_SELF).ru_maxrss) and wall time, so the numbers are per configuration.
The encoder is trained once (1 epoch of SimCLR on Adult-1M, default MLP), timed separately.
Writes bench/results/krepes_scale.json (updated after every configuration, so a partial run keeps
what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "krepes_scale.json"
RUNS = ROOT / "bench" / "_runs"
sys.path.insert(0, str(ROOT / "bench"))
from common import machine  # noqa: E402


def child(spec: dict) -> dict:
    """One configuration, in this (fresh) process."""
    t0 = time.time()
    out: dict = {"spec": spec}
    if spec["kind"] == "train":
        from sslaudit.models.trainer import TrainConfig
        from sslaudit.run import data_config, train_run

        import sslaudit.run as sr

        def quick_evaluation(store, encoder, dataset, device, seed):
            # train_run's end-of-training evaluation (linear probe + k-NN against all 1M rows, many
            # minutes) is not part of KREPES: here only the collapse statistic on 65,536 rows.
            from sslaudit.evaluate.probes import collapse_std
            from sslaudit.models.embed import embed

            tr = embed(encoder, dataset.train.x[:65536], device=device)
            return {
                "collapse_std": collapse_std(tr),
                "embedding_dim": int(tr.shape[1]),
                "nonnegative": bool((tr >= 0).all()),
                "note": "bench/krepes_scale.py skipped train_run's probe and k-NN evaluation",
            }

        sr.evaluate_run = quick_evaluation
        train_run(data_config("adult-1m"), TrainConfig(objective="simclr", epochs=1, batch_size=256), spec["run"])
    elif spec["kind"] == "cli":
        from sslaudit.cli.main import main

        rc = main(["krepes", spec["run"], "--quiet", *spec["args"]])
        out["exit_code"] = rc
        fid = json.loads((Path(spec["run"]) / "krepes" / "fidelity.json").read_text())
        out["fidelity"] = {
            k: fid.get(k)
            for k in (
                "delta_accuracy",
                "network_accuracy",
                "surrogate_accuracy",
                "kendall_tau",
                "precision_at_1",
                "precision_at_1_baseline",
                "confidence_drop_top",
                "confidence_drop_random",
                "loss_before",
                "loss_after",
                "lambda_multiple",
                "cg_iterations",
                "cg_residual",
                "n_landmarks",
                "rank",
                "n_step_samples",
                "n_distinct_top1",
                "kendall_tau_raw",
                "kendall_tau_ceiling",
                "linear_cka",
                "precision_at_1_kernel",
                "n_distinct_top1_baseline",
                "n_distinct_top1_kernel",
                "confidence_drop_fraction_top",
                "confidence_drop_fraction_random",
                "confidence_drop_fraction_removed",
                "hub_warning",
                "top1_max_share",
                "lambda_reason",
                "lambda_chosen_by",
                "lambda_scale",
                "curvature_along_gradient",
                "heldout_loss_before",
                "heldout_loss_after",
                "lambda_candidates",
                "step_basis",
                "step_dtype",
                "n_heldout_samples",
            )
        }
        ag = Path(spec["run"]) / "krepes" / "alignment_gap.parquet"
        if ag.exists():
            import pandas as pd

            out["alignment_gap"] = pd.read_parquet(ag)[["feature", "gap", "gap_normalised", "ci_low", "ci_high", "chance_agreement"]].to_dict(orient="records")
            agk = Path(spec["run"]) / "krepes" / "alignment_gap_kernel.parquet"
            if agk.exists():
                out["alignment_gap_kernel"] = pd.read_parquet(agk)[["feature", "gap", "gap_normalised", "ci_low", "ci_high"]].to_dict(orient="records")
        summary = json.loads((Path(spec["run"]) / "krepes" / "explainer.json").read_text())["summary"]
        out["stages"] = summary["stages"]
        out["memory_plan"] = summary.get("memory_plan")
        out["stage_s"] = stage_seconds(spec["run"], t0)
    elif spec["kind"] in ("subset", "exact"):
        out.update(subset_run(spec))
    out["wall_s"] = time.time() - t0
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["loadavg_end"] = os.getloadavg()
    return out


def landmark_agreement(run_a: str, run_b: str) -> dict:
    """Share of each test point's top-10 (and top-1) landmarks that two KREPES runs of the same test points agree on."""
    import numpy as np
    import pandas as pd

    a, b = (pd.read_parquet(Path(r) / "krepes" / "landmarks.parquet") for r in (run_a, run_b))
    sa, sb = (t.groupby("index")["train_index"].apply(set) for t in (a, b))
    first_a, first_b = (t[t["rank"] == t["rank"].min()].set_index("index")["train_index"] for t in (a, b))
    return {
        "top10": float(np.mean([len(sa[i] & sb[i]) / len(sa[i]) for i in sa.index])),
        "top1": float((first_a == first_b.loc[first_a.index]).mean()),
        "test_points": int(len(sa)),
    }


def stage_seconds(run: str, t0: float) -> dict:
    """Seconds of each KREPES stage of `run`, from the finish times its manifest records (the first from t0)."""
    st = json.loads((Path(run) / "manifest.json").read_text())["stages"]
    done = sorted((v["finished"], k.split("/", 1)[1]) for k, v in st.items() if k.startswith("krepes/") and v.get("finished", 0) >= t0)
    times, prev = {}, t0
    for finished, name in done:
        times[name] = finished - prev
        prev = finished
    times["after_last_stage"] = time.time() - prev
    return times


def subset_run(spec: dict) -> dict:
    """KREPES (explain_run: kernel, landmarks, Nyström, step, scores, fidelity) on the first n rows of Adult-1M's training split."""
    import dataclasses
    import shutil
    from types import SimpleNamespace

    import numpy as np

    import sslaudit
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.models.embed import embed
    from sslaudit.store import RunStore

    if spec.get("encoder_run"):  # encoder of another run (same Adult encoding), data = Adult-1M
        from sslaudit.data import load_dataset

        base = sslaudit.load(spec["encoder_run"])
        ds = load_dataset("adult-1m", data_dir=os.environ.get("SSLAUDIT_DATA"))
    else:
        base = sslaudit.load(spec["run"])
        ds = base.dataset
    n = int(spec["n"])
    rows = np.sort(np.random.default_rng(0).choice(len(ds.train), n, replace=False)) if n < len(ds.train) else np.arange(len(ds.train))
    sub = dataclasses.replace(ds, train=ds.train.take(rows))
    folder = RUNS / f"subset_{spec['kind']}_{n}_{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    store = RunStore(folder, create=True)
    run = SimpleNamespace(dataset=sub, encoder=base.encoder, store=store, objective=base.objective, config=base.config, embeddings=lambda split: embed(base.encoder, sub.split(split).x))
    t0 = time.time()
    from sslaudit.engine import get_engine

    engine = get_engine(spec.get("engine", "local"), spec.get("address"))
    with store.lock():
        extra = {k: spec[k] for k in ("step_sample", "lam", "cg_max_iter") if spec.get(k) is not None}
        o = explain_run(run, test_points=int(spec.get("test_points", 10000)), exact=spec["kind"] == "exact", max_memory=spec.get("max_memory"), seed=0, engine=engine, **extra)
    engine.close()
    fid = o.documents["fidelity"]
    st = store.manifest["stages"]
    order = ["krepes/landmarks", "krepes/kernel_mm", "krepes/kernel_train", "krepes/kernel_views", "krepes/step", "krepes/kernel_test_sample"]
    times, prev = {}, t0
    for name in order:
        if name in st:
            times[name.split("/")[1]] = st[name]["finished"] - prev
            prev = st[name]["finished"]
    times["scores_and_fidelity"] = time.time() - prev
    step = o.krepes.step_result or {}
    res = {
        "n": n,
        "krepes_s": time.time() - t0,
        "stage_s": times,
        "n_step_samples": step.get("n_step_samples"),
        "cg_iterations_per_lambda": [c.get("cg_iterations") for c in step.get("lambda_curve", [])],
        "block_rows": o.krepes.block_rows,
        "memory_plan": o.krepes.memory_plan,
        "n_landmarks": fid.get("n_landmarks"),
        "kendall_tau": fid.get("kendall_tau"),
        "delta_accuracy": fid.get("delta_accuracy"),
        "precision_at_1": fid.get("precision_at_1"),
        "stages": o.krepes.stages,
        "engine": spec.get("engine", "local"),
        "loss_after": fid.get("loss_after"),
    }
    if spec.get("keep_scores"):  # for the Ray-vs-local comparison
        np.save(spec["keep_scores"], o.tables["landmarks"]["score"].to_numpy(np.float64))
    if spec.get("keep_landmarks"):  # for the subsample-vs-full step comparison
        o.tables["landmarks"].to_parquet(spec["keep_landmarks"])
    shutil.rmtree(folder, ignore_errors=True)
    return res


def run_child(spec: dict, timeout: float, prefix: tuple = ()) -> dict:
    env = {**os.environ, "SSLAUDIT_DATA": os.environ.get("SSLAUDIT_DATA", "/work/shared/data")}
    t0 = time.time()
    load0 = os.getloadavg()
    try:
        p = subprocess.run([*prefix, sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"spec": spec, "error": f"timed out after {timeout} s", "loadavg_start": load0}
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"spec": spec, "error": p.stderr[-1500:], "returncode": p.returncode, "loadavg_start": load0}
    res = json.loads(lines[-1])
    res["process_wall_s"] = time.time() - t0
    res["loadavg_start"] = load0
    return res


def without_krepes(run: str, dest: str) -> str:
    """A copy of the trained run with no KREPES results, so a CLI run on it computes every stage."""
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(run, dest, ignore=lambda folder, names: ["krepes"] if Path(folder) == Path(run) else [])
    m = json.loads((Path(dest) / "manifest.json").read_text())
    for part in ("stages", "artefacts"):
        m[part] = {k: v for k, v in m[part].items() if not k.startswith("krepes")}
    (Path(dest) / "manifest.json").write_text(json.dumps(m, indent=1))
    return dest


def save(doc: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1))


def slope(points) -> float | None:
    import numpy as np

    pts = [(n, t) for n, t in points if t]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def step_sample_agreement(n: int, a, run: str) -> dict:
    """The same subset run with the default step sample (131,072), any `--agreement-samples`, and
    `--step-sample all`: how many of each test point's top-10 landmarks agree with the full-n step's,
    and every run's fidelity figures, time and peak memory."""
    import tempfile

    import pandas as pd

    tmp = Path(tempfile.mkdtemp(prefix="sslaudit-agreement-"))
    base = {"kind": "subset", "run": run, "n": n, "max_memory": a.max_memory, "test_points": 10000, "encoder_run": a.encoder_run}
    samples = [("all", "all"), ("default", None)] + [(str(k), int(k)) for k in a.agreement_samples.split(",") if k]
    out: dict = {}
    tops = {}
    for label, sample in samples:
        out[label] = run_child({**base, "step_sample": sample, "keep_landmarks": str(tmp / f"{label}.parquet")}, a.timeout)
        if not (tmp / f"{label}.parquet").exists():
            continue
        t = pd.read_parquet(tmp / f"{label}.parquet").sort_values(["index", "rank"])
        tops[label] = t.groupby("index")["train_index"].apply(list)
        if label != "all" and "all" in tops:
            pairs = [(set(x), set(tops["all"][i]), x[0] == tops["all"][i][0]) for i, x in tops[label].items()]
            out[label]["vs_all"] = {
                "top10_overlap_mean": float(sum(len(x & y) for x, y, _ in pairs) / (10 * len(pairs))),
                "top1_equal_fraction": float(sum(e for *_, e in pairs) / len(pairs)),
                "test_points": len(pairs),
            }
        save_partial = getattr(a, "_save", None)
        if save_partial:
            save_partial(out)
    return out


def ray_vs_local(n: int, a, run: str) -> dict:
    """The same subset run with the local engine and on a two-node loopback Ray cluster."""
    import tempfile

    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from engine.ray_cluster import Cluster, in_ns

    base = {
        "kind": "subset",
        "run": run,
        "n": n,
        "max_memory": a.max_memory,
        "test_points": 10000,
        "encoder_run": a.encoder_run,
        "step_sample": a.step_sample,
        "lam": a.lam,
        "cg_max_iter": a.cg_max_iter,
    }
    tmp = Path(tempfile.mkdtemp(prefix="sslaudit-ray-bench-"))
    out = {"local": run_child({**base, "keep_scores": str(tmp / "local.npy")}, a.timeout)}
    try:
        cluster = Cluster(tmp, port=6395)
    except BaseException as e:  # pytest's skip/fail outcomes when no namespace can be made
        out["ray"] = {"error": f"no Ray cluster: {e}"}
        return out
    try:
        out["ray"] = run_child({**base, "engine": "ray", "address": cluster.address, "keep_scores": str(tmp / "ray.npy")}, a.timeout, prefix=tuple(in_ns(cluster.ns)))
    finally:
        cluster.stop()
    if (tmp / "local.npy").exists() and (tmp / "ray.npy").exists():
        sl, sr = np.load(tmp / "local.npy"), np.load(tmp / "ray.npy")
        out["max_rel_score_difference"] = float(np.max(np.abs(sl - sr) / np.maximum(np.abs(sl), 1e-300))) if len(sl) == len(sr) else None
        out["fidelity_equal"] = {k: (out["local"].get(k), out["ray"].get(k)) for k in ("kendall_tau", "delta_accuracy", "precision_at_1", "loss_after")}
        if out["local"].get("krepes_s") and out["ray"].get("krepes_s"):
            out["ray_over_local"] = out["ray"]["krepes_s"] / out["local"]["krepes_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--quick", action="store_true", help="sizes 62.5k–250k, no full 1M CLI run")
    ap.add_argument("--sizes", default=None, help="comma-separated n for the scaling runs")
    ap.add_argument("--exact-sizes", default="1000,2000,4000")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--max-memory", default="6GB")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--encoder-run", default=None, help="scaling runs with the encoder of this (Adult) run instead of training one on Adult-1M")
    ap.add_argument("--out", default=None)
    ap.add_argument("--step-sample", type=int, default=None, help="reduced step sample for the scaling runs (default: KREPES's 131072)")
    ap.add_argument("--cg-max-iter", type=int, default=None, help="CG iterations cap for the scaling runs (default: KREPES's 50)")
    ap.add_argument("--lam", type=float, default=None, help="fixed λ multiple for the scaling runs (default: auto over 4 values)")
    ap.add_argument("--agreement-sizes", default="", help="comma-separated n at which to compare the default step sample with --step-sample all")
    ap.add_argument("--full-step-samples", default="", help="comma-separated --step-sample values for further default CLI runs on all of Adult-1M (each on a fresh copy of the trained run)")
    ap.add_argument("--agreement-samples", default="", help="further step samples compared with --step-sample all (e.g. 16384)")
    ap.add_argument("--ray-sizes", default="", help="comma-separated n to run with the local engine and on a two-node loopback Ray cluster")
    a = ap.parse_args()
    global RESULTS
    if a.out:
        RESULTS = Path(a.out)
    if a.child:
        print(json.dumps(child(json.loads(a.child)), default=str))
        return
    sizes = [int(s) for s in a.sizes.split(",") if s] if a.sizes is not None else ([62500, 125000, 250000] if a.quick else [62500, 125000, 250000, 500000, 1000000])
    run = str(RUNS / "adult1m")
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc.update(
        {
            "machine": machine(),
            "loadavg_start": os.getloadavg(),
            "settings": {
                "scaling_step_sample": a.step_sample,
                "scaling_lambda": a.lam,
                "scaling_cg_max_iter": a.cg_max_iter,
                "encoder_run": a.encoder_run,
                "data": "adult-1m (SSLAUDIT_DATA=/work/shared/data)",
                "encoder": "default MLP, SimCLR, 1 epoch, batch 256 (train_run)",
                "krepes": "defaults: pNTK cosine-normalised, m = auto, uniform landmarks, step mode, lambda auto, step_sample 131072, 10,000 test points",
                "max_memory": a.max_memory,
                "sizes": sizes,
            },
        }
    )
    doc.setdefault("results", {})
    if not a.encoder_run and (not (Path(run) / "manifest.json").exists() or "train" not in doc["results"]):
        doc["results"]["train"] = run_child({"kind": "train", "run": run}, a.timeout)
        save(doc)
    if not a.skip_full and not a.quick:
        copy = without_krepes(run, f"{run}-default")  # every stage computed, also on a rerun
        doc["results"]["full_cli"] = run_child({"kind": "cli", "run": copy, "args": ["--test-points", "10000", "--max-memory", a.max_memory]}, a.timeout)
        save(doc)
    for sample in [s for s in a.full_step_samples.split(",") if s]:
        copy = without_krepes(run, f"{run}-step{sample}")
        doc["results"][f"full_cli_step_sample_{sample}"] = run_child({"kind": "cli", "run": copy, "args": ["--test-points", "10000", "--max-memory", a.max_memory, "--step-sample", sample]}, a.timeout)
        if (Path(f"{run}-default") / "krepes" / "landmarks.parquet").exists() and (Path(copy) / "krepes" / "landmarks.parquet").exists():
            doc["results"][f"full_cli_step_sample_{sample}"]["agreement_with_default"] = landmark_agreement(f"{run}-default", copy)
        save(doc)
    scaling = doc["results"].setdefault("scaling", {})
    for n in sizes:
        scaling[str(n)] = run_child(
            {
                "kind": "subset",
                "run": run,
                "n": n,
                "max_memory": a.max_memory,
                "test_points": 10000,
                "encoder_run": a.encoder_run,
                "step_sample": a.step_sample,
                "lam": a.lam,
                "cg_max_iter": a.cg_max_iter,
            },
            a.timeout,
        )
        doc["results"]["scaling_slope"] = slope([(int(k), v.get("krepes_s")) for k, v in scaling.items()])
        save(doc)
    for n in [int(s) for s in a.agreement_sizes.split(",") if s]:
        slot = doc["results"].setdefault("step_sample_agreement", {})
        a._save = lambda partial, n=n: (slot.__setitem__(str(n), partial), save(doc))
        slot[str(n)] = step_sample_agreement(n, a, run)
        save(doc)
    for n in [int(s) for s in a.ray_sizes.split(",") if s]:
        doc["results"].setdefault("ray_vs_local", {})[str(n)] = ray_vs_local(n, a, run)
        save(doc)
    exact = doc["results"].setdefault("exact", {})
    for n in [int(s) for s in a.exact_sizes.split(",") if s]:
        exact[str(n)] = run_child({"kind": "exact", "run": run, "n": n, "test_points": 1000, "encoder_run": a.encoder_run}, a.timeout)
        doc["results"]["exact_slope"] = slope([(int(k), v.get("krepes_s")) for k, v in exact.items()])
        save(doc)
    doc["loadavg_end"] = os.getloadavg()
    save(doc)
    print(json.dumps(doc["results"], indent=1, default=str)[:4000])


if __name__ == "__main__":
    main()
