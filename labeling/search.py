"""Find items (and campaigns) by text, item id, author, tag or note, within the principal's rights.

One query box for the Search tab, `workbench find` and scripts. A query is free text, or one
field with a prefix: `id:sms_spam:12`, `author:u1`, `tag:bank-impersonation`, `case:42`,
`campaign:7`, `text:prize`, `note:callback`. Free text matches an item id or an author exactly,
a tag, a note, or a part of the text. Text and notes match in their `normalize_light` form on
both sides (any letter's case, compatibility forms, invisible characters, runs of spaces):
`core.textsearch`.

Rights: searching needs `read`. Texts come back masked by the one masking rule (search never
reveals), and a principal who may not `reveal` gets no text or note match on an item whose text
would be masked, nor a note match on a campaign with such a member: otherwise searching for a
word would show which hidden texts, or notes about them (masked with them), contain it.
"""
from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any, Optional

from sqlalchemy import Connection, select

from core.hooks import check_permission
from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.principals import Actor
from core.schema import MAX_ROW_ID, Campaign, CampaignMember, Case, Item, Note, Tag
from core.store import Store
from core.text import lone_surrogate_at, normalize_light
from core.textsearch import contains_folded

from .errors import LabelingError
from .masking import is_sensitive, mask_text, may_reveal
from .notes import normalise_tag, sensitive_campaigns, tags_of
from .review_config import ReviewSettings

I, C, N, TG, CP, CM = (Item.__table__, Case.__table__, Note.__table__, Tag.__table__, Campaign.__table__,
                       CampaignMember.__table__)
FIELDS = ("id", "author", "tag", "case", "campaign", "text", "note")
CAP = 1000  # matches looked at per field; the total says "1000+" past it
WAITING = ("open", "claimed", "escalated")


class SearchError(LabelingError):
    """A query that cannot be run (blank, too long, a field that does not exist)."""


def parse_query(query: object) -> tuple[Optional[str], str]:
    """(field or None for free text, value); SearchError (one line) for a blank or unknown one."""
    if not isinstance(query, str) or not query.strip():
        raise SearchError("type something to search for: text, an item id, an author or a tag")
    q = query.strip()
    if len(q) > 500:
        raise SearchError(f"a query has at most 500 characters, this one has {len(q)}")
    # no stored text holds either: on SQLite a NUL ended the pattern ("text:<NUL>" matched every
    # item), on PostgreSQL it and a surrogate were a driver error rather than a refusal
    if "\x00" in q:
        raise SearchError(f"a query cannot hold a NUL character (one at character {q.index(chr(0)) + 1})")
    at = lone_surrogate_at(q)
    if at is not None:
        raise SearchError(f"a query must be Unicode text (a lone surrogate such as \\ud800 at character {at})")
    head, sep, rest = q.partition(":")
    if sep and head.lower() in FIELDS and rest.strip():
        return head.lower(), rest.strip()
    return None, q


def _matches(conn: Connection, field: Optional[str], value: str
             ) -> tuple[dict[str, set[str]], dict[int, set[str]], bool]:
    """item id -> the fields it matched; campaign id -> the fields it matched (tag, note, case, id);
    whether a field's item matches stopped at `CAP` (there may be more than those looked at)."""
    hits: dict[str, set[str]] = {}
    camps: dict[int, set[str]] = {}
    capped = False

    def take(kind: str, ids: Any) -> None:
        nonlocal capped
        ids = list(ids)
        capped = capped or len(ids) >= CAP
        for i in ids:
            hits.setdefault(i, set()).add(kind)

    def take_camps(kind: str, ids: Any) -> None:
        for c in ids:
            camps.setdefault(int(c), set()).add(kind)

    # ids and authors are stored NFC (`core.readers`): "cafe<U+0301>" (e and a combining accent,
    # the same on screen) found nothing where "café" finds the item
    exact = unicodedata.normalize("NFC", value)
    if field in (None, "id"):
        take("id", conn.execute(select(I.c.id).where(I.c.id == exact)).scalars())
    if field in (None, "author"):
        take("author", conn.execute(select(I.c.id).where(I.c.author_id == exact).limit(CAP)).scalars())
    if field in (None, "tag"):
        try:
            tag = normalise_tag(value)
        except LabelingError:
            if field == "tag":
                raise
            tag = None
        if tag:
            live = (TG.c.tag == tag) & TG.c.removed_at.is_(None)
            take("tag", conn.execute(select(TG.c.entity_id).where(live, TG.c.entity_type == "item").limit(CAP)).scalars())
            take_camps("tag", conn.execute(select(TG.c.entity_id).where(live, TG.c.entity_type == "campaign")
                                           .limit(CAP)).scalars())
    dialect, visible = conn.dialect.name, bool(normalize_light(value))  # only invisible: no text match
    if field in (None, "note") and visible:
        in_note = contains_folded(N.c.body, value, dialect)
        # one row per item or campaign: an item with CAP matching notes filled the cap alone,
        # and every other item whose note matched was left out
        take("note", conn.execute(select(N.c.entity_id).where(N.c.entity_type == "item", in_note)
                                  .distinct().limit(CAP)).scalars())
        take_camps("note", conn.execute(select(N.c.entity_id).where(
            N.c.entity_type == "campaign", in_note).distinct().limit(CAP)).scalars())
    if field in (None, "text") and visible:
        take("text", conn.execute(select(I.c.id).where(contains_folded(I.c.text, value, dialect))
                                  .order_by(I.c.created_at.desc(), I.c.id).limit(CAP)).scalars())
    if field == "case":
        if not _is_id_number(value):
            raise SearchError(f"case: needs a case number, not {value!r}")
        # an id past the 32-bit id columns names no row (PostgreSQL: "integer out of range")
        row = conn.execute(select(C.c.item_id, C.c.campaign_id).where(C.c.id == int(value))).first() \
            if int(value) <= MAX_ROW_ID else None
        if row is not None and row.item_id:
            take("case", [row.item_id])
        elif row is not None:
            take_camps("case", [row.campaign_id])
    if field == "campaign":
        if not _is_id_number(value):
            raise SearchError(f"campaign: needs a campaign number, not {value!r}")
        take_camps("campaign", conn.execute(select(CP.c.id).where(CP.c.id == int(value))).scalars()
                   if int(value) <= MAX_ROW_ID else [])
    return hits, camps, capped


def _is_id_number(value: str) -> bool:
    """True for an ASCII decimal that fits a database id: `str.isdigit` also takes "²" (which
    int() refuses) and SQLite overflows past 2**63 - 1, both a traceback rather than a refusal."""
    return value.isascii() and value.isdigit() and len(value) <= 19 and int(value) < 2**63


def _cases_of(conn: Connection, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """item id -> the case to open for it: a waiting one first, else its newest."""
    out: dict[str, dict[str, Any]] = {}
    if not item_ids:
        return out
    rows = conn.execute(select(C.c.id, C.c.item_id, C.c.state, C.c.queue).where(C.c.item_id.in_(item_ids))
                        .order_by(C.c.id.desc())).mappings().all()
    for r in rows:
        prev = out.get(r["item_id"])
        if prev is None or (r["state"] in WAITING and prev["state"] not in WAITING):
            out[r["item_id"]] = dict(r)
    return out


def search(store: Store, query: str, principal: Actor, settings: ReviewSettings, limit: int = 50,
           offset: int = 0) -> dict[str, Any]:
    """Items and campaigns matching `query` (see the module notes), newest items first, a page of
    `limit` from `offset`, with `total` matches (`capped` when a field's matches stopped at the cap:
    the total is then a lower bound, even where hidden texts left fewer than the cap to show), and
    the campaigns matching, the same page of them (a named one first, then newest), of `campaign_total`."""
    check_permission(principal, "read", "search")
    field, value = parse_query(query)
    limit, offset = max(1, min(int(limit), 500)), max(0, int(offset))
    reveal_ok = may_reveal(principal)
    with store.read() as conn:
        hits, camp_hits, capped = _matches(conn, field, value)
        ids = list(hits)
        info: dict[str, Any] = {}
        for i in range(0, len(ids), 900):
            for r in conn.execute(select(I.c.id, I.c.text, I.c.author_id, I.c.created_at, I.c.source,
                                         I.c.policy_label).where(I.c.id.in_(ids[i:i + 900]))).mappings():
                info[r["id"]] = r
        preds = predictions_of_record(conn, list(info))
        decided = current_decisions(conn, list(info))
        shown: dict[str, str] = {}
        for i, r in info.items():
            sensitive = is_sensitive(settings, (preds.get(i) or {}).get("scores"), r["policy_label"],
                                     (decided.get(i) or {}).get("label"))
            shown[i] = mask_text(r["text"]) if sensitive else r["text"]
            if not reveal_ok and sensitive:
                # no probing of hidden texts, nor of the notes about them (masked with them),
                # without the right to reveal; by the rule, not by whether masking changed the
                # text: "1488" has no word to mask, its notes are hidden all the same
                hits[i] -= {"text", "note"}
        if not reveal_ok:
            for c in sensitive_campaigns(conn, [c for c, kinds in camp_hits.items() if "note" in kinds], settings):
                camp_hits[c].discard("note")
        # campaigns are paged as items are: a tag on 1000 campaigns listed all 1000 on every page
        camps = sorted((c for c, kinds in camp_hits.items() if kinds),
                       key=lambda c: (not camp_hits[c] & {"campaign", "case"}, -c))  # the named one, then newest
        camp_total, camps = len(camps), camps[offset:offset + limit]
        rank = {c: k for k, c in enumerate(camps)}
        keep = [i for i in info if hits[i]]
        keep.sort(key=lambda i: (info[i]["created_at"] or dt.datetime.min, i), reverse=True)
        keep.sort(key=lambda i: not hits[i] & {"id", "case"})  # an exact id first, then newest first
        page = keep[offset:offset + limit]
        cases = _cases_of(conn, page)
        tags = tags_of(conn, "item", page)
        camp_of = dict(conn.execute(select(CM.c.item_id, CM.c.campaign_id).where(CM.c.item_id.in_(page))).all()) if page else {}
        camp_rows = conn.execute(select(CP.c.id, CP.c.size, CP.c.last_seen).where(CP.c.id.in_(camps))).mappings().all() if camps else []
        camp_cases = dict(conn.execute(select(C.c.campaign_id, C.c.id).where(C.c.campaign_id.in_(camps))
                                       .order_by(C.c.id)).all()) if camps else {}
        camp_tags = tags_of(conn, "campaign", camps)
    results = [{"kind": "item", "item_id": i, "case_id": (cases.get(i) or {}).get("id"),
                "case_state": (cases.get(i) or {}).get("state"), "queue": (cases.get(i) or {}).get("queue"),
                "author_id": info[i]["author_id"], "created_at": info[i]["created_at"].isoformat()
                if info[i]["created_at"] else None, "source": info[i]["source"], "text": shown[i],
                "masked": shown[i] != info[i]["text"], "matched": sorted(hits[i]),
                "predicted": (preds.get(i) or {}).get("label"), "decided": (decided.get(i) or {}).get("label"),
                "campaign_id": camp_of.get(i), "tags": tags.get(i, [])} for i in page]
    campaigns = [{"kind": "campaign", "campaign_id": r["id"], "size": r["size"], "case_id": camp_cases.get(r["id"]),
                  "last_seen": r["last_seen"].isoformat() if r["last_seen"] else None,
                  "tags": camp_tags.get(str(r["id"]), [])}
                 for r in sorted(camp_rows, key=lambda r: rank[r["id"]])]
    return {"query": query.strip(), "field": field or "any", "total": len(keep),
            "capped": capped, "offset": offset, "limit": limit,
            "results": results, "campaigns": campaigns, "campaign_total": camp_total}
