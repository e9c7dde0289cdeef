"""Which target an enforcement event names: only `campaign.decided` names a campaign.

A decision made by a campaign-wide action keeps its campaign id in the store (training groups by
it), but a correction, undo or appeal outcome of one member is about that item only: sent with
the campaign id as its target, a receiver reversed every member. `core.outbox.decision_event`
stores events so, and `workbench.webhooks` sends events stored before through the same rule.
"""
from __future__ import annotations

from typing import Any, Mapping


def item_scoped(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An event payload whose decisions name only their own items: each decision's campaign id (a
    member's appeal or correction of a campaign decision carries it) moves to `origin_campaign_id`,
    context only, and `campaign_id` is None, so a receiver never reads one member's outcome as the
    whole campaign's (reversing every member). Only `campaign.decided` targets a campaign
    (`decision_event` stores every other event so, and `workbench.webhooks` sends older ones
    through this). The same payload back when no
    decision names a campaign."""
    rows = payload.get("decisions") if isinstance(payload.get("decisions"), list) else []
    named = [d["campaign_id"] for d in rows if isinstance(d, Mapping) and d.get("campaign_id") is not None]
    if payload.get("campaign_id") is None and not named:
        return dict(payload)
    decisions = [dict(d, campaign_id=None, origin_campaign_id=d["campaign_id"])
                 if isinstance(d, Mapping) and d.get("campaign_id") is not None else d for d in rows]
    origin = payload.get("campaign_id") if payload.get("campaign_id") is not None else named[0]
    out = {k: v for k, v in payload.items() if k != "campaign_id"}
    return {**out, "scope": "item", "origin_campaign_id": origin, "decisions": decisions}
