"""Undo (`u` on the review screen): take back one's own last decision within a short window.

Decisions are append-only, so an undo is a correction: one "undo" row per decision taken back,
each superseding it (an "undo" row is no label itself), an audit event, a `decision.corrected`
outbox event when the platform heard of the decision (so its enforcement can be reverted; the
event says each item's outcome, `core.outbox.decision_event`), and the label of record as it was
before the decision: where the undone row superseded a decision that would be the label of record
again, a restoring row re-asserts it (a copy of that decision, its reviewer's, superseding the
"undo" row), so every reader of `core.labels.current_decisions` (export, training) sees it without
a rule of its own. A case that had no decision before comes back into the analyst's hands with a
fresh lease, and a campaign decision's member cases that it closed go back to their queues; a case
whose earlier decision is restored stays decided. A decision under appeal is not undone (a lead
settles it): a single case says so by its state, a campaign decision by its members' appeal cases.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional, Sequence

from sqlalchemy import Connection, and_, exists, insert, select, update
from sqlalchemy.orm import aliased

from core import audit, outbox
from core.hooks import check_permission, decision_recorded
from core.labels import AUTHORITATIVE_KINDS, current_decisions, lock_item_decisions, record_key
from core.principals import Actor, actor_name
from core.schema import Case, Decision
from core.store import Store

from .claims import _now, lease_clock, lock_case
from .errors import DecisionError
from .queue_config import QueueConfig
from .rereview import is_rereview_answer, same_verdict

C = Case.__table__
D = Decision.__table__
UNDOABLE = ("review", "qa_audit", "calibration", "escalation", "bulk")
COPIED = [c.name for c in D.columns if c.name not in ("id", "supersedes_id", "created_at")]  # a restoring row's


def _restoring() -> Any:
    """Restoring rows (an undo wrote them, superseding its "undo" row): no act of their reviewer's,
    so never the one an undo takes back."""
    undo = aliased(D)
    return exists().where(undo.c.id == D.c.supersedes_id, undo.c.kind == "undo")


def last_decision(store: Store, analyst: Actor, window_seconds: int,
                  now: Optional[dt.datetime] = None) -> Optional[dict[str, Any]]:
    """The analyst's newest decision if it can still be undone (within the window, not yet
    superseded, of an undoable kind); None otherwise."""
    now, who = _now(now), actor_name(analyst)  # an aware time converted, as the store keeps times
    later = aliased(D)
    with store.read() as conn:
        row = conn.execute(select(D).where(D.c.reviewer == who, D.c.kind != "undo", ~_restoring())
                           .order_by(D.c.id.desc()).limit(1)).mappings().first()
        if row is None or row["kind"] not in UNDOABLE or row["created_at"] < now - dt.timedelta(seconds=window_seconds):
            return None
        if conn.execute(select(exists().where(later.c.supersedes_id == row["id"]))).scalar():
            return None
        return dict(row)


def undo_last(store: Store, analyst: Actor, config: QueueConfig, window_seconds: int,
              now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Undo the analyst's last decision (all rows of it, for a campaign) if made within
    `window_seconds`; the label of record is the one before it, and a case that had no decision
    before comes back claimed by them (`lease_expires_at`; None when the case stays decided).
    Needs `correct` (one's own decision)."""
    asked = now  # as given: a lease given back is on the store's clock unless a test fixes the time
    now, who = _now(now), actor_name(analyst)  # an aware time converted, as the store keeps times
    last = last_decision(store, analyst, window_seconds, now)
    if last is None:
        raise DecisionError(f"nothing to undo: your last decision is older than {window_seconds} seconds, "
                            f"already corrected, or there is none")
    check_permission(analyst, "correct", f"decision {last['id']}")
    case_id = last["case_id"]
    with store.begin() as conn:
        if last["item_id"] and last["campaign_id"] is None:  # the item's lock first, as every writer takes them
            lock_item_decisions(conn, last["item_id"])  # a correction at the same time waits, or is waited for
        case = lock_case(conn, case_id)
        if case["state"] != "decided":
            raise DecisionError(f"case {case_id} is {case['state']} now: its decision can no longer be undone "
                                f"(ask a lead to correct it)")
        mine = and_(D.c.case_id == case_id, D.c.reviewer == who, D.c.created_at == last["created_at"],
                    D.c.kind != "undo", ~_restoring())
        if last["campaign_id"] is not None:  # the members' locks, sorted, after the campaign case's (as `_bulk`)
            for item_id in sorted(set(conn.execute(select(D.c.item_id).where(mine, D.c.item_id.is_not(None)))
                                      .scalars())):
                lock_item_decisions(conn, item_id)
        later = aliased(D)
        group = conn.execute(select(D).where(mine, ~exists().where(later.c.supersedes_id == D.c.id))
                             .order_by(D.c.id)).mappings().all()
        if not group:  # a lead corrected it since `last_decision` read it
            raise DecisionError(f"nothing to undo: decision {last['id']} was corrected meanwhile")
        _refuse_appealed(conn, config, [d["item_id"] for d in group if d["item_id"]])
        rows = [dict(case_id=case_id, item_id=d["item_id"], campaign_id=d["campaign_id"], reviewer=who, kind="undo",
                     label=d["label"], action=d["action"], severity=d["severity"], policy_ref=d["policy_ref"],
                     rationale=f"undone by {who} within {window_seconds} s", model_version=d["model_version"],
                     model_label=d["model_label"], model_score=d["model_score"], is_override=False,
                     taxonomy_version=d["taxonomy_version"], supersedes_id=d["id"], created_at=now)
                for d in group]
        ids = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), rows).scalars().all()
        prior, restored = _restore(conn, group, ids, now)
        kept = any(p["case_id"] == case_id for p in prior)  # the case was decided before: it stays decided
        reopened: list[int] = []
        if case["campaign_id"] is not None:
            # member cases the campaign decision closed (no decision of their own, resolved with it)
            items = [d["item_id"] for d in group if d["item_id"] and d["supersedes_id"] is None]
            own = exists().where(D.c.case_id == C.c.id)
            for start in range(0, len(items), 900):
                reopened += conn.execute(select(C.c.id, C.c.queue).where(and_(
                    C.c.item_id.in_(items[start:start + 900]), C.c.campaign_id.is_(None), C.c.id != case_id,
                    C.c.state == "decided", C.c.resolved_at == case["resolved_at"], ~own))).all()
            for cid, queue in reopened:
                conn.execute(update(C).where(C.c.id == cid).values(
                    state=config.waiting_state(queue), resolved_at=None, claimed_by=None, updated_at=now))
        expires = None
        if not kept:
            start = lease_clock(conn, asked)  # a new hold: its cap (max_hold_seconds) counts from here
            expires = start + dt.timedelta(seconds=config.lease_seconds)
            conn.execute(update(C).where(C.c.id == case_id).values(
                state="claimed", claimed_by=who, lease_expires_at=expires, claimed_at=start, resolved_at=None,
                updated_at=now))
        written = [*ids, *restored.values()]
        before = {p["id"]: p for p in prior}
        if not all(_unsent(d, before.get(d["supersedes_id"])) for d in group):
            outbox.decision_event(conn, "decision.corrected", written, case_id=case_id,
                                  undone=[d["id"] for d in group], restored=sorted(restored))
        audit.record(conn, analyst, "decision.undo", "case", case_id,
                     {"undone": [d["id"] for d in group] if len(group) <= 50 else {"count": len(group)},
                      "undo_rows": len(ids), "reopened_member_cases": len(reopened),
                      "restored": {str(k): v for k, v in restored.items()} if len(restored) <= 50
                      else {"count": len(restored)}, "bound": audit.bind(conn, written)})
    decision_recorded(written, {"id": case_id, "item_id": case["item_id"], "campaign_id": case["campaign_id"]},
                      who, "undo", last["label"], last["action"])
    return {"case_id": case_id, "undone": [d["id"] for d in group], "undo_ids": list(ids),
            "restored": restored, "reopened_member_cases": [r[0] for r in reopened], "label": last["label"],
            "action": last["action"], "lease_expires_at": expires}


def _refuse_appealed(conn: Connection, config: QueueConfig, item_ids: Sequence[str]) -> None:
    """DecisionError when one of the items has an appeal pending: it names the decision being taken
    back, and could never be resolved (its item would have no decision, or another one). A single
    case moves to "appealed" and is refused by its state; a campaign decision's members need this.
    Called under the items' decision locks, which a filing takes too."""
    for start in range(0, len(item_ids), 900):
        hit = conn.execute(select(C.c.item_id, C.c.id).where(
            C.c.item_id.in_(item_ids[start:start + 900]), C.c.queue == config.appeals_queue,
            C.c.state.in_(("open", "claimed", "escalated"))).order_by(C.c.id).limit(1)).first()
        if hit is not None:
            raise DecisionError(f"item {hit[0]!r} has an appeal pending (case {hit[1]}): the decision can no longer "
                                f"be undone (resolve the appeal, or ask a lead to correct it)")


def _unsent(decision: Any, superseded: Optional[dict[str, Any]]) -> bool:
    """An agreeing re-review answer: never sent (`labeling.decisions.decide`), so neither is its undo."""
    return superseded is not None and is_rereview_answer(decision, superseded) and same_verdict(decision, superseded)


def _restore(conn: Connection, group: Sequence[Any], undo_ids: Sequence[int],
             now: dt.datetime) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Bring back what the undone rows superseded: (those decisions, {decision id: its restoring
    row's id}). One is re-asserted where it would be the label of record again (nothing live on its
    item is newer; a calibration copy always); after the "undo" rows, under the items' locks."""
    undo_of = {d["supersedes_id"]: u for d, u in zip(group, undo_ids) if d["supersedes_id"] is not None}
    keys = sorted(undo_of)
    prior: list[dict[str, Any]] = []
    for start in range(0, len(keys), 900):
        prior += [dict(r) for r in conn.execute(select(D).where(D.c.id.in_(keys[start:start + 900]),
                                                                D.c.kind != "undo")).mappings()]
    live = current_decisions(conn, [p["item_id"] for p in prior if p["item_id"]])
    back = []
    for p in prior:
        rival = live.get(p["item_id"]) if p["kind"] in AUTHORITATIVE_KINDS else None
        if rival is None or record_key(rival) < record_key(p):
            back.append(p)
    if not back:
        return prior, {}
    rows = [dict({k: p[k] for k in COPIED}, supersedes_id=undo_of[p["id"]], created_at=now) for p in back]
    new = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), rows).scalars().all()
    return prior, {p["id"]: int(n) for p, n in zip(back, new)}
