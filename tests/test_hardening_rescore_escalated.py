"""The rescore after a promotion keeps what a human did to a case. `_refresh_round` replaced a
campaign case's features with a fresh plan's: an escalated campaign case (P0, by a lead) lost its
escalation, its escalation's SLA clock and its raised tier and risk, so the next sweep ranked it
without the ESCALATED marker, as the new model's P3 spam. An item case the refresh brought over kept
the old model's risk beside the new model's label (an escalated one never rose with the new model).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import insert

from core.schema import ModelVersion, Prediction
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.escalation import escalate, sweep
from labeling.priority import label_harm_weights, risk_scores, tier_weight
from labeling.rescore import rescore_open_cases
from test_promotion_gate import MODELS
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet, scores_for

CHAMP = "test-model-2"
AT = T0 + dt.timedelta(hours=1)          # the escalations
LATER = AT + dt.timedelta(minutes=10)    # the promotion, its rescore and the sweeps


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


_row = case_row


def _cases(store):
    return case_ids(store, lambda c: f"campaign{c}")


def _risk(taxonomy, scores):
    probs = np.array([[scores.get(lab, 0.0) for lab in taxonomy.labels]])
    return round(float(risk_scores(probs, label_harm_weights(taxonomy))[0]), 6)


def _promote(store, taxonomy, new_scores):
    """A new champion whose predictions (item id -> scores) the open cases do not carry yet."""
    with store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(
            id=CHAMP, kind="test", artifact_path="-", role="champion", labels=taxonomy.labels, created_at=AT,
            promoted_at=AT))
        conn.execute(insert(Prediction.__table__), [
            {"item_id": i, "model_version": CHAMP, "label": max(s, key=s.get), "score": max(s.values()), "scores": s,
             "uncertainty": round(1 - max(s.values()), 6), "taxonomy_version": taxonomy.version, "created_at": AT}
            for i, s in new_scores.items()])


def _rescore(store, taxonomy, cfg):
    out = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=cfg, actor="eng", progress=False,
                             now=LATER)
    assert out["champion"] == CHAMP and out["scored"] == 0 and out["stale_left"] == 0, out
    return out


KEPT = ("queue", "state", "severity", "due_at", "escalation_reason", "claimed_by")


@pytest.fixture
def escalated(any_store, taxonomy, cfg):
    """A scam wave (campaign 1, P1) escalated at P0 by a lead and a harassment message (P2)
    escalated by an analyst, both at AT; the new champion reads the wave as 60% spam (P3)
    and the message as 90% hate (P1)."""
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown"}])
    wave = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"claim your prize {i}"}
                                            for i in range(3)])
    camp = add_campaign(any_store, wave)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    ids = _cases(any_store)
    escalate(any_store, taxonomy, ids[f"campaign{camp}"], "lead", "whole wave: names a real bank", cfg,
             severity="P0", now=AT)
    escalate(any_store, taxonomy, ids["h1"], "ann", "keeps coming back", cfg, now=AT)
    new = {"h1": scores_for(taxonomy, "hate", 0.9), **{i: scores_for(taxonomy, "spam", 0.6) for i in wave}}
    return ids[f"campaign{camp}"], ids["h1"], new


def test_a_rescore_keeps_an_escalated_campaign_case_escalated(any_store, taxonomy, cfg, escalated):
    camp_case, _, new = escalated
    sweep(any_store, taxonomy, cfg, now=LATER)
    before = _row(any_store, camp_case)
    assert before["priority_reason"].startswith("ESCALATED whole wave; ")
    assert "(33% of P0 SLA used)" in before["priority_reason"] and before["severity"] == "P0"
    _promote(any_store, taxonomy, new)
    _rescore(any_store, taxonomy, cfg)
    sweep(any_store, taxonomy, cfg, now=LATER)
    after = _row(any_store, camp_case)
    assert (after["model_version"], after["predicted_label"]) == (CHAMP, "spam")  # the new prediction
    assert after["meta"]["scores"] == pytest.approx(new["m0"], abs=1e-6)
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}
    feats, was = after["meta"]["features"], before["meta"]["features"]
    for k in ("escalation", "escalated_at", "severity"):  # the lead's escalation, its clock and tier
        assert feats.get(k) == was[k], k
    assert feats["label"] == "spam" and feats["uncertainty"] == pytest.approx(0.4)
    assert feats["risk"] >= was["risk"] == tier_weight(taxonomy, "P0")  # never below what the escalation set
    assert after["priority_reason"].startswith("ESCALATED whole wave; ")
    assert "(33% of P0 SLA used)" in after["priority_reason"]  # the escalation's own 30-minute window
    assert after["priority"] >= before["priority"]


def test_an_escalated_item_cases_risk_rises_with_the_new_model(any_store, taxonomy, cfg, escalated):
    _, item_case, new = escalated
    sweep(any_store, taxonomy, cfg, now=LATER)
    before = _row(any_store, item_case)
    _promote(any_store, taxonomy, new)
    _rescore(any_store, taxonomy, cfg)
    refreshed = _row(any_store, item_case)
    sweep(any_store, taxonomy, cfg, now=LATER)
    after = _row(any_store, item_case)
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}
    feats, was = after["meta"]["features"], before["meta"]["features"]
    assert feats["escalated_at"] == was["escalated_at"] == AT.isoformat() and feats["severity"] == "P2"
    assert was["risk"] == pytest.approx(0.05525)
    assert feats["risk"] == _risk(taxonomy, new["h1"]) == pytest.approx(0.1865)  # was left at 0.05525
    assert after["priority_reason"].startswith("ESCALATED keeps coming back; ")
    assert "risk 0.186 (hate p=0.90, P2)" in after["priority_reason"]
    assert refreshed["priority"] == pytest.approx(after["priority"])  # ranked at once, not at the next sweep
    assert after["priority"] > before["priority"]


def test_an_escalated_case_never_drops_below_its_escalation(any_store, taxonomy, cfg, escalated):
    camp_case, item_case, new = escalated
    before = {c: _row(any_store, c)["meta"]["features"]["risk"] for c in (camp_case, item_case)}
    _promote(any_store, taxonomy, {i: scores_for(taxonomy, "benign", 0.99) for i in new})  # all benign now
    _rescore(any_store, taxonomy, cfg)
    for c in (camp_case, item_case):
        row = _row(any_store, c)
        assert row["predicted_label"] == "benign" and row["state"] == "escalated"
        assert row["meta"]["features"]["risk"] == pytest.approx(before[c]), c


def test_a_claimed_escalated_campaign_case_is_escalated_again_when_its_lease_lapses(any_store, taxonomy, cfg,
                                                                                  escalated):
    camp_case, _, new = escalated
    claim_case(any_store, camp_case, "lee", cfg, now=AT + dt.timedelta(minutes=1))
    _promote(any_store, taxonomy, new)
    _rescore(any_store, taxonomy, cfg)
    held = _row(any_store, camp_case)
    assert (held["state"], held["claimed_by"], held["model_version"]) == ("claimed", "lee", CHAMP)
    lapsed = AT + dt.timedelta(minutes=1, seconds=cfg.lease_seconds + 1)
    sweep(any_store, taxonomy, cfg, now=lapsed)
    row = _row(any_store, camp_case)
    assert (row["state"], row["queue"], row["severity"]) == ("escalated", cfg.escalation_queue, "P0")
    assert row["meta"]["features"]["escalation"] == "whole wave" and row["meta"]["features"]["severity"] == "P0"
    assert row["priority_reason"].startswith("ESCALATED whole wave; ") and "of P0 SLA used" in row["priority_reason"]


def test_a_claimed_item_case_gets_the_new_models_risk(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "h2", "label": "harassment", "p": 0.9, "text": "you are a fool"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = _cases(any_store)["h2"]
    claim_case(any_store, case_id, "ann", cfg, now=AT)  # held: the refresh, not the re-plan, brings it over
    new = scores_for(taxonomy, "hate", 0.9)
    _promote(any_store, taxonomy, {"h2": new})
    _rescore(any_store, taxonomy, cfg)
    row = _row(any_store, case_id)
    assert (row["state"], row["claimed_by"], row["predicted_label"]) == ("claimed", "ann", "hate")
    assert row["meta"]["features"]["risk"] == _risk(taxonomy, new)  # was the old model's 0.05525
    sweep(any_store, taxonomy, cfg, now=AT + dt.timedelta(seconds=cfg.lease_seconds + 1))  # ann's lease lapses
    assert "risk 0.186 (hate p=0.90, P1)" in _row(any_store, case_id)["priority_reason"]  # the new label's tier


def test_a_rescore_leaves_an_appealed_decided_case_as_it_was_decided(any_store, taxonomy, cfg):
    """The decided case whose decision is under appeal (state `appealed`) was rewritten with the new
    champion's label, scores and features: the record of what the model said when it was decided."""
    from labeling.appeals import appeal
    from labeling.claims import next_case
    from labeling.decisions import decide

    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "text": "claim your prize a"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    decide(any_store, taxonomy, c["id"], "ann", "scam", "block_sender", rationale="prize lure",
           now=T0 + dt.timedelta(minutes=5), config=cfg)
    filed = appeal(any_store, "a", "user-1", "this was my bank", taxonomy, now=AT, config=cfg)
    decided = _row(any_store, c["id"])
    assert decided["state"] == "appealed"
    _promote(any_store, taxonomy, {"a": scores_for(taxonomy, "benign", 0.95)})
    _rescore(any_store, taxonomy, cfg)
    assert _row(any_store, c["id"]) == decided  # was benign / test-model-2 / new scores and features
    now_appeal = _row(any_store, filed["id"])  # the open appeal shows the champion's prediction
    assert (now_appeal["predicted_label"], now_appeal["model_version"]) == ("benign", CHAMP)
    assert now_appeal["meta"]["appeal"] == filed["meta"]["appeal"]  # its evidence: what was decided on
