"""Hardening of item search against hostile texts, third round (clustering3).

The defects: on PostgreSQL the fold dropped only a short list of "usual" invisible characters and
collapsed only the spaces PostgreSQL's `\\s` knows, so 139 characters `normalize_light` drops or
reads as a space (tag characters U+E0020.., Arabic number signs, NEL, U+001C..U+001F) stayed, and
a scam written "p<U+E0020>rize" hid from a search for "prize" there (on SQLite it was found); it
also dropped them after NFKC, so "e<ZWSP><COMBINING ACUTE>" never became "é"; and a viewer found
an item through the words of its notes when the item's text was sensitive but has no word to mask
("1488"): its notes are masked with it everywhere else; a damaged or planted log of the campaign
index (a line of 100,000 "[", numbers for keys) was a RecursionError traceback, or loaded ints as
keys, instead of the one-line "rebuild" error.
"""
from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from sqlalchemy import literal, select

from clustering.index import KEYS_FILE, META_FILE, IndexError_, VectorIndex
from core.principals import Principal
from core.text import normalize_light
from core.textsearch import folded
from labeling.notes import add_note, list_notes
from labeling.search import search
from test_models_fixtures import add_items
from test_queue_support import add_scored

LEAD, VIEWER = Principal("lead", "lead"), Principal("vic", "viewer")


def _found(store, settings, query, who=LEAD):
    return sorted(r["item_id"] for r in search(store, query, who, settings, limit=100)["results"])


def test_texts_hidden_by_rare_invisible_or_space_characters_are_found_on_both_stores(any_store, review_settings,
                                                                                     roles):
    texts = ["claim your p\U000e0020rize", "claim\x85prize now", "vote for the cafe\u200b\u0301", "p\u0600rize\u1680draw",
             "nothing"]
    ids = add_items(any_store, texts, ["spam"] * len(texts))
    assert _found(any_store, review_settings, "text:prize") == ids[:2] + [ids[3]]
    assert _found(any_store, review_settings, "text:claim prize") == [ids[1]]
    assert _found(any_store, review_settings, "text:café") == [ids[2]]
    assert _found(any_store, review_settings, "text:prize draw") == [ids[3]]


def test_the_sql_fold_drops_every_format_character_and_folds_every_space(any_store):
    odd = [chr(c) for r in (range(0x20000), range(0xE0000, 0xE1000)) for c in r
           if unicodedata.category(chr(c)) == "Cf" or chr(c).isspace()]
    with any_store.read() as conn:
        dialect = conn.dialect.name
        got = conn.execute(select(*[folded(literal(f"A{ch}b"), dialect) for ch in odd])).one()
    wrong = [f"U+{ord(ch):04X}" for ch, g in zip(odd, got) if g != normalize_light(f"A{ch}b")]
    assert not wrong, wrong


def test_a_viewer_cannot_probe_the_notes_of_a_sensitive_text_that_has_no_word_to_mask(any_store, taxonomy,
                                                                                     review_settings, roles):
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "hate", "p": 0.95, "text": "1488"},
                                     {"id": "b1", "label": "benign", "p": 0.97, "text": "see you at 6"}])
    add_note(any_store, "item", "h1", "numerology of the movement", LEAD)
    add_note(any_store, "item", "b1", "numerology club", LEAD)
    assert list_notes(any_store, "item", "h1", review_settings, principal="tester")["masked"]  # the note is hidden from a viewer
    assert _found(any_store, review_settings, "note:numerology", VIEWER) == ["b1"]
    assert _found(any_store, review_settings, "note:numerology", LEAD) == ["b1", "h1"]
    assert _found(any_store, review_settings, "h1", VIEWER) == ["h1"]  # found by its id, as before


@pytest.mark.parametrize("body, message", [("[" * 100_000 + "\n", "nested too deeply"),
                                           ('"a"\n2\n"c"\n"d"\n', "line 2 is int, expected a string")])
def test_a_damaged_or_planted_key_log_is_a_one_line_rebuild_error(tmp_path, body, message):
    ix = VectorIndex(4, delta_max=50)
    ix.add(["a", "b", "c", "d"], np.eye(4, dtype=np.float32))
    ix.save(tmp_path)
    (tmp_path / KEYS_FILE).write_text(body)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps(dict(meta, keys_log=[body.count("\n"), len(body)])))
    with pytest.raises(IndexError_, match=message) as exc:
        VectorIndex.load(tmp_path)
    assert "\n" not in str(exc.value) and "--rebuild" in str(exc.value)


def test_a_look_alike_e_mail_domain_is_another_domain_than_the_real_one():
    """`support@p<Cyrillic a>ypal.com` was read as `support@paypal.com`: the scam's domain hidden
    from analysts and linked with the genuine one. URLs already kept their host as written."""
    from clustering.normalize import extract_entities

    fake = extract_entities("mail support@p\u0430ypal.com now")
    real = extract_entities("mail Support@PayPal.com now")
    assert real.email == ("support@paypal.com",) and real.host == ("paypal.com",)
    assert fake.email == ("support@xn--pypal-4ve.com",) and fake.host == ("xn--pypal-4ve.com",)
