"""Benchmark: the same training run and eNTK kernel blocks on two torch builds, in one session.

    PYTHONPATH=src python bench/torch_builds.py --tag r1   # per build and round, alternating builds
    python bench/torch_builds.py --compare bench/results/torch_builds_*_r*.json   # → torch_builds.json

Measured per build (the fastest of --repeats runs, 2 torch threads):
1. train: `train_run` of the default digits ConvNet (SimCLR, --epochs 24, batch 128), the
   training loop's own `train_seconds` (data load and probes excluded);
2. entk_mlp: K(A, B) of the Adult-shaped MLP (108-256-256), A = 16,384 rows, B = 256, float64,
   the factorised path (random inputs: the cost depends on the shapes, not on the values);
3. entk_convnet_general: K(A, B) of the digits ConvNet through the general (vmap) path,
   A = 2,048, B = 64, float32.
Each measurement takes seconds (not milliseconds), so the comparison is not timer noise.
JSON → bench/results/torch_builds_<torch version>[_<tag>].json; --compare writes torch_builds.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402


def best(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        times.append(fn())
    return {"best_s": min(times), "all_s": times}


def bench_train(repeats: int, epochs: int) -> dict:
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, load_data, train_run
    from sslaudit.store import RunStore

    data = data_config("digits")
    ds = load_data(data)

    def once() -> float:
        out = Path(tempfile.mkdtemp(prefix="torch-builds-"))
        try:
            cfg = TrainConfig(objective="simclr", epochs=epochs, batch_size=128, lr=2e-3, seed=0, params={})
            train_run(data, cfg, out / "run", force=True, arch="convnet", dataset=ds)
            return float(RunStore(out / "run").read_json("metrics.json")["train_seconds"])
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return {"what": f"digits ConvNet SimCLR, {epochs} epochs, batch 128", **best(once, repeats)}


def bench_entk(repeats: int, scale: int) -> dict:
    import torch

    from sslaudit.kernels import EntkKernel, compute_factors
    from sslaudit.models.encoders import build_encoder, default_arch

    out = {}
    torch.manual_seed(0)
    mlp = build_encoder(default_arch("tabular", (108,))).eval()
    a, b = torch.rand(2048 * scale, 108), torch.rand(256, 108)
    conv = build_encoder(default_arch("image", (1, 8, 8))).eval()
    ca, cb = torch.rand(256 * scale, 1, 8, 8), torch.rand(64, 1, 8, 8)
    for name, enc, xa, xb, path, prec in (("entk_mlp_factorised", mlp, a, b, "factorised", "float64"), ("entk_convnet_general", conv, ca, cb, "general", "float32")):
        k = EntkKernel(enc, kind="pntk", normalize=True, path=path, precision=prec, block_size=1024)
        k.factors(xa[:2])

        def once() -> float:
            t0 = time.perf_counter()
            fb = compute_factors(k, xb)
            fa = [k.factors(xa[s : s + 1024]) for s in range(0, len(xa), 1024)]
            torch.cat([k.between(f, fb) for f in fa])
            return time.perf_counter() - t0

        out[name] = {"rows": [len(xa), len(xb)], "path": path, "precision": prec, **best(once, repeats)}
    return out


def compare(files: list[str]) -> None:
    """Per build (torch version), the fastest of all its files' runs; rounds alternate builds, so load drift hits both."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    builds = list(dict.fromkeys(r["machine"]["torch"] for r in runs))
    keys = ["train", "entk_mlp_factorised", "entk_convnet_general"]
    table = {}
    for k in keys:
        row = {b: min(t for r in runs if r["machine"]["torch"] == b for t in r["results"][k]["all_s"]) for b in builds}
        row["ratio_vs_first"] = {b: row[b] / row[builds[0]] for b in builds}
        table[k] = row
    loads = [r["machine"]["loadavg_start"][0] for r in runs]
    write(
        "torch_builds",
        {
            "files": [Path(f).name for f in files],
            "best_seconds": table,
            "loadavg_1min_range": [min(loads), max(loads)],
            "note": "best over every round of each build; ratio < 1: faster than the first build",
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=24, help="Training epochs of the train measurement")
    ap.add_argument("--scale", type=int, default=8, help="Kernel rows A = 2048·scale (MLP) and 256·scale (ConvNet)")
    ap.add_argument("--compare", nargs="+", default=None, metavar="JSON")
    ap.add_argument("--tag", default="", help="Suffix of the JSON name (one file per round when rounds alternate builds)")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare)
    import torch

    torch.set_num_threads(args.threads)
    m = machine()
    # the kernels first: on the 2.13.0 CPU build, torchvision 0.28 (pulled in by kronfluence) is broken, and once
    # training has imported it, the general eNTK path fails with "operator torchvision::nms does not exist"
    results = {**bench_entk(args.repeats, args.scale), "train": bench_train(args.repeats, args.epochs)}
    name = "torch_builds_" + torch.__version__.replace("+", "_") + (f"_{args.tag}" if args.tag else "")
    write(name, {"machine": m, "results": results, "peak_rss_mb": peak_rss_mb(), "torchvision": _version("torchvision")})
    print(json.dumps({k: v["best_s"] for k, v in results.items()}))


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    main()
