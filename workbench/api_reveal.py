"""The HTTP API's item view and its reveal (`GET /api/v1/items/{id}?reveal=true`), out of
`workbench.api` so that module stays small.

A reveal through the API is counted as the Review screen and `cases show --reveal` count one
(`labeling.wellbeing.record_reveal`: stored once per reader and case, audited, severe tiers
against the shift's exposure budget): against the item's newest case, or for an item without a
case (never scored, or scored and not cased yet) once per reader and item, at the tier of the one
rule every door uses (`wellbeing.reveal_tier`: the case's tier or the text's own evidence, the
more severe). Before, a case-less item's reveal was audited and never counted: reading any number
of severe texts left exposure at 0.

Without a reveal the item's text is masked by its own rule (`masking.shown_text`), and so is
every string in its metadata (extra source columns, often free text: a reporter's comment quotes
the text).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from core.principals import Principal  # standard library only

if TYPE_CHECKING:  # pragma: no cover
    from core.taxonomy import Taxonomy
    from labeling.review_config import ReviewSettings

    from .context import AppContext


def charge_item_reveal(conn: Any, who: Principal, item_id: str, taxonomy: "Taxonomy",
                       settings: "ReviewSettings") -> bool:
    """Record a reveal of `item_id` by `who` through `wellbeing.record_reveal` (in the caller's
    transaction): against the item's newest case, or for an item without one once per reader and
    item (`wellbeing.record_caseless_reveal`: found by item id, never by a hashed key two items
    may share), at `wellbeing.reveal_tier` either way (the case's tier or the text's evidence, the
    more severe). False when this reader revealed it before: already counted, the caller audits
    the access alone."""
    from sqlalchemy import select

    from core.schema import Case, utcnow
    from labeling.wellbeing import record_caseless_reveal, record_reveal, reveal_tier

    C = Case.__table__
    case = conn.execute(select(C).where(C.c.item_id == item_id).order_by(C.c.id.desc()).limit(1)).mappings().first()
    tier = reveal_tier(conn, taxonomy, settings, item_id, case)
    if case is None:
        return record_caseless_reveal(conn, who, item_id, tier, utcnow())
    return record_reveal(conn, who, case["id"], item_id, tier, utcnow())


def item_or_404(app: "AppContext", item_id: str, who: Principal) -> dict[str, Any]:
    """The item as `workbench items --json` shows it (unmasked: the caller masks); needs `read`."""
    from core.hooks import check_permission
    from core.items import get_item

    check_permission(who, "read", f"item {item_id}")
    # No stored id holds NUL (ingest refuses one), and PostgreSQL refuses it in a query: a 500.
    item = get_item(app.store(), item_id) if "\x00" not in item_id else None
    if item is None:
        raise HTTPException(404, f"no item {item_id[:200]!r}" + ("..." if len(item_id) > 200 else ""))  # named short
    return item


def item_view(app: "AppContext", item_id: str, who: Principal, reveal: bool = False) -> dict[str, Any]:
    """The item with its prediction, case and decision: text and metadata masked by the text's
    own rule (`masking.is_sensitive`) unless `reveal` (needs `reveal`; counted and audited)."""
    from core import audit
    from core.hooks import check_permission
    from labeling.masking import is_sensitive, mask_metadata, mask_text

    if reveal:  # before the item is looked up: a reader without `reveal` learns nothing (no 404 oracle)
        check_permission(who, "reveal", f"item {item_id}")
    item = item_or_404(app, item_id, who)
    if reveal:
        with app.store().begin() as conn:  # charged to the reader's exposure, as a reveal on the screen is
            if not charge_item_reveal(conn, who, item_id, app.taxonomy(), app.review()):
                audit.record(conn, who, "text.reveal", "item", item_id, {"via": "api"})
        item["masked"] = False
        return item
    pred, dec = item.get("prediction") or {}, item.get("decision") or {}
    shown, meta = item["text"], item.get("metadata")
    if is_sensitive(app.review(), pred.get("scores"), item.get("policy_label"), dec.get("label")):
        shown, meta = mask_text(item["text"]), mask_metadata(meta)
    item["masked"] = shown != item["text"] or meta != item.get("metadata")
    item["text"], item["metadata"] = shown, meta
    return item
