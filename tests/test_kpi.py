"""Operations KPIs: the pure functions on hand-made arrays, and `ops_kpis` on a small store."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from evaluation import ops
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.queue_config import load_queue_config
from core.config import config_dir

from test_queue_support import T0, add_scored

NAN = math.nan


def test_sla_compliance_met_missed_pending():
    # due at 100; resolved at 50 (met), 150 (missed), never with now past due (missed), never (pending)
    out = ops.sla_compliance(["P1", "P1", "P1", "P2", None], [100, 100, 100, 500, 100], [50, 150, NAN, NAN, 10], now=200)
    assert out["P1"] == {"cases": 3, "met": 1, "missed": 2, "pending": 0, "rate": pytest.approx(1 / 3)}
    assert out["P2"] == {"cases": 1, "met": 0, "missed": 0, "pending": 1, "rate": None}
    assert set(out) == {"P1", "P2"}  # untiered cases are not counted


def test_median_minutes_skips_missing():
    assert ops.median_minutes([0, 0, 0, 0], [60, 180, NAN, 600]) == 3.0
    assert ops.median_minutes([0], [NAN]) is None


def test_rework_rate_follows_chains_and_ignores_confirmations():
    ids = [1, 2, 3, 4, 5, 6]
    supersedes = [None, None, None, 1, 2, 4]
    labels = ["scam", "spam", "hate", "scam", "benign", "benign"]
    actions = ["remove", "remove", "remove", "remove", "no_action", "no_action"]
    # 4 confirms 1 (same), then 6 changes 4 -> the chain from 1 was reworked; 2 changed by 5; 3 untouched
    assert ops.rework_rate(ids, supersedes, labels, actions) == pytest.approx(2 / 3)
    assert ops.rework_rate([], [], [], []) is None


def test_small_rates_and_counts():
    assert ops.appeals_upheld_rate(["reverse", "confirm", None, "confirm"]) == pytest.approx(1 / 3)
    assert ops.appeals_upheld_rate([None]) is None
    assert ops.rate([True, False, False, False]) == 0.25 and ops.rate([]) is None
    assert ops.per_analyst(["a", "b", "a", "a"], [1, 2, 3, 3]) == {"a": 2, "b": 1}
    assert ops.harm_exposure([1.0, 2.0, 0.5], [20, 5, 100]) == 80.0
    vol = ops.queue_volume(["q1", "q1", "q2"], ["open", "decided", "claimed"])
    assert vol == {"q1": {"total": 2, "backlog": 1, "open": 1, "decided": 1},
                   "q2": {"total": 1, "backlog": 1, "claimed": 1}}


def test_ops_kpis_from_the_store(any_store, taxonomy):
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(any_store, taxonomy, [
        {"id": "s1", "label": "scam", "p": 0.9}, {"id": "s2", "label": "scam", "p": 0.8},
        {"id": "h1", "label": "hate", "p": 0.9, "surface": "post"}, {"id": "sp", "label": "spam", "p": 0.9},
        {"id": "t", "label": "harassment", "p": 0.9, "text": "we will kill them"},
    ])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c1 = next_case(any_store, "ann", "fraud", now=T0 + dt.timedelta(minutes=10), config=cfg)
    DEC.decide(any_store, taxonomy, c1["id"], "ann", "scam", now=T0 + dt.timedelta(minutes=30), config=cfg)
    c2 = next_case(any_store, "bob", "fraud", now=T0 + dt.timedelta(minutes=20), config=cfg)
    DEC.decide(any_store, taxonomy, c2["id"], "bob", "spam", "remove", rationale="ad", config=cfg,
               now=T0 + dt.timedelta(minutes=300))  # after the 240-minute P1 SLA
    c3 = next_case(any_store, "ann", "hate-harassment", now=T0 + dt.timedelta(minutes=40), config=cfg)
    DEC.decide(any_store, taxonomy, c3["id"], "ann", "hate", now=T0 + dt.timedelta(minutes=50), config=cfg)
    k = ops_kpis_at(any_store, T0 + dt.timedelta(hours=6), cfg)
    assert k["cases"] == 5 and k["backlog"] == 2 and k["overdue"] == 1  # the P0 threat is overdue
    assert k["queues"]["fraud"] == {"total": 2, "backlog": 0, "decided": 2}
    assert k["sla"]["P1"] == {"cases": 3, "met": 2, "missed": 1, "pending": 0, "rate": pytest.approx(2 / 3)}
    assert k["sla"]["P0"]["missed"] == 1 and k["sla"]["P3"]["pending"] == 1
    assert k["median_minutes_to_first_action"] == 20.0  # 10, 20, 40
    assert k["median_minutes_to_resolution"] == 50.0  # 30, 300, 50
    assert k["resolved_per_analyst"] == {"ann": 2, "bob": 1}
    assert k["override_rate"] == pytest.approx(1 / 3)
    assert k["escalation_rate"] == pytest.approx(1 / 5)
    assert k["rework_rate"] == 0.0 and k["appeals_upheld_rate"] is None
    hate_only = ops_kpis_at(any_store, T0 + dt.timedelta(hours=6), cfg, policy="hate")
    assert hate_only["cases"] == 1 and hate_only["resolved_per_analyst"] == {"ann": 1}
    assert ops_kpis_at(any_store, T0, cfg, surface="post")["cases"] == 1


def ops_kpis_at(store, now, cfg, **filters):
    return ops.ops_kpis(store, now=now, config=cfg, actor="lead", **filters)


def test_a_bulk_decision_counts_once_per_distinct_text(sqlite_store, taxonomy):
    from test_queue_support import add_campaign

    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    texts = ["WIN a prize call 0900", "win a  PRIZE call 0900", "claim your refund now", "Claim your refund now"]
    members = [f"w{i}" for i in range(4)]
    add_scored(sqlite_store, taxonomy, [{"id": m, "label": "spam", "p": 0.8, "text": t} for m, t in zip(members, texts)])
    add_campaign(sqlite_store, members)
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(sqlite_store, "lead", "campaigns", now=T0, config=cfg)
    DEC.decide(sqlite_store, taxonomy, camp["id"], "lead", "scam", rationale="a refund scam", now=T0, config=cfg)
    k = ops.ops_kpis(sqlite_store, now=T0, config=cfg)
    assert k["decisions"] == 4 and k["labelling_acts"] == 2  # two distinct texts, one action
    assert k["override_rate"] == 1.0
