"""Hardening of normalisation against text evasion (`clustering.normalize`, `clustering.facts`).

The defects: combining marks NFKC cannot compose ("z̴a̴l̴g̴o̴") stayed in the template and cut a
link or number apart (`p̴r̴i̴z̴e̴-win.com` was the host `-win.com`, shared with `f̴o̴o̴-win.com`:
unrelated waves linked; `0̴9̴0̴6̴...` was no phone); a right-to-left override (U+202E) that shows
`moc.niw-ezirp//:ptth` as a link was read backwards; a number with letter O for zero was lost when
a word starting with "o" followed it ("... 17O 1461 or visit"); a run of zeros ("0 0 0 0 0 0 0 0 0
0") or a number with a second trunk zero was a phone, linking unrelated texts; an e-mail defanged
with "[at]" or "(at)" was no e-mail; a number spelled in words ("zero seven seven ...") was no
phone. Hostile inputs (a megabyte of marks, 100,000 invisible characters or overrides, lone
surrogates, NUL) finish and give sane results.
"""
from __future__ import annotations

import pytest

from clustering import service
from clustering.facts import text_terms
from clustering.normalize import analyse, extract_entities, normalize_template
from test_campaigns import HashingEmbedder, add_items, campaign_of, settings

PLAIN = "WIN a prize! Call 09061701461 or visit http://prize-win.com/claim or text WIN to 87121"


def _zalgo(s: str, mark: str = "\u0334") -> str:
    return "".join(ch + mark for ch in s)


# -- combining marks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    PLAIN.replace("WIN a prize!", _zalgo("WIN a prize!")),
    PLAIN.replace("prize-win.com", _zalgo("prize") + "-win.com"),
    PLAIN.replace("09061701461", _zalgo("09061701461")),
    PLAIN.replace("87121", _zalgo("87121", "\u0336\u0335")),
    _zalgo(PLAIN, "\u0334\u0316\u0489"),  # several marks, an enclosing one (Me) too, on every character
    _zalgo(PLAIN, "\u0300\u0316\u0337"),  # the first composes with its letter (NFKC): "ẁ" then stray marks
])
def test_combining_marks_fold_to_the_plain_copy_of_the_wave(text):
    assert analyse(text) == analyse(PLAIN)


def test_marked_letters_never_leave_a_partial_host_shared_by_unrelated_links():
    a = extract_entities("go to " + _zalgo("prize") + "-win.com")
    b = extract_entities("go to " + _zalgo("foo") + "-win.com")
    assert a.host == ("prize-win.com",) and b.host == ("foo-win.com",)


def test_marks_on_other_scripts_and_composed_accents_are_kept():
    assert normalize_template("नमस्ते दोस्त") == "नमस्ते दोस्त"  # Devanagari vowel signs and virama are marks
    assert normalize_template("cafe\u0301 ouvert") == "café ouvert"  # NFKC composes it: a letter, kept
    assert normalize_template("o\u0323\u0301") == "\u1ecd\u0301"  # a Yoruba tone on a dotted letter stays
    assert extract_entities("visit café-prix.fr/x").host == ("xn--caf-prix-d1a.fr",)


# -- a right-to-left override ---------------------------------------------------------------------------
def test_a_link_reversed_by_a_right_to_left_override_reads_as_shown():
    text = "WIN a prize! Call 09061701461 or visit \u202emialc/moc.niw-ezirp//:ptth\u202c or text WIN to 87121"
    assert analyse(text) == analyse(PLAIN)
    open_run = "WIN a prize! Call 09061701461 or text WIN to 87121 or visit \u202emialc/moc.niw-ezirp//:ptth"
    shown = "WIN a prize! Call 09061701461 or text WIN to 87121 or visit http://prize-win.com/claim"
    assert analyse(open_run) == analyse(shown)  # one token to the end, no PDF: shown reversed too


def test_an_open_override_dropped_into_words_is_read_as_invisible():
    evil = PLAIN.replace("WIN a", "WIN\u202e a").replace("claim or", "claim\u202e or")
    assert analyse(evil) == analyse(PLAIN)


def test_an_override_over_right_to_left_text_leaves_it_as_written():
    hebrew = "\u202eשלום עולם\u202c"
    assert normalize_template(hebrew) == "שלום עולם"


# -- letter O for zero, before a word starting with o -------------------------------------------------
@pytest.mark.parametrize("word", ["or", "only", "on", "of", "oh"])
def test_a_number_with_letter_o_is_kept_before_a_word_starting_with_o(word):
    text = f"Call O9O6 17O 1461 {word} visit"
    assert extract_entities(text).phone == ("09061701461",)
    assert normalize_template(text) == f"call <phone> {word} visit"


@pytest.mark.parametrize("text", ["Call [0906] 170 1461", "Call 0906_170_1461", "Call 0906*170*1461",
                                  "Call 0906\u00b7170\u00b71461", "Call [O9O6] 17O 1461"])
def test_brackets_underscores_stars_and_middle_dots_hide_no_number(text):
    assert extract_entities(text).phone == ("09061701461",)


@pytest.mark.parametrize("text", ["file_0123_456_7890.jpg", "0_0 0_0 0_0 0_0 0_0", "rated 0*1*2*3 [0] 1 2"])
def test_new_separators_make_no_phone_of_names_faces_or_ratings(text):
    assert extract_entities(text).phone == ()


# -- no phone from zeros ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["I have 0 0 0 0 0 0 0 0 0 0 cats", "score 0000 000 0000", "00 123 456 789",
                                  "code 0.000.000.000", "0 0 9 0 6 1 7 0 1 4 6"])
def test_a_number_with_a_second_trunk_zero_is_no_phone(text):
    assert extract_entities(text).phone == ()


@pytest.mark.parametrize("text", ["+44 07700 900123", "0044 7700 900123", "+44 (0) 7700 900123", "07700900123"])
def test_international_and_trunk_forms_are_still_one_phone(text):
    assert extract_entities(text).phone == ("07700900123",)


def test_two_texts_of_zeros_do_not_link(any_store):
    add_items(any_store, [
        ("z1", "so bored tonight, my dating app matches are 0000 000 0000 again lol, pizza later?"),
        ("z2", "The office printer shows error 0000 000 0000 whenever the toner tray opens, ask facilities")])
    service.cluster(any_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert campaign_of(any_store, "z1") is None or campaign_of(any_store, "z1") != campaign_of(any_store, "z2")


# -- defanged e-mail ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["mail claims[at]prize-win.com now", "mail claims (at) prize-win (dot) com now",
                                  "mail claims[@]prize-win[.]com now", "mail claims{at}prize-win.com now"])
def test_a_defanged_email_is_the_email(text):
    assert extract_entities(text).email == ("claims@prize-win.com",)
    assert normalize_template(text) == "mail <email> now"


@pytest.mark.parametrize("text", ["meet me (at) home", "we are [at] the park", "look (at) this.", "price (at) 5",
                                  "i love you [at] all times.com"])
def test_a_word_at_in_brackets_is_no_email(text):
    assert extract_entities(text).email == ()
    assert "@" not in normalize_template(text)  # the words stay as written


# -- a number in words ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Call zero nine zero six one seven zero one four six one now",
                                  "Call oh nine oh six one seven oh one four six one now",
                                  "Call ZERO-NINE-ZERO-SIX-ONE-SEVEN-ZERO-ONE-FOUR-SIX-ONE now"])
def test_a_number_spelled_in_words_is_the_phone(text):
    assert extract_entities(text).phone == ("09061701461",)
    assert normalize_template(text) == "call <phone> now"


@pytest.mark.parametrize("text", ["zero one two three four five six seven eight nine ten",
                                  "one two three four five six seven eight nine zero one",
                                  "zero zero zero zero zero zero zero zero zero zero",
                                  "zero nine zero six one seven",
                                  "casino zero nine zero six one seven zero one four six one"])
def test_counting_in_words_is_no_phone(text):
    assert extract_entities(text).phone == ()


# -- members of one wave link ---------------------------------------------------------------------------
def test_obfuscated_members_of_one_wave_link(any_store):
    add_items(any_store, [
        ("w1", "Your parcel is held, pay the fee at " + _zalgo("parcel-fee") + ".com/p today"),
        ("w2", "Customs charge due, settle it on \u202ep/moc.eef-lecrap\u202c before friday"),
        ("w3", "Tax refund waiting: call O9O6 17O 1461 or reply STOP"),
        ("w4", "Claim your reward now, ring zero nine zero six one seven zero one four six one")])
    service.cluster(any_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert campaign_of(any_store, "w1") is not None
    assert campaign_of(any_store, "w1") == campaign_of(any_store, "w2")
    assert campaign_of(any_store, "w3") is not None
    assert campaign_of(any_store, "w3") == campaign_of(any_store, "w4")


def test_top_terms_of_an_overridden_or_marked_text_are_its_template_words():
    assert "claim" in text_terms("\u202emialc\u202c now")
    assert "prize" in text_terms(_zalgo("prize") + " now")


# -- hostile input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\u0334" * 1_000_000, "a\u0334" * 500_000, "\u200b" * 100_000,
                                  "http://a" + "\u200b" * 100_000 + "b.com", "\u202e" * 100_000,
                                  "\u202eab\u202c" * 100_000, ("0\u0334 " * 100_000), "zero " * 200_000,
                                  "x (at) " * 100_000, "o9o6 o" * 100_000])
def test_hostile_texts_finish(text):
    template, _ = analyse(text)
    assert isinstance(template, str)


def test_lone_surrogates_and_nul_neither_crash_nor_hide_entities():
    text = "call 09061701461 \ud800 now \x00 http://prize-win.com/claim \udfff"
    ents = extract_entities(text)
    assert ents.phone == ("09061701461",) and ents.url == ("prize-win.com/claim",)
    assert isinstance(analyse("\x00" * 100_000 + "\ud800" * 100_000)[0], str)


def test_letters_written_as_symbols_are_masked():
    """Circled, parenthesised, squared and regional-indicator letters are symbols, not letters:
    "ⓥⓘⓛⓔ" was shown as written on a masked case while "vile" was masked."""
    from labeling.masking import mask_text

    for word in ("ⓥⓘⓛⓔ", "🅥🅘🅛🅔", "⒱⒤⒧⒠", "🇻🇮🇱🇪", "🄥🄘🄛🄔"):
        masked = mask_text(f"you {word} people")
        assert word not in masked and "•" in masked, (word, masked)
    assert mask_text("vile") == "v•••"  # plain letters as before
