"""Appeals of campaign members, escalation history and appeal/packet hardening.

1. An appeal resolved on one member of a campaign decision was sent as `appeal.resolved` with the
   campaign's id on its decision, as if the whole campaign's decision were reversed; a receiver
   keyed on it reversed every member. The event names the item only (`origin_campaign_id` is
   context), and so does one stored before the fix when it is sent (pending, retried, replayed).
2. A second escalation of a case replaced the first's reason: the first was lost from what a lead
   reads. Each escalation is appended to the case's history, shown oldest first, masked with the text.
"""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from sqlalchemy import select

from core import outbox
from core.schema import Case, Decision, OutboxEvent
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.errors import DecisionError
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case
from labeling.escalation import escalate
from labeling.packets import review_packet, show_case
from workbench.webhooks import DeliveryWorker, load_webhooks

from test_queue_support import T0, add_campaign, add_scored, case_ids
from webhook_support import SECRET, SECRET_ENV, write_config

HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _events(store, event_type):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(OutboxEvent.__table__).where(
            OutboxEvent.event_type == event_type).order_by(OutboxEvent.id)).mappings()]


def _campaign_decided(store, taxonomy, cfg, members=("w1", "w2", "w3")) -> int:
    """A campaign of `members` decided scam in bulk by lena; its campaign id."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in members])
    camp_id = add_campaign(store, list(members))
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(store, "lena", "campaigns", now=T0, config=cfg)
    assert camp["campaign_id"] == camp_id
    DEC.decide(store, taxonomy, camp["id"], "lena", "scam", now=T0, config=cfg)
    return camp_id


# -- 1. a member's appeal names the member only ---------------------------------------------------
def test_a_members_appeal_outcome_is_sent_for_that_item_not_its_campaign(any_store, taxonomy, cfg):
    camp_id = _campaign_decided(any_store, taxonomy, cfg)
    at = T0 + dt.timedelta(hours=1)
    ap = APP.appeal(any_store, "w2", "owner", "I run a licensed raffle", taxonomy, now=at, config=cfg)
    out = APP.resolve_appeal(any_store, taxonomy, ap["id"], "bob", "reverse", "licensed raffle",
                             config=cfg, now=at)
    [event] = _events(any_store, "appeal.resolved")
    data = event["payload"]
    assert event["idempotency_key"] == f"appeal.resolved:{out['decision_id']}"
    [dec] = data["decisions"]
    assert dec["item_id"] == "w2" and dec["id"] == out["decision_id"] and dec["kind"] == "appeal"
    assert dec["campaign_id"] is None and dec["origin_campaign_id"] == camp_id  # context, never the target
    assert data["scope"] == "item" and data["origin_campaign_id"] == camp_id and "campaign_id" not in data
    assert data["upheld"] is True and data["outcome"] == "reverse" and data["decision_count"] == 1
    with any_store.read() as conn:  # the stored decision keeps its campaign (training groups by it)
        assert conn.execute(select(Decision.campaign_id).where(Decision.id == out["decision_id"])).scalar() == camp_id
    # A confirmation of another member is scoped the same way.
    ap3 = APP.appeal(any_store, "w3", "owner", "same raffle", taxonomy, now=at, config=cfg)
    APP.resolve_appeal(any_store, taxonomy, ap3["id"], "bob", "confirm", "a lure", config=cfg, now=at)
    last = _events(any_store, "appeal.resolved")[-1]["payload"]
    assert [(d["item_id"], d["campaign_id"]) for d in last["decisions"]] == [("w3", None)]


class _Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, url, body, headers, timeout):
        self.bodies.append(json.loads(body))
        return 200, None


def test_an_appeal_event_stored_campaign_wide_is_sent_naming_only_its_item(any_store, taxonomy, cfg, tmp_path):
    """An event written before the fix (its decision listed with the campaign's id) is sent item
    scoped too: a pending one, or one an operator retries or replays; the stored row is left alone."""
    camp_id = _campaign_decided(any_store, taxonomy, cfg)
    old = {"case_id": 99, "outcome": "reverse", "upheld": True, "decision_count": 1,
           "decisions": [{"id": 12345, "item_id": "w2", "campaign_id": camp_id, "kind": "appeal",
                          "label": "benign", "action": "no_action"}]}
    with any_store.begin() as conn:
        outbox.enqueue(conn, "appeal.resolved", old, "appeal.resolved:12345")
    send = _Recorder()
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h")
    DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET}), rng=random.Random(1),
                   send=send).run(once=True)
    [sent] = [b for b in send.bodies if b["type"] == "appeal.resolved"]
    [dec] = sent["data"]["decisions"]
    assert dec["item_id"] == "w2" and dec["campaign_id"] is None and dec["origin_campaign_id"] == camp_id
    assert sent["data"]["scope"] == "item"
    assert _events(any_store, "appeal.resolved")[0]["payload"] == old  # nothing stored rewritten
    # campaign.decided still names its campaign: only the appeal's outcome is scoped
    [camp] = [b for b in send.bodies if b["type"] == "campaign.decided"]
    assert {d["campaign_id"] for d in camp["data"]["decisions"]} == {camp_id}


# -- 2. every escalation's reason is kept ---------------------------------------------------------
def _row(store, case_id):
    with store.read() as conn:
        return dict(conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one())


def test_a_second_escalation_keeps_the_first_reason(any_store, taxonomy, cfg, review_settings, campaign_settings):
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "scam", "p": 0.9, "text": "see you at the station"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["h1"]
    at = T0 + dt.timedelta(hours=1)
    escalate(any_store, taxonomy, case_id, "ann", "threatens to find them", cfg, now=at)
    first = _row(any_store, case_id)["meta"]["escalations"]
    later = at + dt.timedelta(hours=2)
    claim_case(any_store, case_id, "lena", cfg, now=later)
    escalate(any_store, taxonomy, case_id, "lena", "names their street: P0", cfg, severity="P0", now=later)
    kept = _row(any_store, case_id)["meta"]["escalations"]
    assert kept[:1] == first  # appended, the first entry as it was written
    assert [(e["by"], e["reason"], e["at"]) for e in kept] == [
        ("ann", "threatens to find them", at.isoformat()), ("lena", "names their street: P0", later.isoformat())]
    assert kept[1]["severity"] == "P0"
    packet = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=later)
    assert [e["reason"] for e in packet["case"]["escalations"]] == ["threatens to find them", "names their street: P0"]
    assert packet["case"]["escalation_reason"] == "names their street: P0"  # the escalation now open


def test_a_case_escalated_before_the_history_keeps_that_reason_first(any_store, taxonomy, cfg, review_settings,
                                                                     campaign_settings):
    """A case escalated (or built escalated by a criterion) before the history was kept has its one
    reason only in the column: a new escalation lists it first rather than losing it."""
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "scam", "p": 0.9, "text": "see you at the station"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["h1"]
    escalate(any_store, taxonomy, case_id, "ann", "threatens to find them", cfg, now=T0)
    row = _row(any_store, case_id)
    legacy = {k: v for k, v in row["meta"].items() if k != "escalations"}
    with any_store.begin() as conn:
        conn.execute(Case.__table__.update().where(Case.id == case_id).values(meta=legacy))
    shown = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=T0)
    assert [(e["by"], e["reason"]) for e in shown["case"]["escalations"]] == [("ann", "threatens to find them")]
    claim_case(any_store, case_id, "lena", cfg, now=T0)
    escalate(any_store, taxonomy, case_id, "lena", "needs legal", cfg, severity="P0", now=T0)
    assert [e["reason"] for e in _row(any_store, case_id)["meta"]["escalations"]] == ["threatens to find them",
                                                                                      "needs legal"]


def test_every_escalation_reason_is_masked_on_a_masked_case(any_store, taxonomy, cfg, review_settings,
                                                            campaign_settings):
    add_scored(any_store, taxonomy, [{"id": "x", "label": "hate", "scores": HATE, "text": "you SECRETSLUR"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["x"]
    escalate(any_store, taxonomy, case_id, "ann", "it says SECRETSLUR", cfg, now=T0)
    claim_case(any_store, case_id, "lena", cfg, now=T0)
    escalate(any_store, taxonomy, case_id, "lena", "now P0", cfg, severity="P0", now=T0)
    packet = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=T0)
    assert packet["masked"] and len(packet["case"]["escalations"]) == 2
    shown = show_case(any_store, case_id, review_settings)
    for out in (packet, shown):
        dumped = json.dumps(out, default=str)
        assert "SECRETSLUR" not in dumped, dumped[max(0, dumped.find("SECRETSLUR") - 120):dumped.find("SECRETSLUR") + 20]


# -- 3. an appeal's evidence quotes the text: masked with it --------------------------------------
def test_an_appeals_evidence_is_masked_with_its_text(any_store, taxonomy, cfg, review_settings, campaign_settings):
    """The appeal carries the decided case's escalation reason and priority reason (which repeats
    the reason's head) as evidence: shown raw on a masked appeal's packet and `cases show`."""
    add_scored(any_store, taxonomy, [{"id": "x", "label": "hate", "scores": HATE, "text": "you SECRETSLUR"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["x"]
    escalate(any_store, taxonomy, case_id, "ann", "SECRETSLUR aimed at a neighbour", cfg, now=T0)
    claim_case(any_store, case_id, "lena", cfg, now=T0)
    DEC.decide(any_store, taxonomy, case_id, "lena", "hate", rationale="a slur", now=T0, config=cfg)
    ap = APP.appeal(any_store, "x", "user-1", "it was a joke", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    assert "SECRETSLUR" in ap["meta"]["appeal"]["evidence"]["escalation_reason"]  # stored as it was
    packet = review_packet(any_store, taxonomy, ap["id"], review_settings, campaign_settings, now=T0)
    assert packet["masked"] and packet["appeal"]["evidence"]["escalation_reason"]
    for out in (packet, show_case(any_store, ap["id"], review_settings)):
        dumped = json.dumps(out, default=str)
        assert "SECRETSLUR" not in dumped, dumped[max(0, dumped.find("SECRETSLUR") - 120):dumped.find("SECRETSLUR") + 20]


# -- 4. one appeal waits per item; an appeal names the decision it contests -----------------------
def _decided_item(store, taxonomy, cfg, item_id="a") -> int:
    add_scored(store, taxonomy, [{"id": item_id, "label": "scam", "p": 0.9, "text": f"claim your prize {item_id}"}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    own = next_case(store, "ann", "fraud", now=T0, config=cfg)
    [dec] = DEC.decide(store, taxonomy, own["id"], "ann", "scam", "block_sender", rationale="prize lure",
                       now=T0, config=cfg)["decision_ids"]
    return dec


def test_an_appeal_escalated_from_the_appeals_queue_still_holds_the_item(any_store, taxonomy, cfg):
    """An appeal escalated before escalating appeals was refused waits in the escalation queue (the
    re-review and label-error paths count it as waiting): a second filing opened a second appeal."""
    _decided_item(any_store, taxonomy, cfg)
    first = APP.appeal(any_store, "a", "user-1", "my bank", taxonomy, now=T0, config=cfg)
    with any_store.begin() as conn:
        conn.execute(Case.__table__.update().where(Case.id == first["id"]).values(
            queue=cfg.escalation_queue, state="escalated", meta=dict(first["meta"], escalated_from=cfg.appeals_queue)))
    with pytest.raises(APP.AppealPending, match=f"already has an appeal waiting \\(case {first['id']}\\)"):
        APP.appeal(any_store, "a", "user-1", "my bank", taxonomy, now=T0, config=cfg)
    with any_store.read() as conn:
        assert conn.execute(select(Case.id).where(Case.item_id == "a", Case.id > first["id"])).first() is None


def test_an_appeal_of_a_decision_superseded_since_is_refused(any_store, taxonomy, cfg):
    """The platform appeals the decision it enforced; a lead's correction meanwhile made another the
    item's decision of record: the appeal would contest a label the user was never told of."""
    dec = _decided_item(any_store, taxonomy, cfg)
    DEC.correct(any_store, taxonomy, dec, "lena", "spam", "promo, not fraud", action="label",
                policy_ref=taxonomy.policies["spam"].policy_ref, now=T0 + dt.timedelta(minutes=10))
    with pytest.raises(DecisionError, match=rf"decision {dec} is not item 'a'.s decision of record \(decision "
                                            rf"{dec + 1} is, since\): nothing was filed"):
        APP.appeal(any_store, "a", "user-1", "my bank", taxonomy, now=T0, config=cfg, decision_id=dec)
    with any_store.read() as conn:
        assert conn.execute(select(Case.id).where(Case.queue == cfg.appeals_queue)).first() is None
    ap = APP.appeal(any_store, "a", "user-1", "not promo", taxonomy, now=T0, config=cfg, decision_id=dec + 1)
    assert ap["meta"]["appeal"]["decision"]["id"] == dec + 1
    with pytest.raises(DecisionError, match="decision_id must be a decision's id"):
        APP.appeal(any_store, "a", "user-1", "x", taxonomy, now=T0, config=cfg, decision_id="7")


def test_a_correction_of_one_members_campaign_decision_is_sent_for_that_item(any_store, taxonomy, cfg, tmp_path):
    """A lead's correction of one member's bulk decision is stored as kind "bulk" with the campaign's
    id and case (`decisions._supersede` copies them): sent so, it read as the campaign's correction."""
    camp_id = _campaign_decided(any_store, taxonomy, cfg)
    with any_store.read() as conn:
        w2 = conn.execute(select(Decision.id).where(Decision.item_id == "w2")).scalar_one()
    DEC.correct(any_store, taxonomy, w2, "bob", "spam", "only this one is promo", action="label",
                policy_ref=taxonomy.policies["spam"].policy_ref, now=T0)
    send = _Recorder()
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h")
    DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET}), rng=random.Random(1),
                   send=send).run(once=True)
    [sent] = [b["data"] for b in send.bodies if b["type"] == "decision.corrected"]
    assert [(d["item_id"], d["campaign_id"], d["origin_campaign_id"]) for d in sent["decisions"]] == [
        ("w2", None, camp_id)]
    assert sent["scope"] == "item" and list(sent["effective"]) == ["w2"]



def test_a_correction_of_one_member_is_stored_naming_that_item(any_store, taxonomy, cfg):
    """The stored event itself (what `retry`/`replay` re-send and a pull receiver reads) names the
    item: `outbox.decision_event` scopes every event but `campaign.decided`, not only the sender."""
    camp_id = _campaign_decided(any_store, taxonomy, cfg)
    with any_store.read() as conn:
        w2 = conn.execute(select(Decision.id).where(Decision.item_id == "w2")).scalar_one()
    DEC.correct(any_store, taxonomy, w2, "bob", "spam", "only this one is promo", action="label",
                policy_ref=taxonomy.policies["spam"].policy_ref, now=T0)
    [stored] = [e["payload"] for e in _events(any_store, "decision.corrected")]
    assert [(d["item_id"], d["campaign_id"], d["origin_campaign_id"]) for d in stored["decisions"]] == [
        ("w2", None, camp_id)]
    assert stored["scope"] == "item" and stored["origin_campaign_id"] == camp_id
    [bulk] = [e["payload"] for e in _events(any_store, "campaign.decided")]
    assert {d["campaign_id"] for d in bulk["decisions"]} == {camp_id}  # the campaign's own event keeps it
