"""Queues: routing from config, priority and its explanation, claims, leases, skip/release, QA draws,
calibration copies, escalation by criteria and by SLA, and the claim's use of its index."""
from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pytest
from sqlalchemy import select, text

from core.config import config_dir
from core.schema import Case
from labeling.cases import build_cases, case_detail, list_cases
from labeling.claims import claim_query, expired_query, next_case, release, skip
from labeling.errors import QueueError
from labeling.escalation import escalate, sweep
from labeling.priority import TERMS, priority_scores, priority_terms
from labeling.queue_config import CalibrationSet, QUEUES_FILE, Route, RouteWhen, SlaEscalation, load_queue_config
from labeling.sampling import uniform_draw
from sqlalchemy import insert
from core.config import ConfigError
from core.schema import AuditEvent

from test_queue_support import T0, add_campaign, add_scored, scores_for


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy)


def _no_sampling(cfg):
    return cfg.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _cases(store):
    with store.read() as conn:
        return {r["item_id"] if r["campaign_id"] is None else f"campaign:{r['campaign_id']}": dict(r)
                for r in conn.execute(select(Case.__table__).where(Case.__table__.c.calibration_set.is_(None))).mappings()}


# -- config --------------------------------------------------------------------------------------
def test_bundled_config_loads_and_names_known_queues(cfg, taxonomy):
    assert cfg.escalation_queue in cfg.queues and cfg.appeals_queue in cfg.queues
    assert not cfg.check_against(taxonomy)


def test_config_errors_name_file_and_field(tmp_path, taxonomy):
    bad = tmp_path / "queues.yaml"
    src = (config_dir() / QUEUES_FILE).read_text()
    bad.write_text(src.replace("- {queue: fraud, when: {policy: [scam]}}", "- {queue: fraud, when: {policy: [scamz]}}"))
    with pytest.raises(ConfigError, match=r"queues.yaml: field 'routes.1.when.policy': unknown policy 'scamz'"):
        load_queue_config(bad, taxonomy=taxonomy)
    bad.write_text(src.replace("default_queue: general", "default_queue: nowhere"))
    with pytest.raises(ConfigError, match="default_queue: 'nowhere' is not listed"):
        load_queue_config(bad)
    bad.write_text(src.replace("qa_share: 0.05", "qa_share: 1.5"))
    with pytest.raises(ConfigError, match="field 'qa_share'"):
        load_queue_config(bad)


# -- routing ---------------------------------------------------------------------------------
def test_routing_follows_config_rules(sqlite_store, taxonomy, cfg):
    cfg = _no_sampling(cfg).model_copy(update={"routes": [
        Route(queue="spam", when=RouteWhen(language=["es"])),
        Route(queue="hate-harassment", when=RouteWhen(surface=["comment"], severity=["P1", "P2"])),
        *cfg.routes]})
    add_scored(sqlite_store, taxonomy, [
        {"id": "scam1", "label": "scam", "p": 0.9},
        {"id": "spam1", "label": "spam", "p": 0.8},
        {"id": "hate1", "label": "hate", "p": 0.7},
        {"id": "ben_sure", "label": "benign", "p": 0.97},
        {"id": "ben_unsure", "label": "benign", "p": 0.55},
        {"id": "es1", "label": "scam", "p": 0.9, "meta": {"language": "es"}},
        {"id": "comment_scam", "label": "scam", "p": 0.9, "surface": "comment"},
    ])
    summary = build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False, chunk_size=3)  # 3 transactions
    assert summary["cases"] == 7
    got = {k: v["queue"] for k, v in _cases(sqlite_store).items()}
    assert got == {"scam1": "fraud", "spam1": "spam", "hate1": "hate-harassment", "ben_sure": "low-risk",
                   "ben_unsure": "general", "es1": "spam", "comment_scam": "hate-harassment"}
    # idempotent: a second build adds nothing
    assert build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)["cases"] == 0


def test_due_time_from_the_tier_sla(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": "s", "label": "scam", "p": 0.9}, {"id": "h", "label": "harassment", "p": 0.9},
                                        {"id": "b", "label": "benign", "p": 0.99}])
    build_cases(sqlite_store, taxonomy, _no_sampling(cfg), now=T0, progress=False)
    cases = _cases(sqlite_store)
    assert cases["s"]["severity"] == "P1" and cases["s"]["due_at"] == T0 + dt.timedelta(minutes=240)
    assert cases["h"]["severity"] == "P2" and cases["h"]["due_at"] == T0 + dt.timedelta(minutes=1440)
    assert cases["b"]["severity"] == cfg.benign_tier


# -- priority --------------------------------------------------------------------------------
def test_priority_orders_by_severity_weighted_risk_and_explains(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [
        {"id": "hate", "label": "hate", "p": 0.9}, {"id": "harass", "label": "harassment", "p": 0.95},
        {"id": "spam", "label": "spam", "p": 0.99}, {"id": "benign", "label": "benign", "p": 0.99},
    ])
    build_cases(sqlite_store, taxonomy, _no_sampling(cfg), now=T0, progress=False)
    rows = list_cases(sqlite_store, limit=0)
    assert [r["item_id"] for r in rows] == ["hate", "harass", "spam", "benign"]
    top = rows[0]
    reason = top["priority_reason"]
    assert reason.startswith(f"{top['priority']:.3f} = risk ")
    assert "hate p=0.90, P1" in reason and "\n" not in reason


def test_priority_terms_respond_to_each_signal(cfg):
    base = dict(risk=0.2, uncertainty=0.1, campaign_size=0, campaign_growth=0.0, reports=0, urgency=0.0, tier_weight=0.2)
    p0 = float(priority_scores(cfg.priority, **base))
    for key, value in (("risk", 0.5), ("uncertainty", 0.9), ("campaign_size", 50), ("campaign_growth", 0.5),
                       ("reports", 5), ("urgency", 0.9)):
        assert float(priority_scores(cfg.priority, **{**base, key: value})) > p0, key
    terms = priority_terms(cfg.priority, **{**base, "reports": 5})
    assert set(terms) == set(TERMS)
    assert np.isclose(sum(float(v) for v in terms.values()), float(priority_scores(cfg.priority, **{**base, "reports": 5})))
    # vectorised: the same function ranks many cases at once
    many = priority_scores(cfg.priority, risk=np.array([0.1, 0.9, 0.5]), uncertainty=0.0)
    assert list(np.argsort(-many, kind="stable")) == [1, 2, 0]


def test_user_reports_and_campaign_size_raise_priority_with_reason(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [
        {"id": "quiet", "label": "scam", "p": 0.8},
        {"id": "reported", "label": "scam", "p": 0.8, "meta": {"reports": 12}},
        *[{"id": f"wave{i}", "label": "scam", "p": 0.8} for i in range(5)],
    ])
    add_campaign(sqlite_store, [f"wave{i}" for i in range(5)], added_at=T0 - dt.timedelta(days=3))
    build_cases(sqlite_store, taxonomy, _no_sampling(cfg), now=T0, progress=False)
    c = _cases(sqlite_store)
    assert c["reported"]["priority"] > c["quiet"]["priority"]
    assert "12 user reports" in c["reported"]["priority_reason"]
    assert c["wave0"]["priority"] > c["quiet"]["priority"]
    assert "campaign" in c["wave0"]["priority_reason"] and "(5 items)" in c["wave0"]["priority_reason"]
    assert c["campaign:1"]["queue"] == "campaigns"


def test_urgency_rises_as_the_deadline_nears_and_sweep_refreshes(any_store, taxonomy, cfg):
    cfg = _no_sampling(cfg).model_copy(update={"sla_escalation": SlaEscalation(tiers=[])})
    add_scored(any_store, taxonomy, [{"id": "s", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    before = _cases(any_store)["s"]["priority"]
    out = sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=180))
    after = _cases(any_store)["s"]
    assert out["reprioritised"] == 1 and after["priority"] > before
    assert "75% of P1 SLA used" in after["priority_reason"]


# -- QA audit and calibration ----------------------------------------------------------------------
def test_audit_share_is_uniform_within_tolerance(sqlite_store, taxonomy, cfg):
    cfg = cfg.model_copy(update={"qa_share": 0.1, "calibration_sets": []})
    specs = [{"id": f"s{i}", "label": "scam", "p": 0.5 + 0.5 * (i % 100) / 100} for i in range(2000)]
    specs += [{"id": f"h{i}", "label": "harassment", "p": 0.9} for i in range(2000)]
    add_scored(sqlite_store, taxonomy, specs)
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = list(_cases(sqlite_store).values())
    for queue in ("fraud", "hate-harassment"):
        flags = [c["is_audit"] for c in cases if c["queue"] == queue]
        assert len(flags) == 2000
        assert abs(statistics.mean(flags) - 0.1) < 0.025  # > 3.5 binomial standard deviations
    # blind to the model: the audit share among confident and unsure scams is alike
    scams = [c for c in cases if c["queue"] == "fraud"]
    hi = [c["is_audit"] for c in scams if c["meta"]["scores"]["scam"] >= 0.75]
    lo = [c["is_audit"] for c in scams if c["meta"]["scores"]["scam"] < 0.75]
    assert abs(statistics.mean(hi) - statistics.mean(lo)) < 0.05


def test_uniform_draw_is_uniform_and_reproducible():
    draws = np.array([uniform_draw(f"item{i}", "salt") for i in range(20000)])
    hist, _ = np.histogram(draws, bins=10, range=(0, 1))
    assert np.all(np.abs(hist / len(draws) - 0.1) < 0.01)
    assert uniform_draw("x", "salt") == uniform_draw("x", "salt") != uniform_draw("x", "other")


def test_calibration_copies_go_to_distinct_analysts(any_store, taxonomy, cfg):
    cfg = cfg.model_copy(update={"qa_share": 0.0, "calibration_sets": [CalibrationSet(name="cal", share=1.0, reviewers=3)]})
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}, {"id": "b", "label": "hate", "p": 0.9}])
    summary = build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    assert summary["calibration_copies"] == 6
    got = {name: [] for name in ("ann", "bob", "cy", "dee")}
    for name in got:
        while (c := next_case(any_store, name, "calibration", now=T0, config=cfg)) is not None:
            got[name].append(c["item_id"])
    for name in ("ann", "bob", "cy"):
        assert sorted(got[name]) == ["a", "b"]  # one copy of each item, never two
    assert got["dee"] == []  # three reviewers per item, all taken


# -- claims --------------------------------------------------------------------------------------
def test_next_case_claims_best_first_and_never_twice(any_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": f"x{i}", "label": "scam", "p": 0.5 + i / 20} for i in range(10)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    claimed = []
    for i in range(10):
        c = next_case(any_store, f"analyst{i % 3}", "fraud", now=T0, config=cfg)
        assert c["state"] == "claimed" and c["claimed_by"] == f"analyst{i % 3}"
        assert c["lease_expires_at"] == (T0 + dt.timedelta(seconds=cfg.lease_seconds)).isoformat()
        claimed.append(c["item_id"])
    assert claimed == [f"x{i}" for i in range(9, -1, -1)]
    assert next_case(any_store, "late", "fraud", now=T0, config=cfg) is None
    with pytest.raises(QueueError, match="unknown queue"):
        next_case(any_store, "ann", "nope", config=cfg)


def test_expired_lease_returns_the_case(any_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": "only", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    first = next_case(any_store, "ann", "fraud", lease_seconds=60, now=T0, config=cfg)
    assert next_case(any_store, "bob", "fraud", now=T0 + dt.timedelta(seconds=59), config=cfg) is None
    again = next_case(any_store, "bob", "fraud", now=T0 + dt.timedelta(seconds=61), config=cfg)
    assert again["id"] == first["id"] and again["claimed_by"] == "bob"
    assert again["first_action_at"] == T0.isoformat()  # first touch is kept
    with any_store.read() as conn:
        actions = conn.execute(select(AuditEvent.__table__.c.action)).scalars().all()
    assert actions.count("case.claim") == 2 and "case.lease_expired" in actions
    # the first holder can no longer release what they lost
    with pytest.raises(QueueError, match="not claimed by ann"):
        release(any_store, first["id"], "ann", config=cfg)


def test_skip_and_release(any_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": "top", "label": "scam", "p": 0.95}, {"id": "second", "label": "scam", "p": 0.6}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    assert c["item_id"] == "top"
    skip(any_store, c["id"], "ann", reason="not my language", config=cfg, now=T0)
    assert next_case(any_store, "ann", "fraud", now=T0, config=cfg)["item_id"] == "second"
    assert next_case(any_store, "ann", "fraud", now=T0, config=cfg) is None  # skipped stays skipped for ann
    assert next_case(any_store, "bob", "fraud", now=T0, config=cfg)["item_id"] == "top"  # others get it
    release(any_store, c["id"], "bob", config=cfg, now=T0)
    with pytest.raises(QueueError, match="not claimed by bob"):
        release(any_store, c["id"], "bob", config=cfg, now=T0)
    assert next_case(any_store, "cy", "fraud", now=T0, config=cfg)["id"] == c["id"]


def test_claim_reads_the_index_not_a_sort(sqlite_store, cfg):
    q = claim_query(cfg, "fraud", "ann", "sqlite").compile(
        dialect=sqlite_store.engine.dialect, compile_kwargs={"literal_binds": True})
    with sqlite_store.read() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
    assert "INDEX ix_cases_claim (queue=? AND state=?)" in plan and "TEMP B-TREE" not in plan, plan


def test_lease_reclaim_reads_the_lease_index(sqlite_store):
    rows = [{"queue": "fraud", "state": "open" if i % 7 else "decided", "priority": i / 5000, "is_audit": False,
             "created_at": T0, "updated_at": T0} for i in range(5000)]
    with sqlite_store.begin() as conn:
        conn.execute(insert(Case.__table__), rows)
        conn.exec_driver_sql("ANALYZE")  # with statistics, ORDER BY id would tempt a table scan
    q = expired_query(T0, 500, "sqlite").compile(dialect=sqlite_store.engine.dialect,
                                                  compile_kwargs={"literal_binds": True})
    with sqlite_store.read() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
    assert "INDEX ix_cases_lease" in plan and "SCAN cases" not in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
def test_claim_uses_the_index_on_postgresql(pg_store, cfg):
    q = claim_query(cfg, "fraud", "ann", "postgresql").compile(
        dialect=pg_store.engine.dialect, compile_kwargs={"literal_binds": True})
    with pg_store.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {q}"))
    assert "ix_cases_claim" in plan and "Sort" not in plan, plan


# -- escalation --------------------------------------------------------------------------------
def test_escalation_criteria_route_to_escalation_queue(sqlite_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(sqlite_store, taxonomy, [
        {"id": "threat", "label": "harassment", "p": 0.8, "text": "I will kill you tomorrow"},
        {"id": "weak_threat", "label": "benign", "p": 0.9, "text": "I will kill you at chess",
         "scores": {"benign": 0.9, "spam": 0.02, "scam": 0.02, "hate": 0.03, "harassment": 0.03}},
        {"id": "child", "label": "benign", "p": 0.9, "text": "send underage pics"},
        *[{"id": f"big{i}", "label": "scam", "p": 0.9, "text": f"You won a prize {i}"} for i in range(30)],
        *[{"id": f"small{i}", "label": "scam", "p": 0.9} for i in range(3)],
    ])
    add_campaign(sqlite_store, [f"big{i}" for i in range(30)])
    add_campaign(sqlite_store, [f"small{i}" for i in range(3)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    c = _cases(sqlite_store)
    assert c["threat"]["queue"] == "escalation" and c["threat"]["state"] == "escalated"
    assert c["threat"]["severity"] == "P0" and c["threat"]["escalation_reason"].startswith("credible_threat")
    assert c["threat"]["due_at"] == T0 + dt.timedelta(minutes=30)
    assert c["weak_threat"]["queue"] == "low-risk"  # below the criterion's min_score
    assert c["child"]["escalation_reason"].startswith("child_safety")
    assert c["campaign:1"]["escalation_reason"].startswith("large_fraud")
    assert c["campaign:2"]["queue"] == "campaigns" and c["campaign:2"]["escalation_reason"] is None
    claimed = next_case(sqlite_store, "esc", "escalation", now=T0, config=cfg)
    assert claimed["escalation_reason"] is not None
    release(sqlite_store, claimed["id"], "esc", config=cfg, now=T0)
    assert case_detail(sqlite_store, claimed["id"])["state"] == "escalated"


def test_sla_about_to_lapse_moves_to_escalation(any_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": "p1", "label": "scam", "p": 0.9}, {"id": "p3", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    assert sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=170))["sla_escalated"] == 0
    out = sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=190))  # 50 of 240 minutes left
    assert out["sla_escalated"] == 1
    c = _cases(any_store)
    assert c["p1"]["queue"] == "escalation" and c["p1"]["escalation_reason"] == "sla: 50 of 240 minutes left on the P1 SLA"
    assert c["p1"]["first_action_at"] is None  # the system moved it; no human acted yet
    assert c["p3"]["queue"] == "spam"  # P3 is not in sla_escalation.tiers
    assert sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=200))["sla_escalated"] == 0


def test_manual_escalation_needs_a_reason_and_raises_severity(sqlite_store, taxonomy, cfg):
    cfg = _no_sampling(cfg)
    add_scored(sqlite_store, taxonomy, [{"id": "h", "label": "harassment", "p": 0.9}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    case = next_case(sqlite_store, "ann", "hate-harassment", now=T0, config=cfg)
    with pytest.raises(QueueError, match="needs a reason"):
        escalate(sqlite_store, taxonomy, case["id"], "ann", "  ", config=cfg)
    with pytest.raises(QueueError, match="claimed by ann"):
        escalate(sqlite_store, taxonomy, case["id"], "bob", "names a school", config=cfg, now=T0)
    out = escalate(sqlite_store, taxonomy, case["id"], "ann", "names a school and a date", severity="P0",
                     config=cfg, now=T0 + dt.timedelta(minutes=5))
    assert out["queue"] == "escalation" and out["state"] == "escalated" and out["severity"] == "P0"
    assert out["due_at"] == (T0 + dt.timedelta(minutes=35)).isoformat()
    assert out["priority_reason"].startswith("ESCALATED names a school and a date")


def test_list_cases_filters(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "surface": "sms"},
                                        {"id": "b", "label": "scam", "p": 0.9, "surface": "post"},
                                        {"id": "c", "label": "spam", "p": 0.9, "surface": "sms"}])
    build_cases(sqlite_store, taxonomy, _no_sampling(cfg), now=T0, progress=False)
    assert {r["item_id"] for r in list_cases(sqlite_store, policy="scam", surface="sms")} == {"a"}
    assert {r["item_id"] for r in list_cases(sqlite_store, state="open", queue="spam")} == {"c"}


def test_benign_campaign_is_not_a_campaign_case_queue_item(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": f"hi{i}", "label": "benign", "p": 0.97, "text": "sorry, call later"}
                                        for i in range(4)])
    add_campaign(sqlite_store, [f"hi{i}" for i in range(4)])
    build_cases(sqlite_store, taxonomy, _no_sampling(cfg), now=T0, progress=False)
    camp = _cases(sqlite_store)["campaign:1"]
    assert camp["queue"] == "low-risk" and camp["meta"]["campaign_case"] is True


def test_rescoring_by_a_new_model_replans_waiting_cases(any_store, taxonomy, cfg):
    from sqlalchemy import insert as sql_insert

    from core.schema import Prediction

    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}, {"id": "b", "label": "spam", "p": 0.9},
                                     {"id": "c", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    claimed = next_case(any_store, "ann", "spam", now=T0, config=cfg)
    newer = [{"item_id": i, "model_version": "test-model-2", "label": "scam", "score": 0.95,
              "scores": scores_for(taxonomy, "scam", 0.95), "uncertainty": 0.05,
              "taxonomy_version": taxonomy.version, "created_at": T0} for i in ("a", "b", "c")]
    with any_store.begin() as conn:
        conn.execute(sql_insert(Prediction.__table__), newer)
    out = build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=10), progress=False)
    assert out["cases"] == 0 and out["rescored"] == 2  # the claimed case is left to its holder
    cases = _cases(any_store)
    moved = [cases[i] for i in ("a", "b", "c") if cases[i]["id"] != claimed["id"]]
    for c in moved:
        assert (c["queue"], c["severity"], c["model_version"]) == ("fraud", "P1", "test-model-2")
        assert c["due_at"] == T0 + dt.timedelta(minutes=240) and "scam p=0.95" in c["priority_reason"]
    assert cases[claimed["item_id"]]["model_version"] == "test-model-1"
    assert build_cases(any_store, taxonomy, cfg, now=T0, progress=False)["rescored"] == 0


def test_the_champion_prediction_counts_and_unscored_by_it_still_queue(any_store, taxonomy, cfg):
    from sqlalchemy import insert as sql_insert

    from core.schema import ModelVersion, Prediction

    cfg = _no_sampling(cfg)
    add_scored(any_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}, {"id": "b", "label": "spam", "p": 0.9}])
    with any_store.begin() as conn:
        conn.execute(sql_insert(ModelVersion.__table__).values(
            id="champ-1", kind="test", artifact_path="-", role="champion", labels=taxonomy.labels, created_at=T0,
            promoted_at=T0))
        conn.execute(sql_insert(Prediction.__table__).values(
            item_id="a", model_version="champ-1", label="hate", score=0.8, scores=scores_for(taxonomy, "hate", 0.8),
            uncertainty=0.2, taxonomy_version=taxonomy.version, created_at=T0))
        conn.execute(sql_insert(Prediction.__table__).values(  # a newer challenger's opinion does not count
            item_id="a", model_version="challenger-9", label="benign", score=0.99,
            scores=scores_for(taxonomy, "benign", 0.99), uncertainty=0.01, taxonomy_version=taxonomy.version,
            created_at=T0))
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cases = _cases(any_store)
    assert (cases["a"]["predicted_label"], cases["a"]["model_version"]) == ("hate", "champ-1")
    assert (cases["b"]["predicted_label"], cases["b"]["model_version"]) == ("spam", "test-model-1")
