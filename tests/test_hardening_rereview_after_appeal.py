"""An appeal's outcome stands (12-07): a blind re-review drawn before the appeal and answered after
its resolution wrote a `qa_audit` decision superseding the appeal's outcome, which became the
item's label of record (`core.labels.record_key`: the later decision); and a campaign member's own
case left claimed beside the campaign decision (claimed while it was decided) was decided as an
ordinary review that became the label of record over the decision under appeal, then over the
appeal's outcome. Such a case now closes without a decision, its answer refused in one line."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from core.config import config_dir
from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import AuditEvent, Case, Decision
from labeling import decisions as DEC
from labeling.appeals import appeal, resolve_appeal
from labeling.cases import build_cases, campaign_case
from labeling.errors import DecisionError, QueueError
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from test_hardening_appeal_holds import _record
from test_queue_support import T0, add_campaign, add_scored

C = Case.__table__
D = Decision.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                  "calibration_sets": []})


def _case(store, case_id):
    with store.read() as conn:
        return conn.execute(select(C).where(C.c.id == case_id)).mappings().one()


def test_a_rereview_answered_after_the_appeal_leaves_its_outcome(any_store, taxonomy, cfg):
    """ann decided a (scam); lena drew it for blind re-review; the author appealed and mia reversed
    it (benign). lena's answer (scam) then superseded the appeal's outcome: a was scam again."""
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        own = conn.execute(select(C.c.id).where(C.c.item_id == "a")).scalar_one()
    DEC.decide(any_store, taxonomy, own, "ann", "scam", rationale="prize lure", now=T0, config=cfg)
    [rereview] = draw_rereviews(any_store, cfg, "lena", 5, seed=1)["case_ids"]
    filed = appeal(any_store, "a", "author", "it was a real prize", taxonomy, now=T0, config=cfg)
    resolved = resolve_appeal(any_store, taxonomy, filed["id"], "mia", "reverse", "a real prize draw",
                              label="benign", now=T0, config=cfg)
    with pytest.raises(DecisionError) as err:
        DEC.decide(any_store, taxonomy, rereview, "lena", "scam", rationale="still a lure", now=T0, config=cfg)
    said = str(err.value)
    assert said == (f"case {rereview} closed without a decision: item 'a' was appealed since it was queued, and "
                    f"its appeal's outcome (decision {resolved['decision_id']}, appeal case {filed['id']}) stands "
                    f"as its label; nothing was saved"), said
    record = _record(any_store, "a")
    assert (record["id"], record["label"]) == (resolved["decision_id"], "benign")  # the appeal's outcome stands
    case = _case(any_store, rereview)
    assert case["state"] == "decided" and case["meta"]["closed_behind_appeal"] == {
        "decision_id": resolved["decision_id"], "appeal_case_id": filed["id"], "closed_by": "lena"}
    with any_store.read() as conn:
        assert conn.execute(select(D.c.id).where(D.c.case_id == rereview)).first() is None
        assert conn.execute(select(AuditEvent.__table__.c.id).where(
            AuditEvent.__table__.c.action == "case.closed_behind_appeal")).first() is not None
    with pytest.raises(QueueError, match=rf"case {rereview} is decided, not waiting"):  # closed: it waits no more
        DEC.decide(any_store, taxonomy, rereview, "lena", "scam", rationale="again", now=T0, config=cfg)


def test_closing_a_rereview_behind_an_appeal_needs_qa_review(any_store, taxonomy, cfg, roles):
    """An analyst without `qa_review` closed the lead's re-review case by answering it."""
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        own = conn.execute(select(C.c.id).where(C.c.item_id == "a")).scalar_one()
    DEC.decide(any_store, taxonomy, own, "ann", "scam", rationale="prize lure", now=T0, config=cfg)
    [rereview] = draw_rereviews(any_store, cfg, Principal("lena", "lead"), 5, seed=1)["case_ids"]
    filed = appeal(any_store, "a", "author", "it was a real prize", taxonomy, now=T0, config=cfg)
    resolve_appeal(any_store, taxonomy, filed["id"], Principal("mia", "lead"), "reverse", "a real prize draw",
                   label="benign", now=T0, config=cfg)
    with pytest.raises(PermissionDenied, match=r"bob \(analyst\) may not qa_review case"):
        DEC.decide(any_store, taxonomy, rereview, Principal("bob", "analyst"), "scam", rationale="a lure",
                   now=T0, config=cfg)
    assert _case(any_store, rereview)["state"] == "open"


def _member_case_claimed_during_the_campaign_decision(store, taxonomy, cfg, monkeypatch) -> int:
    """ann decides a campaign of m1, m2 while bob claims m1's own case (after the decision read who
    holds what: PostgreSQL lets the claim in, and `_bulk` leaves a claimed member case to its
    holder). m1 gets the campaign's decision; bob's case stays claimed. bob's case id."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ("m1", "m2")])
    cid = add_campaign(store, ["m1", "m2"])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        bobs = conn.execute(select(C.c.id).where(C.c.item_id == "m1", C.c.campaign_id.is_(None))).scalar_one()
    plan = DEC._bulk_plan

    def plan_then_claim(conn, *args, **kwargs):
        out = plan(conn, *args, **kwargs)
        conn.execute(update(C).where(C.c.id == bobs).values(
            state="claimed", claimed_by="bob", lease_expires_at=T0 + dt.timedelta(hours=1)))
        return out

    monkeypatch.setattr(DEC, "_bulk_plan", plan_then_claim)
    DEC.decide(store, taxonomy, campaign_case(store, cid), "ann", "scam", rationale="one prize scam",
               now=T0, config=cfg)
    monkeypatch.setattr(DEC, "_bulk_plan", plan)
    assert _record(store, "m1")["kind"] == "bulk" and _case(store, bobs)["state"] == "claimed"
    return bobs


def test_a_member_case_left_open_waits_for_the_appeal(any_store, taxonomy, cfg, monkeypatch):
    """bob's answer on m1's own case became m1's label of record while its appeal waited."""
    bobs = _member_case_claimed_during_the_campaign_decision(any_store, taxonomy, cfg, monkeypatch)
    ann = _record(any_store, "m1")
    filed = appeal(any_store, "m1", "author", "not a scam", taxonomy, now=T0, config=cfg)
    with pytest.raises(DecisionError, match=rf"^item 'm1' has an appeal waiting \(case {filed['id']}\): the appeal "
                                            r"settles its label; skip this case$"):
        DEC.decide(any_store, taxonomy, bobs, "bob", "benign", rationale="a real shop", now=T0, config=cfg)
    assert _record(any_store, "m1")["id"] == ann["id"]


def test_a_member_case_left_open_leaves_the_appeals_outcome(any_store, taxonomy, cfg, monkeypatch):
    """Answered after the appeal was resolved (confirmed), bob's benign became m1's label of record."""
    bobs = _member_case_claimed_during_the_campaign_decision(any_store, taxonomy, cfg, monkeypatch)
    filed = appeal(any_store, "m1", "author", "not a scam", taxonomy, now=T0, config=cfg)
    resolved = resolve_appeal(any_store, taxonomy, filed["id"], "mia", "confirm", "a prize scam", now=T0, config=cfg)
    with pytest.raises(DecisionError, match=rf"^case {bobs} closed without a decision: item 'm1' was appealed") as err:
        DEC.decide(any_store, taxonomy, bobs, "bob", "benign", rationale="a real shop", now=T0, config=cfg)
    assert "\n" not in str(err.value)
    record = _record(any_store, "m1")
    assert (record["id"], record["label"]) == (resolved["decision_id"], "scam")
    assert _case(any_store, bobs)["state"] == "decided"
    # m2, decided by the campaign and never appealed, is untouched by any of this
    assert _record(any_store, "m2")["kind"] == "bulk"
