"""Human decisions on cases: decide, bulk-decide a campaign, correct.

A decision is validated against the taxonomy (the action must be allowed for the policy; a
rationale is required to override the model or on an escalated case), records the model's
version, label and score as the analyst saw them, closes the case and writes the audit event,
all in one write transaction. Decisions are append-only (database triggers refuse UPDATE and
DELETE): a correction or an appeal outcome is a new row that names the one it supersedes.

Appeals (`labeling.appeals`) reuse the validation and recording helpers of this module.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any, Iterable, Mapping, Optional

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from core import audit, outbox
from core.hooks import check_permission, decision_recorded
from core.labels import current_decisions, lock_item_decisions
from core.predictions import predictions_of_record
from core.principals import Actor, actor_name
from core.schema import CampaignMember, Case, Decision, Prediction
from core.store import Store
from core.text import free_text_error, stated
from core.taxonomy import Taxonomy

from .appeal_holds import check_no_waiting_appeal, closes_behind_appeal, writes_label_of_record
from .bulk_counts import held_by_other, plan_counts
from .cases import case_view, inactive_campaign, suggestion
from .claims import (_now, check_actionable, check_holder, claims_of, exclude_calibration_siblings, lease_clock,
                     lock_case)
from .errors import DecisionError
from .four_eyes import refuse_own_escalation
from .queue_config import QueueConfig
from .rereview import same_verdict

EXISTING = ("supersede", "skip")  # what a campaign decision does to members a human already decided
_CHUNK = 900  # stay under SQLite's bound-parameter limit
# A policy reference names a policy ("TS-HATE-3.1", "cg/hate#3"): it is shown in the lead's
# Markdown and the panels' HTML, so letters, digits, space and . _ - / # : only, no link.
POLICY_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/#:-]{0,99}")
C = Case.__table__
CM = CampaignMember.__table__
D = Decision.__table__
P = Prediction.__table__

def _not_undone() -> Any:
    """Decisions not taken back with `u` (labeling.undo): an undone decision and its "undo" row
    count neither for separation of duties nor as a calibration answer."""
    undo = aliased(D)
    return and_(D.c.kind != "undo", ~exists().where(undo.c.supersedes_id == D.c.id, undo.c.kind == "undo"))


def _check_text(**fields: Any) -> None:
    """DecisionError naming the first field given something other than text: a list or a number
    from a hostile caller failed deep inside (an unhashable label, `.strip()` of a rationale) as a
    TypeError, not as a refusal."""
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise DecisionError(f"{name} must be text, not {type(value).__name__}")


def _validate(taxonomy: Taxonomy, label: str, action: Optional[str], severity: Optional[str],
              policy_ref: Optional[str]) -> tuple[str, Optional[str], str]:
    """(action, severity, policy_ref) with the policy's defaults filled in; DecisionError when invalid."""
    _check_text(label=label, action=action, severity=severity, policy_ref=policy_ref)
    if label not in taxonomy.policies:
        raise DecisionError(f"unknown policy label {label!r} (known: {', '.join(taxonomy.policies)})")
    pol = taxonomy.policies[label]
    action = action or pol.default_action
    try:
        taxonomy.check_decision(label, action)
    except ValueError as exc:
        raise DecisionError(str(exc)) from None
    if severity is not None and severity not in taxonomy.severities:
        raise DecisionError(f"unknown severity {severity!r} (known: {', '.join(taxonomy.severities)})")
    policy_ref = (policy_ref or "").strip()
    if policy_ref and (not POLICY_REF.fullmatch(policy_ref) or "://" in policy_ref):
        raise DecisionError("policy_ref must be up to 100 letters, digits, spaces and . _ - / # : (like "
                            f"{pol.policy_ref!r}), not a link or markup")
    return action, severity if severity is not None else pol.severity, policy_ref or pol.policy_ref


def _model_seen(conn: Connection, case: Mapping[str, Any]) -> tuple[Optional[str], Optional[str], Optional[float]]:
    """The model version, label and score the analyst was shown with the case (`suggestion`)."""
    seen = suggestion(conn, case)
    if seen is None:
        return None, None, None
    score = seen["score"]
    return seen["model_version"], seen["label"], None if score is None else float(score)


def _check_seen(case_id: int, seen: Optional[Mapping[str, Any]], version: Optional[str],
                label: Optional[str]) -> None:
    """DecisionError when the model's suggestion changed since the screen showed `seen` (None: no
    check): a rescore between showing and saving made a plain confirm an override needing a
    rationale, and recorded a model label the analyst never saw."""
    if seen is None:
        return
    shown = (seen.get("model_version"), seen.get("label")) if seen else (None, None)
    if shown != (version, label):
        def say(v: Optional[str], lab: Optional[str]) -> str:
            return f"{lab} ({v})" if lab else "no suggestion"
        raise DecisionError(f"case {case_id} was rescored since it was shown: the model now suggests "
                            f"{say(version, label)}, not {say(*shown)}; nothing was saved, reload the case")


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


def _is_appeal(case: Mapping[str, Any], config: QueueConfig) -> bool:
    """An appeal case, wherever it waits: only `resolve_appeal` settles it (that permission, and
    never by whoever made the appealed decision), so no other path may decide or close it.
    `_bulk_plan`'s test in SQL, for a campaign's members: `bulk_counts.appeal_case` (change both)."""
    meta = case["meta"] or {}
    return case["queue"] == config.appeals_queue or bool(meta.get("appeal")) \
        or meta.get("escalated_from") == config.appeals_queue


def _ordinary_member_case(case: Mapping[str, Any], config: QueueConfig) -> bool:
    """A member's own review case, which a campaign decision closes. An appeal, a QA audit, a
    calibration copy or a label-error re-review asks something else of its reviewer, and stays open."""
    meta = case["meta"] or {}
    return not (case["is_audit"] or case["calibration_set"] or _is_appeal(case, config) or meta.get("label_error"))


def lock_member_decisions(conn: Connection, item_ids: Iterable[str]) -> None:
    """Hold the decision lock (`lock_item_decisions`) of each item, in sorted order, so a campaign
    decision (or its undo) does not supersede a member's decision that a correction, an appeal's
    outcome or an undo is superseding meanwhile; sorted, two such writers cannot deadlock.
    Take it after the campaign case's row lock, before reading the members' current decisions."""
    for item_id in sorted(set(item_ids)):
        lock_item_decisions(conn, item_id)


def _close(conn: Connection, case_id: int, analyst: Actor, now: dt.datetime, meta: Optional[dict[str, Any]] = None) -> None:
    values: dict[str, Any] = dict(state="decided", resolved_at=now, claimed_by=actor_name(analyst), lease_expires_at=None,
                                  first_action_at=func.coalesce(C.c.first_action_at, now), updated_at=now)
    if meta is not None:
        values["meta"] = meta
    conn.execute(update(C).where(C.c.id == case_id).values(**values))


def _insert_decision(conn: Connection, **row: Any) -> int:
    return int(conn.execute(insert(D).values(**row).returning(D.c.id)).scalar_one())


def decide(store: Store, taxonomy: Taxonomy, case_id: int, analyst: Actor, label: str,
           action: Optional[str] = None, severity: Optional[str] = None, policy_ref: Optional[str] = None,
           rationale: Optional[str] = None, kind: str = "review", now: Optional[dt.datetime] = None,
           *, config: QueueConfig, existing: Optional[str] = None, holder_only: bool = False,
           seen: Optional[Mapping[str, Any]] = None,
           members: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """Decide a case (one transaction): validate, record what the model said, close, audit.

    `action` defaults to the policy's default action (a one-key confirm). The kind follows the
    case: QA audit, calibration copy, escalation, or "bulk" for a campaign case, which writes one
    decision per member item and closes the members' own waiting cases (`bulk_preview` shows
    the effect first). A member whose own case another analyst holds is left out, and so is one
    whose label is an appeal's outcome or who has an appeal pending (only an appeal settles it); a
    member that already has a human decision gets one superseding it (`existing="supersede"`,
    counted as rework) or is left out (`existing="skip"`). Left None, `existing` is "skip" on a
    campaign decided before (its new case is for the members that joined since), else "supersede".

    Permissions (configs/roles.yaml): `decide`; a campaign case also `bulk`; a QA-audit case of an
    item that already has a human decision also `qa_review`, and never by whoever made one of
    that item's decisions (separation of duties); such a re-review supersedes the item's decision
    of record and is sent as `decision.corrected` only when it changes the label or the action. A
    case of the label-error re-review queue is decided as that re-review (`_label_review`: a
    correction or a confirmation, `qa_review`). Any answer that would be the item's label of record
    is refused while the item's appeal waits, and once it is resolved such a case closes without a
    decision, its answer refused in one line (`labeling.appeal_holds`: the appeal's outcome stands).

    `holder_only` (the Review screen): only a case `analyst` still holds on a live lease, checked
    under the case's lock (`claims.check_holder`); otherwise a waiting or lapsed case is decided too.
    `seen` (a screen): the suggestion it showed (the packet's `prediction`, `{}` for none); a
    rescore since then refuses the decision (`_check_seen`), so it is never judged, or recorded,
    against a model answer the analyst did not see. `members` (a campaign case, a screen): the
    members its preview listed; if the campaign's members differ under the decision's locks,
    nothing is saved (a member joining between the check and the save was labelled unseen).
    """
    if existing is not None and existing not in EXISTING:
        raise DecisionError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}")
    asked, now = now, _now(now)  # the decision's stamps; leases are compared in the store's time
    _check_text(label=label, action=action, severity=severity, policy_ref=policy_ref, rationale=rationale)
    rationale = stated(rationale)
    if (too_long := free_text_error(rationale, "a rationale")) is not None:
        raise DecisionError(too_long)
    given = (bool(action), severity is not None, bool((policy_ref or "").strip()))  # not the policy's defaults
    action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
    check_permission(analyst, "decide", f"case {case_id}")
    principal, analyst = analyst, actor_name(analyst)
    with store.begin() as conn:
        claims_of(conn, analyst)  # before any lock: a calibration copy writes its siblings off for them
        item = conn.execute(select(C.c.item_id).where(C.c.id == case_id, C.c.campaign_id.is_(None))).scalar()
        if item:  # the item's lock before the case row, as every writer takes them: a re-review supersedes
            lock_item_decisions(conn, item)
        case = lock_case(conn, case_id)
        clock = lease_clock(conn, asked)
        if holder_only:
            check_holder(conn, case, analyst, clock)
        if _is_appeal(case, config):
            raise DecisionError(f"case {case_id} is an appeal: a lead resolves it (Appeals tab, or "
                                f"`workbench appeals resolve`)")
        check_actionable(case, analyst, clock)
        refuse_own_escalation(case, analyst, config, DecisionError)  # four eyes, under the case's lock
        rereview = _label_error(case, config) is not None or _decision_kind(case, config, kind) == "qa_audit"
        if rereview or writes_label_of_record(case):  # its answer would be the label of record
            check_no_waiting_appeal(conn, config, case["item_id"], "re-review" if rereview else "case")
        behind = closes_behind_appeal(conn, case, principal, now, "qa_review" if rereview else None) \
            if writes_label_of_record(case) and _label_error(case, config) is None else None
        review = None if behind else _label_review(conn, taxonomy, case, config, principal, label, action, severity,
                                                   policy_ref, rationale, now, given)
        if behind:  # closed without a decision: the appeal's outcome stands (`labeling.appeal_holds`)
            pass
        elif review is not None:  # a re-review of a suspected label error: a correction or a confirmation
            view = case_view(conn, case_id, with_history=False)
        else:
            kind = _decision_kind(case, config, kind)
            if kind == "bulk":
                check_permission(principal, "bulk", f"campaign {case['campaign_id']} (case {case_id})")
            elif kind == "qa_audit":
                _check_qa_review(conn, principal, case)
            if kind == "calibration":
                twice = conn.execute(select(D.c.id).join(C, C.c.id == D.c.case_id).where(
                    D.c.item_id == case["item_id"], D.c.reviewer == analyst, D.c.kind == "calibration",
                    C.c.calibration_set.is_not(None), _not_undone())).first()  # any set: one blind answer
                if twice is not None:
                    raise DecisionError(f"{analyst} already answered item {case['item_id']!r} in a calibration set "
                                        f"(now {case['calibration_set']!r}); agreement needs different analysts")
                exclude_calibration_siblings(conn, case_id, case["item_id"], case["calibration_set"], analyst, now)
            version, model_label, model_score = _model_seen(conn, case)
            _check_seen(case_id, seen, version, model_label)
            override = model_label is not None and label != model_label
            if override and not rationale:
                raise DecisionError(f"a rationale is required to override the model's label ({model_label} -> {label})")
            if (case["state"] == "escalated" or case["queue"] == config.escalation_queue) and not rationale:
                raise DecisionError(f"case {case_id} is escalated: a rationale is required (say why)")
            common = dict(case_id=case_id, reviewer=analyst, kind=kind, label=label, action=action, severity=severity,
                          policy_ref=policy_ref, rationale=rationale, taxonomy_version=taxonomy.version, created_at=now)
            ids: list[int] = []
            closed_members: list[int] = []
            bulk: dict[str, Any] = {}
            # A QA audit of a decided item re-reviews its decision of record: the answer supersedes it.
            reviewed = current_decisions(conn, [case["item_id"]]).get(case["item_id"]) \
                if kind == "qa_audit" and case["item_id"] else None
            if case["campaign_id"] is not None:
                ids, closed_members, bulk = _bulk(conn, config, case, analyst, common, now, existing,
                                                  None if members is None else set(members), clock)
            else:
                ids.append(_insert_decision(conn, item_id=case["item_id"], model_version=version,
                                            model_label=model_label, model_score=model_score, is_override=override,
                                            supersedes_id=reviewed["id"] if reviewed else None, **common))
            _close(conn, case_id, analyst, now)
            if reviewed is None:
                outbox.decision_event(conn, "campaign.decided" if case["campaign_id"] is not None
                                      else "decision.created", ids, case_id=case_id, campaign_id=case["campaign_id"],
                                      queue=case["queue"])
            elif not same_verdict(common, reviewed):  # an agreeing re-review changes nothing the platform enforces
                outbox.decision_event(conn, "decision.corrected", ids, case_id=case_id, corrects=reviewed["id"],
                                      queue=case["queue"])
            audit.record(conn, analyst, "decision.create", "case", case_id,
                         {"decisions": ids if len(ids) <= 50 else {"count": len(ids), "first": ids[0], "last": ids[-1]},
                          **({"supersedes": reviewed["id"]} if reviewed else {}),
                          "kind": kind, "label": label, "action": action, "severity": severity,
                          "model_label": model_label, "model_score": model_score, "is_override": override,
                          "rationale": rationale, "closed_member_cases": len(closed_members),
                          "bound": audit.bind(conn, ids),
                          **({"bulk": {k: len(v) if isinstance(v, list) else v for k, v in bulk.items()}} if bulk else {})})
            view = case_view(conn, case_id, with_history=False)
    if behind:
        raise DecisionError(behind)  # after the commit: the case stays closed
    if review is not None:
        ids = [review["correction_id"]] if review["correction_id"] else []
        view.update(decision_ids=ids, kind="label_review", is_override=False, closed_member_cases=[], bulk={},
                    label_review=review)
        if ids:
            decision_recorded(ids, {"id": review["reviewed_case_id"], "item_id": case["item_id"], "campaign_id": None},
                              analyst, review["kind"], label, review["action"])
        return view
    view.update(decision_ids=ids, kind=kind, is_override=override, closed_member_cases=closed_members, bulk=bulk)
    decision_recorded(ids, view, analyst, kind, label, action)
    return view


def _check_qa_review(conn: Connection, principal: Actor, case: Mapping[str, Any]) -> None:
    """A QA-audit case of an already decided item is a re-review: `qa_review`, and not of one's own."""
    reviewers = set(conn.execute(select(D.c.reviewer).where(D.c.item_id == case["item_id"], _not_undone())).scalars())
    if not reviewers:
        return
    who = actor_name(principal)
    if who in reviewers:
        raise DecisionError(f"{who} decided item {case['item_id']!r} before: a QA review of one's own "
                            f"decision is not allowed (separation of duties)")
    check_permission(principal, "qa_review", f"case {case['id']}")


def _default_existing(conn: Connection, case: Mapping[str, Any]) -> str:
    """"skip" when the campaign had a campaign decision before (this case is for the members that
    joined since, `labeling.cases._joined_undecided`), else "supersede"."""
    before = conn.execute(select(D.c.id).where(D.c.campaign_id == case["campaign_id"], D.c.kind == "bulk",
                                               D.c.case_id != case["id"]).limit(1)).scalar()
    return "skip" if before is not None else "supersede"


def _check_campaign(conn: Connection, case: Mapping[str, Any], members: Optional[int] = None) -> None:
    """DecisionError: the campaign of `case` merged into another, or (`members` counted) has none."""
    if members is None and (status := inactive_campaign(conn, case["campaign_id"])) is not None:
        raise DecisionError(f"campaign {case['campaign_id']} of case {case['id']} is {status}: its members "
                            f"joined another campaign, decide that campaign's case instead")
    if members == 0:
        raise DecisionError(f"campaign {case['campaign_id']} of case {case['id']} has no members")


def _bulk_plan(conn: Connection, case: Mapping[str, Any], analyst: str, now: dt.datetime,
               existing: Optional[str] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Who a campaign decision touches, one count for `_bulk` and `bulk_preview`: members; those
    left out for an appeal (an appeal's outcome, or one pending), then those held by another
    analyst, then those decided when `existing` is "skip"; `targets` get a decision, and `decided`
    holds the current decisions among them (superseded). `now`: the lease clock (`claims.lease_clock`)."""
    _check_campaign(conn, case)
    members = conn.execute(select(CM.c.item_id).where(CM.c.campaign_id == case["campaign_id"])
                           .order_by(CM.c.item_id)).scalars().all()
    _check_campaign(conn, case, len(members))
    existing = existing or _default_existing(conn, case)
    decided = current_decisions(conn, members)
    appeal = {m for m, d in decided.items() if d["kind"] == "appeal"}
    held: dict[str, str] = {}
    for start in range(0, len(members), _CHUNK):
        chunk = members[start:start + _CHUNK]
        appeal |= {r["item_id"] for r in conn.execute(select(C.c.item_id, C.c.queue, C.c.meta).where(
            C.c.item_id.in_(chunk), C.c.campaign_id.is_(None), C.c.state.in_(("open", "escalated", "claimed"))
        )).mappings() if (r["meta"] or {}).get("appeal") or (config is not None and _is_appeal(r, config))}
        for item_id, holder in conn.execute(select(C.c.item_id, C.c.claimed_by).where(
                C.c.item_id.in_(chunk), held_by_other(analyst, now))):  # the rule `bulk_counts` counts
            held[item_id] = holder
    held = {m: who for m, who in held.items() if m not in appeal}
    left = [m for m in members if m not in appeal and m not in held]
    skipped_decided = sorted(m for m in left if m in decided) if existing == "skip" else []
    targets = [m for m in left if m not in skipped_decided]
    return {"members": list(members), "appeal": sorted(appeal), "held": held, "existing": existing,
            "skipped_decided": skipped_decided, "targets": targets,
            "decided": {m: decided[m] for m in targets if m in decided}}


def bulk_preview(store: Store, case_id: int, analyst: Actor, now: Optional[dt.datetime] = None,
                 existing: Optional[str] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """What deciding a campaign case would do, counted as `decide` counts it: members, those left
    out (`skipped_appeal`, `held_by_others`, `skipped_decided`, each member named), how many get a
    decision (`will_decide`), how many of those supersede a human decision (`already_decided`,
    with those decisions' labels). `existing` as in `decide` (`existing` in the result: what None
    means for this case). Every member is planned: a page view asks `bulk_counts`."""
    return _preview(store, case_id, analyst, now, existing, config, False)


def bulk_counts(store: Store, case_id: int, analyst: Actor, now: Optional[dt.datetime] = None,
                existing: Optional[str] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """`bulk_preview` with counts for its lists, asked of the store (`bulk_counts.plan_counts`): for a
    page view, which planned every member (100,000 for one scam wave); `decide` plans under its locks."""
    return _preview(store, case_id, analyst, now, existing, config, True)


def _preview(store: Store, case_id: int, analyst: Actor, now: Optional[dt.datetime], existing: Optional[str],
             config: Optional[QueueConfig], counted: bool) -> dict[str, Any]:
    if existing is not None and existing not in EXISTING:
        raise DecisionError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}")
    analyst = actor_name(analyst)
    with store.read() as conn:
        now = lease_clock(conn, now)
        case = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
        if case is None:
            raise DecisionError(f"no case {case_id}")
        if case["campaign_id"] is None:
            return {"case_id": case_id, "campaign_id": None, "members": 1, "held_by_others": 0 if counted else {},
                    "skipped_appeal": 0 if counted else [], "skipped_decided": 0 if counted else [],
                    "will_decide": 1, "existing": existing, "already_decided": 0, "already_decided_labels": {}}
        if counted:  # the plan's checks, then its counts
            _check_campaign(conn, case)
            out = plan_counts(conn, case["campaign_id"], analyst, now, existing or _default_existing(conn, case),
                              config)
            _check_campaign(conn, case, out["members"])
            return {"case_id": case_id, "campaign_id": case["campaign_id"], **out}
        plan = _bulk_plan(conn, case, analyst, now, existing, config)
    labels = dict(Counter(d["label"] for d in plan["decided"].values()))
    return {"case_id": case_id, "campaign_id": case["campaign_id"], "members": len(plan["members"]),
            "held_by_others": dict(plan["held"]), "skipped_appeal": plan["appeal"],
            "skipped_decided": plan["skipped_decided"], "will_decide": len(plan["targets"]),
            "existing": plan["existing"], "already_decided": len(plan["decided"]), "already_decided_labels": labels}


def _bulk(conn: Connection, config: QueueConfig, case: Mapping[str, Any], analyst: str, common: dict[str, Any],
          now: dt.datetime, existing: Optional[str],
          expected: Optional[set[str]] = None,
          clock: Optional[dt.datetime] = None) -> tuple[list[int], list[int], dict[str, Any]]:
    """One decision per member of the campaign (its own model prediction recorded); close member cases.

    Who is left out is `_bulk_plan`'s (appeals, held by others, decided with `existing="skip"`);
    the others with a human decision get one that supersedes it. Only members' ordinary review
    cases close (`_ordinary_member_case`). `clock`: the leases' (`claims.lease_clock`), else `now`.
    """
    clock = now if clock is None else clock
    now_members = conn.execute(select(CM.c.item_id).where(CM.c.campaign_id == case["campaign_id"])).scalars().all()
    lock_member_decisions(conn, now_members)
    if expected is not None and set(now_members) != expected:
        raise DecisionError(f"campaign {case['campaign_id']} changed since it was previewed ({len(expected)} members "
                            f"then, {len(now_members)} now): nothing was saved; show it again")
    plan = _bulk_plan(conn, case, analyst, clock, existing, config)
    held, decided, targets = plan["held"], plan["decided"], plan["targets"]
    preds = predictions_of_record(conn, targets)
    rows = []
    for item_id in targets:
        p = preds.get(item_id)
        before = decided.get(item_id)
        rows.append(dict(common, item_id=item_id, campaign_id=case["campaign_id"],
                         model_version=p["model_version"] if p else None, model_label=p["label"] if p else None,
                         model_score=float(p["score"]) if p else None,
                         is_override=bool(p is not None and p["label"] != common["label"]),
                         supersedes_id=before["id"] if before else None))
    ids = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), rows).scalars().all() if rows else []
    waiting: list[int] = []
    for start in range(0, len(targets), _CHUNK):
        waiting += [r["id"] for r in conn.execute(select(
            C.c.id, C.c.queue, C.c.is_audit, C.c.calibration_set, C.c.meta).where(
            C.c.item_id.in_(targets[start:start + _CHUNK]), C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
            C.c.state.in_(("open", "escalated", "claimed")), C.c.id != case["id"])).mappings()
            if _ordinary_member_case(r, config)]
    if waiting:
        # Claims do not wait for this transaction: on PostgreSQL a member case another analyst
        # claimed since `_bulk_plan` read them stays theirs (their decision, later, is the latest).
        free = or_(C.c.state != "claimed", C.c.claimed_by == analyst, C.c.lease_expires_at <= clock)
        waiting = conn.execute(update(C).where(C.c.id.in_(waiting), free).values(
            state="decided", resolved_at=now, lease_expires_at=None, updated_at=now,
            first_action_at=func.coalesce(C.c.first_action_at, now)).returning(C.c.id)).scalars().all()
    info = {"skipped_held": sorted(held), "skipped_appeal": plan["appeal"],
            "superseded": sum(1 for r in rows if r["supersedes_id"]), "skipped_decided": plan["skipped_decided"],
            "existing": plan["existing"]}
    return list(ids), list(waiting), info


def _supersede(conn: Connection, taxonomy: Taxonomy, old: Mapping[str, Any], analyst: str, label: str, action: str,
               severity: Optional[str], policy_ref: str, rationale: str, now: dt.datetime,
               **details: Any) -> int:
    """Insert the correction of `old` (same case, item and model fields; it supersedes `old`), its
    outbox event and audit event; the new decision's id."""
    new_id = _insert_decision(
        conn, case_id=old["case_id"], item_id=old["item_id"], campaign_id=old["campaign_id"], reviewer=analyst,
        kind=old["kind"], label=label, action=action, severity=severity, policy_ref=policy_ref,
        rationale=rationale, model_version=old["model_version"], model_label=old["model_label"],
        model_score=old["model_score"], is_override=old["model_label"] is not None and label != old["model_label"],
        taxonomy_version=taxonomy.version, supersedes_id=old["id"], created_at=now)
    outbox.decision_event(conn, "decision.corrected", [new_id], case_id=old["case_id"], corrects=old["id"])
    audit.record(conn, analyst, "decision.correct", "decision", new_id,
                 {"supersedes": old["id"], "from": [old["label"], old["action"]], "to": [label, action],
                  "rationale": rationale, "bound": audit.bind(conn, [new_id]), **details})
    return new_id


def _label_error(case: Mapping[str, Any], config: QueueConfig) -> Optional[dict[str, Any]]:
    """The `label_error` record of a case of the label-error re-review queue (escalated from it
    included), None for any other case: the one test of "this case re-reviews a decision"."""
    meta = case.get("meta") or {}
    info = meta.get("label_error")
    home = case["queue"] if case["queue"] != config.escalation_queue else meta.get("escalated_from")
    if config.label_errors.queue is None or home != config.label_errors.queue or not info:
        return None
    return dict(info)


def decision_under_review(store: Store, case_id: int, config: QueueConfig) -> Optional[dict[str, Any]]:
    """The decision a label-review case re-reviews (id, reviewer, label, action, severity,
    policy_ref), which `decide` judges the lead's answer against: a screen fills its form with it,
    so that keeping everything confirms it. None for any other case (or a decision gone)."""
    with store.read() as conn:
        case = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
        info = None if case is None else _label_error(case, config)
        row = None if info is None else conn.execute(select(
            D.c.id, D.c.reviewer, D.c.label, D.c.action, D.c.severity, D.c.policy_ref).where(
            D.c.id == int(info["decision_id"]))).mappings().first()
    return None if row is None else dict(row)


def _label_review(conn: Connection, taxonomy: Taxonomy, case: Mapping[str, Any], config: QueueConfig,
                  principal: Actor, label: str, action: str, severity: Optional[str], policy_ref: str,
                  rationale: Optional[str], now: dt.datetime,
                  given: tuple[bool, bool, bool] = (True, True, True)) -> Optional[dict[str, Any]]:
    """Decide a case of the label-error re-review queue (`labeling.label_errors`) as that re-review.

    Why here: such a case asks whether an earlier decision was right, so an ordinary decision on
    it would add a second, unrelated label of record. Any change (label or action, and severity or
    policy reference where `given`: (action, severity, policy_ref) chosen, not defaulted) becomes a
    correction superseding it; with the same label what was not chosen stays the decision's, and
    nothing changed confirms it (no new decision); a decision superseded since the scan closes the
    case as `superseded` (the later decision stands). Needs
    `qa_review` and a rationale, and never by the analyst who made the decision under review
    (separation of duties). None for any other case (the ordinary path goes on)."""
    info = _label_error(case, config)
    if info is None:
        return None
    check_permission(principal, "qa_review", f"case {case['id']}")
    who = actor_name(principal)
    if not rationale:
        raise DecisionError(f"case {case['id']} re-reviews decision {info['decision_id']}: a rationale is required")
    old = conn.execute(select(D).where(D.c.id == int(info["decision_id"]))).mappings().first()
    if old is None:
        raise DecisionError(f"case {case['id']} re-reviews decision {info['decision_id']}, which does not exist")
    if old["reviewer"] == who:
        raise DecisionError(f"{who} made decision {old['id']}: re-reviewing one's own decision is not allowed "
                            f"(separation of duties)")
    if old["item_id"]:
        lock_item_decisions(conn, old["item_id"])
    newer = conn.execute(select(D.c.id).where(D.c.supersedes_id == old["id"])).scalar()
    if newer is not None:
        # Corrected, undone or reversed on appeal since the scan: the later decision stands, and
        # the case closes without a change (left open, it would be served again on every `n`).
        _close(conn, case["id"], who, now, dict(case["meta"] or {}, label_error=dict(
            info, outcome="superseded", superseded_by=int(newer), resolved_by=who)))
        audit.record(conn, who, "label_error.resolve", "case", case["id"],
                     {"decision": old["id"], "given": old["label"], "outcome": "superseded",
                      "superseded_by": int(newer), "rationale": rationale})
        return {"case_id": case["id"], "outcome": "superseded", "decision_id": int(old["id"]), "correction_id": None,
                "superseded_by": int(newer), "label": old["label"], "kind": old["kind"],
                "reviewed_case_id": old["case_id"]}
    if label == old["label"]:  # what the lead left unchosen stays as decided, not the policy's default
        action, severity, policy_ref = (new if chosen else old[k] for new, chosen, k in zip(
            (action, severity, policy_ref), given, ("action", "severity", "policy_ref")))
    fixed = None
    if (label, action, severity, policy_ref) != (old["label"], old["action"], old["severity"], old["policy_ref"]):
        fixed = _supersede(conn, taxonomy, old, who, label, action, severity, policy_ref, rationale, now,
                           label_review_case=case["id"])
    outcome = "corrected" if fixed else "confirmed"
    _close(conn, case["id"], who, now, dict(case["meta"] or {}, label_error=dict(
        info, outcome=outcome, resolved_by=who, resolved_label=label, correction_id=fixed)))
    audit.record(conn, who, "label_error.resolve", "case", case["id"],
                 {"decision": old["id"], "given": old["label"], "label": label, "action": action, "outcome": outcome,
                  "rationale": rationale, "correction": fixed})
    return {"case_id": case["id"], "outcome": outcome, "decision_id": int(old["id"]), "correction_id": fixed,
            "label": label, "action": action, "kind": old["kind"], "reviewed_case_id": old["case_id"]}


def correct(store: Store, taxonomy: Taxonomy, decision_id: int, analyst: Actor, label: str,
            rationale: str, action: Optional[str] = None, severity: Optional[str] = None,
            policy_ref: Optional[str] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Correct a decision: a new row superseding it (the old row stays, as the triggers demand).

    Needs `correct`, and `correct_others` for a decision someone else made. An "undo" row is no
    label, so it is refused (correct the item's decision of record, or re-decide the case)."""
    _check_text(rationale=rationale)
    reason = stated(rationale)
    if reason is None:
        raise DecisionError("a correction needs a rationale")
    if (too_long := free_text_error(reason, "a rationale")) is not None:
        raise DecisionError(too_long)
    now = _now(now)
    action, severity, policy_ref = _validate(taxonomy, label, action, severity, policy_ref)
    check_permission(analyst, "correct", f"decision {decision_id}")
    principal, analyst = analyst, actor_name(analyst)
    with store.begin() as conn:
        old = conn.execute(select(D).where(D.c.id == decision_id)).mappings().first()
        if old is None:
            raise DecisionError(f"no decision {decision_id}")
        if old["kind"] == "undo":
            raise DecisionError(f"decision {decision_id} is an undo of decision {old['supersedes_id']}, not a label: "
                                f"{_after_undo(conn, decision_id)}")
        if old["reviewer"] != analyst:
            check_permission(principal, "correct_others", f"decision {decision_id} of {old['reviewer']}")
        if old["item_id"]:
            lock_item_decisions(conn, old["item_id"])
        newer = conn.execute(select(D.c.id, D.c.kind).where(D.c.supersedes_id == decision_id)).first()
        if newer is not None and newer.kind == "undo":
            raise DecisionError(f"decision {decision_id} was undone (decision {newer.id}): "
                                f"{_after_undo(conn, newer.id)}")
        if newer is not None:
            raise DecisionError(f"decision {decision_id} was already superseded by {newer.id}; correct that one")
        new_id = _supersede(conn, taxonomy, old, analyst, label, action, severity, policy_ref, reason, now)
    decision_recorded([new_id], {"id": old["case_id"], "item_id": old["item_id"], "campaign_id": old["campaign_id"]},
                      analyst, old["kind"], label, action)
    return {"decision_id": new_id, "supersedes_id": decision_id, "label": label, "action": action}


def _after_undo(conn: Connection, undo_id: int) -> str:
    """What to do instead of correcting an undo row or what it took back: correct the decision it
    restored, else re-decide the case (or correct the item's decision of record)."""
    restored = conn.execute(select(D.c.id).where(D.c.supersedes_id == undo_id)).scalar()
    if restored is not None:
        return f"correct decision {restored}, the decision it restored"
    case_id = conn.execute(select(D.c.case_id).where(D.c.id == undo_id)).scalar()
    return f"re-decide case {case_id}, or correct the item's decision of record"
