"""SIGKILL mid-stage, rerun the same command: identical results, finished work not recomputed."""

import shutil

import pytest

from sslaudit.models.trainer import TrainConfig
from sslaudit.run import data_config, train_run

from .faults import artefact_hashes, artefact_times, cli, kill_when, manifest, run_ok, stage_times


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


# KREPES on digits with many small part files (SSLAUDIT_PART_ROWS) so a kill lands between parts
KREPES_ARGS = ["--test-points", "40", "--landmarks", "64", "--cg-max-iter", "8", "--block-size", "64", "--probe-sample", "400"]
KREPES_ENV = {"SSLAUDIT_PART_ROWS": "96"}


def krepes_results(run) -> dict:
    """Hashes of the tables KREPES writes (the JSON documents carry stage timings)."""
    return {k: v for k, v in artefact_hashes(run, "krepes/").items() if k.endswith(".parquet") and "/cache/" not in k}


@pytest.mark.slow
def test_krepes_kernel_blocks_resume_after_sigkill(digits_run, tmp_path):
    ref = fresh_copy(digits_run, tmp_path / "ref")
    run_ok(cli("krepes", str(ref), *KREPES_ARGS), env=KREPES_ENV)
    run = fresh_copy(digits_run, tmp_path / "killed")
    parts = lambda m: [k for k in m["artefacts"] if k.startswith("krepes/cache/kernel_train-")]  # noqa: E731
    killed = kill_when(cli("krepes", str(run), *KREPES_ARGS), run, lambda m: len(parts(m)) >= 3, env=KREPES_ENV)
    assert killed, "the kill came too late to test resumption"
    before = artefact_times(run, "krepes/cache/kernel_train-")
    n_parts = -(-1437 // 96)
    assert 3 <= len(before) < n_parts and "krepes/kernel_train" not in manifest(run)["stages"]
    run_ok(cli("krepes", str(run), *KREPES_ARGS), env=KREPES_ENV)
    after = artefact_times(run, "krepes/cache/kernel_train-")
    assert len(after) == n_parts
    assert all(after[k] == t for k, t in before.items()), "finished kernel parts were recomputed"
    res = krepes_results(run)
    assert res == krepes_results(ref) and "krepes/landmarks.parquet" in res


@pytest.mark.slow
def test_krepes_step_resumes_after_sigkill(digits_run, tmp_path):
    ref = fresh_copy(digits_run, tmp_path / "ref")
    run_ok(cli("krepes", str(ref), *KREPES_ARGS), env=KREPES_ENV)
    run = fresh_copy(digits_run, tmp_path / "killed")
    solved = lambda m: [k for k in m["artefacts"] if k.startswith("krepes/cache/step-") and "/lambda-" in k]  # noqa: E731
    killed = kill_when(cli("krepes", str(run), *KREPES_ARGS), run, lambda m: len(solved(m)) >= 1, env=KREPES_ENV)
    assert killed, "the kill came too late to test resumption"
    m = manifest(run)
    assert "krepes/step" not in m["stages"], "the step finished before the kill"
    kernels = {k: v["finished"] for k, v in m["stages"].items() if k.startswith("krepes/kernel")}
    assert {"krepes/kernel_train", "krepes/kernel_views"} <= set(kernels)
    log = run_ok(cli("krepes", str(run), *KREPES_ARGS), env={**KREPES_ENV, "SSLAUDIT_QUIET": "0"})
    assert "resuming the Gauss–Newton step" in log and "CG finished" in log and "of 3 λ candidates already backtracked" in log  # the default grid (0.1, 1, 10)× the curvature
    assert "(0 of 3" not in log, "no finished λ candidate was reused"
    after = manifest(run)
    assert all(after["stages"][k]["finished"] == t for k, t in kernels.items()), "kernel stages were recomputed"
    assert not [k for k in after["artefacts"] if k.startswith("krepes/cache/step-")], "the step's partial results outlived it"
    assert krepes_results(run) == krepes_results(ref)
