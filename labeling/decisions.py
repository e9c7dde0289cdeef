"""Human decisions on cases: decide, bulk-decide a campaign, correct, appeal and resolve appeals.

A decision is validated against the taxonomy (the action must be allowed for the policy; a
rationale is required to override the model or on an escalated case), records the model's
version, label and score as the analyst saw them, closes the case and writes the audit event,
all in one write transaction. Decisions are append-only (database triggers refuse UPDATE and
DELETE): a correction or an appeal outcome is a new row that names the one it supersedes.

Appeal vocabulary: an appeal is *upheld* when the appellant is right and the original decision
is reversed (`outcome="reverse"`, a false-positive signal); otherwise the decision is confirmed
(`outcome="confirm"`). Both outcomes are recorded as decisions of kind "appeal".
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

from sqlalchemy import Connection, func, insert, select, update

from workbench import audit
from workbench.queue import (
    C,
    CM,
    D,
    P,
    QueueConfig,
    QueueError,
    case_view,
    check_actionable,
    latest_prediction_ids,
    load_queue_config,
    lock_case,
    score_features,
)
from workbench.schema import utcnow
from workbench.store import Store
from workbench.taxonomy import Taxonomy

from .labels import current_decisions

OUTCOMES = ("confirm", "reverse")


def _validate(taxonomy: Taxonomy, label: str, action: Optional[str], severity: Optional[str],
              policy_ref: Optional[str]) -> tuple[str, Optional[str], str]:
    """(action, severity, policy_ref) with the policy's defaults filled in; QueueError when invalid."""
    if label not in taxonomy.policies:
        raise QueueError(f"unknown policy label {label!r} (known: {', '.join(taxonomy.policies)})")
    pol = taxonomy.policies[label]
    action = action or pol.default_action
    try:
        taxonomy.check_decision(label, action)
    except ValueError as exc:
        raise QueueError(str(exc)) from None
    if severity is not None and severity not in taxonomy.severities:
        raise QueueError(f"unknown severity {severity!r} (known: {', '.join(taxonomy.severities)})")
    return action, severity if severity is not None else pol.severity, policy_ref or pol.policy_ref


def _model_seen(conn: Connection, case: Mapping[str, Any]) -> tuple[Optional[str], Optional[str], Optional[float]]:
    """The model version, label and score the analyst was shown with the case."""
    label, version = case["predicted_label"], case["model_version"]
    scores = (case.get("meta") or {}).get("scores") or {}
    score = scores.get(label) if label else None
    if label is not None and score is None and case["item_id"]:
        q = select(P.c.score, P.c.model_version).where(P.c.item_id == case["item_id"])
        q = q.where(P.c.model_version == version) if version else q
        row = conn.execute(q.order_by(P.c.id.desc()).limit(1)).first()
        if row is not None:
            score, version = float(row.score), row.model_version
    return version, label, None if score is None else float(score)


def _decision_kind(case: Mapping[str, Any], config: QueueConfig, kind: str) -> str:
    if case["campaign_id"] is not None:
        return "bulk"
    if case["calibration_set"]:
        return "calibration"
    if case["is_audit"]:
        return "qa_audit"
    if case["queue"] == config.escalation_queue or case["state"] == "escalated":
        return "escalation"
    return kind


def _close(conn: Connection, case_id: int, analyst: str, now: dt.datetime, meta: Optional[dict[str, Any]] = None) -> None:
    values: dict[str, Any] = dict(state="decided", resolved_at=now, claimed_by=analyst, lease_expires_at=None,
                                  first_action_at=func.coalesce(C.c.first_action_at, now), updated_at=now)
    if meta is not None:
        values["meta"] = meta
    conn.execute(update(C).where(C.c.id == case_id).values(**values))


def _insert_decision(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(D).values(**row).returning(D.c.id)).scalar_one())


def decide(store: Store, taxonomy: Taxonomy, case_id: int, analyst: str, label: str,
           action: Optional[str] = None, severity: Optional[str] = None, policy_ref: Optional[str] = None,
           rationale: Optional[str] = None, kind: str = "review", now: Optional[dt.datetime] = None,
           config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Decide a case (one transaction): validate, record what the model said, close, audit.

    `action` defaults to the policy's default action (a one-key confirm). The kind follows the
    case: QA audit, calibration copy, escalation, or "bulk" for a campaign case, which writes one
    decision per member item and closes the members' own waiting cases.
    """
    config = config or load_queue_config(taxonomy=taxonomy)
    now = now or utcnow()
    rationale = (rationale or "").strip() or None
    action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        if case["queue"] == config.appeals_queue:
            raise QueueError(f"case {case_id} is an appeal: resolve it with `workbench appeals resolve`")
        check_actionable(case, analyst, now)
        kind = _decision_kind(case, config, kind)
        if kind == "calibration":
            twice = conn.execute(select(D.c.id).join(C, C.c.id == D.c.case_id).where(
                D.c.item_id == case["item_id"], D.c.reviewer == analyst, D.c.kind == "calibration",
                C.c.calibration_set == case["calibration_set"])).first()
            if twice is not None:
                raise QueueError(f"{analyst} already answered item {case['item_id']!r} in calibration set "
                                 f"{case['calibration_set']!r}; agreement needs different analysts")
        version, model_label, model_score = _model_seen(conn, case)
        override = model_label is not None and label != model_label
        if override and not rationale:
            raise QueueError(f"a rationale is required to override the model's label "
                             f"({model_label} -> {label}); pass --rationale")
        if (case["state"] == "escalated" or case["queue"] == config.escalation_queue) and not rationale:
            raise QueueError(f"case {case_id} is escalated: a rationale is required")
        common = dict(case_id=case_id, reviewer=analyst, kind=kind, label=label, action=action, severity=severity,
                      policy_ref=policy_ref, rationale=rationale, taxonomy_version=taxonomy.version, created_at=now)
        ids: list[int] = []
        closed_members: list[int] = []
        if case["campaign_id"] is not None:
            ids, closed_members = _bulk(conn, case, analyst, common, now)
        else:
            ids.append(_insert_decision(conn, item_id=case["item_id"], model_version=version,
                                        model_label=model_label, model_score=model_score,
                                        is_override=override, **common))
        _close(conn, case_id, analyst, now)
        audit.record(conn, analyst, "decision.create", "case", case_id,
                     {"decisions": ids if len(ids) <= 50 else {"count": len(ids), "first": ids[0], "last": ids[-1]},
                      "kind": kind, "label": label, "action": action, "severity": severity,
                      "model_label": model_label, "model_score": model_score, "is_override": override,
                      "rationale": rationale, "closed_member_cases": len(closed_members)})
        view = case_view(conn, case_id, with_history=False)
    view.update(decision_ids=ids, kind=kind, is_override=override, closed_member_cases=closed_members)
    return view


def _bulk(conn: Connection, case: Mapping[str, Any], analyst: str, common: dict[str, Any],
          now: dt.datetime) -> tuple[list[int], list[int]]:
    """One decision per member of the campaign (its own model prediction recorded); close member cases."""
    members = conn.execute(select(CM.c.item_id).where(CM.c.campaign_id == case["campaign_id"])
                           .order_by(CM.c.item_id)).scalars().all()
    if not members:
        raise QueueError(f"campaign {case['campaign_id']} of case {case['id']} has no members")
    preds = {r.item_id: r for r in conn.execute(
        select(P.c.item_id, P.c.model_version, P.c.label, P.c.score)
        .where(P.c.item_id.in_(members), P.c.id.in_(latest_prediction_ids(conn))))}
    rows = []
    for item_id in members:
        p = preds.get(item_id)
        rows.append(dict(common, item_id=item_id, campaign_id=case["campaign_id"],
                         model_version=p.model_version if p else None, model_label=p.label if p else None,
                         model_score=float(p.score) if p else None,
                         is_override=bool(p is not None and p.label != common["label"])))
    ids = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), rows).scalars().all()
    waiting = conn.execute(select(C.c.id).where(
        C.c.item_id.in_(members), C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
        C.c.state.in_(("open", "escalated", "claimed")), C.c.id != case["id"])).scalars().all()
    if waiting:
        conn.execute(update(C).where(C.c.id.in_(waiting)).values(
            state="decided", resolved_at=now, lease_expires_at=None, updated_at=now,
            first_action_at=func.coalesce(C.c.first_action_at, now)))
    return list(ids), list(waiting)


def correct(store: Store, taxonomy: Taxonomy, decision_id: int, analyst: str, label: str,
            rationale: str, action: Optional[str] = None, severity: Optional[str] = None,
            policy_ref: Optional[str] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Correct a decision: a new row superseding it (the old row stays, as the triggers demand)."""
    if not rationale or not rationale.strip():
        raise QueueError("a correction needs a rationale")
    now = now or utcnow()
    action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
    with store.begin() as conn:
        old = conn.execute(select(D).where(D.c.id == decision_id)).mappings().first()
        if old is None:
            raise QueueError(f"no decision {decision_id}")
        newer = conn.execute(select(D.c.id).where(D.c.supersedes_id == decision_id)).scalar()
        if newer is not None:
            raise QueueError(f"decision {decision_id} was already superseded by {newer}; correct that one")
        new_id = _insert_decision(
            conn, case_id=old["case_id"], item_id=old["item_id"], campaign_id=old["campaign_id"], reviewer=analyst,
            kind=old["kind"], label=label, action=action, severity=severity, policy_ref=policy_ref,
            rationale=rationale.strip(), model_version=old["model_version"], model_label=old["model_label"],
            model_score=old["model_score"], is_override=old["model_label"] is not None and label != old["model_label"],
            taxonomy_version=taxonomy.version, supersedes_id=decision_id, created_at=now)
        audit.record(conn, analyst, "decision.correct", "decision", new_id,
                     {"supersedes": decision_id, "from": [old["label"], old["action"]], "to": [label, action],
                      "rationale": rationale.strip()})
    return {"decision_id": new_id, "supersedes_id": decision_id, "label": label, "action": action}


# ---------------------------------------------------------------------------------------------
# Appeals
# ---------------------------------------------------------------------------------------------
def appeal(store: Store, item_id: str, appellant: str, reason: str, taxonomy: Optional[Taxonomy] = None,
           now: Optional[dt.datetime] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """File an appeal against an item's current decision: a new case in the appeals queue.

    The case carries the original decision, its rationale and the evidence the analyst saw
    (text, model scores, campaign, priority reason), and the decided case moves to 'appealed'.
    """
    if not reason or not reason.strip():
        raise QueueError("an appeal needs a reason")
    if taxonomy is None:
        from workbench.taxonomy import load_taxonomy

        taxonomy = load_taxonomy()
    config = config or load_queue_config(taxonomy=taxonomy)
    now = now or utcnow()
    with store.begin() as conn:
        current = current_decisions(conn, [item_id]).get(item_id)
        if current is None:
            raise QueueError(f"item {item_id!r} has no decision to appeal")
        pending = conn.execute(select(C.c.id).where(
            C.c.item_id == item_id, C.c.queue == config.appeals_queue,
            C.c.state.in_(("open", "claimed")))).scalar()
        if pending is not None:
            raise QueueError(f"item {item_id!r} already has an appeal waiting (case {pending})")
        orig = conn.execute(select(C).where(C.c.id == current["case_id"])).mappings().first() if current["case_id"] else None
        orig_meta = dict((orig or {}).get("meta") or {})
        item = conn.execute(select(P.c.scores).where(P.c.item_id == item_id)
                            .order_by(P.c.id.desc()).limit(1)).first()
        tier = current["severity"] or config.benign_tier
        features = dict(orig_meta.get("features") or {"risk": 0.0, "label": current["label"], "score": 0.0},
                        severity=tier, escalation=None)
        due = now + dt.timedelta(minutes=config.appeal_sla_minutes)
        priority, why, terms = score_features(taxonomy, features, config, now, due, now)
        packet = {
            "appellant": appellant, "reason": reason.strip(), "filed_at": now.isoformat(),
            "decision": {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in current.items()},
            "evidence": {"model_scores": orig_meta.get("scores") or (dict(item.scores) if item else None),
                         "campaign_id": (orig or {}).get("campaign_id") or orig_meta.get("member_of_campaign"),
                         "priority_reason": (orig or {}).get("priority_reason"),
                         "escalation_reason": (orig or {}).get("escalation_reason"),
                         "original_queue": (orig or {}).get("queue")},
        }
        case_id = int(conn.execute(insert(C).values(
            item_id=item_id, campaign_id=None, queue=config.appeals_queue, state="open", priority=priority,
            priority_reason=f"appeal of decision {current['id']}; {why}", severity=tier,
            predicted_label=(orig or {}).get("predicted_label"), model_version=(orig or {}).get("model_version"),
            due_at=due, is_audit=False, reopened_from=current["case_id"], created_at=now, updated_at=now,
            meta={"features": features, "terms": terms, "scores": orig_meta.get("scores") or {}, "appeal": packet},
        ).returning(C.c.id)).scalar_one())
        if orig is not None and orig["state"] == "decided" and orig["campaign_id"] is None:
            conn.execute(update(C).where(C.c.id == orig["id"]).values(state="appealed", updated_at=now))
        audit.record(conn, appellant, "appeal.file", "case", case_id,
                     {"item_id": item_id, "decision_id": current["id"], "reason": reason.strip()})
        return case_view(conn, case_id)


def resolve_appeal(store: Store, taxonomy: Taxonomy, case_id: int, analyst: str, outcome: str,
                   rationale: str, label: Optional[str] = None, action: Optional[str] = None,
                   severity: Optional[str] = None, policy_ref: Optional[str] = None,
                   now: Optional[dt.datetime] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Confirm or reverse the appealed decision; either way a new "appeal" decision supersedes it.

    A reversal (the appeal is upheld) defaults to the benign label and its default action, and
    must change the label or the action.
    """
    if outcome not in OUTCOMES:
        raise QueueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if not rationale or not rationale.strip():
        raise QueueError("resolving an appeal needs a rationale")
    config = config or load_queue_config(taxonomy=taxonomy)
    now = now or utcnow()
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        if case["queue"] != config.appeals_queue:
            raise QueueError(f"case {case_id} is not an appeal (queue {case['queue']})")
        check_actionable(case, analyst, now)
        current = current_decisions(conn, [case["item_id"]]).get(case["item_id"])
        if current is None:
            raise QueueError(f"item {case['item_id']!r} has no decision any more")
        if outcome == "confirm":
            label, action = current["label"], current["action"]
            severity, policy_ref = current["severity"], current["policy_ref"]
        else:
            label = label or taxonomy.benign_label
            action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
            if label == current["label"] and action == current["action"]:
                raise QueueError(f"a reversal must change the label or the action (both are {label}/{action})")
        new_id = _insert_decision(
            conn, case_id=case_id, item_id=case["item_id"], campaign_id=current["campaign_id"], reviewer=analyst,
            kind="appeal", label=label, action=action, severity=severity, policy_ref=policy_ref,
            rationale=rationale.strip(), model_version=current["model_version"],
            model_label=current["model_label"], model_score=current["model_score"],
            is_override=current["model_label"] is not None and label != current["model_label"],
            taxonomy_version=taxonomy.version, supersedes_id=current["id"], created_at=now)
        meta = dict(case["meta"] or {})
        meta["appeal"] = dict(meta.get("appeal") or {}, outcome=outcome, upheld=outcome == "reverse",
                              resolved_by=analyst, decision_id=new_id)
        _close(conn, case_id, analyst, now, meta=meta)
        if case["reopened_from"]:
            conn.execute(update(C).where(C.c.id == case["reopened_from"], C.c.state == "appealed")
                         .values(state="decided", updated_at=now))
        audit.record(conn, analyst, "appeal.resolve", "case", case_id,
                     {"outcome": outcome, "decision_id": new_id, "supersedes": current["id"],
                      "from": [current["label"], current["action"]], "to": [label, action],
                      "rationale": rationale.strip()})
        view = case_view(conn, case_id)
    view.update(decision_id=new_id, outcome=outcome, upheld=outcome == "reverse")
    return view
