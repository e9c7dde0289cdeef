"""Quarantine commands: list the rows ingest could not store, purge those past their retention.

The quarantine (`quarantine.jsonl` in the data directory) keeps raw input rows, which may hold
personal data; `configs/retention.yaml` says how long. A thin layer over `core.quarantine`; the
service loads inside each command so `workbench --help` stays light.
"""
from __future__ import annotations

from typing import Any, Optional

import click

from core.hooks import hookimpl
from core.text import one_line  # standard library only

from .common import AppContext, acting, emit, json_option, pass_app, principal_option, user_errors
from .guards import file_errors

MAX_RETENTION_DAYS = 36_500  # core.quarantine.MAX_RETENTION_DAYS; not imported, so `--help` stays light


def _print_list(d: dict[str, Any], limit: int) -> None:
    click.echo(f"{d['records']} quarantined rows in {_shown(d['path'], 8192)}; {d['past_retention']} older "
               f"than the retention of {d['max_age_days']} days" + (f", {d['undated']} undated" if d["undated"] else ""))
    for reason, n in sorted(d["by_reason"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:>7}  {_shown(reason)}")
    shown = d["items"][-limit:] if limit else d["items"]
    if shown:
        click.echo(f"newest {len(shown)}:" if len(shown) < d["records"] else "records:")
    for r in shown:
        age = "undated" if r["age_days"] is None else f"{r['age_days']:.1f} days"
        click.echo(f"  {_shown(r['file'])}:{_shown(r['line'])}  field {_shown(r['field'])}  run {_shown(r['run_id'])}"
                   f"  {age}  {_shown(r['reason'])}")


def _shown(value: Any, n: int = 500) -> str:
    """A record's value on one line, its control characters as escapes: a file name, a JSON key
    (the field of a duplicate key), a hand edit or the data folder's own path may hold an escape
    sequence (OSC 52 writes the clipboard), which the terminal must show, not run."""
    return one_line(str(value), n)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the `quarantine` group to the `workbench` group."""

    @cli.group()
    def quarantine() -> None:
        """Rows ingest could not store (raw input, may hold personal data) and their retention.

        \b
        Example:
          workbench quarantine list --limit 20
          workbench quarantine purge --older-than 30 --json
        """

    @quarantine.command("list")
    @click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
                  help="How many of the newest records to print (0 = all).")
    @json_option
    @pass_app
    def quarantine_list(app: AppContext, limit: int, as_json: bool) -> None:
        """List quarantined rows: file, line, field, reason and age; no row contents.

        Counts per reason and how many rows are past the retention in configs/retention.yaml.
        The raw rows themselves stay in quarantine.jsonl in the data directory, for repair.

        \b
        Example:
          workbench quarantine list
          workbench quarantine list --json | jq '.by_reason'
        """
        from core.quarantine import QuarantineError, list_quarantine

        who = acting(app)
        with user_errors(), file_errors("read the quarantine"):
            days = app.retention().quarantine.max_age_days
            try:
                data = list_quarantine(app.store(), days, principal=who)  # checks `read` itself
            except QuarantineError as exc:
                raise click.ClickException(str(exc)) from None
        emit(data, as_json, lambda d: _print_list(d, limit))

    @quarantine.command("purge")
    @click.option("--older-than", "older_than", type=click.IntRange(min=0, max=MAX_RETENTION_DAYS), metavar="DAYS",
                  help="Drop records older than this many days (default: quarantine.max_age_days in "
                       "configs/retention.yaml; 0 drops every record).")
    @principal_option("actor", help="Who purges (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def quarantine_purge(app: AppContext, older_than: Optional[int], actor: str, as_json: bool) -> None:
        """Drop quarantined rows past their retention; every other record is kept intact.

        The file is rewritten atomically (mode 0600) and the purge is recorded in the audit log.
        A record whose age cannot be told is kept.

        \b
        Example:
          workbench quarantine purge                 # the retention in configs/retention.yaml
          workbench quarantine purge --older-than 7 --as alice --json
        """
        from core.quarantine import QuarantineError, purge_quarantine

        # An OSError (a full disk, a read-only folder) leaves the file as it was: one line, no traceback.
        with user_errors(), file_errors("purge the quarantine"):
            days = older_than if older_than is not None else app.retention().quarantine.max_age_days
            try:
                result = purge_quarantine(app.store(), days, actor)
            except QuarantineError as exc:
                raise click.ClickException(str(exc)) from None
        emit(result, as_json, lambda d: click.echo(
            f"purged {d['removed']} quarantined rows older than {d['older_than_days']} days "
            f"(before {d['cutoff']}); kept {d['kept']} in {_shown(d['path'], 8192)}"))
