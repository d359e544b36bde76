"""`sslaudit audit` (data → model → every lens → report) and `sslaudit report`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import UserError
from .options import augment_options, context_from, context_params, data_options, tensorboard_log_option


@data_options
@click.option("--objective", type=click.Choice(["simclr", "byol", "vicreg", "barlow", "simvae", "vae", "betavae"]), default="simclr", show_default=True, help="Objective when a model must be trained.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs [default: as `sslaudit train`: 60 up to 5,000 samples; up to 100,000, 10 for images and 15 for tables; 3 above].")
@augment_options
@click.option("--model", "model", type=click.Path(), default=None, help="Audit this existing run instead of training one.")
@click.option("--out", type=click.Path(), default=None, help="Run directory (trained into if there is no model). Required without --model.")
@click.option("--force", is_flag=True, help="Replace a different run already at --out.")
@click.option(
    "--quick", is_flag=True, help="A coarse first look: a sixth of the training epochs (digits: 10) and every lens on small samples with fixed settings (digits: under a minute on two cores)."
)
@tensorboard_log_option("Also write the training history to TensorBoard in DIR (needs the tensorboard extra).")
def _audit(data_cfg, objective, epochs, augment, model, out, force, quick, log, **values):
    """Train (or load) an encoder, run every lens that applies, and write an HTML report.

    Lenses that do not apply are skipped with their reason (RELAX on tables, Q-Score on signed
    features, SimVAE views on discriminative models). Rerunning the same command skips the stages
    already finished. The report is RUN/report.html: one self-contained file that works offline.
    """
    from ..audit import Audit
    from ..progress import info
    from ..report.render import render_report, size_text

    ctx = context_from({**values, "data_dir": data_cfg.get("data_dir")})
    t0 = time.perf_counter()
    given_data = click.get_current_context().get_parameter_source("data") is not click.core.ParameterSource.DEFAULT
    if model is not None:
        if out is not None and Path(out).resolve() != Path(model).resolve():
            raise UserError("--model audits that run in place; leave out --out or give the same folder")
        if augment:
            raise UserError("--augment sets how a model is trained; with --model the run's stored augmentation is used (re-import it with --augment to change it)")
        path = Path(model)
    else:
        if not given_data or out is None:
            raise UserError("give --data and --out to train a model, or --model RUN to audit an existing run")
        from ..audit import quick_epochs
        from ..models.history import parse_log
        from ..models.trainer import TrainConfig
        from ..run import load_data, train_run
        from .train import default_batch_size, default_epochs

        dataset = load_data(data_cfg)
        n = len(dataset.train)
        n_epochs = epochs or (quick_epochs(default_epochs(n, dataset.kind)) if quick else default_epochs(n, dataset.kind))
        cfg = TrainConfig(objective=objective, epochs=n_epochs, batch_size=default_batch_size(n), seed=ctx.seed, augment=augment)
        info(f"[audit] training the encoder ({n_epochs} epochs) …")
        path = train_run(data_cfg, cfg, out, force=force, device=ctx.device, dataset=dataset, log=parse_log(log))
    t_train = time.perf_counter() - t0
    with ctx:
        audit = Audit(path, ctx, quick=quick)
        audit.run_all()
    report = render_report(path, data_dir=ctx.data_dir)
    rows = [("train", "done", t_train)] + [(k, v.get("state"), v.get("seconds")) for k, v in audit.status["lenses"].items()]
    click.echo(f"audit of {path} finished in {time.perf_counter() - t0:.0f} s")
    for name, state, secs in rows:
        click.echo(f"  {name:<10} {state:<8} {'' if secs is None else f'{secs:.1f} s'}")
    click.echo(f"report: {report} ({size_text(report.stat().st_size)}, one self-contained file)")
    failed = audit.failed()
    if failed:  # the report is written and says so too; the exit status tells scripts
        st = {k: audit.status["lenses"][k] for k in failed}
        raise UserError("; ".join(f"the {k} lens failed: {v['reason']} (rerun: {v['command']})" for k, v in st.items()))


command = click.command("audit")(_audit)
command.params.extend(p for p in context_params(engine=True) if p.name != "data_dir")
for _p in command.params:  # --data is not needed with --model
    if _p.name == "data":
        _p.required = False
        _p.help = (_p.help or "") + " Not needed with --model."


@click.command("report")
@click.argument("run", type=click.Path())
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the run's data lives, if it moved.")
def report_command(run, data_dir):
    """Render RUN/report.html from what the lenses stored; never recomputes a lens."""
    from ..report.render import render_report

    from ..report.render import size_text

    path = render_report(run, data_dir=data_dir)
    click.echo(f"report: {path} ({size_text(path.stat().st_size)}, one self-contained file)")
