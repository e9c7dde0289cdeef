"""What evaluation reads from the store: human decisions joined with what the model said.

Two readers, shared by the report, the override telemetry, the slices and the analyst views so
they all count the same things:

- `decision_rows`: each item's *current* human label (the label of record) with the scores the
  model showed when it was decided, the QA-audit flag and inclusion probability of its case,
  its queue, and the item's source, surface, language, campaign membership and text (the text
  never leaves the server: slices only match identity terms on it).
- `decision_events`: every labelling act as it happened (corrections and re-reviews included),
  for rates over time and per analyst.

A campaign decided in bulk counts once per distinct text (`one_per_labelling_act`).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Optional, Sequence

from sqlalchemy import select

from core.labels import AUTHORITATIVE_KINDS, current_decisions
from core.schema import CampaignMember, Case, Decision, Item, Prediction
from core.store import Store
from core.taxonomy import Taxonomy
from labeling.learning import served_as
from labeling.rereview import as_acts, is_rereview

from .estimates import as_probability

_CHUNK = 900  # stay under SQLite's bound-parameter limit
EVENT_KINDS = ("review", "qa_audit", "bulk", "escalation")  # acts judged against the model
PENDING_STATES = ("open", "claimed", "escalated")  # a case not yet decided


def audit_response(conn: Any) -> dict[float, float]:
    """Per inclusion probability of the traffic QA-audit draw, the share of the cases it drew
    that are decided so far (re-reviews, a draw of decided items, are no part of it). The
    estimators weight a band's decided audits up by its inverse
    (`estimates.inverse_probability_weights`)."""
    C = Case.__table__
    drawn: Counter[float] = Counter()
    decided: Counter[float] = Counter()
    for c in conn.execute(select(C.c.audit_inclusion, C.c.state, C.c.meta, C.c.priority_reason)
                          .where(C.c.is_audit.is_(True), C.c.audit_inclusion.isnot(None))):
        p = as_probability(c.audit_inclusion)
        if is_rereview(c._mapping) or p is None:  # no probability (a corrupt row): `decision_rows` says None
            continue
        drawn[p] += 1
        decided[p] += c.state not in PENDING_STATES
    return {p: decided[p] / n for p, n in drawn.items()}


def one_per_labelling_act(conn: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decision rows with a bulk decision's members collapsed to one row per distinct text.

    A campaign decided in one action labels hundreds of copies of a few texts: counted as
    independent labels they would swamp every rate. Rows of other kinds pass through unchanged.
    """
    I = Item.__table__
    bulk_ids = [r["item_id"] for r in rows if r["kind"] == "bulk"]
    hashes: dict[str, str] = {}
    for i in range(0, len(bulk_ids), _CHUNK):
        hashes.update(dict(conn.execute(select(I.c.id, I.c.text_hash).where(I.c.id.in_(bulk_ids[i:i + _CHUNK]))).all()))
    return collapse_bulk(rows, hashes)


def collapse_bulk(rows: list[dict[str, Any]], hashes: dict[str, str]) -> list[dict[str, Any]]:
    """`rows` with each bulk decision's rows cut to one per (case, label, text hash); `hashes`
    maps item id to its text hash (an item missing from it counts as its own text)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        if r["kind"] == "bulk":
            key = (r["case_id"], r["label"], hashes.get(r["item_id"], r["item_id"]))
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _chunked(conn: Any, query: Any, column: Any, keys: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    keys = list(dict.fromkeys(k for k in keys if k is not None))
    for i in range(0, len(keys), _CHUNK):
        out.extend(conn.execute(query.where(column.in_(keys[i:i + _CHUNK]))).all())
    return out


def _language(meta: Any) -> Optional[str]:
    if isinstance(meta, dict):
        v = meta.get("language") or meta.get("lang")
        return str(v) if v else None
    return None


def _case_chains(conn: Any, rows: Sequence[Mapping[str, Any]]) -> dict[int, list[Any]]:
    """Decision id of each row -> the case ids of its chain: its own, then those of the decisions it
    supersedes, back to one that supersedes nothing. Why: an appeal's outcome, a lead's re-review, a
    campaign decision or a QA answer after one supersedes a decision from a case of its own, and the
    traffic QA-audit draw is a fact about the item, not about whichever case decided it last: read
    from the last case alone, the audit lost its appealed items (reversals of the model's calls)."""
    D = Decision.__table__
    link = {d.id: (d.supersedes_id, d.case_id) for d in _chunked(
        conn, select(D.c.id, D.c.supersedes_id, D.c.case_id), D.c.item_id, [r["item_id"] for r in rows])}
    out: dict[int, list[Any]] = {}
    for r in rows:
        at, chain = r["id"], [r["case_id"]]
        seen = {at}
        while link.get(at, (None, None))[0] in link and link[at][0] not in seen:
            at = link[at][0]
            seen.add(at)
            chain.append(link[at][1])
        out[r["id"]] = chain
    return out


def _audit_and_origin(chain: Sequence[Any]) -> tuple[Any, Any]:
    """(the traffic QA-audit case of a chain's cases, else None; the case it started in). Only a QA
    draw from traffic is the audit sample: a lead's re-review of decided items (also an `is_audit`
    case, decided as `qa_audit`) is not, and its label counts as any other decision."""
    present = [c for c in chain if c is not None]
    audit = next((c for c in present if c.is_audit and not is_rereview(c._mapping)), None)
    return audit, (present[-1] if present else None)


def decision_rows(store: Store, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Current human labels joined with the scores the model showed when each was decided.

    Each row: item_id, human, model, model_version, decided_at, kind, reviewer, is_audit (a decision
    of the label's chain was made on a case of the QA draw from traffic, whatever superseded it
    since: `_case_chains`; a lead's re-review, `labeling.rereview.is_rereview`, is no such case),
    inclusion (the audit draw's probability; None before it was stored, or where the stored value
    is no probability: `estimates.as_probability`), response (the share of
    that probability's drawn audits decided so far: `audit_response`), queue and served (of that
    audit case, else of the case the chain started in: why it was served,
    `labeling.learning.served_as`; None without a case), proba (over
    `taxonomy.labels`, None when the prediction is gone), source, surface, language, campaign
    (member of one), text, retired (the human's or the model's label is no longer a policy of
    `taxonomy`).

    A retired label is kept as written, not dropped: dropping it hid the evidence against the
    model (two of six audited "scam" calls labelled spam by humans read as precision 4/4 once spam
    was retired, not 4/6). Kept, the model's current-policy call on a retired human label counts
    as its false positive, a retired model label as a miss of the human's current policy, and both
    stay in the prevalence and accuracy denominators; no policy of the taxonomy is the retired one,
    so it gets no figures of its own (`retired_counts` says how many rows carry one).
    """
    P, C, I, CM = Prediction.__table__, Case.__table__, Item.__table__, CampaignMember.__table__
    with store.read() as conn:
        decided = current_decisions(conn, kinds=AUTHORITATIVE_KINDS)
        judged = [d for d in decided.values() if d["model_version"] and d["model_label"]]
        chains = _case_chains(conn, judged)
        cases = {c.id: c for c in _chunked(conn, select(C.c.id, C.c.is_audit, C.c.audit_inclusion, C.c.queue,
                                                           C.c.meta, C.c.priority_reason),
                                            C.c.id, [c for chain in chains.values() for c in chain])}
        # a campaign's copies collapse to one per text: an audited copy stands for it (the first copy
        # did, and an audited item a campaign decision re-labelled dropped out of the audit sample)
        audited = {r["id"] for r in judged
                   if _audit_and_origin([cases.get(c) for c in chains[r["id"]]])[0] is not None}
        keep = {r["id"] for r in one_per_labelling_act(conn, sorted(judged, key=lambda r: r["id"] not in audited))}
        rows = [r for r in judged if r["id"] in keep]
        ids = [r["item_id"] for r in rows]
        scores = {(p.item_id, p.model_version): p.scores
                  for p in _chunked(conn, select(P.c.item_id, P.c.model_version, P.c.scores), P.c.item_id, ids)}
        items = {i.id: i for i in _chunked(conn, select(I.c.id, I.c.source, I.c.surface, I.c["metadata"].label("meta"),
                                                        I.c.text), I.c.id, ids)}
        members = {m for (m,) in _chunked(conn, select(CM.c.item_id), CM.c.item_id, ids)}
        response = audit_response(conn)
    out = []
    for r in rows:
        sc = scores.get((r["item_id"], r["model_version"]))
        audit_case, origin = _audit_and_origin([cases.get(c) for c in chains[r["id"]]])
        case = audit_case or origin
        item = items.get(r["item_id"])
        is_audit = audit_case is not None if case is not None else r["kind"] == "qa_audit"
        inclusion = as_probability(case.audit_inclusion) if is_audit and case is not None else None
        out.append({"item_id": r["item_id"], "human": r["label"], "model": r["model_label"],
                    "model_version": r["model_version"], "decided_at": r["created_at"], "kind": r["kind"],
                    "reviewer": r["reviewer"], "is_audit": is_audit,
                    "inclusion": inclusion, "response": response.get(inclusion) if inclusion else None,
                    "queue": case.queue if case is not None else None,
                    "served": served_as(dict(case._mapping, is_audit=is_audit)) if case is not None else None,
                    "proba": score_row(sc, list(taxonomy.labels), missing=0.0) if sc else None,
                    "source": item.source if item else None, "surface": item.surface if item else None,
                    "language": _language(item.meta) if item else None,
                    "campaign": r["item_id"] in members, "text": item.text if item else "",
                    "retired": r["label"] not in taxonomy.policies or r["model_label"] not in taxonomy.policies})
    return out


def retired_counts(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy) -> dict[str, Any]:
    """How many `decision_rows` carry a retired policy label (the human's or the model's), how many
    of them are QA audits, and the rows per retired label: the report states it beside the figures
    that keep those rows, so a reader knows how much rests on policies no longer configured."""
    labels: Counter[str] = Counter()
    n = audit = 0
    for r in rows:
        gone = {str(lab) for lab in (r["human"], r["model"]) if lab not in taxonomy.policies}
        if gone:
            n, audit = n + 1, audit + bool(r["is_audit"])
            labels.update(gone)
    return {"decisions": n, "qa_audit": audit, "labels": dict(sorted(labels.items()))}


def score_row(scores: Any, labels: list[str], missing: float = float("nan")) -> list[float]:
    """One prediction's score per label: NaN for a null score or one that is no number (a broken
    model's row), which the checks leave out and count (`float(None)` raised, ending the report);
    `missing` for a label the prediction has no key for (drift: NaN; the evaluation rows: 0.0, a
    label added to the taxonomy after the model, so its older predictions stay usable)."""
    sc = scores if isinstance(scores, dict) else {}
    out = []
    for lab in labels:
        v = sc.get(lab, missing)
        try:
            out.append(float(v) if v is not None and not isinstance(v, bool) else float("nan"))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def decision_events(store: Store, kinds: Sequence[str] = EVENT_KINDS) -> list[dict[str, Any]]:
    """Every decision of `kinds` as made (superseded ones included), with its case's queue.

    Each row: id, case_id, item_id, reviewer, kind, label, action, model_version, model_label,
    model_score, is_override, supersedes_id, created_at, queue. Bulk members collapse to one row
    per distinct text.
    """
    D, C = Decision.__table__, Case.__table__
    with store.read() as conn:
        rows = [dict(r) for r in conn.execute(
            select(D.c.id, D.c.case_id, D.c.item_id, D.c.reviewer, D.c.kind, D.c.label, D.c.action,
                   D.c.model_version, D.c.model_label, D.c.model_score, D.c.is_override, D.c.supersedes_id,
                   D.c.created_at, C.c.queue).outerjoin(C, C.c.id == D.c.case_id)
            .where(D.c.kind.in_(list(kinds))).order_by(D.c.id)).mappings()]
        return as_acts(one_per_labelling_act(conn, rows))


def taken_back(events: Sequence[Mapping[str, Any]]) -> set[int]:
    """Ids of the `events` that are no judgement of their reviewer's: decisions an undo took back
    (an "undo" row supersedes them: a slip, not a verdict) and the restoring rows an undo wrote (a
    copy of the decision the undone one had replaced, superseding the "undo" row; `labeling.undo`).

    `events` must include the "undo" rows (`decision_events(store, kinds=(..., "undo"))`)."""
    undo_rows = {e["id"]: e["supersedes_id"] for e in events if e["kind"] == "undo"}
    out = {s for s in undo_rows.values() if s is not None}
    out |= {e["id"] for e in events if e["kind"] != "undo" and e["supersedes_id"] in undo_rows}
    return out


def first_judgements(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The `events` (labelling acts, `labeling.rereview.as_acts`, with their "undo" rows) that judge
    the model's suggestion for the first time: no "undo" row, nothing an undo took back or restored
    (`taken_back`), no correction (it supersedes an earlier act of the item: rework). One rule for
    the override rate of the report (`overrides`) and of the operations KPIs (`ops`)."""
    gone = taken_back(events)
    return [e for e in events if e["kind"] != "undo" and e["id"] not in gone and e["supersedes_id"] is None]
