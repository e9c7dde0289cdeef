"""Hardening of campaign entity extraction (`clustering.normalize`), normalize_entities round.

The defects: a URL's path was case-folded, so two different short links (`bit.ly/AbCd` and
`bit.ly/aBcD`) were one entity and linked unrelated waves; a WhatsApp chat link's number was no
phone entity, so `wa.me/447700900123` did not link with `07700 900123`; an e-mail with an
internationalised domain (`x@münchen.de`) was not extracted, and one with a non-ASCII local part
was cut mid-word (`möller@x.de` and `mäller@x.de` were both `ller@x.de`: one entity); letter O for
zero (`09OO 123 4567`) and `/` between digit groups (`0906/170/1461`) hid a number; spelled or
spaced dots (`www dot evil dot com`, `evil . com/claim`) hid a link, while sentences such as
"ok. me too" or "the dot com bubble" must stay words. Every new pattern stays linear: a match
starts only at the start of a run, or reads a bounded stretch, checked on texts 10x the 100 KB a
hostile post can carry (a quadratic pattern would not finish them).
"""
from __future__ import annotations

import pytest

from clustering import normalize
from clustering.normalize import analyse, extract_entities, normalize_template

BIG = 1_000_000  # 10x a 100 KB hostile text


# -- a URL's path keeps its case --------------------------------------------------------------------
def test_short_links_differing_only_in_case_are_two_entities():
    a, b = extract_entities("claim at bit.ly/AbCd now"), extract_entities("claim at bit.ly/aBcD now")
    assert a.url == ("bit.ly/AbCd",) and b.url == ("bit.ly/aBcD",)
    assert a.host == b.host == ("bit.ly",)  # the host still folds: one site
    assert extract_entities("claim at HTTPS://WWW.Bit.LY/AbCd").url == a.url  # scheme, www, host case
    assert extract_entities("go https://x.co/p?Q=Ab#Fr.").url == ("x.co/p?Q=Ab#Fr",)
    assert normalize_template("claim at bit.ly/AbCd now") == normalize_template("claim at bit.ly/aBcD now")


@pytest.mark.parametrize("text", ["Straße ist gesperrt, bit.ly/AbCd", "Ваш приз: bit.ly/AbCd", "İstanbul bit.ly/AbCd",
                                  "ﬁnal notice bit.ly/AbCd"])
def test_a_path_keeps_its_case_in_a_text_whose_case_folding_changes_its_length(text):
    assert extract_entities(text).url == ("bit.ly/AbCd",)


def test_a_look_alike_host_is_still_kept_as_written_with_the_path_case():
    ents = extract_entities("login at p\u0430ypal.com/Verify")
    assert ents.url == ("xn--pypal-4ve.com/Verify",) and ents.host == ("xn--pypal-4ve.com",)


# -- a WhatsApp link's number -----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["chat wa.me/447700900123", "chat https://wa.me/+447700900123?text=Hi",
                                  "https://api.whatsapp.com/send?phone=447700900123&text=hi",
                                  "https://api.whatsapp.com/send/?text=hi&phone=%2B447700900123",
                                  "WA.ME/4407700900123"])
def test_a_whatsapp_link_number_links_with_the_same_number_written_out(text):
    assert extract_entities(text).phone == extract_entities("call 07700 900123").phone == ("07700900123",)
    assert len(extract_entities(text).url) == 1  # the link itself is kept too


@pytest.mark.parametrize("text", ["chat wa.me/15551234567", "join chat.whatsapp.com/AbCd1234567890",
                                  "wa.me/44123", "x.com/send?phone=447700900123", "wa.me/message/447700900123"])
def test_no_phone_from_a_link_that_gives_no_uk_number(text):
    assert extract_entities(text).phone == ()


# -- e-mails ----------------------------------------------------------------------------------------
def test_an_email_with_an_internationalised_domain_is_extracted_in_punycode():
    ents = extract_entities("write to x@münchen.de today")
    assert ents.email == ("x@xn--mnchen-3ya.de",)
    assert ents.host == extract_entities("see münchen.de/x").host == ("xn--mnchen-3ya.de",)
    assert normalize_template("write to x@münchen.de today") == "write to <email> today"


def test_a_non_ascii_local_part_is_read_whole_and_not_cut_mid_word():
    assert extract_entities("mail möller@x.de").email == ("möller@x.de",)
    assert extract_entities("mail mäller@x.de").email == ("mäller@x.de",)  # was "ller@x.de" for both
    assert extract_entities("请联系support@x.com谢谢").email == ("support@x.com",)  # no spaces in Chinese


# -- numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,phone", [("call 09OO 123 4567", "09001234567"), ("ring O7700 900123 now", "07700900123"),
                                        ("ring +44 77OO 900123", "07700900123"), ("call 0906/170/1461", "09061701461"),
                                        ("call 07700/900123", "07700900123")])
def test_letter_o_for_zero_and_slashes_hide_no_number(text, phone):
    assert extract_entities(text).phone == (phone,)
    assert "<phone>" in normalize_template(text)


@pytest.mark.parametrize("text", ["0 or 1", "o2 shop, room 0o1", "0ooo ooo oooo", "on 01/02/2024", "score 0/10",
                                  "page 10o1234567", "top 0o12345678over"])
def test_words_dates_and_scores_with_o_or_slashes_are_no_phone(text):
    assert extract_entities(text).phone == ()


def test_a_number_beside_an_o_word_or_a_short_slash_is_read_as_before():
    assert extract_entities("call 0 or 07700900123").phone == ("07700900123",)
    assert extract_entities("call 0906.170.1461/2").phone == ("09061701461",)


# -- spelled and spaced dots ----------------------------------------------------------------------
@pytest.mark.parametrize("text,url", [
    ("visit www dot evil dot com", "evil.com"), ("visit evil . com/claim", "evil.com/claim"),
    ("visit evil .com/claim", "evil.com/claim"), ("visit http://evil . com", "evil.com"),
    ("visit Evil dot Co dot UK now", "evil.co.uk"), ("visit evil . com", "evil.com"),
    ("thanks. evil . com", "evil.com"),  # a sentence's end is no separator: not thanks.evil.com
])
def test_spelled_or_spaced_dots_in_a_link_are_rejoined(text, url):
    assert extract_entities(text).url == (url,)


@pytest.mark.parametrize("text", ["ok. me too", "ok . me too", "the dot com bubble", "the dot com/internet era",
                                  "polka dot me", "just us. me/you", "go to ok. com/ now", "evil dot com"])
def test_sentences_with_a_dot_or_the_word_dot_are_no_link(text):
    assert not extract_entities(text), extract_entities(text)


# -- linear time ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text,start", [
    ("_EMAIL", "möller.é@x.de", 2),               # inside a non-ASCII local part
    ("_PHONE_O_RUN", "09oo 123 4567", 2),         # inside an O-for-zero run
    ("_PHONE_O_RUN", "o7700 9oo123", 6),
    ("_PHONE_RUN", "0906/170/1461", 5),           # after a slash
])
def test_a_new_pattern_only_starts_at_the_start_of_a_run(name, text, start):
    pattern = getattr(normalize, name)
    assert pattern.match(text) is not None
    assert pattern.match(text, start) is None


def test_a_spelled_host_start_reads_a_bounded_number_of_labels():
    assert normalize._SPELLED_HOST.match("a . " * 20 + "com") is None
    assert normalize._SPELLED_HOST.match("a . b . c . d . e . com").group(0) == "a . b . c . d . e . com"


@pytest.mark.parametrize("filler", ["é" * 64 + "@", "é@é.", "a dot ", "a . ", "www dot ", "0o", "o 0 ", "09oo ",
                                    "/123", "x@中x.", "ü."])
def test_hostile_megabyte_texts_finish_and_keep_every_entity(filler):
    """Each filler repeated to 1 MB, then 2,000 real entities of every new kind: all are found."""
    real = " ".join(f"wa.me/4477009{i:05d} www dot s{i} dot com m{i}@münchen.de 09OO 12{i + 1000:04d}, "
                    f"bit.ly/Ab{i}Cd 0906/17{i:04d}" for i in range(2000))
    _template, ents = analyse(filler * (BIG // len(filler)) + " , " + real)
    hosts = {h for h in ents.host if h.startswith("s") and h.endswith(".com")}
    assert len(hosts) == 2000 and len([e for e in ents.email if e.startswith("m")]) == 2000
    assert len([u for u in ents.url if u.startswith("bit.ly/Ab")]) == 2000
    phones = set(ents.phone)
    assert all(f"077009{i:05d}" in phones and f"090012{i + 1000:04d}" in phones
               and f"090617{i:04d}" in phones for i in range(2000))
