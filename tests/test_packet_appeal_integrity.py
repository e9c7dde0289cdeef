"""The escalation packet masks what people wrote about a masked text (its reason, the timeline's
notes, rationales and reasons), and nobody resolves an appeal on an item whose standing decisions
include one of their own (the appealed one, a correction since, an earlier appeal's outcome)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.schema import Case
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case, release
from labeling.errors import DecisionError
from labeling.masking import mask_text
from labeling.notes import add_note
from labeling.packets import escalate_with_packet
from labeling.undo import undo_last

from test_queue_support import T0, add_scored

HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _case_of(store, item_id):
    with store.read() as conn:
        return conn.execute(select(Case.id).where(Case.item_id == item_id).order_by(Case.id.desc())).scalar()


def _packet_with_history(store, taxonomy, cfg, review_settings, campaign_settings, item_id, scores, text):
    """A note, a decision undone, then an escalation whose reason quotes the text."""
    label = max(scores, key=scores.get)
    add_scored(store, taxonomy, [{"id": item_id, "label": label, "scores": scores, "text": text}])
    build_cases(store, taxonomy, cfg, progress=False)
    case = _case_of(store, item_id)
    add_note(store, "item", item_id, "author posted SECRETSLUR twice", "ann")
    claim_case(store, case, "ann", cfg)
    DEC.decide(store, taxonomy, case, "ann", label, rationale="calls them SECRETSLUR", config=cfg)
    undo_last(store, "ann", cfg, 120)
    return escalate_with_packet(store, taxonomy, case, "ann", "threat, quotes SECRETSLUR", cfg, review_settings,
                                campaign_settings)


def test_a_masked_escalation_packet_masks_its_reason_and_the_timelines_free_text(
        sqlite_store, taxonomy, cfg, review_settings, campaign_settings):
    out = _packet_with_history(sqlite_store, taxonomy, cfg, review_settings, campaign_settings, "vile", HATE,
                               "SECRETSLUR vile hateful text")
    packet = out["packet"]
    assert packet["masked"]
    assert "SECRETSLUR" not in Path(out["packet_path"]).read_text(encoding="utf-8")
    assert "SECRETSLUR" not in json.dumps(packet, ensure_ascii=False)
    assert packet["reason"] == mask_text("threat, quotes SECRETSLUR")
    by_action = {e["action"]: e for e in packet["timeline"]}
    note, made, undone = by_action["note.add"], by_action["decision.create"], by_action["decision.undo"]
    assert note["payload"]["body"] == mask_text("author posted SECRETSLUR twice")
    assert made["payload"]["rationale"] == mask_text("calls them SECRETSLUR")
    # the structure stays: who, when, what, and the ids
    assert note["actor"] == "ann" and note["ts"] and isinstance(note["payload"]["note_id"], int)
    assert made["payload"]["label"] == "hate" and made["payload"]["decisions"] == undone["payload"]["undone"]


def test_an_unmasked_escalation_packet_keeps_what_people_wrote(sqlite_store, taxonomy, cfg, review_settings,
                                                                campaign_settings):
    out = _packet_with_history(sqlite_store, taxonomy, cfg, review_settings, campaign_settings, "pills", SPAM,
                               "cheap pills here")
    packet = out["packet"]
    assert not packet["masked"] and packet["reason"] == "threat, quotes SECRETSLUR"
    by_action = {e["action"]: e for e in packet["timeline"]}
    assert by_action["note.add"]["payload"]["body"] == "author posted SECRETSLUR twice"
    assert by_action["decision.create"]["payload"]["rationale"] == "calls them SECRETSLUR"


def _ann_decided(store, taxonomy, cfg, item_id="a"):
    add_scored(store, taxonomy, [{"id": item_id, "label": "scam", "p": 0.9, "text": f"claim your prize {item_id}"}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(store, "ann", "fraud", now=T0, config=cfg)
    return DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender", rationale="prize lure",
                      now=T0 + dt.timedelta(minutes=5), config=cfg)


def test_the_appealed_decider_is_refused_after_a_lead_corrects_the_decision(any_store, taxonomy, cfg):
    dec = _ann_decided(any_store, taxonomy, cfg)
    ap = APP.appeal(any_store, "a", "user-1", "this was my bank", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    DEC.correct(any_store, taxonomy, dec["decision_ids"][0], "bob", "scam", action="block_sender",
                rationale="policy ref fix", policy_ref=taxonomy.policies["scam"].policy_ref,
                now=T0 + dt.timedelta(hours=1, minutes=30))
    when = T0 + dt.timedelta(hours=2)
    with pytest.raises(DecisionError, match=r"ann made the appealed decision .*\(separation of duties\)"):
        APP.resolve_appeal(any_store, taxonomy, ap["id"], "ann", "confirm", "still a lure", now=when, config=cfg)
    with pytest.raises(DecisionError, match=r"bob made the current decision .*\(separation of duties\)"):
        APP.resolve_appeal(any_store, taxonomy, ap["id"], "bob", "confirm", "still a lure", now=when, config=cfg)
    res = APP.resolve_appeal(any_store, taxonomy, ap["id"], "carol", "confirm", "still a lure", now=when, config=cfg)
    assert res["outcome"] == "confirm"


def test_a_reversed_decider_cannot_resolve_a_second_appeal(any_store, taxonomy, cfg):
    _ann_decided(any_store, taxonomy, cfg)
    first = APP.appeal(any_store, "a", "user-1", "my bank", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    APP.resolve_appeal(any_store, taxonomy, first["id"], "bob", "reverse", "genuine bank notice",
                       now=T0 + dt.timedelta(hours=2), config=cfg)
    second = APP.appeal(any_store, "a", "reporter-9", "it is a scam", taxonomy, now=T0 + dt.timedelta(hours=3),
                        config=cfg)
    with pytest.raises(DecisionError, match=r"ann decided item 'a' before: .*\(separation of duties\)"):
        APP.resolve_appeal(any_store, taxonomy, second["id"], "ann", "reverse", "it is a lure", label="scam",
                           action="block_sender", now=T0 + dt.timedelta(hours=4), config=cfg)
    res = APP.resolve_appeal(any_store, taxonomy, second["id"], "carol", "confirm", "bank notice",
                             now=T0 + dt.timedelta(hours=4), config=cfg)
    assert res["outcome"] == "confirm"


def test_an_undone_decision_does_not_bar_its_author(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "text": "claim your prize a"}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    case = next_case(sqlite_store, "ann", "fraud", now=T0, config=cfg)["id"]
    DEC.decide(sqlite_store, taxonomy, case, "ann", "scam", "block_sender", rationale="prize lure",
               now=T0 + dt.timedelta(minutes=5), config=cfg)
    undo_last(sqlite_store, "ann", cfg, 120, now=T0 + dt.timedelta(minutes=6))
    release(sqlite_store, case, "ann", cfg, now=T0 + dt.timedelta(minutes=7))
    claim_case(sqlite_store, case, "bob", cfg, now=T0 + dt.timedelta(minutes=8))
    DEC.decide(sqlite_store, taxonomy, case, "bob", "scam", "block_sender", rationale="prize lure",
               now=T0 + dt.timedelta(minutes=9), config=cfg)
    ap = APP.appeal(sqlite_store, "a", "user-1", "my bank", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    res = APP.resolve_appeal(sqlite_store, taxonomy, ap["id"], "ann", "confirm", "still a lure",
                             now=T0 + dt.timedelta(hours=2), config=cfg)
    assert res["outcome"] == "confirm"


def test_the_review_packet_of_an_escalated_masked_case_masks_the_reason(
        sqlite_store, taxonomy, cfg, review_settings, campaign_settings):
    """The escalated case's `escalation_reason` and the head of its `priority_reason` quoted the
    text on the Review screen of a masked case; the rest of the priority reason stays readable."""
    from labeling.packets import review_packet

    out = _packet_with_history(sqlite_store, taxonomy, cfg, review_settings, campaign_settings, "vile2", HATE,
                               "SECRETSLUR vile hateful text")
    packet = review_packet(sqlite_store, taxonomy, out["case"]["id"], review_settings, campaign_settings)
    assert packet["masked"] and "SECRETSLUR" not in json.dumps(packet, default=str)
    why = packet["case"]["priority_reason"]
    assert why.startswith("ESCALATED ") and "risk" in why
