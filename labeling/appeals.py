"""Appeals: a decided item's appeal becomes a case in the appeals queue; resolving it confirms or reverses.

Vocabulary: an appeal is *upheld* when the appellant is right and the original decision is
reversed (`outcome="reverse"`, a false-positive signal); otherwise the decision is confirmed
(`outcome="confirm"`). Both outcomes are recorded as decisions of kind "appeal" that supersede
the appealed one.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

import numpy as np
from sqlalchemy import insert, select, update

from core import audit, outbox
from core.event_scope import item_scoped
from core.hooks import check_permission, decision_recorded
from core.labels import current_decisions, lock_item_decisions
from core.predictions import predictions_of_record
from core.principals import Actor, actor_name
from core.schema import Case, Item, utcnow
from core.store import Store, serialise
from core.taxonomy import Taxonomy
from core.text import free_text_error, stated

from .appeal_holds import waiting_appeals
from .cases import case_view
from .claims import check_actionable, lease_clock, lock_case
from .decisions import D, _close, _insert_decision, _is_appeal, _not_undone, _validate
from .errors import AppealPending, DecisionError
from .context import was_revealed
from .masking import is_sensitive, mask_fields, mask_text, may_reveal
from .packets import case_masked
from .priority import ARRIVED_AT, ESCALATED_AT, PINNED, label_harm_weights, risk_scores, score_features
from .queue_config import QueueConfig
from .review_config import ReviewSettings
from .reviewer_names import name_reviewers, store_namer

OUTCOMES = ("confirm", "reverse")
_NOT_CARRIED = frozenset((*PINNED, ARRIVED_AT, ESCALATED_AT))  # the original case's pins and clocks
C = Case.__table__


def appeal(store: Store, item_id: str, appellant: Actor, reason: str, taxonomy: Taxonomy,
           now: Optional[dt.datetime] = None, *, config: QueueConfig,
           decision_id: Optional[int] = None) -> dict[str, Any]:
    """File an appeal against an item's current decision: a new case in the appeals queue.

    The case carries the original decision, its rationale and the evidence the analyst saw
    (text, model scores, campaign, priority reason), and the decided case moves to 'appealed'.
    `decision_id`: the decision the appellant contests (the one the platform enforced, from its
    event); when the item's decision of record is another one now (corrected, reversed or undone
    since), nothing is filed: the appeal would contest a decision they were never told of.
    One appeal waits per item, wherever it waits (`appeal_holds.waiting_appeals`: also one
    escalated from the appeals queue before escalating appeals was refused).
    """
    if decision_id is not None and (isinstance(decision_id, bool) or not isinstance(decision_id, int)):
        raise DecisionError(f"an appeal's decision_id must be a decision's id, not {decision_id!r}")
    if reason is not None and not isinstance(reason, str):  # a caller's list or number: no AttributeError
        raise DecisionError(f"an appeal's reason must be text, not {type(reason).__name__}")
    if not stated(reason):
        raise DecisionError("an appeal needs a reason")
    if (bad := free_text_error(reason, "an appeal's reason")) is not None:
        raise DecisionError(bad)
    now = now or utcnow()
    check_permission(appellant, "appeal", f"item {item_id}")
    appellant = actor_name(appellant)
    with store.begin() as conn:
        serialise(conn, f"appeal:{item_id}")  # a retried filing waits, then finds this one waiting
        # The item's decision lock, as every writer takes it: an undo or a correction committing
        # meanwhile is waited for, so the appeal never names a decision already taken back.
        lock_item_decisions(conn, item_id)
        current = current_decisions(conn, [item_id]).get(item_id)
        if current is None:
            raise DecisionError(f"item {item_id!r} has no decision to appeal")
        pending = waiting_appeals(conn, config, [item_id]).get(item_id)
        if pending is not None:
            raise AppealPending(item_id, pending)
        if decision_id is not None and current["id"] != decision_id:
            raise DecisionError(f"decision {decision_id} is not item {item_id!r}'s decision of record (decision "
                                f"{current['id']} is, since): nothing was filed; appeal that one if it is contested")
        orig = conn.execute(select(C).where(C.c.id == current["case_id"])).mappings().first() if current["case_id"] else None
        orig_meta = dict((orig or {}).get("meta") or {})
        item = predictions_of_record(conn, [item_id]).get(item_id)
        bulk = orig is not None and orig["campaign_id"] is not None
        if bulk:  # a campaign's decision: the evidence and the priority are this item's, not the campaign's
            orig_meta = _member_evidence(taxonomy, item, current)
        tier = taxonomy.stored_tier(current["severity"]) or config.benign_tier  # a tier since removed: the lowest
        # Not the original case's seed or learning pin: that placed it in its review queue, and
        # would put this appeal ahead of those due sooner in the appeals queue. Nor its SLA clock's
        # start (the item's arrival, its escalation): the appeal's SLA is owed from its filing.
        features = {k: v for k, v in (orig_meta.get("features") or {"risk": 0.0, "label": current["label"],
                                                                  "score": 0.0}).items() if k not in _NOT_CARRIED}
        features.update(severity=tier, escalation=None)
        due = now + dt.timedelta(minutes=config.appeal_sla_minutes)
        priority, why, terms = score_features(taxonomy, features, config, now, due, now)
        packet = {
            "appellant": appellant, "reason": reason.strip(), "filed_at": now.isoformat(),
            "decision": {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in current.items()},
            "evidence": {"model_scores": orig_meta.get("scores") or (dict(item["scores"]) if item else None),
                         "campaign_id": (orig or {}).get("campaign_id") or orig_meta.get("member_of_campaign"),
                         "priority_reason": (orig or {}).get("priority_reason"),
                         "escalation_reason": (orig or {}).get("escalation_reason"),
                         "original_queue": (orig or {}).get("queue")},
        }
        case_id = int(conn.execute(insert(C).values(
            item_id=item_id, campaign_id=None, queue=config.appeals_queue, state="open", priority=priority,
            priority_reason=f"appeal of decision {current['id']}; {why}", severity=tier,
            predicted_label=(item or {}).get("label") if bulk else (orig or {}).get("predicted_label"),
            model_version=(item or {}).get("model_version") if bulk else (orig or {}).get("model_version"),
            due_at=due, is_audit=False, reopened_from=current["case_id"], created_at=now, updated_at=now,
            meta={"features": features, "terms": terms, "scores": orig_meta.get("scores") or {}, "appeal": packet},
        ).returning(C.c.id)).scalar_one())
        if orig is not None and orig["state"] == "decided" and orig["campaign_id"] is None:
            conn.execute(update(C).where(C.c.id == orig["id"]).values(state="appealed", updated_at=now))
        audit.record(conn, appellant, "appeal.file", "case", case_id,
                     {"item_id": item_id, "decision_id": current["id"], "reason": reason.strip()})
        return case_view(conn, case_id)


def _member_evidence(taxonomy: Taxonomy, pred: Optional[Mapping[str, Any]],
                     current: Mapping[str, Any]) -> dict[str, Any]:
    """The meta an appeal of one member of a campaign decision takes its evidence from: the member's
    own prediction of record (its scores, label, risk), not the campaign case's, whose scores are
    the members' average and whose size and growth would rank one item's appeal as a whole wave."""
    if pred is None or not isinstance(pred.get("scores"), Mapping):
        return {"features": {"risk": 0.0, "label": current["label"], "score": 0.0}, "scores": {}}
    scores = {k: float(v) for k, v in pred["scores"].items()}
    probs = np.array([scores.get(name, 0.0) for name in taxonomy.policies], dtype=float)
    risk = float(risk_scores(probs, label_harm_weights(taxonomy))[0])
    features = {"risk": round(risk, 6), "uncertainty": round(float(pred.get("uncertainty") or 0.0), 6),
                "label": pred.get("label"), "score": round(float(pred.get("score") or 0.0), 6)}
    return {"features": features, "scores": scores}


def resolve_appeal(store: Store, taxonomy: Taxonomy, case_id: int, analyst: Actor, outcome: str,
                   rationale: str, label: Optional[str] = None, action: Optional[str] = None,
                   severity: Optional[str] = None, policy_ref: Optional[str] = None,
                   now: Optional[dt.datetime] = None, *, config: QueueConfig,
                   seen_decision: Optional[int] = None) -> dict[str, Any]:
    """Confirm or reverse the item's current decision; either way a new "appeal" decision supersedes it.

    A reversal (the appeal is upheld) defaults to the benign label and its default action, and
    must change the label or the action. Needs `resolve_appeal`; nobody who made one of the item's
    decisions (not undone) resolves its appeal (separation of duties). `seen_decision`: the id of
    the decision the resolver was shown as current (the Appeals tab's); when the item's current
    decision is another one now (a correction, or a decision on another of its cases, since), nothing
    is saved: a confirmation would confirm a label they never read.
    """
    if rationale is not None and not isinstance(rationale, str):
        raise DecisionError(f"a rationale must be text, not {type(rationale).__name__}")
    if outcome not in OUTCOMES:
        raise DecisionError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if not stated(rationale):
        raise DecisionError("resolving an appeal needs a rationale")
    if (bad := free_text_error(rationale, "a rationale")) is not None:
        raise DecisionError(bad)
    asked, now = now, now or utcnow()
    check_permission(analyst, "resolve_appeal", f"case {case_id}")
    analyst = actor_name(analyst)
    with store.begin() as conn:
        # The item's decision lock before any case row, in the order every writer takes them (an
        # undo of the appealed decision takes the item's, then that case's row: no deadlock).
        item_id = conn.execute(select(C.c.item_id).where(C.c.id == case_id)).scalar()
        if item_id:
            lock_item_decisions(conn, item_id)  # a correction at the same time waits, or is waited for
        case = lock_case(conn, case_id)
        if not _is_appeal(case, config):  # escalated before escalating appeals was refused: still one
            raise DecisionError(f"case {case_id} is not an appeal (queue {case['queue']})")
        check_actionable(case, analyst, lease_clock(conn, asked))
        current = current_decisions(conn, [case["item_id"]]).get(case["item_id"])
        if current is None:
            raise DecisionError(f"item {case['item_id']!r} has no decision any more")
        if seen_decision is not None and current["id"] != seen_decision:
            raise DecisionError(f"the decision on item {case['item_id']!r} changed since the appeal was shown "
                                f"(decision {seen_decision} then, {current['id']} by {current['reviewer']} now): "
                                "nothing was saved; Refresh appeals and read it again")
        _check_not_decider(conn, case, current, analyst)
        if outcome == "confirm":
            label, action = current["label"], current["action"]
            severity, policy_ref = current["severity"], current["policy_ref"]
        else:
            label = label or taxonomy.benign_label
            action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
            if label == current["label"] and action == current["action"]:
                raise DecisionError(f"a reversal must change the label or the action (both are {label}/{action})")
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
        _appeal_event(conn, new_id, case_id=case_id, outcome=outcome)
        audit.record(conn, analyst, "appeal.resolve", "case", case_id,
                     {"outcome": outcome, "decision_id": new_id, "supersedes": current["id"],
                      "from": [current["label"], current["action"]], "to": [label, action],
                      "rationale": rationale.strip(), "bound": audit.bind(conn, [new_id])})
        view = case_view(conn, case_id)
    view.update(decision_id=new_id, outcome=outcome, upheld=outcome == "reverse")
    decision_recorded([new_id], view, analyst, "appeal", label, action)
    return view


def _appeal_event(conn: Any, decision_id: int, **context: Any) -> Optional[str]:
    """The `appeal.resolved` event of the appeal decision `decision_id`, naming its item only
    (`core.event_scope.item_scoped`): `outbox.decision_event` lists each decision's campaign id as its own, and for
    a member of a campaign decision that read as the campaign's appeal. Same key, fields and rules
    (`outbox.enforces`) as `decision_event`; the stored decision row keeps its campaign id."""
    cols = [D.c[f] for f in outbox.DECISION_FIELDS]
    row = conn.execute(select(*cols).where(D.c.id == decision_id)).mappings().one()
    if not outbox.enforces(row["kind"]):
        return None
    dec = {k: (v.isoformat() if isinstance(v, (dt.datetime, dt.date)) else v) for k, v in row.items()}
    payload = item_scoped({**context, "upheld": context.get("outcome") == "reverse",
                           "scope": "item", "decision_count": 1, "decisions": [dec]})
    return outbox.enqueue(conn, "appeal.resolved", payload, f"appeal.resolved:{decision_id}")


def _check_not_decider(conn: Any, case: Mapping[str, Any], current: Mapping[str, Any], analyst: str) -> None:
    """Nobody resolves an appeal on an item they decided: not the appealed decision's reviewer, not
    the current one's (a lead's correction since), nor any other reviewer of a decision not undone;
    nor its appellant (a lead filing for a user, or an account that is both), who would judge their own claim."""
    packet = (case["meta"] or {}).get("appeal") or {}
    if packet.get("appellant") == analyst:  # the appellant's side never judges its own appeal
        raise DecisionError(f"{analyst} filed appeal case {case['id']}: an appeal is resolved by someone else "
                            f"(separation of duties)")
    appealed = packet.get("decision") or {}
    for which, dec in (("appealed", appealed), ("current", current)):
        if dec.get("reviewer") == analyst:
            raise DecisionError(f"{analyst} made the {which} decision {dec.get('id')}: an appeal is resolved by "
                                f"someone else (separation of duties)")
    deciders = set(conn.execute(select(D.c.reviewer).where(D.c.item_id == case["item_id"], _not_undone())).scalars())
    if analyst in deciders:
        raise DecisionError(f"{analyst} decided item {case['item_id']!r} before: an appeal is resolved by someone "
                            f"who made none of its decisions (separation of duties)")


def open_appeals(store: Store, settings: ReviewSettings, *, config: QueueConfig, principal: Optional[Actor] = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    """Waiting appeals, oldest due first, each with the appealed decision (who, when, label,
    action, rationale), the item's decision now if another since (`current`: a correction), the
    appellant's reason, and the item's text through the masking rule: what a lead reads side by
    side before `resolve_appeal`. While the text is masked for `principal` (not revealed by them,
    or no `reveal`; None: nobody), so are the reason and the rationales, which quote it as
    `masking.mask_packet` says. Masked when the case's own rule says so (`packets.case_masked`:
    the scores of record, the source label, the label decided now, as the Review screen masks it)
    or the appeal's evidence does (the scores and the label appealed)."""
    I = Item.__table__
    with store.read() as conn:
        rows = conn.execute(select(C, I.c.text, I.c.policy_label)
                            .join(I, I.c.id == C.c.item_id)
                            .where(C.c.queue == config.appeals_queue, C.c.state.in_(("open", "claimed")))
                            .order_by(C.c.due_at, C.c.id).limit(limit)).mappings().all()
        current = current_decisions(conn, [r["item_id"] for r in rows])
        viewer = actor_name(principal) if principal is not None and may_reveal(principal) else None
        revealed = {r["id"] for r in rows if viewer and was_revealed(conn, r["id"], r["item_id"], viewer)}
        own_rule = {r["id"] for r in rows if r["id"] not in revealed and case_masked(
            conn, r, {"id": r["item_id"], "policy_label": r["policy_label"]}, settings)}
        namer = store_namer(store, conn, principal) if principal is not None else (lambda name: name)  # a lead's
    out = []
    for r in rows:
        packet = dict((r["meta"] or {}).get("appeal") or {})
        now_current = current.get(r["item_id"]) or {}
        hide = r["id"] not in revealed and (r["id"] in own_rule or is_sensitive(
            settings, (packet.get("evidence") or {}).get("model_scores"), r["policy_label"],
            (packet.get("decision") or {}).get("label")))
        decision = name_reviewers(mask_fields([dict(packet.get("decision") or {})], ("rationale",), hide), namer)[0]
        still = now_current.get("id") == decision.get("id")
        now = None if still or not now_current else name_reviewers(mask_fields([{
            k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in now_current.items()
            if k in ("id", "kind", "reviewer", "label", "action", "rationale", "created_at")}], ("rationale",), hide),
            namer)[0]
        out.append({"case_id": r["id"], "item_id": r["item_id"], "state": r["state"], "claimed_by": r["claimed_by"],
                    "due_at": r["due_at"].isoformat() if r["due_at"] else None, "appellant": packet.get("appellant"),
                    "reason": mask_fields([packet], ("reason",), hide)[0].get("reason"),
                    "filed_at": packet.get("filed_at"), "decision": decision, "still_current": still,
                    "current": now, "current_id": now_current.get("id"),
                    "text": mask_text(r["text"]) if hide else r["text"], "masked": hide})
    return out
