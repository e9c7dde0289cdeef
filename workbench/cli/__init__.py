"""The `workbench` command line: a thin layer over the service modules, one module per command group.

Top-level imports stay light (click and the standard library) so `workbench --help` answers at
once; each command imports what it needs. Command groups are plugins: each module below has a
`register_commands` hook implementation, registered on the plugin manager (`core.hooks`) with
any installed plugin of the `workbench` entry-point group; the group is built from all of them.
"""
from __future__ import annotations

import sys
from typing import Optional

import click

from ..context import AppContext

# Built-in command groups, registered as plugins in this order.
BUILTIN_COMMANDS: tuple[str, ...] = ("data", "evaluation", "queue", "campaigns", "models", "serve", "quarantine",
                                     "webhooks", "accounts", "seed", "search")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", envvar="WORKBENCH_DATA_DIR", default="workbench-data", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the SQLite database, quarantine, indexes and models.")
@click.option("--db", envvar="WORKBENCH_DB", default=None,
              help="Database URL instead of SQLite in the data dir, e.g. postgresql://user@host/db.")
@click.option("--config-dir", envvar="WORKBENCH_CONFIG_DIR", default=None, type=click.Path(file_okay=False),
              help="Folder with taxonomy.yaml and the other configs (default: the bundled configs/).")
@click.option("--audit-key-file", envvar="WORKBENCH_AUDIT_KEY_FILE", default=None, type=click.Path(dir_okay=False),
              help="Key of the audit chain (0600), kept outside the database (default: audit.key in the data dir).")
@click.option("--token", envvar="WORKBENCH_TOKEN", default=None, metavar="TOKEN",
              help="Who you are, on a store with accounts: a token from `workbench tokens create` "
                   "(better in WORKBENCH_TOKEN than on the command line).")
@click.version_option(package_name="ts-workbench")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, db: Optional[str], config_dir: Optional[str],
        audit_key_file: Optional[str], token: Optional[str]) -> None:
    """Trust & Safety review workbench: ingest, score, cluster, queue, review, evaluate.

    \b
    Example (a fresh machine):
      workbench demo                      # ingest both shared datasets, then the rest of the loop
      workbench ingest posts.csv --text-column body --id-column post_id
      workbench status --json
    """
    from .common import check_access

    ctx.obj = AppContext(data_dir, db, config_dir, audit_key_file=audit_key_file, token=token, on_open=check_access)
    ctx.call_on_close(ctx.obj.close)


def _register_commands() -> None:
    """Register the built-in command modules as plugins, then let every plugin add its commands."""
    import importlib

    from core.hooks import pm

    for name in BUILTIN_COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        if not pm.is_registered(module):
            pm.register(module, name=f"workbench.cli.{name}")
    pm.hook.register_commands.call_historic(kwargs={"cli": cli})


_register_commands()


def main() -> None:
    """Console entry point: user-caused errors become one line, not a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Typed errors of the floors below, imported only now: `workbench --help` stays light.
        from core.accounts import AccountError
        from core.audit import AuditError
        from core.config import ConfigError
        from core.hooks import PermissionDenied
        from core.principals import InvalidName
        from core.store import StoreError

        if isinstance(exc, ConfigError):
            click.echo(f"Error: config: {exc}", err=True)
            sys.exit(2)
        if isinstance(exc, (StoreError, AuditError, AccountError, InvalidName, PermissionDenied)):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        raise
