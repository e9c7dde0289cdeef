"""Template normalisation collapses variants of one message but keeps the entities for linking."""
from __future__ import annotations

import pytest

from clustering.normalize import extract_entities, normalize_template


def test_template_variants_collide():
    a = "URGENT! We are trying to contact you. Last weekends draw shows that you have won a £900 prize GUARANTEED. Call 09061701939. Claim code S89. Valid 12hrs only"
    b = "URGENT!  we are trying to contact you. Last weekends draw shows that you have won a £2,000 prize GUARANTEED. Call 09064012160. Claim code K52. Valid 24hrs only"
    assert normalize_template(a) == normalize_template(b)
    assert "<phone>" in normalize_template(a) and "<money>" in normalize_template(a)


def test_different_messages_stay_different():
    assert normalize_template("Sorry, I'll call later") != normalize_template("Ok lar... Joking wif u oni...")


def test_case_and_spacing_fold():
    assert normalize_template("  Hello\tWORLD \n") == normalize_template("hello world")


@pytest.mark.parametrize("text,kind,value", [
    ("To claim call 09061701461. Claim code KL341.", "phone", "09061701461"),  # UK premium
    ("call our representative on FREEPHONE 0808 145 4742 between 9am-11pm", "phone", "08081454742"),
    ("ring +44 7700 900123 now", "phone", "07700900123"),
    ("apply 08452810075over18's", "phone", "08452810075"),  # digits glued to text
    ("Text FA to 87121 to receive entry", "shortcode", "87121"),
    ("txt the word: CLAIM to No: 81010 T&C www.dbuk.net LCCLTD", "host", "dbuk.net"),
    ("click here>> http://wap. xxxmobilemovieclub.com?n=QJKGIGHJJGCBL", "host", "xxxmobilemovieclub.com"),
    ("more at bit.ly/3abc now", "host", "bit.ly"),
    ("mail Claims@Prize-Dept.co.uk today", "email", "claims@prize-dept.co.uk"),
])
def test_entities_are_kept(text, kind, value):
    ents = extract_entities(text)
    assert value in getattr(ents, kind), ents
    # ... while the template replaces them with a token.
    assert value not in normalize_template(text)


def test_email_gives_its_host_too():
    ents = extract_entities("write to win@prizes.example.com")
    assert ents.email == ("win@prizes.example.com",)
    assert "prizes.example.com" in ents.host


@pytest.mark.parametrize("text", [
    "From 100 to 20,000 pounds",       # money, not a short code
    "final tkts 21st May 2005",        # a year
    "Cost 150p/day, 6days",            # a price
    "i.e. e.g. u.s. are not hosts",    # abbreviations
    "call me at 5 ok",
])
def test_no_false_entities(text):
    assert not extract_entities(text), extract_entities(text)


def test_entities_items_filter_kinds():
    ents = extract_entities("Text WIN to 87121 or call 09061701461")
    assert ents.items(["shortcode"]) == [("shortcode", "87121")]
    assert set(ents.as_dict()) == {"phone", "shortcode"}
