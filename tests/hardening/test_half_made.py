"""Folders left half-made are never stuck; a replaced run never receives old results; a kill
between a checkpoint and its manifest entry does not restart training; audit reuse is verified."""

from __future__ import annotations

import json
import os

import pytest
import torch

from sslaudit.cli.main import main
from sslaudit.errors import UserError
from sslaudit.store import RunStore

TRAIN = ["train", "--data", "digits", "--epochs", "1", "--batch-size", "128", "--quiet"]


def test_killed_at_the_first_manifest_write(tmp_path, capsys):
    """What a SIGKILL inside the very first manifest write leaves: the lock and a temporary file."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_bytes(b"")
    (out / ".manifest.json.k2j4h1.tmp").write_bytes(b'{"format": "sslaudit-run/1", "artef')
    assert main([*TRAIN, "--out", str(out)]) == 0, capsys.readouterr().err
    assert not (out / ".manifest.json.k2j4h1.tmp").exists()


def test_stale_lock_alone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_bytes(b"12345")  # its process is gone (flock died with it)
    assert main([*TRAIN, "--out", str(out)]) == 0


def test_rejected_argument_then_corrected_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--epochs", "1", "--batch-size", "1", "--out", str(out), "--quiet"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main([*TRAIN, "--out", str(out)]) == 0, capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_failed_import_then_corrected_import(tmp_path, capsys):
    from torch import nn

    bad = torch.jit.script(nn.Sequential(nn.Conv2d(1, 2, 3)))  # returns N×C×H×W, not N×D
    bad.save(str(tmp_path / "bad.pt"))
    good = torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU()))
    good.save(str(tmp_path / "good.pt"))
    out = tmp_path / "run"
    assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "bad.pt"), "--out", str(out), "--quiet", "--trust-code"]) == 2
    assert "N×D" in capsys.readouterr().err
    assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "good.pt"), "--out", str(out), "--quiet", "--trust-code"]) == 0, capsys.readouterr().err


def test_unfinished_start_of_another_run_is_taken_back(tmp_path):
    """A manifest with a config but no finished stage (e.g. killed before the first epoch)."""
    out = tmp_path / "run"
    s = RunStore(out, create=True)
    with s.lock():
        s.set_config({"data": {"spec": "something else"}})
    assert main([*TRAIN, "--out", str(out)]) == 0


def test_force_takes_back_a_damaged_run_but_never_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    (out / "manifest.json").write_text("{not json")
    assert main([*TRAIN, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*TRAIN, "--out", str(out), "--force"]) == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    assert main([*TRAIN, "--out", str(foreign), "--force"]) == 2
    assert (foreign / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize(
    "manifest",
    [
        '{"format": "sslaudit-run/1", "artefacts": [], "stages": {}}',
        '{"format": "sslaudit-run/1", "artefacts": {}, "stages": {"train": 5}}',
        '{"format": "sslaudit-run/1", "artefacts": {"x": {"sha256": 1}}, "stages": {}}',
        '{"format": "sslaudit-run/1", "artefacts": {}, "stages": {"train": {"config_hash": "a", "artefacts": [1]}}}',
        "[1, 2]",
        '"sslaudit-run/1"',
    ],
)
def test_malformed_manifests_are_one_line_errors(tmp_path, capsys, manifest):
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text(manifest)
    for cmd in (["info", str(out)], ["report", str(out)], ["qscore", str(out), "-q"], [*TRAIN, "--out", str(out)]):
        code = main(cmd)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (cmd, err)


def test_lens_never_stores_into_a_run_replaced_meanwhile(tmp_path):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, load, train_run

    out = train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=256), tmp_path / "run")
    r = load(out)  # a lens opened the run and is computing …
    _ = r.encoder
    train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=128), out, force=True)  # … while it is replaced
    with pytest.raises(UserError, match="replaced"):
        with r.store.lock():
            r.store.write_json("qscore/evaluation.json", {"stale": True})
    assert not (out / "qscore").exists()


def test_kill_between_checkpoint_and_manifest_does_not_restart_training(tmp_path, monkeypatch):
    from sslaudit.models import trainer
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    cfg = lambda: TrainConfig(epochs=3, batch_size=256, seed=5)  # noqa: E731
    ref = train_run(data_config("digits"), cfg(), tmp_path / "ref")

    class Killed(BaseException):
        pass

    real = RunStore.mark_done

    def dies_after_second_checkpoint(self, name, config, artefacts, info=None):
        if name == "train/checkpoint" and (info or {}).get("epoch") == 1:
            raise Killed  # the checkpoint file of epoch 2 is written; its manifest entry is not
        return real(self, name, config, artefacts, info)

    monkeypatch.setattr(RunStore, "mark_done", dies_after_second_checkpoint)
    with pytest.raises(Killed):
        train_run(data_config("digits"), cfg(), tmp_path / "run")
    monkeypatch.setattr(RunStore, "mark_done", real)
    said = []
    monkeypatch.setattr(trainer, "info", said.append)
    train_run(data_config("digits"), cfg(), tmp_path / "run")
    assert any("after epoch 2 of 3" in s for s in said), said
    from safetensors.torch import load_file

    a, b = load_file(ref / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_torn_checkpoint_is_not_used(tmp_path, monkeypatch):
    from sslaudit.models.trainer import CHECKPOINT, TrainConfig
    from sslaudit.run import data_config, train_run

    out = tmp_path / "run"
    s = RunStore(out, create=True)
    with s.lock():
        s.write_bytes(CHECKPOINT, b"PK\x03\x04 torn")  # recorded in the manifest, but no stage: a kill mid-way
    train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=256), out)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_audit_reuses_a_lens_only_if_its_files_verify(tmp_path, monkeypatch):
    from sslaudit import audit as audit_mod
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    out = train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=256), tmp_path / "run")
    calls = []

    from sslaudit import lenses
    from sslaudit.lenses import Context, LensResult

    def fake_compute(self, run, cfg, ctx):  # a lens run that stores one result file
        calls.append(self.name)
        return LensResult(documents={"result": {"n": len(calls)}})

    monkeypatch.setattr(type(lenses.get("qscore")), "compute", fake_compute)
    a = audit_mod.Audit(out, Context())
    a.stage("qscore", [])
    a.stage("qscore", [])
    assert calls == ["qscore"]  # verified: reused
    p = out / "qscore" / "result.json"
    p.write_text(p.read_text().replace("1", "7"))  # altered behind the store's back; status.json still says done
    a.stage("qscore", [])
    assert calls == ["qscore", "qscore"]
    os.unlink(p)
    a.stage("qscore", [])
    assert calls == ["qscore"] * 3
