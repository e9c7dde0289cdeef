"""Undo (`u` on the review screen): take back one's own last decision within a short window.

Decisions are append-only, so an undo is a correction: one "undo" row per decision taken back,
each superseding it (the item's label of record falls back to none; an "undo" row is no label
itself), an audit event, a `decision.corrected` outbox event (so an enforcement already sent can
be reverted), and the case back in the analyst's hands with a fresh lease. A campaign decision's
member cases that it closed go back to their queues.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.orm import aliased

from core import audit, outbox
from core.hooks import check_permission, decision_recorded
from core.labels import lock_item_decisions
from core.principals import Actor, actor_name
from core.schema import Case, Decision, utcnow
from core.store import Store

from .claims import lock_case
from .errors import DecisionError
from .queue_config import QueueConfig

C = Case.__table__
D = Decision.__table__
UNDOABLE = ("review", "qa_audit", "calibration", "escalation", "bulk")


def last_decision(store: Store, analyst: Actor, window_seconds: int,
                  now: Optional[dt.datetime] = None) -> Optional[dict[str, Any]]:
    """The analyst's newest decision if it can still be undone (within the window, not yet
    superseded, of an undoable kind); None otherwise."""
    now, who = now or utcnow(), actor_name(analyst)
    later = aliased(D)
    with store.read() as conn:
        row = conn.execute(select(D).where(D.c.reviewer == who, D.c.kind != "undo")
                           .order_by(D.c.id.desc()).limit(1)).mappings().first()
        if row is None or row["kind"] not in UNDOABLE or row["created_at"] < now - dt.timedelta(seconds=window_seconds):
            return None
        if conn.execute(select(exists().where(later.c.supersedes_id == row["id"]))).scalar():
            return None
        return dict(row)


def undo_last(store: Store, analyst: Actor, config: QueueConfig, window_seconds: int,
              now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Undo the analyst's last decision (all rows of it, for a campaign) if made within
    `window_seconds`; the case comes back claimed by them. Needs `correct` (one's own decision)."""
    now, who = now or utcnow(), actor_name(analyst)
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
        later = aliased(D)
        group = conn.execute(select(D).where(
            D.c.case_id == case_id, D.c.reviewer == who, D.c.created_at == last["created_at"], D.c.kind != "undo",
            ~exists().where(later.c.supersedes_id == D.c.id)).order_by(D.c.id)).mappings().all()
        if not group:  # a lead corrected it since `last_decision` read it
            raise DecisionError(f"nothing to undo: decision {last['id']} was corrected meanwhile")
        rows = [dict(case_id=case_id, item_id=d["item_id"], campaign_id=d["campaign_id"], reviewer=who, kind="undo",
                     label=d["label"], action=d["action"], severity=d["severity"], policy_ref=d["policy_ref"],
                     rationale=f"undone by {who} within {window_seconds} s", model_version=d["model_version"],
                     model_label=d["model_label"], model_score=d["model_score"], is_override=False,
                     taxonomy_version=d["taxonomy_version"], supersedes_id=d["id"], created_at=now)
                for d in group]
        ids = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), rows).scalars().all()
        reopened: list[int] = []
        if case["campaign_id"] is not None:
            # member cases the campaign decision closed (no decision of their own, resolved with it)
            items = [d["item_id"] for d in group if d["item_id"]]
            own = exists().where(D.c.case_id == C.c.id)
            for start in range(0, len(items), 900):
                reopened += conn.execute(select(C.c.id, C.c.queue).where(and_(
                    C.c.item_id.in_(items[start:start + 900]), C.c.campaign_id.is_(None), C.c.id != case_id,
                    C.c.state == "decided", C.c.resolved_at == case["resolved_at"], ~own))).all()
            for cid, queue in reopened:
                conn.execute(update(C).where(C.c.id == cid).values(
                    state=config.waiting_state(queue), resolved_at=None, claimed_by=None, updated_at=now))
        expires = now + dt.timedelta(seconds=config.lease_seconds)
        conn.execute(update(C).where(C.c.id == case_id).values(
            state="claimed", claimed_by=who, lease_expires_at=expires, resolved_at=None, updated_at=now))
        outbox.decision_event(conn, "decision.corrected", ids, case_id=case_id, undone=[d["id"] for d in group])
        audit.record(conn, analyst, "decision.undo", "case", case_id,
                     {"undone": [d["id"] for d in group] if len(group) <= 50 else {"count": len(group)},
                      "undo_rows": len(ids), "reopened_member_cases": len(reopened),
                      "bound": audit.bind(conn, list(ids))})
    decision_recorded(list(ids), {"id": case_id, "item_id": case["item_id"], "campaign_id": case["campaign_id"]},
                      who, "undo", last["label"], last["action"])
    return {"case_id": case_id, "undone": [d["id"] for d in group], "undo_ids": list(ids),
            "reopened_member_cases": [r[0] for r in reopened], "label": last["label"], "action": last["action"],
            "lease_expires_at": expires}
