"""`sslaudit influence`: the influence lens's generated command, plus --remove (the removal
experiment, which retrains: the experiment layer above the lenses)."""

from __future__ import annotations

import click

from .lens_command import lens_command

REMOVE = click.Option(["--remove", "remove"], default=None, help="Run the removal experiment instead: drop the top (bottom, random) share, e.g. 5%, retrain, probe.")


def removal(run, cfg, ctx, remove=None) -> bool:
    """With --remove: run the removal experiment and stop (True); else let the lens run."""
    if remove is None:
        return False
    from ..experiments.removal import run_removal

    out, path = run_removal(run, cfg, remove, ctx)
    acc = out["summary"]["accuracy"]
    click.echo(f"removal ({out['fraction']:.1%}): " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    click.echo(f"written: {path}")
    return True


command = lens_command("influence", extra=[REMOVE], before=removal)
