"""Giving up on a dead webhook delivery: `workbench webhooks discard`.

Per-item order holds a dead delivery's newer events about the same items back ("parked behind
dead delivery N") until `retry` or `replay` re-sends it. A delivery the receiver will always
reject (its item was deleted on the platform, a malformed event) then blocked its followers for
ever: there was no way to give up on it. `outbox.discard` marks dead deliveries `discarded`
(with who and why, audited) and releases the deliveries parked behind them, which then go out
in order; a discarded delivery can still be replayed explicitly.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from core import outbox
from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import DELIVERY_STATES, AuditEvent, WebhookDelivery

from test_hardening_webhook_replay import _drain, _event
from test_queue_support import T0
from webhook_support import SECRET, SECRET_ENV, write_config

ACTOR = "ops"
REASON = "item deleted on the platform; the receiver answers 422 for ever"


def _rows(store) -> dict[int, dict]:
    """Deliveries by the number of their event's idempotency key (decision.created:N -> N)."""
    with store.read() as conn:
        got = outbox.list_deliveries(conn, limit=1000)
    return {int(r["idempotency_key"].rsplit(":", 1)[1]): r for r in got}


def _blocked(store) -> dict[int, dict]:
    """Events 1 (x), 2 (x, y), 3 (y), 4 (z); 1's delivery is dead, so 2 parks behind it, 3 behind
    2, and only 4 goes out."""
    with store.begin() as conn:
        for n, items in ((1, "x"), (2, "xy"), (3, "y"), (4, "z")):
            _event(conn, n, *items)
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
    first = _rows(store)[1]["id"]
    with store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == first).values(
            status="dead", last_error="HTTP 422 Unprocessable Entity"))
    assert _drain(store) == ["decision.created:4"]
    rows = _rows(store)
    assert [rows[n]["status"] for n in (1, 2, 3, 4)] == ["dead", "dead", "dead", "delivered"]
    assert f"parked behind dead delivery {first}" in rows[2]["last_error"]
    assert f"parked behind dead delivery {rows[2]['id']}" in rows[3]["last_error"]
    return rows


def _audit(store, action: str) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.actor, AuditEvent.entity_type, AuditEvent.entity_id,
                                                     AuditEvent.payload).where(AuditEvent.action == action)
                                              .order_by(AuditEvent.id)).mappings()]


def test_discarded_is_a_delivery_state_the_list_command_accepts():
    from workbench.cli.webhooks import STATES

    assert "discarded" in DELIVERY_STATES and DELIVERY_STATES[:3] == ("pending", "delivered", "dead")
    assert STATES == DELIVERY_STATES


def test_discard_releases_the_parked_followers_and_they_go_out_in_order(any_store):
    rows = _blocked(any_store)
    with any_store.begin() as conn:
        done = outbox.discard(conn, [rows[1]["id"]], REASON, actor=ACTOR)
    assert done == {"discarded": [rows[1]["id"]], "released": [rows[2]["id"], rows[3]["id"]]}
    after = _rows(any_store)
    assert after[1]["status"] == "discarded" and REASON in after[1]["last_error"]
    assert "HTTP 422" in after[1]["last_error"]  # the last failure is kept, not overwritten
    assert [after[n]["status"] for n in (2, 3)] == ["pending", "pending"]
    assert [after[n]["attempts"] for n in (2, 3)] == [0, 0]
    # The discarded one holds nothing back any more; 3 still waits for 2 (same item y).
    assert _drain(any_store) == ["decision.created:2", "decision.created:3"]
    assert [r["status"] for _, r in sorted(_rows(any_store).items())] == ["discarded", "delivered", "delivered",
                                                                         "delivered"]
    # A discard is in the audit log, with who and why, and what it released.
    [event] = _audit(any_store, "webhooks.discard")
    assert (event["actor"], event["entity_type"], event["entity_id"]) == (ACTOR, "webhook_delivery",
                                                                          str(rows[1]["id"]))
    assert event["payload"]["reason"] == REASON and event["payload"]["endpoint"] == "enforcement"
    assert event["payload"]["released"] == [rows[2]["id"], rows[3]["id"]]


def test_a_follower_dead_in_its_own_right_stays_dead(any_store):
    """Only deliveries parked behind a dead one are released: one that failed its own attempts
    waits for the operator's retry (or discard) and keeps holding its own followers."""
    rows = _blocked(any_store)
    with any_store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == rows[2]["id"]).values(
            attempts=5, last_error="HTTP 500 Internal Server Error"))
        done = outbox.discard(conn, [rows[1]["id"]], REASON, actor=ACTOR)
    assert done["released"] == []  # 3 waits behind 2 (same item y), dead in its own right
    assert _drain(any_store) == []
    after = _rows(any_store)
    assert [after[n]["status"] for n in (1, 2, 3)] == ["discarded", "dead", "dead"]
    assert f"parked behind dead delivery {rows[2]['id']}" in after[3]["last_error"]


@pytest.mark.parametrize("status", ["pending", "delivered", "discarded"])
def test_only_a_dead_delivery_can_be_discarded(any_store, status):
    rows = _blocked(any_store)
    target = rows[4]["id"] if status == "delivered" else rows[1]["id"]
    if status != "delivered":
        with any_store.begin() as conn:
            if status == "pending":
                conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == target).values(status="pending"))
            else:
                outbox.discard(conn, [target], REASON, actor=ACTOR)
    before, audited = _rows(any_store), len(_audit(any_store, "webhooks.discard"))
    with pytest.raises(outbox.OutboxError) as err:
        with any_store.begin() as conn:  # a dead one named with it changes nothing either
            outbox.discard(conn, [rows[2]["id"], target], REASON, actor=ACTOR)
    msg = str(err.value)
    assert "\n" not in msg and f"delivery {target} is {status}" in msg and "only a dead delivery" in msg
    assert _rows(any_store) == before and len(_audit(any_store, "webhooks.discard")) == audited


def test_bad_discard_requests_are_refused_in_one_line(any_store):
    rows = _blocked(any_store)
    dead = rows[1]["id"]
    for ids, reason, match in (([dead], "  ", "a reason"), ([dead], "x" * 501, "500 characters"),
                               ([], REASON, "name the dead deliveries"), ([dead, 99999], REASON, "no delivery 99999")):
        with pytest.raises(outbox.OutboxError, match=match) as err:
            with any_store.begin() as conn:
                outbox.discard(conn, ids, reason, actor=ACTOR)
        assert "\n" not in str(err.value)
    assert _rows(any_store)[1]["status"] == "dead" and _audit(any_store, "webhooks.discard") == []


def test_a_discarded_delivery_can_still_be_replayed_and_its_followers_follow(any_store):
    rows = _blocked(any_store)
    with any_store.begin() as conn:
        outbox.discard(conn, [rows[1]["id"]], REASON, actor=ACTOR)
    _drain(any_store)
    with any_store.begin() as conn:  # the receiver fixed its side after all
        assert outbox.replay(conn, "enforcement", outbox.EVENT_TYPES, [rows[1]["event_id"]], actor=ACTOR) == 3
    assert _drain(any_store) == ["decision.created:1", "decision.created:2", "decision.created:3"]
    assert {r["status"] for r in _rows(any_store).values()} == {"delivered"}


def test_discard_needs_the_webhooks_permission(any_store, roles):
    rows = _blocked(any_store)
    analyst, engineer = Principal("ann", "analyst", "user"), Principal("eve", "engineer", "user")
    with pytest.raises(PermissionDenied, match="webhooks"):
        with any_store.begin() as conn:
            outbox.discard(conn, [rows[1]["id"]], REASON, actor=analyst)
    assert _rows(any_store)[1]["status"] == "dead"
    with any_store.begin() as conn:
        outbox.discard(conn, [rows[1]["id"]], REASON, actor=engineer)
    assert [e["actor"] for e in _audit(any_store, "webhooks.discard")] == ["eve"]


@pytest.mark.parametrize("action", ["discard", "retry", "replay"])
def test_a_follower_parked_while_the_operator_acts_is_released_too(any_store, action):
    """A worker parks a follower behind the dead delivery in its own transaction while an
    operator discards (or retries, or replays) that delivery (PostgreSQL runs both at once): the follower
    must not end up parked behind a discarded or re-driven delivery, which nothing would ever
    release. SQLite serialises the two transactions."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        _event(conn, 2, "x")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
    first, event = _rows(any_store)[1]["id"], _rows(any_store)[1]["event_id"]
    with any_store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == first).values(status="dead"))
    errors: list[BaseException] = []

    def operator() -> None:
        try:
            with any_store.begin() as conn:
                if action == "discard":
                    outbox.discard(conn, [first], REASON, actor=ACTOR)
                elif action == "retry":
                    outbox.retry(conn, [first], actor=ACTOR)
                else:
                    outbox.replay(conn, "enforcement", outbox.EVENT_TYPES, [event], actor=ACTOR)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with any_store.begin() as conn:  # the worker's claim parks 2 behind 1, not committed yet
        assert outbox.claim(conn, ["enforcement"], "w", 60) == []
        thread = threading.Thread(target=operator)
        thread.start()
        time.sleep(1.0)
    thread.join(30)
    assert not thread.is_alive() and errors == []
    after = _rows(any_store)
    assert (after[1]["status"], after[2]["status"]) == ("discarded" if action == "discard" else "pending", "pending")
    expected = ["decision.created:2"] if action == "discard" else ["decision.created:1", "decision.created:2"]
    assert _drain(any_store) == expected


@pytest.mark.parametrize("action", ["discard", "retry"])
def test_a_claim_during_the_operators_transaction_does_not_park_behind_it(any_store, action):
    """The other order: the operator's discard (or retry) is not committed yet when a worker's
    claim finds the follower held behind the still-dead delivery. The claim waits for it and
    then parks nothing, rather than park the follower behind a delivery no longer dead."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        _event(conn, 2, "x")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
    first = _rows(any_store)[1]["id"]
    with any_store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == first).values(status="dead"))
    sent: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with any_store.begin() as conn:
                for r in outbox.claim(conn, ["enforcement"], "w", 60):
                    outbox.finish(conn, r["id"], "w", r["attempts"], T0, ok=True, status_code=200, error=None,
                                  retry_at=None)
                    sent.append(r["idempotency_key"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with any_store.begin() as conn:
        if action == "discard":
            outbox.discard(conn, [first], REASON, actor=ACTOR)
        else:
            outbox.retry(conn, [first], actor=ACTOR)
        thread = threading.Thread(target=worker)
        thread.start()
        time.sleep(1.0)
    thread.join(30)
    assert not thread.is_alive() and errors == []
    sent += _drain(any_store)
    assert sent == (["decision.created:2"] if action == "discard" else ["decision.created:1", "decision.created:2"])
    assert _rows(any_store)[2]["status"] == "delivered"


# -- the command -----------------------------------------------------------------------------------
def test_cli_discard_and_list_discarded(sqlite_store, tmp_path):
    from workbench.cli import cli

    rows = _blocked(sqlite_store)
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h")
    base = ["--data-dir", str(sqlite_store.data_dir), "--config-dir", str(folder), "webhooks"]
    runner, env = CliRunner(), {SECRET_ENV: SECRET}
    out = runner.invoke(cli, base + ["discard", str(rows[4]["id"]), "--reason", REASON], env=env)
    assert out.exit_code != 0 and f"delivery {rows[4]['id']} is delivered" in out.output
    assert len(out.output.strip().splitlines()) == 1, out.output
    out = runner.invoke(cli, base + ["discard", str(rows[1]["id"])], env=env)
    assert out.exit_code != 0 and "--reason" in out.output  # giving up is never silent
    out = runner.invoke(cli, base + ["discard", str(rows[1]["id"]), "--reason", REASON, "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"discarded": [rows[1]["id"]], "released": [rows[2]["id"], rows[3]["id"]]}
    out = runner.invoke(cli, base + ["list", "--status", "discarded", "--json"], env=env)
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert [d["id"] for d in listed["deliveries"]] == [rows[1]["id"]]
    assert listed["summary"]["endpoints"]["enforcement"] == {"discarded": 1, "pending": 2, "delivered": 1}
    out = runner.invoke(cli, base + ["discard", "--help"], env=env)
    assert out.exit_code == 0 and "Example" in out.output and "webhooks discard" in out.output
