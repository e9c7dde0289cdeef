"""Identity in a real browser (issue 16): a lead signs in and decides a campaign, an analyst
decides a case with the keyboard and is refused the lead-only campaign action, the stored
decisions carry the signed-in users; the idle timeout sends the browser back to the login page;
"Log out" ends the session.

Drives Debian's Chromium headless through Playwright, as tests/test_ui.py does; skipped with the
reason where either is missing (failed under WORKBENCH_REQUIRE_SERVICES=1).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Decision
from core.web_sessions import list_sessions
from test_queue_support import add_campaign, add_scored
from test_ui import SHOTS, _free_port, _sign_in

MEMBERS = [f"w{i}" for i in range(4)]


@pytest.fixture
def world(sqlite_store, taxonomy, queue_config):
    """Users of three roles, a 4-member scam campaign with its case, and one spam item of its own."""
    from core.accounts import add_user
    from core.permissions import load_roles
    from labeling.cases import build_cases

    roles = load_roles(config_dir())
    add_user(sqlite_store, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(sqlite_store, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")
    add_user(sqlite_store, "lee", "lead", actor="setup", roles=roles, password="lee-pass-123")
    add_scored(sqlite_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9, "text": f"Claim your prize {i} now"}
                                        for i, m in enumerate(MEMBERS)]
               + [{"id": "solo", "label": "spam", "p": 0.9, "text": "Cheap meds, text STOP"}])
    cid = add_campaign(sqlite_store, MEMBERS)
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    return sqlite_store, cid


def _serve(store, tmp_path: Path, web_yaml: str):
    from workbench.context import AppContext
    from workbench.ui import serve

    configs = tmp_path / f"configs-{_free_port()}"
    shutil.copytree(config_dir(), configs)
    (configs / "web.yaml").write_text(web_yaml, encoding="utf-8")
    port = _free_port()
    return port, serve(AppContext(store=store, config_dir_=configs), port=port, block=False)


def _decisions(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(Decision.__table__).order_by(Decision.id)).mappings()]


def _decide_campaign(page, cid: int) -> None:
    page.get_by_role("tab", name="Campaigns").click()
    page.wait_for_selector("text=Apply to the whole campaign", timeout=20000)
    page.get_by_label("Campaign id").fill(str(cid))
    page.get_by_role("button", name="Show", exact=True).click()  # Apply reads what was shown first
    page.wait_for_function("() => document.querySelector('#wb-members-count').innerText.includes('members')",
                           timeout=20000)
    page.get_by_role("radio", name="scam").last.check()  # the campaign tab's label choice
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Apply to the whole campaign").click()


def test_lead_and_analyst_in_the_browser(world, tmp_path, browser_page):
    store, cid = world
    port, blocks = _serve(store, tmp_path, "{}\n")
    page = browser_page
    try:
        # the analyst decides her own case with the keyboard, then is refused the campaign action
        _sign_in(page, port, "ann", "ann-pass-123")
        page.wait_for_selector("#wb-signed-in", timeout=20000)
        assert "ann (analyst)" in page.inner_text("#wb-signed-in")
        page.click("#wb-queue input")
        page.fill("#wb-queue input", "spam")
        page.keyboard.press("Enter")
        page.click("#wb-next")
        page.wait_for_selector("text=/Case \\d+ · spam/", timeout=20000)
        page.keyboard.press("c")
        page.wait_for_selector("text=/Saved:? case/", timeout=20000)
        page.get_by_role("tab", name="Campaigns").click()
        page.get_by_label("Campaign id").fill(str(cid))
        page.get_by_role("button", name="Show", exact=True).click()
        page.wait_for_selector("text=/whole campaign: only for the .*permission 'bulk'/", timeout=20000)
        assert page.get_by_role("button", name="Apply to the whole campaign").is_disabled()
        assert [(d["item_id"], d["reviewer"]) for d in _decisions(store)] == [("solo", "ann")]

        # logout: back to the login page, the session ended in the store
        page.click("#wb-logout")
        page.wait_for_selector("input[type=password]", timeout=20000)
        assert [s["end_reason"] for s in list_sessions(store, "ann", live_only=False)] == ["logout"]

        # the lead decides the whole campaign
        _sign_in(page, port, "lee", "lee-pass-123")
        _decide_campaign(page, cid)
        page.wait_for_selector(f"text=/Saved: scam .* applied to {len(MEMBERS)} items of campaign {cid}/",
                               timeout=30000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "campaign-decided-by-lead.png"))
        made = _decisions(store)
        assert [(d["item_id"], d["reviewer"]) for d in made[:1]] == [("solo", "ann")]
        bulk = made[1:]
        assert sorted(d["item_id"] for d in bulk) == MEMBERS
        assert {(d["reviewer"], d["kind"], d["label"]) for d in bulk} == {("lee", "bulk", "scam")}
    finally:
        blocks.close()


def test_idle_timeout_returns_to_the_login_page(world, tmp_path, browser_page):
    store, _ = world
    port, blocks = _serve(store, tmp_path, "session: {idle_timeout_seconds: 3}\n")
    page = browser_page
    try:
        _sign_in(page, port, "ann", "ann-pass-123")
        page.wait_for_selector("#wb-signed-in", timeout=20000)
        for _ in range(5):  # someone scrolling the page for 5 s: still signed in (3 s idle timeout)
            page.mouse.wheel(0, 40)
            page.wait_for_timeout(1000)
        assert page.query_selector("input[type=password]") is None
        assert [s["end_reason"] for s in list_sessions(store, "ann", live_only=False)] == [None]
        # no activity: the page's session check finds the session ended and shows the login page
        page.wait_for_selector("input[type=password]", timeout=30000)
        assert page.query_selector("#wb-next") is None
        assert [s["end_reason"] for s in list_sessions(store, "ann", live_only=False)] == ["idle"]
        # and signing in again works
        _sign_in(page, port, "ann", "ann-pass-123")
        assert len(list_sessions(store, "ann")) == 1
    finally:
        blocks.close()
