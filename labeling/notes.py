"""Notes and tags on items and campaigns: what analysts leave for each other beside the decisions.

A note is free text, append-only like a decision (database triggers refuse UPDATE and DELETE;
a correction is a new note). A tag is a short keyword (`repeat-offender`, `bank-impersonation`)
that can be added and removed; removing one stamps it, so its history stays readable, and every
change is an audit event. Both need a permission (`note`, `tag` in configs/roles.yaml, and `read`), are
searchable (`labeling.search`) and travel with the exported labels (`labeling.export`).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from typing import Any, Iterable, Optional

from sqlalchemy import Connection, and_, func, select, union, update

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions, record_decision_ids
from core.predictions import predictions_of_record, ranked_predictions
from core.principals import Actor, actor_name
from core.schema import (NOTE_TARGETS, Campaign, CampaignMember, Decision, Item, Note, Prediction, Tag,
                         utcnow)
from core.store import Store, serialise
from core.text import has_lone_surrogate, one_line, stated, text_error

from .errors import LabelingError
from .masking import is_sensitive, label_sensitive_sql, mask_fields, sensitive_scores_sql
from .review_config import ReviewSettings
from .reviewer_names import Namer, name_reviewers, store_namer

MAX_NOTE_CHARS = 4000
# A tag: lower-case letters, digits and '-', '_', '.', ':' (at most 50), starting with a letter or digit.
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._:-]{0,49}")
N, TG, I, CM = Note.__table__, Tag.__table__, Item.__table__, CampaignMember.__table__
D, P = Decision.__table__, Prediction.__table__
_CHUNK = 900
_ID_LEN: int = Item.__table__.c.id.type.length


class NoteError(LabelingError):
    """A note or tag cannot be added or removed; the message says why."""


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def _target(conn: Connection, entity_type: str, entity_id: Any) -> str:
    """The target's id as stored (text; a campaign's as its number reads, one spelling), after
    checking the kind and that it exists."""
    if entity_type not in NOTE_TARGETS:
        raise NoteError(f"notes and tags go on {' or '.join(NOTE_TARGETS)}, not {entity_type!r}")
    key = str(entity_id).strip()
    if entity_type == "item":
        # ids are stored NFC (`core.readers`): "cafe<U+0301>" looks like, and is, item "café"
        key = unicodedata.normalize("NFC", key) if not has_lone_surrogate(key) else key
        # An id no item can have (longer than the column, a NUL or a lone surrogate: the driver
        # refuses those in a traceback) is not looked up: it names no item.
        held = len(key) <= _ID_LEN and "\x00" not in key and not has_lone_surrogate(key)
        found = conn.execute(select(Item.id).where(Item.id == key)).scalar() if held else None
    else:
        digits = key.lstrip("0") or "0"  # a 5000-digit number: int() refuses it in a traceback
        if not (key.isascii() and key.isdigit()) or len(digits) > 19 or int(digits) >= 2 ** 63:  # what ids can hold
            shown = key if len(key) <= 80 else key[:80] + "..."
            raise NoteError(f"campaign id must be a number below 2**63, not {shown!r}")
        found = conn.execute(select(Campaign.id).where(Campaign.id == int(digits))).scalar()
        key = str(found) if found is not None else key  # "007" is campaign 7: its notes and tags are kept under "7"
    if found is None:
        shown = key if len(key) <= 80 else key[:80] + "..."  # a 10 MB id is not echoed whole
        raise NoteError(f"no {entity_type} {shown!r}")
    return key


def _may_change(actor: Actor, action: str, entity_type: Any, entity_id: Any) -> None:
    """`action` and `read` on the target: a token scoped to `note` alone wrote notes on items it
    may not see, and learnt which ids exist from "no item 'x'" against success."""
    check_permission(actor, action, _what(entity_type, entity_id))
    check_permission(actor, "read", _what(entity_type, entity_id))


def _what(entity_type: Any, entity_id: Any) -> str:
    """The target as a refusal names it: one line, escapes shown, not a 10 MB id echoed whole."""
    return one_line(f"{entity_type} {entity_id}", 120)


def normalise_tag(tag: object) -> str:
    """A tag as stored: trimmed, lower-case, spaces as '-'; NoteError (one line) when not a valid tag."""
    if not isinstance(tag, str) or not tag.strip():
        raise NoteError("a tag must not be blank")
    t = "-".join(tag.strip().lower().split())
    if not TAG_RE.fullmatch(t):
        shown = tag if len(tag) <= 80 else tag[:80] + "..."  # a 10 MB tag is not echoed whole
        raise NoteError(f"tag {shown!r} is not allowed: use 1 to 50 letters, digits, '-', '_', '.' or ':', "
                        f"starting with a letter or digit")
    return t


def add_note(store: Store, entity_type: str, entity_id: Any, body: str, actor: Actor,
             now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Append a note to an item or a campaign; audited. Needs `note`."""
    _may_change(actor, "note", entity_type, entity_id)
    if not isinstance(body, str) or stated(body) is None:  # zero-width spaces alone are a blank note too
        raise NoteError("a note must not be blank")
    text = body.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise NoteError(f"a note has at most {MAX_NOTE_CHARS} characters, this one has {len(text)}")
    if (bad := text_error(text, "a note")) is not None:
        raise NoteError(bad)
    now = now or utcnow()
    who = actor_name(actor)
    with store.begin() as conn:
        key = _target(conn, entity_type, entity_id)
        note_id = int(conn.execute(N.insert().values(entity_type=entity_type, entity_id=key, author=who, body=text,
                                                     created_at=now).returning(N.c.id)).scalar_one())
        audit.record(conn, actor, "note.add", entity_type, key, {"note_id": note_id, "body": text})
    return {"id": note_id, "entity_type": entity_type, "entity_id": key, "author": who, "body": text,
            "created_at": now.isoformat()}


def add_tag(store: Store, entity_type: str, entity_id: Any, tag: str, actor: Actor,
            now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Tag an item or a campaign (a tag it already has is left as it is: `added` False); audited. Needs `tag`."""
    _may_change(actor, "tag", entity_type, entity_id)
    t = normalise_tag(tag)
    now = now or utcnow()
    with store.begin() as conn:
        key = _target(conn, entity_type, entity_id)
        # Two analysts adding the same tag at once: the second waits, then finds it live (on
        # PostgreSQL both read "not there" and both inserted it; SQLite's BEGIN IMMEDIATE serialises).
        serialise(conn, f"tag:{entity_type}:{key}:{t}")
        live = conn.execute(select(TG.c.id).where(TG.c.entity_type == entity_type, TG.c.entity_id == key,
                                                  TG.c.tag == t, TG.c.removed_at.is_(None))).scalar()
        if live is not None:
            return {"entity_type": entity_type, "entity_id": key, "tag": t, "added": False}
        conn.execute(TG.insert().values(entity_type=entity_type, entity_id=key, tag=t, added_by=actor_name(actor),
                                        added_at=now))
        audit.record(conn, actor, "tag.add", entity_type, key, {"tag": t})
    return {"entity_type": entity_type, "entity_id": key, "tag": t, "added": True}


def remove_tag(store: Store, entity_type: str, entity_id: Any, tag: str, actor: Actor,
               now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Take a tag off an item or a campaign (stamped, not deleted); audited. Needs `tag`."""
    _may_change(actor, "tag", entity_type, entity_id)
    t = normalise_tag(tag)
    now = now or utcnow()
    with store.begin() as conn:
        key = _target(conn, entity_type, entity_id)
        done = conn.execute(update(TG).where(TG.c.entity_type == entity_type, TG.c.entity_id == key, TG.c.tag == t,
                                             TG.c.removed_at.is_(None))
                            .values(removed_at=now, removed_by=actor_name(actor))).rowcount
        if not done:
            raise NoteError(f"{entity_type} {key} has no tag {t!r}")
        audit.record(conn, actor, "tag.remove", entity_type, key, {"tag": t})
    return {"entity_type": entity_type, "entity_id": key, "tag": t, "removed": True}


def notes_of(conn: Connection, entity_type: str, ids: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """entity id -> its notes, oldest first (in the caller's transaction)."""
    keys = list(dict.fromkeys(str(i) for i in ids))
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for i in range(0, len(keys), _CHUNK):
        rows = conn.execute(select(N).where(N.c.entity_type == entity_type, N.c.entity_id.in_(keys[i:i + _CHUNK]))
                            .order_by(N.c.id)).mappings()
        for r in rows:
            out[r["entity_id"]].append({"id": r["id"], "author": r["author"], "body": r["body"],
                                        "created_at": _iso(r["created_at"])})
    return out


# What a page view reads of one item's or campaign's notes: the newest NOTES_SHOWN, and older
# ones counted up to NOTES_COUNTED (`recent_notes`); `workbench notes` lists them all.
NOTES_SHOWN = 50
NOTES_COUNTED = 10_000


def recent_notes(conn: Connection, entity_type: str, entity_id: Any, limit: int = NOTES_SHOWN,
                 count_to: int = NOTES_COUNTED, namer: Optional[Namer] = None) -> tuple[list[dict[str, Any]], int]:
    """(the newest `limit` notes of one item or campaign, oldest first; how many older ones are
    left out, counted up to `count_to`): a page view reads a bounded number of rows, where the
    review screen listed every note of a campaign analysts annotate case by case. Both reads walk
    the notes' index (entity, id) from the newest. `namer` (`reviewer_names.store_namer` of the
    reader) shows each author as the reader may read a peer's name; none: the names as stored."""
    key = str(entity_id)
    cond = (N.c.entity_type == entity_type, N.c.entity_id == key)
    rows = conn.execute(select(N).where(*cond).order_by(N.c.id.desc()).limit(max(int(limit), 0))).mappings().all()
    notes = [{"id": r["id"], "author": r["author"], "body": r["body"], "created_at": _iso(r["created_at"])}
             for r in reversed(rows)]
    notes = name_reviewers(notes, namer, "author") if namer is not None else notes
    if len(rows) < limit:
        return notes, 0
    older = select(N.c.id).where(*cond, N.c.id < rows[-1]["id"]).limit(max(int(count_to), 0)).subquery()
    return notes, int(conn.execute(select(func.count()).select_from(older)).scalar() or 0)


def tags_of(conn: Connection, entity_type: str, ids: Iterable[Any]) -> dict[str, list[str]]:
    """entity id -> its current tags, alphabetical (in the caller's transaction)."""
    keys = list(dict.fromkeys(str(i) for i in ids))
    out: dict[str, list[str]] = {k: [] for k in keys}
    for i in range(0, len(keys), _CHUNK):
        for eid, tag in conn.execute(select(TG.c.entity_id, TG.c.tag).where(
                TG.c.entity_type == entity_type, TG.c.entity_id.in_(keys[i:i + _CHUNK]),
                TG.c.removed_at.is_(None))):
            out[eid].append(tag)
    return {k: sorted(set(v)) for k, v in out.items()}


def sensitive_campaigns(conn: Connection, campaign_ids: Iterable[Any], settings: ReviewSettings) -> set[int]:
    """Those of `campaign_ids` with a member whose text is masked by its own rule (scores, source
    and decided label): their notes are as hidden as that text. Asked of the store (`masking`'s
    rule in SQL, one statement per 900 campaigns, at most one row per campaign): every member was
    read into Python, 100,000 rows and their predictions and decisions on each page view."""
    ids = list(dict.fromkeys(int(c) for c in campaign_ids))
    out: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        out |= {int(c) for c in conn.execute(_sensitive_members(conn, ids[start:start + _CHUNK], settings)).scalars()}
    return out


def _sensitive_members(conn: Connection, ids: list[int], settings: ReviewSettings) -> Any:
    """A SELECT of those of campaigns `ids` that hold a sensitive member. `is_sensitive` is an OR
    of its parts (scores, source label, decided label), so a campaign holds a sensitive member when
    one member's source label, one's decided label or one's scores of record say so."""
    dialect = conn.dialect.name
    by_source = (select(CM.c.campaign_id).join(I, I.c.id == CM.c.item_id)
                 .where(CM.c.campaign_id.in_(ids), label_sensitive_sql(settings, I.c.policy_label)))
    latest = record_decision_ids(within=CM, where=CM.c.campaign_id.in_(ids), name="latest")  # the label of record
    by_decision = (select(CM.c.campaign_id).select_from(latest.join(D, D.c.id == latest.c.id)
                                                          .join(CM, CM.c.item_id == D.c.item_id))
                   .where(label_sensitive_sql(settings, D.c.label)))
    ranked = record_predictions(CM.c.campaign_id.in_(ids))
    by_scores = (select(CM.c.campaign_id).select_from(
        CM.outerjoin(ranked, and_(ranked.c.item_id == CM.c.item_id, ranked.c.n == 1)))
        .where(CM.c.campaign_id.in_(ids), sensitive_scores_sql(settings, dialect, ranked.c.scores)))
    return union(by_source, by_decision, by_scores)


def record_predictions(members: Any) -> Any:
    """A subquery (item_id, label, scores, n) of the predictions of the campaign members matching
    `members` (a condition on CampaignMember), n = 1 on each one's prediction of record
    (`core.predictions.ranked_predictions`), over these members' predictions only."""
    return ranked_predictions([P.c.item_id, P.c.label, P.c.scores], within=CM, where=members, name="record")


def list_notes(store: Store, entity_type: str, entity_id: Any,
               settings: Optional[ReviewSettings] = None, *, principal: Actor) -> dict[str, Any]:
    """An item's or campaign's notes (oldest first) and current tags. Given the review settings,
    the bodies are masked (and `masked` says so) while the item's text, or any campaign member's, is
    masked by its own rule: a note is as sensitive as the text it is about, and this listing
    never reveals (the Review tab's context panel shows them once the case is revealed). Needs
    `read`, checked here (before the target is looked up), so no caller can forget it. Each
    author as `principal` may read a peer's name (`reviewer_names`: a lead, or the author)."""
    check_permission(principal, "read", _what(entity_type, entity_id))
    with store.read() as conn:
        key = _target(conn, entity_type, entity_id)
        notes = name_reviewers(notes_of(conn, entity_type, [key])[key], store_namer(store, conn, principal), "author")
        masked = settings is not None and bool(notes) and (
            bool(sensitive_campaigns(conn, [int(key)], settings)) if entity_type == "campaign"
            else _item_sensitive(conn, key, settings))
        out = {"entity_type": entity_type, "entity_id": key, "notes": mask_fields(notes, ("body",), masked),
               "tags": tags_of(conn, entity_type, [key])[key]}
    return out if settings is None else dict(out, masked=masked)


def _item_sensitive(conn: Connection, item_id: str, settings: ReviewSettings) -> bool:
    """Whether an item's text is masked by its own rule (scores, source and decided label)."""
    policy = conn.execute(select(Item.policy_label).where(Item.id == item_id)).scalar()
    pred = predictions_of_record(conn, [item_id]).get(item_id) or {}
    decided = current_decisions(conn, [item_id]).get(item_id) or {}
    return is_sensitive(settings, pred.get("scores"), policy, decided.get("label"))


def export_fields(conn: Connection, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """item id -> {"notes": a JSON list of {author, body, created_at}, oldest first, "tags": comma
    list}: the export's columns. JSON, not "author: body" lines, so a body holding a newline and
    "lead: ..." cannot pass for a note by someone else."""
    ids = list(item_ids)
    notes, tags = notes_of(conn, "item", ids), tags_of(conn, "item", ids)

    def as_json(ns: list[dict[str, Any]]) -> Optional[str]:
        return json.dumps([{k: n[k] for k in ("author", "body", "created_at")} for n in ns],
                          ensure_ascii=False) if ns else None

    return {i: {"notes": as_json(notes.get(i, [])), "tags": ",".join(tags.get(i, [])) or None} for i in ids}
