"""The Review tab keeps its promise "one keystroke per obvious case; no decision lost" (audit of
the screen's decisions): a decision on a case whose hold lapsed, went back to its queue or moved
to another analyst is refused saying so (it was saved with no word); a store that fails leaves
the case on screen saying nothing was saved (after `c` the next case stayed up, locked, as if
this one were done)."""
import datetime as dt
import json
import urllib.request

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from core.schema import Case, utcnow
from test_review_screen import seed
from test_ui import _free_port, decisions
from test_ui_review import HEAD, _ahead, _case_on_screen, _open, _row, _serve

BUSY = "the store is busy or unavailable (Exception), nothing was saved: press the key again"


@pytest.fixture
def store(sqlite_store, make_scored, taxonomy, queue_config):
    return seed(sqlite_store, make_scored, taxonomy, queue_config)


@pytest.fixture
def busy(monkeypatch):
    """`decide` on the Review tab failing as a locked database does, while `busy["on"]`."""
    import workbench.ui.review as review

    state, real = {"on": False, "failed": 0}, review.decide

    def maybe(*args, **kwargs):
        if state["on"]:
            state["failed"] += 1
            raise OperationalError("INSERT INTO decisions (secret) VALUES (?)", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(review, "decide", maybe)
    return state


def _err(page):
    return page.inner_text("#wb-buttons-err")


def test_a_failed_save_keeps_the_case_on_screen_and_says_nothing_was_saved(store, busy, browser_page):
    app, port = _serve(store, queue="hate-harassment")
    page = browser_page
    try:
        _open(page, port)
        page.keyboard.press("n")
        first, ahead = _case_on_screen(page), _ahead(page)
        busy["on"] = True
        page.keyboard.press("c")  # the next case shows at once; the server's failure must take it back
        page.wait_for_selector(f"{HEAD}[data-case='{first}']:not([data-optimistic])", state="attached", timeout=20000)
        page.wait_for_function(f"() => document.querySelector('#wb-buttons-err').innerText.includes({BUSY!r})",
                               timeout=20000)
        assert "INSERT" not in _err(page) and "secret" not in _err(page)
        page.wait_for_function("() => !document.getElementById('wb-decide').disabled", timeout=20000)
        assert decisions(store) == [] and _row(store, first) == ("claimed", "alice")
        assert _row(store, ahead) == ("claimed", "alice")
        page.wait_for_timeout(600)
        page.keyboard.press("Control+Enter")  # Ctrl+Enter too: refused beside the buttons, the case kept
        for _ in range(400):
            if busy["failed"] == 2:
                break
            page.wait_for_timeout(50)
        page.wait_for_timeout(500)
        assert busy["failed"] == 2 and BUSY in _err(page) and "Error" not in _err(page)
        assert int(page.get_attribute(HEAD, "data-case")) == first and decisions(store) == []
        busy["on"] = False
        page.wait_for_timeout(600)
        page.keyboard.press("c")  # the store answers again: the same key saves it
        page.wait_for_selector(f"{HEAD}[data-case='{ahead}']:not([data-optimistic])", state="attached", timeout=20000)
        assert [d["case_id"] for d in decisions(store)] == [first]
    finally:
        app.close()


class _Tab:
    """One browser tab's session over Gradio's HTTP API (the tab's states live on the server)."""

    def __init__(self, port):
        self.port = port

    def call(self, fn, data):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/gradio_api/run/{fn}", method="POST",
                                     data=json.dumps({"data": data, "session_hash": "tab-hold"}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Origin": f"http://127.0.0.1:{self.port}"})
        return json.dumps(json.loads(urllib.request.urlopen(req, timeout=30).read())["data"])


@pytest.fixture
def tab(any_store, make_scored, taxonomy, queue_config):
    from workbench.context import AppContext
    from workbench.ui import serve

    store = seed(any_store, make_scored, taxonomy, queue_config)
    port = _free_port()
    app = serve(AppContext(store=store), port=port, analyst="alice", queue="spam", block=False)
    try:
        yield store, _Tab(port)
    finally:
        app.close()


def _state(store, case_id):
    with store.read() as conn:
        return tuple(conn.execute(select(Case.state, Case.claimed_by, Case.queue).where(Case.id == case_id)).one())


LAPSED = {"lapsed, still marked as alice's": dict(state="claimed", claimed_by="alice"),
          "swept back to its queue": dict(state="open", claimed_by=None),
          "taken by bob after it lapsed": dict(state="claimed", claimed_by="bob")}
SAYS = {"lapsed, still marked as alice's": "is no longer held by alice: the hold lapsed",
        "swept back to its queue": "is no longer held by alice: the hold lapsed and the case went back to its queue",
        "taken by bob after it lapsed": "is claimed by bob now, no longer by alice: nothing was saved"}


@pytest.mark.parametrize("what", list(LAPSED))
def test_a_decision_on_a_hold_the_screen_lost_is_refused_saying_so(tab, what):
    store, page = tab
    answer = page.call("claim", ["alice", "spam", None, None])
    shown = int(answer.split("data-case='")[1].split("'")[0])
    past = utcnow() - dt.timedelta(seconds=5)
    with store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == shown).values(
            lease_expires_at=None if LAPSED[what]["state"] == "open" else past, **LAPSED[what]))
    before = _state(store, shown)
    answer = page.call("submit", [None, None, "alice", "spam", "spam", "remove", "", "", None, str(shown), None])
    assert f"Not saved: case {shown} {SAYS[what]}" in answer, answer
    answer = page.call("confirm", [None, None, "alice", "spam", None, None, None, str(shown), None])
    assert f"Not saved: case {shown} {SAYS[what]}" in answer, answer
    answer = page.call("escalate", [None, None, "alice", "spam", "a wave", None, str(shown), None])
    assert f"Not escalated: case {shown} {SAYS[what]}" in answer, answer
    assert decisions(store) == [] and _state(store, shown) == before

