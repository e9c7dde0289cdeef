"""Escalation: a case moved to the escalation queue by an analyst, or by the SLA sweep.

`sweep` is the periodic upkeep (cron or the UI's timer): lapsed leases back to the queue,
cases whose SLA is about to lapse escalated, priorities refreshed (urgency grows with time).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

import numpy as np
from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from core import audit
from core.hooks import check_permission
from core.principals import SYSTEM, Actor, actor_name
from core.schema import Case
from core.store import Store
from core.taxonomy import Taxonomy

from .cases import _lock_builds, case_view
from .claims import _now, check_actionable, lock_case, reclaim_expired
from .errors import QueueError
from .priority import PRIORITY_EPSILON, score_features, sla_lapsing, tier_weight
from .queue_config import QueueConfig

C = Case.__table__

def escalate(store: Store, taxonomy: Taxonomy, case_id: int, actor: Actor, reason: str, config: QueueConfig,
             severity: Optional[str] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Move a waiting or claimed case to the escalation queue with the reason recorded."""
    if not reason or not reason.strip():
        raise QueueError("escalating needs a reason")
    if severity is not None and severity not in taxonomy.severities:
        raise QueueError(f"unknown severity {severity!r} (known: {', '.join(taxonomy.severities)})")
    now = _now(now)
    check_permission(actor, "escalate", f"case {case_id}")
    actor = actor_name(actor)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        check_actionable(case, actor, now)
        _move_to_escalation(conn, taxonomy, config, case, reason.strip(), now, severity)
        audit.record(conn, actor, "case.escalate", "case", case_id,
                     {"from_queue": case["queue"], "reason": reason.strip(), "severity": severity})
        return case_view(conn, case_id, with_history=False)


def _move_to_escalation(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, case: Mapping[str, Any],
                        reason: str, now: dt.datetime, severity: Optional[str] = None, human: bool = True) -> None:
    tier = case["severity"]
    if severity and (tier is None or taxonomy.sla_minutes(severity) < taxonomy.sla_minutes(tier)):
        tier = severity
    due = case["due_at"]
    if tier:
        tier_due = now + dt.timedelta(minutes=taxonomy.sla_minutes(tier))
        due = min(due, tier_due) if due else tier_due
    meta = dict(case["meta"] or {})
    features = dict(meta.get("features") or {}, severity=tier, escalation=reason.split(":")[0][:60])
    features["risk"] = max(float(features.get("risk", 0.0)), tier_weight(taxonomy, tier))
    meta.update(features=features, escalated_from=case["queue"])
    priority, why, terms = score_features(taxonomy, features, config, case["created_at"], due, now)
    meta["terms"] = terms
    conn.execute(update(C).where(C.c.id == case["id"]).values(
        queue=config.escalation_queue, state="escalated", claimed_by=None, lease_expires_at=None,
        escalation_reason=reason, severity=tier, due_at=due, priority=priority, priority_reason=why,
        first_action_at=func.coalesce(C.c.first_action_at, now) if human else C.c.first_action_at,
        meta=meta, updated_at=now))


def sweep(store: Store, taxonomy: Taxonomy, config: QueueConfig,
          now: Optional[dt.datetime] = None, progress: bool = False, chunk_size: int = 5000,
          requested_by: Optional[Actor] = None) -> dict[str, int]:
    """Periodic upkeep: lapsed leases back to the queue, SLA-lapsing cases escalated, priorities refreshed.

    Priorities carry an SLA-urgency term, so they are recomputed here from the features stored
    with each case; run it every few minutes (cron, or the UI's timer). It acts as the reserved
    system principal `sweeper`; a person who starts it (`requested_by`) needs `sweep`.
    """
    from tqdm import tqdm

    if requested_by is not None:
        check_permission(requested_by, "sweep", "queues")
    now = _now(now)
    out = {"leases_expired": 0, "sla_escalated": 0, "reprioritised": 0}
    waiting = or_(and_(C.c.state == "open", C.c.queue != config.escalation_queue),
                  C.c.state == "escalated")
    with store.begin() as conn:
        _lock_builds(conn)
        while True:
            got = reclaim_expired(conn, config, now)
            out["leases_expired"] += len(got)
            if len(got) < 500:
                break
        # SLA about to lapse -> escalation queue.
        tiers = config.sla_escalation.tiers
        if tiers:
            horizon = max(taxonomy.sla_minutes(t) for t in tiers) * config.sla_escalation.remaining_fraction
            rows = conn.execute(select(C).where(
                C.c.state == "open", C.c.severity.in_(tiers), C.c.due_at <= now + dt.timedelta(minutes=horizon),
                C.c.queue.notin_([config.escalation_queue, config.appeals_queue, config.calibration_queue])
            )).mappings().all()
            if rows:
                left = np.array([(r["due_at"] - now).total_seconds() / 60 for r in rows])
                sla = np.array([taxonomy.sla_minutes(r["severity"]) for r in rows])
                mask = sla_lapsing(left, sla, np.ones(len(rows), bool), config.sla_escalation.remaining_fraction)
                for r, hit, m in zip(rows, mask, left):
                    if hit:
                        why = (f"sla: {max(m, 0):.0f} of {taxonomy.sla_minutes(r['severity'])} minutes left "
                               f"on the {r['severity']} SLA" if m > 0 else f"sla: {r['severity']} SLA lapsed")
                        _move_to_escalation(conn, taxonomy, config, r, why, now, human=False)
                        audit.record(conn, SYSTEM["sweeper"], "case.escalate", "case", r["id"],
                                     {"from_queue": r["queue"], "reason": why})
                        out["sla_escalated"] += 1
        if out["sla_escalated"] or out["leases_expired"]:
            audit.record(conn, SYSTEM["sweeper"], "cases.sweep", "queue", None,
                         dict(out, **({"requested_by": actor_name(requested_by)} if requested_by is not None else {})))
        total = conn.execute(select(func.count()).select_from(C).where(waiting)).scalar() or 0
    # Refresh priorities (urgency grows with time), one short write transaction per chunk so
    # claims interleave; a claim taken meanwhile simply drops out of the `waiting` filter.
    bar = tqdm(total=total, desc="refreshing priorities", unit="case", disable=not progress, leave=False)
    last_id = 0
    stmt = (update(C).where(C.c.id == bindparam("cid"), waiting)
            .values(priority=bindparam("p"), priority_reason=bindparam("why")))
    while True:
        with store.begin() as conn:
            rows = conn.execute(select(C.c.id, C.c.created_at, C.c.due_at, C.c.meta, C.c.priority)
                                .where(waiting, C.c.id > last_id).order_by(C.c.id).limit(chunk_size)).all()
            if not rows:
                break
            last_id = rows[-1].id
            changes = []
            for r in rows:
                feats = (r.meta or {}).get("features")
                if not feats:
                    continue
                p, why, _ = score_features(taxonomy, feats, config, r.created_at, r.due_at, now)
                if abs(p - (r.priority or 0.0)) > PRIORITY_EPSILON:
                    changes.append({"cid": r.id, "p": p, "why": why})
            if changes:
                conn.execute(stmt, changes)
                out["reprioritised"] += len(changes)
        bar.update(len(rows))
    bar.close()
    return out
