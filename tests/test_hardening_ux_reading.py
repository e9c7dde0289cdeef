"""Reading the Review screen at 1366x768, from the browser audit:

1. keyboard only, a revealed text stayed blurred (only a mouse hover cleared the blur): the text
   box is focusable and focus shows it sharp, and `b` shows it sharp or blurs it again;
2. a similar past decision's rationale was masked word for word ("d•••: t•• s•••••"): an
   analyst's own words are shown, what the note quotes from the texts stays masked;
3. the override hint took a third of the rationale row; the similar-decisions table broke
   "harass ment" and "block_sen der" inside the word;
4. the "Signed in as" badge stayed fixed over the content while the page scrolled.
"""
from __future__ import annotations

import re

import pytest

from labeling.masking import mask_packet, mask_text
from test_review_screen import SLUR, case_of, seed
from test_ui_review import _open, _open_case, _serve

NOTE = "demo: the source dataset's label (harassment)"


# --- 2. the rule: a note is shown, its quotes of the texts masked ---------------------------------------

def _packet(masked: bool, row_sensitive: bool) -> dict:
    return {"masked": masked, "item": {"text": "you lot are grubworms"}, "campaign": None, "decisions": [],
            "similar_decisions": [{"text": "they are grubworms, all of it", "_sensitive": row_sensitive,
                                   "rationale": f"{NOTE}; calls them grubworms", "label": "harassment"}]}


def test_a_similar_decisions_rationale_keeps_the_analysts_words_and_masks_its_quotes():
    for masked, revealed in ((True, False), (True, True), (False, False)):
        row = mask_packet(_packet(masked, True), revealed=revealed)["similar_decisions"][0]
        assert row["text"] == mask_text("they are grubworms, all of it")  # the other item stays masked
        assert row["rationale"].startswith(NOTE + "; calls them g••••••••"), row["rationale"]
        assert SLUR not in row["rationale"] and "_sensitive" not in row
    # while the case is masked, a note quoting the case's own text is masked there too
    p = _packet(True, False)
    p["similar_decisions"][0].update(text="a fine text", rationale="like the case: you lot")
    assert mask_packet(p, revealed=False)["similar_decisions"][0]["rationale"] == "like the case: y•• l••"
    # the case's own decisions' rationales stay masked whole until the reveal (one rule: they quote it)
    p = dict(_packet(True, True), decisions=[{"rationale": NOTE}])
    assert mask_packet(p, revealed=False)["decisions"][0]["rationale"] == mask_text(NOTE)


def test_a_quote_is_masked_however_it_is_written():
    from labeling.masking import mask_quotes

    text = "they are grubworms &amp; v\u200bi\u200bl\u200be, 🅥🅘🅛🅔 f u c k"
    for quote in ("grubworms", "GRUBWORMS!", "grubw0rm$", "gru\u0301bworms", "grubwormses", "Ⓥⓘⓛⓔ", "vile",
                  "fuck", "&amp;#118;&amp;#105;&amp;#108;&amp;#101;"):
        shown = mask_quotes(f"said {quote} twice", text)
        assert shown.startswith("said ") and shown.endswith(" twice"), (quote, shown)
        assert re.search(r"said \S•+\S* twice", shown), (quote, shown)
    assert mask_quotes("s l u r spelled out", "nothing") == "s • • • spelled out"  # spelled: masked anyway
    assert mask_quotes("Q&A on the label", "nothing") == "Q\uff06A on the label"  # no later decoding makes words


# --- 3. the similar decisions' table: no break inside a word ----------------------------------------------

def test_the_similar_table_breaks_names_only_between_their_parts():
    from workbench.ui.render import similar_html

    html = similar_html({"similar_decisions": [{"similarity": 0.47, "label": "harassment", "action": "block_sender",
                                                "reviewer": "sim-ben", "rationale": NOTE, "text": "x"}]})
    assert "<th>decision</th>" in html and "<th>label</th>" not in html  # label over action, one column
    assert "<span class='wb-nobreak'>harassment</span>" in html
    assert "<span class='wb-nobreak'>block_<wbr>sender</span>" in html
    assert "<td>sim-ben</td>" in html and "<span class='wb-nobreak'>0.47</span>" in html
    from workbench.ui.assets import CSS
    assert ".wb-table .wb-nobreak" in CSS and "word-break: normal" in CSS


# --- 1. the blurred text from the keyboard --------------------------------------------------------------

def test_the_blurred_text_box_is_focusable_and_the_key_is_listed():
    from workbench.ui.assets import CSS, SHORTCUTS_JS
    from workbench.ui.render import text_html

    p = {"case": {"id": 3}, "masked": True, "revealed": True,
         "item": {"id": "i", "source": "s", "surface": "post", "text": "words"}}
    assert "tabindex='0'" in text_html(p, {"blur": True}) and "tabindex" not in text_html(p, {"blur": False})
    assert ".wb-blur:focus-within .wb-revealed" in CSS and "#wb-text[data-wb-unblur]" in CSS
    assert "['b', 'show the revealed text sharp" in SHORTCUTS_JS


# --- 4. the session badge -------------------------------------------------------------------------------

def test_the_session_badge_scrolls_with_the_page():
    from workbench.ui.web_guard_page import SESSION_JS

    assert "position:fixed" not in SESSION_JS.replace(" ", "") and "position:absolute" in SESSION_JS


# --- 1 and 3 in Chromium --------------------------------------------------------------------------------

@pytest.fixture
def store(sqlite_store, make_scored, taxonomy, queue_config):
    return seed(sqlite_store, make_scored, taxonomy, queue_config)


FILTER = "() => getComputedStyle(document.querySelector('#wb-text .wb-revealed')).filter"
WIDTH = "() => document.querySelector('#wb-rationale').getBoundingClientRect().width"


def test_keyboard_only_the_revealed_text_is_read_and_the_hint_leaves_the_rationale_its_width(
        store, browser_page):
    app, port = _serve(store)
    page = browser_page
    try:
        _open(page, port)
        _open_case(page, case_of(store, "reports:h1"))
        page.mouse.move(5, 760)  # no hover over the text
        page.keyboard.press("r")
        page.wait_for_function(f"() => document.querySelector('#wb-text').innerText.toLowerCase().includes('{SLUR}')",
                               timeout=20000)
        page.wait_for_timeout(300)
        assert page.evaluate(FILTER) == "blur(5px)"  # the well-being default
        page.keyboard.press("b")
        page.wait_for_function(f"() => ({FILTER})() === 'none'", timeout=3000)
        page.keyboard.press("b")
        page.wait_for_function(f"() => ({FILTER})() === 'blur(5px)'", timeout=3000)
        page.focus("#wb-text [tabindex='0']")  # Tab reaches it: focus reads as a hover does
        page.wait_for_function(f"() => ({FILTER})() === 'none'", timeout=3000)
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("?")
        assert "show the revealed text sharp" in page.inner_text("#wb-help")
        page.keyboard.press("Escape")
        wide = page.evaluate(WIDTH)
        page.keyboard.press("o")  # override: the hint shows, the rationale box keeps its width
        page.wait_for_function("() => (document.getElementById('wb-mode') || {}).offsetParent", timeout=3000)
        page.keyboard.press("Escape")
        page.keyboard.press("o")
        assert abs(page.evaluate(WIDTH) - wide) < 2, (wide, page.evaluate(WIDTH))
    finally:
        app.close()
