"""What one campaign decision touches, counted in the store: the numbers a page view shows.

Why: a campaign case's review packet, the Campaigns tab and `workbench cases preview` showed
`decisions.bulk_preview`, which plans the decision over every member in Python: on a scam wave of
100,000 members each page view read 100,000 members, their decisions and their cases. The view
needs only counts, so `plan_counts` asks one grouped statement (a few rows, whatever the size);
the decision itself still plans every member (`decisions._bulk_plan`), in its transaction, under
its locks. The rules are the plan's, each in one place: the hold rule (`held_by_other`) is the
SQL the plan itself runs; the appeal rule (`appeal_case`) is the SQL form of the plan's Python
test (`decisions._is_appeal`), kept beside it here because `decisions` imports this module; the
decision of record is `core.labels.current_decisions`' rule (`record_decision_ids`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (Connection, Numeric, and_, case, cast, exists, false, func, literal_column, or_, select,
                        true)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased

from core.labels import record_decision_ids
from core.schema import CampaignMember, Case, Decision

from .queue_config import QueueConfig

C = Case.__table__
CM = CampaignMember.__table__
D = Decision.__table__
WAITING = ("open", "escalated", "claimed")  # a member's own case that is still to be answered


def held_by_other(analyst: str, now: dt.datetime) -> Any:
    """A member's own case another analyst holds on a lease live at `now` (the lease clock): the
    plan leaves the member out (`decisions._bulk_plan` runs this very condition). A held
    calibration copy is no hold on the member: its answer never becomes the label of record."""
    return and_(C.c.campaign_id.is_(None), C.c.calibration_set.is_(None), C.c.state == "claimed",
                C.c.claimed_by != analyst, C.c.lease_expires_at > now)


def _truthy(dialect: str, doc: Any, key: str) -> Any:
    """`bool((doc or {}).get(key))` in SQL, `doc` a JSON object column: JSON null, false, 0, "",
    [] and {} (or no such key) are false, as Python reads them."""
    if dialect == "postgresql":
        node, text = doc.op("->")(key), doc.op("->>")(key)
        kind = func.json_typeof(node)
        return case((kind == "boolean", text == "true"), (kind == "number", cast(text, Numeric) != 0),
                    (kind == "string", text != ""),
                    (kind.in_(("array", "object")), and_(cast(node, JSONB) != literal_column("'[]'::jsonb"),
                                                         cast(node, JSONB) != literal_column("'{}'::jsonb"))),
                    else_=false())
    path = f"$.{key}"
    kind, value = func.json_type(doc, path), func.json_extract(doc, path)
    return case((kind == "true", true()), (kind.in_(("integer", "real")), value != 0), (kind == "text", value != ""),
                (kind == "array", func.json_array_length(doc, path) > 0), (kind == "object", value != "{}"),
                else_=false())


def _text_is(dialect: str, doc: Any, key: str, text: str) -> Any:
    """`(doc or {}).get(key) == text` in SQL: a JSON string equal to `text` (a number is not)."""
    if dialect == "postgresql":
        return and_(func.json_typeof(doc.op("->")(key)) == "string", doc.op("->>")(key) == text)
    path = f"$.{key}"
    return and_(func.json_type(doc, path) == "text", func.json_extract(doc, path) == text)


def appeal_case(config: Optional[QueueConfig], dialect: str) -> Any:
    """A member's own waiting case that keeps it out of a campaign decision as under appeal: the
    SQL form of `decisions._bulk_plan`'s test, `(meta or {}).get("appeal") or (config is not None
    and _is_appeal(case, config))` (in the appeals queue, filed as an appeal, or escalated from
    that queue). Change the two together. `dialect`: "sqlite" or "postgresql"."""
    rule = _truthy(dialect, C.c.meta, "appeal")
    if config is not None:
        rule = or_(C.c.queue == config.appeals_queue, rule,
                   _text_is(dialect, C.c.meta, "escalated_from", config.appeals_queue))
    return and_(C.c.campaign_id.is_(None), C.c.state.in_(WAITING), rule)


def plan_counts(conn: Connection, campaign_id: int, analyst: str, now: dt.datetime, existing: str,
                config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """The counts of `decisions._bulk_plan` for a campaign, asked of the store in one grouped
    statement (at most 3 x 2 x labels rows, whatever the campaign's size): `members`; those left out
    for an appeal (`skipped_appeal`: its label of record is an appeal's outcome, or it has an appeal
    case waiting), then those held by another (`held_by_others`), then, with `existing` "skip",
    those a human decided (`skipped_decided`); `will_decide` the rest, of which `already_decided`
    (by label) get a superseding decision. `now`: the lease clock (`claims.lease_clock`)."""
    record = record_decision_ids(CM, CM.c.campaign_id == campaign_id)
    of_record = aliased(D, name="of_record")
    mine = C.c.item_id == CM.c.item_id
    appealed = or_(of_record.c.kind == "appeal",
                   exists(select(1).select_from(C).where(mine, appeal_case(config, conn.dialect.name))))
    # the live holds of the whole store are few (one or two an analyst): read once, not per member
    held = CM.c.item_id.in_(select(C.c.item_id).where(C.c.item_id.is_not(None), held_by_other(analyst, now)))
    per_member = (select(case((appealed, "appeal"), (held, "held"), else_="left").label("fate"),
                         case((of_record.c.id.is_(None), 0), else_=1).label("decided"),
                         of_record.c.label.label("label"))
                  .select_from(CM.outerjoin(record, record.c.item_id == CM.c.item_id)
                               .outerjoin(of_record, of_record.c.id == record.c.id))
                  .where(CM.c.campaign_id == campaign_id).subquery("per_member"))
    rows = conn.execute(select(per_member.c.fate, per_member.c.decided, per_member.c.label, func.count())
                        .group_by(per_member.c.fate, per_member.c.decided, per_member.c.label)).all()
    fates = {"appeal": 0, "held": 0, "left": 0}
    labels: dict[str, int] = {}
    for fate, decided, label, n in rows:
        fates[fate] += int(n)
        if fate == "left" and decided:
            labels[label] = labels.get(label, 0) + int(n)
    decided_left = sum(labels.values())
    skipped = decided_left if existing == "skip" else 0
    labels = {} if existing == "skip" else dict(sorted(labels.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    return {"members": sum(fates.values()), "skipped_appeal": fates["appeal"], "held_by_others": fates["held"],
            "skipped_decided": skipped, "will_decide": fates["left"] - skipped, "existing": existing,
            "already_decided": decided_left - skipped, "already_decided_labels": labels}
