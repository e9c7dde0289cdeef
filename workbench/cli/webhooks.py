"""Webhook commands: deliver (for cron), list, show, retry, replay, discard.

Thin wrappers over `workbench.webhooks` (the delivery worker, `configs/webhooks.yaml`) and
`core.outbox` (the outbox and delivery rows). Top-level imports stay light (click and the
standard library); the service modules load inside each command.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import math
from typing import Any, Iterator, Optional

import click

from core.hooks import hookimpl

from .common import ID, TEXT
from .common import emit as _emit
from .common import json_option as _json
from .common import user_errors as _user_errors
from .guards import require_read

# core.schema.DELIVERY_STATES, spelled out: importing the schema here would load SQLAlchemy for --help.
STATES = ("pending", "delivered", "dead", "discarded")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from core.outbox import OutboxError

    with _user_errors():
        try:
            yield
        except OutboxError as exc:
            raise click.ClickException(str(exc)) from None


def _finite(ctx: click.Context, param: click.Parameter, value: Optional[float]) -> Optional[float]:
    """A number of seconds: NaN or infinity would make the worker run for ever (or crash mid-claim)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number of seconds, got {value}")
    return value


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no deliveries")
    for r in rows:
        tail = f"  {r['last_status_code'] or '-'} {r['last_error'] or ''}".rstrip()
        click.echo(f"{r['id']:>7} {r['endpoint']:<16} {r['status']:<9} {r['attempts']:>2}x "
                   f"{r['event_type']:<18} {r['event_id']}  next {r['next_attempt_at']}{tail}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the `webhooks` group to the `workbench` group."""

    @cli.group()
    def webhooks() -> None:
        """Enforcement hand-off: deliver outbox events to the endpoints of configs/webhooks.yaml.

        \b
        Example:
          workbench webhooks list --status dead
        """

    @webhooks.command("deliver")
    @click.option("--once", is_flag=True, help="One pass: deliver what is due now, then exit (for cron).")
    @click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite,
                  help="Stop after this many seconds.")
    @click.option("--lease-seconds", type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite,
                  help="How long a claimed delivery is held (default: worker.lease_seconds of the config).")
    @_json
    @click.pass_obj
    def deliver(app: Any, once: bool, max_seconds: Optional[float], lease_seconds: Optional[float],
                as_json: bool) -> None:
        """Run the delivery worker: fan out new events, POST them signed, retry, dead-letter.

        Without --once or --max-seconds it runs until interrupted (`workbench serve` runs the
        same worker in a thread). Several workers may run at once: claims are leased.

        \b
        Example:
          */5 * * * *  workbench webhooks deliver --max-seconds 280
        """
        from workbench.webhooks import DeliveryWorker

        with _errors():
            app.require("webhooks")
            config = app.webhooks()
            worker = DeliveryWorker(app.store(), config, lease_seconds=lease_seconds)
            try:
                stats = worker.run(once=once, max_seconds=max_seconds)
            except KeyboardInterrupt:
                stats = {"interrupted": 1}
        _emit(stats, as_json, lambda s: click.echo(
            "  ".join(f"{k}={v}" for k, v in s.items()) + ("" if config.enabled else "  (no enabled endpoint)")))

    @webhooks.command("list")
    @click.option("--status", type=click.Choice(list(STATES)), help="Only this status.")
    @click.option("--endpoint", type=TEXT, help="Only this endpoint.")
    @click.option("--event", "event_id", type=TEXT, help="Only the deliveries of this event id.")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 2**31 - 1),
                  help="How many, newest first (1 to 2147483647).")
    @_json
    @click.pass_obj
    def list_(app: Any, status: Optional[str], endpoint: Optional[str], event_id: Optional[str], limit: int,
              as_json: bool) -> None:
        """Counts per endpoint and status, then the newest deliveries.

        \b
        Example:
          workbench webhooks list --status dead
        """
        require_read(app, "webhook deliveries")
        from core.outbox import list_deliveries, summary

        with _errors(), app.store().read() as conn:
            data = {"summary": summary(conn),
                    "deliveries": list_deliveries(conn, status, endpoint, event_id, limit)}

        def human(d: dict[str, Any]) -> None:
            s = d["summary"]
            click.echo(f"{s['events']} events, {s['events_not_fanned_out']} not fanned out yet")
            for name, counts in sorted(s["endpoints"].items()):
                click.echo(f"  {name}: " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            _print_rows(d["deliveries"])

        _emit(data, as_json, human)

    @webhooks.command("show")
    @click.argument("delivery_id", type=ID)
    @_json
    @click.pass_obj
    def show(app: Any, delivery_id: int, as_json: bool) -> None:
        """A delivery and every attempt made for it (status code, error, worker, times).

        \b
        Example:
          workbench webhooks show 17 --json
        """
        from sqlalchemy import select

        from core.outbox import attempts_of, list_deliveries

        from core.schema import WebhookDelivery

        with _errors(), app.store().read() as conn:
            ev = conn.execute(select(WebhookDelivery.event_id).where(WebhookDelivery.id == delivery_id)).scalar()
            if ev is None:
                raise click.ClickException(f"no delivery {delivery_id}")
            row = [r for r in list_deliveries(conn, event_id=ev, limit=1000) if r["id"] == delivery_id][0]
            row["attempt_log"] = attempts_of(conn, delivery_id)

        def human(r: dict[str, Any]) -> None:
            _print_rows([r])
            for a in r["attempt_log"]:
                click.echo(f"    attempt {a['attempt']} by {a['worker']} at {a['started_at']}: "
                           f"{a['status_code'] or '-'} {a['error'] or 'ok'}")

        _emit(row, as_json, human)

    @webhooks.command("retry")
    @click.argument("delivery_ids", nargs=-1, type=ID)
    @click.option("--endpoint", type=TEXT, help="Every dead delivery of this endpoint.")
    @click.option("--all-dead", is_flag=True, help="Every dead delivery.")
    @_json
    @click.pass_obj
    def retry(app: Any, delivery_ids: tuple[int, ...], endpoint: Optional[str], all_dead: bool,
              as_json: bool) -> None:
        """Make dead deliveries pending again, due now, with a fresh count of attempts. Named
        deliveries bring along the dead deliveries of newer events about the same items (parked
        behind them), sent after them.

        \b
        Example:
          workbench webhooks retry --endpoint enforcement
          workbench webhooks retry 1207 1208
        """
        from core.outbox import retry as retry_dead

        with _errors():
            who = app.principal()
            with app.store().begin() as conn:
                n = retry_dead(conn, delivery_ids, endpoint=endpoint, all_dead=all_dead, actor=who)
        _emit({"retried": n}, as_json, lambda d: click.echo(
            f"{d['retried']} dead deliveries pending again (with the newer events about their items, sent after them)"))

    @webhooks.command("replay")
    @click.option("--endpoint", type=TEXT, required=True, help="The endpoint to send the events to again.")
    @click.option("--event", "event_ids", type=TEXT, multiple=True, help="An event id (repeatable).")
    @click.option("--since", type=click.DateTime(), help="Every event created since (UTC), e.g. 2026-12-01.")
    @_json
    @click.pass_obj
    def replay(app: Any, endpoint: str, event_ids: tuple[str, ...], since: Optional[dt.datetime],
               as_json: bool) -> None:
        """Send events to an endpoint again (same event id and idempotency key), delivered or not,
        and the newer events about the same items after them; also events from before the
        endpoint was configured.

        \b
        Example:
          workbench webhooks replay --endpoint enforcement --since 2026-12-01
        """
        from core.outbox import replay as replay_events

        with _errors():
            ep = app.webhooks().endpoint(endpoint)
            who = app.principal()
            with app.store().begin() as conn:
                n = replay_events(conn, ep.name, ep.events, event_ids, since, actor=who)
        _emit({"pending": n}, as_json, lambda d: click.echo(f"{d['pending']} deliveries to {endpoint} pending"))

    @webhooks.command("discard")
    @click.argument("delivery_ids", nargs=-1, required=True, type=ID)
    @click.option("--reason", type=TEXT, required=True, help="Why the receiver will never accept it (audited).")
    @_json
    @click.pass_obj
    def discard(app: Any, delivery_ids: tuple[int, ...], reason: str, as_json: bool) -> None:
        """Give up on dead deliveries the receiver will always refuse (their item was deleted on
        the platform, a malformed event): they become `discarded`, and the deliveries parked
        behind them are pending again, due now, sent in order. Only dead deliveries; audited with
        who and why. `replay --event` can still send a discarded one later.

        \b
        Example:
          workbench webhooks discard 1207 --reason "item deleted on the platform (422 for ever)"
        """
        from core.outbox import discard as discard_dead

        with _errors():
            who = app.principal()
            with app.store().begin() as conn:
                done = discard_dead(conn, delivery_ids, reason, actor=who)
        _emit(done, as_json, lambda d: click.echo(
            f"{len(d['discarded'])} dead deliveries discarded; {len(d['released'])} parked behind them pending again "
            "(sent in order)"))
