"""The lens contract: a toy lens is picked up by the CLI, the audit and the report; lenses used
from Python cache and resume through `run_lens` exactly as their commands do."""

from __future__ import annotations

import pytest

import sslaudit

from sslaudit import lenses
from sslaudit.cli.main import main
from sslaudit.lenses import Context, run_lens
from sslaudit.store import RunStore


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    return train_run(data_config("digits"), TrainConfig(objective="simclr", epochs=1, batch_size=256), tmp_path_factory.mktemp("lenses") / "digits")


@pytest.fixture
def toy_lens():
    from .toy_lens import NormsLens

    lenses.register("norms", NormsLens)  # the one registry line (REGISTRY in sslaudit/lenses/__init__.py for a built-in lens)
    yield lenses.get("norms")
    lenses.REGISTRY.pop("norms")
    lenses._LOADED.pop("norms", None)


def test_toy_lens_on_the_command_line(digits_run, toy_lens, capsys, tmp_path):
    assert main(["norms", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--top INTEGER" in out and "Order of the norm." in out and "[default: 2]" in out
    assert main(["norms", str(digits_run), "--top", "3", "--device", "cpu"]) == 0
    assert "largest norm: train:" in capsys.readouterr().out
    store = RunStore(digits_run)
    assert len(store.read_parquet("norms/norms.parquet")) == 3
    assert store.read_json("norms/config.json")["config"]["top"] == 3
    assert main(["norms", str(digits_run), "--top", "0"]) == 2
    assert "--top 0: must be ≥ 1" in capsys.readouterr().err


def test_toy_lens_in_the_audit_and_the_report(digits_run, toy_lens, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["audit", "--model", str(run), "--quick", "--device", "cpu", "-q"]) == 0
    store = RunStore(run)
    status = store.read_json("audit/status.json")["lenses"]
    assert status["norms"]["state"] == "done" and status["norms"]["command"].startswith(f"sslaudit norms {run}")
    assert status["norms"]["peak_rss_gb"] > 0.05 and isinstance(status["norms"]["peak_rss_exact"], bool)  # the audit records each lens's peak memory
    html = (run / "report.html").read_text()
    assert "Embedding norms (a toy lens)" in html and "<td>mean norm</td>" in html


def test_run_lens_reuses_stored_results(digits_run, toy_lens, monkeypatch):
    cfg = toy_lens.Config(top=4)
    first = run_lens("norms", digits_run, cfg, Context(seed=3))
    monkeypatch.setattr(type(toy_lens), "compute", lambda *a: pytest.fail("recomputed a stored result"))
    again = run_lens("norms", digits_run, cfg, Context(seed=3))
    assert again.tables["norms"].equals(first.tables["norms"])


def test_qscore_resumes_after_an_interruption(digits_run, tmp_path, monkeypatch):
    """Killed while fitting the compression curve, the rerun redoes neither the probe nor the saliency."""
    import shutil

    from sslaudit.methods.qscore import analysis

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    cfg = lenses.get("qscore").Config(fractions=(0.5, 1.0))
    calls = {"probe": 0}
    real_probe, real_curve = analysis.probe_correct, analysis.compression_curve

    def counting_probe(*a, **k):
        calls["probe"] += 1
        return real_probe(*a, **k)

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "probe_correct", counting_probe)
    monkeypatch.setattr(analysis, "compression_curve", killed)
    with pytest.raises(KeyboardInterrupt):
        run_lens("qscore", run, cfg, Context())
    assert calls["probe"] == 1 and not RunStore(run).stage_done("qscore")
    monkeypatch.setattr(analysis, "compression_curve", real_curve)
    res = run_lens("qscore", run, cfg, Context())
    assert calls["probe"] == 1  # the finished probe was read back, not refitted
    fresh = tmp_path / "fresh"
    shutil.copytree(digits_run, fresh)
    ref = run_lens("qscore", fresh, cfg, Context())
    assert res.documents == ref.documents and res.tables["scores"].equals(ref.tables["scores"])


def test_relax_resumes_after_an_interruption(digits_run, tmp_path, monkeypatch):
    """Killed after the first chunk of inputs, the rerun attributes only the missing chunk."""
    import shutil

    from sslaudit.lenses import relax as relax_lens
    from sslaudit.methods.relax import Relax

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    monkeypatch.setattr(relax_lens, "CHUNK", 2)
    ds = sslaudit.load(run).dataset
    refs = tuple(f"test:{int(i)}" for i in ds.test.index[:3])
    cfg = relax_lens.RelaxConfig(index=refs, masks=50, sanity=False, eval_steps=4)
    real = Relax.attribute
    seen = []

    def attribute(self, x, *a, **k):
        seen.append(len(x))
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(self, x, *a, **k)

    monkeypatch.setattr(Relax, "attribute", attribute)
    with pytest.raises(KeyboardInterrupt):
        run_lens("relax", run, cfg, Context())
    assert RunStore(run).stage_done(f"relax/test-{refs[0][5:]}") and not RunStore(run).stage_done(f"relax/test-{refs[2][5:]}")
    seen.clear()
    monkeypatch.setattr(Relax, "attribute", lambda self, x, *a, **k: (seen.append(len(x)), real(self, x, *a, **k))[1])
    res = run_lens("relax", run, cfg, Context())
    assert seen[0] == 1  # only the unfinished chunk (test:2) was attributed before the evaluation
    assert res.documents["evaluation"]["inputs"] == list(refs)


@pytest.mark.parametrize(
    "lens, extra",
    [
        ("krepes", ["--test-points", "5"]),
        ("influence", ["--subsample", "40"]),
        ("relax", ["--index", "test:7", "--masks", "50"]),
        ("qscore", []),
        ("simvae", ["--n-train", "100", "--n-test", "50", "--no-views"]),
    ],
)
def test_every_lens_refuses_a_budget_it_cannot_keep_before_the_work(digits_run, lens, extra, capsys):
    assert lens in lenses.names()
    store = RunStore(digits_run)
    before = set(store.manifest["artefacts"])
    assert main([lens, str(digits_run), *extra, "--max-memory", "1KB", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--max-memory" in err[0], err
    new = set(RunStore(digits_run).manifest["artefacts"]) - before
    assert all(a.startswith((f"{lens}/cache/", f"{lens}/parts/")) for a in new), new  # no results; at most resumable parts
