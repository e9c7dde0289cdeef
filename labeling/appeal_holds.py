"""An item whose appeal waits is the appeal's to settle.

While an appeal of an item's decision waits (in the appeals queue, held, or escalated from it),
only its resolution (`labeling.appeals.resolve_appeal`) may replace that decision. A blind QA
re-review (`labeling.rereview`) or a label-error re-review (`labeling.label_errors`) answers with
a decision that supersedes the item's decision of record, so such an answer is refused while the
appeal waits (`decide`, under the item's decision lock, which filing an appeal takes too), and
the label-error scan does not queue such an item (a campaign decision leaves it alone as well).
So is any other answer on one of the item's own cases (an ordinary review or an escalation left
open beside the decision under appeal, e.g. a campaign member's case claimed while the campaign
was decided): its decision would become the label of record in the appeal's place.

Once the appeal is resolved its outcome stands (`closes_behind_appeal`): a case that would write
the item's label of record over it (a blind re-review or QA audit drawn before the appeal, or an
ordinary case left open beside it) is closed without a decision, and its answer is refused in one
line that says so. Refused and left open it would wait for ever (served on every `n`); answered,
the QA answer superseded the appeal's outcome (`core.labels.record_key`: the later decision is the
label of record), which neither the draw nor a campaign decision does. A label-error case is left
to `labeling.decisions._label_review`: it names the decision it re-reviews, and one superseded
since (by the appeal's outcome too) closes it as `superseded`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping, Optional

from sqlalchemy import Connection, func, select, update

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions
from core.principals import Actor, actor_name
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


def check_no_waiting_appeal(conn: Connection, config: QueueConfig, item_id: Optional[str],
                            what: str = "re-review") -> None:
    """Refuse an answer on `item_id` while its appeal waits (one line; `what` the case is). Call it
    holding the item's decision lock (`core.labels.lock_item_decisions`): an appeal is filed under it."""
    if not item_id:
        return
    case_id = waiting_appeals(conn, config, [item_id]).get(item_id)
    if case_id is not None:
        raise DecisionError(f"item {item_id!r} has an appeal waiting (case {case_id}): the appeal settles its "
                            f"label; skip this {what}")


def writes_label_of_record(case: Mapping[str, Any]) -> bool:
    """An item case whose decision becomes the item's label of record (a review, an escalation, a QA
    audit or blind re-review): not a campaign case (its plan leaves appealed members out), nor a
    calibration copy (its answer is no label of record)."""
    return case["campaign_id"] is None and bool(case["item_id"]) and not case["calibration_set"]


def closes_behind_appeal(conn: Connection, case: Mapping[str, Any], who: Actor, now: dt.datetime,
                         needs: Optional[str] = None) -> Optional[str]:
    """When `case`'s item's label of record is an appeal's outcome, close `case` without a decision
    (meta `closed_behind_appeal`, an audit event) and return the one-line refusal for its answer;
    None otherwise. Call it under the item's decision lock and the case's row lock, on a case
    `writes_label_of_record` and not of the label-error queue; the caller commits, then refuses.
    `needs`: the permission its answer needs (`qa_review` for a re-review), needed to close it too."""
    outcome = current_decisions(conn, [case["item_id"]]).get(case["item_id"])
    if outcome is None or outcome["kind"] != "appeal":
        return None
    if needs is not None:
        check_permission(who, needs, f"case {case['id']}")
    who = actor_name(who)
    note = {"decision_id": int(outcome["id"]), "appeal_case_id": outcome["case_id"], "closed_by": who}
    conn.execute(update(C).where(C.c.id == case["id"]).values(
        state="decided", resolved_at=now, claimed_by=who, lease_expires_at=None, updated_at=now,
        first_action_at=func.coalesce(C.c.first_action_at, now),
        meta=dict(case["meta"] or {}, closed_behind_appeal=note)))
    audit.record(conn, who, "case.closed_behind_appeal", "case", case["id"], note)
    return (f"case {case['id']} closed without a decision: item {case['item_id']!r} was appealed since it was "
            f"queued, and its appeal's outcome (decision {outcome['id']}, appeal case {outcome['case_id']}) "
            f"stands as its label; nothing was saved")
