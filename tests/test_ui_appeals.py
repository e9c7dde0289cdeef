"""The Appeals, Search, Campaigns and Operations tabs in a real browser (Chromium, 1366x768):
a lead decides an appeal in the UI with the original decision, its rationale and the
appellant's reason side by side, and the original decider is refused; search results are masked
and give the case to open; the campaign list shows last seen and top terms on screen, members
page by page ("50 of 64"), entities decoded, "why linked" counts that add up; Operations is
tables and a chart. Screenshots of each tab go to workbench-data/screenshots/.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select

from core.schema import Campaign, CampaignMember, Case, Decision, Note
from test_ui import SHOTS, _free_port, _sign_in

WAVE = 64
SCAM = {"benign": 0.02, "spam": 0.08, "scam": 0.88, "hate": 0.01, "harassment": 0.01}
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.60, "harassment": 0.33}
T0 = dt.datetime(2026, 11, 30, 9, 0)


def _seed(store, make_scored, taxonomy, queue_config):
    from core.ingest import ColumnMap
    from labeling import appeals as APP
    from labeling.cases import build_cases
    from labeling.decisions import decide

    rows = [{"id": f"w{i}", "author": "spammer", "text": f"WINNER!! &#128545; Claim your £900 prize &amp; call "
             f"090617{i:05d} now", "created_at": (T0 + dt.timedelta(minutes=7 * i)).isoformat()} for i in range(WAVE)]
    rows += [{"id": "ap", "author": "shop", "text": "Your parcel is held, pay the fee at parcel-fee.example",
              "created_at": T0.isoformat()},
             {"id": "h", "author": "troll", "text": "you people are vile trash and should leave",
              "created_at": T0.isoformat()},
             {"id": "h2", "author": "troll2", "text": "you people are vile trash, leave now",
              "created_at": T0.isoformat()},
             {"id": "hx", "author": "troll3", "text": "those people are vile vermin, get out",
              "created_at": T0.isoformat()}]
    scores = {r["id"]: SCAM for r in rows if r["id"] not in ("h", "h2", "hx")} | {"h": HATE, "h2": HATE, "hx": HATE}
    make_scored(store, rows, scores, build=False, columns=ColumnMap(id="id", author="author", created="created_at"))
    kinds = ["same_text,similarity", "similarity", "similarity,phone:090617", "seed"]
    with store.begin() as conn:
        cid = conn.execute(insert(Campaign.__table__).values(
            exemplar_item_id="reports:w0", size=WAVE, first_seen=T0, last_seen=T0 + dt.timedelta(minutes=7 * WAVE),
            status="active", top_terms=[["winner", 0.9], ["prize", 0.8], ["&#128545;", 0.5], ["claim", 0.4]],
            entities={"phone": [{"value": "090617", "items": 20, "links": True}]},
            link_reasons={"members_by_reason": {"similarity": 63, "same_text": 16, "phone": 16, "seed": 1},
                          "similarity_threshold": 0.85}, created_at=T0, updated_at=T0).returning(Campaign.id)).scalar_one()
        conn.execute(insert(CampaignMember.__table__), [
            {"item_id": f"reports:w{i}", "campaign_id": cid, "linked_by": kinds[0 if i == 0 else 3 if i == 1 else i % 3],
             "similarity": None if i == 1 else 0.93} for i in range(WAVE)])
        hid = conn.execute(insert(Campaign.__table__).values(  # a small hate campaign: its terms are masked too
            exemplar_item_id="reports:h", size=2, first_seen=T0, last_seen=T0, status="active",
            top_terms=[["vile", 0.9], ["trash", 0.8]], created_at=T0, updated_at=T0).returning(Campaign.id)).scalar_one()
        conn.execute(insert(CampaignMember.__table__), [
            {"item_id": f"reports:{i}", "campaign_id": hid, "linked_by": "similarity", "similarity": 0.9}
            for i in ("h", "h2")])
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    build_cases(store, taxonomy, cfg, progress=False)
    with store.read() as conn:
        case = conn.execute(select(Case.id).where(Case.item_id == "reports:ap", Case.campaign_id.is_(None))).scalar()
    decide(store, taxonomy, case, "ann", "scam", action="block_sender", rationale="advance-fee parcel lure",
           config=cfg)
    appeal = APP.appeal(store, "reports:ap", "shop-owner", "This is our real courier notice, not a scam", taxonomy,
                        config=cfg)
    with store.read() as conn:
        hate = conn.execute(select(Case.id).where(Case.item_id == "reports:hx", Case.campaign_id.is_(None))).scalar()
    decide(store, taxonomy, hate, "ann", "hate", action="remove", rationale="calls people vile vermin", config=cfg)
    masked = APP.appeal(store, "reports:hx", "troll3", "vile vermin was a quote", taxonomy, config=cfg)
    return cid, appeal["id"], masked["id"]


def _page(browser):
    return browser.new_context(viewport={"width": 1366, "height": 768}).new_page()


def _open_appeal(page, appeal_case: int, item: str = "reports:ap") -> None:
    page.get_by_role("tab", name="Appeals").click()
    page.wait_for_selector("#wb-appeals", timeout=20000)
    page.wait_for_function(f"() => document.querySelector('#wb-appeals').innerText.includes('{appeal_case}')",
                           timeout=20000)
    page.locator("#wb-appeals [role=gridcell]", has_text=item).first.click()
    try:
        page.wait_for_function("() => document.querySelector('#wb-appeal-original').innerText"
                               ".includes('Original decision')", timeout=20000)
    except Exception:
        _shot(page, "appeals-failed.png", full=True)  # what the screen showed, for the failure
        raise


def _resolve(page, rationale: str) -> None:
    page.get_by_label("Reverse it (appeal upheld)").check()
    page.click("#wb-appeal-label input")
    page.get_by_role("option", name="benign").click()
    page.fill("#wb-appeal-rationale textarea", rationale)
    page.click("#wb-appeal-resolve")


def _shot(page, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # let the outputs' fade-in finish
    page.screenshot(path=str(SHOTS / name), full_page=full)


def _appeal_decisions(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(Decision.__table__).where(Decision.kind == "appeal")).mappings()]


def test_lead_decides_an_appeal_and_the_other_tabs_read_well(sqlite_store, make_scored, taxonomy, queue_config,
                                                              browser):
    from core.accounts import add_user
    from core.config import config_dir
    from core.permissions import load_roles
    from workbench.context import AppContext
    from workbench.ui import serve

    cid, appeal_case, masked_appeal = _seed(sqlite_store, make_scored, taxonomy, queue_config)
    roles = load_roles(config_dir())
    add_user(sqlite_store, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(sqlite_store, "ann", "lead", actor="setup", roles=roles, password="ann-pass-123")
    add_user(sqlite_store, "lou", "lead", actor="setup", roles=roles, password="lou-pass-123")
    port = _free_port()
    app = serve(AppContext(store=sqlite_store), port=port, block=False)
    try:
        # the original decider, a lead too, is refused: separation of duties, said beside the button
        page = _page(browser)
        _sign_in(page, port, "ann", "ann-pass-123")
        _open_appeal(page, appeal_case)
        original = page.inner_text("#wb-appeal-original")
        assert "scam / block_sender" in original and "advance-fee parcel lure" in original and "ann" in original
        assert "This is our real courier notice" in page.inner_text("#wb-appeal-reason")
        _resolve(page, "The courier is genuine")
        page.wait_for_function("() => document.querySelector('#wb-appeal-result').innerText.includes('Not resolved')",
                               timeout=20000)
        assert "separation of duties" in page.inner_text("#wb-appeal-result")
        assert _appeal_decisions(sqlite_store) == []
        page.context.close()

        # another lead reverses it: a new appeal decision superseding ann's, by lou
        page = _page(browser)
        _sign_in(page, port, "lou", "lou-pass-123")
        _open_appeal(page, appeal_case)
        _shot(page, "appeals.png")
        _resolve(page, "Checked with the courier: a genuine held-parcel notice")
        page.wait_for_function("() => document.querySelector('#wb-appeal-result').innerText.includes('Saved')",
                               timeout=20000)
        made = _appeal_decisions(sqlite_store)
        assert len(made) == 1 and made[0]["reviewer"] == "lou" and made[0]["label"] == "benign"
        assert made[0]["rationale"].startswith("Checked with the courier") and made[0]["supersedes_id"] is not None
        _shot(page, "appeals-resolved.png")

        # Search: masked results, a row gives the case to open
        page.get_by_role("tab", name="Search").click()
        box = page.locator("#wb-search-q").locator("textarea, input").first
        box.fill("vile")
        page.click("#wb-search-go")
        page.wait_for_function("() => document.querySelector('#wb-search-summary').innerText.includes('items')",
                               timeout=20000)
        results = page.inner_text("#wb-search-results")
        assert "reports:h" in results and "vile" not in results and "v•••" in results
        box.fill("prize")
        page.click("#wb-search-go")
        page.wait_for_function("() => document.querySelector('#wb-search-summary').innerText.includes('of 64')",
                               timeout=20000)
        assert "😡" in page.inner_text("#wb-search-results") and "&#128545;" not in page.content()
        page.locator("#wb-search-results [role=gridcell]", has_text="reports:w").first.click()
        page.wait_for_function("() => document.querySelector('#wb-search-open').innerText.includes('Case')",
                               timeout=20000)
        _shot(page, "search.png")
        # "Open in Review": the case is claimed by lou (claim_case) and shown on the Review tab
        picked = int(page.input_value("#wb-search-case input"))
        page.click("#wb-search-open-review")
        page.wait_for_function(f"() => {{ const h = document.querySelector('#wb-header .wb-head');"
                               f" return h && h.getAttribute('data-case') === '{picked}' && h.offsetParent !== null; }}",
                               timeout=20000)
        assert page.locator("#wb-confirm").is_visible() and not page.locator("#wb-search-q").is_visible()
        with sqlite_store.read() as conn:
            assert conn.execute(select(Case.claimed_by).where(Case.id == picked)).scalar() == "lou"
        page.get_by_role("tab", name="Search").click()
        assert "Opened case" in page.inner_text("#wb-search-open")
        page.evaluate("() => { const i = document.querySelector('#wb-search-case input'); i.value = '';"
                      " i.dispatchEvent(new Event('input', {bubbles: true})); }")
        page.click("#wb-search-open-review")  # no case picked: said where the button is, no tab switch
        page.wait_for_function("() => document.querySelector('#wb-search-open').innerText.includes('Not opened')",
                               timeout=20000)
        assert page.locator("#wb-search-q").is_visible()

        # Campaigns: last seen and top terms on screen, members page by page, counts that add up
        page.get_by_role("tab", name="Campaigns").click()
        page.wait_for_function("() => document.querySelector('#wb-campaigns').innerText.includes('winner')",
                               timeout=20000)
        for heading in ("last seen", "top terms"):
            cell = page.locator("#wb-campaigns thead th", has_text=heading).first.bounding_box()
            assert cell and cell["x"] + cell["width"] <= 1366, heading
        listed = page.inner_text("#wb-campaigns")
        assert "&#128545;" not in listed
        assert "vile" not in listed and "trash" not in listed and "v•••" in listed  # masked terms and exemplar
        page.get_by_label("Campaign id").fill(str(cid))
        page.get_by_role("button", name="Show", exact=True).click()
        page.wait_for_function("() => document.querySelector('#wb-members-count').innerText.includes('of 64')",
                               timeout=20000)
        assert "50 of 64 members" in page.inner_text("#wb-members-count")
        detail = page.inner_text("#wb-campaign-detail")
        assert "{" not in detail and "Why linked" in detail and "each of the 64 members once" in detail
        assert "add to 107 for 64 members" in detail  # the overlap explained, not a dict
        assert "😡" in detail and "&#128545;" not in detail
        _shot(page, "campaigns.png")
        _shot(page, "campaigns-full.png", full=True)
        page.get_by_role("button", name="Next members ▶").click()
        page.wait_for_function("() => document.querySelector('#wb-members-count').innerText.includes('51–64')",
                               timeout=20000)

        # Operations: tables and a chart, no JSON tree
        page.get_by_role("tab", name="Operations").click()
        page.wait_for_selector("text=Waiting cases per queue", timeout=20000)
        page.wait_for_function("() => document.querySelector('#wb-ops-kpis').innerText.includes('backlog')",
                               timeout=20000)
        page.wait_for_selector("#wb-ops-chart img", timeout=20000)
        assert page.locator(".json-holder, [data-testid='json']").count() == 0
        _shot(page, "operations.png")
        _shot(page, "operations-full.png", full=True)

        # Review: the context panel beside a claimed case; a note added there is stored as lou's
        page.get_by_role("tab", name="Review").click()
        page.click("#wb-queue input")
        page.fill("#wb-queue input", "fraud")
        page.keyboard.press("Enter")
        page.click("#wb-next")
        try:
            page.wait_for_function("() => document.querySelector('#wb-ctx-policy').innerText.includes('TS-FRAUD')",
                                   timeout=30000)
        except Exception:
            _shot(page, "review-context-failed.png", full=True)
            raise
        assert "Covers:" in page.inner_text("#wb-ctx-policy") and "Example" in page.inner_text("#wb-ctx-policy")
        page.fill("#wb-ctx-note textarea", "Same premium-rate range as the <b>November</b> wave")
        page.click("#wb-ctx-add-note")
        page.wait_for_function("() => document.querySelector('#wb-ctx-notes').innerText.includes('November')",
                               timeout=20000)
        assert "<b>" in page.inner_text("#wb-ctx-notes")  # shown as typed, never as markup
        with sqlite_store.read() as conn:
            notes = [dict(r) for r in conn.execute(select(Note.__table__)).mappings()]
        assert [(n["author"], n["entity_type"]) for n in notes] == [("lou", "item")]
        _shot(page, "review-context.png", full=True)

        # Appeals of a masked text: the text and what quotes it stay masked until this lead reveals it
        _open_appeal(page, masked_appeal, "reports:hx")
        panes = page.inner_text("#wb-appeal-item") + page.inner_text("#wb-appeal-original") + \
            page.inner_text("#wb-appeal-reason")
        assert "vermin" not in panes and "v•••" in panes
        page.click("#wb-appeal-reveal")
        page.wait_for_function("() => document.querySelector('#wb-appeal-item').innerText.includes('vermin')",
                               timeout=20000)
        assert "vile vermin was a quote" in page.inner_text("#wb-appeal-reason")
        assert "calls people vile vermin" in page.inner_text("#wb-appeal-original")
        _shot(page, "appeals-revealed.png")
    finally:
        app.close()
