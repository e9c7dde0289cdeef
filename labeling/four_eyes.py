"""Four eyes on escalations: whoever escalated a case neither claims nor decides it.

An analyst who escalates a case ("needs senior review") hands it to someone else: a lead, or
another senior reviewer. Without this rule the escalation queue, which the review screen opens
first, gave the case straight back to its escalator on their next `n`, and they decided it
themselves (kind "escalation", their own name): the second pair of eyes the escalation asked
for never looked. One rule, here, for every path: `claims.next_case` / `claims.claim_case` (the
review screen, the HTTP API, the command line), `decisions.decide` (in the transaction that
saves), and the queue counts and start queue of `cases` (a case one may not take is not "left"
for them).

Who escalated: every person on the case's open escalation (`meta.escalations` since
`meta.escalation_opened_at`, as `escalation._move_to_escalation` appends them; a lead raising it
again is one of them), `meta.escalated_by` (the latest, also for a case escalated before that
list was kept), and on a campaign's case whoever escalated a member it covers
(`meta.item_escalations`: their escalation is this case now; such entries are only added while
the case waits in the escalation queue, which it leaves only decided). A case escalated by a
criterion or the SLA sweep has no person to keep out.

Escape hatch: `escalation_self_review: true` in queues.yaml (a single-person team) lets the
escalator take their own escalation; off by default.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from sqlalchemy import ColumnElement, func, or_, true

from core.schema import Case

from .errors import LabelingError, QueueError
from .queue_config import QueueConfig

C = Case.__table__


def escalators(case: Mapping[str, Any]) -> set[str]:
    """The people who raised `case`'s open escalation (see the module's note); empty for none."""
    meta = case.get("meta") if isinstance(case.get("meta"), dict) else {}
    opened = meta.get("escalation_opened_at")
    out: set[str] = set()
    entries = meta.get("escalations") if isinstance(meta.get("escalations"), list) else []
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("by"), str):
            continue
        at = e.get("at")
        if isinstance(opened, str) and isinstance(at, str) and at < opened:
            continue  # an earlier escalation of the case, since folded home and escalated anew
        out.add(e["by"])
    if isinstance(meta.get("escalated_by"), str):
        out.add(meta["escalated_by"])
    folded = meta.get("item_escalations") if isinstance(meta.get("item_escalations"), list) else []
    out |= {e["by"] for e in folded if isinstance(e, dict) and isinstance(e.get("by"), str)}
    return {w for w in out if w.strip()}


def own_escalation(case: Mapping[str, Any], who: str, config: QueueConfig, doing: str = "decide") -> Optional[str]:
    """The one-line refusal when `who` may not `doing` ("claim", "decide") `case` because they
    escalated it; None when they may (not an escalation, someone else's, or the escape hatch)."""
    if config.escalation_self_review or case.get("queue") != config.escalation_queue:
        return None
    if who not in escalators(case):
        return None
    return (f"case {case.get('id')} was escalated by {who}, who may not {doing} it: an escalation goes to someone "
            f"else (a lead or another senior reviewer); nothing was changed")


def refuse_own_escalation(case: Mapping[str, Any], who: str, config: QueueConfig,
                          error: type[LabelingError] = QueueError, doing: str = "decide") -> None:
    """Raise `error` with `own_escalation`'s line when `who` may not `doing` `case`: a caller checks
    it under the case's lock, in the transaction that acts, so no gap lets the rule be passed."""
    if (why := own_escalation(case, who, config, doing)) is not None:
        raise error(why)


def not_own_escalation(who: str, config: QueueConfig) -> ColumnElement[bool]:
    """SQL: true for the cases `who` may take as far as `meta.escalated_by` tells (the claim's and the
    counts' filter; `own_escalation` on the row read has the last word, for an earlier escalator
    of a case a lead raised again). Always true under the escape hatch."""
    if config.escalation_self_review:
        return true()
    by = func.coalesce(C.c.meta["escalated_by"].as_string(), "")
    return or_(C.c.queue != config.escalation_queue, by != who)
