"""A decision or an escalation `holder_only` goes only to a case its author still holds, checked
in the transaction that saves it (audit of the Review screen's hold check).

The screen used to renew the claim in one transaction (`review_hold.check_held`) and decide in
another, so a hold that changed between the two (the case given back from another tab, swept
back to its queue, taken by someone else) was decided or escalated blind. `holder_only=True`
on `labeling.decisions.decide`, `labeling.escalation.escalate` and
`labeling.packets.escalate_with_packet` refuses, right after the case row is locked, a case that
is not claimed by the actor on a live lease, naming what became of it; nothing is written."""
from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest
from sqlalchemy import func, select, update

from core.schema import AuditEvent, Case, Decision, utcnow
from labeling.claims import claim_case, release
from labeling.decisions import decide
from labeling.errors import QueueError
from labeling.escalation import escalate
from labeling.packets import escalate_with_packet
from test_review_screen import case_of, seed

C = Case.__table__


@pytest.fixture
def store(any_store, make_scored, taxonomy, queue_config):
    """The review-screen seed (items, two campaigns, their cases) on SQLite and PostgreSQL."""
    return seed(any_store, make_scored, taxonomy, queue_config)


def _held(store, queue_config, item="reports:b1"):
    """A spam case claimed by alice on a live lease: its id."""
    case_id = case_of(store, item)
    claim_case(store, case_id, "alice", queue_config)
    return case_id


def _lapse(store, case_id):
    with store.begin() as conn:
        conn.execute(update(C).where(C.c.id == case_id).values(lease_expires_at=utcnow() - dt.timedelta(seconds=5)))


def _lose(store, taxonomy, queue_config, case_id, how):
    """Make alice lose her hold on `case_id` the way `how` says, through the services where one does it."""
    if how == "reopened":  # given back (another tab of hers, or the sweep after it lapsed)
        release(store, case_id, "alice", queue_config)
        return
    _lapse(store, case_id)
    if how == "reassigned":
        claim_case(store, case_id, "bob", queue_config)
    elif how == "decided":
        decide(store, taxonomy, case_id, "carol", "spam", config=queue_config)
    elif how == "escalated":
        escalate(store, taxonomy, case_id, "carol", "a wave of these", queue_config)


def _says(queue_config, case_id):
    return {"lapsed": f"case {case_id} is no longer held by alice: the hold lapsed (the case may go back to its queue)",
            "reopened": f"case {case_id} is no longer held by alice: the hold lapsed and the case went back to its "
                        "queue",
            "reassigned": f"case {case_id} is claimed by bob now, no longer by alice: nothing was saved; press n for "
                          "the next case",
            "decided": f"case {case_id} is no longer held by alice: it was decided by carol",
            "escalated": f"case {case_id} is no longer held by alice: it was escalated by carol and waits in the "
                         f"{queue_config.escalation_queue} queue"}


def _snapshot(store, case_id):
    """The case's row, its decisions and the audit log's length: what a refusal must leave alone."""
    with store.read() as conn:
        row = dict(conn.execute(select(C).where(C.c.id == case_id)).mappings().one())
        made = conn.execute(select(func.count()).select_from(Decision.__table__)).scalar_one()
        events = conn.execute(select(func.count()).select_from(AuditEvent.__table__)).scalar_one()
    return row, made, events


HOW = ["lapsed", "reopened", "reassigned", "decided", "escalated"]


@pytest.mark.parametrize("how", HOW)
def test_a_decision_holder_only_on_a_lost_hold_is_refused_saying_what_became_of_it(store, taxonomy, queue_config,
                                                                                  how):
    case_id = _held(store, queue_config)
    _lose(store, taxonomy, queue_config, case_id, how)
    before = _snapshot(store, case_id)
    with pytest.raises(QueueError) as err:
        decide(store, taxonomy, case_id, "alice", "spam", config=queue_config, holder_only=True)
    assert str(err.value) == _says(queue_config, case_id)[how]
    assert "\n" not in str(err.value)
    assert _snapshot(store, case_id) == before


def test_a_hold_ends_when_its_lease_does(store, taxonomy, queue_config):
    """At the lease's last instant the hold is gone (as `renew` counts it): refused; a moment before, decided."""
    case_id = _held(store, queue_config)
    with store.read() as conn:
        until = conn.execute(select(C.c.lease_expires_at).where(C.c.id == case_id)).scalar_one()
    with pytest.raises(QueueError, match="the hold lapsed"):
        decide(store, taxonomy, case_id, "alice", "spam", config=queue_config, holder_only=True, now=until)
    out = decide(store, taxonomy, case_id, "alice", "spam", config=queue_config, holder_only=True,
                 now=until - dt.timedelta(seconds=1))
    assert out["state"] == "decided"


def test_holder_only_decides_a_held_case_and_leaves_other_callers_as_they_were(store, taxonomy, queue_config):
    held = _held(store, queue_config)
    assert decide(store, taxonomy, held, "alice", "spam", config=queue_config, holder_only=True)["state"] == "decided"
    waiting = case_of(store, "reports:b2")  # never claimed: a caller not asking holder_only decides it as before
    with pytest.raises(QueueError, match=f"case {waiting} is no longer held by alice"):
        decide(store, taxonomy, waiting, "alice", "spam", config=queue_config, holder_only=True)
    assert decide(store, taxonomy, waiting, "alice", "spam", config=queue_config)["state"] == "decided"


@pytest.mark.parametrize("how", ["lapsed", "reopened", "reassigned", "decided"])
def test_an_escalation_holder_only_on_a_lost_hold_is_refused_and_files_no_packet(store, taxonomy, queue_config,
                                                                                review_settings, campaign_settings,
                                                                                how):
    case_id = _held(store, queue_config)
    _lose(store, taxonomy, queue_config, case_id, how)
    before = _snapshot(store, case_id)
    folder = store.path("packets", "x").parent
    filed = sorted(folder.glob("*.json")) if folder.exists() else []
    with pytest.raises(QueueError) as err:
        escalate(store, taxonomy, case_id, "alice", "a wave", queue_config, holder_only=True)
    assert str(err.value) == _says(queue_config, case_id)[how]
    with pytest.raises(QueueError) as err:
        escalate_with_packet(store, taxonomy, case_id, "alice", "a wave", queue_config, review_settings,
                             campaign_settings, holder_only=True)
    assert str(err.value) == _says(queue_config, case_id)[how]
    assert _snapshot(store, case_id) == before
    assert (sorted(folder.glob("*.json")) if folder.exists() else []) == filed


def test_an_escalation_holder_only_on_a_held_case_is_filed(store, taxonomy, queue_config, review_settings,
                                                           campaign_settings):
    case_id = _held(store, queue_config)
    out = escalate_with_packet(store, taxonomy, case_id, "alice", "a wave", queue_config, review_settings,
                               campaign_settings, holder_only=True)
    assert out["filed"] and out["case"]["state"] == "escalated"


# The Review tab: the hold is checked where the decision is saved, not a transaction before it.

def _call(port, fn, data):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/run/{fn}", method="POST",
                                 data=json.dumps({"data": data, "session_hash": "tab-holder"}).encode(),
                                 headers={"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
    return json.dumps(json.loads(urllib.request.urlopen(req, timeout=30).read())["data"])


@pytest.fixture
def tab(store):
    from test_ui import _free_port
    from workbench.context import AppContext
    from workbench.ui import serve

    port = _free_port()
    app = serve(AppContext(store=store), port=port, analyst="alice", queue="spam", block=False)
    try:
        yield port
    finally:
        app.close()


def _given_back_first(store, queue_config, real):
    """`real` (the service the tab calls), with alice's other tab giving the case back first: the
    hold changes after anything the screen checked before calling it."""
    def call(store_, taxonomy, case_id, who, *args, **kwargs):
        release(store, case_id, "alice", queue_config)
        return real(store_, taxonomy, case_id, who, *args, **kwargs)
    return call


@pytest.mark.parametrize("key", ["submit", "escalate"])
def test_the_tab_refuses_a_hold_lost_just_before_the_save(store, queue_config, tab, monkeypatch, key):
    import workbench.ui.review as review

    name = "decide" if key == "submit" else "escalate_with_packet"
    monkeypatch.setattr(review, name, _given_back_first(store, queue_config, getattr(review, name)))
    answer = _call(tab, "claim", ["alice", "spam", None, None])
    shown = int(answer.split("data-case='")[1].split("'")[0])
    data = ([None, None, "alice", "spam", "spam", "remove", "", "", None, str(shown), None] if key == "submit"
            else [None, None, "alice", "spam", "a wave", None, str(shown), None])
    answer = _call(tab, key, data)
    said = "Not saved" if key == "submit" else "Not escalated"
    assert f"{said}: case {shown} is no longer held by alice: the hold lapsed and the case went back to its queue" \
        in answer, answer
    with store.read() as conn:
        assert conn.execute(select(C.c.state, C.c.claimed_by).where(C.c.id == shown)).one() == ("open", None)
        assert conn.execute(select(func.count()).select_from(Decision.__table__)).scalar_one() == 0
