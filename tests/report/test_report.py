"""The audit end to end and its HTML report: escaping, offline, and a real headless browser."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sslaudit.cli.main import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def digits_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "digits"
    assert main(["audit", "--data", "digits", "--epochs", "1", "--quick", "--out", str(out), "--quiet"]) == 0
    return out


def test_audit_writes_every_applicable_lens_and_a_report(digits_audit):
    import json

    status = json.loads((digits_audit / "audit" / "status.json").read_text())
    lenses = status["lenses"]
    assert lenses["simvae"]["state"] == "skipped" and "discriminative" in lenses["simvae"]["reason"]
    for lens in ("krepes", "qscore", "relax", "influence"):
        assert lenses[lens]["state"] == "done", lens
    html = (digits_audit / "report.html").read_text()
    for sid in ("summary", "krepes", "influence", "relax", "qscore", "skipped"):
        assert f'id="{sid}"' in html
    assert "http://" not in html and "https://" not in html, "the report must not reference the network"
    # where a lens ran on a subsample or fixed settings, its section says so
    assert html.count('<p class="note">quick audit: small samples and fixed settings') == 4


def test_rerun_skips_finished_stages(digits_audit, capsys):
    from sslaudit import progress

    progress.set_enabled(True)  # the status lines say what is reused
    try:
        code = main(["audit", "--data", "digits", "--epochs", "1", "--quick", "--out", str(digits_audit)])
    finally:
        progress.set_enabled(False)
    assert code == 0
    err = capsys.readouterr().err
    assert "already trained" in err and "already done" in err


def test_html_in_column_names_is_escaped(tmp_path):
    rng = np.random.default_rng(0)
    evil = '<img src=x onerror="alert(1)">'
    lines = [f"{evil},<b>bold</b>"] + [f"{rng.normal():.4f},{rng.choice(['a', 'b'])}" for _ in range(120)]
    csv = tmp_path / "two.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["audit", "--data", str(csv), "--epochs", "1", "--quick", "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;img src=x" in html or "&lt;b&gt;bold" in html


@pytest.mark.browser
def test_report_in_headless_chromium(digits_audit, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (a test extra)")
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((digits_audit / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        ctx.close()
    assert not errors, errors
    assert images and all(ok and w > 0 for ok, w in images), images
    for sid in ("summary", "krepes", "influence", "relax", "qscore", "skipped"):
        assert sid in sections
    assert all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith(("file:", "data:"))]
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_fairness_and_latent_direction_tables():
    import pandas as pd

    from sslaudit.methods.influence.fairness import fairness_report
    from sslaudit.report.collect import directions_table, fairness_blocks

    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"sex": rng.choice(["Female", "Male"], 400), "race": rng.choice(["A", "B", "C"], 400)})
    scores = rng.normal(size=400) + (meta["sex"] == "Female") * 1.0
    blocks = fairness_blocks(fairness_report(scores, meta, ["sex", "race"]))
    groups, tests = blocks[0], blocks[1]
    assert groups.columns[:2] == ["group", "n"] and {r[0] for r in groups.rows} == {"Female", "Male"}
    assert sum(r[1] for r in groups.rows) == 400
    assert tests.rows[0][:2] == ["Female", "Male"] and float(tests.rows[0][2]) > 0.3  # planted: women score higher
    assert len(blocks[3].rows) == 3 and "Kruskal" in blocks[3].caption  # three race groups, each against the rest
    assert "no protected" in fairness_blocks({"attributes": [], "note": "no protected attributes"})[0].text
    t = directions_table({"tasks": ["content", "rotation"], "probe_accuracy": [0.9, 0.6], "top_dims": {"content": [3, 1, 0], "rotation": [2, 5, 4]}})
    assert [(r[0], float(r[1]), r[2]) for r in t.rows] == [("content", 0.9, "3, 1, 0"), ("rotation", 0.6, "2, 5, 4")]


def test_audit_plan_sizes_lenses_to_the_data_and_says_so():
    from sslaudit.audit import AUDIT_STEP_SAMPLE, AuditPlan

    small = AuditPlan.for_data(1437, 360, "image")
    assert small.krepes_extra == [] and small.influence_subsample is None and "krepes" in small.notes  # 300 of 360 test points
    big = AuditPlan.for_data(60_000, 10_000, "image")
    assert big.krepes_extra == ["--step-sample", str(AUDIT_STEP_SAMPLE)] and big.influence_subsample == 5_000
    assert f"{AUDIT_STEP_SAMPLE:,}" in big.notes["krepes"] and "1,000 seeded test points" in big.notes["krepes"]
    assert "5,000 of the 60,000" in big.notes["influence"]
