"""Hardening of analyst notes and item search.

The defects: adding a note or a tag, or taking one off, asked only for `note` / `tag`, never for
`read`, so a token scoped to `note` alone (or a custom role without `read`) wrote notes on items
it may not see and learnt which item ids exist from "no item 'x'" against success; and ids and
authors are stored NFC-normalised (`core.readers`), but `id:`/`author:` searches and a note's
target id were looked up as typed, so "cafe\u0301" (e plus a combining accent, the same text on
screen) found nothing and a note on it was refused as "no item"; and the campaigns a search
matched were not paged: a tag on 1000 campaigns listed (and read the rows and cases of) all 1000
on every page, whatever the limit; and an item with `CAP` notes matching a word filled the
note matches alone, so no other item's note was found (and the total read "1+").
"""
from __future__ import annotations

import unicodedata

import pytest

import labeling.search as search_mod
from sqlalchemy import func, select

from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import Note, Tag
from labeling.notes import add_note, add_tag, remove_tag
from labeling.search import search

from test_context import _author
from test_queue_support import add_campaign, add_scored, asked

ANN = Principal("ann", "analyst")
NFC_ID, NFC_AUTHOR = unicodedata.normalize("NFC", "café:1"), unicodedata.normalize("NFC", "josé")


def _count(store, table):
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("scopes", [("note", "tag"), ("note",), ("tag",)])
def test_a_token_without_read_can_neither_note_nor_tag_nor_probe_which_items_exist(any_store, taxonomy, roles,
                                                                                   scopes):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    add_tag(any_store, "item", "a", "wave-1", ANN)
    bot = Principal("bot", "analyst", scopes=scopes)
    for target in ("a", "no-such-item"):  # the same refusal whether the item exists or not
        for call in (lambda: add_note(any_store, "item", target, "seen it", bot),
                     lambda: add_tag(any_store, "item", target, "wave-2", bot),
                     lambda: remove_tag(any_store, "item", target, "wave-1", bot)):
            with pytest.raises(PermissionDenied, match="'(read|note|tag)'") as exc:
                call()
            assert "no item" not in str(exc.value) and "\n" not in str(exc.value)
    assert _count(any_store, Note.__table__) == 0 and _count(any_store, Tag.__table__) == 1
    # with `read` as well, the same token works
    both = Principal("bot", "analyst", scopes=("read", "note", "tag"))
    assert add_note(any_store, "item", "a", "seen it", both)["entity_id"] == "a"


def test_id_and_author_searches_find_a_decomposed_spelling_of_a_stored_id(any_store, taxonomy, review_settings, roles):
    add_scored(any_store, taxonomy, [{"id": NFC_ID, "label": "scam", "p": 0.9, "text": "hello there"},
                                     {"id": "other", "label": "scam", "p": 0.9, "text": "bye"}])
    _author(any_store, [NFC_ID], NFC_AUTHOR)
    nfd_id, nfd_author = unicodedata.normalize("NFD", NFC_ID), unicodedata.normalize("NFD", NFC_AUTHOR)
    assert nfd_id != NFC_ID

    def found(q):
        return [r["item_id"] for r in search(any_store, q, ANN, review_settings)["results"]]

    assert found(f"id:{nfd_id}") == [NFC_ID] and found(nfd_id) == [NFC_ID]
    assert found(f"author:{nfd_author}") == [NFC_ID] and found(nfd_author) == [NFC_ID]


def test_a_note_on_a_decomposed_spelling_of_an_id_is_kept_under_the_stored_id(any_store, taxonomy, roles):
    add_scored(any_store, taxonomy, [{"id": NFC_ID, "label": "scam", "p": 0.9}])
    out = add_note(any_store, "item", unicodedata.normalize("NFD", NFC_ID), "carrier confirmed", ANN)
    assert out["entity_id"] == NFC_ID
    with any_store.read() as conn:
        assert conn.execute(select(Note.__table__.c.entity_id)).scalars().all() == [NFC_ID]


def _tagged_campaigns(store, taxonomy, start, n):
    """`n` campaigns of one item each (items m<start>...), all tagged wave-7; their ids."""
    add_scored(store, taxonomy, [{"id": f"m{k}", "label": "scam", "p": 0.9} for k in range(start, start + n)])
    cids = [add_campaign(store, [f"m{k}"]) for k in range(start, start + n)]
    for c in cids:
        add_tag(store, "campaign", c, "wave-7", ANN)
    return cids


def test_campaigns_a_search_matches_are_paged_and_read_no_more_as_they_grow(any_store, taxonomy, review_settings,
                                                                          roles):
    cids = _tagged_campaigns(any_store, taxonomy, 0, 12)
    first = search(any_store, "tag:wave-7", ANN, review_settings, limit=5)
    second = search(any_store, "tag:wave-7", ANN, review_settings, limit=5, offset=5)
    got = [c["campaign_id"] for c in first["campaigns"]]
    assert got == sorted(cids, reverse=True)[:5] and first["campaign_total"] == 12  # newest first, 5 of 12
    assert [c["campaign_id"] for c in second["campaigns"]] == sorted(cids, reverse=True)[5:10]
    with asked(any_store) as small:
        search(any_store, "tag:wave-7", ANN, review_settings, limit=5)
    _tagged_campaigns(any_store, taxonomy, 12, 40)
    with asked(any_store) as large:
        out = search(any_store, "tag:wave-7", ANN, review_settings, limit=5)
    assert len(out["campaigns"]) == 5 and out["campaign_total"] == 52
    assert large == small  # the same statements and values bound for 12 and 52 matching campaigns


def test_search_tab_counts_every_matching_campaign_not_the_page():
    from workbench.ui.search import summary_md

    out = {"results": [], "total": 0, "capped": False, "offset": 0, "campaigns": [{}] * 25, "campaign_total": 60,
           "query": "wave-7"}
    assert "; 60 campaigns" in summary_md(out)


def test_an_item_with_many_matching_notes_leaves_room_for_the_others(any_store, taxonomy, review_settings, roles,
                                                                     monkeypatch):
    add_scored(any_store, taxonomy, [{"id": k, "label": "scam", "p": 0.9} for k in ("busy", "quiet")])
    for n in range(3):
        add_note(any_store, "item", "busy", f"callback number {n}", ANN)
    add_note(any_store, "item", "quiet", "asked for a callback", ANN)
    monkeypatch.setattr(search_mod, "CAP", 3)
    out = search(any_store, "note:callback", ANN, review_settings)
    assert sorted(r["item_id"] for r in out["results"]) == ["busy", "quiet"] and not out["capped"]


def test_find_says_how_many_campaigns_match_beyond_the_page(any_store, taxonomy, roles):
    from click.testing import CliRunner

    from workbench.cli import cli

    _tagged_campaigns(any_store, taxonomy, 0, 3)
    base = ["--data-dir", str(any_store.data_dir)] + ([] if any_store.is_sqlite else ["--db", any_store.url])
    out = CliRunner().invoke(cli, [*base, "find", "tag:wave-7", "--limit", "2"])
    assert out.exit_code == 0 and sum("  campaign " in line for line in out.output.splitlines()) == 2
    assert "3 campaigns match; showing 2 from 1" in out.output
