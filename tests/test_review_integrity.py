"""Cases that ask something other than an ordinary review stay on their own path: an appeal is
settled only by `resolve_appeal`, a label-error re-review only as that re-review; a campaign
decision closes members' ordinary cases only, and takes the members' decision locks; an appeal
does not inherit the original case's seed pin."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import insert, select, update

from core.config import config_dir
from core.labels import current_decisions
from core.principals import Principal
from core.schema import Case, Decision
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases, case_detail
from labeling.claims import next_case
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews

from test_queue_support import T0, add_campaign, add_scored

C = Case.__table__
ALICE = Principal("alice", "analyst", "user")
LEAD = Principal("lena", "lead", "user")


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _decided(store, taxonomy, cfg, who="ann", ids=("a",)):
    """Items decided by `who` from the fraud queue: item id -> the decide() view."""
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in ids])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    out = {}
    for _ in ids:
        c = next_case(store, who, "fraud", now=T0, config=cfg)
        out[c["item_id"]] = DEC.decide(store, taxonomy, c["id"], who, "scam", now=T0, config=cfg)
    return out


def _campaign(store, taxonomy, cfg, members=("m0", "m1", "m2")):
    """A campaign of `members`, each with its own case; m0's decided by ann. (m0's case, the campaign's case)."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in members])
    add_campaign(store, list(members))
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    own = next_case(store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg)
    return own, next_case(store, "lead", "campaigns", now=T0, config=cfg)


def _label_review_case(store, cfg, decision) -> int:
    """A label-error re-review case of `decision`, as `labeling.label_errors` queues it."""
    info = {"decision_id": int(decision["id"]), "given_label": decision["label"], "model_label": "spam",
            "confidence": 0.9, "given_prob": 0.1, "quality": 0.1, "flagged": True, "reviewer": decision["reviewer"],
            "found_at": T0.isoformat()}
    with store.begin() as conn:
        return int(conn.execute(insert(C).values(
            item_id=decision["item_id"], campaign_id=None, queue=cfg.label_errors.queue, state="open", priority=0.9,
            priority_reason="label error?", predicted_label="spam", due_at=None, is_audit=False, created_at=T0,
            updated_at=T0, meta={"label_error": info}).returning(C.c.id)).scalar_one())


def _escalated_before_the_fix(store, cfg, case_id) -> None:
    """A case an analyst escalated while that was still allowed (stored data from before)."""
    with store.begin() as conn:
        row = conn.execute(select(C.c.queue, C.c.meta).where(C.c.id == case_id)).one()
        conn.execute(update(C).where(C.c.id == case_id).values(
            queue=cfg.escalation_queue, state="escalated", escalation_reason="second look",
            meta=dict(row.meta or {}, escalated_from=row.queue)))


def test_an_appeal_cannot_be_escalated_to_escape_resolve_appeal(any_store, taxonomy, cfg, roles):
    _decided(any_store, taxonomy, cfg, who=ALICE)
    ap = APP.appeal(any_store, "a", "user42", "this was my bank", taxonomy, now=T0, config=cfg)
    with pytest.raises(QueueError, match=f"case {ap['id']} is an appeal: resolve it"):
        escalate(any_store, taxonomy, ap["id"], ALICE, "need a second look", cfg)
    assert case_detail(any_store, ap["id"])["queue"] == cfg.appeals_queue
    assert case_detail(any_store, ap["id"])["state"] == "open"
    with pytest.raises(DecisionError, match="is an appeal"):
        DEC.decide(any_store, taxonomy, ap["id"], ALICE, "scam", rationale="still a scam", config=cfg)


def test_an_escalated_appeal_is_still_settled_only_by_resolve_appeal(sqlite_store, taxonomy, cfg):
    decided = _decided(sqlite_store, taxonomy, cfg, who="alice")
    ap = APP.appeal(sqlite_store, "a", "user42", "this was my bank", taxonomy, now=T0, config=cfg)
    _escalated_before_the_fix(sqlite_store, cfg, ap["id"])
    with pytest.raises(DecisionError, match=f"case {ap['id']} is an appeal"):
        DEC.decide(sqlite_store, taxonomy, ap["id"], "alice", "scam", rationale="still a scam", config=cfg)
    with pytest.raises(DecisionError, match="separation of duties"):
        APP.resolve_appeal(sqlite_store, taxonomy, ap["id"], "alice", "confirm", "I was right", config=cfg)
    out = APP.resolve_appeal(sqlite_store, taxonomy, ap["id"], "lena", "reverse", "it is her bank", config=cfg)
    assert out["outcome"] == "reverse" and out["meta"]["appeal"]["resolved_by"] == "lena"
    assert case_detail(sqlite_store, decided["a"]["id"])["state"] == "decided"


def test_a_label_review_case_is_decided_only_as_that_re_review(sqlite_store, taxonomy, cfg):
    decided = _decided(sqlite_store, taxonomy, cfg)
    with sqlite_store.read() as conn:
        decision = current_decisions(conn, ["a"])["a"]
    review = _label_review_case(sqlite_store, cfg, decision)
    with pytest.raises(QueueError, match=f"case {review} re-reviews decision {decision['id']}"):
        escalate(sqlite_store, taxonomy, review, "ann", "not sure", cfg)
    assert case_detail(sqlite_store, review)["queue"] == cfg.label_errors.queue
    _escalated_before_the_fix(sqlite_store, cfg, review)  # escalated while that was still allowed
    with pytest.raises(DecisionError, match="separation of duties"):
        DEC.decide(sqlite_store, taxonomy, review, "ann", "scam", rationale="I was right", config=cfg)
    out = DEC.decide(sqlite_store, taxonomy, review, "lena", "spam", rationale="an advert", config=cfg)
    assert out["kind"] == "label_review" and out["label_review"]["outcome"] == "corrected"
    assert decided["a"]["decision_ids"][0] == decision["id"]


def test_a_campaign_decision_leaves_a_members_pending_appeal_open(any_store, taxonomy, cfg):
    own, camp = _campaign(any_store, taxonomy, cfg)
    ap = APP.appeal(any_store, own["item_id"], "user42", "this is my bank", taxonomy, now=T0, config=cfg)
    out = DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    assert ap["id"] not in out["closed_member_cases"] and len(out["closed_member_cases"]) == 2
    assert case_detail(any_store, ap["id"])["state"] == "open"
    res = APP.resolve_appeal(any_store, taxonomy, ap["id"], "lena", "reverse", "customer is right", config=cfg)
    assert res["outcome"] == "reverse"
    assert case_detail(any_store, own["id"])["state"] == "decided"


def test_a_campaign_decision_leaves_qa_and_label_review_cases_open(any_store, taxonomy, cfg):
    own, camp = _campaign(any_store, taxonomy, cfg)
    qa = draw_rereviews(any_store, cfg, "qa_lead", 1, now=T0)["case_ids"]
    with any_store.read() as conn:
        decision = current_decisions(conn, [own["item_id"]])[own["item_id"]]
    review = _label_review_case(any_store, cfg, decision)
    out = DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    assert len(qa) == 1 and len(out["closed_member_cases"]) == 2
    assert not {*qa, review} & set(out["closed_member_cases"])
    assert case_detail(any_store, qa[0])["state"] == "open" and case_detail(any_store, review)["state"] == "open"


def test_a_campaign_decision_waits_for_a_correction_of_a_member(pg_store, taxonomy, cfg, monkeypatch):
    """PostgreSQL: a correction of a member's decision made while the campaign decision is in
    flight waits for the members' decision locks; one row supersedes the corrected decision."""
    own, camp = _campaign(pg_store, taxonomy, cfg)
    with pg_store.read() as conn:
        d1 = current_decisions(conn, [own["item_id"]])[own["item_id"]]["id"]
    orig, result, started = DEC.predictions_of_record, {}, threading.Event()

    def correct() -> None:
        started.set()
        try:
            result["ok"] = DEC.correct(pg_store, taxonomy, d1, "lena", "spam", "advert, not scam", action="remove")
        except DecisionError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=correct)

    def correction_meanwhile(conn, ids):  # the campaign decision has read the members' decisions
        if not started.is_set():
            t.start()
            t.join(3)  # unlocked, the correction commits within this
        return orig(conn, ids)

    monkeypatch.setattr(DEC, "predictions_of_record", correction_meanwhile)
    DEC.decide(pg_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    t.join(30)
    with pg_store.read() as conn:
        later = conn.execute(select(Decision.kind).where(Decision.supersedes_id == d1)).scalars().all()
    assert later == ["bulk"]
    assert "already superseded" in result.get("error", "")


def test_an_appeal_does_not_inherit_the_seed_pin(sqlite_store, taxonomy, cfg):
    decided = _decided(sqlite_store, taxonomy, cfg, ids=("a", "b"))
    with sqlite_store.begin() as conn:  # "a" was decided from a cold-start seed's place at the head of its queue
        meta = conn.execute(select(C.c.meta).where(C.c.id == decided["a"]["id"])).scalar()
        feats = dict(meta["features"], seed={"priority": 5.0, "why": "cold-start seed"})
        conn.execute(update(C).where(C.c.id == decided["a"]["id"]).values(meta=dict(meta, features=feats)))
    when = T0 + dt.timedelta(hours=1)
    seeded = APP.appeal(sqlite_store, "a", "user1", "not a scam", taxonomy, now=when, config=cfg)
    plain = APP.appeal(sqlite_store, "b", "user2", "not a scam", taxonomy, now=when, config=cfg)
    assert "seed" not in seeded["meta"]["features"] and "seed" not in seeded["priority_reason"]
    assert seeded["priority"] == pytest.approx(plain["priority"])
