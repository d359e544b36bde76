import json

import numpy as np
import pytest

from sslaudit.cli.main import main


def test_cli_writes_maps_png_and_evaluation(digits_run, capsys):
    import sslaudit

    idx = [int(i) for i in sslaudit.load(digits_run).dataset.test.index[:2]]
    args = ["relax", str(digits_run), "--index", f"test:{idx[0]}", "--index", f"test:{idx[1]}", "--masks", "200", "--eval-steps", "5", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "relax" in out and "deletion AUC" in out
    d = digits_run / "relax"
    for i in idx:
        z = np.load(d / f"test-{i}.npz")
        assert {"importance", "uncertainty", "u_relax", "n_masks"} <= set(z.files)
        assert z["importance"].shape == (8, 8) and int(z["n_masks"].reshape(-1)[0]) == 200
        assert (d / f"test-{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev = json.loads((d / "evaluation.json").read_text())
    assert set(ev["maps"]) == {"relax", "u_relax", "saliency", "random", "random_mask_scale", "reversed_relax"} and "sanity_check" in ev
    assert ev["settings"]["num_cells"] == 2 and ev["settings"]["fill"] == "mean"  # 8×8 digits: 4-pixel cells, not 7×7
    loc = ev["maps"]["relax"]["localisation"]
    assert 0 < loc["foreground_share"] < 1 and 0 <= loc["mass_share"] <= 1
    assert ev["sanity_check"]["passed"] is None  # two inputs: too few for the permutation null
    assert ev["inputs"] == [f"test:{i}" for i in idx]
    before = (d / f"test-{idx[0]}.npz").stat().st_mtime_ns
    assert main(args[:-3] + ["--eval-steps", "5", "--no-sanity", "-q"]) == 0  # cached maps reused
    assert (d / f"test-{idx[0]}.npz").stat().st_mtime_ns == before
    assert main(["relax", str(digits_run), "--index", f"test:{idx[0]}", "--masks", "auto", "--tolerance", "0.01", "--no-sanity", "-q"]) == 0
    z = np.load(d / f"test-{idx[0]}.npz")
    assert z["std_error"].max() <= 0.01 and int(z["n_masks"].reshape(-1)[0]) % 100 == 0
    assert main(["relax", str(digits_run), "--index", f"test:{idx[0]}", "--masks", "100", "--cells", "4", "--no-sanity", "--no-localisation", "-q"]) == 0
    ev = json.loads((d / "evaluation.json").read_text())
    assert ev["settings"]["num_cells"] == 4 and "localisation" not in ev["maps"]["relax"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--index", "test:999999"], "not in the data"),
        (["--index", "test:../../etc"], "bad sample reference"),
        (["--index", "valid:1"], "bad sample reference"),
        (["--masks", "0"], "≥ 1"),
        (["--masks", "lots"], "number of masks"),
        (["--cells", "0"], "cells per side"),
        (["--cells", "many"], "cells per side"),
        (["--masks", "auto", "--tolerance", "0"], "> 0"),
        (["--masks", "100", "--tolerance", "0.01"], "--masks auto"),
        (["--batch-size", "0"], "--batch-size"),
        (["--tabular-groups"], "tables"),
    ],
)
def test_cli_errors(digits_run, capsys, extra, message):
    import sslaudit

    i = int(sslaudit.load(digits_run).dataset.test.index[0])
    args = ["relax", str(digits_run)] + (["--index", f"test:{i}"] if "--index" not in extra else []) + extra + ["-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_cli_tables(adult_run, capsys):
    assert main(["relax", str(adult_run), "--index", "test:0", "--masks", "100", "-q"]) == 2
    assert "--tabular-groups" in capsys.readouterr().err
    assert main(["relax", str(adult_run), "--index", "test:0", "--masks", "100", "--tabular-groups", "--eval-steps", "4", "-q"]) == 0
    z = np.load(adult_run / "relax" / "test-0.npz")
    import sslaudit

    assert z["importance"].shape == (len(sslaudit.load(adult_run).dataset.schema.features),)
    assert (adult_run / "relax" / "test-0.png").is_file()


def test_a_run_resumed_mid_chunk_gives_the_same_bytes(digits_run, tmp_path):
    """Inputs are attributed in fixed chunks; a run interrupted partway through a chunk recomputes
    that chunk whole (the same batch as uninterrupted) and stores only the missing maps, so its
    maps are byte-identical to an uninterrupted run's and finished maps are not rewritten."""
    import hashlib
    import shutil

    import sslaudit
    from sslaudit.lenses.relax import CHUNK

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    idx = [int(i) for i in sslaudit.load(run).dataset.test.index[: CHUNK + 3]]
    args = ["relax", str(run), *[a for i in idx for a in ("--index", f"test:{i}")], "--masks", "100", "--eval-steps", "3", "--no-sanity", "-q"]
    assert main(args) == 0
    digest = lambda: {i: hashlib.sha256((run / "relax" / f"test-{i}.npz").read_bytes()).hexdigest() for i in idx}  # noqa: E731
    ref = digest()
    manifest = json.loads((run / "manifest.json").read_text())  # as if killed after the first chunk's second map
    for i in idx[2:]:
        manifest["stages"].pop(f"relax/test-{i}")
        for ext in ("npz", "png"):
            manifest["artefacts"].pop(f"relax/test-{i}.{ext}")
            (run / "relax" / f"test-{i}.{ext}").unlink()
    (run / "manifest.json").write_text(json.dumps(manifest))
    kept = (run / "relax" / f"test-{idx[0]}.npz").stat().st_mtime_ns
    assert main(args) == 0
    assert digest() == ref
    assert (run / "relax" / f"test-{idx[0]}.npz").stat().st_mtime_ns == kept
