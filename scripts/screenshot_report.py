"""Screenshots of a report in the headless Debian Chromium the browser test uses (docs/report-*.png).

    python scripts/screenshot_report.py RUN/report.html docs/report-digits.png [--full] [--height 1100]

The first screen (1280 × height) by default, the whole page with --full. Background networking is
off and any request that is not file: or data: fails the script, as in tests/report/test_report.py.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]


def shoot(report: Path, out: Path, *, full: bool = False, height: int = 1100, width: int = 1280) -> list[str]:
    """Save the screenshot; return the console errors and the non-local requests seen."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("error: Debian's chromium is not installed (apt-get install chromium)")
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True, args=FLAGS, viewport={"width": width, "height": height})
        page = ctx.new_page()
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(f"request: {r.url}"))
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=full)
        ctx.close()
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--full", action="store_true", help="the whole page, not only the first screen")
    ap.add_argument("--height", type=int, default=1100)
    a = ap.parse_args(argv)
    problems = shoot(a.report, a.out, full=a.full, height=a.height)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{a.out}: {a.out.stat().st_size / 1e3:.0f} kB")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
