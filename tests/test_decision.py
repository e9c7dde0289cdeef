"""Decisions: taxonomy validation, what the model said, closing the case, audit, append-only rows,
bulk decisions on campaigns, corrections and the label store."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from labeling import decisions as DEC
from core.labels import current_labels
from core import audit
from core.schema import Case, Decision
from labeling.cases import build_cases, case_detail, list_cases
from labeling.claims import next_case
from labeling.errors import DecisionError, QueueError
from labeling.queue_config import CalibrationSet, load_queue_config
from core.config import config_dir
from core.schema import AuditEvent

from test_queue_support import T0, add_campaign, add_scored


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _one_case(store, taxonomy, cfg, label="scam", p=0.9, **extra):
    add_scored(store, taxonomy, [{"id": "it1", "label": label, "p": p, **extra}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return list_cases(store)[0]


def test_decide_records_model_closes_case_and_audits(any_store, taxonomy, cfg):
    case = _one_case(any_store, taxonomy, cfg)
    claimed = next_case(any_store, "ann", case["queue"], now=T0, config=cfg)
    out = DEC.decide(any_store, taxonomy, claimed["id"], "ann", "scam", "block_sender", now=T0 + dt.timedelta(minutes=3),
                     config=cfg)
    assert out["state"] == "decided" and out["resolved_at"] == (T0 + dt.timedelta(minutes=3)).isoformat()
    assert out["kind"] == "review" and out["is_override"] is False
    with any_store.read() as conn:
        d = conn.execute(select(Decision.__table__)).mappings().one()
        events = conn.execute(select(AuditEvent.__table__.c.action, AuditEvent.__table__.c.payload)).all()
        assert audit.verify(conn).ok
    assert (d["label"], d["action"], d["severity"], d["policy_ref"]) == ("scam", "block_sender", "P1", "TS-FRAUD-2.1")
    assert (d["model_version"], d["model_label"], d["model_score"]) == ("test-model-1", "scam", pytest.approx(0.9))
    assert d["taxonomy_version"] == taxonomy.version and d["case_id"] == claimed["id"]
    created = [p for a, p in events if a == "decision.create"]
    assert created and created[0]["label"] == "scam" and created[0]["decisions"] == [d["id"]]
    with pytest.raises(QueueError, match="decided, not waiting"):
        DEC.decide(any_store, taxonomy, claimed["id"], "ann", "scam", config=cfg)


def test_action_must_be_allowed_for_the_policy(sqlite_store, taxonomy, cfg):
    case = _one_case(sqlite_store, taxonomy, cfg)
    with pytest.raises(DecisionError, match="action 'no_action' is not allowed for 'scam'"):
        DEC.decide(sqlite_store, taxonomy, case["id"], "ann", "scam", "no_action", config=cfg)
    with pytest.raises(DecisionError, match="unknown policy label 'fraud'"):
        DEC.decide(sqlite_store, taxonomy, case["id"], "ann", "fraud", "remove", config=cfg)
    with pytest.raises(DecisionError, match="unknown severity"):
        DEC.decide(sqlite_store, taxonomy, case["id"], "ann", "scam", "remove", severity="P9", config=cfg)
    with sqlite_store.read() as conn:
        assert conn.execute(select(Decision.__table__)).first() is None  # nothing written on a refused decision
    out = DEC.decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg)  # default action
    assert case_detail(sqlite_store, out["id"])["decisions"][0]["action"] == "block_sender"


def test_override_requires_a_rationale(any_store, taxonomy, cfg):
    case = _one_case(any_store, taxonomy, cfg)
    with pytest.raises(DecisionError, match=r"rationale is required to override the model's label \(scam -> spam\)"):
        DEC.decide(any_store, taxonomy, case["id"], "ann", "spam", "remove", config=cfg)
    out = DEC.decide(any_store, taxonomy, case["id"], "ann", "spam", "remove", rationale="advert, no lure", config=cfg)
    assert out["is_override"] is True
    with any_store.read() as conn:
        d = conn.execute(select(Decision.__table__)).mappings().one()
    assert d["is_override"] and d["model_label"] == "scam" and d["rationale"] == "advert, no lure"


def test_escalated_case_needs_rationale_and_is_kind_escalation(sqlite_store, taxonomy, cfg):
    case = _one_case(sqlite_store, taxonomy, cfg, label="harassment", p=0.8, text="i will kill you")
    assert case["queue"] == "escalation"
    with pytest.raises(DecisionError, match="escalated: a rationale is required"):
        DEC.decide(sqlite_store, taxonomy, case["id"], "esc", "harassment", "suspend_author", config=cfg)
    out = DEC.decide(sqlite_store, taxonomy, case["id"], "esc", "harassment", "suspend_author", severity="P0",
                     rationale="explicit threat", config=cfg)
    assert out["kind"] == "escalation"


def test_claimed_by_someone_else_is_refused(sqlite_store, taxonomy, cfg):
    case = _one_case(sqlite_store, taxonomy, cfg)
    next_case(sqlite_store, "ann", case["queue"], now=T0, config=cfg)
    with pytest.raises(QueueError, match="claimed by ann"):
        DEC.decide(sqlite_store, taxonomy, case["id"], "bob", "scam", now=T0, config=cfg)
    # after the lease lapses anyone may decide it
    later = T0 + dt.timedelta(seconds=cfg.lease_seconds + 1)
    assert DEC.decide(sqlite_store, taxonomy, case["id"], "bob", "scam", now=later, config=cfg)["state"] == "decided"


def test_decisions_are_append_only(any_store, taxonomy, cfg):
    case = _one_case(any_store, taxonomy, cfg)
    DEC.decide(any_store, taxonomy, case["id"], "ann", "scam", config=cfg)
    for stmt in ("UPDATE decisions SET label = 'benign'", "DELETE FROM decisions"):
        with pytest.raises(Exception, match="append-only"):
            with any_store.begin() as conn:
                conn.execute(text(stmt))


def test_audit_case_and_calibration_kinds(sqlite_store, taxonomy, cfg):
    cfg2 = cfg.model_copy(update={"qa_share": 1.0, "calibration_sets": [CalibrationSet(name="c", share=1.0, reviewers=2)]})
    _one_case(sqlite_store, taxonomy, cfg2)
    audit_case = next_case(sqlite_store, "ann", "fraud", config=cfg2)
    assert audit_case["is_audit"]
    assert DEC.decide(sqlite_store, taxonomy, audit_case["id"], "ann", "scam", config=cfg2)["kind"] == "qa_audit"
    cal = next_case(sqlite_store, "bob", "calibration", config=cfg2)
    out = DEC.decide(sqlite_store, taxonomy, cal["id"], "bob", "spam", "remove", rationale="looks like an ad", config=cfg2)
    assert out["kind"] == "calibration"
    sibling = next(r for r in list_cases(sqlite_store, queue="calibration", state="open"))
    with pytest.raises(DecisionError, match=r"already answered item 'it1' in a calibration set \(now 'c'\)"):
        DEC.decide(sqlite_store, taxonomy, sibling["id"], "bob", "scam", config=cfg2)
    # calibration answers measure agreement; they do not change the item's label
    assert current_labels(sqlite_store)["it1"]["label"] == "scam"


def test_bulk_decision_on_a_campaign(any_store, taxonomy, cfg):
    members = [f"m{i}" for i in range(6)]
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam" if i else "spam", "p": 0.8} for i, m in enumerate(members)])
    add_campaign(any_store, members)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    member_case = next_case(any_store, "ann", "fraud", now=T0, config=cfg)  # ann holds one member's own case
    camp = next_case(any_store, "lead", "campaigns", now=T0, config=cfg)
    assert camp["campaign"]["members"] == 6
    preview = DEC.bulk_preview(any_store, camp["id"], "lead", now=T0)
    assert preview["members"] == 6 and preview["held_by_others"] == {member_case["item_id"]: "ann"}
    out = DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", "block_sender", now=T0, config=cfg)
    assert out["kind"] == "bulk" and len(out["decision_ids"]) == 5
    assert out["bulk"]["skipped_held"] == [member_case["item_id"]]  # never closes a case someone else holds
    with any_store.read() as conn:
        decs = conn.execute(select(Decision.__table__).order_by(Decision.__table__.c.item_id)).mappings().all()
        states = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.state).where(Case.__table__.c.campaign_id.is_(None))).all())
    assert [d["item_id"] for d in decs] == [m for m in members if m != member_case["item_id"]]
    assert all(d["kind"] == "bulk" and d["campaign_id"] == camp["campaign_id"] for d in decs)
    assert [d["is_override"] for d in decs] == [d["item_id"] == "m0" for d in decs]  # m0's own prediction was spam
    assert states.pop(member_case["item_id"]) == "claimed" and set(states.values()) == {"decided"}
    assert member_case["id"] not in out["closed_member_cases"]
    # ann's own decision still stands on her case
    DEC.decide(any_store, taxonomy, member_case["id"], "ann", "scam", now=T0, config=cfg,
               rationale="same wave" if member_case["item_id"] == "m0" else None)
    assert set(current_labels(any_store)) == set(members)


def test_bulk_decision_supersedes_or_skips_members_already_decided(sqlite_store, taxonomy, cfg):
    members = [f"m{i}" for i in range(4)]
    add_scored(sqlite_store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in members])
    add_campaign(sqlite_store, members)
    cfg0 = cfg.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    build_cases(sqlite_store, taxonomy, cfg0, now=T0, progress=False)
    own = next_case(sqlite_store, "ann", "fraud", now=T0, config=cfg0)
    first = DEC.decide(sqlite_store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg0)["decision_ids"][0]
    camp = next_case(sqlite_store, "lead", "campaigns", now=T0, config=cfg0)
    assert DEC.bulk_preview(sqlite_store, camp["id"], "lead", now=T0)["already_decided_labels"] == {"scam": 1}
    with pytest.raises(DecisionError, match="existing must be one of"):
        DEC.decide(sqlite_store, taxonomy, camp["id"], "lead", "spam", now=T0, config=cfg0, existing="ignore")
    out = DEC.decide(sqlite_store, taxonomy, camp["id"], "lead", "spam", "remove", rationale="an advert wave",
                     now=T0, config=cfg0)
    assert len(out["decision_ids"]) == 4 and out["bulk"]["superseded"] == 1
    lab = current_labels(sqlite_store)[own["item_id"]]
    assert lab["label"] == "spam" and lab["supersedes_id"] == first  # rework is visible as a supersession


def test_bulk_decision_can_leave_decided_members_out(sqlite_store, taxonomy, cfg):
    members = [f"m{i}" for i in range(3)]
    add_scored(sqlite_store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in members])
    add_campaign(sqlite_store, members)
    cfg0 = cfg.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    build_cases(sqlite_store, taxonomy, cfg0, now=T0, progress=False)
    own = next_case(sqlite_store, "ann", "fraud", now=T0, config=cfg0)
    DEC.decide(sqlite_store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg0)
    camp = next_case(sqlite_store, "lead", "campaigns", now=T0, config=cfg0)
    out = DEC.decide(sqlite_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg0, existing="skip")
    assert len(out["decision_ids"]) == 2 and out["bulk"]["skipped_decided"] == [own["item_id"]]
    assert current_labels(sqlite_store)[own["item_id"]]["reviewer"] == "ann"


def test_correction_supersedes_and_label_store_follows(sqlite_store, taxonomy, cfg):
    case = _one_case(sqlite_store, taxonomy, cfg)
    first = DEC.decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg, now=T0)["decision_ids"][0]
    with pytest.raises(DecisionError, match="needs a rationale"):
        DEC.correct(sqlite_store, taxonomy, first, "lead", "spam", "")
    fix = DEC.correct(sqlite_store, taxonomy, first, "lead", "spam", "advert", action="remove", now=T0 + dt.timedelta(hours=1))
    assert fix["supersedes_id"] == first
    with pytest.raises(DecisionError, match=f"already superseded by {fix['decision_id']}"):
        DEC.correct(sqlite_store, taxonomy, first, "lead", "benign", "again")
    lab = current_labels(sqlite_store)["it1"]
    assert (lab["label"], lab["action"], lab["id"]) == ("spam", "remove", fix["decision_id"])
    assert lab["supersedes_id"] == first and bool(lab["is_override"])
