"""Entry point: a click group whose verbs are loaded lazily from their own modules.

User errors (`UserError`) end as one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

from ..errors import UserError

# verb -> "module:attribute" (one module per verb; add a lens by adding its line)
COMMANDS = {
    "train": "sslaudit.cli.train:command",
    "import": "sslaudit.cli.train:import_command",
    "info": "sslaudit.cli.train:info_command",
    "krepes": "sslaudit.cli.krepes:command",
    "influence": "sslaudit.cli.influence:command",
    "relax": "sslaudit.cli.relax:command",
    "qscore": "sslaudit.cli.qscore:command",
    "simvae": "sslaudit.cli.simvae:command",
    "audit": "sslaudit.cli.audit:command",
    "report": "sslaudit.cli.audit:report_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        import importlib.util

        return sorted(n for n, t in COMMANDS.items() if importlib.util.find_spec(t.split(":")[0]) is not None)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sslaudit")
def cli():
    """Audit a self-supervised encoder: what it learned, from which data, and whether to trust it.

    Start with `sslaudit train --data digits --out runs/digits`, then run a lens on the run
    directory (e.g. `sslaudit krepes runs/digits`), or do everything at once with `sslaudit audit`.
    Every verb has its own --help.
    """


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="sslaudit", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: finished stages are kept; rerun the same command to resume", err=True)
        return 130
    except OSError as e:  # the environment refused a file operation (permissions, disk full, /proc …)
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        click.echo(f"error: {where}{e.strerror or e}; check the path and that you may write there", err=True)
        return 2
    except MemoryError:
        click.echo("error: out of memory; lower --batch-size or --max-memory, or use a smaller --landmarks", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
