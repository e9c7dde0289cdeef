"""Blind QA re-review: a lead draws a uniform sample of decisions back into review.

The draw is over judgements, not items: a campaign decision (one analyst's action deciding every
member, one `bulk` row per member) is one unit, re-reviewed through one member drawn from it, and
a single decision is its own unit (`_units`). Drawn over items, one 300-member campaign decision
took nearly every place of a draw beside 20 single decisions, so QA measured one judgement 9 times
and the 20 hardly at all. The case's `meta["rereview"]["unit"]` says what it stands for.

Each drawn item gets a QA-audit case in the lead's re-review queue (`label_errors.queue` in
queues.yaml). The case carries nothing of the decision under review: the screen shows it as any
other case and the context panel leaves out the item's decision history for audit cases
(`labeling.context`), so the re-reviewer decides blind. `labeling.decisions.decide` records the
answer as a `qa_audit` decision (`qa_review` needed, never by the analyst who decided the item)
that supersedes the item's decision of record, so the platform hears only of a change (an
agreeing answer sends nothing, `same_verdict`), and `evaluation.analysts` turns those into each
analyst's QA pass rate (`is_rereview_answer` tells an answer from a correction).

A re-review case is marked `meta["rereview"]` and has no `audit_inclusion`: it is drawn from
decided items (served in risk order), not from traffic, so the model-quality estimates must not
take it for the traffic QA-audit sample (`is_rereview`; `is_audit` stays set for the blindness and
separation of duties of `decide`).
"""
from __future__ import annotations

import datetime as dt
import difflib
from typing import Any, Iterable, Mapping, Optional

import numpy as np
from sqlalchemy import insert, select

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions
from core.principals import Actor
from core.schema import Case, Decision, utcnow
from core.store import Store, serialise

from .errors import QueueError
from .priority import utc_naive
from .queue_config import QueueConfig

C = Case.__table__
D = Decision.__table__
REVIEWED_KINDS = ("review", "bulk", "escalation")  # the analysts' own judgements
REREVIEW_REASON = "QA audit (uniform draw)"  # the priority reason of every re-review case, older ones too
_CHUNK = 900  # ids per IN (...): under SQLite's bound-parameter limit


def is_rereview(case: Mapping[str, Any]) -> bool:
    """True for a blind re-review case (a row with `meta`, `priority_reason`): a draw of decided
    items, not of traffic, so never part of the QA-audit sample. Cases drawn before the
    `rereview` marker existed are known by their priority reason, which only this module writes."""
    meta = case.get("meta") or {}
    return bool(isinstance(meta, dict) and meta.get("rereview")) or case.get("priority_reason") == REREVIEW_REASON


def same_verdict(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same label and action: what the enforcement platform acts on."""
    return (a["label"], a["action"]) == (b["label"], b["action"])


def is_rereview_answer(decision: Mapping[str, Any], superseded: Optional[Mapping[str, Any]]) -> bool:
    """True for a `qa_audit` decision that answers a QA case rather than corrects one: it
    supersedes nothing, or a decision of another case (a correction keeps its case and kind).
    `superseded`: the row it supersedes, None when unknown to the caller."""
    return decision["kind"] == "qa_audit" and (
        decision["supersedes_id"] is None or superseded is None or superseded["case_id"] != decision["case_id"])


def as_acts(decisions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Decision rows as labelling acts, for rates over them: a re-review answer supersedes the
    decision it re-reviews (so the label of record and the platform follow it), yet as a judgement
    it is a first one, set beside that decision (a QA pass or fail), not a change of it (rework).
    Here such an answer supersedes nothing and `rereviews_id` names the decision it re-reviewed."""
    rows = [dict(d) for d in decisions]
    by_id = {d["id"]: d for d in rows}
    for d in rows:
        if d["kind"] == "qa_audit" and d["supersedes_id"] is not None \
                and is_rereview_answer(d, by_id.get(d["supersedes_id"])):
            d["rereviews_id"], d["supersedes_id"] = d["supersedes_id"], None
    return rows


def _check_analyst(conn: Any, analyst: str) -> None:
    """Refuse an `analyst` who never decided an item (a misspelt name): a draw of their decisions
    read "0 of 0 decided items", as if they had decided nothing worth a look. The refusal names
    the closest names that did decide."""
    names = sorted(conn.execute(select(D.c.reviewer).distinct().where(D.c.kind.in_(REVIEWED_KINDS))).scalars())
    if analyst in names:
        return  # decided before, every decision since superseded: an honest 0 candidates
    close = difflib.get_close_matches(analyst, names, n=3, cutoff=0.6) or \
        [n for n in names if n.casefold() == analyst.casefold()]
    raise QueueError(f"no decisions by analyst {analyst!r}"
                     + (f" (did you mean {', '.join(map(repr, close))}?)" if close else
                        f" ({len(names)} analysts have decisions)" if names else " (no item is decided yet)"))


def _units(conn: Any, decided: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """item id -> the key of the judgement its decision of record belongs to. A campaign decision's
    rows (kind `bulk`, one per member) share one key: its campaign case and reviewer (one action:
    `decide` closes the case, and an undone one is superseded, so no other current row shares
    both; an undo's restoring rows copy the rows they restore, and stay in it). A correction of
    one member (`correct`, a label-error resolution: a `bulk` row superseding a row of its own
    case that is no "undo" row) is a judgement of its own, as is every other decision."""
    bulk = {i: d for i, d in decided.items() if d["kind"] == "bulk" and d["campaign_id"] is not None}
    ids = sorted({int(d["supersedes_id"]) for d in bulk.values() if d["supersedes_id"] is not None})
    before: dict[int, Any] = {}
    for k in range(0, len(ids), _CHUNK):
        before.update((r.id, r) for r in conn.execute(
            select(D.c.id, D.c.case_id, D.c.kind).where(D.c.id.in_(ids[k:k + _CHUNK]))))
    keys: dict[str, tuple[Any, ...]] = {}
    for i, d in decided.items():
        prev = before.get(d["supersedes_id"]) if i in bulk else None
        correction = prev is not None and prev.case_id == d["case_id"] and prev.kind != "undo"
        keys[i] = ("campaign", d["case_id"], d["reviewer"]) if i in bulk and not correction else ("item", i)
    return keys


def _appeal_meta(meta: Any, appeals_queue: str) -> bool:
    """A case's meta marks an appeal (`labeling.decisions._is_appeal`: filed, or escalated from the
    appeals queue)."""
    return isinstance(meta, dict) and (bool(meta.get("appeal")) or meta.get("escalated_from") == appeals_queue)


def _unit_meta(decision: Mapping[str, Any], members: int, key: tuple[Any, ...]) -> dict[str, Any]:
    """What a drawn case stands for, for the lead (never shown to the re-reviewer): a single
    decision, or one member of a campaign decision covering `members` items."""
    if key[0] != "campaign":
        return {"kind": "single decision", "members": 1}
    return {"kind": "campaign decision", "members": members, "campaign_id": decision["campaign_id"],
            "campaign_case_id": decision["case_id"]}


def draw_rereviews(store: Store, config: QueueConfig, lead: Actor, n: int, *, analyst: Optional[str] = None,
                   seed: Optional[int] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Queue `n` decisions, drawn uniformly (of `analyst`'s decisions if given), for blind
    re-review: a campaign decision counts once, through one of its members (`_units`). Items with
    a waiting, claimed or escalated re-review already are not drawn twice, nor is a campaign
    decision one of whose members waits for one; an item whose appeal waits is not drawn (a
    campaign decision is re-reviewed through another member).

    Needs `qa_review`; an `analyst` who never decided an item is refused (`_check_analyst`).
    `seed` fixes the draw (the same candidates, the same items); None draws one from the OS: a
    fixed default let an analyst work out which of their decisions a draw would take. Returns the
    number of candidates (decisions), the case ids created, the queue and the seed (to repeat the
    draw); `campaign_decisions`, where the draw took any: which case re-reviews which of them.
    `now`: an aware time is converted to naive UTC, as the store keeps times."""
    check_permission(lead, "qa_review", "draw re-reviews")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise QueueError(f"the number of re-reviews must be a positive whole number, not {n!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)  # recorded below: the draw can be repeated
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise QueueError(f"the seed of a re-review draw must be a whole number of 0 or more, not {seed!r}")
    queue = config.label_errors.queue
    if queue is None or queue not in config.queues:
        raise QueueError("no label_errors.queue in queues.yaml: name the lead's re-review queue there")
    now = utc_naive(now) if now is not None else utcnow()
    ids: list[int] = []
    with store.read() as conn:  # the big read, outside the writers' lock (SQLite's blocks claims)
        decided = current_decisions(conn, kinds=REVIEWED_KINDS)
        if analyst is not None and not any(d["reviewer"] == analyst for d in decided.values()):
            _check_analyst(conn, analyst)
        keys = _units(conn, decided)
    with store.begin() as conn:
        # What waits for a re-review, drawn and written under the case writers' lock: two leads
        # drawing at once must not queue the same item twice (each reading the other's as absent).
        serialise(conn, "case-builds")
        # Escalated ones too: an escalated re-review waits in the escalation queue (its home kept in
        # `escalated_from`), and drawing its item again made two re-reviews of one decision. So do
        # the label-error scan's cases (not audit cases): a blind draw beside one re-reviewed twice.
        pending = {r.item_id for r in conn.execute(select(C.c.item_id, C.c.queue, C.c.meta).where(
            C.c.queue.in_([queue, config.escalation_queue]),
            C.c.state.in_(["open", "claimed", "escalated"])))
            if r.queue == queue or (r.meta if isinstance(r.meta, dict) else {}).get("escalated_from") == queue}
        # An item whose appeal waits is the appeal's to settle (a re-review answer supersedes the
        # decision under appeal), as a campaign decision leaves such a member alone.
        appealed = {r.item_id for r in conn.execute(select(C.c.item_id, C.c.queue, C.c.meta).where(
            C.c.queue.in_([config.appeals_queue, config.escalation_queue]), C.c.campaign_id.is_(None),
            C.c.state.in_(["open", "claimed", "escalated"])))
            if r.queue == config.appeals_queue or _appeal_meta(r.meta, config.appeals_queue)}
        units: dict[tuple[Any, ...], list[str]] = {}
        for i in sorted(decided):
            units.setdefault(keys[i], []).append(i)
        busy = {keys[i] for i in pending if i in keys}  # a judgement one of whose items waits already
        candidates = sorted(((m, free) for k, m in units.items()
                             if k not in busy and (analyst is None or decided[m[0]]["reviewer"] == analyst)
                             and (free := [i for i in m if i not in appealed])),
                            key=lambda u: u[0][0])  # a single decision's order as before: by item id
        rng = np.random.default_rng(seed)
        picked = sorted(rng.choice(len(candidates), size=min(n, len(candidates)), replace=False).tolist()) \
            if candidates else []
        rows, units_of = [], []
        for j in picked:
            members, free = candidates[j]
            item = free[int(rng.integers(len(free)))] if len(free) > 1 else free[0]
            unit = _unit_meta(decided[item], len(members), keys[item])
            units_of.append(unit)
            rows.append({"item_id": item, "campaign_id": None, "queue": queue, "state": config.waiting_state(queue),
                         "priority": float(rng.random()), "priority_reason": REREVIEW_REASON,
                         "predicted_label": None, "due_at": None, "is_audit": True, "audit_inclusion": None,
                         "meta": {"rereview": {"drawn": len(picked), "candidates": len(candidates),
                                               "analyst": analyst, "unit": unit}},
                         "created_at": now, "updated_at": now})
        for row in rows:
            ids.append(conn.execute(insert(C).values(**row).returning(C.c.id)).scalar_one())
        campaigns = [{"case_id": cid, "item_id": row["item_id"], **{k: v for k, v in u.items() if k != "kind"}}
                     for cid, row, u in zip(ids, rows, units_of) if u["kind"] == "campaign decision"]
        if rows:
            audit.record(conn, lead, "cases.rereview", "queue", None,
                         {"queue": queue, "drawn": len(ids), "candidates": len(candidates), "analyst": analyst,
                          "seed": seed, "items": sum(len(m) for m, _ in candidates), "campaign_decisions": len(campaigns)})
    out = {"queue": queue, "candidates": len(candidates), "drawn": len(ids), "case_ids": ids, "seed": seed}
    if campaigns:
        out["campaign_decisions"] = campaigns
    return out
