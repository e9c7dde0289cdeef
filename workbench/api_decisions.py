"""The HTTP API's decision feed (`GET /api/v1/decisions`) and who reads whose name in it, out of
`workbench.api` so that module stays small.

Each decision's `reviewer` is the analyst's account name only for a lead (`analyst_quality`)
or a system principal; every other reader (an analyst, a viewer, the enforcement platform's
token) gets a stable pseudonym instead (`labeling.reviewer_names`: the one rule, also on the
Review tab's history), so a platform still groups decisions by reviewer but neither it, nor
whoever it forwards the feed to, nor a leaked token learns which analyst banned whom. The item
view's current decision follows the same rule (`name_item_reviewer`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from core.principals import Principal

    from .context import AppContext

DECISION_FIELDS = ("id", "case_id", "item_id", "campaign_id", "reviewer", "kind", "label", "action", "severity",
                   "policy_ref", "model_version", "model_label", "model_score", "is_override",
                   "taxonomy_version", "supersedes_id", "created_at")


def decisions_page(app: "AppContext", who: "Principal", after: int = 0, limit: int = 100) -> dict[str, Any]:
    """Decisions after id `after`, `limit` of them in id order, and the cursor to page on; needs
    `read`. Calibration answers (peers' answers, enforcing nothing) only for a lead, and each
    reviewer as `who` may read them (the module notes)."""
    from sqlalchemy import select

    from core.permissions import check_permission, refusal  # the hooks' check, re-exported
    from core.schema import Decision
    from labeling.reviewer_names import name_reviewers, store_namer

    check_permission(who, "read", "decisions")
    D = Decision.__table__
    blind = [D.c.kind != "calibration"] if refusal(who, "analyst_quality") else []  # peers' answers; enforce nothing
    store = app.store()
    with store.read() as conn:
        rows = conn.execute(select(*[D.c[f] for f in DECISION_FIELDS]).where(D.c.id > after, *blind)
                            .order_by(D.c.id).limit(limit + 1)).mappings().all()
        namer = store_namer(store, conn, who)
    page = name_reviewers((dict(r) for r in rows[:limit]), namer)
    return {"decisions": page, "next_cursor": page[-1]["id"] if len(rows) > limit else None}


def name_item_reviewer(app: "AppContext", who: "Principal", item: dict[str, Any]) -> dict[str, Any]:
    """`item` (the API's item view) with its current decision's reviewer as `who` may read it."""
    from labeling.reviewer_names import sees_reviewer_names, store_namer

    decision = item.get("decision")
    if isinstance(decision, dict) and "reviewer" in decision and not sees_reviewer_names(who):
        store = app.store()
        with store.read() as conn:
            item["decision"] = {**decision, "reviewer": store_namer(store, conn, who)(decision["reviewer"])}
    return item
