"""A folded member goes home, and its own SLA still reaches its campaign's escalated case.

1. A case an escalation criterion escalated at planning had no meta `escalated_from`: folded
   under its campaign's escalation (`escalation._cover`) it went to the default queue (`general`)
   instead of its own route (a scam to `fraud`), where no fraud reviewer looks.
2. The sweep skipped a member whose campaign's case is in the escalation queue: a member whose
   own SLA lapsed sooner (a P1 due in 4 hours under a campaign escalated at P3, due in 3 days)
   lapsed unwatched, the campaign's case never took its tier or due time.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select

from core.schema import AuditEvent, Prediction
from labeling.cases import build_cases
from labeling.escalation import escalate, sweep
from labeling.routing import Candidate, plan_case
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet, scores_for

NOW = T0 + dt.timedelta(minutes=1)
P1 = dt.timedelta(minutes=240)


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


_row = case_row


def _raises(store, case_id) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "case.raise", AuditEvent.entity_id == str(case_id))).scalar()


def _wave(store, taxonomy, cfg, label="scam", text="claim your prize {}"):
    ids = add_scored(store, taxonomy, [{"id": f"m{i}", "label": label, "p": 0.9, "text": text.format(i)}
                                       for i in range(3)])
    add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return case_ids(store)


# -- 1. the home of a criterion-escalated case -------------------------------------------------------
def _cand(taxonomy, label, text, p=0.95, **kw):
    return Candidate(item_id="x1", text=text, label=label, score=p, scores=scores_for(taxonomy, label, p), **kw)


def test_a_criterion_escalated_case_records_the_queue_its_route_gives(taxonomy, cfg):
    row = plan_case(taxonomy, cfg, _cand(taxonomy, "scam", "selling child pics dm me"), T0)
    assert (row["queue"], row["severity"]) == (cfg.escalation_queue, "P0")
    assert row["meta"]["escalated_from"] == "fraud"  # was missing
    # A long benign text never routes to the low-risk queue: its home is the default queue.
    long = plan_case(taxonomy, cfg, _cand(taxonomy, "benign", "kid naked in the photos", flags={"windowed": True}), T0)
    assert (long["queue"], long["meta"]["escalated_from"]) == (cfg.escalation_queue, cfg.default_queue)
    # A case no criterion escalates has no such record.
    plain = plan_case(taxonomy, cfg, _cand(taxonomy, "scam", "claim your prize"), T0)
    assert plain["queue"] == "fraud" and "escalated_from" not in plain["meta"]


def test_a_criterion_escalated_member_folded_by_the_sweep_goes_to_its_own_queue(any_store, taxonomy, cfg):
    cases = _wave(any_store, taxonomy, cfg, text="selling child pics {} dm me")  # child_safety: P0
    assert _row(any_store, cases["campaign"])["queue"] == cfg.escalation_queue
    assert sweep(any_store, taxonomy, cfg, now=NOW)["folded"] == 3
    for i in ("m0", "m1", "m2"):
        member = _row(any_store, cases[i])
        assert (member["queue"], member["state"]) == ("fraud", "open"), i  # was the default queue, general
        assert member["meta"]["covered_by"] == cases["campaign"] and member["severity"] == "P0"


# -- 2. a covered member's own SLA ---------------------------------------------------------------------
def test_a_covered_member_lapsing_before_its_campaign_case_raises_it_once(any_store, taxonomy, cfg):
    cases = _wave(any_store, taxonomy, cfg)  # P1 scams, each due T0 + 4 h
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg, now=T0 + dt.timedelta(hours=3))
    camp = _row(any_store, cases["campaign"])
    assert (camp["severity"], camp["due_at"]) == ("P1", T0 + dt.timedelta(hours=3) + P1)  # its own window
    at = T0 + dt.timedelta(hours=3, minutes=30)  # 30 of the members' 240 minutes left: lapsing
    out = sweep(any_store, taxonomy, cfg, now=at)
    assert out["sla_escalated"] == 0  # the members stay covered, in their queue
    assert {_row(any_store, cases[i])["queue"] for i in ("m0", "m1", "m2")} == {"fraud"}
    camp = _row(any_store, cases["campaign"])
    assert (camp["severity"], camp["due_at"]) == ("P1", T0 + P1)  # was T0 + 7 h: the members lapsed unwatched
    listed = camp["meta"]["item_escalations"]
    assert sorted(e["case_id"] for e in listed) == sorted(cases[i] for i in ("m0", "m1", "m2"))
    assert {(e["by"], e["reason"], e["severity"]) for e in listed} == {(None, "sla: covered member", "P1")}
    assert _raises(any_store, cases["campaign"]) == 1
    # A second sweep adds nothing: no second entry, no second raise.
    sweep(any_store, taxonomy, cfg, now=at + dt.timedelta(minutes=5))
    again = _row(any_store, cases["campaign"])
    assert again["meta"]["item_escalations"] == listed and again["due_at"] == T0 + P1
    assert _raises(any_store, cases["campaign"]) == 1


def test_a_newer_models_stricter_tier_on_a_member_reaches_its_escalated_campaign_case(any_store, taxonomy, cfg):
    cases = _wave(any_store, taxonomy, cfg, label="spam", text="cheap watches {} buy now")  # P3 spam
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg, now=NOW)
    assert _row(any_store, cases["campaign"])["severity"] == "P3"
    later = T0 + dt.timedelta(minutes=10)
    s = scores_for(taxonomy, "scam", 0.9)  # a newer model: the wave is fraud, P1
    with any_store.begin() as conn:
        conn.execute(insert(Prediction.__table__), [
            {"item_id": f"m{i}", "model_version": "test-model-2", "label": "scam", "score": 0.9, "scores": s,
             "uncertainty": 0.1, "taxonomy_version": taxonomy.version, "created_at": later} for i in range(3)])
    build_cases(any_store, taxonomy, cfg, now=later, progress=False)
    member = _row(any_store, cases["m0"])
    assert (member["queue"], member["severity"], member["due_at"]) == ("fraud", "P1", T0 + P1)
    sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=3, minutes=30))
    camp = _row(any_store, cases["campaign"])
    assert (camp["severity"], camp["due_at"]) == ("P1", T0 + P1)  # was P3, due in three days
    assert camp["meta"]["features"]["severity"] == "P1" and "of P1 SLA used" in camp["priority_reason"]
