"""Search matches text and notes in their folded form (`core.textsearch`), on both stores.

The defects: on SQLite `find` was case-insensitive for ASCII letters only ("приз" missed
"ПРИЗ"), and on both stores a fullwidth or zero-width-split word ("ＰＲＩＺＥ", "pri\u200bze")
escaped a search for "prize", though every hash and pattern reads those forms alike.
"""
from __future__ import annotations

import pytest

from core.principals import Principal
from core.text import normalize_light
from core.textsearch import contains_folded, folded
from labeling.notes import add_note
from labeling.search import search
from test_models_fixtures import add_items

LEAD = Principal("lead", "lead")
TEXTS = ["You won a PRIZE, call now", "ＰＲＩＺＥ waiting for you", "claim your pri\u200bze today",
         "ВЫ ВЫИГРАЛИ ПРИЗ", "see you at lunch", "50% off: 100%_real"]


def _found(store, review_settings, query):
    out = search(store, query, LEAD, review_settings, limit=100)
    return {r["item_id"] for r in out["results"] if "text" in r["matched"]}


@pytest.mark.parametrize("store_name", ["sqlite_store", "pg_store"])
def test_text_search_folds_case_forms_and_invisible_characters(store_name, request, review_settings, roles):
    store = request.getfixturevalue(store_name)
    add_items(store, TEXTS, ["spam"] * len(TEXTS))
    ids = [f"toy:{i:05d}" for i in range(len(TEXTS))]
    assert _found(store, review_settings, "prize") == set(ids[:3])
    assert _found(store, review_settings, "text:ＰＲＩＺＥ") == set(ids[:3])
    assert _found(store, review_settings, "приз") == {ids[3]}
    assert _found(store, review_settings, "lunch") == {ids[4]}
    # LIKE's wildcards are literal in a query: "%_" only matches a text holding "%_".
    assert _found(store, review_settings, "text:%_") == {ids[5]}
    assert _found(store, review_settings, "text:\u200b") == set()  # nothing visible: no text match


@pytest.mark.parametrize("store_name", ["sqlite_store", "pg_store"])
def test_note_search_folds_too(store_name, request, review_settings, roles):
    store = request.getfixturevalue(store_name)
    add_items(store, TEXTS[:1], ["spam"])
    add_note(store, "item", "toy:00000", "Callback number is the ＳＣＡＭ line", LEAD)
    out = search(store, "note:scam line", LEAD, review_settings)
    assert [r["item_id"] for r in out["results"]] == ["toy:00000"]


@pytest.mark.parametrize("store_name", ["sqlite_store", "pg_store"])
def test_sql_fold_agrees_with_normalize_light(store_name, request):
    from sqlalchemy import literal, select

    store = request.getfixturevalue(store_name)
    samples = ["ＰＲＩＺＥ", "a\u200b\u200cb", "  Mixed   Case\tand\nspace  ", "ПРИЗ", "e\u0301", "x\ufeffy"]
    with store.read() as conn:
        for s in samples:
            assert conn.execute(select(folded(literal(s), conn.dialect.name))).scalar() == normalize_light(s), s
            assert conn.execute(select(contains_folded(literal(s), s.upper(), conn.dialect.name))).scalar()
