"""An item whose appeal waits is the appeal's to settle.

While an appeal of an item's decision waits (in the appeals queue, held, or escalated from it),
only its resolution (`labeling.appeals.resolve_appeal`) may replace that decision. A blind QA
re-review (`labeling.rereview`) or a label-error re-review (`labeling.label_errors`) answers with
a decision that supersedes the item's decision of record, so such an answer is refused while the
appeal waits (`decide`, under the item's decision lock, which filing an appeal takes too), and
the label-error scan does not queue such an item (a campaign decision leaves it alone as well).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from sqlalchemy import Connection, select

from core.schema import Case

from .errors import DecisionError
from .queue_config import QueueConfig

C = Case.__table__
WAITING = ("open", "claimed", "escalated")
_CHUNK = 900  # stay under SQLite's bound-parameter limit


def _is_appeal_row(row: Any, config: QueueConfig) -> bool:
    """A case row of an appeal: in the appeals queue, filed as one, or escalated from that queue
    (`labeling.decisions._is_appeal`)."""
    meta = row.meta if isinstance(row.meta, dict) else {}
    return row.queue == config.appeals_queue or bool(meta.get("appeal")) \
        or meta.get("escalated_from") == config.appeals_queue


def waiting_appeals(conn: Connection, config: QueueConfig,
                    item_ids: Optional[Iterable[str]] = None) -> dict[str, int]:
    """item id -> the id of its waiting appeal case (open, claimed or escalated), of `item_ids`
    (every item when None), in the caller's transaction."""
    base = select(C.c.id, C.c.item_id, C.c.queue, C.c.meta).where(
        C.c.queue.in_([config.appeals_queue, config.escalation_queue]), C.c.campaign_id.is_(None),
        C.c.item_id.is_not(None), C.c.state.in_(WAITING)).order_by(C.c.id)
    if item_ids is None:
        rows = list(conn.execute(base))
    else:
        ids = sorted(set(item_ids))
        rows = [r for k in range(0, len(ids), _CHUNK) for r in conn.execute(base.where(C.c.item_id.in_(ids[k:k + _CHUNK])))]
    out: dict[str, int] = {}
    for r in rows:
        if _is_appeal_row(r, config):
            out.setdefault(r.item_id, int(r.id))
    return out


def check_no_waiting_appeal(conn: Connection, config: QueueConfig, item_id: Optional[str]) -> None:
    """Refuse a re-review answer on `item_id` while its appeal waits (one line). Call it holding
    the item's decision lock (`core.labels.lock_item_decisions`): an appeal is filed under it."""
    if not item_id:
        return
    case_id = waiting_appeals(conn, config, [item_id]).get(item_id)
    if case_id is not None:
        raise DecisionError(f"item {item_id!r} has an appeal waiting (case {case_id}): the appeal settles its "
                            f"label; skip this re-review")
