"""Wall time of `sslaudit audit` with its split per stage (training and each lens).

SSLAUDIT_DATA=../shared/data .venv/bin/python bench/audit_time.py --data digits
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--out", default="/tmp/sslaudit-bench/audit")
    ap.add_argument("--extra", nargs="*", default=[], help="more arguments for sslaudit audit")
    ap.add_argument("--model", default=None, help="audit a copy of this trained run (its training time is taken from its metrics) instead of training one")
    ap.add_argument("--name", default=None, help="result file name (bench/results/NAME.json)")
    args = ap.parse_args()
    start = machine()  # the load the run began under
    out = Path(args.out) / args.data
    shutil.rmtree(out, ignore_errors=True)
    if args.model:
        shutil.copytree(args.model, out, ignore=shutil.ignore_patterns("audit", "krepes", "relax", "influence", "qscore", "report.html"))
        cmd = [sys.executable, "-m", "sslaudit.cli.main", "audit", "--model", str(out), "--quiet", *args.extra]
    else:
        cmd = [sys.executable, "-m", "sslaudit.cli.main", "audit", "--data", args.data, "--out", str(out), "--quiet", *args.extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SSLAUDIT_QUIET": "1"})
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"audit failed: {r.stderr[-2000:]}")
    status = json.loads((out / "audit" / "status.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    stages = {"train": metrics.get("train_seconds")} | {k: v.get("seconds") for k, v in status["lenses"].items()}
    write(
        args.name or f"audit-{args.data}",
        {
            "machine": start,
            "data": args.data,
            "model": args.model,
            "wall_seconds": wall,
            "stages_seconds": stages,
            "skipped": {k: v.get("reason") for k, v in status["lenses"].items() if v.get("state") == "skipped"},
            "stdout": r.stdout,
        },
    )
    print(r.stdout)


if __name__ == "__main__":
    main()
