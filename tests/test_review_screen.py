"""The review screen's services (issue 17): masking of every text in a packet, reveal once per
analyst, campaign announcement, lease renewal, open by id, start queue, undo, one escalation
entry per item, exposure and display settings."""
import datetime as dt
import json

import pytest
from sqlalchemy import func, insert, select, update

from core.schema import AuditEvent, Campaign, CampaignMember, Case, Decision, utcnow
from labeling import packets
from labeling.cases import build_cases, queue_status, start_queue
from labeling.claims import claim_case, next_case, renew
from labeling.decisions import decide
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate, sweep
from labeling.masking import mask_packet, mask_text
from labeling.undo import undo_last
from labeling.wellbeing import exposure, preferences, set_preferences

HATE = {"benign": 0.05, "spam": 0.0, "scam": 0.0, "hate": 0.8, "harassment": 0.15}
SPAM = {"benign": 0.05, "spam": 0.9, "scam": 0.05, "hate": 0.0, "harassment": 0.0}
SCAM = {"benign": 0.02, "spam": 0.08, "scam": 0.88, "hate": 0.01, "harassment": 0.01}
SLUR = "grubworms"  # the word no unrevealed screen may show

ITEMS = [
    {"id": "h1", "text": "they are grubworms, all of them", "author": "u2"},
    {"id": "h2", "text": "They are  GRUBWORMS, all of them", "author": "u2"},
    {"id": "h3", "text": "those grubworms again &#128545;", "author": "u3"},
    {"id": "h4", "text": "grubworms grubworms go away", "author": "u4"},
    {"id": "b1", "text": "Cheap meds, text STOP to 87121", "author": "u1"},
    {"id": "b2", "text": "Cheap meds again, text STOP to 87121", "author": "u1"},
    {"id": "s1", "text": "WINNER!! Claim your prize now, call 09061701461", "author": "u5"},
    {"id": "s2", "text": "WINNER!! Claim your prize today, call 09061701461", "author": "u6"},
    {"id": "s3", "text": "WINNER! Claim the prize, call 09061701461 now", "author": "u7"},
]
SCORES = {"h1": HATE, "h2": HATE, "h3": HATE, "h4": HATE, "b1": SPAM, "b2": SPAM, "s1": SCAM, "s2": SCAM, "s3": SCAM}


def seed(store, make_scored, taxonomy, queue_config):
    """Items, a hate campaign (h2, h3, h4: its top terms carry the slur) and a scam campaign
    (s1-s3), then the cases: the state after `workbench score` and `workbench cluster`."""
    make_scored(store, ITEMS, SCORES, build=False)
    now = utcnow()
    with store.begin() as conn:
        for exemplar, members, terms in (("reports:h2", ["reports:h2", "reports:h3", "reports:h4"],
                                          [[SLUR, 0.6], ["they", 0.2]]),
                                         ("reports:s1", ["reports:s1", "reports:s2", "reports:s3"],
                                          [["winner", 0.5], ["prize", 0.4]])):
            cid = conn.execute(insert(Campaign.__table__).values(
                exemplar_item_id=exemplar, size=len(members), first_seen=now, last_seen=now,
                entities={"phone": [{"value": "09061701461", "items": 3}]} if "s1" in exemplar else {},
                top_terms=terms, status="active", created_at=now, updated_at=now).returning(Campaign.id)).scalar_one()
            conn.execute(insert(CampaignMember.__table__), [
                {"item_id": m, "campaign_id": cid, "linked_by": "similarity", "similarity": 0.95, "added_at": now}
                for m in members])
    build_cases(store, taxonomy, queue_config, progress=False)
    return store


def case_of(store, item_id, campaign=False):
    with store.read() as conn:
        q = select(Case.id).where(Case.item_id == item_id, Case.calibration_set.is_(None))
        q = q.where(Case.campaign_id.is_not(None) if campaign else Case.campaign_id.is_(None))
        return conn.execute(q).scalar()


@pytest.fixture
def store(any_store, make_scored, taxonomy, queue_config):
    """Each service test on SQLite and on the real PostgreSQL server."""
    return seed(any_store, make_scored, taxonomy, queue_config)


def test_every_text_of_a_masked_packet_is_masked_until_revealed(store, taxonomy, queue_config, review_settings,
                                                                 campaign_settings):
    decide(store, taxonomy, case_of(store, "reports:h1"), "bob", "hate", config=queue_config,
           rationale=f"calls people {SLUR}")
    camp_case = case_of(store, "reports:h2", campaign=True)
    p = packets.review_packet(store, taxonomy, camp_case, review_settings, campaign_settings, viewer="alice")
    dumped = json.dumps(p, ensure_ascii=False).lower()
    assert p["masked"] and not p["revealed"] and SLUR not in dumped
    assert p["similar_decisions"] and p["campaign"]["top_terms"][0][0] == mask_text(SLUR)
    assert p["campaign"]["sample"] and p["author"]["recent"]
    assert "_sensitive" not in dumped
    reveal = dict(taxonomy=taxonomy, settings=review_settings)
    assert packets.reveal_text(store, camp_case, "alice", **reveal).lower().startswith("they are")
    assert packets.reveal_text(store, camp_case, "alice", **reveal)  # a second reveal is not audited again
    with store.read() as conn:
        reveals = conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "text.reveal")).scalar()
    assert reveals == 1
    shown = packets.review_packet(store, taxonomy, camp_case, review_settings, campaign_settings, viewer="alice")
    assert shown["revealed"] and SLUR in shown["item"]["text"].lower()
    assert shown["campaign"]["top_terms"][0][0] == SLUR and SLUR in json.dumps(shown["campaign"]["sample"])
    other = packets.review_packet(store, taxonomy, camp_case, review_settings, campaign_settings, viewer="carol")
    assert SLUR not in json.dumps(other, ensure_ascii=False).lower()  # revealed for alice only


def test_mask_packet_treats_unflagged_rows_as_sensitive():
    p = {"masked": False, "item": {"text": "hello there"}, "similar_decisions": [{"text": "bad words", "rationale": None}],
         "author": {"recent": [{"text": "fine words", "_sensitive": False}]}, "campaign": None, "decisions": []}
    out = mask_packet(p, revealed=False)
    assert out["item"]["text"] == "hello there" and out["similar_decisions"][0]["text"] == mask_text("bad words")
    assert out["author"]["recent"][0] == {"text": "fine words"}


def test_blind_qa_and_campaign_announcement(store, taxonomy, queue_config, review_settings, campaign_settings):
    b1 = case_of(store, "reports:b1")
    with store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == b1).values(is_audit=True, calibration_set="weekly-agreement"))
    p = packets.review_packet(store, taxonomy, b1, review_settings, campaign_settings)
    assert "is_audit" not in p["case"] and "calibration_set" not in p["case"]
    assert "audit" not in json.dumps(p["case"]).lower() and p["campaign_case"] is None
    decide(store, taxonomy, case_of(store, "reports:s2"), "bob", "scam", config=queue_config)
    cp = packets.review_packet(store, taxonomy, case_of(store, "reports:s1", campaign=True), review_settings,
                               campaign_settings, viewer="alice")
    cc = cp["campaign_case"]
    assert cc["members"] == 3 and cc["label_mix"] == {"scam": 3} and cc["already_decided"] == 1
    assert cc["will_decide"] == 3


def test_renew_extends_only_a_live_lease_of_its_holder(store, queue_config):
    got = next_case(store, "alice", "hate-harassment", queue_config, detail=False)
    before = got["lease_expires_at"]
    out = renew(store, got["id"], "alice", queue_config, now=utcnow() + dt.timedelta(seconds=5))
    assert out["lease_expires_at"] > before
    with pytest.raises(QueueError, match="no longer held by bob"):
        renew(store, got["id"], "bob", queue_config)
    with pytest.raises(QueueError, match="max_lease_seconds"):
        renew(store, got["id"], "alice", queue_config, lease_seconds=queue_config.max_lease_seconds + 1)
    late = utcnow() + dt.timedelta(seconds=queue_config.lease_seconds + 60)
    with pytest.raises(QueueError, match="lapsed"):
        renew(store, got["id"], "alice", queue_config, now=late)


def test_renew_and_open_by_id_check_permissions(store, queue_config):
    from core.hooks import PermissionDenied
    from core.permissions import load_roles
    from core.config import config_dir
    from core.principals import Principal
    from workbench.context import AppContext

    AppContext(store=store).roles()  # installs the role policy
    viewer = Principal(name="vic", role="viewer", kind="user")
    case_id = case_of(store, "reports:b1")
    with pytest.raises(PermissionDenied):
        claim_case(store, case_id, viewer, queue_config)
    assert load_roles(config_dir())
    out = claim_case(store, case_id, "alice", queue_config)
    assert out["claimed_by"] == "alice"
    with pytest.raises(PermissionDenied):
        renew(store, case_id, viewer, queue_config)
    with pytest.raises(QueueError, match="claimed by alice"):
        claim_case(store, case_id, "bob", queue_config)


def test_start_queue_prefers_escalations_then_sla_risk(store, taxonomy, queue_config):
    status = queue_status(store, queue_config)
    assert sum(s["waiting"] for s in status.values()) > 0
    first = start_queue(store, "alice", queue_config)
    assert first != queue_config.appeals_queue and status[first]["waiting"]
    escalate(store, taxonomy, case_of(store, "reports:b1"), "alice", "looks like a wave", queue_config)
    assert start_queue(store, "bob", queue_config) == queue_config.escalation_queue  # four eyes: not alice
    assert queue_status(store, queue_config)[queue_config.escalation_queue]["waiting"] >= 1


def test_undo_supersedes_reopens_and_is_audited(store, taxonomy, queue_config, review_settings):
    from core.labels import current_labels

    got = next_case(store, "alice", "spam", queue_config, detail=False)
    out = decide(store, taxonomy, got["id"], "alice", "spam", config=queue_config)
    item = out["item_id"]
    assert current_labels(store, [item])[item]["label"] == "spam"
    undone = undo_last(store, "alice", queue_config, review_settings.undo_seconds)
    assert undone["undone"] == out["decision_ids"] and current_labels(store, [item]) == {}
    with store.read() as conn:
        case = conn.execute(select(Case.state, Case.claimed_by).where(Case.id == got["id"])).one()
        rows = conn.execute(select(Decision.kind, Decision.supersedes_id).order_by(Decision.id)).all()
        audited = conn.execute(select(AuditEvent.action).where(AuditEvent.action == "decision.undo")).scalars().all()
    assert tuple(case) == ("claimed", "alice") and rows[-1] == ("undo", out["decision_ids"][0]) and audited
    with pytest.raises(DecisionError, match="nothing to undo"):
        undo_last(store, "alice", queue_config, review_settings.undo_seconds)
    decide(store, taxonomy, got["id"], "alice", "benign", rationale="a clinic reminder", config=queue_config)
    assert current_labels(store, [item])[item]["label"] == "benign"
    with pytest.raises(DecisionError, match="older than 0 seconds"):
        undo_last(store, "alice", queue_config, 0, now=utcnow() + dt.timedelta(seconds=1))


def test_undo_of_a_campaign_decision_reopens_its_members(store, taxonomy, queue_config):
    camp_case = case_of(store, "reports:s1", campaign=True)
    out = decide(store, taxonomy, camp_case, "lead", "scam", config=queue_config)
    assert len(out["decision_ids"]) == 3 and out["closed_member_cases"]
    undone = undo_last(store, "lead", queue_config, 60)
    assert sorted(undone["reopened_member_cases"]) == sorted(out["closed_member_cases"])
    with store.read() as conn:
        states = conn.execute(select(Case.state).where(Case.id.in_(out["closed_member_cases"]))).scalars().all()
    assert set(states) <= {"open", "escalated"}


def test_an_item_sits_once_in_the_escalation_queue(store, taxonomy, queue_config):
    member_case, camp_case = case_of(store, "reports:s2"), case_of(store, "reports:s1", campaign=True)
    escalate(store, taxonomy, member_case, "alice", "prize fraud", queue_config)
    escalate(store, taxonomy, camp_case, "alice", "a wave", queue_config)
    with store.read() as conn:
        esc = conn.execute(select(Case.id, Case.item_id, Case.campaign_id).where(
            Case.queue == queue_config.escalation_queue)).all()
    assert [r.id for r in esc] == [camp_case]  # the member's own entry folded under its campaign
    folded = escalate(store, taxonomy, case_of(store, "reports:s3"), "bob", "same wave", queue_config)
    assert folded["id"] == camp_case and folded["folded_from"] == case_of(store, "reports:s3")
    sweep(store, taxonomy, queue_config, now=utcnow() + dt.timedelta(days=3))
    with store.read() as conn:
        items = conn.execute(select(Case.item_id, Case.campaign_id).where(
            Case.queue == queue_config.escalation_queue, Case.state.in_(("escalated", "claimed")))).all()
        members = set(conn.execute(select(CampaignMember.item_id)).scalars())
    covered = [i for i, c in items if c is None and i in {"reports:s1", "reports:s2", "reports:s3"}]
    assert covered == []  # the SLA sweep does not put a covered member beside its campaign
    per_item = {}
    for item_id, camp in items:
        per_item[item_id] = per_item.get(item_id, 0) + 1
    assert all(n == 1 for i, n in per_item.items() if i in members)


def test_exposure_and_preferences(store, taxonomy, review_settings):
    h = case_of(store, "reports:h1")
    with store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == h).values(severity=review_settings.severe_tiers[0]))
    packets.reveal_text(store, h, "alice", taxonomy=taxonomy, settings=review_settings)
    packets.reveal_text(store, case_of(store, "reports:b1"), "alice", taxonomy=taxonomy, settings=review_settings)
    ex = exposure(store, "alice", review_settings)
    assert ex["severe"] == 1 and ex["revealed"] == 2 and not ex["over_budget"]
    assert exposure(store, "bob", review_settings)["severe"] == 0
    assert preferences(store, "alice", review_settings)["blur"] == review_settings.default_blur
    set_preferences(store, "alice", review_settings, grayscale=True)
    assert preferences(store, "alice", review_settings)["grayscale"] is True
    assert preferences(store, "bob", review_settings)["grayscale"] == review_settings.default_grayscale
    with pytest.raises(QueueError, match="unknown display setting"):
        set_preferences(store, "alice", review_settings, contrast=True)
