"""The analyst's screen in Chromium (issue 17): nothing unmasked leaves the server before a
reveal (DOM and Gradio API), campaign cases announced and confirmed with their count, the lease
heartbeat with its warning and loss, keyboard-only override / escalation / undo with the stored
rows checked, blind QA, errors beside their control. Screenshots at 1366x768 go to
workbench-data/screenshots/."""
import json
import re
import shutil
import urllib.request

import pytest
from sqlalchemy import select, update

from core.schema import Case, Decision
from test_review_screen import SLUR, case_of, seed
from test_ui import SHOTS, _free_port, decisions

HEAD = "#wb-header .wb-head"


@pytest.fixture
def store(sqlite_store, make_scored, taxonomy, queue_config):
    return seed(sqlite_store, make_scored, taxonomy, queue_config)


def _serve(store, config_dir=None, queue=None):
    from workbench.context import AppContext
    from workbench.ui import serve

    port = _free_port()
    app = serve(AppContext(store=store, config_dir_=config_dir), port=port, analyst="alice", queue=queue, block=False)
    return app, port


def _open(page, port):
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("#wb-next")
    page.wait_for_function("() => (document.querySelector('#wb-queue input') || {}).value?.includes('left')",
                           timeout=20000)  # the start queue is chosen on load


def _case_on_screen(page, case_id=None, timeout=20000):
    sel = f"{HEAD}[data-case='{case_id}']" if case_id else f"{HEAD}[data-case]:not([data-case=''])"
    page.wait_for_selector(sel, state="attached", timeout=timeout)
    page.wait_for_timeout(300)
    return int(page.get_attribute(HEAD, "data-case"))


def _open_case(page, case_id):
    page.fill("#wb-open input", str(case_id))
    page.keyboard.press("Enter")
    return _case_on_screen(page, case_id)


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / name))


def _api(port, fn, data):
    """One call through Gradio's own API (what the browser gets back), as text."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/call/{fn}", method="POST",
                                 data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
    event = json.loads(urllib.request.urlopen(req, timeout=20).read())["event_id"]
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/call/{fn}/{event}", timeout=30).read().decode()


def test_masked_case_leaks_nothing_before_reveal(store, taxonomy, queue_config, browser_page):
    from labeling.decisions import decide

    decide(store, taxonomy, case_of(store, "reports:h1"), "bob", "hate", rationale=f"calls them {SLUR}",
           config=queue_config)  # a similar past decision whose text and rationale carry the slur
    camp = case_of(store, "reports:h2", campaign=True)
    app, port = _serve(store, queue="hate-harassment")  # the next case claimed ahead: a masked one
    page = browser_page
    try:
        answer = _api(port, "open_case", ["alice", "campaigns", str(camp)])
        assert "complete" in answer and f"Case {camp}" in answer and SLUR not in answer.lower()
        _open(page, port)
        _open_case(page, camp)
        page.click("text=Similar past decisions")
        page.wait_for_timeout(500)
        html = page.content().lower()
        assert SLUR not in html and "g••••••••" in html  # text, top terms, members, neighbours, rationale
        ahead = int(page.get_attribute("#wb-prefetch .wb-pre", "data-case"))  # claimed ahead: a slur case
        assert ahead in {case_of(store, f"reports:h{i}") for i in (2, 3, 4)}
        assert "g••••••••" in page.get_attribute("#wb-prefetch .wb-pre", "data-text").lower()
        _shot(page, "review-masked.png")
        page.keyboard.press("r")
        page.wait_for_function(f"() => document.querySelector('#wb-text').innerText.toLowerCase().includes('{SLUR}')")
        page.wait_for_function("() => document.querySelector('#wb-exposure').innerText.includes('1 of')")
        assert SLUR in page.inner_text("#wb-campaign").lower()  # the case's own texts are revealed with it
        assert SLUR not in page.get_attribute("#wb-prefetch .wb-pre", "data-text").lower()  # ahead: still masked
        _shot(page, "review-revealed.png")
    finally:
        app.close()


def test_campaign_case_is_announced_and_asks_before_deciding(store, browser_page):
    camp = case_of(store, "reports:s1", campaign=True)
    app, port = _serve(store)
    page = browser_page
    try:
        _open(page, port)
        _open_case(page, camp)
        line = page.inner_text("#wb-campaign-line")
        assert "Campaign case: 3 items" in line and "3 scam" in line and "0 already decided" in line
        # A double tap: a second `c` the moment the count appears is ignored, saying so.
        page.evaluate("""() => { window.wbTapped = new Promise(done => {
            const seen = new MutationObserver(() => {
              if (!document.querySelector('#wb-buttons-err .wb-confirm')) return;
              seen.disconnect();
              document.dispatchEvent(new KeyboardEvent('keydown', {key: 'c', bubbles: true}));
              done(true);
            });
            seen.observe(document.body, {subtree: true, childList: true, characterData: true});
          }); }""")
        page.keyboard.press("c")
        page.wait_for_selector("text=/Press c again, or Confirm, to decide 3 items/", timeout=20000)
        assert page.evaluate("() => window.wbTapped")
        page.wait_for_selector("text=/the count to confirm appeared right after your last key/", timeout=20000)
        assert decisions(store) == []
        _shot(page, "review-campaign-confirm.png")
        page.wait_for_timeout(500)  # read, then press again
        page.keyboard.press("c")
        page.wait_for_selector("text=/Saved case .* on 3 items/", timeout=20000)
        assert len(decisions(store)) == 3 and {d["kind"] for d in decisions(store)} == {"bulk"}
    finally:
        app.close()


def test_lease_heartbeat_warning_and_loss(store, queue_config, tmp_path, browser_page):
    from core.config import config_dir
    from labeling.claims import claim_case

    conf = tmp_path / "configs"
    shutil.copytree(config_dir(), conf)
    q = (conf / "queues.yaml").read_text().replace("lease_seconds: 900", "lease_seconds: 6")
    (conf / "queues.yaml").write_text(q)
    r = (conf / "review.yaml").read_text()
    for key, value in (("heartbeat_seconds: 60", "heartbeat_seconds: 1"), ("lease_warning_seconds: 120",
                       "lease_warning_seconds: 4"), ("idle_seconds: 900", "idle_seconds: 4")):
        r = r.replace(key, value)
    (conf / "review.yaml").write_text(r)
    app, port = _serve(store, config_dir=conf, queue="spam")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        case_id = _case_on_screen(page)
        with store.read() as conn:
            first = conn.execute(select(Case.lease_expires_at).where(Case.id == case_id)).scalar()
        page.wait_for_timeout(2500)  # the heartbeat renews while the analyst is active
        with store.read() as conn:
            renewed = conn.execute(select(Case.lease_expires_at).where(Case.id == case_id)).scalar()
        assert renewed > first
        assert "left" in page.inner_text("#wb-lease")
        # idle: renewal pauses, the clock warns, then says the hold lapsed
        page.wait_for_selector("#wb-lease.wb-warn", timeout=15000)
        assert "ends in" in page.inner_text("#wb-lease")
        _shot(page, "review-lease-warning.png")
        page.wait_for_selector("#wb-lease.wb-lost", timeout=15000)
        took = claim_case(store, case_id, "bob", queue_config)  # the lapsed hold lets another analyst take it
        assert took["claimed_by"] == "bob"
        page.mouse.click(5, 5)  # activity again: the next heartbeat finds the hold lost
        page.wait_for_function("() => document.querySelector('#wb-lease').innerText.includes('now held by bob')",
                               timeout=15000)
        _shot(page, "review-lease-lost.png")
    finally:
        app.close()


def test_keyboard_only_override_escalation_undo(store, taxonomy, browser_page):
    app, port = _serve(store, queue="spam")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        first = _case_on_screen(page)
        names = page.eval_on_selector_all("#wb-label input[type=radio]", "els => [...new Set(els.map(e => e.name))]")
        assert names == ["wb-label"]  # one radio group: one tab stop
        # override: 1 (benign) o <rationale> Ctrl+Enter: 3 keys plus the text; refused first without one
        page.keyboard.press("1")
        page.wait_for_function("() => document.querySelector('#wb-action input:checked')?.value === 'no_action'")
        page.keyboard.press("ArrowRight")  # arrows move within the group (focus is on the radio)
        page.wait_for_function("() => document.querySelector('#wb-label input:checked')?.value === 'spam'")
        page.wait_for_function("() => document.querySelector('#wb-action input:checked')?.value === 'remove'")
        page.keyboard.press("1")
        page.wait_for_function("() => document.querySelector('#wb-action input:checked')?.value === 'no_action'")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#wb-rationale-err .wb-error", timeout=20000)
        err = page.inner_text("#wb-rationale-err")
        assert "rationale is required" in err and "--" not in err and decisions(store) == []
        _shot(page, "review-error-beside-rationale.png")
        page.keyboard.press("o")
        page.keyboard.type("clinic reminder, not spam")
        page.keyboard.press("Control+Enter")
        second = None
        page.wait_for_selector("text=/Saved case .*benign/", timeout=20000)
        made = decisions(store)
        assert len(made) == 1 and made[0]["label"] == "benign" and made[0]["is_override"]
        assert made[0]["rationale"] == "clinic reminder, not spam" and made[0]["case_id"] == first
        second = _case_on_screen(page)
        assert second != first and page.evaluate("window.scrollY") == 0
        # escalation: e <reason> Ctrl+Enter: 2 keys plus the reason
        page.keyboard.press("e")
        page.keyboard.type("looks like a pharmacy scam wave")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector(f"text=Escalated case {second}", timeout=20000)
        with store.read() as conn:
            esc = conn.execute(select(Case.queue, Case.escalation_reason).where(Case.id == second)).one()
        assert esc.queue == "escalation" and esc.escalation_reason == "looks like a pharmacy scam wave"
        # undo: u takes back the override; the case comes back on screen, claimed again
        page.keyboard.press("u")
        page.wait_for_selector("text=/Undone: your benign/", timeout=20000)
        assert _case_on_screen(page, first) == first
        with store.read() as conn:
            rows = conn.execute(select(Decision.kind, Decision.supersedes_id).order_by(Decision.id)).all()
            state = conn.execute(select(Case.state, Case.claimed_by).where(Case.id == first)).one()
        assert rows[-1] == ("undo", made[0]["id"]) and tuple(state) == ("claimed", "alice")
        page.keyboard.press("?")
        page.wait_for_selector("#wb-help", state="visible")
        _shot(page, "review-keys-help.png")
    finally:
        app.close()


def test_blind_qa_case_looks_like_any_other(store, taxonomy, queue_config, browser_page):
    b1 = case_of(store, "reports:b1")
    with store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == b1).values(is_audit=True))
    app, port = _serve(store)
    page = browser_page
    try:
        answer = _api(port, "open_case", ["alice", "spam", str(b1)]).lower()
        assert "audit" not in answer and "is_audit" not in answer
        _open(page, port)
        _open_case(page, b1)
        head = page.inner_text("#wb-header").lower()
        assert "audit" not in head and "calibration" not in head
        assert "qa audit" not in page.content().lower() and "is_audit" not in page.content().lower()
        _shot(page, "review-claimed.png")
        page.keyboard.press("c")
        page.wait_for_selector("text=/Saved case/", timeout=20000)
        assert decisions(store)[0]["kind"] == "qa_audit"  # recorded as the audit it is
    finally:
        app.close()


def test_times_in_the_viewers_zone_and_sections_kept(store, browser):
    """Times are `<time>` elements the page shows in the browser's zone to the minute (the server
    writes UTC), also after an update that morphs the old nodes in place; a section the analyst
    opened stays open on the next case; the rationale and note boxes start empty for it."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    zone = "Asia/Kolkata"  # UTC+05:30: not the server's zone, and the minutes differ
    app, port = _serve(store)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id=zone)
    page = context.new_page()

    def shown_local():
        page.wait_for_function("() => { const t = [...document.querySelectorAll('#wb-campaign time.wb-t')];"
                               " return t.length && t.every((e) => e.hasAttribute('data-local')); }", timeout=20000)
        for iso, text in page.eval_on_selector_all("#wb-campaign time.wb-t",
                                                   "els => els.map((e) => [e.getAttribute('datetime'), e.innerText])"):
            utc = dt.datetime.fromisoformat(iso.rstrip("Z")).replace(tzinfo=dt.timezone.utc)
            assert text == utc.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M"), (iso, text)
            assert text != utc.strftime("%Y-%m-%d %H:%M")

    try:
        _open(page, port)
        _open_case(page, case_of(store, "reports:s1", campaign=True))
        shown_local()
        page.click("text=Similar past decisions")
        assert page.locator("details[data-acc='similar']").get_attribute("open") is not None
        page.fill("#wb-ctx-note textarea", "a draft for the first case")
        page.fill("#wb-rationale textarea", "a draft rationale")
        _open_case(page, case_of(store, "reports:h2", campaign=True))  # same layout: morphed in place
        shown_local()
        assert page.input_value("#wb-ctx-note textarea") == "" and page.input_value("#wb-rationale textarea") == ""
        assert page.locator("details[data-acc='similar']").get_attribute("open") is not None
        assert page.locator("details[data-acc='author']").get_attribute("open") is None  # closed unless opened
    finally:
        context.close()
        app.close()


def test_break_offer_after_the_exposure_budget(store, tmp_path, browser_page):
    """Over the shift's budget of severe reveals the screen offers a break; the offer stays while
    the analyst decides (a decision changes neither the queue nor the exposure), and taking it
    switches the queue list to the milder queue and hides the offer."""
    from core.config import config_dir

    conf = tmp_path / "configs"
    shutil.copytree(config_dir(), conf)
    r = (conf / "review.yaml").read_text()
    (conf / "review.yaml").write_text(r.replace("exposure_budget: 25", "exposure_budget: 1"))
    app, port = _serve(store, config_dir=conf)
    page = browser_page
    try:
        _open(page, port)
        _open_case(page, case_of(store, "reports:h1"))
        assert not page.locator("#wb-break").is_visible()
        page.keyboard.press("r")
        page.wait_for_function("() => document.querySelector('#wb-exposure').innerText.includes('1 of 1')",
                               timeout=20000)
        page.wait_for_selector("#wb-break", state="visible", timeout=20000)
        first = int(page.get_attribute(HEAD, "data-case"))
        page.keyboard.press("c")
        page.wait_for_function(f"() => document.querySelector('{HEAD}').getAttribute('data-case') !== '{first}'",
                               timeout=20000)
        page.wait_for_timeout(300)
        assert page.locator("#wb-break").is_visible()
        page.click("#wb-break")
        page.wait_for_function("() => document.querySelector('#wb-queue input').value.includes('low-risk')",
                               timeout=20000)
        page.wait_for_selector("#wb-break", state="hidden", timeout=20000)
        assert "milder queue" in page.inner_text("#wb-header")
    finally:
        app.close()


PRE = "#wb-prefetch .wb-pre"


@pytest.fixture
def gated_decide(monkeypatch):
    """`decide` on the Review tab held until the test opens the gate: what the page shows while
    the confirm's request is in flight can be checked without timing it."""
    import threading

    import workbench.ui.review as review

    gate = threading.Event()

    def gated(real):
        def held(*args, **kwargs):
            gate.wait(60)
            return real(*args, **kwargs)
        return held

    # The decision, which checks the hold itself (`holder_only`): the request's whole way.
    monkeypatch.setattr(review, "decide", gated(review.decide))
    yield gate
    gate.set()


def _row(store, case_id):
    with store.read() as conn:
        return tuple(conn.execute(select(Case.state, Case.claimed_by).where(Case.id == case_id)).one())


def _ahead(page):
    page.wait_for_selector(f"{PRE}[data-case]:not([data-case=''])", state="attached", timeout=20000)
    return int(page.get_attribute(PRE, "data-case"))


def _claim_with_one_ahead(page, port, gate):
    """Open the tab, claim a case with `n`: (the case on screen, the one claimed ahead)."""
    _open(page, port)
    gate.set()
    page.keyboard.press("n")
    return _case_on_screen(page), _ahead(page)


def test_confirm_shows_the_case_claimed_ahead_before_the_answer(store, gated_decide, browser_page):
    """`c` swaps in the case claimed ahead (masked, as the server rendered it) while the request is
    in flight; the server's answer then replaces it with the same case, and the rows are right."""
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        first, ahead = _claim_with_one_ahead(page, port, gated_decide)
        assert ahead != first and _row(store, ahead) == ("claimed", "alice")
        gated_decide.clear()
        page.keyboard.press("c")
        page.wait_for_selector(f"{HEAD}[data-optimistic='1'][data-case='{ahead}']", state="attached", timeout=20000)
        assert decisions(store) == []  # shown before the server decided anything
        text = page.inner_text("#wb-text").lower()
        assert "••••" in text and SLUR not in text
        gated_decide.set()
        page.wait_for_selector(f"{HEAD}[data-case='{ahead}']:not([data-optimistic])", state="attached", timeout=20000)
        assert f"Saved case {first}" in page.inner_text("#wb-header")
        made = decisions(store)
        assert [(d["case_id"], d["label"]) for d in made] == [(first, "hate")]
        after = _ahead(page)
        assert after not in (first, ahead)
        assert _row(store, ahead) == ("claimed", "alice") and _row(store, after) == ("claimed", "alice")
        # undo: the decided case comes back, the one on screen goes back, the one ahead stays ahead
        page.keyboard.press("u")
        page.wait_for_selector(f"{HEAD}[data-case='{first}']", state="attached", timeout=20000)
        assert _ahead(page) == after and _row(store, after) == ("claimed", "alice")
        assert _row(store, first) == ("claimed", "alice") and _row(store, ahead) == ("open", None)
    finally:
        gated_decide.set()
        app.close()


def test_lost_lease_puts_the_case_back_over_the_optimistic_view(store, gated_decide, browser_page):
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        first, ahead = _claim_with_one_ahead(page, port, gated_decide)
        gated_decide.clear()
        with store.begin() as conn:  # the hold lapsed and another analyst took the case
            conn.execute(update(Case.__table__).where(Case.id == first).values(claimed_by="bob"))
        page.keyboard.press("c")
        page.wait_for_selector(f"{HEAD}[data-optimistic='1'][data-case='{ahead}']", state="attached", timeout=20000)
        gated_decide.set()
        page.wait_for_selector(f"{HEAD}[data-case='{first}']:not([data-optimistic])", state="attached", timeout=20000)
        page.wait_for_selector("#wb-buttons-err .wb-error", timeout=20000)
        assert "claimed by bob" in page.inner_text("#wb-buttons-err")
        assert "Case %d" % first in page.inner_text("#wb-header") and decisions(store) == []
        assert page.locator("#wb-side #wb-model").get_attribute("data-case") == str(first)
        assert int(page.get_attribute(PRE, "data-case")) == ahead and _row(store, ahead) == ("claimed", "alice")
    finally:
        gated_decide.set()
        app.close()


def test_claim_ahead_goes_back_on_queue_switch_and_release(store, browser_page):
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        first = _case_on_screen(page)
        ahead = _ahead(page)
        assert _row(store, ahead) == ("claimed", "alice")
        page.click("#wb-queue input")
        page.get_by_role("option", name=re.compile(r"^spam")).click()
        page.wait_for_function(f"() => !['', '{ahead}'].includes(document.querySelector('{PRE}').getAttribute('data-case'))",
                               timeout=20000)
        assert _row(store, ahead) == ("open", None)  # back in its queue, for anyone
        spam = _ahead(page)
        with store.read() as conn:
            assert conn.execute(select(Case.queue).where(Case.id == spam)).scalar() == "spam"
        page.keyboard.press("x")  # release: the case on screen and the one ahead both go back
        page.wait_for_selector(f"{HEAD}[data-case='']", state="attached", timeout=20000)
        page.wait_for_selector(f"{PRE}[data-case='']", state="attached", timeout=20000)
        assert _row(store, first) == ("open", None) and _row(store, spam) == ("open", None)
    finally:
        app.close()
