"""Appeals: reopened in the appeals queue with the original decision and evidence; confirmed or
reversed by a new, superseding decision; the upheld rate is a KPI."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from evaluation.ops import ops_kpis
from labeling import appeals as APP
from labeling.masking import mask_text
from labeling import decisions as DEC
from core.labels import current_labels
from core.schema import Decision
from labeling.cases import build_cases, case_detail
from labeling.claims import next_case
from labeling.errors import DecisionError, QueueError
from labeling.queue_config import load_queue_config
from core.config import config_dir

from test_queue_support import T0, add_scored


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _decided(store, taxonomy, cfg, ids=("a",)):
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9, "text": f"claim your prize {i}"} for i in ids])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    out = {}
    for i in ids:
        c = next_case(store, "ann", "fraud", now=T0, config=cfg)
        out[c["item_id"]] = DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender",
                                       rationale="prize lure", now=T0 + dt.timedelta(minutes=5), config=cfg)
    return out


def test_appeal_reopens_with_decision_rationale_and_evidence(any_store, taxonomy, cfg):
    decided = _decided(any_store, taxonomy, cfg)
    when = T0 + dt.timedelta(hours=1)
    case = APP.appeal(any_store, "a", "user-1", "this was my bank", taxonomy, now=when, config=cfg)
    assert case["queue"] == "appeals" and case["state"] == "open" and case["reopened_from"] == decided["a"]["id"]
    assert case["due_at"] == (when + dt.timedelta(minutes=cfg.appeal_sla_minutes)).isoformat()
    packet = case["meta"]["appeal"]
    assert packet["appellant"] == "user-1" and packet["reason"] == "this was my bank"
    assert packet["decision"]["id"] == decided["a"]["decision_ids"][0]
    assert packet["decision"]["rationale"] == "prize lure" and packet["decision"]["label"] == "scam"
    assert packet["evidence"]["model_scores"]["scam"] == pytest.approx(0.9)
    assert packet["evidence"]["original_queue"] == "fraud"
    assert case["item"]["text"] == mask_text("claim your prize a")  # views leave the server masked
    assert case["priority_reason"].startswith(f"appeal of decision {packet['decision']['id']}")
    assert case_detail(any_store, decided["a"]["id"])["state"] == "appealed"
    with pytest.raises(DecisionError, match="already has an appeal waiting"):
        APP.appeal(any_store, "a", "user-1", "again", taxonomy, config=cfg)
    # decide() is not the way to close an appeal
    with pytest.raises(DecisionError, match="is an appeal"):
        DEC.decide(any_store, taxonomy, case["id"], "bob", "benign", config=cfg)


def test_appeal_needs_a_decision_and_a_reason(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": "undecided", "label": "scam", "p": 0.9}])
    with pytest.raises(DecisionError, match="has no decision to appeal"):
        APP.appeal(sqlite_store, "undecided", "u", "why", taxonomy, config=cfg)
    with pytest.raises(DecisionError, match="needs a reason"):
        APP.appeal(sqlite_store, "undecided", "u", " ", taxonomy, config=cfg)


def test_reversal_is_a_new_decision_and_counts_as_upheld(any_store, taxonomy, cfg):
    decided = _decided(any_store, taxonomy, cfg, ids=("a", "b"))
    ap_a = APP.appeal(any_store, "a", "user-1", "my bank", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    ap_b = APP.appeal(any_store, "b", "user-2", "not spam", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    claimed = next_case(any_store, "bob", "appeals", now=T0 + dt.timedelta(hours=2), config=cfg)
    assert claimed["id"] in (ap_a["id"], ap_b["id"])
    with pytest.raises(DecisionError, match="must change the label or the action"):
        APP.resolve_appeal(any_store, taxonomy, ap_a["id"], "bob", "reverse", "x", label="scam", action="block_sender",
                           config=cfg, now=T0 + dt.timedelta(hours=2))
    rev = APP.resolve_appeal(any_store, taxonomy, ap_a["id"], "bob", "reverse", "genuine bank notice",
                             config=cfg, now=T0 + dt.timedelta(hours=2))
    assert rev["upheld"] and rev["state"] == "decided"
    conf = APP.resolve_appeal(any_store, taxonomy, ap_b["id"], "bob", "confirm", "classic prize lure",
                              config=cfg, now=T0 + dt.timedelta(hours=2))
    assert not conf["upheld"]
    with any_store.read() as conn:
        appeal_decs = conn.execute(select(Decision.__table__).where(Decision.__table__.c.kind == "appeal").order_by(Decision.__table__.c.id)).mappings().all()
    assert [(d["label"], d["action"]) for d in appeal_decs] == [("benign", "no_action"), ("scam", "block_sender")]
    assert appeal_decs[0]["supersedes_id"] == decided["a"]["decision_ids"][0]
    assert appeal_decs[0]["model_label"] == "scam" and appeal_decs[0]["is_override"]
    labels = current_labels(any_store)
    assert labels["a"]["label"] == "benign" and labels["b"]["label"] == "scam"
    assert case_detail(any_store, decided["a"]["id"])["state"] == "decided"
    kpis = ops_kpis(any_store, now=T0 + dt.timedelta(hours=3), config=cfg)
    assert kpis["appeals"] == 2 and kpis["appeals_upheld_rate"] == 0.5
    assert kpis["appeals_sla"] == {"cases": 2, "met": 2, "missed": 0, "pending": 0, "rate": 1.0}
    assert kpis["sla"]["P1"]["cases"] == 2  # appeals keep their own SLA, not the tier's
    assert kpis["rework_rate"] == 0.5  # one of two original decisions changed on appeal
    with pytest.raises(DecisionError, match="outcome must be one of"):
        APP.resolve_appeal(any_store, taxonomy, ap_a["id"], "bob", "upheld", "x", config=cfg)


def test_appeal_of_one_member_of_a_bulk_decision(sqlite_store, taxonomy, cfg):
    from test_queue_support import add_campaign

    members = ["w1", "w2", "w3"]
    add_scored(sqlite_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in members])
    add_campaign(sqlite_store, members)
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(sqlite_store, "lead", "campaigns", now=T0, config=cfg)
    DEC.decide(sqlite_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    ap = APP.appeal(sqlite_store, "w2", "owner", "I run a real raffle", taxonomy, config=cfg, now=T0)
    assert ap["meta"]["appeal"]["decision"]["kind"] == "bulk"
    assert ap["meta"]["appeal"]["evidence"]["campaign_id"] == camp["campaign_id"]
    assert case_detail(sqlite_store, camp["id"])["state"] == "decided"  # the campaign case stays closed
    APP.resolve_appeal(sqlite_store, taxonomy, ap["id"], "bob", "reverse", "licensed raffle", label="spam",
                       action="label", config=cfg, now=T0)
    labels = current_labels(sqlite_store)
    assert labels["w2"]["label"] == "spam" and labels["w1"]["label"] == labels["w3"]["label"] == "scam"


def test_the_same_appeal_filed_twice_at_once_opens_one_case(any_store, taxonomy, cfg, monkeypatch):
    """The platform retries an appeal (a timeout, a double click): two filings read "no appeal
    waiting" at once. One opens the case; the other is refused, on PostgreSQL as on SQLite."""
    from test_queue_support import at_once, meeting

    _decided(any_store, taxonomy, cfg)
    both_read, original = meeting(), APP.current_decisions

    def read_then_meet(conn, *args, **kwargs):
        out = original(conn, *args, **kwargs)
        both_read()
        return out

    monkeypatch.setattr(APP, "current_decisions", read_then_meet)
    file = lambda: APP.appeal(any_store, "a", "user-1", "this was my bank", taxonomy, config=cfg)["id"]  # noqa: E731
    outcomes = at_once(file, file, catch=(DecisionError,))
    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    assert any("already has an appeal waiting" in str(o) for o in outcomes)
