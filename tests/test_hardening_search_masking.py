"""Hardening of masking and item search.

The defects: a zero-width space, soft hyphen or combining accent after each letter made every
letter a one-letter "word", which `mask_text` left as it was ("v\u200bi\u200bl\u200be" was shown
in full); on PostgreSQL a text holding "ß" or "İ" did not find itself (the query was casefolded
in Python, the column only lowered in SQL); a NUL in a query matched every item on SQLite and
was a driver error on PostgreSQL, a lone surrogate a raw encoding error on both; and a viewer
whose first `CAP` text matches were all hidden read an exact, small total instead of "N+".
"""
from __future__ import annotations

import pytest

import labeling.search as search_mod
from core.principals import Principal
from labeling.masking import mask_text
from labeling.search import SearchError, search
from test_models_fixtures import add_items
from test_queue_support import add_scored

LEAD = Principal("lead", "lead")
ZW, SHY, ACUTE = "\u200b", "\u00ad", "\u0301"


@pytest.mark.parametrize("text, shown", [(ZW.join("vile") + " " + ZW.join("vermin"), "v••• v•••••"),
                                         (SHY.join("vile"), "v•••"), ("".join(c + ACUTE for c in "vile"), "v•••"),
                                         ("vi\u200dle!", "v•••!"), ("v\U000e0100i\U000e0100le", "v•••")])
def test_mask_hides_words_split_by_invisible_characters_or_combining_marks(text, shown):
    assert mask_text(text) == shown


def test_text_finds_itself_on_both_stores_with_sharp_s_final_sigma_and_dotted_i(any_store, review_settings, roles):
    texts = ["Grüße aus der Straße", "İstanbul'da buluşalım", "ΚΑΛΗ ΟΔΟΣ", "nothing here"]
    ids = add_items(any_store, texts, ["spam"] * len(texts))

    def found(q):
        return [r["item_id"] for r in search(any_store, f"text:{q}", LEAD, review_settings)["results"]]

    assert found("Straße") == [ids[0]] and found("STRASSE") == [ids[0]] and found("grüsse") == [ids[0]]
    assert found("İstanbul") == [ids[1]]
    assert found("οδος") == [ids[2]] and found("ΟΔΟΣ") == [ids[2]]


@pytest.mark.parametrize("query", ["text:\x00", "a\x00b", "author:\x00", "\ud800", "note:x\udcff"])
def test_a_query_with_a_nul_or_a_lone_surrogate_is_refused_in_one_line(any_store, review_settings, roles, query):
    add_items(any_store, ["hello world", "see you"], ["spam", "spam"])
    with pytest.raises(SearchError, match="NUL|lone surrogate") as exc:
        search(any_store, query, LEAD, review_settings)
    assert "\n" not in str(exc.value)


def test_total_is_a_lower_bound_when_hidden_texts_fill_the_cap(any_store, taxonomy, review_settings, roles,
                                                                monkeypatch):
    add_scored(any_store, taxonomy, [
        {"id": "a1", "label": "benign", "p": 0.97, "text": "vile weather again"},
        {"id": "h1", "label": "hate", "p": 0.9, "text": "those people are vile"},
        {"id": "h2", "label": "hate", "p": 0.9, "text": "vile vermin, all of them"},
        {"id": "a2", "label": "benign", "p": 0.97, "text": "vile coffee at the station"}])
    monkeypatch.setattr(search_mod, "CAP", 3)
    out = search(any_store, "text:vile", Principal("vic", "viewer"), review_settings)
    # only 3 matches were looked at, the hidden ones left out: more may match, the total says so
    assert out["total"] < 3 and out["capped"]
    assert not search(any_store, "text:weather", Principal("vic", "viewer"), review_settings)["capped"]


def test_search_tab_says_plus_for_a_capped_total_on_one_page():
    from workbench.ui.search import summary_md

    out = {"results": [{}], "total": 1, "capped": True, "offset": 0, "campaigns": [], "query": "vile"}
    assert "**1+ items**" in summary_md(out)
    assert "**1 items**" in summary_md(dict(out, capped=False))
