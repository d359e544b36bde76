"""Same command, same seed → the same artefacts, byte for byte where the format allows.

Two quick audits of digits (training, every lens, the report) in separate folders are compared
through their manifests' checksums. Only files that record wall times or their own folder may
differ, and those are compared again with exactly those fields removed.
"""

import json
import re

import pytest

from .faults import cli, manifest, run_ok

# files that carry wall-clock fields (compared without them) or the run's own path (not compared)
# (krepes/explainer.json: its cost plan records the memory available and the FLOP rate measured at plan time)
TIMED_JSON = {"metrics.json", "audit/status.json", "krepes/fidelity.json", "krepes/summary.json", "krepes/explainer.json", "relax/evaluation.json", "influence/summary.json", "qscore/summary.json"}
TIMED_TORCH = {"train/checkpoint.pt"}  # weights and optimizer state plus the training seconds so far
NOT_COMPARED = {"report.html"}  # embeds the run's folder and the time it was rendered
TIME_KEY = re.compile(r"(seconds|per_second|time|elapsed|started|finished|written|rss|memory|cost_plan)", re.I)  # cost_plan: machine state at plan time


def without_times(obj):
    if isinstance(obj, dict):
        return {k: without_times(v) for k, v in obj.items() if not TIME_KEY.search(str(k))}
    if isinstance(obj, list):
        return [without_times(v) for v in obj]
    return obj


def flat_tensors(obj):
    """Every tensor in a nested state dict, in a fixed order."""
    import torch

    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in flat_tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in flat_tensors(v)]
    return []


def drop_tensors(obj):
    import torch

    if isinstance(obj, dict):
        return {k: drop_tensors(v) for k, v in obj.items() if not torch.is_tensor(v)}
    if isinstance(obj, (list, tuple)):
        return [drop_tensors(v) for v in obj if not torch.is_tensor(v)]
    return obj


@pytest.mark.slow
def test_same_seed_same_artefacts(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run_ok(cli("audit", "--data", "digits", "--epochs", "2", "--quick", "--seed", "3", "--out", str(run)))
    arts = [manifest(r)["artefacts"] for r in runs]
    assert set(arts[0]) == set(arts[1]), "the two runs wrote different files"
    differ = sorted(k for k in arts[0] if arts[0][k]["sha256"] != arts[1][k]["sha256"])
    unexplained = [k for k in differ if k not in TIMED_JSON | TIMED_TORCH | NOT_COMPARED]
    assert not unexplained, f"not byte-identical: {unexplained}"
    for rel in differ:
        if rel in TIMED_TORCH:
            import torch

            a, b = (torch.load(r / rel, weights_only=True) for r in runs)
            assert set(a) == set(b) and all(torch.equal(x, y) for x, y in zip(flat_tensors(a["method"]), flat_tensors(b["method"])))
            assert all(torch.equal(x, y) for x, y in zip(flat_tensors(a["optimizer"]), flat_tensors(b["optimizer"])))
            assert without_times(drop_tensors(a)) == without_times(drop_tensors(b)), f"{rel} differs beyond its timing fields"
        if rel in TIMED_JSON:
            # a skipped lens's rerun command names the run's own folder (a/… vs b/…)
            a, b = (without_times(json.loads((r / rel).read_text().replace(str(r), "RUN"))) for r in runs)
            assert a == b, f"{rel} differs beyond its timing fields"
    assert len(arts[0]) - len(differ) >= 20, "too few artefacts compared byte for byte"
