"""Escalation and rescore hardening: an escalated case's SLA clock starts at the escalation (it
showed 83% of a 24-hour SLA used the moment it arrived after 20 hours in its queue), one packet
per open escalation (a retry, a double submit, two sessions at once filed one each), and a
champion whose labels left the taxonomy scores nothing after a promotion."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

import labeling.packets as packets
from core.schema import AuditEvent, Case, Prediction
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.escalation import escalate, sweep
from labeling.packets import escalate_with_packet, review_packet
from labeling.rescore import score_ids
from models.registry import RegistryError
from test_models_fixtures import add_items
from test_promotion_gate import MODELS, make_loop
from test_queue_support import T0, add_campaign, add_scored, at_once, meeting


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _row(store, case_id):
    with store.read() as conn:
        return dict(conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one())


def _events(store, action, case_id):
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.entity_id == str(case_id))).scalar()


def _harassment_case(store, taxonomy, cfg) -> int:
    """One P2 (24-hour SLA) item case built at T0."""
    add_scored(store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown and a fool"}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        return conn.execute(select(Case.id).where(Case.item_id == "h1")).scalar_one()


# -- 1. the escalation's SLA clock -------------------------------------------------------------------
def test_an_escalated_cases_sla_clock_starts_when_it_was_escalated(any_store, taxonomy, cfg, review_settings,
                                                                   campaign_settings):
    case_id = _harassment_case(any_store, taxonomy, cfg)
    assert _row(any_store, case_id)["severity"] == "P2"
    at = T0 + dt.timedelta(hours=20)
    escalate(any_store, taxonomy, case_id, "ann", "keeps coming back under new accounts", cfg, now=at)
    row = _row(any_store, case_id)
    assert row["queue"] == cfg.escalation_queue and row["created_at"] == T0  # creation kept
    assert row["due_at"] == at + dt.timedelta(hours=24)  # the escalation's own P2 window
    assert row["meta"]["due_before_escalation"] == (T0 + dt.timedelta(hours=24)).isoformat()
    assert row["meta"]["terms"]["urgency"] == 0.0 and "SLA used" not in row["priority_reason"]  # was 83%
    sweep(any_store, taxonomy, cfg, now=at + dt.timedelta(hours=12))
    assert "(50% of P2 SLA used)" in _row(any_store, case_id)["priority_reason"]
    shown = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings,
                          now=at + dt.timedelta(hours=12))
    assert shown["case"]["created_at"] == T0.isoformat() and shown["case"]["escalated_at"] == at.isoformat()
    assert shown["minutes_left"] == 720.0


def test_a_raise_within_the_escalation_queue_restarts_the_clock_and_never_extends_it(any_store, taxonomy, cfg):
    case_id = _harassment_case(any_store, taxonomy, cfg)
    at = T0 + dt.timedelta(hours=1)
    escalate(any_store, taxonomy, case_id, "ann", "threatens to find them", cfg, now=at)
    later = at + dt.timedelta(hours=2)
    claim_case(any_store, case_id, "lead", cfg, now=later)
    escalate(any_store, taxonomy, case_id, "lead", "names their street: P0", cfg, severity="P0", now=later)
    row = _row(any_store, case_id)
    assert row["due_at"] == later + dt.timedelta(minutes=30)
    assert row["meta"]["features"]["escalated_at"] == later.isoformat()
    assert row["meta"]["escalation_opened_at"] == at.isoformat()  # the same open escalation
    # At the P2 tier again (a less strict word): the P0 due time stays.
    escalate(any_store, taxonomy, case_id, "bob", "still there", cfg, now=later + dt.timedelta(minutes=5))
    assert _row(any_store, case_id)["due_at"] == later + dt.timedelta(minutes=30)


# -- 2. one packet per open escalation -------------------------------------------------------------
def _packet_files(store):
    folder = store.path("packets", "x").parent
    return sorted(p.name for p in folder.glob("case-*.json")) if folder.exists() else []


def test_a_retried_or_repeated_escalation_files_one_packet(any_store, taxonomy, cfg, review_settings,
                                                           campaign_settings):
    case_id = _harassment_case(any_store, taxonomy, cfg)
    args = (any_store, taxonomy, case_id, "ann", "keeps coming back", cfg, review_settings, campaign_settings)
    first = escalate_with_packet(*args)
    updated = _row(any_store, case_id)["updated_at"]
    again = escalate_with_packet(*args)  # a double submit / retry
    assert again["packet_path"] == first["packet_path"] and again["filed"] is False
    assert again["packet"]["summary"] == first["packet"]["summary"]
    assert _row(any_store, case_id)["updated_at"] == updated  # the retry wrote nothing
    assert _events(any_store, "case.escalate", case_id) == 1
    # A senior claims it and escalates it again: still the one open escalation, the one packet.
    claim_case(any_store, case_id, "lead", cfg)
    third = escalate_with_packet(any_store, taxonomy, case_id, "lead", "needs legal", cfg, review_settings,
                                 campaign_settings)
    assert third["packet_path"] == first["packet_path"] and _row(any_store, case_id)["state"] == "escalated"
    assert len(_packet_files(any_store)) == 1 and _events(any_store, "escalation.packet", case_id) == 1


def test_a_new_escalation_after_the_first_ended_files_a_new_packet(any_store, taxonomy, cfg, review_settings,
                                                                   campaign_settings):
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"claim your prize {i}"}
                                           for i in range(3)])
    add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cases = {r.item_id if r.campaign_id is None else "campaign": r.id
                 for r in conn.execute(select(Case.id, Case.item_id, Case.campaign_id))}
    first = escalate_with_packet(any_store, taxonomy, cases["m1"], "ann", "a bank's name", cfg, review_settings,
                                 campaign_settings)
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg)  # m1's escalation ends: covered
    assert _row(any_store, cases["m1"])["meta"]["covered_by"] == cases["campaign"]
    args = (any_store, taxonomy, cases["m1"], "ann", "a bank's name and a deadline", cfg, review_settings,
            campaign_settings)
    second = escalate_with_packet(*args)
    assert second["filed"] is True and second["packet_path"] != first["packet_path"]
    entries = _row(any_store, cases["campaign"])["meta"]["item_escalations"]
    retry = escalate_with_packet(*args)
    assert retry["packet_path"] == second["packet_path"] and retry["filed"] is False
    assert _row(any_store, cases["campaign"])["meta"]["item_escalations"] == entries  # not listed twice
    assert len(_packet_files(any_store)) == 2


def test_two_sessions_escalating_one_case_at_once_file_one_packet(any_store, taxonomy, cfg, review_settings,
                                                                  campaign_settings, monkeypatch):
    case_id = _harassment_case(any_store, taxonomy, cfg)
    both_built, original = meeting(), packets.escalation_packet

    def built_then_wait(*a, **k):
        out = original(*a, **k)
        both_built()  # both sessions read the case as not escalated before either escalates it
        return out
    monkeypatch.setattr(packets, "escalation_packet", built_then_wait)
    outs = at_once(*(lambda who=who: escalate_with_packet(any_store, taxonomy, case_id, who, "keeps coming back",
                                                          cfg, review_settings, campaign_settings)
                     for who in ("ann", "bob")))
    assert not [o for o in outs if isinstance(o, Exception)], outs
    assert outs[0]["packet_path"] == outs[1]["packet_path"] and sorted(o["filed"] for o in outs) == [False, True]
    assert len(_packet_files(any_store)) == 1 and _events(any_store, "escalation.packet", case_id) == 1


# -- 3. a champion whose labels left the taxonomy ----------------------------------------------------
def test_score_ids_refuses_a_champion_whose_labels_left_the_taxonomy(any_store, taxonomy, queue_config):
    store, champ, _ = make_loop(any_store, taxonomy, queue_config)
    fresh = add_items(store, ["a new message to score", "another one"], [None, None], prefix="fresh")
    shrunk = taxonomy.model_copy(update={"policies": {k: v for k, v in taxonomy.policies.items()
                                                      if k != "harassment"}})
    with store.read() as conn:
        before = conn.execute(select(func.count()).select_from(Prediction)).scalar()
    with pytest.raises(RegistryError) as err:
        score_ids(store, shrunk, MODELS, champ, fresh, False, lambda n: None)
    msg = str(err.value)
    assert champ in msg and "'harassment'" in msg and "\n" not in msg
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar() == before
    assert score_ids(store, taxonomy, MODELS, champ, fresh, False, lambda n: None) == 2  # the current taxonomy scores
