"""SIGKILL mid-stage, rerun the same command: identical results, finished work not recomputed."""
import shutil

import pytest

from sslaudit.models.trainer import TrainConfig
from sslaudit.run import data_config, train_run

from .faults import artefact_hashes, cli, kill_when, run_ok, stage_times


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=128), tmp_path_factory.mktemp("faults") / "run")


def fresh_copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
def test_relax_resumes_after_sigkill(digits_run, tmp_path):
    from sslaudit.data import load_dataset

    idx = [a for i in load_dataset("digits").test.index[:12] for a in ("--index", f"test:{int(i)}")]
    ref = fresh_copy(digits_run, tmp_path / "ref")
    run_ok(cli("relax", str(ref), *idx, "--masks", "400", "--no-sanity"))
    run = fresh_copy(digits_run, tmp_path / "killed")
    killed = kill_when(cli("relax", str(run), *idx, "--masks", "400", "--no-sanity"), run, lambda m: any(k.startswith("relax/test-") for k in m["stages"]))
    assert killed, "the kill came too late to test resumption"
    before = stage_times(run, "relax/test-")
    assert 0 < len(before) < 12
    run_ok(cli("relax", str(run), *idx, "--masks", "400", "--no-sanity"))
    after = stage_times(run, "relax/test-")
    assert all(after[k] == t for k, t in before.items()), "finished inputs were recomputed"
    maps = lambda r: {k: v for k, v in artefact_hashes(r, "relax/").items() if k.endswith(".npz")}
    assert maps(run) == maps(ref) and len(maps(ref)) == 12


@pytest.mark.slow
def test_influence_resumes_after_sigkill(digits_run, tmp_path):
    args = ["--subsample", "300", "--check", "0", "--draws", "1", "--strategy", "kfac"]
    ref = fresh_copy(digits_run, tmp_path / "ref")
    run_ok(cli("influence", str(ref), *args))
    run = fresh_copy(digits_run, tmp_path / "killed")
    killed = kill_when(cli("influence", str(run), *args), run, lambda m: "influence/factors" in m["stages"])
    assert killed, "the kill came too late to test resumption"
    before = stage_times(run, "influence/factors")
    run_ok(cli("influence", str(run), *args))
    assert stage_times(run, "influence/factors") == before, "the fitted factors were recomputed"
    scores = lambda r: {k: v for k, v in artefact_hashes(r, "influence/").items() if k in ("influence/self_influence.parquet", "influence/duplicates.parquet")}
    assert scores(run) == scores(ref) and len(scores(ref)) == 2
