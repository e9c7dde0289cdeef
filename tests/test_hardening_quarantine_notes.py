"""Hardening of the quarantine and of notes and tags.

The defects: a quarantine line that is JSON Python cannot decode (an integer of 5000 digits, or
nesting 100,000 deep: a hand edit, a torn copy, another tool) made `quarantine list` and
`quarantine purge` fail with a ValueError or RecursionError traceback, so no record, however
old, could be purged; a note or tag on an item id holding a lone surrogate was a
UnicodeEncodeError traceback from the database driver (both stores), one holding a NUL a
PostgreSQL DataError traceback of several lines, a campaign id of 5000 digits a ValueError
traceback, and a 100,000-character id was echoed whole in the refusal; two analysts adding the
same tag at once on PostgreSQL both inserted it (two live rows, two `tag.add` events).
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from core.quarantine import list_quarantine, purge_quarantine
from core.schema import AuditEvent
from labeling.notes import NoteError, add_note, add_tag, list_notes, remove_tag
from workbench.cli import cli

from test_queue_support import add_scored

OLD = json.dumps({"file": "a.csv", "line": 2, "field": "text", "reason": "missing text",
                  "quarantined_at": "2000-01-01T00:00:00", "row": {"text": "old personal data"}})


def _cli(store, *args):
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])
    return CliRunner().invoke(cli, [*base, *args])


@pytest.mark.parametrize("bad", ['{"file": "b.csv", "line": ' + "1" * 5000 + "}",  # int() refuses 5000 digits
                                 "[" * 100_000],  # deeper than the decoder's recursion limit
                         ids=["long-int", "deep"])
def test_a_quarantine_line_python_cannot_decode_is_listed_and_kept_not_a_traceback(any_store, bad):
    path = any_store.quarantine_path
    path.write_text(OLD + "\n" + bad + "\n", encoding="utf-8")
    listed = list_quarantine(any_store, 30, principal="tester")
    assert listed["records"] == 2 and listed["undated"] == 1 and listed["past_retention"] == 1
    assert listed["by_reason"] == {"missing text": 1, "unreadable quarantine line": 1}
    res = _cli(any_store, "quarantine", "list")
    assert res.exit_code == 0, res.output
    assert "unreadable quarantine line" in res.stdout
    done = purge_quarantine(any_store, 30, "root")
    assert (done["removed"], done["kept"]) == (1, 1)
    assert path.read_text(encoding="utf-8") == bad + "\n"  # the undatable line kept byte for byte, the old one gone


@pytest.mark.parametrize("eid", ["a\ud800", "a\x00", "a" * 100_000])
def test_a_note_or_tag_on_an_id_the_store_cannot_hold_is_a_one_line_refusal(any_store, taxonomy, roles, eid):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    calls = [lambda: add_note(any_store, "item", eid, "seen before", "ann"),
             lambda: add_tag(any_store, "item", eid, "wave-7", "ann"),
             lambda: remove_tag(any_store, "item", eid, "wave-7", "ann"),
             lambda: list_notes(any_store, "item", eid, principal="tester")]
    for call in calls:
        with pytest.raises(NoteError, match="^no item ") as err:
            call()
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
    with any_store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 0


def test_a_campaign_id_of_thousands_of_digits_is_a_one_line_refusal(any_store, taxonomy, roles):
    for call in (lambda: add_note(any_store, "campaign", "9" * 5000, "x", "ann"),
                 lambda: list_notes(any_store, "campaign", "1" * 5000, principal="tester")):
        with pytest.raises(NoteError, match="must be a number below 2\\*\\*63") as err:
            call()
        assert len(str(err.value)) < 200


def _waiting_on_a_lock(store) -> bool:
    with store.read() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")).scalar())


def test_two_analysts_adding_the_same_tag_at_once_leave_one_live_tag(any_store, taxonomy, roles, monkeypatch):
    """ann's transaction pauses after its insert, before its commit, until bob's has run as far as it
    can (finished, or waiting on a lock); then ann commits. bob must find the tag live."""
    import core.audit as audit

    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    got: dict[str, object] = {}

    def bob() -> None:
        try:
            got["bob"] = add_tag(any_store, "item", "a", "wave-7", "bob")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            got["bob"] = exc

    other = threading.Thread(target=bob)
    real = audit.record

    def paused(conn, actor, action, *args, **kwargs):
        out = real(conn, actor, action, *args, **kwargs)
        if actor == "ann" and action == "tag.add":
            other.start()
            if not any_store.is_sqlite:  # SQLite: bob's BEGIN IMMEDIATE waits for ann's commit
                for _ in range(600):  # a hang guard, not a timing: bob ends or waits on a lock first
                    if not other.is_alive() or _waiting_on_a_lock(any_store):
                        break
                    time.sleep(0.05)
        return out

    monkeypatch.setattr(audit, "record", paused)
    assert add_tag(any_store, "item", "a", "wave-7", "ann")["added"] is True
    other.join(60)
    assert not other.is_alive()
    assert isinstance(got["bob"], dict) and got["bob"]["added"] is False, got["bob"]
    with any_store.read() as conn:
        live = conn.execute(text("SELECT count(*) FROM tags WHERE removed_at IS NULL")).scalar()
        events = conn.execute(select(AuditEvent.id).where(AuditEvent.action == "tag.add")).all()
    assert live == 1 and len(events) == 1
    remove_tag(any_store, "item", "a", "wave-7", "bob")
    assert list_notes(any_store, "item", "a", principal="tester")["tags"] == []



def test_a_purge_whose_audit_event_the_store_fails_to_commit_keeps_every_record(any_store, monkeypatch):
    """The store fails at the commit (a full disk, a dropped connection): the file was already
    replaced, so the records were gone with no audit event saying who purged them."""
    from sqlalchemy import event

    import core.audit as audit

    path = any_store.quarantine_path
    path.write_text(OLD + "\n", encoding="utf-8")
    armed, real = [], audit.record

    def recorded(conn, actor, action, *args, **kwargs):
        armed.append(action)  # the purge's own transaction: its commit is the one that fails
        return real(conn, actor, action, *args, **kwargs)

    def lost(_conn) -> None:
        if armed == ["quarantine_purge"]:
            raise OSError(5, "Input/output error", "store")

    monkeypatch.setattr(audit, "record", recorded)

    event.listen(any_store.engine, "commit", lost)
    try:
        with pytest.raises(OSError, match="Input/output error"):
            purge_quarantine(any_store, 30, "root")
    finally:
        event.remove(any_store.engine, "commit", lost)
    assert armed == ["quarantine_purge"]
    assert path.read_text(encoding="utf-8") == OLD + "\n"  # nothing purged that the audit log does not show
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no copy left behind
    with any_store.read() as conn:
        assert conn.execute(select(AuditEvent.id).where(AuditEvent.action == "quarantine_purge")).all() == []
    assert purge_quarantine(any_store, 30, "root")["removed"] == 1  # and a purge that commits still purges
    assert path.read_text(encoding="utf-8") == ""


def test_load_labelled_keeps_an_ids_first_row_as_ingest_does(tmp_path, taxonomy):
    """A shared file that gives an id twice: ingest stores the first row and quarantines a
    different text as a conflict, but load_labelled returned both, one id with two labels (a
    training set that is not the store, and an id on both sides of a split)."""
    from core.sources import load_labelled

    folder = tmp_path / "davidson_hate_offensive"
    folder.mkdir()
    (folder / "labeled_data.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,2,1,0,0,first tweet\n"
        "0,3,0,0,3,2,second tweet under the same id\n"
        "1,3,0,0,3,2,a\n"
        "1,3,0,0,3,2,a\n")
    df = load_labelled("davidson", shared_dir=tmp_path, taxonomy=taxonomy)
    assert df["id"].tolist() == ["davidson:0", "davidson:1"] and df["text"].tolist() == ["first tweet", "a"]
    assert df["policy_label"].tolist() == ["hate", "benign"]
    [conflict] = df.attrs["conflicts"]
    assert "labeled_data.csv line 3" in conflict and "'davidson:0'" in conflict and "\n" not in conflict


def test_a_refused_tag_or_note_names_its_target_on_one_short_line(any_store, taxonomy, roles):
    """A 100,000-character tag was echoed whole in its refusal, and a viewer's refused note on an id
    holding a line break and an escape sequence printed both (two lines; the terminal ran it)."""
    from core.hooks import PermissionDenied
    from core.principals import Principal

    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    with pytest.raises(NoteError, match="is not allowed") as err:
        add_tag(any_store, "item", "a", "x/" * 50_000, "ann")
    assert len(str(err.value)) < 300
    for call in (lambda who, eid: add_note(any_store, "item", eid, "x", who),
                 lambda who, eid: add_tag(any_store, "item", eid, "x", who),
                 lambda who, eid: remove_tag(any_store, "item", eid, "x", who)):
        with pytest.raises(PermissionDenied) as err:
            call(Principal("vic", "viewer"), "a\n\x1b]52;c;Y3VybA==\x07" + "b" * 100_000)
        message = str(err.value)
        assert "\n" not in message and "\x1b" not in message and "\x07" not in message and len(message) < 300
        assert "item a \\x1b]52;c;" in message and "needs permission" in message


def test_quarantine_commands_show_a_data_dir_escape_sequence_as_text(tmp_path):
    """`quarantine list` and `purge` printed the quarantine's path as it was: a data folder whose
    name holds an escape sequence (a shared mount, another person's folder) ran it in the terminal."""
    from core.store import open_store

    store = open_store(tmp_path / "in\x1b]52;c;Y3VybA==\x07")
    store.quarantine_path.write_text(OLD + "\n", encoding="utf-8")
    try:
        for args in (["quarantine", "list"], ["quarantine", "purge", "--older-than", "1"]):
            res = _cli(store, *args)
            assert res.exit_code == 0, res.output
            assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "in\\x1b]52;c;" in res.stdout
    finally:
        store.dispose()
