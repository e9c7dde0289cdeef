"""A member case folded under its campaign's escalated case: the campaign's case takes the
member's stricter tier and due time (the sweep no longer escalates a covered member, so a P0
would otherwise wait behind a P1 SLA), and a re-escalated case keeps the queue it came from."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.schema import AuditEvent, Case
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.escalation import escalate, sweep
from test_queue_support import T0, add_campaign, add_scored

NOW = T0 + dt.timedelta(minutes=1)


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


@pytest.fixture
def wave(any_store, taxonomy, cfg):
    """Three scam messages in one campaign: {item id or "campaign": case id}."""
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"claim your prize {i}"}
                                           for i in range(3)])
    add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        rows = conn.execute(select(Case.id, Case.item_id, Case.campaign_id)).all()
    return {("campaign" if r.campaign_id is not None else r.item_id): r.id for r in rows}


def _row(store, case_id):
    with store.read() as conn:
        return dict(conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one())


def _raises(store, case_id):
    with store.read() as conn:
        return [dict(p) for p in conn.execute(select(AuditEvent.payload).where(
            AuditEvent.action == "case.raise", AuditEvent.entity_id == str(case_id))).scalars()]


def test_a_p0_member_folded_under_its_campaign_keeps_the_p0_sla(any_store, taxonomy, cfg, wave):
    escalate(any_store, taxonomy, wave["m1"], "ann", "names a real bank and a deadline today", cfg,
             severity="P0", now=NOW)
    before = _row(any_store, wave["campaign"])
    escalate(any_store, taxonomy, wave["campaign"], "bob", "whole wave", cfg, now=NOW + dt.timedelta(minutes=2))
    member, camp = _row(any_store, wave["m1"]), _row(any_store, wave["campaign"])
    assert member["queue"] == "fraud" and member["meta"]["covered_by"] == wave["campaign"]
    assert camp["queue"] == cfg.escalation_queue and camp["severity"] == "P0"
    assert camp["due_at"] == NOW + dt.timedelta(minutes=30)  # the member's, not the campaign's 4 hours
    assert camp["priority"] > before["priority"] and camp["meta"]["features"]["severity"] == "P0"
    assert camp["meta"]["item_escalations"] == [{"case_id": wave["m1"], "by": "ann", "severity": "P0",
                                                 "reason": "names a real bank and a deadline today"}]
    raised = _raises(any_store, wave["campaign"])
    assert len(raised) == 1 and raised[0]["severity"] == ["P1", "P0"] and raised[0]["from_cases"] == [wave["m1"]]
    # The sweep's refresh recomputes priorities from the stored features: it keeps the P0.
    sweep(any_store, taxonomy, cfg, now=NOW + dt.timedelta(minutes=40))
    camp = _row(any_store, wave["campaign"])
    assert camp["severity"] == "P0" and camp["due_at"] == NOW + dt.timedelta(minutes=30)
    assert "of P0 SLA used" in camp["priority_reason"]


def test_a_p0_member_escalated_after_its_campaign_raises_the_campaign_case(any_store, taxonomy, cfg, wave):
    escalate(any_store, taxonomy, wave["campaign"], "bob", "whole wave", cfg, now=NOW)
    at = NOW + dt.timedelta(minutes=10)
    out = escalate(any_store, taxonomy, wave["m2"], "ann", "child in the photo", cfg, severity="P0", now=at)
    assert out["id"] == wave["campaign"] and out["folded_from"] == wave["m2"]
    camp = _row(any_store, wave["campaign"])
    assert camp["severity"] == "P0" and camp["due_at"] == at + dt.timedelta(minutes=30)
    assert camp["meta"]["item_escalations"] == [{"case_id": wave["m2"], "by": "ann", "reason": "child in the photo",
                                                 "severity": "P0"}]
    assert [p["severity"] for p in _raises(any_store, wave["campaign"])] == [["P1", "P0"]]
    # A later member at the campaign's own tier adds its reason and changes nothing else.
    escalate(any_store, taxonomy, wave["m0"], "cy", "same sender", cfg, now=at + dt.timedelta(minutes=5))
    again = _row(any_store, wave["campaign"])
    assert (again["severity"], again["due_at"], again["priority"]) == (camp["severity"], camp["due_at"], camp["priority"])
    assert [e["case_id"] for e in again["meta"]["item_escalations"]] == [wave["m2"], wave["m0"]]
    assert len(_raises(any_store, wave["campaign"])) == 1


def test_a_member_at_the_campaigns_tier_leaves_its_sla_alone(any_store, taxonomy, cfg, wave):
    escalate(any_store, taxonomy, wave["campaign"], "bob", "whole wave", cfg, now=NOW)
    before = _row(any_store, wave["campaign"])
    escalate(any_store, taxonomy, wave["m0"], "ann", "same sender", cfg, now=NOW + dt.timedelta(minutes=5))
    camp = _row(any_store, wave["campaign"])
    assert (camp["severity"], camp["due_at"], camp["priority"]) == (before["severity"], before["due_at"],
                                                                    before["priority"])
    assert camp["meta"]["item_escalations"] == [{"case_id": wave["m0"], "by": "ann", "reason": "same sender",
                                                 "severity": "P1"}]
    assert _raises(any_store, wave["campaign"]) == []


def test_the_sweep_folding_a_held_p0_member_raises_the_campaign_case(any_store, taxonomy, cfg, wave):
    """A held member stays with its holder when its campaign is escalated; once the lease lapses
    the sweep folds it, and the campaign's case takes its P0 then."""
    escalate(any_store, taxonomy, wave["m1"], "ann", "names a real bank", cfg, severity="P0", now=NOW)
    claim_case(any_store, wave["m1"], "lead", cfg, now=NOW + dt.timedelta(minutes=1))
    escalate(any_store, taxonomy, wave["campaign"], "bob", "whole wave", cfg, now=NOW + dt.timedelta(minutes=2))
    assert _row(any_store, wave["campaign"])["severity"] == "P1"  # the held member was not folded yet
    out = sweep(any_store, taxonomy, cfg, now=NOW + dt.timedelta(hours=2))
    assert out["folded"] == 1
    camp = _row(any_store, wave["campaign"])
    assert camp["severity"] == "P0" and camp["due_at"] == NOW + dt.timedelta(minutes=30)
    assert camp["meta"]["item_escalations"] == [{"case_id": wave["m1"], "by": "ann", "reason": "names a real bank",
                                                 "severity": "P0"}]


def test_a_re_escalated_case_keeps_the_queue_it_came_from(any_store, taxonomy, cfg, wave):
    escalate(any_store, taxonomy, wave["m1"], "ann", "looks like a bank impersonation", cfg, now=NOW)
    claim_case(any_store, wave["m1"], "lead", cfg, now=NOW + dt.timedelta(minutes=1))
    escalate(any_store, taxonomy, wave["m1"], "lead", "names a real bank: P0", cfg, severity="P0",
             now=NOW + dt.timedelta(minutes=2))
    member = _row(any_store, wave["m1"])
    assert member["severity"] == "P0" and member["meta"]["escalated_from"] == "fraud"
    assert member["meta"]["escalated_by"] == "lead"
    escalate(any_store, taxonomy, wave["campaign"], "ann", "whole wave", cfg, now=NOW + dt.timedelta(minutes=3))
    member = _row(any_store, wave["m1"])
    assert (member["queue"], member["state"], member["meta"]["covered_by"]) == ("fraud", "open", wave["campaign"])
    assert _row(any_store, wave["campaign"])["meta"]["item_escalations"][0]["by"] == "lead"
