"""The label of record: an item's human label is its latest decision that nothing supersedes.

"Latest" is the store's order, the decision's id (`record_key`), never its `created_at`: that is
the writing server's clock, and two servers a few minutes apart (or a caller's `now`) let an
older decision outrank a newer one. Every writer of an item's decisions holds its decision lock
(`lock_item_decisions`), so on either database its ids follow the order they were committed in.

Decisions are append-only, so the label is derived, never stored: a correction or an appeal
outcome supersedes an earlier row and the derived label follows. Calibration decisions measure
agreement between analysts and are left out by default (they do not enforce anything).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import Connection, Subquery, func, select
from sqlalchemy.orm import aliased

from .schema import Decision
from .store import Store, serialise

AUTHORITATIVE_KINDS: tuple[str, ...] = ("review", "qa_audit", "appeal", "bulk", "escalation")

_D = Decision.__table__
_CHUNK = 900  # stay under SQLite's bound-parameter limit


def record_key(row: Any) -> int:
    """The order of an item's decisions for the label of record (the later the greater): its id,
    the store's insertion order (see the module's docstring), the one rule every reader uses."""
    return int(row["id"])


def lock_item_decisions(conn: Connection, item_id: str) -> None:
    """Hold `item_id`'s decision lock until the transaction ends. A writer that supersedes one of
    an item's decisions (a correction, an undo, an appeal's outcome, a re-review's verdict) takes
    it before reading what supersedes what, so two at once cannot both supersede one decision
    (a fork would leave the label of record to whichever was written last)."""
    serialise(conn, f"item-decisions:{item_id}")


def current_decisions(conn: Connection, item_ids: Optional[Iterable[str]] = None,
                      kinds: Sequence[str] = AUTHORITATIVE_KINDS) -> dict[str, dict[str, Any]]:
    """item id -> its latest (`record_key`) non-superseded decision row (as a dict), in the caller's
    transaction."""
    later = aliased(_D)
    # An anti-join, not NOT EXISTS: before supersedes_id had an index (migration 0014) SQLite ran the
    # NOT EXISTS once per row (quadratic: 10,000 decisions took 10 s); the join uses the index now.
    base = (select(_D).select_from(_D.outerjoin(later, later.c.supersedes_id == _D.c.id))
            .where(_D.c.kind.in_(list(kinds)), _D.c.item_id.is_not(None), later.c.id.is_(None)))
    out: dict[str, dict[str, Any]] = {}

    def take(rows: Iterable[Any]) -> None:
        for r in rows:
            prev = out.get(r["item_id"])
            if prev is None or record_key(r) > record_key(prev):
                out[r["item_id"]] = dict(r)

    if item_ids is None:
        take(conn.execute(base).mappings())
    else:
        ids = list(dict.fromkeys(item_ids))
        for i in range(0, len(ids), _CHUNK):
            take(conn.execute(base.where(_D.c.item_id.in_(ids[i:i + _CHUNK]))).mappings())
    return out


def record_decision_ids(within: Any = None, where: Any = None, name: str = "record",
                        kinds: Sequence[str] = AUTHORITATIVE_KINDS, on: Any = None) -> Subquery:
    """A subquery (item_id, id) of each item's decision of record: `current_decisions`' rule in
    SQL (the greatest `record_key`, the id, among its decisions of `kinds` that nothing
    supersedes), so counting it over 100,000 items is one statement. `within` (a table with
    `item_id`, joined; or any table, joined `on`) and `where` keep it to the items a caller counts."""
    later = aliased(_D)
    source = _D if within is None else _D.join(within, within.c.item_id == _D.c.item_id if on is None else on)
    q = (select(_D.c.item_id, func.max(_D.c.id).label("id"))
         .select_from(source.outerjoin(later, later.c.supersedes_id == _D.c.id))
         .where(_D.c.kind.in_(list(kinds)), _D.c.item_id.is_not(None), later.c.id.is_(None)))
    return (q if where is None else q.where(where)).group_by(_D.c.item_id).subquery(name)


def current_labels(store: Store, item_ids: Optional[Iterable[str]] = None,
                   kinds: Sequence[str] = AUTHORITATIVE_KINDS) -> dict[str, dict[str, Any]]:
    """`current_decisions` in its own read transaction."""
    with store.read() as conn:
        return current_decisions(conn, item_ids, kinds)
