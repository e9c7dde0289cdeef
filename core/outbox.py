"""The transactional outbox of enforcement events, and the rows that track their delivery.

`enqueue(conn, event_type, payload, key)` is called by the decision services INSIDE the
transaction that writes the decision, so an event exists exactly when its decision does (a
rolled-back decision leaves no event; a committed one cannot lose its event). The delivery
worker (`workbench/webhooks.py`) then:

1. fans each new event out to the configured endpoints subscribed to its type
   (`fan_out`: one `webhook_deliveries` row per endpoint, the event marked `fanned_out_at`);
2. claims due deliveries with a lease (`claim`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the
   `BEGIN IMMEDIATE` write lock on SQLite), so two workers never send the same row at once; a
   delivery whose lease ran out (its worker died; the store's clock says so, never a worker's:
   `core.lease_clock`) is claimed again and the lost attempt recorded;
3. records each attempt's outcome (`finish`): delivered, retried later, or dead.

An operator re-drives dead deliveries (`retry`, `replay`) or gives up on one the receiver will
always refuse (`discard`: it becomes `discarded`, and the deliveries parked behind it go out).

Nothing here reads configuration: endpoints, leases and back-off arrive as arguments.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import math
import uuid
from typing import Any, Callable, Iterable, Mapping, Optional

from sqlalchemy import Connection, Select, and_, bindparam, exists, func, insert, or_, select, update

from . import audit
from .event_scope import item_scoped
from .hooks import check_permission
from .labels import AUTHORITATIVE_KINDS, current_decisions
from .lease_clock import lease_now
from .principals import actor_name
from .reviewer_pseudonym import platform_payload
from .schema import Decision, OutboxEvent, OutboxItem, WebhookAttempt, WebhookDelivery, utcnow
from .store import insert_ignore
from .text import lone_surrogate_at, text_error

EVENT_TYPES = ("decision.created", "decision.corrected", "appeal.resolved", "campaign.decided")

O = OutboxEvent.__table__
WD = WebhookDelivery.__table__
WA = WebhookAttempt.__table__
OI = OutboxItem.__table__
D = Decision.__table__

# What an event tells the platform about each decision (never item text or the rationale; the
# reviewer as a pseudonym, `enqueue`: `core.reviewer_pseudonym`).
DECISION_FIELDS = ("id", "case_id", "item_id", "campaign_id", "reviewer", "kind", "label", "action",
                   "severity", "policy_ref", "supersedes_id", "taxonomy_version", "created_at")
_CHUNK = 500
ITEM_ID_MAX = OI.c.item_id.type.length
# How `_park` starts a parked delivery's last_error: `discard` releases exactly those.
PARKED = "parked behind dead delivery "
REASON_MAX = 500


class OutboxError(ValueError):
    """An unknown event type, delivery or endpoint."""


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else value


def _items(payload: Any) -> set[str]:
    """The items an event's decisions are about: what orders its deliveries."""
    rows = payload.get("decisions") if isinstance(payload, Mapping) else None
    return {str(d["item_id"]) for d in rows or () if isinstance(d, Mapping) and d.get("item_id") is not None}


def _unsendable(value: Any, path: str) -> Optional[str]:
    """Where in `value` the first thing no receiver can read is, and what: a lone surrogate (no
    UTF-8 text holds one: `event_body` could not encode the event, on every retry) or a NaN or
    infinity (not JSON: PostgreSQL refuses it, SQLite would store it and send invalid JSON)."""
    if isinstance(value, str):
        if (at := lone_surrogate_at(value)) is not None:
            return f"{path} holds a lone surrogate at character {at} (not UTF-8 text)"
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value}, not a JSON number"
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found = _unsendable(k, f"{path} (a key)") or _unsendable(v, f"{path}.{ascii(k)[1:-1]}")
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if found := _unsendable(v, f"{path}[{i}]"):
                return found
    return None


def enqueue(conn: Connection, event_type: str, payload: Mapping[str, Any], key: str,
            now: Optional[dt.datetime] = None) -> str:
    """Write one outbox event in the caller's transaction, with the items it is about
    (`outbox_items`, what orders its deliveries); returns its event id (a uuid4). A payload no
    receiver could read (`_unsendable`) is refused here, in the decision's transaction, on both
    stores alike, rather than stored and failing its delivery for ever. Each listed decision's
    reviewer is stored as its pseudonym (`platform_payload`): every event type, one place."""
    if event_type not in EVENT_TYPES:
        raise OutboxError(f"unknown event type {event_type!r} (known: {', '.join(EVENT_TYPES)})")
    body = platform_payload(conn, json.loads(json.dumps(dict(payload), default=_jsonable)))  # no analyst's name
    problem = _unsendable(key, "idempotency key") or _unsendable(body, "payload")
    if problem:
        raise OutboxError(f"{event_type} event {key!a}: {problem}")
    items = sorted(_items(body))
    if any(len(i) > ITEM_ID_MAX for i in items):
        raise OutboxError(f"{event_type} event {key!r}: an item id is longer than {ITEM_ID_MAX} characters")
    event_id = str(uuid.uuid4())
    oid = conn.execute(insert(O).values(event_id=event_id, event_type=event_type, idempotency_key=key,
                                        payload=body, created_at=now or utcnow())).inserted_primary_key[0]
    if items:
        conn.execute(insert(OI), [{"outbox_id": oid, "item_id": i} for i in items])
    return event_id


def enforces(kind: str, undone_kind: Optional[str] = None) -> bool:
    """Whether a decision row of `kind` is the platform's business: one of the label of record's
    kinds (`core.labels.AUTHORITATIVE_KINDS`), or an "undo" row taking back one of them
    (`undone_kind`). Calibration copies, their corrections and undos only measure agreement."""
    return kind in AUTHORITATIVE_KINDS or (kind == "undo" and undone_kind in AUTHORITATIVE_KINDS)


def decision_event(conn: Connection, event_type: str, decision_ids: Iterable[int], **context: Any) -> Optional[str]:
    """Enqueue the event for decisions just written in this transaction, those that enforce
    something (`enforces`); none: no event.

    The payload lists each decision's fields of `DECISION_FIELDS` plus `context` (case id,
    campaign id, ...). An "undo" row has no label, action, severity or policy reference in it,
    only `undoes` (the decision it takes back), and a `decision.corrected` event says what each
    of its items ends with (`effective`: item id -> its decision of record's id, label and action,
    or None: nothing to enforce), so a receiver never has to work out an undo's outcome. The
    idempotency key is the event type and the lowest decision id sent, which no other event shares.
    """
    ids = sorted(int(i) for i in decision_ids)
    if not ids:
        return None
    rows: list[dict[str, Any]] = []
    cols = [D.c[f] for f in DECISION_FIELDS]
    for start in range(0, len(ids), _CHUNK):
        rows += [{k: _jsonable(v) for k, v in r.items()} for r in conn.execute(
            select(*cols).where(D.c.id.in_(ids[start:start + _CHUNK])).order_by(D.c.id)).mappings()]
    undone_ids = sorted({r["supersedes_id"] for r in rows if r["kind"] == "undo" and r["supersedes_id"] is not None})
    undone: dict[int, str] = {}
    for start in range(0, len(undone_ids), _CHUNK):
        undone.update(conn.execute(select(D.c.id, D.c.kind).where(D.c.id.in_(undone_ids[start:start + _CHUNK]))).all())
    rows = [r for r in rows if enforces(r["kind"], undone.get(r["supersedes_id"]))]
    if not rows:
        return None
    for r in rows:
        if r["kind"] == "undo":
            r.update(label=None, action=None, severity=None, policy_ref=None, undoes=r["supersedes_id"])
    payload = {**{k: _jsonable(v) for k, v in context.items()}, "decision_count": len(rows), "decisions": rows}
    if event_type != "campaign.decided":  # one item's rows: a campaign is context, never the target
        payload = item_scoped(payload)
    if event_type == "decision.corrected":
        items = list(dict.fromkeys(r["item_id"] for r in rows if r["item_id"] is not None))
        record = current_decisions(conn, items)
        payload["effective"] = {i: {"decision_id": d["id"], "label": d["label"], "action": d["action"]}
                                if (d := record.get(i)) is not None else None for i in items}
    return enqueue(conn, event_type, payload, f"{event_type}:{rows[0]['id']}")


def event_body(event: Mapping[str, Any]) -> bytes:
    """The JSON body POSTed for an outbox event (stable bytes: the same on every redelivery)."""
    created = event["created_at"]
    doc = {"id": event["event_id"], "type": event["event_type"], "idempotency_key": event["idempotency_key"],
           "created_at": created.isoformat() + "Z" if isinstance(created, dt.datetime) else created,
           "data": event["payload"]}
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, stored before `enqueue` refused them: sent escaped
        # (\udcff), the same bytes on every redelivery, rather than failing the worker on each claim.
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# -- fan-out and claims --------------------------------------------------------------------------
def fan_out(conn: Connection, subscriptions: Mapping[str, Iterable[str]], limit: int = 500,
            now: Optional[dt.datetime] = None) -> int:
    """Create delivery rows for up to `limit` events not fanned out yet; returns events handled.

    `subscriptions` maps endpoint name -> event types. Every configured endpoint gets its rows,
    enabled or not (a disabled endpoint's deliveries wait for it). Safe to run concurrently:
    PostgreSQL skips events another worker holds, SQLite serialises writers.
    """
    now = now or utcnow()
    q = select(O.c.id, O.c.event_id, O.c.event_type, O.c.created_at).where(
        O.c.fanned_out_at.is_(None)).order_by(O.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    events = conn.execute(q).mappings().all()
    if not events:
        return 0
    subs = {name: set(types) for name, types in subscriptions.items()}
    rows = [dict(event_id=e["event_id"], endpoint=name, status="pending", attempts=0,
                 next_attempt_at=now, created_at=now, updated_at=now)
            for e in events for name, types in subs.items() if e["event_type"] in types]
    if rows:
        existing = {(r[0], r[1]) for r in conn.execute(select(WD.c.event_id, WD.c.endpoint).where(
            WD.c.event_id.in_([e["event_id"] for e in events])))}
        rows = [r for r in rows if (r["event_id"], r["endpoint"]) not in existing]
        if rows:
            conn.execute(insert(WD), rows)
    conn.execute(update(O).where(O.c.id.in_([e["id"] for e in events])).values(fanned_out_at=now))
    return len(events)


@functools.cache
def _held_query() -> Select:
    """The held check of `_held`, built once (its aliases cost more to build than to run)."""
    cand, waiting = WD.alias("cand"), WD.alias("waiting")
    mine, older, prior = OI.alias("mine"), OI.alias("older"), O.alias("prior")
    waiting_here = exists().where(waiting.c.event_id == prior.c.event_id, waiting.c.endpoint == cand.c.endpoint,
                                  waiting.c.status.in_(("pending", "dead"))).correlate_except(waiting)
    blocker = (select(older.c.outbox_id).join(prior, prior.c.id == older.c.outbox_id)
               .where(older.c.item_id == mine.c.item_id, older.c.outbox_id < mine.c.outbox_id,
                      or_(prior.c.fanned_out_at.is_(None), waiting_here)))
    return (select(cand.c.id).join(O, O.c.event_id == cand.c.event_id).join(mine, mine.c.outbox_id == O.c.id)
            .where(cand.c.id.in_(bindparam("ids", expanding=True)), exists(blocker)).distinct())


def _held(conn: Connection, ids: list[int]) -> set[int]:
    """Which of the deliveries `ids` must wait for an older event (smaller outbox id) about one of
    their items: one with a pending delivery to the same endpoint (retrying, or leased by another
    worker), or a dead one (`_park`), or one not fanned out yet (a fan-out may be under way in
    another transaction). So a correction never reaches an endpoint before the decision it
    corrects, however many workers, and however late a dead one is re-driven.

    One query over the given deliveries: `outbox_items` by primary key for their items, then
    `ix_outbox_items_item` for older events about those items. Its cost follows the deliveries
    asked about and their items' histories, not the backlog."""
    if not ids:
        return set()
    return set(conn.execute(_held_query(), {"ids": list(ids)}).scalars())


@functools.cache
def _parked_query() -> Select:
    """Per given delivery, each older event about one of its items whose delivery to the same
    endpoint is dead: (delivery id, dead delivery id, item id), the oldest dead one first."""
    cand, dead = WD.alias("cand"), WD.alias("dead")
    mine, older, prior = OI.alias("mine"), OI.alias("older"), O.alias("prior")
    return (select(cand.c.id, dead.c.id, older.c.item_id)
            .select_from(cand.join(O, O.c.event_id == cand.c.event_id).join(mine, mine.c.outbox_id == O.c.id)
                         .join(older, and_(older.c.item_id == mine.c.item_id, older.c.outbox_id < mine.c.outbox_id))
                         .join(prior, prior.c.id == older.c.outbox_id)
                         .join(dead, and_(dead.c.event_id == prior.c.event_id, dead.c.endpoint == cand.c.endpoint,
                                          dead.c.status == "dead")))
            .where(cand.c.id.in_(bindparam("ids", expanding=True))).order_by(cand.c.id, dead.c.id))


def _park(conn: Connection, ids: list[int], now: dt.datetime, clock: dt.datetime) -> int:
    """Dead-letter the held deliveries `ids` whose older event about one of their items is dead
    for the same endpoint: sending them would put a correction before the decision it corrects
    once an operator re-drives the dead one, and waiting pending would crowd the claim's
    candidates for ever. `retry` of the dead one (or `replay`) re-drives them after it, in order.
    No attempt is counted; a lease that ran out (by the store's `clock`) is recorded as a lost
    attempt, as in `claim`."""
    first: dict[int, tuple[int, str]] = {}
    for cand, dead_id, item in conn.execute(_parked_query(), {"ids": ids}):
        first.setdefault(cand, (dead_id, item))
    if not first:
        return 0
    # Lock the dead ones parked behind (PostgreSQL) and park only behind those still dead: a
    # `retry` or `discard` of one, under way in another transaction, then waits for this one and
    # sees what it parked; otherwise its follower would stay parked behind a re-driven or
    # discarded delivery that nothing re-drives again. SQLite serialises writers already.
    q = select(WD.c.id).where(WD.c.id.in_(sorted({d for d, _ in first.values()})), WD.c.status == "dead")
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    still_dead = set(conn.execute(q).scalars())
    first = {cand: blocker for cand, blocker in first.items() if blocker[0] in still_dead}
    if not first:
        return 0
    rows = conn.execute(select(WD.c.id, WD.c.lease_owner, WD.c.attempts, WD.c.lease_expires_at)
                        .where(WD.c.id.in_(list(first))).order_by(WD.c.id)).mappings().all()
    parked = 0
    for r in rows:
        dead_id, item = first[r["id"]]
        res = conn.execute(update(WD).where(
            WD.c.id == r["id"], WD.c.status == "pending",
            WD.c.lease_owner.is_(None) if r["lease_owner"] is None else WD.c.lease_owner == r["lease_owner"],
            or_(WD.c.lease_expires_at.is_(None), WD.c.lease_expires_at <= clock)).values(
            status="dead", lease_owner=None, lease_expires_at=None, updated_at=now,
            last_error=f"{PARKED}{dead_id} (an older event about item {item!r}): "
                       f"retry it (or discard it) and this one follows"))
        if not res.rowcount:
            continue
        parked += 1
        if r["lease_owner"] is not None:
            conn.execute(insert(WA).values(delivery_id=r["id"], attempt=r["attempts"], worker=r["lease_owner"],
                                           started_at=r["lease_expires_at"], finished_at=now,
                                           error="worker lost before acknowledging (lease expired); outcome unknown"))
    return parked


def claim(conn: Connection, endpoints: Iterable[str], worker: str, lease_seconds: float, limit: int = 20,
          now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
    """Lease up to `limit` due deliveries of `endpoints` to `worker`; each counts as an attempt.

    Due: pending, `next_attempt_at` reached, no live lease, and no older event about one of its
    items still waiting for that endpoint (`_held`); one held behind a dead delivery is
    dead-lettered after it (`_park`), so per item the order holds when dead ones are re-driven.
    A row whose lease expired was being sent by a worker that died: that attempt's outcome is
    unknown, recorded as such, and the event is sent again (at least once). Returns the
    deliveries joined with their events.

    `now` (the worker's clock) says what is due and stamps the rows; a lease is set and checked in
    the store's time (`core.lease_clock`), so a worker whose clock runs ahead never takes a live one.
    """
    now = now or utcnow()
    names = list(endpoints)
    if not names:
        return []
    clock = lease_now(conn)
    due_now = (WD.c.status == "pending", WD.c.endpoint.in_(names), WD.c.next_attempt_at <= now,
               or_(WD.c.lease_expires_at.is_(None), WD.c.lease_expires_at <= clock))
    order = (WD.c.next_attempt_at, WD.c.id)
    # Candidates beyond `limit`, so deliveries held back by an older one do not block the rest.
    candidates = list(conn.execute(select(WD.c.id).where(*due_now).order_by(*order).limit(limit * 5)).scalars())
    if not candidates:
        return []
    held = _held(conn, candidates)
    if held:
        _park(conn, sorted(held), now, clock)
    free = [i for i in candidates if i not in held]
    if not free:
        return []
    q = (select(WD.c.id, WD.c.lease_owner, WD.c.attempts, WD.c.lease_expires_at)
         .where(*due_now, WD.c.id.in_(free)).order_by(*order).limit(limit))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    due = conn.execute(q).mappings().all()
    if not due:
        return []
    lost = [dict(delivery_id=r["id"], attempt=r["attempts"], worker=r["lease_owner"], started_at=r["lease_expires_at"],
                 finished_at=now, error="worker lost before acknowledging (lease expired); outcome unknown")
            for r in due if r["lease_owner"] is not None]
    if lost:
        conn.execute(insert(WA), lost)
    ids = [r["id"] for r in due]
    conn.execute(update(WD).where(WD.c.id.in_(ids)).values(
        lease_owner=worker, lease_expires_at=clock + dt.timedelta(seconds=lease_seconds),
        attempts=WD.c.attempts + 1, updated_at=now))
    got = conn.execute(
        select(WD.c.id, WD.c.endpoint, WD.c.attempts, O.c.event_id, O.c.event_type, O.c.payload,
               O.c.idempotency_key, O.c.created_at)
        .join(O, O.c.event_id == WD.c.event_id).where(WD.c.id.in_(ids)).order_by(WD.c.next_attempt_at, WD.c.id))
    return [dict(r) for r in got.mappings()]


def finish(conn: Connection, delivery_id: int, worker: str, attempt: int, started_at: dt.datetime, *,
           ok: bool, status_code: Optional[int], error: Optional[str], retry_at: Optional[dt.datetime],
           now: Optional[dt.datetime] = None) -> str:
    """Record an attempt's outcome: delivered (`ok`), pending again at `retry_at`, or dead
    (`retry_at` None). Only the lease holder changes the delivery; the attempt is always kept.
    Returns the delivery's status after the call."""
    now = now or utcnow()
    conn.execute(insert(WA).values(delivery_id=delivery_id, attempt=attempt, worker=worker, started_at=started_at,
                                   finished_at=now, status_code=status_code, error=error))
    status = "delivered" if ok else ("pending" if retry_at is not None else "dead")
    values: dict[str, Any] = dict(status=status, lease_owner=None, lease_expires_at=None, updated_at=now,
                                  last_status_code=status_code, last_error=None if ok else error)
    if ok:
        values["delivered_at"] = now
    elif retry_at is not None:
        values["next_attempt_at"] = retry_at
    conn.execute(update(WD).where(WD.c.id == delivery_id, WD.c.lease_owner == worker,
                                  WD.c.status == "pending").values(**values))
    return status


def release(conn: Connection, ids: Iterable[int], worker: str) -> int:
    """Hand back claimed deliveries that `worker` did not start sending (not an attempt)."""
    ids = list(ids)
    if not ids:
        return 0
    res = conn.execute(update(WD).where(WD.c.id.in_(ids), WD.c.lease_owner == worker, WD.c.status == "pending")
                       .values(lease_owner=None, lease_expires_at=None, attempts=WD.c.attempts - 1))
    return int(res.rowcount or 0)


# -- operator commands ---------------------------------------------------------------------------
def list_deliveries(conn: Connection, status: Optional[str] = None, endpoint: Optional[str] = None,
                    event_id: Optional[str] = None, limit: int = 50) -> list[dict[str, Any]]:
    """Newest deliveries first, with their event type and idempotency key."""
    q = (select(WD.c.id, WD.c.event_id, O.c.event_type, O.c.idempotency_key, WD.c.endpoint, WD.c.status,
                WD.c.attempts, WD.c.next_attempt_at, WD.c.last_status_code, WD.c.last_error,
                WD.c.created_at, WD.c.delivered_at)
         .join(O, O.c.event_id == WD.c.event_id).order_by(WD.c.id.desc()).limit(limit))
    if status:
        q = q.where(WD.c.status == status)
    if endpoint:
        q = q.where(WD.c.endpoint == endpoint)
    if event_id:
        q = q.where(WD.c.event_id == event_id)
    return [{k: _jsonable(v) for k, v in r.items()} for r in conn.execute(q).mappings()]


def summary(conn: Connection) -> dict[str, Any]:
    """Counts per endpoint and status, and events not fanned out yet."""
    counts: dict[str, dict[str, int]] = {}
    for endpoint, status, n in conn.execute(select(WD.c.endpoint, WD.c.status, func.count())
                                            .group_by(WD.c.endpoint, WD.c.status)):
        counts.setdefault(endpoint, {})[status] = int(n)
    waiting = conn.execute(select(func.count()).select_from(O).where(O.c.fanned_out_at.is_(None))).scalar_one()
    return {"endpoints": counts, "events_not_fanned_out": int(waiting),
            "events": int(conn.execute(select(func.count()).select_from(O)).scalar_one())}


def attempts_of(conn: Connection, delivery_id: int) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in conn.execute(
        select(WA).where(WA.c.delivery_id == delivery_id).order_by(WA.c.id)).mappings()]


def _later_dead(conn: Connection, ids: list[int], parked_only: bool = False) -> set[int]:
    """Dead deliveries, to the same endpoint, of newer events about an item of deliveries `ids`
    (with `parked_only`, those `_park` dead-lettered, not those that failed their own attempts)."""
    src, fol, src_ev, fol_ev = WD.alias("src"), WD.alias("fol"), O.alias("src_ev"), O.alias("fol_ev")
    src_it, fol_it = OI.alias("src_it"), OI.alias("fol_it")
    q = (select(fol.c.id).select_from(
        src.join(src_ev, src_ev.c.event_id == src.c.event_id).join(src_it, src_it.c.outbox_id == src_ev.c.id)
        .join(fol_it, and_(fol_it.c.item_id == src_it.c.item_id, fol_it.c.outbox_id > src_it.c.outbox_id))
        .join(fol_ev, fol_ev.c.id == fol_it.c.outbox_id)
        .join(fol, and_(fol.c.event_id == fol_ev.c.event_id, fol.c.endpoint == src.c.endpoint)))
         .where(src.c.id.in_(ids), fol.c.status == "dead").distinct())
    if parked_only:
        q = q.where(fol.c.last_error.startswith(PARKED, autoescape=True))
    return set(conn.execute(q).scalars())


def _later_events(conn: Connection, event_ids: list[str], event_types: list[str]) -> set[str]:
    """Fanned-out events of `event_types` newer than, and about an item of, the events `event_ids`."""
    src, fol, src_it, fol_it = O.alias("src"), O.alias("fol"), OI.alias("src_it"), OI.alias("fol_it")
    q = (select(fol.c.event_id).select_from(
        src.join(src_it, src_it.c.outbox_id == src.c.id)
        .join(fol_it, and_(fol_it.c.item_id == src_it.c.item_id, fol_it.c.outbox_id > src_it.c.outbox_id))
        .join(fol, fol.c.id == fol_it.c.outbox_id))
         .where(src.c.event_id.in_(event_ids), fol.c.event_type.in_(event_types), fol.c.fanned_out_at.is_not(None))
         .distinct())
    return set(conn.execute(q).scalars())


def _closure(conn: Connection, seeds: list[Any], step: Callable[[Connection, list[Any]], set[Any]]) -> set[Any]:
    """Everything `step(conn, chunk)` reaches from `seeds`, transitively, less the seeds: a newer
    event about another of the first newer event's items must follow as well."""
    seen, frontier, found = set(seeds), list(seeds), set()
    while frontier:
        new: set[Any] = set()
        for start in range(0, len(frontier), _CHUNK):
            new |= step(conn, frontier[start:start + _CHUNK]) - seen
        seen |= new
        found |= new
        frontier = sorted(new)
    return found


def retry(conn: Connection, ids: Iterable[int] = (), endpoint: Optional[str] = None, all_dead: bool = False,
          now: Optional[dt.datetime] = None, *, actor: Any) -> int:
    """Dead deliveries (the given ids, or every dead one of `endpoint` / all with `all_dead`)
    become pending again, due now, with a fresh count of attempts. Named ids bring along the dead
    deliveries to the same endpoint of newer events about their items (those parked behind
    them, `_park`), which the held check then sends after them: per item, order holds. Returns
    how many. Needs the `webhooks` permission; audited."""
    check_permission(actor, "webhooks", f"endpoint {endpoint}" if endpoint else None)
    now = now or utcnow()
    ids = list(ids)
    if not ids and not endpoint and not all_dead:
        raise OutboxError("name delivery ids, an endpoint, or all dead deliveries")
    cond = [WD.c.status == "dead"]
    following: set[int] = set()
    # Lock the chosen ones first (PostgreSQL): a claim parking a follower behind one of them
    # finishes before the followers are looked up (`_park`), so none is left behind.
    q = select(WD.c.id).where(*cond, *([WD.c.id.in_(ids)] if ids else []),
                              *([WD.c.endpoint == endpoint] if endpoint else []))
    chosen = list(conn.execute(q.with_for_update() if conn.dialect.name == "postgresql" else q).scalars())
    if ids:  # an endpoint's (or all) dead ones, named without ids, are every follower already
        following = _closure(conn, chosen, _later_dead)
    if ids:
        cond.append(or_(WD.c.id.in_(ids), WD.c.id.in_(sorted(following))) if following else WD.c.id.in_(ids))
    if endpoint:
        cond.append(WD.c.endpoint == endpoint)
    res = conn.execute(update(WD).where(and_(*cond)).values(
        status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_expires_at=None, updated_at=now))
    audit.record(conn, actor, "webhooks.retry", "endpoint", endpoint,
                 {"ids": ids[:100], "all_dead": all_dead, "retried": int(res.rowcount or 0),
                  "following": len(following)})
    return int(res.rowcount or 0)


def replay(conn: Connection, endpoint: str, event_types: Iterable[str], event_ids: Iterable[str] = (),
           since: Optional[dt.datetime] = None, now: Optional[dt.datetime] = None, *, actor: Any) -> int:
    """Send events to `endpoint` again (same event id and idempotency key): the named events, or
    those created since `since`, of the endpoint's event types, and the newer events of those
    types about their items (sent after them, so per item the order holds). Delivered or dead
    deliveries become pending; events the endpoint never had (it was added later) get a
    delivery. Returns how many deliveries are now pending because of it. Needs the `webhooks` permission; audited."""
    check_permission(actor, "webhooks", f"endpoint {endpoint}")
    now = now or utcnow()
    event_ids = list(event_ids)
    if not event_ids and since is None:
        raise OutboxError("name event ids or --since")
    types = list(event_types)
    q = select(O.c.event_id).where(O.c.event_type.in_(types), O.c.fanned_out_at.is_not(None))
    if event_ids:
        q = q.where(O.c.event_id.in_(event_ids))
    if since is not None:
        q = q.where(O.c.created_at >= since)
    wanted = list(conn.execute(q).scalars())
    if event_ids and since is None:  # a typo, or an event of another type: not a silent "0 pending"
        unknown = [e for e in dict.fromkeys(event_ids) if e not in set(wanted)]
        if unknown:
            raise OutboxError(f"no event {', '.join(map(repr, unknown[:10]))} of {endpoint}'s types "
                              f"({', '.join(types)}) has been fanned out yet; nothing was replayed")
    # Newer events about their items go again too, after them (the held check): a replayed
    # decision never ends up after the correction the endpoint already had.
    wanted += sorted(_closure(conn, wanted, lambda c, chunk: _later_events(c, chunk, types)))
    n = 0
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        # Locked first (PostgreSQL): one a claim is parking right now is seen dead, not pending.
        q = select(WD.c.event_id).where(WD.c.endpoint == endpoint, WD.c.event_id.in_(chunk))
        have = set(conn.execute(q.with_for_update() if conn.dialect.name == "postgresql" else q).scalars())
        res = conn.execute(update(WD).where(WD.c.endpoint == endpoint, WD.c.event_id.in_(chunk),
                                            WD.c.status != "pending").values(
            status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
            updated_at=now))
        n += int(res.rowcount or 0)
        new = [dict(event_id=e, endpoint=endpoint, status="pending", attempts=0, next_attempt_at=now,
                    created_at=now, updated_at=now) for e in chunk if e not in have]
        if new:  # another replay may be inserting the same rows now (PostgreSQL): one row each, no error
            n += len(conn.execute(insert_ignore(conn.dialect.name, WD, ["event_id", "endpoint"])
                                  .values(new).returning(WD.c.id)).all())
    audit.record(conn, actor, "webhooks.replay", "endpoint", endpoint,
                 {"events": event_ids[:100], "since": since.isoformat() if since else None, "pending": n})
    return n


def discard(conn: Connection, ids: Iterable[int], reason: str, now: Optional[dt.datetime] = None, *,
            actor: Any) -> dict[str, list[int]]:
    """Give up on dead deliveries the receiver will always refuse (its item deleted on the
    platform, a malformed event): they become `discarded` and hold nothing back any more, and
    the deliveries parked behind them (`_park`; transitively, through other parked ones) become
    pending again, due now, with a fresh count of attempts; the held check sends them in order.
    A follower dead after its own attempts stays dead (it holds its own followers, as before).

    Only dead deliveries, all or none: a pending or delivered one is refused (OutboxError, one
    line, nothing changed). The last error is kept after the reason; `replay` can still send a
    discarded one later. Needs the `webhooks` permission; each discard is audited with who, why
    and what it released. Returns the ids discarded and released."""
    ids = sorted({int(i) for i in ids})
    check_permission(actor, "webhooks", f"delivery {ids[0]}" + (f" and {len(ids) - 1} more" if len(ids) > 1 else "")
                     if ids else None)
    now = now or utcnow()
    why = " ".join(str(reason or "").split())
    if not ids:
        raise OutboxError("name the dead deliveries to discard (see: workbench webhooks list --status dead)")
    if not why:
        raise OutboxError("discarding a delivery needs a reason (--reason): why the receiver will never accept it")
    if len(why) > REASON_MAX:
        raise OutboxError(f"the reason is {len(why)} characters long; at most {REASON_MAX} characters")
    if problem := text_error(why, "the reason"):  # stored in last_error, which `webhooks list` prints
        raise OutboxError(f"{problem}; nothing was discarded")
    rows: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        q = select(WD.c.id, WD.c.status, WD.c.endpoint, WD.c.event_id, WD.c.last_error).where(
            WD.c.id.in_(ids[start:start + _CHUNK]))
        if conn.dialect.name == "postgresql":  # a claim parking behind them waits, or is waited for
            q = q.with_for_update()
        rows.update((r["id"], dict(r)) for r in conn.execute(q).mappings())
    missing = [i for i in ids if i not in rows]
    if missing:
        raise OutboxError(f"no delivery {', '.join(map(str, missing[:10]))}; nothing was discarded")
    alive = [f"delivery {i} is {rows[i]['status']}" for i in ids if rows[i]["status"] != "dead"]
    if alive:
        raise OutboxError(f"{', '.join(alive[:10])}: only a dead delivery can be discarded; nothing was discarded")
    who = actor_name(actor)
    for i in ids:
        old = rows[i]["last_error"]
        conn.execute(update(WD).where(WD.c.id == i, WD.c.status == "dead").values(
            status="discarded", lease_owner=None, lease_expires_at=None, updated_at=now,
            last_error=f"discarded by {who}: {why}" + (f" (last error: {old})" if old else "")))
    released = sorted(_closure(conn, ids, lambda c, chunk: _later_dead(c, chunk, parked_only=True)))
    for start in range(0, len(released), _CHUNK):
        conn.execute(update(WD).where(WD.c.id.in_(released[start:start + _CHUNK]), WD.c.status == "dead").values(
            status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
            updated_at=now))
    for i in ids:
        audit.record(conn, actor, "webhooks.discard", "webhook_delivery", i,
                     {"reason": why, "endpoint": rows[i]["endpoint"], "event_id": rows[i]["event_id"],
                      "last_error": rows[i]["last_error"], "released": released[:100], "released_count": len(released)})
    return {"discarded": ids, "released": released}
