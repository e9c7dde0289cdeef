"""The Review tab's keys in Chromium act only on the case the analyst sees (audit of the Review
tab): Escalate clicked enters escalation mode; while a slow `c` shows the next case early, keys
and controls are off and what reaches the server for another case than the tab's is refused; `c`
refuses a label picked on screen; a second press right after the case changed is ignored."""
import pytest
from sqlalchemy import func, select

from core.schema import AuditEvent, Case
from test_review_screen import seed
from test_ui import decisions
from test_ui_review import HEAD, _case_on_screen, _claim_with_one_ahead, _open, _row, _serve, gated_decide  # noqa: F401

MODE = "() => (document.getElementById('wb-mode') || {}).textContent || ''"


@pytest.fixture
def store(sqlite_store, make_scored, taxonomy, queue_config):
    return seed(sqlite_store, make_scored, taxonomy, queue_config)


@pytest.fixture
def long_guard(monkeypatch):
    """The page's double-press window widened, so that a loaded machine's slow answer still lands
    inside it: the second press is checked, not the machine's speed."""
    from workbench.ui import assets

    assert "const GUARD_MS = 400;" in assets.SHORTCUTS_JS
    monkeypatch.setattr(assets, "SHORTCUTS_JS", assets.SHORTCUTS_JS.replace("const GUARD_MS = 400;",
                                                                            "const GUARD_MS = 15000;"))


def _checked(page, group):
    return page.evaluate(f"() => document.querySelector('#{group} input:checked')?.value")


def test_escalate_button_enters_escalation_mode_and_a_second_ctrl_enter_is_ignored(store, long_guard, browser_page):
    app, port = _serve(store, queue="spam")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        first = _case_on_screen(page)
        page.click("#wb-escalate")  # no reason yet: refused, and the box is ready for one
        page.wait_for_selector("#wb-rationale-err .wb-error", timeout=20000)
        assert "then Ctrl+Enter or Escalate again" in page.inner_text("#wb-rationale-err")
        page.wait_for_function("() => document.activeElement === document.querySelector('#wb-rationale textarea')")
        assert page.evaluate(MODE).startswith("Escalating")
        page.keyboard.type("possible pharmacy scam wave")
        page.keyboard.press("Control+Enter")  # as the message says
        page.wait_for_selector(f"text=Escalated case {first}", timeout=20000)
        with store.read() as conn:
            row = conn.execute(select(Case.queue, Case.escalation_reason).where(Case.id == first)).one()
        assert tuple(row) == ("escalation", "possible pharmacy scam wave") and decisions(store) == []
        second = _case_on_screen(page)
        page.keyboard.press("Control+Enter")  # a double press: meant for the case before, not this unread one
        page.wait_for_function(f"{MODE}.startsWith('Ignored')", timeout=20000)
        assert decisions(store) == [] and int(page.get_attribute(HEAD, "data-case")) == second
    finally:
        app.close()


def test_keys_and_controls_wait_for_a_slow_confirms_answer(store, gated_decide, browser_page):
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        first, ahead = _claim_with_one_ahead(page, port, gated_decide)
        gated_decide.clear()
        page.keyboard.press("c")
        page.wait_for_selector(f"{HEAD}[data-optimistic='1'][data-case='{ahead}']", state="attached", timeout=20000)
        for sel in ("#wb-decide", "#wb-escalate", "#wb-reveal", "#wb-rationale textarea", "#wb-label input"):
            assert page.locator(sel).first.is_disabled(), sel
        for key in ("5", "o", "e", "r", "s", "x", "u", "n", "a", "Control+Enter"):
            page.keyboard.press(key)
        page.keyboard.type("targets one person")
        assert page.input_value("#wb-rationale textarea") == "" and _checked(page, "wb-label") == "hate"
        # what reaches the server anyway (controls forced on) names the case the page shows: refused
        page.evaluate("() => { const b = document.getElementById('wb-reveal'); b.disabled = false; b.click(); }")
        page.wait_for_function("() => document.querySelector('#wb-buttons-err').innerText.includes("
                               f"\"Not revealed: the page shows case {ahead} but this tab's case is {first}\")",
                               timeout=20000)
        page.evaluate("() => { const b = document.getElementById('wb-decide'); b.disabled = false; b.click(); }")
        page.wait_for_function("() => document.querySelector('#wb-buttons-err').innerText.includes("
                               f"\"Not done: the page shows case {ahead} but this tab's case is {first}\")",
                               timeout=20000)
        gated_decide.set()
        page.wait_for_selector(f"{HEAD}[data-case='{ahead}']:not([data-optimistic])", state="attached", timeout=20000)
        page.wait_for_function("() => !document.getElementById('wb-decide').disabled"
                               " && !document.querySelector('#wb-rationale textarea').disabled", timeout=20000)
        assert [(d["case_id"], d["label"]) for d in decisions(store)] == [(first, "hate")]
        with store.read() as conn:
            reveals = conn.execute(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "text.reveal")).scalar()
        assert reveals == 0 and _row(store, ahead) == ("claimed", "alice")
        assert page.input_value("#wb-rationale textarea") == "" and _checked(page, "wb-label") == "hate"
    finally:
        gated_decide.set()
        app.close()


def test_c_saves_only_what_the_screen_shows_and_a_second_c_is_ignored(store, long_guard, browser_page):
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        first = _case_on_screen(page)
        model, default = _checked(page, "wb-label"), _checked(page, "wb-action")
        labels = page.eval_on_selector_all("#wb-label input[type=radio]", "els => els.map((e) => e.value)")
        page.keyboard.press("1")  # the analyst picks benign
        page.wait_for_function("() => document.querySelector('#wb-action input:checked')?.value === 'no_action'")
        page.keyboard.press("c")
        page.wait_for_selector("#wb-label-err .wb-error", timeout=20000)
        assert (f"the label you picked (benign / no_action) is not the model's ({model} / {default}): Ctrl+Enter "
                "saves yours" in page.inner_text("#wb-label-err"))
        assert page.get_attribute(HEAD, "data-case") == str(first)
        assert page.get_attribute(HEAD, "data-optimistic") is None  # `c` showed no next case early
        assert decisions(store) == [] and _checked(page, "wb-label") == "benign"
        page.keyboard.press(str(labels.index(model) + 1))  # back to the model's label: c confirms it
        page.wait_for_function(f"() => document.querySelector('#wb-action input:checked')?.value === '{default}'")
        page.keyboard.press("c")
        page.wait_for_selector(f"text=Saved case {first}", timeout=20000)
        page.keyboard.press("c")  # a double press: the next case is not decided unread
        page.wait_for_function(f"{MODE}.startsWith('Ignored')", timeout=20000)
        assert [(d["case_id"], d["label"], d["action"]) for d in decisions(store)] == [(first, model, default)]
    finally:
        app.close()
