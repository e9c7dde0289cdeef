"""Appeals and escalation attacked (12-07): the appellant resolving their own appeal (a lead filing
for a user, or an account that is both), and an appeal's SLA clock started at the item's arrival
(the original case's `arrived_at`), so a fresh appeal of an old item showed its SLA already spent."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from core.schema import Decision
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.priority import ARRIVED_AT
from sqlalchemy import func, select
from test_queue_support import T0, add_scored


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _decided(store, taxonomy, cfg, built=T0) -> dict:
    """ann decided item "a" (ingested at T0, cased at `built`) scam / block_sender."""
    add_scored(store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "text": "claim your prize"}])
    build_cases(store, taxonomy, cfg, now=built, progress=False)
    own = next_case(store, "ann", "fraud", now=built, config=cfg)
    return DEC.decide(store, taxonomy, own["id"], "ann", "scam", "block_sender", rationale="prize lure",
                      now=built, config=cfg)


def _appeal_decisions(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(Decision).where(Decision.kind == "appeal")).scalar()


def test_the_appellant_never_resolves_their_own_appeal(any_store, taxonomy, cfg):
    _decided(any_store, taxonomy, cfg)
    filed = APP.appeal(any_store, "a", "lee", "it was my own bank's notice", taxonomy, now=T0, config=cfg)
    with pytest.raises(DecisionError, match="lee filed appeal case .*separation of duties"):
        APP.resolve_appeal(any_store, taxonomy, filed["id"], "lee", "reverse", "looks fine to me", config=cfg, now=T0)
    assert _appeal_decisions(any_store) == 0
    out = APP.resolve_appeal(any_store, taxonomy, filed["id"], "bob", "reverse", "genuine bank notice",
                             config=cfg, now=T0)
    assert out["upheld"] and _appeal_decisions(any_store) == 1


def test_an_appeal_of_an_old_item_starts_its_own_sla_clock(any_store, taxonomy, cfg):
    """The item arrived at T0 and was cased two hours later (its case's clock: the arrival); the
    appeal filed ten days on owes its SLA from the filing, not from the item's arrival."""
    _decided(any_store, taxonomy, cfg, built=T0 + dt.timedelta(hours=2))
    filed_at = T0 + dt.timedelta(days=10)
    filed = APP.appeal(any_store, "a", "user-1", "it was my bank", taxonomy, now=filed_at, config=cfg)
    assert ARRIVED_AT not in filed["meta"]["features"]
    assert filed["meta"]["terms"]["urgency"] == 0.0
    assert filed["due_at"] == (filed_at + dt.timedelta(minutes=cfg.appeal_sla_minutes)).isoformat()


HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}


def test_an_escalation_reason_with_a_semicolon_is_masked_whole_on_a_masked_case(any_store, taxonomy, cfg, campaign_settings,
                                                                                 review_settings):
    """The priority reason repeats the escalation's reason up to the first "; " (`mask_case_reasons`
    masks that head): a reason with "; " in it left its tail, quoting the text, unmasked."""
    from labeling.escalation import escalate
    from labeling.priority import ESCALATED
    from labeling.packets import review_packet
    from test_queue_support import case_ids

    add_scored(any_store, taxonomy, [{"id": "x", "label": "hate", "scores": HATE, "text": "you SECRETSLUR"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["x"]
    escalate(any_store, taxonomy, case_id, "ann", "threat; it says SECRETSLUR twice", cfg, now=T0)
    packet = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=T0)
    assert packet["masked"]
    assert packet["case"]["priority_reason"].startswith(ESCALATED)
    dumped = json.dumps(packet, default=str)
    assert "SECRETSLUR" not in dumped, dumped[max(0, dumped.find("SECRETSLUR") - 120):dumped.find("SECRETSLUR") + 20]


def test_an_appeal_of_a_campaign_member_shows_the_members_own_evidence(any_store, taxonomy, cfg):
    """w2 (spam 0.6) was decided scam with its campaign (scam 0.9 members): its appeal showed the
    campaign case's averaged scores and label as the model's evidence, and ranked one item's appeal
    by the wave's size and growth."""
    from test_queue_support import add_campaign

    add_scored(any_store, taxonomy, [{"id": "w1", "label": "scam", "p": 0.9}, {"id": "w2", "label": "spam", "p": 0.6},
                                     {"id": "w3", "label": "scam", "p": 0.9}])
    add_campaign(any_store, ["w1", "w2", "w3"])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(any_store, "lead", "campaigns", now=T0, config=cfg)
    DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    filed = APP.appeal(any_store, "w2", "owner", "I run a real raffle", taxonomy, config=cfg, now=T0)
    evidence = filed["meta"]["appeal"]["evidence"]
    assert evidence["model_scores"]["spam"] == pytest.approx(0.6) and evidence["campaign_id"] == camp["campaign_id"]
    assert filed["predicted_label"] == "spam" and filed["meta"]["features"]["label"] == "spam"
    assert not {"campaign_size", "campaign_growth"} & set(filed["meta"]["features"])
    assert "campaign" not in filed["priority_reason"] and "growth" not in filed["priority_reason"]
    out = APP.resolve_appeal(any_store, taxonomy, filed["id"], "bob", "reverse", "licensed raffle", config=cfg, now=T0)
    assert out["upheld"]
