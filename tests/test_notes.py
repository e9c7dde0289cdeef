"""Notes and tags on items and campaigns: append-only notes, tags added and removed, audited,
permission-checked by role, listed, and carried into the label export."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import AuditEvent
from labeling.notes import NoteError, add_note, add_tag, list_notes, remove_tag

from test_queue_support import add_campaign, add_scored


def _events(store, action):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == action)).mappings()]


def test_notes_and_tags_on_items_and_campaigns(any_store, taxonomy, roles):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}, {"id": "b", "label": "scam", "p": 0.9}])
    cid = add_campaign(any_store, ["a", "b"])
    ann = Principal("ann", "analyst")
    n1 = add_note(any_store, "item", "a", "  Same lure as last week's wave  ", ann)
    add_note(any_store, "item", "a", "Sender also on the bank list", ann)
    add_note(any_store, "campaign", cid, "Premium-rate numbers, ask the carrier", ann)
    assert n1["body"] == "Same lure as last week's wave" and n1["author"] == "ann"
    assert add_tag(any_store, "item", "a", "Bank Impersonation", ann)["tag"] == "bank-impersonation"
    assert add_tag(any_store, "item", "a", "bank-impersonation", ann)["added"] is False  # no duplicate
    add_tag(any_store, "item", "a", "wave-7", ann)
    add_tag(any_store, "campaign", str(cid), "wave-7", ann)
    got = list_notes(any_store, "item", "a", principal="tester")
    assert [n["body"] for n in got["notes"]] == ["Same lure as last week's wave", "Sender also on the bank list"]
    assert got["tags"] == ["bank-impersonation", "wave-7"]
    remove_tag(any_store, "item", "a", "wave-7", ann)
    assert list_notes(any_store, "item", "a", principal="tester")["tags"] == ["bank-impersonation"]
    with pytest.raises(NoteError, match="has no tag 'wave-7'"):
        remove_tag(any_store, "item", "a", "wave-7", ann)
    add_tag(any_store, "item", "a", "wave-7", ann)  # added again: a new row, live again
    assert list_notes(any_store, "item", "a", principal="tester")["tags"] == ["bank-impersonation", "wave-7"]
    camp = list_notes(any_store, "campaign", cid, principal="tester")
    assert camp["tags"] == ["wave-7"] and camp["notes"][0]["body"].startswith("Premium-rate")
    # every change is audited, with who and what
    assert len(_events(any_store, "note.add")) == 3
    assert {e["payload"]["tag"] for e in _events(any_store, "tag.add")} == {"bank-impersonation", "wave-7"}
    assert [e["actor"] for e in _events(any_store, "tag.remove")] == ["ann"]


def test_notes_are_append_only(any_store, taxonomy):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    add_note(any_store, "item", "a", "first", "ann")
    for stmt in ("UPDATE notes SET body = 'edited'", "DELETE FROM notes"):
        with pytest.raises(Exception, match="append-only"):
            with any_store.begin() as conn:
                conn.execute(text(stmt))
    assert [n["body"] for n in list_notes(any_store, "item", "a", principal="tester")["notes"]] == ["first"]


def test_refusals_are_one_line(sqlite_store, taxonomy, roles):
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    viewer, ann = Principal("vic", "viewer"), Principal("ann", "analyst")
    for who in (viewer, Principal("eng", "engineer")):  # analysts, leads and admins note and tag
        with pytest.raises(PermissionDenied, match="needs permission 'note'"):
            add_note(sqlite_store, "item", "a", "x", who)
    assert add_tag(sqlite_store, "item", "a", "checked", Principal("lee", "lead"))["added"]
    remove_tag(sqlite_store, "item", "a", "checked", Principal("root", "admin"))
    with pytest.raises(PermissionDenied, match="needs permission 'tag'"):
        add_tag(sqlite_store, "item", "a", "x", viewer)
    for call, message in [
        (lambda: add_note(sqlite_store, "item", "a", "   ", ann), "must not be blank"),
        (lambda: add_note(sqlite_store, "item", "nope", "x", ann), "no item 'nope'"),
        (lambda: add_note(sqlite_store, "case", "1", "x", ann), "not 'case'"),
        (lambda: add_note(sqlite_store, "campaign", "x1", "x", ann), "must be a number"),
        (lambda: add_note(sqlite_store, "campaign", "9" * 20, "x", ann), "must be a number below 2\\*\\*63"),
        (lambda: add_tag(sqlite_store, "campaign", "\u0661\u0662", "x", ann), "must be a number"),
        (lambda: add_note(sqlite_store, "item", "a", "y" * 5000, ann), "at most 4000"),
        (lambda: add_tag(sqlite_store, "item", "a", "no/slashes", ann), "is not allowed"),
        (lambda: add_tag(sqlite_store, "item", "a", " ", ann), "must not be blank"),
    ]:
        with pytest.raises(NoteError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    assert list_notes(sqlite_store, "item", "a", principal="tester") == {"entity_type": "item", "entity_id": "a", "notes": [], "tags": []}


def test_export_carries_notes_and_tags(sqlite_store, taxonomy, queue_config, tmp_path):
    from labeling.cases import build_cases
    from labeling.claims import next_case
    from labeling.decisions import decide
    from labeling.export import label_rows

    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}, {"id": "b", "label": "spam", "p": 0.9}])
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    for _ in range(2):
        case = next_case(sqlite_store, "ann", "spam", config=queue_config)
        decide(sqlite_store, taxonomy, case["id"], "ann", "spam", action="remove", config=queue_config)
    add_note(sqlite_store, "item", "a", "carrier confirmed", "ann")
    add_tag(sqlite_store, "item", "a", "carrier", "ann")
    rows = {r["id"]: r for r in label_rows(sqlite_store, taxonomy)}
    assert [(n["author"], n["body"]) for n in json.loads(rows["a"]["notes"])] == [("ann", "carrier confirmed")]
    assert rows["a"]["tags"] == "carrier"
    assert rows["b"]["notes"] is None and rows["b"]["tags"] is None
