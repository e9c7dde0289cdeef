"""Claims: atomic claims with a lease, release, skip, and lapsed leases back to the queue.

Atomic: on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`; on SQLite the store's write
transactions are `BEGIN IMMEDIATE`, so select-then-update is serialised across processes. The
claim reads the first entry of the `ix_cases_claim` index (queue, state, priority DESC, id), so
its cost does not grow with the backlog. A case of a campaign no longer active (merged into
another; `clustering.service` closes it on its next run) is never offered: deciding it is refused.

Hold cap: a claim's whole hold, renewals included, ends `max_hold_seconds` (queues.yaml) after
`cases.claimed_at`, the store's time the claim began: a tab left open renewed its lease forever
and sat on the case. A row claimed before that column existed (NULL) starts its cap at its next
renewal. A fresh claim (after the hold ended, or of a case someone released) starts a new one.

Whose clock: a lease is set on one app server and checked on others, so it is set and compared in
the store's time (`lease_clock`: `core.lease_clock.lease_now`, read once in the transaction), never
the process's own; a server whose clock ran ahead took over every live claim. A `now` passed in
(tests, replays) is used as given.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Collection, Mapping, Optional

from sqlalchemy import Connection, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from core import audit
from core.hooks import check_permission
from core.lease_clock import lease_now
from core.principals import SYSTEM, Actor, actor_name
from core.schema import Case, CaseSkip, Decision, utcnow
from core.store import Store, serialise
from core.text import free_text_error

from .cases import case_view, inactive_campaign, of_live_campaign
from .errors import QueueError
from .four_eyes import not_own_escalation, own_escalation, refuse_own_escalation
from .priority import utc_naive
from .queue_config import QueueConfig

C = Case.__table__
SK = CaseSkip.__table__
D = Decision.__table__

def _now(now: Optional[dt.datetime]) -> dt.datetime:
    """`now` as the store keeps times (naive UTC; an aware time of any zone converted), else the
    clock: a lease written or compared in another zone's wall-clock time is hours off."""
    return utc_naive(now) if now is not None else utcnow()


def lease_clock(conn: Connection, now: Optional[dt.datetime] = None) -> dt.datetime:
    """The time leases are set from and compared with in `conn`'s transaction: `now` as given
    (naive UTC), else the store's clock (`lease_now`), so app servers whose clocks differ agree on
    who holds a case. Read it once per transaction and use it for every lease there."""
    return _now(now) if now is not None else lease_now(conn)


def claims_of(conn: Connection, who: str) -> None:
    """Run `who`'s claims (and decisions) one after another, taken first in the transaction, before
    any row lock. Two at once (a double-pressed `n`, two tabs) each took a calibration copy and
    then wrote its sibling, the other's row, off for `who`: a deadlock on PostgreSQL, or `who` held
    two copies of one item. Serialised, the second sees the first's. (SQLite serialises writes.)"""
    serialise(conn, f"claims-of:{who}")


def expired_query(now: dt.datetime, limit: int = 500, dialect: str = "sqlite"):  # type: ignore[no-untyped-def]
    """Claimed cases whose lease lapsed, in `ix_cases_lease` order (ordering by id would scan the table)."""
    q = (select(C.c.id, C.c.queue, C.c.claimed_by).where(C.c.state == "claimed", C.c.lease_expires_at < now)
         .order_by(C.c.lease_expires_at, C.c.id).limit(limit))
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return q


def reclaim_expired(conn: Connection, config: QueueConfig, now: Optional[dt.datetime] = None,
                    limit: int = 500) -> list[int]:
    """Return cases whose lease lapsed to the queue they wait in; the ids returned (in the caller's tx).
    Lapsed in `now`, else in the store's time (`lease_clock`)."""
    now = lease_clock(conn, now)
    rows = conn.execute(expired_query(now, limit, conn.dialect.name)).all()
    for state in ("open", "escalated"):
        ids = [r.id for r in rows if config.waiting_state(r.queue) == state]
        if ids:
            conn.execute(update(C).where(C.c.id.in_(ids)).values(
                state=state, claimed_by=None, lease_expires_at=None, updated_at=now))
    returned: dict[int, list[int]] = {}
    copies = set(conn.execute(select(C.c.id).where(C.c.id.in_([r.id for r in rows]),
                                                   C.c.calibration_set.is_not(None))).scalars()) if rows else set()
    for r in rows:
        if r.id in copies and r.claimed_by and (back := return_calibration_siblings(conn, r.id, r.claimed_by, now)):
            returned[r.id] = back
    if rows:
        audit.record(conn, SYSTEM["system"], "case.lease_expired", "case", None,
                     {"cases": [r.id for r in rows], "holders": sorted({r.claimed_by for r in rows if r.claimed_by}),
                      **({"calibration_siblings_returned": returned} if returned else {})})
    return [r.id for r in rows]


def claim_query(config: QueueConfig, queue: str, analyst: str, dialect: str = "sqlite",
                exclude: Collection[int] = ()):  # type: ignore[no-untyped-def]
    """The claim SELECT: first waiting case of the queue in index order, not skipped by the analyst,
    not of a merged campaign, not one they escalated (`four_eyes`), not one of `exclude`."""
    skipped = exists(select(1).where(SK.c.case_id == C.c.id, SK.c.analyst == analyst))
    q = select(C.c.id).where(C.c.queue == queue, C.c.state == config.waiting_state(queue), ~skipped,
                             of_live_campaign(), not_own_escalation(analyst, config))
    if exclude:
        q = q.where(C.c.id.not_in([int(i) for i in exclude]))
    q = q.order_by(C.c.priority.desc(), C.c.id.asc()).limit(1)
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True, of=C)
    return q


def own_claim_query(queue: str, analyst: str, now: dt.datetime, exclude: Collection[int] = (),
                    dialect: str = "sqlite", held_since: Optional[dt.datetime] = None):  # type: ignore[no-untyped-def]
    """The analyst's own live claim in `queue` (best first, as claimed), not one of `exclude`, not
    of a merged campaign; with `held_since`, not one claimed before it (its hold reached the cap)."""
    q = select(C.c.id).where(C.c.queue == queue, C.c.state == "claimed", C.c.claimed_by == analyst,
                             C.c.lease_expires_at > now, of_live_campaign())
    if held_since is not None:
        q = q.where(or_(C.c.claimed_at.is_(None), C.c.claimed_at > held_since))
    if exclude:
        q = q.where(C.c.id.not_in([int(i) for i in exclude]))
    q = q.order_by(C.c.priority.desc(), C.c.id.asc()).limit(1)
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True, of=C)
    return q


def next_case(store: Store, analyst: Actor, queue: str, config: QueueConfig, lease_seconds: Optional[int] = None,
              now: Optional[dt.datetime] = None, detail: bool = True, resume: bool = False,
              exclude: Collection[int] = ()) -> Optional[dict[str, Any]]:
    """Claim the best waiting case of `queue` for `analyst` with a lease; None when it is empty.

    Atomic: on PostgreSQL the row is taken with FOR UPDATE SKIP LOCKED, on SQLite the write
    transaction holds the database write lock from its first statement. Cases the analyst
    skipped (or a sibling calibration copy of one they hold) are not offered to them.
    `resume`: first the analyst's own live claim in `queue` (not one of `exclude`), its lease
    renewed: a review screen reloaded mid-case continues where it was, not stranding its cases.
    """
    who = actor_name(analyst)
    if not who or not who.strip():
        raise QueueError("an analyst name is required to claim a case")
    if not isinstance(queue, str) or queue not in config.queues:  # a list failed as "unhashable type"
        raise QueueError(f"unknown queue {queue!r} (known: {', '.join(config.queues)})")
    lease = config.lease_seconds if lease_seconds is None else lease_seconds
    if isinstance(lease, bool) or not isinstance(lease, int) or not 0 < lease <= config.max_lease_seconds:
        raise QueueError(f"a lease must be 1 to {config.max_lease_seconds} seconds (max_lease_seconds in "
                         f"queues.yaml), not {lease_seconds!r}")
    check_permission(analyst, "claim", f"queue {queue}")
    with store.begin() as conn:
        claims_of(conn, who)
        now = lease_clock(conn, now)
        reclaim_expired(conn, config, now)
        since = now - dt.timedelta(seconds=config.max_hold_seconds)
        case_id = None if not resume else conn.execute(own_claim_query(queue, who, now, exclude,
                                                                       conn.dialect.name, since)).scalar()
        if case_id is not None:
            return _resume(conn, case_id, queue, who, now, config, lease, detail)
        case_id = _first_takeable(conn, config, queue, who)
        if case_id is None:
            return None
        expires = now + dt.timedelta(seconds=lease)
        conn.execute(update(C).where(C.c.id == case_id).values(
            state="claimed", claimed_by=who, lease_expires_at=expires, claimed_at=now,
            first_action_at=func.coalesce(C.c.first_action_at, now), updated_at=now))
        row = conn.execute(select(C.c.item_id, C.c.calibration_set).where(C.c.id == case_id)).one()
        if row.calibration_set:
            exclude_calibration_siblings(conn, case_id, row.item_id, row.calibration_set, who, now)
        audit.record(conn, who, "case.claim", "case", case_id,
                     {"queue": queue, "lease_expires_at": expires.isoformat()})
        return case_view(conn, case_id) if detail else {"id": case_id, "queue": queue, "claimed_by": who,
                                                         "lease_expires_at": expires}


def _first_takeable(conn: Connection, config: QueueConfig, queue: str, who: str) -> Optional[int]:
    """The claim query's first case `who` may take: one whose open escalation they raised earlier
    (a lead raised it again since, so `escalated_by` no longer names them) is passed over
    (`four_eyes.own_escalation`, the rule in full; the query filters on `escalated_by` alone)."""
    barred: list[int] = []
    while True:
        case_id = conn.execute(claim_query(config, queue, who, conn.dialect.name, barred)).scalar()
        if case_id is None:
            return None
        row = conn.execute(select(C.c.id, C.c.queue, C.c.meta).where(C.c.id == case_id)).mappings().one()
        if own_escalation(row, who, config) is None:
            return case_id
        barred.append(case_id)


def _resume(conn: Connection, case_id: int, queue: str, who: str, now: dt.datetime, config: QueueConfig,
            lease: int, detail: bool) -> dict[str, Any]:
    """The analyst's own live claim taken up again (in the caller's tx): its lease renewed, within
    the hold's cap (`held_lease`)."""
    case = {"id": case_id, "claimed_at": conn.execute(select(C.c.claimed_at).where(C.c.id == case_id)).scalar()}
    start, expires = held_lease(case, who, config, now, lease)
    conn.execute(update(C).where(C.c.id == case_id).values(lease_expires_at=expires, claimed_at=start,
                                                           updated_at=now))
    audit.record(conn, who, "case.claim", "case", case_id,
                 {"queue": queue, "lease_expires_at": expires.isoformat(), "resumed": True})
    return case_view(conn, case_id) if detail else {"id": case_id, "queue": queue, "claimed_by": who,
                                                     "lease_expires_at": expires}


SIBLING = "calibration sibling"  # the reason of a skip row `exclude_calibration_siblings` writes


def exclude_calibration_siblings(conn: Connection, case_id: int, item_id: Optional[str], cal_set: str,
                                 analyst: str, now: dt.datetime) -> None:
    """Never offer `analyst` the other copies of a calibration copy they took (claimed by `n` or
    by id, or decided): they could not answer it twice, so `n` would serve a case they cannot decide.
    The copies of every calibration set (`cal_set` is the taken copy's): an item drawn into two
    sets served one analyst a copy from each, a second answer to an item already seen, neither
    blind nor independent. A release or a lapse of the copy undoes this
    (`return_calibration_siblings`); a skip does not (it declines the item)."""
    if item_id is None:
        return
    already = exists(select(1).where(SK.c.case_id == C.c.id, SK.c.analyst == analyst))
    sibs = conn.execute(select(C.c.id).where(C.c.item_id == item_id, C.c.calibration_set.is_not(None),
                                             C.c.id != case_id, ~already)).scalars().all()
    if sibs:
        conn.execute(insert(SK), [{"case_id": s, "analyst": analyst, "reason": SIBLING,
                                   "created_at": now} for s in sibs])


def return_calibration_siblings(conn: Connection, case_id: int, analyst: str, now: dt.datetime) -> list[int]:
    """Offer `analyst` again the sibling copies of calibration copy `case_id`, which they gave back
    (released, or let the lease lapse) without answering: the sibling skips
    `exclude_calibration_siblings` wrote for them are removed, unless they answered the item (a
    live calibration answer, any set) or hold another copy of it. Why: kept, once someone else
    took the returned copy, the analyst who never answered got no copy of the item at all, and
    with as many analysts as copies the item was never fully answered. Returns the sibling ids
    given back (for the audit record); [] for a case that is no calibration copy."""
    case = conn.execute(select(C.c.item_id, C.c.calibration_set).where(C.c.id == case_id)).first()
    if case is None or not case.calibration_set or case.item_id is None:
        return []
    later = aliased(D)
    answered = conn.execute(select(D.c.id).where(
        D.c.item_id == case.item_id, D.c.reviewer == analyst, D.c.kind == "calibration",
        ~exists().where(later.c.supersedes_id == D.c.id, later.c.kind == "undo")).limit(1)).first()
    holds = conn.execute(select(C.c.id).where(
        C.c.item_id == case.item_id, C.c.calibration_set.is_not(None), C.c.id != case_id, C.c.state == "claimed",
        C.c.claimed_by == analyst, C.c.lease_expires_at > now).limit(1)).first()
    if answered is not None or holds is not None:
        return []
    sibs = select(C.c.id).where(C.c.item_id == case.item_id, C.c.calibration_set.is_not(None), C.c.id != case_id)
    back = conn.execute(select(SK.c.case_id).where(SK.c.analyst == analyst, SK.c.reason == SIBLING,
                                                   SK.c.case_id.in_(sibs))).scalars().all()
    if back:
        conn.execute(delete(SK).where(SK.c.analyst == analyst, SK.c.reason == SIBLING, SK.c.case_id.in_(back)))
    return sorted(back)


def lock_case(conn: Connection, case_id: int) -> dict[str, Any]:
    """The case row, locked for update on PostgreSQL; QueueError when there is no such case."""
    q = select(C).where(C.c.id == case_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise QueueError(f"no case {case_id}")
    return dict(row)


def check_actionable(case: Mapping[str, Any], analyst: Actor, now: dt.datetime) -> None:
    """Raise QueueError unless `analyst` may act on the case now (waiting, or claimed by them)."""
    analyst = actor_name(analyst)
    state = case["state"]
    if state == "claimed":
        live = case["lease_expires_at"] is not None and case["lease_expires_at"] > now
        if case["claimed_by"] != analyst and live:
            raise QueueError(f"case {case['id']} is claimed by {case['claimed_by']} until "
                             f"{case['lease_expires_at']:%Y-%m-%d %H:%M:%S} UTC")
    elif state not in ("open", "escalated"):
        raise QueueError(f"case {case['id']} is {state}, not waiting for a decision")


def release(store: Store, case_id: int, analyst: Actor, config: QueueConfig, now: Optional[dt.datetime] = None,
            reason: Optional[str] = None,
            _action: str = "case.release") -> dict[str, Any]:
    """Give a claimed case back to its queue, priority unchanged. A `reason` (a skip's) is free text
    a person writes, kept in the store and the audit log: it follows `core.text.free_text_error`."""
    if reason is not None:
        bad = f"the reason must be text, not {type(reason).__name__}" if not isinstance(reason, str) \
            else free_text_error(reason, "the reason")
        if bad is not None:
            raise QueueError(f"case {case_id}: {bad}; nothing was changed")
    check_permission(analyst, "skip" if _action == "case.skip" else "release", f"case {case_id}")
    principal, analyst = analyst, actor_name(analyst)
    with store.begin() as conn:
        now = lease_clock(conn, now)
        case = lock_case(conn, case_id)
        if case["state"] != "claimed" or case["claimed_by"] != analyst:
            holder = f"claimed by {case['claimed_by']}" if case["state"] == "claimed" else case["state"]
            raise QueueError(f"case {case_id} is not claimed by {analyst} (it is {holder})")
        if _action == "case.skip":
            if conn.execute(select(SK.c.case_id).where(SK.c.case_id == case_id, SK.c.analyst == analyst)).first() is None:
                conn.execute(insert(SK).values(case_id=case_id, analyst=analyst, reason=reason, created_at=now))
        conn.execute(update(C).where(C.c.id == case_id).values(
            state=config.waiting_state(case["queue"]), claimed_by=None, lease_expires_at=None, updated_at=now))
        back = return_calibration_siblings(conn, case_id, analyst, now) if _action != "case.skip" else []
        audit.record(conn, principal, _action, "case", case_id, {"queue": case["queue"], "reason": reason,
                                                                 **({"calibration_siblings_returned": back}
                                                                    if back else {})})
        return case_view(conn, case_id, with_history=False)


def skip(store: Store, case_id: int, analyst: Actor, config: QueueConfig, reason: Optional[str] = None,
         now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Give a claimed case back and never offer it to this analyst again (others still get it)."""
    return release(store, case_id, analyst, config, now=now, reason=reason, _action="case.skip")


def renew(store: Store, case_id: int, analyst: Actor, config: QueueConfig, lease_seconds: Optional[int] = None,
          now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Extend the holder's lease: the review screen's heartbeat while the case is on screen.

    Needs `claim`. Only the holder of a live lease may renew it (a lapsed lease is lost: the
    case may already be someone else's), never past `max_lease_seconds` from now, and never past
    `max_hold_seconds` from the claim (`held_lease`): refused once the hold reached it.
    """
    lease = config.lease_seconds if lease_seconds is None else lease_seconds
    if isinstance(lease, bool) or not isinstance(lease, int) or not 0 < lease <= config.max_lease_seconds:
        raise QueueError(f"a lease must be 1 to {config.max_lease_seconds} seconds (max_lease_seconds in "
                         f"queues.yaml), not {lease_seconds!r}")
    check_permission(analyst, "claim", f"case {case_id}")
    who = actor_name(analyst)
    with store.begin() as conn:
        now = lease_clock(conn, now)
        case = lock_case(conn, case_id)
        live = case["lease_expires_at"] is not None and case["lease_expires_at"] > now
        mine = case["state"] == "claimed" and case["claimed_by"] == who
        cap = None if case["claimed_at"] is None else case["claimed_at"] + dt.timedelta(seconds=config.max_hold_seconds)
        if mine and cap is not None and case["lease_expires_at"] is not None and case["lease_expires_at"] >= cap:
            held_lease(case, who, config, now, lease)  # its lease ran to the cap: say so, not only "lapsed"
        if not mine or not live:
            raise QueueError(f"case {case_id} is no longer held by {who}: {_why_lost(conn, case, who)}")
        start, expires = held_lease(case, who, config, now, lease)
        conn.execute(update(C).where(C.c.id == case_id).values(lease_expires_at=expires, claimed_at=start,
                                                               updated_at=now))
    return {"id": case_id, "claimed_by": who, "lease_expires_at": expires}


def held_lease(case: Mapping[str, Any], who: str, config: QueueConfig, now: dt.datetime,
               lease: int) -> tuple[dt.datetime, dt.datetime]:
    """(claim start, lease end) for renewing `who`'s hold of `case` at `now`: the lease from now,
    never past the claim's start + `max_hold_seconds`, so no heartbeat holds a case forever. A
    row claimed before `claimed_at` was stored (NULL) starts its cap now. QueueError (one line)
    once the hold reached the cap."""
    start = case["claimed_at"] if case["claimed_at"] is not None else now
    end = start + dt.timedelta(seconds=config.max_hold_seconds)
    if now >= end:
        raise QueueError(f"case {case['id']} has been held by {who} for {_span(now - start)} since it was claimed, "
                         f"the most max_hold_seconds ({config.max_hold_seconds} in queues.yaml) allows: the hold is "
                         f"not renewed; claim the case again to keep it")
    return start, min(now + dt.timedelta(seconds=lease), end)


def _span(delta: dt.timedelta) -> str:
    """A duration as a person reads it: '4 h 5 min', '12 min', '40 s'."""
    secs = max(int(delta.total_seconds()), 0)
    if secs >= 3600:
        return f"{secs // 3600} h {secs % 3600 // 60} min"
    return f"{secs // 60} min" if secs >= 60 else f"{secs} s"


def _why_lost(conn: Connection, case: Mapping[str, Any], who: str) -> str:
    """What became of a case whose hold `who` lost, in the words the review screen shows."""
    state = case["state"]
    if state == "decided":
        by = conn.execute(select(D.c.reviewer).where(D.c.case_id == case["id"]).order_by(D.c.id.desc())
                          .limit(1)).scalar() or case["claimed_by"]
        return f"it was decided by {by}" if by else "it was decided"
    if state == "escalated":
        by = (case["meta"] or {}).get("escalated_by")
        return f"it was escalated{f' by {by}' if by else ''} and waits in the {case['queue']} queue"
    if state == "claimed" and case["claimed_by"] != who:
        return f"the hold lapsed and the case is now held by {case['claimed_by']}"
    if state == "claimed":
        return "the hold lapsed (the case may go back to its queue)"
    if state == "open":
        return "the hold lapsed and the case went back to its queue"
    return f"it is {state} now"


def claim_case(store: Store, case_id: int, analyst: Actor, config: QueueConfig,
               now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Claim one case by its id ("open case" on the review screen): it must be waiting (or
    already held by `analyst`, which renews the lease within the hold's cap, `held_lease`). Needs
    `claim`; never takes a case another analyst holds, and not an appeal (those are resolved by a
    lead on the Appeals tab)."""
    who = actor_name(analyst)
    if not who or not who.strip():
        raise QueueError("an analyst name is required to claim a case")
    check_permission(analyst, "claim", f"case {case_id}")
    with store.begin() as conn:
        claims_of(conn, who)
        now = lease_clock(conn, now)
        reclaim_expired(conn, config, now)
        case = lock_case(conn, case_id)
        if case["queue"] == config.appeals_queue:
            raise QueueError(f"case {case_id} is an appeal: a lead resolves it on the Appeals tab")
        check_actionable(case, who, now)
        if (status := inactive_campaign(conn, case["campaign_id"])) is not None:
            raise QueueError(f"case {case_id} is of campaign {case['campaign_id']}, which is {status}: its members "
                             f"joined another campaign, claim that campaign's case instead")
        refuse_own_escalation(case, who, config, doing="claim")  # four eyes: not one's own escalation
        held = case["state"] == "claimed" and case["claimed_by"] == who and case["lease_expires_at"] is not None \
            and case["lease_expires_at"] > now  # its own live hold: a renewal, not a fresh claim
        start, expires = held_lease(case, who, config, now, config.lease_seconds) if held \
            else (now, now + dt.timedelta(seconds=config.lease_seconds))
        conn.execute(update(C).where(C.c.id == case_id).values(
            state="claimed", claimed_by=who, lease_expires_at=expires, claimed_at=start,
            first_action_at=func.coalesce(C.c.first_action_at, now), updated_at=now))
        if case["calibration_set"]:
            exclude_calibration_siblings(conn, case_id, case["item_id"], case["calibration_set"], who, now)
        audit.record(conn, analyst, "case.claim", "case", case_id,
                     {"queue": case["queue"], "lease_expires_at": expires.isoformat(), "by_id": True})
    return {"id": case_id, "queue": case["queue"], "claimed_by": who, "lease_expires_at": expires}


def check_holder(conn: Connection, case: Mapping[str, Any], who: str, now: dt.datetime) -> None:
    """Raise QueueError unless `who` holds the case (its row locked by the caller) on a lease live
    at `now`, naming what became of it: a screen acts only on the case it still has, and checking
    in the transaction that acts leaves no gap in which the hold can change (`holder_only`)."""
    live = case["lease_expires_at"] is not None and case["lease_expires_at"] > now
    if case["state"] == "claimed" and case["claimed_by"] == who and live:
        return
    if case["state"] == "claimed" and case["claimed_by"] and case["claimed_by"] != who:
        raise QueueError(f"case {case['id']} is claimed by {case['claimed_by']} now, no longer by {who}: "
                         "nothing was saved; press n for the next case")
    raise QueueError(f"case {case['id']} is no longer held by {who}: {_why_lost(conn, case, who)}")
