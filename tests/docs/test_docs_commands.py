"""Every command and Python block of the README and docs/ runs as written, in document order.

The blocks run in a fresh folder (so `runs/digits` is made by the quick start, as for a new user),
with `sslaudit` and `.venv/bin/{sslaudit,python}` pointing at this checkout. Which fences run:
```bash / ```sh blocks (each as one bash script, `set -e`) and ```python blocks (as a script);
untagged fences are synopses and diagrams, not commands. A block directly preceded by
`<!-- docs-test: skip REASON -->` is skipped, and the REASON is printed — that is how the README
marks the install line, the test suites and the audits that take minutes to hours. A block preceded
by `<!-- docs-test: slow REASON -->` takes minutes: the default suite skips it, and the slow suite
(`-m slow`) runs every page holding one from its first block, in a fresh folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"(?:<!-- docs-test: (?P<mode>skip|slow) (?P<reason>[^>]*?) -->[ \t]*\n)?^```(?P<lang>[A-Za-z0-9_-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
RUNNABLE = {"bash": "bash", "sh": "bash", "python": "python"}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(text: str) -> list[dict]:
    """Fenced blocks of a Markdown text: language, body, skip reason (None when it runs), line."""
    out = []
    for m in FENCE.finditer(text):
        out.append(
            {
                "lang": m["lang"],
                "body": m["body"],
                "skip": m["reason"] if m["mode"] == "skip" else None,
                "slow": m["reason"] if m["mode"] == "slow" else None,
                "line": text[: m.start("body")].count("\n"),
            }
        )
    return out


def test_extractor_sees_languages_and_skip_markers():
    text = "a\n```bash\necho hi\n```\n<!-- docs-test: skip takes hours -->\n```bash\nsleep 9999\n```\n```\nsynopsis [--x]\n```\n```python\nprint(1)\n```\n<!-- docs-test: slow minutes -->\n```bash\nsleep 1\n```\n"
    b = blocks(text)
    assert [(x["lang"], x["skip"], x["slow"]) for x in b] == [("bash", None, None), ("bash", "takes hours", None), ("", None, None), ("python", None, None), ("bash", None, "minutes")]
    assert b[0]["body"] == "echo hi\n" and b[3]["body"] == "print(1)\n"


def _shims(folder: Path) -> dict:
    """`sslaudit`, `.venv/bin/sslaudit` and `.venv/bin/python` → this interpreter and checkout."""
    for d in (folder / "bin", folder / ".venv" / "bin"):
        d.mkdir(parents=True, exist_ok=True)
        for name, cmd in (("sslaudit", f'exec "{sys.executable}" -m sslaudit.cli.main "$@"'), ("python", f'exec "{sys.executable}" "$@"')):
            p = d / name
            p.write_text(f"#!/bin/sh\n{cmd}\n")
            p.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT / "src"), "SSLAUDIT_QUIET": "1", "MPLBACKEND": "Agg"}
    env.pop("SSLAUDIT_PART_ROWS", None)
    return env


def run_blocks(page: Path, folder: Path, env: dict, ran: list, skipped: list, *, slow: bool) -> None:
    """Run the page's runnable blocks in order in `folder` (its slow blocks too when `slow`)."""
    for i, b in enumerate(blocks(page.read_text())):
        where = f"{page.relative_to(ROOT)}:{b['line']}"
        kind = RUNNABLE.get(b["lang"])
        if kind is None:
            continue  # a synopsis or diagram, not a command
        if b["skip"] is not None or (b["slow"] is not None and not slow):
            skipped.append(f"{where} ({b['skip'] or b['slow'] + '; run by -m slow'})")
            continue
        if kind == "python":
            script = folder / f"block-{page.stem}-{i}.py"
            script.write_text(b["body"])
            cmd = [sys.executable, str(script)]
        else:
            cmd = ["bash", "-e", "-o", "pipefail", "-c", b["body"]]
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        ran.append(f"{where} {kind} {time.perf_counter() - t:.1f} s")
        assert r.returncode == 0, f"{where}: the {kind} block failed (exit {r.returncode}):\n{b['body']}\n--- stderr ---\n{r.stderr[-3000:]}\n--- stdout ---\n{r.stdout[-1500:]}"
        assert "Traceback" not in r.stderr, f"{where}: a traceback:\n{r.stderr[-3000:]}"


def test_every_readme_and_docs_block_runs_as_written(tmp_path, capsys):
    env = _shims(tmp_path)
    ran, skipped = [], []
    for page in pages():
        run_blocks(page, tmp_path, env, ran, skipped, slow=False)
    with capsys.disabled():
        print("\ndocs blocks run:\n  " + "\n  ".join(ran) + "\ndocs blocks skipped (marked in the page):\n  " + "\n  ".join(skipped))
    # the first hour: the quick start made a report, and the Python blocks did run
    assert (tmp_path / "runs" / "digits" / "report.html").is_file()
    assert (tmp_path / "runs" / "mine" / "report.html").is_file()
    assert sum(" python " in r for r in ran) >= 2 and sum(" bash " in r for r in ran) >= 4, ran


@pytest.mark.slow
@pytest.mark.parametrize("page", [p.relative_to(ROOT).as_posix() for p in pages() if any(b["slow"] for b in blocks(p.read_text()))])
def test_pages_with_slow_blocks_run_whole(tmp_path, capsys, page):
    env = _shims(tmp_path)
    ran, skipped = [], []
    run_blocks(ROOT / page, tmp_path, env, ran, skipped, slow=True)
    with capsys.disabled():
        print(f"\n{page}, every block:\n  " + "\n  ".join(ran))
    assert ran
