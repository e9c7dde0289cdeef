"""A re-plan (`build_cases` after newer predictions) keeps what people did to a waiting case.

`_replan_one` rebuilt a waiting item case from scratch: a member case folded back to its queue
under its campaign's escalated case lost `covered_by`, its escalation (reason, P0 tier, the
escalation's 30-minute window and clock) and `escalated_from`/`due_before_escalation`, and was
re-planned as the new model's P3 spam due three days after its creation; a member a criterion had
escalated went back into the escalation queue beside its campaign's case (the sweep then folded
it again and listed it twice on the campaign's case). Only the model's part may change.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from core.schema import Prediction
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.decisions import decide
from labeling.escalation import escalate, sweep
from labeling.priority import tier_weight
from labeling.undo import undo_last
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet, scores_for

NEWER = "test-model-2"
NOW = T0 + dt.timedelta(minutes=1)
LATER = T0 + dt.timedelta(minutes=10)  # the newer predictions and the re-plan
# What a person did to a case: a re-plan leaves these as they were.
KEPT = ("queue", "state", "severity", "due_at", "escalation_reason", "is_audit", "created_at")
KEPT_META = ("covered_by", "escalated_from", "escalated_by", "escalation_opened_at", "due_before_escalation")
KEPT_FEATURES = ("escalation", "escalated_at", "severity")


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


_row = case_row


def _cases(store):
    return case_ids(store)


def _wave(store, taxonomy, cfg, text="claim your prize {}"):
    ids = add_scored(store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": text.format(i)}
                                       for i in range(3)])
    add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return _cases(store)


def _newer_predictions(store, taxonomy, label="spam", p=0.6, items=("m0", "m1", "m2")):
    """A newer model's predictions (no champion: the newest is the prediction of record)."""
    s = scores_for(taxonomy, label, p)
    with store.begin() as conn:
        conn.execute(insert(Prediction.__table__), [
            {"item_id": i, "model_version": NEWER, "label": label, "score": p, "scores": s, "uncertainty": 1 - p,
             "taxonomy_version": taxonomy.version, "created_at": LATER} for i in items])
    return s


def _check_model_part_refreshed(after, new_scores):
    assert (after["model_version"], after["predicted_label"]) == (NEWER, "spam")
    assert after["meta"]["scores"] == pytest.approx(new_scores, abs=1e-6)
    assert after["meta"]["features"]["label"] == "spam"
    assert after["meta"]["features"]["uncertainty"] == pytest.approx(0.4)


def test_a_folded_escalated_member_keeps_its_escalation_through_a_replan(any_store, taxonomy, cfg):
    cases = _wave(any_store, taxonomy, cfg)
    escalate(any_store, taxonomy, cases["m1"], "ann", "names a real bank", cfg, severity="P0", now=NOW)
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg, now=NOW + dt.timedelta(minutes=1))
    before = _row(any_store, cases["m1"])
    assert (before["queue"], before["state"], before["meta"]["covered_by"]) == ("fraud", "open", cases["campaign"])
    assert before["severity"] == "P0" and before["due_at"] == NOW + dt.timedelta(minutes=30)
    camp_before = _row(any_store, cases["campaign"])
    new = _newer_predictions(any_store, taxonomy)
    out = build_cases(any_store, taxonomy, cfg, now=LATER, progress=False)
    assert out["rescored"] == 3, out  # every waiting member case moved to the newer model
    after = _row(any_store, cases["m1"])
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}  # was spam/P3, due T0 + 24 h
    assert {k: after["meta"].get(k) for k in KEPT_META} == {k: before["meta"][k] for k in KEPT_META}
    feats, was = after["meta"]["features"], before["meta"]["features"]
    assert {k: feats.get(k) for k in KEPT_FEATURES} == {k: was[k] for k in KEPT_FEATURES}
    assert feats["risk"] >= tier_weight(taxonomy, "P0")  # never below what the escalation set
    _check_model_part_refreshed(after, new)
    assert after["priority_reason"].startswith("ESCALATED names a real bank; ")
    assert "of P0 SLA used" in after["priority_reason"]  # measured on the escalation's own window
    # The sweep still leaves the covered member to its campaign's case, which keeps the P0.
    assert sweep(any_store, taxonomy, cfg, now=LATER)["sla_escalated"] == 0
    camp = _row(any_store, cases["campaign"])
    assert (camp["severity"], camp["due_at"]) == (camp_before["severity"], camp_before["due_at"]) == (
        "P0", NOW + dt.timedelta(minutes=30))
    assert _row(any_store, cases["m1"])["queue"] == "fraud"


def test_a_member_escalated_under_its_escalated_campaign_stays_covered(any_store, taxonomy, cfg):
    cases = _wave(any_store, taxonomy, cfg)
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg, now=NOW)
    escalate(any_store, taxonomy, cases["m0"], "ann", "same sender", cfg, now=NOW + dt.timedelta(minutes=1))
    before = _row(any_store, cases["m0"])
    assert before["meta"]["covered_by"] == cases["campaign"] and before["queue"] == "fraud"
    new = _newer_predictions(any_store, taxonomy)
    build_cases(any_store, taxonomy, cfg, now=LATER, progress=False)
    after = _row(any_store, cases["m0"])
    assert after["meta"].get("covered_by") == cases["campaign"]  # was dropped
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}  # was moved to the spam queue
    _check_model_part_refreshed(after, new)
    # An unfolded member follows the newer model as before.
    other = _row(any_store, cases["m2"])
    assert (other["queue"], other["severity"], other["model_version"]) == ("spam", "P3", NEWER)
    assert other["due_at"] == T0 + dt.timedelta(minutes=taxonomy.sla_minutes("P3"))


def test_a_criterion_escalated_member_folded_by_the_sweep_stays_out_of_the_escalation_queue(any_store, taxonomy,
                                                                                               cfg):
    cases = _wave(any_store, taxonomy, cfg, text="selling child pics {} dm me")  # child_safety: P0
    assert _row(any_store, cases["campaign"])["queue"] == cfg.escalation_queue
    assert sweep(any_store, taxonomy, cfg, now=NOW)["folded"] == 3
    before = {i: _row(any_store, cases[i]) for i in ("m0", "m1", "m2")}
    assert {(b["queue"], b["state"]) for b in before.values()} == {("fraud", "open")}  # its own route
    listed = len(_row(any_store, cases["campaign"])["meta"]["item_escalations"])
    new = _newer_predictions(any_store, taxonomy)
    build_cases(any_store, taxonomy, cfg, now=LATER, progress=False)
    for i, was in before.items():
        after = _row(any_store, cases[i])
        assert {k: after[k] for k in KEPT} == {k: was[k] for k in KEPT}, i  # was back in the escalation queue
        assert after["meta"].get("covered_by") == cases["campaign"]
        assert after["meta"]["features"]["escalation"] == "child_safety"
        _check_model_part_refreshed(after, new)
    assert sweep(any_store, taxonomy, cfg, now=LATER)["folded"] == 0  # nothing to fold a second time
    assert len(_row(any_store, cases["campaign"])["meta"]["item_escalations"]) == listed


def test_a_member_reopened_by_an_undone_campaign_decision_keeps_its_escalation(any_store, taxonomy, cfg):
    """The campaign decision closed the folded member; its undo re-opened it in its queue."""
    cases = _wave(any_store, taxonomy, cfg)
    escalate(any_store, taxonomy, cases["m1"], "ann", "names a real bank", cfg, severity="P0", now=NOW)
    escalate(any_store, taxonomy, cases["campaign"], "bob", "whole wave", cfg, now=NOW + dt.timedelta(minutes=1))
    before = _row(any_store, cases["m1"])
    claim_case(any_store, cases["campaign"], "lead", cfg, now=NOW + dt.timedelta(minutes=2))
    decide(any_store, taxonomy, cases["campaign"], "lead", "scam", rationale="same lure", config=cfg,
           now=NOW + dt.timedelta(minutes=3))
    assert _row(any_store, cases["m1"])["state"] == "decided"
    undo_last(any_store, "lead", cfg, 120, now=NOW + dt.timedelta(minutes=4))
    reopened = _row(any_store, cases["m1"])
    assert {k: reopened[k] for k in KEPT} == {k: before[k] for k in KEPT}
    new = _newer_predictions(any_store, taxonomy)
    build_cases(any_store, taxonomy, cfg, now=LATER, progress=False)
    after = _row(any_store, cases["m1"])
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}  # was spam/P3, no escalation
    assert {k: after["meta"].get(k) for k in KEPT_META} == {k: before["meta"][k] for k in KEPT_META}
    assert after["priority_reason"].startswith("ESCALATED names a real bank; ")
    _check_model_part_refreshed(after, new)
