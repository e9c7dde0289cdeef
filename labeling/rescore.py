"""After a promotion: rescore and re-prioritise the open cases, so none keeps a stale prediction.

A promotion changes the prediction of record (`core.predictions`) only for items the new
champion has scored. `rescore_open_cases`:

1. scores, with the champion, every item behind an open case (an item case, or a member of a
   campaign case) that the champion has not scored yet, open cases first rather than the whole
   store (`workbench score` catches up with the rest), in chunks with a progress bar;
2. re-plans waiting item cases in the ordinary queues through `build_cases` (queue, severity,
   due time, priority follow the new prediction);
3. refreshes the cases `build_cases` leaves where they are: a campaign case gets its members'
   new mean scores, label (by the members' rule, labeling.campaign_label) and priority; a claimed
   case, or one in the escalation, appeals or
   calibration queue, keeps its queue and holder and gets the new label, scores and risk; one
   in an ordinary queue (not escalated) also gets the new label's tier and the due time that tier
   gives from its SLA's start (`_follow_tier`), as a re-planned open case does. Only
   the model's features change: an escalation (its reason, clock and raised tier) stays, and an
   escalated case's risk never drops below what the escalation set; the lead's re-review queue
   is left alone (its cases show the label-error scan's suggestion, or none);
4. re-plans the learning share (`labeling.learning`) where queues.yaml gives one: its pinned
   cases were chosen by the old model's uncertainty.

Steps 1-3 run again (up to `_ROUNDS`) while open cases remain whose items the champion has not
scored: cases opened meanwhile, by step 2 itself for items scored before the promotion but not
cased yet, or by another process.

`start_background_rescore` runs the same in a daemon thread (serve); its progress is the
returned `RescoreJob` (done / total), its result or error kept on the job.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
from sqlalchemy import select, update

from core.hooks import check_permission
from core.predictions import champion_version, predictions_of_record
from core.principals import Actor
from core.schema import CampaignMember, Case, Item, Prediction, utcnow

from .campaign_label import campaign_prediction
from .cases import build_cases, unchanged
from .priority import (PriorityError, features_problem, label_harm_weights, risk_scores, score_features,
                       sla_start, tier_weight, utc_naive)
from .routing import Candidate, plan_case

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from models.config import ModelsConfig

    from .queue_config import QueueConfig

# Not `appealed`: that is the decided case whose decision is under appeal (the appeal is its own open
# case); rescored, its label, scores and features of record, what the decision was made on, were rewritten.
OPEN_STATES = ("open", "claimed", "escalated")
C = Case.__table__
CM = CampaignMember.__table__
I = Item.__table__
P = Prediction.__table__
_CHUNK = 900
_ROUNDS = 3   # score, re-plan, refresh; again for cases opened meanwhile (`rescore_open_cases`)


def _rescorable(rereview_queue: Optional[str]) -> Any:
    """The open cases a promotion brings onto the champion: all but those of the lead's re-review
    queue (`label_errors.queue`), whose suggestion is by design not the model of record's (the
    label-error scan's out-of-fold label, or none for a blind QA re-review)."""
    open_ = C.c.state.in_(OPEN_STATES)
    return open_ if rereview_queue is None else open_ & (C.c.queue != rereview_queue)


def _items_to_score(conn: Any, champ: str, rereview_queue: Optional[str]) -> list[str]:
    """Items behind open cases (item cases and campaign members) without a champion prediction."""
    items = set(conn.execute(select(C.c.item_id).where(_rescorable(rereview_queue), C.c.campaign_id.is_(None),
                                                       C.c.item_id.is_not(None))).scalars())
    camps = select(C.c.campaign_id).where(_rescorable(rereview_queue), C.c.campaign_id.is_not(None))
    items |= set(conn.execute(select(CM.c.item_id).where(CM.c.campaign_id.in_(camps))).scalars())
    done = set(conn.execute(select(P.c.item_id).where(P.c.model_version == champ)).scalars())
    return sorted(items - done)


def stale_open_cases(store: "Store", queue_config: Optional["QueueConfig"] = None) -> list[int]:
    """Ids of open cases that do not carry the champion's prediction (its version on the case);
    empty when there is no champion. With `queue_config`, the re-review queue's cases are not
    counted (they never carry one, see `_rescorable`)."""
    rereview = queue_config.label_errors.queue if queue_config is not None else None
    with store.read() as conn:
        champ = champion_version(conn)
        if champ is None:
            return []
        return sorted(conn.execute(select(C.c.id).where(
            _rescorable(rereview), (C.c.model_version != champ) | C.c.model_version.is_(None))).scalars())


def score_ids(store: "Store", taxonomy: "Taxonomy", models_config: "ModelsConfig", champ: str, ids: list[str],
              progress: bool, tick: Callable[[int], None]) -> int:
    """Score exactly the items `ids` with the champion `champ` (the rescore after a promotion,
    an API batch); returns how many predictions were stored (a refused row is not counted)."""
    from tqdm.auto import tqdm

    from models.registry import embeddings_for, load_model_version
    from models.scoring import _insert_predictions, check_model_labels, predict_rows, prepare_text

    if not ids:
        return 0
    model, _ = load_model_version(store, champ)
    check_model_labels(model, champ, taxonomy)  # before anything is written
    sc = models_config.scoring
    bar = tqdm(total=len(ids), desc=f"rescoring open cases with {champ}", unit="item", disable=not progress)
    done = 0
    try:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            with store.read() as conn:
                rows = conn.execute(select(I.c.id, I.c.text, I.c.text_hash).where(I.c.id.in_(chunk))
                                    .order_by(I.c.id)).all()
            prepared = [prepare_text(t, sc.max_chars, h, sc.window_chars, sc.window_overlap, sc.max_windows)
                        for _, t, h in rows]
            units = [u for p in prepared for u in p.units]
            emb = None
            if getattr(model, "needs_embeddings", model.uses_embeddings) and units:
                emb = embeddings_for(store, model, [u[0] for u in units], show_progress=False, config=models_config)
            fields = predict_rows(model, prepared, taxonomy.benign_label, emb, sc.uncertainty)
            now = utcnow()
            with store.begin() as conn:  # a refused row (a NaN score) leaves its item unscored, not counted
                refused = _insert_predictions(conn, [{"item_id": r[0], "model_version": champ,
                                                      "taxonomy_version": taxonomy.version, "created_at": now, **f}
                                                     for r, f in zip(rows, fields)])
            done += len(rows) - len(refused)
            bar.update(len(rows))
            tick(len(rows))
    finally:
        bar.close()
    return done


def _refresh(store: "Store", taxonomy: "Taxonomy", config: "QueueConfig", champ: str, now: dt.datetime,
             rounds: int = 3) -> int:
    """Bring the open cases `build_cases` does not re-plan onto the champion's predictions. Each
    write is a compare-and-swap on the case's state and `updated_at`: a case an analyst decided,
    or a seed or a learning pass pinned, since it was read is read again in the next round
    instead of being written back from the stale copy (PostgreSQL; SQLite's write lock already
    keeps other writers out)."""
    harm = label_harm_weights(taxonomy)
    refreshed, only = 0, None
    for _ in range(rounds):
        n, only = _refresh_round(store, taxonomy, config, champ, now, harm, only)
        refreshed += n
        if not only:
            break
    return refreshed


# What a refresh takes from the champion's prediction; every other feature (an escalation, its
# clock `ESCALATED_AT`, a seed or learning pin) is what a person or a pass did to the case, and stays.
_MODEL_FEATURES = ("risk", "uncertainty", "label", "score", "campaign_size", "campaign_growth", "reports")


def _escalated(case: Any, config: "QueueConfig") -> bool:
    """True for a case escalated by an analyst, the sweep or a criterion: waiting or held in the
    escalation queue, or folded back home under its campaign's escalation still marked as one."""
    feats = (case["meta"] or {}).get("features") or {}
    return (case["state"] == "escalated" or case["queue"] == config.escalation_queue
            or bool(feats.get("escalation")) or case["escalation_reason"] is not None)


def _refreshed_features(taxonomy: "Taxonomy", config: "QueueConfig", case: Any,
                        fresh: dict[str, Any]) -> dict[str, Any]:
    """The case's features with the champion's `fresh` ones over the model's part only. The old
    refresh put a campaign case's fresh plan in their place: an escalated case lost its
    escalation, its SLA clock and its raised tier and risk, and the sweep ranked it as the new
    model's P3. An escalated case keeps its tier, and its risk may rise with the new model but
    never drops below what the escalation set (at least its tier's weight)."""
    old = dict((case["meta"] or {}).get("features") or {})
    escalated = _escalated(case, config)
    keys = _MODEL_FEATURES + (() if escalated or "severity" not in fresh else ("severity",))
    feats = dict(old, **{k: fresh[k] for k in keys if k in fresh})
    if escalated:
        tier = case["severity"] if case["severity"] in taxonomy.severities else None
        floor = max(float(old.get("risk") or 0.0), tier_weight(taxonomy, tier))
        feats["risk"] = max(float(fresh.get("risk") or 0.0), floor)
    return feats


def _tier(taxonomy: "Taxonomy", config: "QueueConfig", label: str) -> str:
    """The tier a case predicted `label` is planned at (`routing.plan_case`, before any escalation)."""
    return (taxonomy.severity_of(label) if label in taxonomy.policies else None) or config.benign_tier


def _ordinary(case: Any, config: "QueueConfig") -> bool:
    """A case not escalated (`_escalated`) in a queue that routing fills (not appeals, calibration
    or re-review): its tier and due time are the model's, as a plan's."""
    special = (config.escalation_queue, config.appeals_queue, config.calibration_queue, config.label_errors.queue)
    return not _escalated(case, config) and case["queue"] not in special


def _follow_tier(taxonomy: "Taxonomy", config: "QueueConfig", case: Any, feats: dict[str, Any]) -> dict[str, Any]:
    """The tier and due time of a refreshed case that is not escalated and waits, or is held, in an
    ordinary queue: its new label's, due from its SLA's start (`sla_start`), as `build_cases`
    re-plans an open one. A case claimed during the rescore kept the old model's tier and window:
    a spam (P3) case the new model reads as a scam (P1) went back to its queue due in three days,
    ranked as P3 by urgency, and the SLA sweep (tiers P0 and P1) never escalated it. Escalated,
    appeal, calibration and re-review cases keep theirs (their own clocks, `_escalated`)."""
    tier = feats.get("severity")
    if not _ordinary(case, config) or tier not in taxonomy.severities or tier == case["severity"]:
        return {}
    start = sla_start(feats, case["created_at"], None)
    return {"severity": tier, "due_at": utc_naive(start) + dt.timedelta(minutes=taxonomy.sla_minutes(tier))}


def _refresh_round(store: "Store", taxonomy: "Taxonomy", config: "QueueConfig", champ: str, now: dt.datetime,
                   harm: np.ndarray, only: Optional[list[int]]) -> tuple[int, list[int]]:
    """One pass of `_refresh` over the stale open cases (`only` these ids when given): the count
    written and the ids another writer changed meanwhile. A waiting case is ranked at once (an
    open campaign case, an escalated case), the rest at the sweep once they wait again."""
    refreshed, changed = 0, []
    with store.begin() as conn:
        q = select(C).where(_rescorable(config.label_errors.queue),
                            (C.c.model_version != champ) | C.c.model_version.is_(None))
        cases = conn.execute(q.where(C.c.id.in_(only)) if only is not None else q).mappings().all()
        for case in cases:
            meta = dict(case["meta"] or {})
            if case["campaign_id"] is not None:
                members = conn.execute(select(CM.c.item_id).where(CM.c.campaign_id == case["campaign_id"])).scalars().all()
                preds = predictions_of_record(conn, members)
                if not preds or any(p["model_version"] != champ for p in preds.values()):
                    continue
                rows = list(preds.values())
                pred = campaign_prediction(taxonomy, rows, harm)  # the members' rule (labeling.campaign_label)
                label = pred.label
                feats = dict(meta.get("features") or {})
                cand = Candidate(item_id=case["item_id"], text="", label=label, score=pred.score, scores=pred.scores,
                                 uncertainty=pred.uncertainty,
                                 model_version=champ, campaign_id=case["campaign_id"],
                                 campaign_size=int(feats.get("campaign_size") or len(rows)),
                                 campaign_growth=float(feats.get("campaign_growth") or 0.0),
                                 reports=int(feats.get("reports") or 0), extra={"campaign_case": True})
                try:
                    planned = plan_case(taxonomy, config, cand, case["created_at"], harm)
                except PriorityError:
                    continue  # an old stored prediction no priority comes from: the case keeps its plan
                fresh, new_scores = planned["meta"]["features"], planned["meta"]["scores"]
            else:
                pred = predictions_of_record(conn, [case["item_id"]]).get(case["item_id"]) if case["item_id"] else None
                if pred is None or pred["model_version"] != champ:
                    continue
                label, new_scores = pred["label"], dict(pred["scores"] or {})
                probs = np.array([[float(new_scores.get(lab, 0.0)) for lab in taxonomy.labels]])
                fresh = {"label": label, "score": round(float(pred["score"]), 6),
                         **({"severity": _tier(taxonomy, config, label)} if _ordinary(case, config) else {}),
                         "uncertainty": round(float(pred["uncertainty"] or 0.0), 6),
                         "risk": round(float(risk_scores(probs, harm)[0]), 6)}
            feats = _refreshed_features(taxonomy, config, case, fresh)
            if features_problem(feats) is not None:
                continue  # a prediction no priority comes from: the case keeps its features
            values: dict[str, Any] = {"predicted_label": label, "model_version": champ,
                                      "meta": dict(meta, scores=new_scores, features=feats),
                                      **_follow_tier(taxonomy, config, case, feats)}
            if case["state"] == "escalated" or (case["state"] == "open" and case["campaign_id"] is not None):
                priority, why, terms = score_features(taxonomy, feats, config, case["created_at"],
                                                     values.get("due_at", case["due_at"]), now)
                values.update(priority=priority, priority_reason=why, meta=dict(values["meta"], terms=terms))
            done = conn.execute(update(C).where(unchanged(case["id"], case["state"], case["updated_at"]))
                                .values(**values, updated_at=now))
            if done.rowcount:
                refreshed += 1
            else:
                changed.append(int(case["id"]))
    return refreshed, changed


def rescore_open_cases(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig",
                       queue_config: "QueueConfig", actor: Actor, progress: bool = True,
                       now: Optional[dt.datetime] = None, tick: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Score, re-plan and refresh the open cases after a promotion (see the module doc); returns
    counts, `stale_left` included (0 unless an item could not be scored). Needs `score` and
    `build_cases`."""
    check_permission(actor, "score", "open cases")
    check_permission(actor, "build_cases", "open cases")
    now = utc_naive(now) if now is not None else utcnow()  # aware: SQLite kept its wall clock, not UTC
    with store.read() as conn:
        champ = champion_version(conn)
        ids = _items_to_score(conn, champ, queue_config.label_errors.queue) if champ else []
    if champ is None:
        return {"champion": None, "scored": 0, "replanned": 0, "refreshed": 0, "stale_left": 0}
    scored = replanned = new_cases = refreshed = 0
    for _ in range(_ROUNDS):
        scored += score_ids(store, taxonomy, models_config, champ, ids, progress, tick)
        built = build_cases(store, taxonomy, queue_config, now=now, actor=actor, progress=False)
        replanned += int(built.get("rescored", 0))
        new_cases += int(built.get("cases", 0))
        refreshed += _refresh(store, taxonomy, queue_config, champ, now)
        # Cases opened meanwhile on an older model's prediction: by `build_cases` above, for items
        # scored before the promotion but not cased yet, or by another process. Their items were
        # not in `ids`; left alone they kept the old prediction with the rescore reported done.
        with store.read() as conn:
            if champion_version(conn) != champ:  # promoted over meanwhile: its own rescore takes over
                break
            ids = _items_to_score(conn, champ, queue_config.label_errors.queue)
        if not ids:
            break
    learning = None
    if queue_config.learning.queues:  # the pinned learning cases were the old model's uncertain ones
        from models.embeddings import Embedder

        from .learning import apply_learning_share

        learning = apply_learning_share(store, taxonomy, queue_config, actor, now=now,
                                        embedding_model=Embedder.from_settings(models_config.embedding).model_id)
    return {"champion": champ, "scored": scored, "replanned": replanned,
            "new_cases": new_cases, "refreshed": refreshed,
            "stale_left": len(stale_open_cases(store, queue_config)), "learning": learning}


@dataclass
class RescoreJob:
    """A background rescoring run: `done` of `total` items scored, then `result` (or `error`)."""

    total: int = 0
    done: int = 0
    result: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    thread: Optional[threading.Thread] = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


def start_background_rescore(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig",
                             queue_config: "QueueConfig", actor: Actor) -> RescoreJob:
    """`rescore_open_cases` in a daemon thread (for serve); progress and outcome on the job."""
    check_permission(actor, "score", "open cases")
    with store.read() as conn:
        champ = champion_version(conn)
        job = RescoreJob(total=len(_items_to_score(conn, champ, queue_config.label_errors.queue)) if champ else 0)

    def tick(n: int) -> None:
        job.done += n
        job.total = max(job.total, job.done)  # items of cases opened meanwhile are scored too

    def run() -> None:
        try:
            job.result = rescore_open_cases(store, taxonomy, models_config=models_config, queue_config=queue_config,
                                            actor=actor, progress=False, tick=tick)
        except Exception as exc:  # kept on the job: a thread has no caller to raise to
            job.error = f"{type(exc).__name__}: {exc}"

    job.thread = threading.Thread(target=run, name="workbench-rescore", daemon=True)
    job.thread.start()
    return job
