"""Every text a tab shows is attacker-controlled (item texts, entities, notes, reasons, names):
none of it becomes a live link, an image that phones home, a formula, a tag or a script, a bidi
control cannot reverse what an analyst reads, and a 500-letter word wraps inside its column.
The helpers without a browser, the tabs through their callbacks, then the served page in
Chromium at 1366x768 (no dialog, no request to the attacker's host, no link, nothing overflows)."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import update

from core.config import config_dir
from core.schema import Campaign, CampaignMember, Item, ModelVersion
from labeling.queue_config import load_queue_config
from test_campaign_bulk_integrity import _App, _camp
from test_ui import _free_port
from test_ui_tabs_fixes import _campaigns, _models

ATT = "attacker.test"
RLO = "\u202e"
HOSTILE = (f"<img src=x onerror=alert(1)> <svg><a href='javascript:alert(2)'><text>clk</text></a></svg> "
           f"[clk](javascript:alert(3)) ![](http://{ATT}/pixel) <img src='http://{ATT}/img'> "
           f"http://scam.{ATT}/login www.{ATT}/w bob@{ATT} $$\\rule{{3000px}}{{3000px}}$$ {RLO}gpj.exe "
           + "W" * 500)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                 "calibration_sets": []})


def _live(markdown: str) -> list[str]:
    """What Gradio's Markdown would make live in `markdown`: raw tags, links or images, bare
    URLs and emails (autolinked), formulas, and unshown bidi controls."""
    found = re.findall(r"<[a-z!/]|(?<!\\)\[|(?<!\\)\$|(?:https?|ftp)://|www\.[a-z]|\w@\w+\.\w", markdown, re.I)
    return found + ([RLO] if RLO in markdown else [])


# --- 1. the one display rule: `readable`, under esc, md_escape and short ---------------------------

def test_escaped_text_has_no_live_url_formula_or_bidi_control():
    from workbench.ui.format import md_escape, short
    from workbench.ui.render import esc

    md = md_escape(HOSTILE)
    assert _live(md) == [], _live(md)
    assert "http\\://scam\\.attacker\\.test/login" in md and "\\$\\$" in md
    assert "\\[U\\+202E\\]gpj\\.exe" in md  # the override is shown, not obeyed: it read "exe.jpg"
    assert RLO not in esc(HOSTILE) and "[U+202E]gpj.exe" in esc(HOSTILE) and "<img" not in esc(HOSTILE)
    assert short(f"{RLO}gpj.exe invoice", 40) == "[U+202E]gpj.exe invoice"  # a table cell
    assert esc("\u2067x\u2069 \U0001F468\u200d\U0001F469") == "[U+2067]x[U+2069] \U0001F468\u200d\U0001F469"


# --- 2. the Campaigns tab: entities, terms and reasons -------------------------------------------

def test_a_campaigns_entities_terms_and_reasons_are_text(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    with sqlite_store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(
            top_terms=[[f"http://{ATT}/term", 0.5], ["[t](javascript:alert(4))", 0.4]],
            entities={"url": [{"value": f"http://scam.{ATT}/login{RLO}", "items": 2}],
                      f"phone<img src='http://{ATT}/kind'>": [{"value": "0871", "items": 2}]},
            link_reasons={"similarity_threshold": f"<img src='http://{ATT}/thr'>"}))
        conn.execute(update(CampaignMember.__table__).values(linked_by=f"similarity,url<img src='http://{ATT}/k'>:x"))
    body = _campaigns(_App(sqlite_store, taxonomy, cfg))["first"][0](cid, "lead", None)[0]
    assert _live(body) == [], _live(body)
    assert "http\\://scam\\.attacker\\.test/login\\[U\\+202E\\]" in body
    table = _campaigns(_App(sqlite_store, taxonomy, cfg))["campaign_table"][0]()
    assert all(RLO not in str(cell) for row in table for cell in row)


# --- 3. the Models tab: a stored report's names and reasons --------------------------------------

def test_a_comparison_report_is_shown_inert(sqlite_store, taxonomy, cfg):
    from core.audit import record
    from evaluation.promotion_report import write_markdown

    folder = sqlite_store.data_dir / "reports" / "gate"
    folder.mkdir(parents=True)
    write_markdown(folder / "comparison.md", {
        "challenger": "v2", "champion": "v1", "promoted": False, "forced": True, "forced_by": "eng",
        "force_reason": HOSTILE, "promote_refused": HOSTILE, "confidence": 0.95, "warnings": [HOSTILE],
        "gate": {"metric": "macro_f1", "min_lower_bound": 0.0, "reason": HOSTILE}, "comparisons": {}, "data": {}},
        "comparison.png")
    with sqlite_store.begin() as conn:
        conn.execute(ModelVersion.__table__.insert().values(id="v2", kind="tfidf", artifact_path="x", labels=[]))
        record(conn, "eng", "model.gate", "model_version", "v2",
               {"champion": "v1", "passed": False, "metric": "macro_f1", "reason": "r",
                "report": str(folder / "comparison.md")})
    md = _models(_App(sqlite_store, taxonomy, cfg))["report"][0]("v2", "lead", None)[0]
    assert "# Challenger v2 against champion v1" in md and "**Verdict: not promoted**" in md  # still Markdown
    assert _live(md) == [], _live(md)
    assert "&lt;img src='http\\://attacker.test/img'&gt;" in md


# --- 4. the context panel: a toast is HTML -------------------------------------------------------

def test_a_refused_tag_is_said_as_text(sqlite_store, taxonomy, cfg, monkeypatch):
    import gradio as gr

    from workbench.ui.context_panel import build_context_panel
    from test_ui_tabs_fixes import _blocks_fns

    said: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *a, **k: said.append(message))
    _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    fns = _blocks_fns(lambda who, tab: build_context_panel(_App(sqlite_store, taxonomy, cfg), gr.State(), who))
    packet = {"case": {"id": 1, "claimed_by": "lead"}, "item": {"id": "m0"}}
    fns["add_tag_cb"][0](packet, "item", f"<img src='http://{ATT}/toast'>", "lead", None)
    assert said and "<img" not in said[0] and "&lt;img" in said[0]


# --- 5. the served page in Chromium ----------------------------------------------------------------

def test_hostile_texts_on_the_served_tabs(sqlite_store, taxonomy, cfg, browser_page):
    from labeling.notes import add_note
    from workbench.context import AppContext
    from workbench.ui import serve

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    with sqlite_store.begin() as conn:
        conn.execute(update(Item.__table__).values(text=HOSTILE, created_at=dt.datetime.utcnow()))
        conn.execute(update(Campaign.__table__).values(
            entities={"url": [{"value": f"http://scam.{ATT}/login", "items": 2}]}, top_terms=[[HOSTILE[:60], 1]]))
    add_note(sqlite_store, "campaign", cid, HOSTILE, "bob")
    app = serve(AppContext(store=sqlite_store), port=(port := _free_port()), analyst="alice", queue="fraud",
                block=False)
    page, dialogs, calls = browser_page, [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: calls.append(r.url) if ATT in r.url else None)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#wb-next")
        page.keyboard.press("n")
        page.wait_for_selector("#wb-text .wb-body", timeout=20000)
        page.wait_for_timeout(500)
        wide = page.evaluate("""() => ['#wb-text', '#wb-model', '#wb-campaign', '.wb-notes', '.wb-head']
            .map(s => document.querySelector(s)).filter(e => e && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.id || e.className)""")
        assert wide == [], wide  # the 500-letter word wraps in its column
        page.get_by_role("tab", name="Campaigns").click()
        page.get_by_label("Campaign id").fill(str(cid))
        page.get_by_role("button", name="Show").click()
        page.wait_for_function("() => document.querySelector('#wb-campaign-detail').innerText.includes('Exemplar')",
                               timeout=20000)
        page.wait_for_timeout(500)
        text = page.locator("#wb-campaign-detail").inner_text()
        assert f"http://scam.{ATT}/login" in text and "[U+202E]gpj.exe" in text and "$$\\rule" in text
        live = page.evaluate("""() => [...document.querySelectorAll('a[href], [src]')]
            .map(e => e.getAttribute('href') || e.getAttribute('src'))
            .filter(h => /attacker|javascript:|^data:(?!image)/i.test(h))""")
        assert live == [] and dialogs == [] and calls == [], (live, dialogs, calls)
        assert page.locator("#wb-campaign-detail .katex").count() == 0  # no formula drawn from a text
    finally:
        app.close()
