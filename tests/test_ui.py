"""The review UI in a real browser: claim, masked text, reveal, one-key confirm, override, and
the other tabs load; the rendering helpers without a browser; `import workbench.ui` stays light.

Drives Debian's Chromium headless through Playwright (no browser download); skipped with the
reason where Chromium or Playwright is missing.
"""
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.schema import Case, Decision

SHOTS = Path(__file__).resolve().parent.parent / "workbench-data" / "screenshots"

ITEMS = [
    {"id": "a", "text": "WINNER!! Claim your prize now, call 09061701461", "author": "u1"},
    {"id": "b", "text": "Cheap meds, text STOP to 87121", "author": "u1"},
    {"id": "c", "text": "you people are vile trash and should leave", "author": "u2"},
]
SCORES = {
    "a": {"benign": 0.02, "spam": 0.08, "scam": 0.88, "hate": 0.01, "harassment": 0.01},
    "b": {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01},
    "c": {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.55, "harassment": 0.38},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def seeded(sqlite_store, make_scored):
    return make_scored(sqlite_store, ITEMS, SCORES)


def decisions(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(Decision.__table__).order_by(Decision.id)).mappings()]


def test_review_flow_in_the_browser(seeded, taxonomy, browser_page):
    from workbench.context import AppContext
    from workbench.ui import serve

    port = _free_port()
    app = serve(AppContext(store=seeded), port=port, analyst="alice", queue="hate-harassment", block=False)
    page = browser_page
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#wb-next")
        page.keyboard.press("n")  # one key claims the best case of the queue
        try:
            page.wait_for_selector("text=/Case \\d+ · hate-harassment/", timeout=20000)
            page.wait_for_timeout(600)  # let the outputs' fade-in finish before the screenshot
        finally:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "review-claimed.png"))  # what a 1366x768 laptop shows
        body = page.inner_text("#wb-text")
        assert "vile" not in body and "v•••" in body  # offensive text is masked until revealed
        page.click("#wb-reveal")
        page.wait_for_function("document.querySelector('#wb-text').innerText.includes('vile')")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "review.png"), full_page=True)

        page.keyboard.press("c")  # one key confirms the model's label with the default action
        page.wait_for_selector("text=/Saved case/", timeout=20000)
        made = decisions(seeded)
        assert len(made) == 1
        assert made[0]["reviewer"] == "alice" and made[0]["label"] == "hate"
        assert made[0]["action"] == taxonomy.policies["hate"].default_action and not made[0]["is_override"]

        # Override: refused without a rationale (and nothing typed is lost), saved with one.
        page.click("#wb-queue input")
        page.fill("#wb-queue input", "spam")
        page.keyboard.press("Enter")
        page.click("#wb-next")
        page.wait_for_selector("text=/Case \\d+ · spam/", timeout=20000)
        page.get_by_role("radio", name="1 benign").check()
        page.wait_for_function("() => document.querySelector('#wb-action input:checked')?.value === 'no_action'",
                               timeout=20000)
        page.click("#wb-decide")
        page.wait_for_selector("text=Not saved", timeout=20000)
        assert len(decisions(seeded)) == 1
        page.fill("#wb-rationale textarea", "Pharmacy reminder from a known clinic, not spam")
        page.click("#wb-decide")
        page.wait_for_function("() => document.body.innerText.includes('benign / no_action')", timeout=20000)
        made = decisions(seeded)
        assert len(made) == 2
        assert made[1]["label"] == "benign" and made[1]["is_override"] and made[1]["model_label"] == "spam"
        assert made[1]["rationale"].startswith("Pharmacy")
        page.screenshot(path=str(SHOTS / "review-override.png"), full_page=True)

        # The other tabs: Operations has its KPIs (loaded when the tab opens), Campaigns its table.
        page.get_by_role("tab", name="Operations").click()
        page.wait_for_selector("text=Waiting cases per queue", timeout=20000)
        page.wait_for_function("() => document.body.innerText.includes('backlog')", timeout=20000)
        page.get_by_role("tab", name="Campaigns").click()
        page.wait_for_selector("text=Apply to the whole campaign", timeout=20000)
        page.get_by_role("tab", name="Evaluation").click()
        page.wait_for_selector("text=Compute report", timeout=20000)
    finally:
        app.close()


def test_render_helpers():
    from workbench.ui.render import (esc, campaign_md, entities_text, header_html, header_md, terms_text, text_html,
                                     when)

    packet = {"case": {"id": 7, "queue": "spam", "severity": None, "is_audit": True, "calibration_set": "weekly",
                       "priority_reason": "score"},
              "minutes_left": -5, "masked": True, "campaign": None,
              "item": {"id": "r:<a>", "source": "r", "surface": "dm", "text": "x\ny &#128545;"}}
    assert header_md(packet).startswith("### Case 7 · spam · no tier · **overdue by 5 min**")
    head = header_html(packet)
    assert "data-case='7'" in head and "overdue by 5 min" in head
    assert "audit" not in head.lower() and "weekly" not in head  # blind QA and calibration
    # The reason is cut to one line on screen; the whole of it is the hover title, escaped.
    long = dict(packet, case=dict(packet["case"], priority_reason='learning: "x" <b> ' + "y" * 300))
    assert f'title="learning: &quot;x&quot; &lt;b&gt; {"y" * 300}"' in header_html(long)
    html = text_html(packet)
    assert "r:&lt;a&gt;" in html and "x<br>y \U0001F621" in html and "Reveal" in html  # entities decoded
    assert ">2026-12-03 09:41 UTC</time>" in when("2026-12-03T09:41:37.123456")  # to the minute
    camp = dict(packet, campaign_case={"members": 7, "label_mix": {"scam": 5, "spam": 2}, "already_decided": 2,
                                       "held_by_others": 0, "will_decide": 7})
    assert "Campaign case: <b>7 items</b>, label mix 5 scam, 2 spam, <b>2 already decided</b>" in header_html(camp)
    assert campaign_md(packet) == "Not part of a campaign."
    assert terms_text([["win", 0.5], "prize"]) == "win, prize" and terms_text(None) == "—"
    assert entities_text({"phone": [{"value": "0871", "items": 7}]}) == "phone: 0871 (7 items)"
    assert esc("<b>") == "&lt;b&gt;"


def test_import_is_light():
    """`workbench serve --help` must not pay for Gradio: the package imports it inside build_app."""
    code = ("import sys, workbench.ui, workbench.ui.render, workbench.ui.assets; "
            "print([m for m in ('gradio', 'sqlalchemy', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _sign_in(page, port: int, name: str, password: str) -> None:
    """Through the login page the server shows once the store has accounts."""
    page.goto(f"http://127.0.0.1:{port}/")
    page.fill("input[type=text]", name)
    page.fill("input[type=password]", password)
    page.keyboard.press("Enter")
    page.wait_for_selector("#wb-next", timeout=20000)


def test_sign_in_roles_and_no_session_no_action(seeded, taxonomy, browser_page):
    """With accounts: a login page, actions run as the signed-in user with their role, and a raw
    call to the Gradio API without a session is refused and changes nothing."""
    import json as _json
    import urllib.error
    import urllib.request

    from core.accounts import add_user
    from core.permissions import load_roles
    from core.config import config_dir
    from workbench.context import AppContext
    from workbench.ui import serve

    roles = load_roles(config_dir())
    add_user(seeded, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(seeded, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")
    add_user(seeded, "vic", "viewer", actor="setup", roles=roles, password="vic-pass-123")
    port = _free_port()
    app = serve(AppContext(store=seeded), port=port, queue="hate-harassment", block=False)
    page = browser_page
    try:
        # no session: the API answers 401/403 and nothing is claimed or decided
        req = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/call/claim", method="POST",
                                     data=_json.dumps({"data": ["mallory", "hate-harassment"]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code in (401, 403, 404)
        with seeded.read() as conn:
            claimed = conn.execute(select(func.count()).select_from(Case).where(Case.state == "claimed")).scalar()
        assert claimed == 0 and decisions(seeded) == []

        # a viewer signs in and is refused a claim
        _sign_in(page, port, "vic", "vic-pass-123")
        page.keyboard.press("n")
        page.wait_for_selector("text=/Reviewing cases: only for the .*permission 'claim'/", timeout=20000)

        # the analyst signs in, claims and confirms with the keyboard; the decision is hers
        page.context.clear_cookies()
        _sign_in(page, port, "ann", "ann-pass-123")
        page.keyboard.press("n")
        page.wait_for_selector("text=/Case \\d+ · hate-harassment/", timeout=20000)
        page.keyboard.press("c")
        page.wait_for_selector("text=/Saved case/", timeout=20000)
        made = decisions(seeded)
        assert [d["reviewer"] for d in made] == ["ann"]
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "review-signed-in.png"))
    finally:
        app.close()
