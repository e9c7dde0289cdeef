"""Four eyes on escalations: whoever escalated a case neither claims nor decides it.

Found in a browser audit: analyst alice escalated case 167 ("Possible threat of violence, needs
senior review"); on her next sign-in the Review queue opened on "escalation (1 left)", `n` gave
her own case back, and she decided it herself (kind escalation, by alice). The escalation queue
is for someone else: a lead, or another senior reviewer (`labeling.four_eyes`).
"""
from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from core.schema import Decision
from labeling.cases import build_cases, queue_counts, queue_status, start_queue
from labeling.claims import claim_case, next_case
from labeling.decisions import decide
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate
from labeling.queue_config import QueueConfig
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet

NOW = T0 + dt.timedelta(minutes=1)
LATER = T0 + dt.timedelta(minutes=5)
WHY = "Possible threat of violence, needs senior review"


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


def _decisions(store, case_id: int) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(Decision).where(Decision.case_id == case_id)).scalar()


def _escalated_by_alice(store, taxonomy, cfg, other: bool = False) -> int:
    """Alice claims her harassment case and escalates it; `other`: a fraud case waits too."""
    specs = [{"id": "h1", "label": "harassment", "p": 0.8, "text": "you are a clown"}]
    if other:
        specs.append({"id": "f1", "label": "scam", "p": 0.9, "text": "claim your prize"})
    add_scored(store, taxonomy, specs)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(store)["h1"]
    got = next_case(store, "alice", case_row(store, case_id)["queue"], config=cfg, now=NOW)
    assert got["id"] == case_id
    escalate(store, taxonomy, case_id, "alice", WHY, cfg, now=NOW)
    assert case_row(store, case_id)["state"] == "escalated"
    return case_id


def test_next_never_gives_the_escalator_their_own_escalation(any_store, taxonomy, cfg):
    case_id = _escalated_by_alice(any_store, taxonomy, cfg)
    assert next_case(any_store, "alice", cfg.escalation_queue, config=cfg, now=LATER) is None  # was her case back
    assert case_row(any_store, case_id)["state"] == "escalated"  # left waiting for someone else
    assert next_case(any_store, "bob", cfg.escalation_queue, config=cfg, now=LATER)["id"] == case_id


def test_claim_by_id_refuses_the_escalator(any_store, taxonomy, cfg):
    case_id = _escalated_by_alice(any_store, taxonomy, cfg)
    with pytest.raises(QueueError, match=f"case {case_id} was escalated by alice, who may not claim it") as err:
        claim_case(any_store, case_id, "alice", cfg, now=LATER)
    assert "\n" not in str(err.value)
    row = case_row(any_store, case_id)
    assert (row["state"], row["claimed_by"]) == ("escalated", None)  # nothing was changed
    assert claim_case(any_store, case_id, "bob", cfg, now=LATER)["claimed_by"] == "bob"


def test_decide_refuses_the_escalator_and_saves_nothing(any_store, taxonomy, cfg):
    case_id = _escalated_by_alice(any_store, taxonomy, cfg)
    with pytest.raises(DecisionError, match=f"case {case_id} was escalated by alice, who may not decide it"):
        decide(any_store, taxonomy, case_id, "alice", "harassment", "remove", rationale="my own call",
               now=LATER, config=cfg)
    assert _decisions(any_store, case_id) == 0 and case_row(any_store, case_id)["state"] == "escalated"
    done = decide(any_store, taxonomy, case_id, "bob", "harassment", "remove", rationale="threat confirmed",
                  now=LATER, config=cfg)
    assert done["kind"] == "escalation" and _decisions(any_store, case_id) == 1


def test_start_queue_and_counts_leave_out_the_escalators_own(any_store, taxonomy, cfg):
    _escalated_by_alice(any_store, taxonomy, cfg, other=True)
    # The page opened on "escalation (1 left)" for alice: her only escalation is her own.
    assert start_queue(any_store, "alice", cfg, now=LATER) == "fraud"
    assert start_queue(any_store, "alice", cfg, now=LATER, status=queue_status(any_store, cfg, LATER)) == "fraud"
    assert start_queue(any_store, "bob", cfg, now=LATER) == cfg.escalation_queue
    esc = cfg.escalation_queue
    assert queue_status(any_store, cfg, LATER, viewer="alice")[esc]["waiting"] == 0
    assert queue_status(any_store, cfg, LATER, viewer="bob")[esc]["waiting"] == 1
    assert queue_counts(any_store, esc, LATER, viewer="alice", config=cfg)["waiting"] == 0
    assert queue_counts(any_store, esc, LATER, viewer="bob", config=cfg)["waiting"] == 1
    assert queue_counts(any_store, esc, LATER)["waiting"] == 1  # no viewer: every waiting case


def test_an_escalation_raised_again_by_a_lead_stays_out_of_the_first_escalators_hands(any_store, taxonomy, cfg):
    case_id = _escalated_by_alice(any_store, taxonomy, cfg)
    # Lead lee takes it and raises it to P0: `escalated_by` now names lee, alice raised it all the same.
    assert next_case(any_store, "lee", cfg.escalation_queue, config=cfg, now=LATER)["id"] == case_id
    escalate(any_store, taxonomy, case_id, "lee", "raised: explicit date and place", cfg, severity="P0", now=LATER)
    assert case_row(any_store, case_id)["meta"]["escalated_by"] == "lee"
    later = LATER + dt.timedelta(minutes=1)
    assert next_case(any_store, "alice", cfg.escalation_queue, config=cfg, now=later) is None
    with pytest.raises(QueueError, match="escalated by alice"):
        claim_case(any_store, case_id, "alice", cfg, now=later)
    with pytest.raises(DecisionError, match="escalated by alice"):
        decide(any_store, taxonomy, case_id, "alice", "harassment", "remove", rationale="mine", now=later, config=cfg)
    assert next_case(any_store, "lee", cfg.escalation_queue, config=cfg, now=later) is None
    assert next_case(any_store, "cy", cfg.escalation_queue, config=cfg, now=later)["id"] == case_id


def test_the_escape_hatch_is_off_by_default_and_lets_a_team_of_one_take_its_own(any_store, taxonomy, cfg):
    assert cfg.escalation_self_review is False
    with pytest.raises(ValidationError, match="escalation_self_review"):
        QueueConfig.model_validate(dict(cfg.model_dump(), escalation_self_review="maybe"))
    solo = cfg.model_copy(update={"escalation_self_review": True})
    case_id = _escalated_by_alice(any_store, taxonomy, solo)
    assert start_queue(any_store, "alice", solo, now=LATER) == cfg.escalation_queue
    assert queue_counts(any_store, cfg.escalation_queue, LATER, viewer="alice", config=solo)["waiting"] == 1
    assert next_case(any_store, "alice", cfg.escalation_queue, config=solo, now=LATER)["id"] == case_id
    done = decide(any_store, taxonomy, case_id, "alice", "harassment", "remove", rationale="only one of us",
                  now=LATER, config=solo)
    assert done["kind"] == "escalation"


def test_a_members_escalator_does_not_take_the_campaign_case_that_now_carries_it(any_store, taxonomy, cfg):
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"claim your prize {i}"}
                                           for i in range(3)])
    add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cases = case_ids(any_store)
    escalate(any_store, taxonomy, cases["campaign"], "bob", "a wave of advance-fee scams", cfg, now=NOW)
    # Alice escalates one member's own case: it folds under the campaign's case, which carries her escalation.
    folded = escalate(any_store, taxonomy, cases["m0"], "alice", WHY, cfg, now=NOW)
    assert folded["id"] == cases["campaign"] and folded["folded_from"] == cases["m0"]
    assert next_case(any_store, "alice", cfg.escalation_queue, config=cfg, now=LATER) is None
    with pytest.raises(QueueError, match="escalated by alice"):
        claim_case(any_store, cases["campaign"], "alice", cfg, now=LATER)
    assert next_case(any_store, "cy", cfg.escalation_queue, config=cfg, now=LATER)["id"] == cases["campaign"]


def test_the_review_screens_counts_leave_out_the_viewers_own_escalation(any_store, taxonomy, cfg):
    """The Review tab's queue list and "N left" line (workbench.ui.review_guard) count the
    escalation queue as each viewer may work it: alice's own escalation is not "1 left" for her."""
    pytest.importorskip("gradio")
    from workbench.ui.review_guard import counts_view, queue_choices, start_view, status_line

    _escalated_by_alice(any_store, taxonomy, cfg, other=True)
    esc = cfg.escalation_queue

    def listed(who):
        return dict((value, label) for label, value in queue_choices(any_store, cfg, who)["choices"])[esc]

    assert "(0 left)" in listed("alice") and "(1 left" in listed("bob")
    assert "<b>0 left</b>" in status_line(any_store, esc, None, "alice", cfg)
    assert "<b>1 left</b>" in status_line(any_store, esc, None, "bob", cfg)
    line, choices = counts_view(any_store, cfg, esc, None, "alice")
    assert "(0 left)" in dict((v, lab) for lab, v in choices)[esc]
    assert start_view(any_store, cfg, None, "alice", None)[0] != esc
    assert start_view(any_store, cfg, None, "bob", None)[0] == esc
