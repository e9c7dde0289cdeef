"""Evaluation figures that must not count what they cannot vouch for: lead re-reviews as the
traffic QA-audit sample, undone or corrected answers as judgements and agreement, non-finite
scores as "no drift", and intervals that collapse to a point on a handful of audits."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.principals import Principal
from core.schema import Case, Decision
from evaluation import analysts as an
from evaluation import data as ed
from evaluation import drift_stats as ds
from evaluation import metrics as em
from evaluation.config import load_evaluation_config
from evaluation.drift import NOT_ENOUGH, ScoreCheck, score_checks
from evaluation.drift_stats import WindowData
from evaluation.estimates import audits_needed, policy_estimates, wilson
from evaluation.overrides import override_telemetry
from evaluation.report import _audit_estimates, agreement
from labeling.cases import build_cases
from labeling.decisions import correct, decide
from labeling.queue_config import CalibrationSet, load_queue_config
from labeling.rereview import draw_rereviews
from labeling.undo import undo_last
from test_queue_support import T0, add_scored

T = dt.datetime(2026, 11, 2)
LEAD = Principal("lena", "lead")


def _cfg(taxonomy, **update):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"calibration_sets": [], "qa_share": 0.0, "qa_strata": [], **update})


def _cases(store):
    with store.read() as conn:
        return dict(conn.execute(select(Case.item_id, Case.id).where(Case.campaign_id.is_(None))).all())


def ev(i, who, kind, label, item="x1", sup=None, cal="cal"):
    return {"id": i, "case_id": i, "item_id": item, "reviewer": who, "kind": kind, "label": label, "action": label,
            "model_version": "m", "model_label": "scam", "model_score": 0.9, "is_override": label != "scam",
            "supersedes_id": sup, "created_at": T + dt.timedelta(minutes=i), "queue": "q", "calibration_set": cal}


def test_rereviews_are_not_the_traffic_audit_sample(sqlite_store, taxonomy, roles):
    cfg = _cfg(taxonomy)
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(12)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = _cases(sqlite_store)
    for i in range(12):
        decide(sqlite_store, taxonomy, cases[f"s{i}"], "ann", "scam", rationale="first look", config=cfg)
    out = draw_rereviews(sqlite_store, cfg, LEAD, 4, seed=1)
    with sqlite_store.read() as conn:
        drawn = conn.execute(select(Case.is_audit, Case.audit_inclusion, Case.meta)
                             .where(Case.id.in_(out["case_ids"]))).all()
    assert all(r.is_audit and r.audit_inclusion is None and r.meta["rereview"] for r in drawn)  # still blind
    for cid in out["case_ids"]:
        decide(sqlite_store, taxonomy, cid, LEAD, "spam", rationale="premium-rate advert", config=cfg)
    rows = ed.decision_rows(sqlite_store, taxonomy)
    assert len(rows) == 12 and sum(r["kind"] == "qa_audit" for r in rows) == 4
    audit = [r for r in rows if r["is_audit"]]
    assert audit == []  # qa_share 0: no traffic sample at all
    est = _audit_estimates(audit, taxonomy, load_evaluation_config(config_dir()))
    assert est["n"] == 0 and est["per_policy"] == {}


def test_agreement_counts_live_answers_with_scotts_pi(sqlite_store, taxonomy, roles):
    cfg = _cfg(taxonomy, calibration_sets=[CalibrationSet(name="cal", share=1.0, reviewers=2)])
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(10)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    with sqlite_store.read() as conn:
        cal = conn.execute(select(Case.id, Case.item_id).where(Case.calibration_set == "cal").order_by(Case.id)).all()
    by_item: dict[str, list[int]] = {}
    for cid, item in cal:
        by_item.setdefault(item, []).append(cid)
    for n, (item, (c1, c2)) in enumerate(sorted(by_item.items())):  # ann and bob always disagree
        a, b = ("scam", "spam") if n % 2 else ("spam", "scam")
        decide(sqlite_store, taxonomy, c1, "ann", a, rationale="x", config=cfg)
        decide(sqlite_store, taxonomy, c2, "bob", b, rationale="x", config=cfg)
    got = agreement(sqlite_store)["cal"]
    assert (got["items"], got["raters_per_item"]) == (10, 2) and got["kappa"] == pytest.approx(-1.0)
    with sqlite_store.read() as conn:
        d = conn.execute(select(Decision.id).where(Decision.kind == "calibration", Decision.reviewer == "bob",
                                                   Decision.item_id == "s0")).scalar_one()
    correct(sqlite_store, taxonomy, d, LEAD, "spam", rationale="bob misread it")
    got = agreement(sqlite_store)["cal"]  # lena's correction is no third rater, nor bob's answer
    assert (got["items"], got["raters_per_item"]) == (9, 2) and got["kappa"] == pytest.approx(-1.0)


def test_gold_and_peer_agreement_skip_undone_and_others_corrections():
    events = [ev(1, "ann", "calibration", "spam"),         # a slip ...
              ev(2, "ann", "undo", "spam", sup=1),         # ... taken back
              ev(3, "ann", "calibration", "scam"),         # her answer
              ev(4, "bob", "calibration", "spam"),
              ev(5, "lena", "calibration", "scam", sup=4)]  # a lead's correction of bob's answer
    rows = {r["analyst"]: r for r in an.analyst_table(events, {"x1": {"reviewer": "lea", "label": "scam"}})}
    ann = rows["ann"]["gold_agreement"]
    assert (ann["estimate"], ann["k"], ann["n"]) == (1.0, 1, 1)
    assert rows["bob"]["gold_agreement"]["n"] == 0 and rows["ann"]["peer_agreement"]["n"] == 0
    assert [e["id"] for e in an.live_calibration(events)] == [3]


def test_undone_decisions_and_restoring_rows_are_no_judgement(sqlite_store, taxonomy, roles):
    cfg = _cfg(taxonomy)
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(4)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = _cases(sqlite_store)
    t = T0 + dt.timedelta(hours=1)
    decide(sqlite_store, taxonomy, cases["s0"], "ann", "spam", rationale="oops", config=cfg, now=t)
    undo_last(sqlite_store, "ann", cfg, 60, now=t + dt.timedelta(seconds=5))
    decide(sqlite_store, taxonomy, cases["s0"], "ann", "scam", config=cfg, now=t + dt.timedelta(seconds=10))
    for i in range(1, 4):
        decide(sqlite_store, taxonomy, cases[f"s{i}"], "ann", "scam", config=cfg, now=t + dt.timedelta(minutes=i))
    ec = load_evaluation_config(config_dir())
    ov = override_telemetry(sqlite_store, taxonomy, ec)["overall"]
    assert (ov["k"], ov["n"]) == (0, 4)
    ann = an.analyst_quality(sqlite_store, LEAD, ec)["analysts"][0]
    assert ann["decisions"] == 4 and (ann["override_rate"]["k"], ann["override_rate"]["n"]) == (0, 4)
    # a restoring row (undo of a lead's correction re-asserts ann's decision) is not ann's again
    events = [ev(1, "ann", "review", "scam", cal=None), ev(2, "lena", "review", "spam", sup=1, cal=None),
              ev(3, "lena", "undo", "spam", sup=2, cal=None), ev(4, "ann", "review", "scam", sup=3, cal=None)]
    rows = {r["analyst"]: r for r in an.analyst_table(events, {})}
    assert rows["ann"]["decisions"] == 1 and rows["ann"]["rework_rate"]["k"] == 0
    assert ed.taken_back(events) == {2, 4}


def test_nonfinite_scores_are_left_out_and_counted():
    rng = np.random.default_rng(0)
    ref, cur = rng.beta(2, 8, 2000), rng.beta(8, 2, 2000)
    ref[0] = np.nan
    assert em.psi(ref, cur) > 1.0
    s = ds.score_shift(ref, cur)
    assert s["psi"] > 1.0 and s["js"] > 0.4 and s["nonfinite_ref"] == 1 and s["n_ref"] == 1999
    res = score_checks(WindowData(2000, ref[:, None], np.array(["x"] * 2000)),
                       WindowData(2000, cur[:, None], np.array(["x"] * 2000)), ["spam"], ScoreCheck())
    assert all(c.alarm for c in res) and "non-finite" in res[0].message
    gone = np.full(2000, np.nan)
    assert np.isnan(em.psi(gone, cur)) and np.isnan(ds.score_shift(gone, cur)["psi"])
    res = score_checks(WindowData(2000, gone[:, None], np.array(["x"] * 2000)),
                       WindowData(2000, cur[:, None], np.array(["x"] * 2000)), ["spam"], ScoreCheck())
    assert all(c.status == NOT_ENOUGH and not c.alarm for c in res)


def test_intervals_do_not_collapse_on_a_handful_of_audits():
    w = np.array([1 / 0.3, 1 / 0.3, 1 / 0.08])  # stratified audit: nothing the model left unflagged
    rec = policy_estimates(["spam"] * 3, ["spam"] * 3, ["benign", "spam"], w)["spam"]["recall"]
    assert rec["lo"] == pytest.approx(wilson(3, 3)[0]) and rec["hi"] == 1.0 and rec["n_eff"] == 3.0
    assert audits_needed(rec, 3, 0.1) is not None
    boot = policy_estimates(["spam"] * 2, ["spam"] * 2, ["benign", "spam"], method="bootstrap")["spam"]["precision"]
    assert boot["method"] == "bootstrap" and boot["lo"] <= wilson(2, 2)[0] and boot["hi"] == 1.0
