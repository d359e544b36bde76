"""Benchmark (issue #21): `sslaudit audit` of a ResNet-18 (CIFAR stem) that sslaudit trained itself on
a 10,000-image RGB 32×32 folder built from Fashion-MNIST, on this machine's cores.

    SSLAUDIT_DATA=../shared/data PYTHONPATH=src python bench/resnet18_audit.py [--epochs 2] [--images 10000]
        [--folder DIR] [--max-memory 8GB] [--quick]

Steps, each a subprocess timed with its own peak RSS (ru_maxrss from os.wait4):
1. the folder: n tinted 32×32 RGB PNGs in train/<class>/ and test/<class>/ (every tenth image is a
   test image; bench/folder_memory.py's recipe), reused when complete;
2. `sslaudit train --arch resnet18 --cifar-stem --epochs E` (torchvision's ResNet-18, 11.2M
   parameters, solo-learn's projector);
3. `sslaudit audit --model RUN --max-memory M` with the audit's defaults (what a user runs): its
   wall time and peak RSS, and per lens the seconds and peak RSS that RUN/audit/status.json records
   (exact when the lens set the process's high-water mark, else sampled every 0.1 s).
Targets: the whole audit ≤ 45 min and ≤ 8 GB; KREPES and influence ≤ 15 min each (goal: 30 min).
JSON → bench/results/resnet18_audit.json (resnet18_audit_quick.json with --quick: 1,000 images, 1 epoch).
`--run RUN --rerun-lens krepes` times one lens of a finished audit again with the current code (its
command from RUN/audit/status.json, on a copy of RUN without that lens's results) → "reruns".
`--run RUN --reaudit --max-memory 4GB` runs the whole audit again with the current code on a copy of
RUN without any lens's results (the training is reused) → "reaudits" under the --max-memory given,
with the check that the audit's peak RSS stayed under it; `--keep influence,relax` keeps those lenses'
finished results in the copy (their stages are reused), so only the others are timed again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402
from folder_memory import ROOT, build_folder, run  # noqa: E402

TARGETS = {"audit_seconds": 45 * 60, "audit_peak_rss_gb": 8.0, "krepes_seconds": 15 * 60, "influence_seconds": 15 * 60}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=2, help="training epochs of the ResNet-18 (a CPU budget; the audit's cost does not depend on it)")
    ap.add_argument("--max-memory", default="8GB", help="--max-memory of the audit")
    ap.add_argument("--folder", default=None, help="where the image folder is built (kept for reruns) [default: a temporary folder]")
    ap.add_argument("--run", default=None, help="where the run is written (kept; a rerun reuses the training) [default: a temporary folder]")
    ap.add_argument("--extra", nargs="*", default=[], help="more arguments for sslaudit audit (e.g. --quick)")
    ap.add_argument("--quick", action="store_true", help="1,000 images, 1 epoch: a check that the script works")
    ap.add_argument(
        "--rerun-lens",
        default=None,
        metavar="LENS",
        help="after a finished audit of --run: time that lens again, with the audit's own command, on a copy of the run without its results (the current code); recorded under reruns",
    )
    ap.add_argument("--keep", default="", help="--reaudit: comma-separated lenses whose finished results the copy keeps (the audit reuses their stages)")
    ap.add_argument(
        "--reaudit",
        action="store_true",
        help="after a finished audit of --run: the whole audit again with the current code and --max-memory, on a copy of the run without any lens's results; recorded under reaudits",
    )
    a = ap.parse_args()
    if a.rerun_lens:
        return rerun_lens(a)
    if a.reaudit:
        return reaudit(a)
    n, epochs = (1_000, 1) if a.quick else (a.images, a.epochs)
    m = machine()  # before the work: loadavg_start is the load the commands started under
    folder = Path(a.folder) if a.folder else Path(tempfile.mkdtemp(prefix="sslaudit-r18-folder-")) / "images"
    built = build_folder(folder, n, 32)
    out = Path(a.run) if a.run else Path(tempfile.mkdtemp(prefix="sslaudit-r18-run-")) / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SSLAUDIT_QUIET": "1"}
    py = [sys.executable, "-m", "sslaudit.cli.main"]
    train = run([*py, "train", "--data", str(folder), "--arch", "resnet18", "--cifar-stem", "--epochs", str(epochs), "--out", str(out), "--quiet"], env)
    audit = run([*py, "audit", "--model", str(out), "--max-memory", a.max_memory, "--quiet", *a.extra], env)
    status = json.loads((out / "audit" / "status.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    lenses = {k: {f: v.get(f) for f in ("state", "seconds", "peak_rss_gb", "peak_rss_exact", "reason", "command")} for k, v in status["lenses"].items()}
    checks = {
        "audit_seconds": audit["seconds"] <= TARGETS["audit_seconds"],
        "audit_peak_rss_gb": audit["peak_rss_gb"] <= TARGETS["audit_peak_rss_gb"],
        "krepes_seconds": (lenses.get("krepes", {}).get("seconds") or 1e9) <= TARGETS["krepes_seconds"],
        "influence_seconds": (lenses.get("influence", {}).get("seconds") or 1e9) <= TARGETS["influence_seconds"],
    }
    payload = {
        "machine": m,
        "images": n,
        "image_shape": [3, 32, 32],
        "folder": built,
        "train": {**train, "epochs": epochs, "linear_probe_accuracy": metrics.get("linear_probe_accuracy"), "knn_accuracy": metrics.get("knn_accuracy")},
        "audit": audit,
        "max_memory": a.max_memory,
        "lenses": lenses,
        "targets": TARGETS,
        "meets": checks,
        "note": "peak RSS of each command's own process (ru_maxrss from wait4); per lens: RUN/audit/status.json (PeakRSS)",
    }
    print(write("resnet18_audit_quick" if a.quick else "resnet18_audit", payload))


def fresh_copy(src: Path, dest: Path, drop: tuple[str, ...]) -> None:
    """A copy of a run without the named results, its manifest forgetting their stages and artefacts."""
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=lambda folder, names: list(drop) if Path(folder) == src else [])
    manifest = json.loads((dest / "manifest.json").read_text())
    for part in ("stages", "artefacts"):
        manifest[part] = {k: v for k, v in manifest[part].items() if not any(k == d or k.startswith(d + "/") for d in drop)}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))


def record(key: str, name: str, result: dict) -> None:
    out = ROOT / "bench" / "results" / "resnet18_audit.json"
    doc = json.loads(out.read_text())
    doc.setdefault(key, {})[name] = result
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def reaudit(a) -> None:
    """The whole audit again, with the current code and --max-memory, on a copy of a trained run."""
    from sslaudit.compute.memory import parse_size

    src = Path(a.run)
    keep = tuple(k for k in a.keep.split(",") if k)
    dest = src.with_name(src.name + f"-reaudit-{a.max_memory}" + "".join(f"-keep-{k}" for k in keep))
    from sslaudit import lenses

    fresh_copy(src, dest, tuple(r for r in (*lenses.names(), "audit", "report.html") if r not in keep))  # every lens's results, the audit's status and report
    m = machine()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SSLAUDIT_QUIET": "1"}
    audit = run([sys.executable, "-m", "sslaudit.cli.main", "audit", "--model", str(dest), "--max-memory", a.max_memory, "--quiet", *a.extra], env, check=False)  # a failed lens is a result
    status = json.loads((dest / "audit" / "status.json").read_text())
    lenses = {k: {f: v.get(f) for f in ("state", "seconds", "peak_rss_gb", "peak_rss_exact", "reason", "command")} for k, v in status["lenses"].items()}
    bound_gb = parse_size(a.max_memory) / 1e9
    result = {
        "machine": m,
        "max_memory": a.max_memory,
        "audit": audit,
        "lenses": lenses,
        "meets": {
            "peak_rss_under_max_memory": audit["peak_rss_gb"] <= bound_gb,
            "every_lens_done": all(v.get("state") == "done" for v in lenses.values()),
            "audit_seconds": audit["seconds"] <= TARGETS["audit_seconds"],
            "krepes_seconds": (lenses.get("krepes", {}).get("seconds") or 1e9) <= TARGETS["krepes_seconds"],
            "influence_seconds": (lenses.get("influence", {}).get("seconds") or 1e9) <= TARGETS["influence_seconds"],
        },
        "max_memory_gb": bound_gb,
    }
    result["kept_lenses"] = list(keep)
    record("reaudits", a.max_memory + "".join(f" keep {k}" for k in keep), result)
    print(json.dumps(result, default=str)[:3000])


def rerun_lens(a) -> None:
    """The audit's command of one lens, again, on a copy of the audited run without that lens's results."""
    src = Path(a.run)
    status = json.loads((src / "audit" / "status.json").read_text())
    lens = a.rerun_lens
    cmd = status["lenses"][lens]["command"].split()[1:]  # "sslaudit krepes RUN …" → "krepes RUN …"
    dest = src.with_name(src.name + f"-rerun-{lens}")
    fresh_copy(src, dest, (lens, "audit", "report.html"))
    cmd[cmd.index(str(src))] = str(dest)
    m = machine()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SSLAUDIT_QUIET": "1"}
    result = run([sys.executable, "-m", "sslaudit.cli.main", *cmd, "--quiet"], env)
    result["machine"] = m
    result["in_audit"] = status["lenses"][lens]
    result["fidelity"] = json.loads((dest / "krepes" / "fidelity.json").read_text()) if lens == "krepes" else None
    record("reruns", lens, result)
    print(json.dumps({k: v for k, v in result.items() if k != "fidelity"}, default=str)[:2000])


if __name__ == "__main__":
    main()
