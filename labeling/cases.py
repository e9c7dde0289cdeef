"""Cases: built from the scored items and campaigns, read back for the CLI, the UI and evaluation.

Every scored item (and every active campaign, as one case) becomes a case in the queue its
routing picks; `build_cases` is idempotent and re-plans waiting cases after a promotion. The
prediction a case carries is the prediction of record (`core.predictions`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import ColumnElement, Connection, and_, case as sql_case, exists, func, insert, select, update

from core import audit
from core.hooks import PermissionDenied, check_permission
from core.labels import current_decisions
from core.principals import SYSTEM, Actor, actor_name
from core.predictions import prediction_problem, predictions_of_record, record_ids
from core.schema import Campaign, CampaignMember, Case, Decision, Item, Prediction, utcnow
from core.store import Store, serialise
from core.taxonomy import Taxonomy

from .campaign_label import campaign_prediction
from .errors import QueueError
from .four_eyes import not_own_escalation, own_escalation
from .masking import mask_text
from .priority import PriorityError, label_harm_weights, score_features, utc_naive
from .replan import _held_by_escalation, _keep_seed, _merged_meta, _refresh_held
from .queue_config import QueueConfig
from .routing import Candidate, plan_case, route
from .sampling import calibration_copies

C = Case.__table__
P = Prediction.__table__
I = Item.__table__
CM = CampaignMember.__table__
CP = Campaign.__table__
D = Decision.__table__
# A campaign's status: "active" while its members are its own, "merged" once a clustering run
# moved them into another campaign (clustering.service), whose case decides them.
ACTIVE = "active"


def campaign_is_active() -> ColumnElement[bool]:
    """The one rule of a live campaign, over `campaigns`: its status is active. A merged campaign's
    members are another's, so its case is not built anew, claimed, decided, escalated or re-ranked
    (its waiting case is closed by the next clustering run)."""
    return CP.c.status == ACTIVE


def of_live_campaign() -> ColumnElement[bool]:
    """Over `cases`: an item case, or a case of an active campaign (`campaign_is_active`). A
    primary-key probe per case row read, so a claim still reads its index in order."""
    return ~exists(select(1).where(CP.c.id == C.c.campaign_id, ~campaign_is_active()))


def inactive_campaign(conn: Connection, campaign_id: Optional[int]) -> Optional[str]:
    """The status of campaign `campaign_id` when it is not active (`campaign_is_active`), for a
    refusal to name; None for an active campaign or no campaign."""
    if campaign_id is None:
        return None
    return conn.execute(select(CP.c.status).where(CP.c.id == campaign_id, ~campaign_is_active())).scalar()


def _reports(meta: Any) -> int:
    if isinstance(meta, dict):
        for key in ("reports", "report_count", "user_reports"):
            v = meta.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
    return 0


def _language(meta: Any) -> Optional[str]:
    if isinstance(meta, dict):
        v = meta.get("language") or meta.get("lang")
        return str(v) if v else None
    return None


def _campaign_growth(conn: Connection, config: QueueConfig, now: dt.datetime) -> dict[int, int]:
    since = now - dt.timedelta(hours=config.priority.growth_window_hours)
    rows = conn.execute(select(CM.c.campaign_id, func.count()).where(CM.c.added_at >= since)
                        .group_by(CM.c.campaign_id))
    return {int(cid): int(n) for cid, n in rows}


def unchanged(case_id: int, state: str, updated_at: Any) -> Any:
    """WHERE case `case_id` is still in `state` with the `updated_at` its writer read: the
    compare-and-swap of every writer that reads cases, then writes them (re-plans, refreshes,
    sweeps, seeds, learning pins). Claims and decisions do not wait for those writers' lock, so
    on PostgreSQL a case claimed in between must not be written back from the stale copy."""
    return and_(C.c.id == case_id, C.c.state == state, C.c.updated_at == updated_at)


def _lock_builds(conn: Connection) -> None:
    """Case builds and sweeps write one at a time (they read, plan, then insert)."""
    serialise(conn, "case-builds")


def _prediction_rows(conn: Connection, *extra: Any, where: Sequence[Any] = ()):  # type: ignore[no-untyped-def]
    """Latest prediction per item joined with the item and its campaign (plus `extra` columns)."""
    return (select(P.c.item_id, P.c.model_version, P.c.label, P.c.score, P.c.scores, P.c.uncertainty, P.c.flags,
                   I.c.text, I.c.surface, I.c.source, I.c["metadata"].label("meta"), I.c.ingested_at.label("arrived"),
                   CM.c.campaign_id, CP.c.size, *extra)
            .join(I, I.c.id == P.c.item_id)
            .outerjoin(CM, CM.c.item_id == P.c.item_id)
            .outerjoin(CP, CP.c.id == CM.c.campaign_id)
            .where(P.c.id.in_(record_ids(conn)), *where))


def _candidate(r: Any, growth: dict[int, int]) -> Candidate:
    size = int(r.size or 0)
    return Candidate(item_id=r.item_id, text=r.text, label=r.label, score=float(r.score),
                     scores=dict(r.scores or {}), uncertainty=float(r.uncertainty or 0.0),
                     model_version=r.model_version, campaign_id=r.campaign_id, surface=r.surface,
                     source=r.source, language=_language(r.meta), campaign_size=size,
                     campaign_growth=(growth.get(r.campaign_id, 0) / size) if size else 0.0,
                     reports=_reports(r.meta), flags=dict(r.flags or {}), arrived_at=_as_dt(r.arrived))


def _item_candidates(conn: Connection, now: dt.datetime, growth: dict[int, int],
                     item_ids: Optional[Sequence[str]] = None) -> Iterable[Candidate]:
    has_case = exists(select(1).where(C.c.item_id == P.c.item_id, C.c.campaign_id.is_(None)))
    where = [~has_case] + ([P.c.item_id.in_(list(item_ids))] if item_ids is not None else [])
    for r in conn.execute(_prediction_rows(conn, where=where).order_by(P.c.id)):
        yield _candidate(r, growth)


def _rescore_open_cases(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, now: dt.datetime,
                        growth: dict[int, int], harm: np.ndarray,
                        item_ids: Optional[Sequence[str]] = None) -> dict[str, int]:
    """Re-plan waiting item cases whose item has a newer model's prediction (after a promotion).

    Only unclaimed cases in an ordinary queue move: their queue, severity, due time (from the
    case's creation), escalation and priority follow the new prediction; the audit flag, the case
    id and what a person or a pass recorded in its meta stay. A case held by an escalation (folded
    back under its campaign's escalated case, or escalated itself: `_held_by_escalation`) keeps
    its place and window; only the model's part of it is refreshed (`_refresh_held`). A case
    waiting in a queue no longer in queues.yaml is re-planned too, into a queue that is (`rerouted`).
    """
    special = [q for q in (config.escalation_queue, config.appeals_queue, config.calibration_queue,
                           config.label_errors.queue) if q is not None]  # re-review cases keep their suggestion
    q = _prediction_rows(conn, C.c.id.label("case_id"), C.c.created_at.label("case_created"), C.c.is_audit,
                         C.c.queue.label("case_queue"), C.c.meta.label("case_meta"),
                         C.c.updated_at.label("case_updated"), C.c.severity.label("case_severity"),
                         C.c.due_at.label("case_due"), C.c.escalation_reason.label("case_escalation"),
                         where=[C.c.state == "open", C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
                                C.c.queue.notin_(special),
                                (P.c.model_version != C.c.model_version) | C.c.queue.notin_(list(config.queues))]
                         + ([P.c.item_id.in_(list(item_ids))] if item_ids is not None else [])
                         ).join(C, C.c.item_id == P.c.item_id)
    out = {"rescored": 0, "rescored_escalated": 0}
    rows, changed = conn.execute(q).all(), []
    for _ in range(3):  # a case changed meanwhile is read again (still open: re-planned from its new state)
        for r in rows:
            if _replan_one(conn, taxonomy, config, r, growth, harm, now, out):
                continue
            changed.append(r.case_id)
        if not changed:
            break
        rows, changed = conn.execute(q.where(C.c.id.in_(changed))).all(), []
    return out


def _replan_one(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, r: Any, growth: dict[int, int],
                harm: np.ndarray, now: dt.datetime, out: dict[str, int]) -> bool:
    """Re-plan one case of `_rescore_open_cases`; False when another writer changed it since `r` was read."""
    cand = _candidate(r, growth)
    row, why = _plan(taxonomy, config, cand, r.case_created, harm)
    if row is None:  # a broken newer prediction: the case keeps its plan from the one before
        out["rescore_skipped"] = out.get("rescore_skipped", 0) + 1
        return True
    old_meta, held = dict(r.case_meta or {}), _held_by_escalation(r)
    if held:
        _refresh_held(taxonomy, row, r)
    else:
        _keep_seed(row, old_meta, r.case_queue, config)
        row["meta"] = _merged_meta(old_meta, row["meta"])
    rerouted = r.case_queue not in config.queues  # removed from queues.yaml while it waited: no claim took it
    if row["queue"] not in config.queues:  # held or a seed: kept in its queue, which is gone
        row.update(queue=route(config, cand, row["severity"], taxonomy.benign_label), state="open")
    priority, why, terms = score_features(taxonomy, row["meta"]["features"], config, r.case_created,
                                          row["due_at"], now)
    # A compare-and-swap: claims and decisions do not take the builds' lock, so on PostgreSQL a
    # case claimed since the read must not be written back to `open` (a second analyst could
    # claim it); a claimed one is left to `labeling.rescore`'s refresh, a re-pinned one re-read.
    done = conn.execute(update(C).where(unchanged(r.case_id, "open", r.case_updated)).values(
        queue=row["queue"], state=row["state"], severity=row["severity"], predicted_label=row["predicted_label"],
        model_version=row["model_version"], due_at=row["due_at"], escalation_reason=row["escalation_reason"],
        priority=priority, priority_reason=why, meta=dict(row["meta"], terms=terms), updated_at=now))
    if not done.rowcount:
        return False
    out["rescored"] += 1
    out["rerouted"] = out.get("rerouted", 0) + int(rerouted)
    out["rescored_escalated"] += int(row["escalation_reason"] is not None and not held)  # escalated by the re-plan
    return True


WAITING = ("open", "escalated", "claimed")  # a case still to be decided


def _last_campaign_cases(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, tuple[int, Any]]:
    """campaign id -> (its latest case id, when its cases were last resolved), for campaigns that had one."""
    out: dict[int, tuple[int, Any]] = {}
    done = func.max(func.coalesce(C.c.resolved_at, C.c.updated_at))
    for i in range(0, len(campaign_ids), 900):
        for cid, case_id, at in conn.execute(select(C.c.campaign_id, func.max(C.c.id), done).where(
                C.c.campaign_id.in_(campaign_ids[i:i + 900])).group_by(C.c.campaign_id)):
            out[int(cid)] = (int(case_id), _as_dt(at))
    return out


def _joined_undecided(conn: Connection, campaign_id: int, since: dt.datetime) -> list[str]:
    """Members that joined the campaign after `since` and have no human decision: a wave that
    kept growing after its campaign decision, which a new campaign case should cover."""
    joined = conn.execute(select(CM.c.item_id).where(CM.c.campaign_id == campaign_id, CM.c.added_at > since)
                          ).scalars().all()
    decided = current_decisions(conn, joined) if joined else {}
    return [i for i in joined if i not in decided]


def _campaign_candidates(conn: Connection, taxonomy: Taxonomy, growth: dict[int, int],
                         harm: Optional[np.ndarray] = None) -> Iterable[Candidate]:
    """Active campaigns with no waiting case that need one: never cased, or grown since their last
    case was resolved (undecided members joined after it: `_joined_undecided`). A campaign's label,
    score and scores come from its members' predictions of record by the model's own rule
    (`campaign_label.campaign_prediction`), so it is routed (`plan_case`) and a bulk decision judged
    (`suggestion`) against the label its members' item cases carry, not a raw mean's arg-max."""
    waiting = exists(select(1).where(C.c.campaign_id == CP.c.id, C.c.state.in_(WAITING)))
    camps = conn.execute(select(CP).where(campaign_is_active(), ~waiting).order_by(CP.c.id)).mappings().all()
    if not camps:
        return
    last = _last_campaign_cases(conn, [int(c["id"]) for c in camps])
    latest = record_ids(conn)
    for camp in camps:
        before = last.get(int(camp["id"]))
        if before is not None and not _joined_undecided(conn, int(camp["id"]), before[1]):
            continue  # decided, and nothing new to decide
        rows = conn.execute(
            select(P.c.item_id, P.c.label, P.c.scores, P.c.uncertainty, P.c.model_version, I.c.text, I.c.surface,
                   I.c.source, I.c["metadata"].label("meta"))
            .join(CM, CM.c.item_id == P.c.item_id).join(I, I.c.id == P.c.item_id)
            .where(CM.c.campaign_id == camp["id"], P.c.id.in_(latest))).all()
        rows = [r for r in rows if prediction_problem({"scores": r.scores, "uncertainty": r.uncertainty}) is None]
        if len(rows) < 2:
            continue  # a campaign case needs at least two scored members (a broken score is none)
        pred = campaign_prediction(taxonomy, [r._mapping for r in rows], harm)  # the members' rule, not a raw mean
        exemplar = next((r for r in rows if r.item_id == camp["exemplar_item_id"]), rows[0])
        size = max(int(camp["size"] or 0), len(rows))
        yield Candidate(item_id=exemplar.item_id, text=exemplar.text, label=pred.label, score=pred.score,
                        scores=pred.scores, uncertainty=pred.uncertainty,
                        model_version=exemplar.model_version, campaign_id=int(camp["id"]),
                        surface=exemplar.surface, source=exemplar.source, language=_language(exemplar.meta),
                        campaign_size=size, campaign_growth=growth.get(int(camp["id"]), 0) / size,
                        reports=sum(_reports(r.meta) for r in rows),
                        extra={"campaign_case": True, **({"follow_up_of": before[0]} if before else {})})


def _already_cased(conn: Connection, chunk: Sequence[Candidate]) -> set[tuple[Any, bool]]:
    """(item id, False) / (campaign id, True) of the chunk's candidates that already have a case:
    for a campaign, a waiting one, or it is no longer active (merged since it was read)."""
    items = [c.item_id for c in chunk if not c.is_campaign]
    camps = [c.campaign_id for c in chunk if c.is_campaign]
    out: set[tuple[Any, bool]] = set()
    for i in range(0, len(items), 900):
        out |= {(r, False) for r in conn.execute(select(C.c.item_id).where(
            C.c.item_id.in_(items[i:i + 900]), C.c.campaign_id.is_(None))).scalars()}
    for i in range(0, len(camps), 900):
        out |= {(r, True) for r in conn.execute(select(C.c.campaign_id).where(
            C.c.campaign_id.in_(camps[i:i + 900]), C.c.state.in_(WAITING))).scalars()}
        out |= {(r, True) for r in conn.execute(select(CP.c.id).where(
            CP.c.id.in_(camps[i:i + 900]), ~campaign_is_active())).scalars()}
    return out


_SKIPPED_KEPT = 20  # reasons a build's summary keeps (the count is exact)


def _plan(taxonomy: Taxonomy, config: QueueConfig, cand: Candidate, now: dt.datetime,
          harm: np.ndarray) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """(the case row of a candidate, None), or (None, why) for one whose stored prediction no
    priority can come from (`prediction_problem`, `PriorityError`): it is skipped, not the build."""
    problem = prediction_problem({"score": cand.score, "scores": cand.scores, "uncertainty": cand.uncertainty})
    if problem is None:
        try:
            return plan_case(taxonomy, config, cand, now, harm), None
        except PriorityError as exc:
            problem = str(exc)
    return None, f"{cand.key}: {problem}; no case built"


def build_cases(store: Store, taxonomy: Taxonomy, config: QueueConfig,
                now: Optional[dt.datetime] = None, actor: Actor = SYSTEM["system"], progress: bool = True,
                chunk_size: int = 5000, item_ids: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Turn every scored item and every active campaign without a case into one; returns counts.
    Needs `build_cases`. With `item_ids` (an API batch) only those items' cases are built and
    re-planned, and no campaign case: the caller acts on its own batch, not the whole store.

    Idempotent: an item or campaign that already has a case gets no second one, so it can run
    after every scoring batch; a campaign decided before gets a new case only once undecided
    members have joined since (`_campaign_candidates`), a merged campaign none. Waiting item cases whose item was re-scored by a newer model are
    re-planned in place (`rescored`), so a promotion re-orders the backlog.
    """
    check_permission(actor, "build_cases", "queues")
    from tqdm import tqdm

    now = utc_naive(now) if now is not None else utcnow()  # aware: SQLite kept its wall clock, not UTC
    harm = label_harm_weights(taxonomy)
    summary: dict[str, Any] = {"cases": 0, "item_cases": 0, "campaign_cases": 0, "audit": 0,
                               "escalated": 0, "calibration_copies": 0, "by_queue": {},
                               "skipped": 0, "skipped_reasons": []}
    # Read and plan without the write lock; write in chunks so claims interleave with a big build.
    with store.read() as conn:
        growth = _campaign_growth(conn, config, now)
        candidates = list(_item_candidates(conn, now, growth, item_ids))
        if item_ids is None:
            candidates += list(_campaign_candidates(conn, taxonomy, growth, harm))
    bar = tqdm(total=len(candidates), desc="building cases", unit="case", disable=not progress, leave=False)
    for start in range(0, len(candidates), chunk_size):
        chunk = candidates[start:start + chunk_size]
        planned = []
        for cand in chunk:
            row, why = _plan(taxonomy, config, cand, now, harm)
            if row is None:
                summary["skipped"] += 1
                if len(summary["skipped_reasons"]) < _SKIPPED_KEPT:
                    summary["skipped_reasons"].append(why)
                continue
            planned.append((cand, row))
        with store.begin() as conn:
            _lock_builds(conn)
            taken = _already_cased(conn, chunk)  # a concurrent build may have got there first
            rows: list[dict[str, Any]] = []
            for cand, row in planned:
                if (row["campaign_id"] if cand.is_campaign else cand.item_id, cand.is_campaign) in taken:
                    continue
                if cand.extra.get("follow_up_of"):  # a grown campaign's next case (`_joined_undecided`)
                    row["meta"]["follow_up_of"] = cand.extra["follow_up_of"]
                copies = calibration_copies(config, cand.key, row)
                rows.append(row)
                rows.extend(copies)
                summary["cases"] += 1
                summary["campaign_cases" if cand.is_campaign else "item_cases"] += 1
                summary["audit"] += int(row["is_audit"])
                summary["escalated"] += int(row["escalation_reason"] is not None)
                summary["calibration_copies"] += len(copies)
                summary["by_queue"][row["queue"]] = summary["by_queue"].get(row["queue"], 0) + 1
            if rows:
                conn.execute(insert(C), rows)
        bar.update(len(chunk))
    bar.close()
    with store.begin() as conn:
        _lock_builds(conn)
        summary.update(_rescore_open_cases(conn, taxonomy, config, now, growth, harm, item_ids))
        if summary["cases"] or summary["rescored"]:
            audit.record(conn, actor, "cases.build", "queue", None,
                         {k: v for k, v in summary.items()} | {"config_version": config.version})
    return summary


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


def case_view(conn: Connection, case_id: int, with_history: bool = True, raw_text: bool = False) -> dict[str, Any]:
    """A case with what an analyst needs to decide: item, model scores, campaign, earlier decisions.

    The item's text is masked (`masking.mask_text`): a view leaves the server through every
    service's return value. Only `packets.show_case` asks for `raw_text`, to apply the masking
    rule itself or an audited reveal."""
    case = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
    if case is None:
        raise QueueError(f"no case {case_id}")
    out = _jsonable(case)
    if case["item_id"]:
        item = conn.execute(select(I.c.id, I.c.text, I.c.source, I.c.surface, I.c.author_id, I.c.created_at)
                            .where(I.c.id == case["item_id"])).mappings().first()
        out["item"] = _jsonable(item) if item else None
        if item and not raw_text:
            out["item"]["text"] = mask_text(item["text"])
    if case["campaign_id"] is not None:
        camp = conn.execute(select(CP.c.id, CP.c.size, CP.c.entities, CP.c.top_terms, CP.c.first_seen, CP.c.last_seen)
                            .where(CP.c.id == case["campaign_id"])).mappings().first()
        out["campaign"] = _jsonable(camp) if camp else {"id": case["campaign_id"]}
        out["campaign"]["members"] = conn.execute(select(func.count()).select_from(CM).where(
            CM.c.campaign_id == case["campaign_id"])).scalar()
    if with_history and case["item_id"]:
        decs = conn.execute(select(D).where(D.c.item_id == case["item_id"]).order_by(D.c.id)).mappings().all()
        out["decisions"] = [_jsonable(d) for d in decs]
    return out


def case_detail(store: Store, case_id: int) -> dict[str, Any]:
    """`case_view` in its own read transaction (for the CLI and the UI)."""
    with store.read() as conn:
        return case_view(conn, case_id)


def filter_cases(q: Any, queue: Optional[str] = None, state: Optional[str] = None,
                 policy: Optional[str] = None, surface: Optional[str] = None) -> Any:
    """`q` (a select over cases) joined to its items and narrowed by queue, state, policy, surface."""
    q = q.outerjoin(I, I.c.id == C.c.item_id)
    if queue:
        q = q.where(C.c.queue == queue)
    if state:
        q = q.where(C.c.state == state)
    if policy:
        q = q.where(C.c.predicted_label == policy)
    if surface:
        q = q.where(I.c.surface == surface)
    return q


def list_cases(store: Store, queue: Optional[str] = None, state: Optional[str] = None,
               policy: Optional[str] = None, surface: Optional[str] = None, audit_only: bool = False,
               limit: Optional[int] = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Cases filtered by queue, state, predicted policy and surface, best priority first."""
    q = filter_cases(select(C.c.id, C.c.item_id, C.c.campaign_id, C.c.queue, C.c.state, C.c.priority,
                            C.c.priority_reason, C.c.severity, C.c.predicted_label, C.c.due_at, C.c.is_audit,
                            C.c.calibration_set, C.c.escalation_reason, C.c.claimed_by, C.c.lease_expires_at,
                            I.c.surface, I.c.text), queue=queue, state=state, policy=policy, surface=surface)
    if audit_only:
        q = q.where(C.c.is_audit.is_(True))
    q = q.order_by(C.c.priority.desc(), C.c.id).offset(offset)
    if limit:
        q = q.limit(limit)
    with store.read() as conn:
        return [_jsonable(r) for r in conn.execute(q).mappings()]


def suggestion(conn: Connection, case: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """What the model suggests for a case: the one answer the review screen shows and a decision
    is judged against (so a confirm is never counted as an override).

    A campaign case suggests its members' label (`campaign_label`, stored when the case was built);
    an item case its item's prediction of record (`core.predictions`); a case whose item has no
    prediction any more, what was stored on the case. None when the model said nothing.
    """
    meta = case.get("meta") or {}
    stored_scores = dict(meta.get("scores") or {})
    record = None
    if case["item_id"] and case["campaign_id"] is None:
        record = predictions_of_record(conn, [case["item_id"]]).get(case["item_id"])
    if record is not None:
        return {"model_version": record["model_version"], "label": record["label"], "score": record["score"],
                "scores": dict(record["scores"] or {}), "uncertainty": record["uncertainty"],
                "flags": record["flags"]}
    label = case["predicted_label"]
    if label is None:
        return None
    return {"model_version": case["model_version"], "label": label, "score": stored_scores.get(label),
            "scores": stored_scores, "uncertainty": (meta.get("features") or {}).get("uncertainty"), "flags": None}


def queue_overview(store: Store) -> dict[str, int]:
    """Waiting (open or escalated) cases per queue, for the queue picker."""
    with store.read() as conn:
        rows = conn.execute(select(C.c.queue, func.count()).where(C.c.state.in_(("open", "escalated")))
                            .group_by(C.c.queue)).all()
    return {q: n for q, n in rows}


def campaign_case(store: Store, campaign_id: int) -> Optional[int]:
    """The waiting case of an active campaign (to act on the whole campaign at once), if there is
    one: a merged campaign's members are another campaign's, so its case has none to decide."""
    with store.read() as conn:
        return conn.execute(select(C.c.id).join(CP, CP.c.id == C.c.campaign_id).where(
            C.c.campaign_id == campaign_id, C.c.state.in_(WAITING), campaign_is_active())
            .order_by(C.c.id.desc()).limit(1)).scalar()


def campaign_case_state(store: Store, campaign_id: int) -> dict[str, Any]:
    """Why a campaign has a waiting case or not, for the Campaigns tab: its status (None when
    unknown), the waiting case, its latest case, and how many undecided members joined since that
    one was resolved (a case for them comes with the next `build_cases`)."""
    with store.read() as conn:
        status = conn.execute(select(CP.c.status).where(CP.c.id == campaign_id)).scalar()
        last = _last_campaign_cases(conn, [campaign_id]).get(campaign_id)
        waiting = conn.execute(select(C.c.id).where(C.c.campaign_id == campaign_id, C.c.state.in_(WAITING))
                               .order_by(C.c.id.desc()).limit(1)).scalar()
        joined = _joined_undecided(conn, campaign_id, last[1]) if last and waiting is None else []
    return {"status": status, "waiting": waiting if status == ACTIVE else None,
            "last_case": last[0] if last else None, "joined_undecided": len(joined)}


def queue_status(store: Store, config: QueueConfig, now: Optional[dt.datetime] = None,
                 viewer: Optional[Actor] = None) -> dict[str, dict[str, Any]]:
    """Per queue: waiting cases, overdue ones, those due within the hour, minutes to the first
    due time, and claimed ones (the review screen's live counts and its start queue). With a
    `viewer`, the escalations they raised are not waiting for them (`four_eyes`): "escalation (1
    left)" offered the escalator their own case."""
    now = now or utcnow()
    waiting = _waiting_for(config, viewer)
    soon = now + dt.timedelta(hours=1)
    with store.read() as conn:  # one pass over the live cases (the index on state leads)
        rows = conn.execute(select(
            C.c.queue, func.sum(case_when(waiting)), func.min(sql_case((waiting, C.c.due_at), else_=None)),
            func.sum(case_when(waiting & (C.c.due_at < now))), func.sum(case_when(waiting & (C.c.due_at < soon))),
            func.sum(case_when(C.c.state == "claimed")))
            .where(C.c.state.in_(("open", "escalated", "claimed"))).group_by(C.c.queue)).all()

    def blank() -> dict[str, Any]:
        return {"waiting": 0, "overdue": 0, "due_within_hour": 0, "first_due_minutes": None, "claimed": 0}

    out = {q: blank() for q in config.queues}
    for queue, n, first_due, overdue, due_soon, held in rows:
        out.setdefault(queue, blank()).update(
            waiting=int(n or 0), overdue=int(overdue or 0), due_within_hour=int(due_soon or 0), claimed=int(held or 0),
            first_due_minutes=None if first_due is None else round((_as_dt(first_due) - now).total_seconds() / 60, 1))
    return out


def queue_counts(store: Store, queue: str, now: Optional[dt.datetime] = None, viewer: Optional[Actor] = None,
                 config: Optional[QueueConfig] = None) -> dict[str, int]:
    """Waiting and overdue cases of one queue, as `queue_status` counts them: the review screen's
    "N left" line after every key reads one queue's range of the claim index, not every live case.
    With a `viewer` and the `config`, as `queue_status` counts them for that viewer."""
    now = now or utcnow()
    with store.read() as conn:
        n, overdue = conn.execute(select(func.count(), func.sum(case_when(C.c.due_at < now)))
                                  .where(C.c.queue == queue, _waiting_for(config, viewer))).one()
    return {"waiting": int(n or 0), "overdue": int(overdue or 0)}


def _waiting_for(config: Optional[QueueConfig], viewer: Optional[Actor]) -> ColumnElement[bool]:
    """Waiting (open or escalated) cases; for a named `viewer` (and a `config`), not the
    escalations they raised, which they may not take (`four_eyes.not_own_escalation`)."""
    waiting = C.c.state.in_(("open", "escalated"))
    who = actor_name(viewer) if viewer is not None else None
    if config is None or not who or not who.strip():
        return waiting
    return and_(waiting, not_own_escalation(who, config))


def takeable_escalation(store: Store, config: QueueConfig, analyst: Actor, limit: int = 200) -> bool:
    """True when the escalation queue holds a waiting case `analyst` may take: not only escalations
    they raised (`four_eyes.own_escalation`, the rule in full). The start queue asks it before
    opening escalations first. Past `limit` cases all barred (never seen), it answers True."""
    who = actor_name(analyst)
    with store.read() as conn:
        rows = conn.execute(select(C.c.id, C.c.queue, C.c.meta).where(
            C.c.queue == config.escalation_queue, C.c.state == "escalated", of_live_campaign(),
            _waiting_for(config, who)).order_by(C.c.priority.desc(), C.c.id.asc()).limit(limit)).mappings().all()
    return any(own_escalation(r, who or "", config) is None for r in rows) or len(rows) == limit


def _as_dt(v: Any) -> dt.datetime:
    """MIN over a CASE comes back as text on SQLite (the column type is lost)."""
    return dt.datetime.fromisoformat(v) if isinstance(v, str) else v


def case_when(cond: Any) -> Any:
    """1 where `cond` holds, else 0 (for SUM)."""
    return sql_case((cond, 1), else_=0)


def start_queue(store: Store, analyst: Actor, config: QueueConfig, now: Optional[dt.datetime] = None,
                status: Optional[dict[str, dict[str, Any]]] = None) -> Optional[str]:
    """The most urgent queue `analyst` may work: escalations first when any wait that they may take
    (not only ones they raised: `four_eyes`), then the queue whose work is most at risk of missing
    its SLA (overdue, then due within the hour, then the soonest due time), then the biggest
    backlog. Appeals are a lead's (the Appeals tab); a queue the permission plugins refuse a claim
    in is passed over. None when nothing waits."""
    status = status or queue_status(store, config, now, viewer=analyst)

    def allowed(q: str) -> bool:
        try:
            check_permission(analyst, "claim", f"queue {q}")
        except PermissionDenied:
            return False
        return q != config.escalation_queue or takeable_escalation(store, config, analyst)

    cands = [q for q, s in status.items() if s["waiting"] and q in config.queues and q != config.appeals_queue
             and allowed(q)]
    if not cands:
        return None

    def urgency(q: str) -> tuple[Any, ...]:
        s = status[q]
        first = s["first_due_minutes"]
        return (q != config.escalation_queue, -s["overdue"], -s["due_within_hour"],
                first if first is not None else float("inf"), -s["waiting"])

    return min(cands, key=urgency)
