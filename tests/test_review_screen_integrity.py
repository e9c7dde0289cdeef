"""The review screen acts only on the case the analyst sees (audit of the Review tab): a key sent
for another case than the tab's is refused untouched, `c` never saves something other than what
the screen shows, a reload resumes the analyst's own claims, and a lost hold says what became of
the case. Services and the tab's callbacks over Gradio's HTTP API; no browser."""
import datetime as dt
import html
import json
import urllib.request

import pytest
from sqlalchemy import func, select

from core.schema import AuditEvent, Case, utcnow
from labeling.claims import next_case, renew
from labeling.decisions import decide
from labeling.errors import QueueError
from labeling.escalation import escalate
from test_review_screen import case_of, seed
from test_ui import _free_port, decisions
from workbench.ui.review_actions import confirm_refusal, wrong_case


@pytest.fixture
def store(any_store, make_scored, taxonomy, queue_config):
    return seed(any_store, make_scored, taxonomy, queue_config)


def _held(store, analyst):
    with store.read() as conn:
        q = select(Case.id).where(Case.state == "claimed", Case.claimed_by == analyst)
        return sorted(conn.execute(q).scalars())


def test_claiming_next_resumes_the_analysts_own_live_claim(store, queue_config):
    first = next_case(store, "alice", "hate-harassment", queue_config, detail=False)
    ahead = next_case(store, "alice", "hate-harassment", queue_config, detail=False)
    assert first["id"] != ahead["id"]
    # the page was reloaded: the next claim takes up the case it showed, then the one claimed ahead
    again = next_case(store, "alice", "hate-harassment", queue_config, detail=False, resume=True)
    assert again["id"] == first["id"] and again["lease_expires_at"] >= first["lease_expires_at"]
    then = next_case(store, "alice", "hate-harassment", queue_config, detail=False, resume=True, exclude=[first["id"]])
    assert then["id"] == ahead["id"]
    assert _held(store, "alice") == sorted([first["id"], ahead["id"]])  # nothing new claimed, nothing stranded
    assert next_case(store, "bob", "hate-harassment", queue_config, detail=False, resume=True)["id"] not in _held(
        store, "alice")  # never another analyst's claim
    late = utcnow() + dt.timedelta(seconds=queue_config.lease_seconds + 60)  # a lapsed hold is not resumed
    out = next_case(store, "alice", "spam", queue_config, detail=False, resume=True, now=late)
    assert out is None or out["id"] not in (first["id"], ahead["id"])
    with store.read() as conn:
        resumed = conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "case.claim", AuditEvent.entity_id == str(first["id"]))).scalar()
    assert resumed == 2  # the resume is audited as a claim


def test_lost_hold_says_what_became_of_the_case(store, taxonomy, queue_config):
    decided = next_case(store, "alice", "hate-harassment", queue_config, detail=False)["id"]
    decide(store, taxonomy, decided, "alice", "hate", config=queue_config)
    with pytest.raises(QueueError, match=f"case {decided} is no longer held by alice: it was decided by alice$"):
        renew(store, decided, "alice", queue_config)
    escalated = next_case(store, "alice", "hate-harassment", queue_config, detail=False)["id"]
    escalate(store, taxonomy, escalated, "alice", "needs a lead", queue_config)
    with pytest.raises(QueueError, match="it was escalated by alice and waits in the escalation queue") as err:
        renew(store, escalated, "alice", queue_config)
    assert "lapsed" not in str(err.value)
    taken = next_case(store, "alice", "hate-harassment", queue_config, detail=False)["id"]
    with pytest.raises(QueueError, match="the hold lapsed and the case is now held by alice"):
        renew(store, taken, "bob", queue_config)
    late = utcnow() + dt.timedelta(seconds=queue_config.lease_seconds + 60)
    with pytest.raises(QueueError, match="the hold lapsed"):
        renew(store, taken, "alice", queue_config, now=late)


def test_wrong_case_and_confirm_refusal(taxonomy):
    packet = {"case": {"id": 7}, "suggested_label": "spam",
              "choices": {"spam": {"default_action": "remove", "policy_ref": "P-2"}}}
    assert wrong_case(packet, "7") is None and wrong_case(packet, 7) is None and wrong_case(None, "3") is None
    assert "shows case 8 but this tab's case is 7: nothing was done" in wrong_case(packet, "8")
    assert "did not say which case" in wrong_case(packet, "") and "did not say" in wrong_case(packet, None)
    pol = taxonomy.policies
    assert confirm_refusal(packet, "spam", "remove", pol) is None and confirm_refusal(packet, None, None, pol) is None
    other = next(a for a in pol["spam"].actions if a != "remove")
    assert confirm_refusal(packet, "spam", "not-an-action-of-spam", pol) is None  # out of step: the label's default
    assert "(spam / " + other + ") is not the model's" in confirm_refusal(packet, "spam", other, pol)
    msg = confirm_refusal(packet, "benign", "no_action", pol)
    assert msg.startswith("the label you picked (benign / no_action) is not the model's (spam / remove)")
    assert "Ctrl+Enter saves yours" in msg and "\n" not in msg


class _Tab:
    """One browser tab's session over Gradio's HTTP API: the tab's states live on the server."""

    def __init__(self, port, session="tab-integrity"):
        self.port, self.session = port, session

    def call(self, fn, data):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/gradio_api/run/{fn}", method="POST",
                                     data=json.dumps({"data": data, "session_hash": self.session}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Origin": f"http://127.0.0.1:{self.port}"})
        return html.unescape(json.dumps(json.loads(urllib.request.urlopen(req, timeout=30).read())["data"]))


@pytest.fixture
def tab(sqlite_store, make_scored, taxonomy, queue_config):
    from workbench.context import AppContext
    from workbench.ui import serve

    store = seed(sqlite_store, make_scored, taxonomy, queue_config)
    port = _free_port()
    app = serve(AppContext(store=store), port=port, analyst="alice", queue="spam", block=False)
    try:
        yield store, _Tab(port)
    finally:
        app.close()


def _on_screen(answer):
    return int(answer.split("data-case='")[1].split("'")[0])


def test_keys_for_another_case_than_the_tabs_are_refused_untouched(tab):
    store, page = tab
    shown = _on_screen(page.call("claim", ["alice", "spam", None, None]))
    with store.read() as conn:
        ahead = conn.execute(select(Case.id).where(Case.claimed_by == "alice", Case.id != shown)).scalar()
    # the page shows the case claimed ahead (optimistic view), the tab still has `shown`
    for fn, data in (("submit", [None, None, "alice", "spam", "benign", "no_action", "", "not spam", None, str(ahead),
                                 None]),
                     ("confirm", [None, None, "alice", "spam", None, None, None, str(ahead), None]),
                     ("escalate", [None, None, "alice", "spam", "a wave", None, str(ahead), None]),
                     ("skip_case", [None, "alice", "spam", None, str(ahead), None]),
                     ("release_case", [None, "alice", "spam", None, "", None]),
                     ("undo", [None, "alice", "spam", None, str(ahead), None])):
        answer = page.call(fn, data)
        assert "Not done: the page" in answer and f"this tab's case is {shown}" in answer, (fn, answer)
    answer = page.call("reveal", [None, "alice", "spam", str(ahead)])
    assert f"Not revealed: the page shows case {ahead} but this tab's case is {shown}" in answer
    with store.read() as conn:
        rows = dict(conn.execute(select(Case.id, Case.state).where(Case.id.in_([shown, ahead]))).all())
        reveals = conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "text.reveal")).scalar()
    assert rows == {shown: "claimed", ahead: "claimed"} and decisions(store) == [] and reveals == 0


def test_confirm_saves_only_what_the_screen_shows(tab):
    store, page = tab
    shown = _on_screen(page.call("claim", ["alice", "spam", None, None]))
    answer = page.call("confirm", [None, None, "alice", "spam", "benign", "no_action", None, str(shown), None])
    assert "Not saved: the label you picked (benign / no_action) is not the model" in answer
    assert decisions(store) == []
    page.call("confirm", [None, None, "alice", "spam", "spam", "remove", None, str(shown), None])
    assert [(d["case_id"], d["label"], d["action"]) for d in decisions(store)] == [(shown, "spam", "remove")]


def test_a_reloaded_tab_resumes_its_cases_and_a_lost_hold_says_why(tab, taxonomy, queue_config):
    store, page = tab
    answer = page.call("claim", ["alice", "spam", None, None])
    shown, ahead = _on_screen(answer), int(answer.split("wb-pre' data-case='")[1].split("'")[0])
    reloaded = _Tab(page.port, "tab-reloaded")  # a reload: a new session, the tab's states gone
    again = reloaded.call("claim", ["alice", "spam", None, None])
    assert _on_screen(again) == shown and f"wb-pre' data-case='{ahead}'" in again
    assert _held(store, "alice") == sorted([shown, ahead])  # nothing stranded, nothing more claimed
    decide(store, taxonomy, shown, "alice", "spam", config=queue_config)  # decided in the reloaded tab
    beat = page.call("heartbeat", [None, None, None, "alice", 0])
    assert f"Lost: case {shown} is no longer held by alice: it was decided by alice. What you typed is kept; " \
           "press n for the next case." in beat and "open this one again" not in beat
