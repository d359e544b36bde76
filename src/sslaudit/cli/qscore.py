"""`sslaudit qscore RUN`: label-free quality of each sample's representation (Q-Score)."""
from __future__ import annotations

import click

from ..errors import UserError
from .options import common, trust_option

STAGE = "qscore"


def parse_percentiles(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UserError(f"--percentiles {text!r}: give two numbers LOW,HIGH such as 50,95") from None
    if not 0 <= lo < hi <= 100:
        raise UserError(f"--percentiles {text!r}: need 0 ≤ LOW < HIGH ≤ 100 (e.g. 50,95)")
    return lo, hi


def parse_fractions(text: str) -> tuple[float, ...]:
    try:
        out = tuple(sorted({float(p) for p in str(text).split(",") if p.strip()}))
    except ValueError:
        raise UserError(f"--fractions {text!r}: give comma-separated numbers in (0, 1] such as 0.25,0.5,1") from None
    if not out or not all(0 < f <= 1 for f in out):
        raise UserError(f"--fractions {text!r}: every fraction must lie in (0, 1], e.g. 0.25,0.5,1")
    return out


@click.command("qscore")
@click.argument("run", type=click.Path())
@click.option("--form", type=click.Choice(["paper", "zscore"]), default="paper", show_default=True, help="Q-Score formula: paper = the v6 formula, mean over the sample's discriminative active features of (h − μ); zscore = mean of (h − μ)/σ (our earlier form; both are written to scores.parquet).")
@click.option("--epsilon", type=click.Choice(["auto", "4", "3", "2", "1"]), default="auto", show_default=True, help="z-score threshold of 'highly activating' features; auto = the largest of 4,3,2,1 leaving ≥ 90% of training samples with a discriminative active feature.")
@click.option("--percentiles", default="50,95", show_default=True, help="Activation-rate percentiles LOW,HIGH (inclusive, linear interpolation) that delimit the discriminative features.")
@click.option("--allow-negative", is_flag=True, help="Apply Q-Score to a representation with negative values after a ReLU (negative values set to 0).")
@click.option("--max-probe-train", type=click.IntRange(10), default=20_000, show_default=True, help="Training samples (seeded subsample) for each linear probe of the evaluation and compression curve.")
@click.option("--fractions", default=",".join(f"{f:g}" for f in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)), show_default=True, help="Fractions of features kept on the compression curve (comma-separated, in (0, 1]; |D| is always added).")
@click.option("--saliency-features", type=click.IntRange(1), default=8, show_default=True, help="Discriminative features shown in saliency.png.")
@trust_option
@common
def command(run, form, epsilon, percentiles, allow_negative, max_probe_train, fractions, saliency_features, seed, device, trust_code):
    """Score every sample's representation by its discriminative features (Q-Score).

    Writes RUN/qscore/: scores.parquet (split, index, qscore [the --form], qscore_v1,
    n_discriminative, qscore_paper, qscore_zscore), features.parquet, evaluation.json (AUPRC/AUROC
    of Q-Score for probe-correct vs misclassified samples, beside the prevalence and label-free
    baselines, plus the within-class view), compression.json (probe accuracy vs
    features kept), saliency.npz and PNG figures. Labels are used only for the evaluation.
    """
    from ..methods.qscore import AnalysisConfig, QScoreConfig, analyze
    from ..progress import info
    from ..run import load

    r = load(run, device=device, trust_code=trust_code)
    qcfg = QScoreConfig(form=form, epsilon="auto" if epsilon == "auto" else float(epsilon), percentiles=parse_percentiles(percentiles), allow_negative=allow_negative)
    cfg = AnalysisConfig(qscore=qcfg, seed=seed, max_probe_train=max_probe_train, fractions=parse_fractions(fractions), saliency_features=saliency_features)
    key = {"analysis": cfg.to_json(), "weights": r.weights_key}
    out = r.path / STAGE
    if r.store.stage_done(STAGE, key):
        info("Q-Score results with this configuration are already in the run; nothing to do")
    else:
        res = analyze(r, cfg)
        with r.store.lock():
            written = [
                r.store.write_json(f"{STAGE}/config.json", cfg.to_json(), stage=STAGE),
                r.store.write_parquet(f"{STAGE}/scores.parquet", res.scores, stage=STAGE),
                r.store.write_parquet(f"{STAGE}/features.parquet", res.features, stage=STAGE),
                r.store.write_json(f"{STAGE}/evaluation.json", res.evaluation, stage=STAGE),
                r.store.write_npz(f"{STAGE}/saliency.npz", stage=STAGE, **res.saliency),
            ]
            if res.compression is not None:
                written.append(r.store.write_json(f"{STAGE}/compression.json", res.compression, stage=STAGE))
            for name, png in res.figures.items():
                written.append(r.store.write_bytes(f"{STAGE}/{name}", png, stage=STAGE))
            r.store.mark_done(STAGE, key, [str(p.relative_to(r.path.resolve())) for p in written])
    ev = r.store.read_json(f"{STAGE}/evaluation.json")
    parts = [f"{ev.get('form', 'zscore')} form", f"ε = {ev['epsilon']:g}", f"{ev['n_discriminative']}/{ev['n_features']} features discriminative", f"empty share {ev['empty_share']:.3f}"]
    if ev.get("auprc") is not None:
        parts.append(f"AUPRC {ev['auprc']:.4f} (prevalence {ev['prevalence']:.4f}), AUROC {ev['auroc']:.4f}")
    if r.store.has(f"{STAGE}/compression.json"):
        comp = r.store.read_json(f"{STAGE}/compression.json")
        parts.append(f"{comp['droppable_fraction']:.0%} of features droppable within {comp['tolerance'] * 100:g} point")
    click.echo("Q-Score: " + " · ".join(parts))
    click.echo(f"results written to {out}")


# ---- `sslaudit train --init RUN [--qscore-reg L1,L2]` (called from cli/train.py) ----------------
REG_RECORD = "qscore/regularizer.json"


def parse_reg(text: str) -> tuple[float, float]:
    try:
        l1, l2 = (float(p) for p in str(text).split(","))
    except ValueError:
        raise UserError(f"--qscore-reg {text!r}: give two weights L1,L2 such as 1e-4,1e-4") from None
    if not (l1 >= 0 and l2 >= 0):
        raise UserError(f"--qscore-reg {text!r}: the weights must be ≥ 0 (e.g. 1e-4,1e-4)")
    return l1, l2


def finetune(ctx, data_cfg, init, qscore_reg, *, epochs, out, force, seed, device):
    """Fine-tune run `init` (same data, objective, architecture), optionally Q-Score-regularised.

    Options given explicitly on the command line must agree with RUN (data, objective, arch);
    --batch-size and --lr override RUN's values only when given.
    """
    from dataclasses import fields
    from pathlib import Path

    from click.core import ParameterSource

    from ..methods.qscore import QScoreRegularizer
    from ..models.trainer import TrainConfig
    from ..run import MANIFEST, load, train_run
    from ..store import RunStore

    if init is None:
        raise UserError("--qscore-reg needs --init RUN: the regulariser fine-tunes an existing run with the discriminative features found in it")
    if "external" in RunStore(init).config:  # checked before opening: an imported encoder is never loaded here
        raise UserError(f"{init} holds an imported encoder without its SSL training method; --init needs a run made by `sslaudit train`")
    src = load(init, device=device)
    given = lambda name: ctx.get_parameter_source(name) is not ParameterSource.DEFAULT  # noqa: E731
    train = dict(src.config["train"])
    if given("data") and data_cfg["spec"] != src.config["data"]["spec"]:
        raise UserError(f"--data {data_cfg['spec']} differs from the data of {init} ({src.config['data']['spec']}); drop --data with --init")
    if given("objective") and ctx.params["objective"] != train["objective"]:
        raise UserError(f"--objective {ctx.params['objective']} differs from {init}'s objective {train['objective']}; drop --objective with --init")
    if given("arch") and ctx.params["arch"] not in ("auto", src.config["arch"]["arch"]):
        raise UserError(f"--arch {ctx.params['arch']} differs from {init}'s architecture {src.config['arch']['arch']}; drop --arch with --init")
    if ctx.params.get("params"):
        raise UserError(f"--param with --init: the fine-tune reuses {init}'s objective parameters {train.get('params') or {}}; drop --param")
    for name in ("batch_size", "lr"):
        if given(name):
            train[name] = ctx.params[name]
    train.update(epochs=epochs if epochs is not None else train["epochs"], seed=seed, arch=src.config["arch"])
    cfg = TrainConfig(**{f.name: train[f.name] for f in fields(TrainConfig) if f.name in train})
    reg, record = None, {"init": str(Path(init).resolve()), "qscore_reg": None}
    if qscore_reg is not None:
        reg = QScoreRegularizer.from_run(src, *parse_reg(qscore_reg), device=device)
        record = {**record, **reg.config}
    outp = Path(out)
    if (outp / MANIFEST).is_file():  # train_run's config does not record the regulariser: check it here
        prev = RunStore(outp)
        old = prev.read_json(REG_RECORD) if prev.has(REG_RECORD) else None
        if prev.stage_done("train") and old != record:
            if not force:
                raise UserError(f"{out} already holds a trained run with other fine-tuning settings; choose another --out or pass --force")
            with prev.lock():
                prev.invalidate("train")
                prev.invalidate("train/checkpoint")
    path = train_run(src.config["data"], cfg, out, force=force, device=device, init=record["init"], extra_loss=reg)
    store = RunStore(path)
    with store.lock():
        store.write_json(REG_RECORD, record, stage="train")
    return path
