"""`sslaudit audit` (data → model → every lens → report) and `sslaudit report`."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import UserError
from .options import common, trust_option


@click.command("audit")
@click.option("--data", "data", default=None, help="digits, fashion-mnist, adult, adult-1m, or a .csv/.npz path (not needed with --model).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder with the dataset files (else $SSLAUDIT_DATA, then system locations).")
@click.option("--label", default=None, help="CSV: the label column (used only for evaluation).")
@click.option("--protected", multiple=True, help="CSV: a protected attribute for group analyses (repeatable).")
@click.option("--exclude", multiple=True, help="CSV: a column kept out of the encoder's inputs (repeatable).")
@click.option("--objective", type=click.Choice(["simclr", "byol", "vicreg", "barlow", "simvae", "vae", "betavae"]), default="simclr", show_default=True, help="Objective when a model must be trained.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs [default: as `sslaudit train`: 60 up to 5,000 samples; up to 100,000, 10 for images and 15 for tables; 3 above].")
@click.option("--model", "model", type=click.Path(), default=None, help="Audit this existing run instead of training one.")
@click.option("--out", type=click.Path(), default=None, help="Run directory (trained into if there is no model). Required without --model.")
@click.option("--force", is_flag=True, help="Replace a different run already at --out.")
@click.option("--quick", is_flag=True, help="A coarse first look: a sixth of the training epochs (digits: 10) and every lens on small samples with fixed settings (digits: under a minute on two cores).")
@click.option("--log", "log", nargs=2, type=(click.Choice(["tensorboard"]), click.Path(file_okay=False)), default=None, metavar="tensorboard DIR", help="Also write the training history to TensorBoard in DIR (needs the tensorboard extra).")
@trust_option
@common
def command(data, data_dir, label, protected, exclude, objective, epochs, model, out, force, quick, log, seed, device, trust_code):
    """Train (or load) an encoder, run every lens that applies, and write an HTML report.

    Lenses that do not apply are skipped with their reason (RELAX on tables, Q-Score on signed
    features, SimVAE views on discriminative models). Rerunning the same command skips the stages
    already finished. The report is RUN/report.html: one self-contained file that works offline.
    """
    from ..audit import Audit
    from ..progress import enabled, info
    from ..report.render import render_report

    quiet = not enabled()
    t0 = time.perf_counter()
    if model is not None:
        if out is not None and Path(out).resolve() != Path(model).resolve():
            raise UserError("--model audits that run in place; leave out --out or give the same folder")
        path = Path(model)
    else:
        if data is None or out is None:
            raise UserError("give --data and --out to train a model, or --model RUN to audit an existing run")
        from ..audit import quick_epochs
        from ..models.history import parse_log
        from ..models.trainer import TrainConfig
        from ..run import data_config, load_data, train_run
        from .train import default_batch_size, default_epochs

        dcfg = data_config(data, label=label, protected=protected, exclude=exclude, seed=seed, data_dir=data_dir)
        dataset = load_data(dcfg)
        n = len(dataset.train)
        n_epochs = epochs or (quick_epochs(default_epochs(n, dataset.kind)) if quick else default_epochs(n, dataset.kind))
        cfg = TrainConfig(objective=objective, epochs=n_epochs, batch_size=default_batch_size(n), seed=seed)
        info(f"[audit] training the encoder ({n_epochs} epochs) …")
        path = train_run(dcfg, cfg, out, force=force, device=device, dataset=dataset, log=parse_log(log))
    t_train = time.perf_counter() - t0
    audit = Audit(path, seed=seed, device=device, quiet=quiet, data_dir=data_dir, quick=quick, trust_code=trust_code)
    audit.run_all()
    report = render_report(path, data_dir=data_dir)
    rows = [("train", "done", t_train)] + [(k, v.get("state"), v.get("seconds")) for k, v in audit.status["lenses"].items()]
    click.echo(f"audit of {path} finished in {time.perf_counter() - t0:.0f} s")
    for name, state, secs in rows:
        click.echo(f"  {name:<10} {state:<8} {'' if secs is None else f'{secs:.1f} s'}")
    from ..report.render import size_text

    click.echo(f"report: {report} ({size_text(report.stat().st_size)}, one self-contained file)")
    failed = audit.failed()
    if failed:  # the report is written and says so too; the exit status tells scripts
        st = {k: audit.status["lenses"][k] for k in failed}
        raise UserError("; ".join(f"the {k} lens failed: {v['reason']} (rerun: {v['command']})" for k, v in st.items()))


@click.command("report")
@click.argument("run", type=click.Path())
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the run's data lives, if it moved.")
def report_command(run, data_dir):
    """Render RUN/report.html from what the lenses stored; never recomputes a lens."""
    from ..report.render import render_report

    from ..report.render import size_text

    path = render_report(run, data_dir=data_dir)
    click.echo(f"report: {path} ({size_text(path.stat().st_size)}, one self-contained file)")
