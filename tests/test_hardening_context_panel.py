"""Hardening of the context beside a case (labeling.context, workbench.ui.context_panel): a
prolific author's panel reads a bounded number of rows; the item's history keeps the label of
record when it is cut; masked texts stay masked as the page shows them (HTML entities decoded);
a campaign's notes are as hidden as its members."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from core.labels import current_decisions
from core.schema import Item
from labeling.context import author_context, case_context, item_history
from labeling.masking import mask_text

import test_context
from test_context import _case_of
from test_queue_support import asked

world = test_context.world  # the fixture

EXTRA = 1500


def test_a_prolific_authors_panel_reads_a_bounded_number_of_rows(world, taxonomy, review_settings):
    store, _ = world
    I = Item.__table__
    with store.begin() as conn:
        base = dict(conn.execute(select(I).where(I.c.id == "old2")).mappings().one())
        old = dt.datetime(2020, 1, 1)
        conn.execute(insert(I), [{**base, "id": f"bulk{i:05d}", "text": f"post number {i}", "text_hash": f"h{i}",
                                  "created_at": old + dt.timedelta(minutes=i)} for i in range(EXTRA)])
    with store.read() as conn:
        ids = list(conn.execute(select(I.c.id).where(I.c.author_id == "u9", I.c.id != "new")).scalars())
        every = current_decisions(conn, ids)
    with asked(store) as seen, store.read() as conn:
        got = author_context(conn, "u9", "new", review_settings)
    # the totals are still over all the author's items, by the label of record (old1's correction)
    assert (got["items"], got["decided"]) == (EXTRA + 2, len(every)) and got["decided"] >= 1
    assert got["violations"] == sum(1 for d in every.values() if d["action"] != "no_action")
    assert len(got["recent"]) == review_settings.author_history
    assert seen[1] < 200, seen[1]  # every one of the 1,502 ids was bound: 1,500+ values
    ctx = case_context(store, taxonomy, _case_of(store, "new"), "bob", review_settings)
    assert ctx["author"]["items"] == EXTRA + 2


def test_a_cut_history_keeps_the_label_of_record(world):
    store, _ = world
    with store.read() as conn:
        full = item_history(conn, "old1")
        cut = item_history(conn, "old1", limit=1)
    assert [(h["reviewer"], h["current"]) for h in full] == [("ann", False), ("lee", True)]
    # the oldest decision alone, neither current nor superseded, read as the label of record
    assert [(h["reviewer"], h["label"], h["current"]) for h in cut] == [("lee", "hate", True)]


VILE = "&#118;&#105;&#108;&#101;"  # "vile", as HTML entities: no letter for the mask to hide


def test_entity_encoded_words_are_masked_as_the_panel_shows_them(world, taxonomy, review_settings):
    from sqlalchemy import update

    from labeling.decisions import correct
    from labeling.notes import add_note
    from workbench.ui.context_panel import notes_html, panel_html

    store, _ = world
    I = Item.__table__
    with store.begin() as conn:  # old1: decided hate, so masked by its own rule
        conn.execute(update(I).where(I.c.id == "old1").values(text=f"those people are {VILE} &amp;#116;rash"))
    with store.read() as conn:
        lee = item_history(conn, "old1")[-1]["id"]
    correct(store, taxonomy, lee, "lee", "hate", rationale=f"calls them {VILE}", action="remove_and_warn")
    add_note(store, "item", "new", f"{VILE} again", "ann")
    ctx = case_context(store, taxonomy, _case_of(store, "new"), "bob", review_settings)
    shown = panel_html(ctx) + notes_html(ctx)
    assert ctx["masked"] and "filthy" not in shown
    assert "vile" not in shown and "trash" not in shown, shown  # the page decoded the entities the mask left
    ctx = case_context(store, taxonomy, _case_of(store, "old1"), "bob", review_settings)
    assert ctx["masked"] and "vile" not in panel_html(ctx), panel_html(ctx)


def test_campaign_notes_are_masked_while_a_member_is(world, taxonomy, review_settings):
    from labeling.notes import add_note, list_notes

    from test_queue_support import add_campaign

    store, _ = world
    case = _case_of(store, "old2")
    assert case is not None
    cid = add_campaign(store, ["old2", "old1"])  # old1 decided hate: masked by its own rule
    add_note(store, "campaign", cid, "they keep calling people filthy vermin", "lee")
    listed = list_notes(store, "campaign", cid, review_settings, principal="bob")
    assert listed["masked"] and "vermin" not in str(listed)  # the one rule for a campaign's notes
    ctx = case_context(store, taxonomy, case, "bob", review_settings)
    assert not ctx["masked"] and ctx["campaign_id"] == cid  # old2's own text is benign
    assert [n["body"] for n in ctx["notes"]["campaign"]] == [mask_text("they keep calling people filthy vermin")]
