"""The audit end to end and its HTML report: escaping, offline, and a real headless browser."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from sslaudit.cli.main import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]


def test_audit_writes_every_applicable_lens_and_a_report(digits_audit):
    import json

    status = json.loads((digits_audit / "audit" / "status.json").read_text())
    lenses = status["lenses"]
    assert lenses["simvae"]["state"] == "skipped" and "discriminative" in lenses["simvae"]["reason"]
    for lens in ("krepes", "qscore", "relax", "influence"):
        assert lenses[lens]["state"] == "done", lens
    html = (digits_audit / "report.html").read_text()
    for sid in ("findings", "summary", "krepes", "influence", "relax", "qscore", "skipped", "glossary"):
        assert f'id="{sid}"' in html
    assert "http://" not in html and "https://" not in html, "the report must not reference the network"
    # where a lens ran on a subsample or fixed settings, its section says so
    assert html.count('<p class="note">quick audit: small samples and fixed settings') == 4
    # a verdict card per lens; the skipped one says why and which command runs it
    assert html.count('<div class="card ') >= 6
    assert "Not run: the model is discriminative" in html and "--objective simvae" in html
    # figures, not tables of internal names, come first: tables are folded; names carry tooltips
    assert "<details><summary>Table:" in html
    for internal in ("loss_before", "n_distinct_top1", "precision_at_1_baseline", "{'", "fidelity.json</"):
        assert internal not in html, internal
    assert 'title="Rank correlation between the network' in html  # Kendall τ's glossary tooltip
    assert "group anchoring heatmap by class" in html and "training curves" in html
    assert (digits_audit / "report.html").stat().st_size < 3_000_000, "a report must fit in a mail"


def test_training_history_is_stored_per_epoch(digits_audit):

    from sslaudit.store import RunStore

    h = RunStore(digits_audit).read_parquet("train/history.parquet")
    assert list(h["epoch"]) == [1] and {"loss", "lr", "knn_accuracy", "collapse_std"} <= set(h.columns)
    assert np.isfinite(h["loss"]).all() and 0 <= float(h["knn_accuracy"].iloc[0]) <= 1


def test_rerun_skips_finished_stages(digits_audit, capsys):
    from sslaudit import progress

    progress.set_enabled(True)  # the status lines say what is reused
    try:
        code = main(["audit", "--data", "digits", "--epochs", "1", "--quick", "--out", str(digits_audit)])
    finally:
        progress.set_enabled(False)
    assert code == 0
    err = capsys.readouterr().err
    assert "already trained" in err and "already in the run; reusing them" in err


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
    assert "findings" in sections
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


def test_audit_configs_size_lenses_to_the_data_and_say_so():
    from types import SimpleNamespace

    from sslaudit import lenses
    from sslaudit.lenses.krepes import AUDIT_STEP_SAMPLE

    from torch import nn

    def fake(n_train, n_test):  # a small encoder: the audit sizes the gradient lenses to it too (tests/lenses/test_audit_sizes.py)
        return SimpleNamespace(dataset=SimpleNamespace(train=range(n_train), test=range(n_test), kind="image"), encoder=nn.Linear(4, 4))

    krepes, influence = lenses.get("krepes"), lenses.get("influence")
    small_k, note = krepes.audit_config(fake(1437, 360), focus=["test:3"], quick=False)
    small_i, _ = influence.audit_config(fake(1437, 360), focus=[], quick=False)
    assert small_k.krepes.step_sample == 131072 and small_k.test_points == 300 and small_k.index == ("test:3",) and "300 seeded test points" in note
    assert small_i.subsample is None and small_i.influence.draws == 2 and small_i.check == 50
    big_k, note_k = krepes.audit_config(fake(60_000, 10_000), focus=[], quick=False)
    big_i, note_i = influence.audit_config(fake(60_000, 10_000), focus=[], quick=False)
    assert big_k.krepes.step_sample == AUDIT_STEP_SAMPLE and big_i.subsample == 5_000
    assert f"{AUDIT_STEP_SAMPLE:,}" in note_k and "1,000 seeded test points" in note_k
    assert "5,000 of the 60,000" in note_i


def test_cards_survive_missing_keys_and_failed_lenses(digits_audit, tmp_path):
    """A summary without the keys the card reads, and a lens that failed, give sentences, not crashes."""

    from sslaudit.report.render import render_report
    from sslaudit.store import RunStore

    run = tmp_path / "run"
    shutil.copytree(digits_audit, run)
    store = RunStore(run)
    with store.lock():
        store.write_json("krepes/fidelity.json", {"mode": "step", "some_new_key": {"nested": [1, 2]}}, stage="krepes")
        store.write_json("relax/evaluation.json", {"maps": "not a dict"}, stage="relax")
        status = store.read_json("audit/status.json")
        status["lenses"]["influence"] = {"state": "failed", "reason": "RuntimeError: planted", "command": "sslaudit influence RUN --check 0"}
        store.write_json("audit/status.json", status, stage="audit")
    html = Path(render_report(run)).read_text()
    assert "summary lacks kendall_tau, delta_accuracy" in html
    assert "summary lacks maps.relax.insertion_auc" in html
    assert "Failed: RuntimeError: planted." in html and "sslaudit influence RUN --check 0" in html
    assert "{&#39;" not in html and "{'" not in html


def test_failed_lens_is_recorded_with_its_rerun_command(digits_audit, tmp_path, monkeypatch):
    import json

    import sslaudit.audit as audit_mod
    from sslaudit.report.render import render_report

    run = tmp_path / "run"
    shutil.copytree(digits_audit, run)

    from sslaudit import lenses
    from sslaudit.lenses import Context

    def failing(*args):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(type(lenses.get("relax")), "compute", failing)
    audit = audit_mod.Audit(run, Context(), quick=True)
    audit.stage("relax", ["test:5"])  # a new focus sample: the lens reruns, and fails
    assert audit.failed() == ["relax"]
    st = json.loads((run / "audit" / "status.json").read_text())["lenses"]
    assert st["relax"]["state"] == "failed" and "planted failure" in st["relax"]["reason"]
    assert st["relax"]["command"] == f"sslaudit relax {run} --index test:5 --masks 300 --no-sanity" and st["influence"]["state"] == "done"
    html = Path(render_report(run)).read_text()
    assert "Failed: RuntimeError: planted failure." in html and f"sslaudit relax {run} --index test:5 --masks 300 --no-sanity" in html


def test_quick_audit_trains_a_sixth_of_the_epochs():
    from sslaudit.audit import quick_epochs
    from sslaudit.cli.train import default_epochs

    assert quick_epochs(default_epochs(1437, "image")) == 10  # digits: 10 instead of 60
    assert quick_epochs(default_epochs(60_000, "image")) == 2


def test_every_diagnostic_name_has_a_glossary_tooltip():
    from sslaudit.report.collect import Collector
    from sslaudit.report.glossary import GLOSSARY

    keys = [
        "mode",
        "delta_accuracy",
        "kendall_tau",
        "kendall_tau_centred_network",
        "kendall_tau_ceiling",
        "kendall_tau_raw",
        "precision_at_1",
        "precision_at_1_baseline",
        "confidence_drop_top",
        "confidence_drop_random",
        "n_distinct_top1",
        "network_accuracy",
        "surrogate_accuracy",
        "lambda_multiple",
        "lambda_chosen_by",
        "loss_before",
        "loss_after",
        "n_landmarks",
        "rank",
        "kernel",
        "selection",
        "n_step_samples",
    ]
    big = {
        "kernel_parameters": {"spec": "last-stage", "n_parameters": 8_000_000, "n_parameters_total": 11_000_000},
        "layer_projection_dim": 16,
        "kernel_fidelity": {"sample": 64, "relative_frobenius_error": 0.2, "top": 10, "top10_landmark_agreement": 0.75},
        "linearised": "projector",
    }
    table = Collector.fidelity_table(None, {k: 0.5 for k in keys} | big)
    names = [r[0] for r in table.rows if r[0] != "mode"]
    assert len(names) == len(keys) - 1 + 5  # the linearised output, the subset, the projection and the kernel fidelity are stated
    assert len([r for r in Collector.fidelity_table(None, {k: 0.5 for k in keys} | {"linearised": "backbone"}).rows if r[0] != "mode"]) == len(keys) - 1  # the default goes unsaid
    assert ["per-layer gradient projection", "16×16 per layer"] in table.rows
    assert [n for n in names if n not in GLOSSARY] == []
    for name in (
        "deletion AUC",
        "insertion AUC",
        "complexity",
        "sparseness",
        "AUPRC",
        "AUROC",
        "Cliff's δ",
        "Q-Score",
        "self-influence",
        "duplicate score",
        "influence score",
        "Feature Alignment Gap",
        "linear-probe accuracy",
        "k-NN accuracy",
        "collapse check",
    ):
        assert GLOSSARY.get(name), name
