"""The removal experiment: drop the top x% by self-influence (controls: bottom x%, random x%),
retrain with the same configuration (objective, epochs, batch size, learning rate, seed), and
compare linear-probe accuracy.

Every arm removes the same number of examples, so the arms train for the same number of steps.
The probe is fitted on the full labelled training split and evaluated on the test split (the
downstream task is the same for every arm; only the encoder's pre-training data differ). The
retrained runs are ordinary run directories under RUN/influence/removal/<arm>-<hash>/, named by a
hash of the removed indices, so a rerun reuses them.

With `seed`, an arm is retrained under that seed instead of the run's (and the random arm draws its
own set from it), so one set of influence scores can be compared across many retraining seeds;
`paired_difference` summarises such a study (the difference of two arms, paired by seed).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..seeding import numpy_rng
from ..store import config_hash

ARMS = ("top", "bottom", "random")


def parse_fraction(text) -> float:
    """'5%' or '0.05' → 0.05."""
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*%", s)
    try:
        f = float(m.group(1)) / 100 if m else float(s)
    except ValueError:
        raise UserError(f"--remove {text!r}: give a percentage like 5% or a fraction like 0.05") from None
    if not (0 < f < 1):
        raise UserError(f"--remove {text!r}: the share removed must lie strictly between 0% and 100%")
    return f


def removal_sets(index: np.ndarray, score: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Training index values removed by each arm."""
    m = int(round(fraction * len(index)))
    if m < 1:
        raise UserError(f"removing {fraction:.2%} of {len(index)} scored examples removes none: raise --remove")
    order = np.lexsort((index, -score))  # highest score first, ties by index
    rnd = numpy_rng(seed, "influence", "removal").choice(len(index), m, replace=False)
    return {"top": np.sort(index[order[:m]]), "bottom": np.sort(index[order[-m:]]), "random": np.sort(index[rnd])}


def probe_accuracy(encoder, dataset, device: str, seed: int) -> float:
    from ..evaluate.probes import linear_probe
    from ..models.embed import embed

    tr = embed(encoder, dataset.train.x, device=device)
    te = embed(encoder, dataset.test.x, device=device)
    return linear_probe(tr, dataset.train.y, te, dataset.test.y, seed=seed).accuracy


def removal_experiment(run, index: np.ndarray, score: np.ndarray, fraction: float, *, device: str = "cpu", arms=ARMS, seed: int | None = None, full: bool = True) -> dict:
    """Retrain without each arm's examples and return linear-probe accuracies (and the full run's).

    `seed`: retrain (and draw the random arm, and fit the probe) under this seed rather than the
    run's; `full=False` skips re-probing the original run."""
    from ..data.dataset import Dataset
    from ..models.trainer import TrainConfig
    from ..run import load, train_run

    ds = run.dataset
    if not ds.has_labels:
        raise UserError("the removal experiment compares linear-probe accuracy and needs labels for evaluation")
    if "external" in run.config:
        raise UserError("the removal experiment retrains the encoder; an imported encoder has no training recipe")
    tcfg = TrainConfig(**run.config["train"])
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise UserError(f"removal arms {', '.join(map(str, unknown))}: choose from {', '.join(ARMS)}")
    tag = ""
    if seed is not None:
        tcfg = replace(tcfg, seed=int(seed))
        tag = f"s{int(seed)}-"
    sets = removal_sets(np.asarray(index), np.asarray(score), fraction, tcfg.seed)
    out = {"fraction": fraction, "removed": int(len(sets["top"])), "n_train": int(len(ds.train)), "train_config": tcfg.to_json(), "arms": {}}
    if full:
        out["full"] = {"linear_probe_accuracy": probe_accuracy(run.encoder, ds, device, tcfg.seed), "n_train": int(len(ds.train))}
    for arm in arms:
        removed = sets[arm]
        keep = np.nonzero(~np.isin(ds.train.index, removed))[0]
        reduced = Dataset(ds.name, ds.kind, ds.train.take(keep), ds.test, ds.classes, ds.schema, ds.protected, dict(ds.source))
        path = Path(run.path) / "influence" / "removal" / f"{arm}-{tag}{config_hash(removed.tolist())[:10]}"
        t = time.perf_counter()
        train_run(run.config["data"], replace(tcfg), path, dataset=reduced, device=device)
        enc = load(path, device=device).encoder
        out["arms"][arm] = {
            "linear_probe_accuracy": probe_accuracy(enc, ds, device, tcfg.seed),
            "n_train": int(len(keep)),
            "removed_index": removed.tolist(),
            "run": str(path),
            "seconds": time.perf_counter() - t,
        }
    accs = {a: r["linear_probe_accuracy"] for a, r in out["arms"].items()}
    out["summary"] = {
        "accuracy": {**accs, **({"full": out["full"]["linear_probe_accuracy"]} if full else {})},
        "top_minus_random": accs.get("top", np.nan) - accs.get("random", np.nan) if "top" in accs and "random" in accs else None,
    }
    return out


def paired_difference(a, b, level: float = 0.95) -> dict:
    """Mean of a − b paired by seed: t confidence interval, paired t-test and Wilcoxon signed-rank
    p-values, and the difference a study of this size and spread detects with 80% power (two-sided,
    at 1 − level): (t_{1−α/2} + t_{0.8}) × the standard error."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise UserError(f"paired_difference needs two equally long 1-D series of at least 2 values, got shapes {a.shape} and {b.shape}")
    d = a - b
    n = len(d)
    sd = float(d.std(ddof=1))
    se = sd / np.sqrt(n)
    t = float(stats.t.ppf(0.5 + level / 2, n - 1))
    mean = float(d.mean())
    out = {"n": n, "mean": mean, "sd": sd, "se": se, "ci": [mean - t * se, mean + t * se], "level": level}
    out["t_test_p"] = float(stats.ttest_rel(a, b).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    out["detectable_80"] = (t + float(stats.t.ppf(0.8, n - 1))) * se
    return out


def run_removal(run, cfg, remove: str, ctx) -> tuple[dict, Path]:
    """`sslaudit influence RUN --remove 5%`: self-influence under the influence lens's settings
    `cfg` (an InfluenceLensConfig), then the removal experiment, stored as RUN/influence/removal.json."""
    from ..methods.influence.runner import run_influence

    fraction = parse_fraction(remove)
    if run.dataset.has_labels is False:
        raise UserError("the removal experiment needs labels for its linear probe; this dataset has none")
    res = run_influence(run, cfg.influence, pairs=cfg.pairs, queries=[], subsample=cfg.subsample, check=0, device=ctx.device, engine=ctx.backend, neighbours=cfg.neighbours)
    s = res.self_influence
    out = removal_experiment(run, s["index"].to_numpy(), s["score"].to_numpy(), fraction, device=ctx.device)
    out["influence"] = res.summary
    with run.store.lock():
        path = run.store.write_json("influence/removal.json", out, stage="influence/removal")
    return out, path
