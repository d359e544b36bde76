"""Planted symbolic links: nothing outside the run is ever written, created or read through them."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from sslaudit.cli.main import main
from sslaudit.errors import UserError
from sslaudit.store import RunStore, config_hash


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    return train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=256), tmp_path_factory.mktemp("links") / "run")


@pytest.fixture
def outside(tmp_path):
    """A victim file outside the run, and a path outside that must never be created."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return victim, tmp_path / "never-created"


def copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst, symlinks=True)
    return dst


def test_krepes_part_file_tmp_link_is_not_followed(tmp_path, outside):
    """The old fixed temporary name `.part-00000.f32.tmp`, planted as a link to a victim file."""
    from sslaudit.compute.ooc import stored_matrix

    victim, _ = outside
    s = RunStore(tmp_path / "run", create=True)
    key, n, m = {"what": "test"}, 10, 3
    folder = s.root / "krepes" / "cache" / f"kernel_train-{config_hash({**key, 'part_rows': 4})}"
    folder.mkdir(parents=True)
    for i in range(3):
        os.symlink(victim, folder / f".part-{i:05d}.f32.tmp")
    full = np.arange(n * m, dtype=np.float32).reshape(n, m)
    with s.lock():
        mat, computed = stored_matrix(s, "krepes/kernel_train", key, n, m, lambda a, b: [full[a:b]], part_rows=4)
    assert computed == 3 and np.array_equal(np.asarray(mat), full)
    assert victim.read_text() == "precious\n"
    assert not any(p.is_symlink() for p in folder.iterdir()), "the planted links are stray temporary names: cleaned"


def test_krepes_part_file_link_to_outside_is_refused(tmp_path, outside):
    from sslaudit.compute.ooc import stored_matrix

    victim, _ = outside
    s = RunStore(tmp_path / "run", create=True)
    key = {"what": "test"}
    folder = s.root / "krepes" / "cache" / f"kernel_train-{config_hash({**key, 'part_rows': 4})}"
    folder.mkdir(parents=True)
    os.symlink(victim, folder / "part-00000.f32")
    with s.lock(), pytest.raises(UserError, match="escapes the run directory"):
        stored_matrix(s, "krepes/kernel_train", key, 4, 2, lambda a, b: [np.zeros((b - a, 2))], part_rows=4)
    assert victim.read_text() == "precious\n"


def test_lock_link_creates_nothing_outside(digits_run, tmp_path, outside, capsys):
    _, never = outside
    run = copy(digits_run, tmp_path)
    os.unlink(run / ".lock")
    os.symlink(never, run / ".lock")
    for extra in ([], ["--trust-code"]):
        assert main(["qscore", str(run), "--quiet", *extra]) == 2
        assert "symbolic link" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(run), "--quiet"]) == 2
    assert not os.path.lexists(never)


def test_info_does_not_print_a_linked_metrics_file(digits_run, tmp_path, outside, capsys):
    victim, _ = outside
    run = copy(digits_run, tmp_path)
    os.unlink(run / "metrics.json")
    os.symlink(victim, run / "metrics.json")
    code = main(["info", str(run)])
    out = capsys.readouterr()
    assert code == 2 and "precious" not in out.out + out.err and "escapes" in out.err


def test_link_in_place_of_any_artefact_is_neither_read_nor_written(digits_run, tmp_path, outside, capsys):
    """Every artefact the manifest lists, replaced by a link to a victim whose bytes match the
    manifest's checksum (a forged manifest): reads refuse, writes refuse, the victim is untouched."""
    victim, _ = outside
    run = copy(digits_run, tmp_path)
    store = RunStore(run)
    for rel in list(store.manifest["artefacts"]):
        target = tmp_path / f"victim-{rel.replace('/', '_')}"
        shutil.copy(run / rel, target)
        os.unlink(run / rel)
        os.symlink(target, run / rel)
        s = RunStore(run)
        with pytest.raises(UserError, match="escapes"):
            s.read_bytes(rel)
        with s.lock(), pytest.raises(UserError, match="escapes"):
            s.write_bytes(rel, b"overwritten")
        assert target.read_bytes() != b"overwritten"
        with pytest.raises(UserError, match="escapes"):
            s.verify(rel)
    for cmd in (["info", str(run)], ["report", str(run)], ["qscore", str(run), "--quiet"], ["qscore", str(run), "--quiet", "--trust-code"]):
        code = main(cmd)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, (cmd, err)
    assert victim.read_text() == "precious\n"


def test_linked_lens_folder_is_not_written_through(digits_run, tmp_path, capsys):
    run = copy(digits_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, run / "qscore")
    assert main(["qscore", str(run), "--quiet", "--fractions", "1", "--max-probe-train", "200", "--saliency-features", "1"]) == 2
    assert "escapes" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_force_removes_links_without_following_them(digits_run, tmp_path, outside):
    victim, _ = outside
    run = copy(digits_run, tmp_path)
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    (ext_dir / "keep.txt").write_text("keep")
    os.symlink(ext_dir, run / "linked-dir")
    os.symlink(victim, run / "linked-file")
    assert main(["train", "--data", "digits", "--epochs", "1", "--batch-size", "128", "--out", str(run), "--force", "--quiet"]) == 0
    assert victim.read_text() == "precious\n" and (ext_dir / "keep.txt").read_text() == "keep"
    assert not os.path.lexists(run / "linked-dir") and not os.path.lexists(run / "linked-file")


def test_a_fifo_artefact_does_not_hang(digits_run, tmp_path):
    run = copy(digits_run, tmp_path)
    os.unlink(run / "metrics.json")
    os.mkfifo(run / "metrics.json")
    s = RunStore(run)
    with pytest.raises(UserError):
        s.read_bytes("metrics.json")


def test_stray_temporary_files_are_cleaned_on_open(tmp_path):
    s = RunStore(tmp_path / "run", create=True)
    (tmp_path / "run" / "sub").mkdir()
    strays = [tmp_path / "run" / ".x.json.abc123.tmp", tmp_path / "run" / "sub" / ".part-00000.f32.tmp"]
    for p in strays:
        p.write_bytes(b"half")
    (tmp_path / "run" / "keep.tmp").write_bytes(b"not ours")  # no leading dot: not a name sslaudit makes
    with s.lock():
        pass
    assert not any(p.exists() for p in strays) and (tmp_path / "run" / "keep.tmp").exists()


def test_rename_is_followed_by_a_directory_fsync(tmp_path, monkeypatch):
    import sslaudit.store as store_mod

    synced = []
    real = os.fsync

    def spy(fd):
        import stat

        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(fd)
        return real(fd)

    monkeypatch.setattr(store_mod.os, "fsync", spy)
    s = RunStore(tmp_path / "run", create=True)
    with s.lock():
        before = len(synced)
        s.write_json("a/b.json", {"x": 1})
    assert len(synced) - before >= 2  # the artefact's folder and the manifest's folder
