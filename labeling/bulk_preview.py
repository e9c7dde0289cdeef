"""What deciding a campaign case would do, for a person to read: exact counts and a few names.

Why: `workbench cases preview` showed `decisions.bulk_preview`, the decision's own plan, which
reads every member, its decision of record and its cases in Python: on a scam wave of 100,000
members one preview read 100,000 members and listed every one left out. A person reads counts and
a few names, so `preview` asks the store for the counts (`bulk_counts.plan_counts`, one grouped
statement) and for at most `shown` named members of each kind left out (one statement ranking
them in SQL), in one snapshot, so the names agree with the counts; what it asks of the store is
the same whatever the size of the campaign. The decision itself still plans every member
(`decisions._bulk_plan`) in its transaction, under its locks.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import Connection, case, exists, func, or_, select
from sqlalchemy.orm import aliased

from core.labels import record_decision_ids
from core.principals import Actor, actor_name
from core.schema import CampaignMember, Case, Decision
from core.store import Store

from .bulk_counts import appeal_case, held_by_other, plan_counts
from .claims import lease_clock
from .decisions import EXISTING, _check_campaign, _default_existing
from .errors import DecisionError
from .queue_config import QueueConfig

C = Case.__table__
CM = CampaignMember.__table__
D = Decision.__table__
SHOWN = 20  # named members of each kind left out; the counts are always the whole campaign's
MAX_SHOWN = 1000
NAMED = {"appeal": "skipped_appeal", "held": "held_by_others", "decided": "skipped_decided"}


def _named(conn: Connection, campaign_id: int, analyst: str, now: dt.datetime, existing: str,
           config: Optional[QueueConfig], shown: int) -> dict[str, list[tuple[str, Optional[str]]]]:
    """The first `shown` members (by item id) of each kind the plan leaves out, with the holder of
    a held one: {"appeal" | "held" | "decided": [(item id, holder)]}. The plan's order of the rules
    (`bulk_counts.plan_counts`): an appeal first, then a hold by another, then (`existing` "skip")
    a human decision of record."""
    record = record_decision_ids(CM, CM.c.campaign_id == campaign_id)
    of_record = aliased(D, name="of_record")
    appealed = or_(of_record.c.kind == "appeal", exists(select(1).select_from(C).where(
        C.c.item_id == CM.c.item_id, appeal_case(config, conn.dialect.name))))
    held = CM.c.item_id.in_(select(C.c.item_id).where(C.c.item_id.is_not(None), held_by_other(analyst, now)))
    rules = [(appealed, "appeal"), (held, "held")]
    if existing == "skip":
        rules.append((of_record.c.id.is_not(None), "decided"))
    fate = case(*rules, else_=None)
    ranked = (select(CM.c.item_id, fate.label("fate"),
                     func.row_number().over(partition_by=fate, order_by=CM.c.item_id).label("n"))
              .select_from(CM.outerjoin(record, record.c.item_id == CM.c.item_id)
                           .outerjoin(of_record, of_record.c.id == record.c.id))
              .where(CM.c.campaign_id == campaign_id, fate.is_not(None)).subquery("ranked"))
    holder = select(func.min(C.c.claimed_by)).where(C.c.item_id == ranked.c.item_id,
                                                    held_by_other(analyst, now)).scalar_subquery()
    rows = conn.execute(select(ranked.c.fate, ranked.c.item_id, case((ranked.c.fate == "held", holder)))
                        .where(ranked.c.n <= shown).order_by(ranked.c.fate, ranked.c.item_id)).all()
    out: dict[str, list[tuple[str, Optional[str]]]] = {k: [] for k in NAMED}
    for fate_, item_id, who in rows:
        out[fate_].append((item_id, who))
    return out


def preview(store: Store, case_id: int, analyst: Actor, now: Optional[dt.datetime] = None,
            existing: Optional[str] = None, config: Optional[QueueConfig] = None,
            shown: int = SHOWN) -> dict[str, Any]:
    """`decisions.bulk_preview`, bounded: the same exact counts (`members`, `will_decide`,
    `already_decided` with its labels, `existing`), each kind left out counted in full
    (`held_by_others_total`, `skipped_appeal_total`, `skipped_decided_total`) and named for at
    most `shown` members, the first by item id (`held_by_others`: {item: holder};
    `skipped_appeal`, `skipped_decided`: item ids). `config`: the queue config `decide` gets
    (an appeals-queue case keeps its member out only where it is known)."""
    if existing is not None and existing not in EXISTING:
        raise DecisionError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}")
    if isinstance(shown, bool) or not isinstance(shown, int) or not 0 <= shown <= MAX_SHOWN:
        raise DecisionError(f"shown must be a whole number from 0 to {MAX_SHOWN}, not {shown!r}")
    who = actor_name(analyst)
    with store.read(snapshot=True) as conn:  # the names agree with the counts
        now = lease_clock(conn, now)
        row = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
        if row is None:
            raise DecisionError(f"no case {case_id}")
        if row["campaign_id"] is None:
            return {"case_id": case_id, "campaign_id": None, "members": 1, "will_decide": 1, "existing": existing,
                    "already_decided": 0, "already_decided_labels": {}, "shown": shown,
                    **{k: ({} if k == "held_by_others" else []) for k in NAMED.values()},
                    **{f"{k}_total": 0 for k in NAMED.values()}}
        _check_campaign(conn, row)  # the plan's checks, then its counts, then the names
        counts = plan_counts(conn, row["campaign_id"], who, now, existing or _default_existing(conn, row), config)
        _check_campaign(conn, row, counts["members"])
        named = _named(conn, row["campaign_id"], who, now, counts["existing"], config, shown) if shown else \
            {k: [] for k in NAMED}
    out = {"case_id": case_id, "campaign_id": row["campaign_id"], "members": counts["members"],
           "will_decide": counts["will_decide"], "existing": counts["existing"],
           "already_decided": counts["already_decided"], "already_decided_labels": counts["already_decided_labels"],
           "shown": shown}
    for fate, key in NAMED.items():
        out[f"{key}_total"] = counts[key]
        out[key] = dict(named[fate]) if fate == "held" else [m for m, _ in named[fate]]
    return out
