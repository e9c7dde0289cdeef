"""Context beside the text: what an analyst reads next to a case before deciding it.

For a case and the principal looking at it: the policy text of the label the model suggests
(definition, enforcement guidance, examples, from the taxonomy), the author's other items with
their past decisions, the item's whole decision history (superseded decisions included: who,
when, label, action, rationale), and the notes and tags on the item and its campaign (the
newest `notes.NOTES_SHOWN` notes of each, `notes_older` counting the rest up to `notes.NOTES_COUNTED`).

Texts leave through the one masking rule (`labeling.masking`) unless this principal revealed
this case (`labeling.wellbeing.has_revealed`) and may reveal: a reveal unmasks that case's texts
(and what people wrote about it: rationales, notes) for that analyst only, and is audited once,
by `packets.reveal_text`; the author's other items always follow their own rule (`shown_text`).
QA-audit and calibration cases are blind: no decision on the item is shown. Who decided (the
history's and the author's items' `reviewer`) is named only to a lead, else a pseudonym
(`labeling.reviewer_names`): an analyst anchored on which colleague decided.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import Connection, and_, select

from core.hooks import check_permission
from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.principals import Actor, actor_name
from core.schema import CampaignMember, Case, Decision, Item
from core.store import Store
from core.taxonomy import Taxonomy

from .cases import suggestion
from .errors import QueueError
from .masking import is_sensitive, mask_fields, mask_text, may_reveal
from .notes import recent_notes, sensitive_campaigns, tags_of
from .packets import author_totals, case_masked, is_blind
from .review_config import ReviewSettings
from .reviewer_names import name_reviewers, store_namer
from .wellbeing import has_revealed

I, C, D, CM = Item.__table__, Case.__table__, Decision.__table__, CampaignMember.__table__
HISTORY_LIMIT = 200


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def was_revealed(conn: Connection, case_id: int, item_id: Optional[str], who: str) -> bool:
    """Whether `who` revealed this case (the one record of reveals, `labeling.wellbeing`)."""
    return bool(item_id) and has_revealed(conn, who, case_id)


def item_history(conn: Connection, item_id: str, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """Every decision on an item, oldest first, superseded ones included and marked, with what
    superseded them; `current` marks the label of record. Past `limit` decisions, the newest
    `limit` in the store's order (`core.labels.record_key`, the id, never the writer's clock): the
    oldest first cut the label of record off, and a decision superseded by one past the cut read
    as neither superseded nor current."""
    rows = list(reversed(conn.execute(select(D).where(D.c.item_id == item_id).order_by(D.c.id.desc())
                                      .limit(limit)).mappings().all()))
    by_sup = {r["supersedes_id"]: r["id"] for r in rows if r["supersedes_id"] is not None}
    record = current_decisions(conn, [item_id]).get(item_id)
    return [{"id": r["id"], "case_id": r["case_id"], "kind": r["kind"], "reviewer": r["reviewer"],
             "created_at": _iso(r["created_at"]), "label": r["label"], "action": r["action"],
             "policy_ref": r["policy_ref"], "rationale": r["rationale"], "is_override": bool(r["is_override"]),
             "model_label": r["model_label"], "supersedes_id": r["supersedes_id"],
             "superseded_by": by_sup.get(r["id"]), "current": record is not None and record["id"] == r["id"]}
            for r in rows]


def author_context(conn: Connection, author_id: Optional[str], exclude_item: Optional[str],
                   settings: ReviewSettings) -> dict[str, Any]:
    """The author's other items, newest first, each with its prediction and its current decision
    (who, when, label, action), texts by their own masking rule: a reveal of this case is not a
    reveal of theirs; totals over all their items."""
    if not author_id or settings.author_history <= 0:
        return {"author_id": author_id, "items": 0, "decided": 0, "violations": 0, "recent": []}
    cond = I.c.author_id == author_id
    if exclude_item:
        cond = and_(cond, I.c.id != exclude_item)
    rows = conn.execute(select(I.c.id, I.c.text, I.c.created_at, I.c.policy_label).where(cond)
                        .order_by(I.c.created_at.desc(), I.c.id.desc()).limit(settings.author_history)).mappings().all()
    decided = current_decisions(conn, [r["id"] for r in rows])
    preds = predictions_of_record(conn, [r["id"] for r in rows])
    recent = []
    for r in rows:
        d, p = decided.get(r["id"]) or {}, preds.get(r["id"]) or {}
        sensitive = is_sensitive(settings, p.get("scores"), r["policy_label"], d.get("label"))  # `shown_text`'s rule
        text = mask_text(r["text"]) if sensitive else r["text"]
        recent.append({"item_id": r["id"], "created_at": _iso(r["created_at"]), "text": text,
                       "masked": sensitive, "predicted": p.get("label"), "decided": d.get("label"),
                       "action": d.get("action"), "reviewer": d.get("reviewer"),
                       "decided_at": _iso(d.get("created_at"))})
    items, n_decided, violations = author_totals(conn, cond)
    return {"author_id": author_id, "items": items, "decided": n_decided, "violations": violations, "recent": recent}


def case_context(store: Store, taxonomy: Taxonomy, case_id: int, principal: Actor, settings: ReviewSettings,
                 revealed: Optional[bool] = None) -> dict[str, Any]:
    """Policy text, author history, decision history, notes and tags for one case (see the module
    notes). `revealed` None asks the audit log whether this principal revealed the case."""
    check_permission(principal, "read", f"case {case_id}")
    with store.read() as conn:
        case = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
        if case is None:
            raise QueueError(f"no case {case_id}")
        item_id = case["item_id"]
        item = conn.execute(select(I).where(I.c.id == item_id)).mappings().first() if item_id else None
        if revealed is None:
            revealed = was_revealed(conn, case_id, item_id, actor_name(principal))
        revealed = bool(revealed) and may_reveal(principal)
        masked = not revealed and case_masked(conn, case, item, settings)
        pred = suggestion(conn, case)
        label = (pred or {}).get("label") or case["predicted_label"] or taxonomy.benign_label
        campaign_id = case["campaign_id"]
        if campaign_id is None and item_id:
            campaign_id = conn.execute(select(CM.c.campaign_id).where(CM.c.item_id == item_id)).scalar()
        namer = store_namer(store, conn, principal)  # names for a lead, else pseudonyms
        author = author_context(conn, item["author_id"] if item else None, item_id, settings)
        author["recent"] = name_reviewers(author["recent"], namer)
        # blind review: an audit case (a uniform draw, or a lead's re-review of a decided item) and
        # a calibration copy show no decision on the item (other reviewers' copies included), so
        # the reviewer is neither anchored nor told what the others chose
        history = (mask_fields(name_reviewers(item_history(conn, item_id), namer), ("rationale",), masked)
                   if item_id and not is_blind(case) else [])
        # the newest notes only, and how many older ones there are: a campaign annotated case by
        # case holds thousands, and every one was read and sent with each case of its members
        shown = {"item": recent_notes(conn, "item", item_id, namer=namer) if item_id else ([], 0),
                 "campaign": recent_notes(conn, "campaign", campaign_id, namer=namer) if campaign_id else ([], 0)}
        notes = {k: v[0] for k, v in shown.items()}
        # a campaign's notes are as hidden as its members (`notes.list_notes`): an item case of a
        # plain member showed notes quoting its hate members until the case was revealed
        hide = {"item": masked, "campaign": masked or (not revealed and bool(notes["campaign"]) and bool(
            sensitive_campaigns(conn, [int(campaign_id)], settings)))}
        notes = {k: mask_fields(v, ("body",), hide[k]) for k, v in notes.items()}
        tags = {"item": tags_of(conn, "item", [item_id])[item_id] if item_id else [],
                "campaign": tags_of(conn, "campaign", [campaign_id])[str(campaign_id)] if campaign_id else []}
    return {"case_id": case_id, "item_id": item_id, "campaign_id": campaign_id, "revealed": bool(revealed),
            "masked": masked, "policy": taxonomy.policy_text(label) if label in taxonomy.policies else None,
            "author": author, "history": history, "notes": notes, "tags": tags,
            "notes_older": {k: v[1] for k, v in shown.items()}}
