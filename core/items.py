"""Read-side queries over items: what `workbench status` and `workbench items` show.

An item row carries its source label, its prediction of record, its campaign and its case, so a
script reading `items --json` sees the whole loop for that item in one object.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from sqlalchemy import func, select

from .labels import current_decisions
from .predictions import champion_version, predictions_of_record, record_ids
from .schema import MAX_ROW_ID, AuditEvent, Campaign, CampaignMember, Case, Decision, Item, Prediction
from .text import has_lone_surrogate

PAGE = 1000
MAX_ROWS = 2**63 - 1  # the most LIMIT and OFFSET hold on both stores (SQLite's own integer)


def _storable(value: str) -> bool:
    """False for a string no stored id or label holds, which a query cannot carry: a NUL (ingest
    refuses one, PostgreSQL refuses it in a query: a DataError) or a lone surrogate (UTF-8 cannot
    encode it: a UnicodeEncodeError on both stores). Looking one up finds nothing."""
    return "\x00" not in value and not has_lone_surrogate(value)


def store_status(store: Any) -> dict[str, Any]:
    """Counts of everything, plus breakdowns per source, policy label, case state and prediction."""
    def count(conn: Any, table: Any) -> int:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()

    def group(conn: Any, col: Any) -> dict[str, int]:
        rows = conn.execute(select(col, func.count()).group_by(col).order_by(func.count().desc()))
        return {str(k) if k is not None else "(none)": n for k, n in rows}

    # One snapshot (PostgreSQL's READ COMMITTED would give each count its own moment, so the
    # totals and their breakdowns could disagree while an ingest runs; SQLite's read is one already).
    with store.read(snapshot=True) as conn:
        by_prediction = conn.execute(
            select(Prediction.label, func.count()).where(Prediction.id.in_(record_ids(conn)))
            .group_by(Prediction.label)).all()
        champion = champion_version(conn)
        return {
            "items": count(conn, Item),
            "predictions": count(conn, Prediction),
            "campaigns": count(conn, Campaign),
            "cases": count(conn, Case),
            "decisions": count(conn, Decision),
            "audit_events": count(conn, AuditEvent),
            "by_source": group(conn, Item.source),
            "by_label": group(conn, Item.policy_label),
            "by_state": group(conn, Case.state),
            "by_prediction": {k: n for k, n in by_prediction},
            "champion": champion,
        }


def iter_items(store: Any, source: Optional[str] = None, label: Optional[str] = None,
               predicted: Optional[str] = None, state: Optional[str] = None,
               campaign: Optional[int] = None, limit: Optional[int] = 20,
               offset: int = 0) -> Iterator[dict[str, Any]]:
    """Items matching the filters, in id order, each with prediction, campaign and case attached.

    Pages through the table so `limit=None` streams every item without loading them all. Each
    page after the first starts after the last id seen (not at an offset): items ingested while
    the listing runs never make a page repeat or skip an item. A filter no stored row can match
    (a campaign number past the 32-bit id column, a NUL or lone surrogate in a text filter) or an
    offset past the last row lists nothing; a negative offset counts as 0.
    """
    offset = max(offset, 0)
    if offset > MAX_ROWS or (campaign is not None and not 1 <= campaign <= MAX_ROW_ID) or \
            not all(_storable(v) for v in (source, label, predicted, state) if v):
        return
    query = select(Item.__table__).order_by(Item.id)
    if source:
        query = query.where(Item.source == source)
    if label:
        query = query.where(Item.policy_label == label)
    if predicted:
        with store.read() as conn:
            of_record = record_ids(conn)
        query = query.where(Item.id.in_(select(Prediction.item_id).where(
            Prediction.id.in_(of_record), Prediction.label == predicted)))
    if state:
        query = query.where(Item.id.in_(select(Case.item_id).where(Case.state == state)))
    if campaign is not None:
        query = query.where(Item.id.in_(select(CampaignMember.item_id).where(
            CampaignMember.campaign_id == campaign)))
    remaining = limit
    last: Optional[str] = None
    while remaining is None or remaining > 0:
        size = PAGE if remaining is None else min(PAGE, remaining)
        page_query = query.offset(offset) if last is None else query.where(Item.id > last)
        with store.read(snapshot=True) as conn:  # a row's prediction, case and decision of one moment
            page = conn.execute(page_query.limit(size)).mappings().all()
            if not page:
                return
            yield from _attach(conn, page)
        last = page[-1]["id"]
        if remaining is not None:
            remaining -= len(page)
        if len(page) < size:
            return


def _item_cases(conn: Any, ids: list[str]) -> dict[str, Any]:
    """Each item's own review case: the newest that is not a calibration copy (an appeal counts)."""
    C = Case.__table__
    out: dict[str, Any] = {}
    for row in conn.execute(select(C).where(C.c.item_id.in_(ids), C.c.calibration_set.is_(None))
                            .order_by(C.c.id)).mappings():
        out[row["item_id"]] = row
    return out


def _attach(conn: Any, page: list[Any]) -> Iterator[dict[str, Any]]:
    ids = [it["id"] for it in page]
    preds = predictions_of_record(conn, ids)
    cases = _item_cases(conn, ids)
    decided = current_decisions(conn, ids)
    camps = dict(conn.execute(select(CampaignMember.item_id, CampaignMember.campaign_id)
                              .where(CampaignMember.item_id.in_(ids))).all())
    for it in page:
        p, c, d = preds.get(it["id"]), cases.get(it["id"]), decided.get(it["id"])
        yield {
            **{k: it[k] for k in ("id", "source", "surface", "text", "author_id", "created_at",
                                  "source_label", "policy_label", "taxonomy_version", "metadata")},
            "prediction": None if p is None else {k: p[k] for k in (
                "model_version", "label", "score", "uncertainty", "scores", "flags")},
            "campaign_id": camps.get(it["id"]),
            "case": None if c is None else {k: c[k] for k in ("id", "queue", "state", "priority", "due_at")},
            "decision": None if d is None else {k: d[k] for k in ("id", "label", "action", "reviewer", "kind")},
        }


def get_item(store: Any, item_id: str) -> Optional[dict[str, Any]]:
    """One item with its prediction of record, campaign, case and current decision (the same
    view as `workbench items --json`), or None when there is no such item (as for an id no stored
    item can have: a NUL, a lone surrogate)."""
    if not _storable(item_id):
        return None
    with store.read(snapshot=True) as conn:
        rows = conn.execute(select(Item.__table__).where(Item.id == item_id)).mappings().all()
        return next(_attach(conn, rows), None)


def recent_audit_events(store: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` audit events, newest first: none for a limit of 0 or less (SQLite read
    LIMIT -1 as no limit and returned the whole log; PostgreSQL refused it), at most every event."""
    if limit <= 0:
        return []
    limit = min(limit, MAX_ROWS)
    with store.read() as conn:
        rows = conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]
