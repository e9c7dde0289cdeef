"""Ops and drift hardening.

Ops: an escalation resets a case's SLA window (`due_at` = escalation + its tier's SLA; the earlier
due time kept in meta `due_before_escalation`). `ops_kpis` counted SLAs against the reset window
only, so a P2 case escalated after its 24 hours had lapsed and decided inside the new window
counted as met. It now counts against the commitment first made, and reports the escalation's
own window apart (per tier and per home queue).

Drift: degenerate and hostile windows (see each test)."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from sqlalchemy import select, update

from core.schema import Case
from evaluation import drift_stats as ds
from evaluation import ops
from evaluation.drift import (EmbeddingCheck, LabelMixCheck, ScoreCheck, WindowData, embedding_check, label_mix_check,
                              score_checks)
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.escalation import escalate
from test_queue_support import T0, add_scored

NAN = math.nan


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _case_of(store, item: str) -> dict:
    with store.read() as conn:
        return dict(conn.execute(select(Case.__table__).where(Case.item_id == item)).mappings().one())


def _escalated_late(store, taxonomy, cfg) -> tuple[dict, dict]:
    """Two P2 (24-hour) cases built at T0: `late` escalated 25 hours in (its SLA lapsed) and
    decided 26 hours in, inside the escalation's new window; `kept` decided in its queue in time."""
    add_scored(store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown and a fool"},
                                 {"id": "h2", "label": "harassment", "p": 0.9, "text": "nobody likes you, loser"}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    late, kept = _case_of(store, "h1"), _case_of(store, "h2")
    assert late["severity"] == "P2" and late["due_at"] == T0 + dt.timedelta(hours=24)
    esc_at = T0 + dt.timedelta(hours=25)
    escalate(store, taxonomy, late["id"], "ann", "keeps coming back under new accounts", cfg, now=esc_at)
    claim_case(store, late["id"], "lead", cfg, now=esc_at + dt.timedelta(minutes=10))
    DEC.decide(store, taxonomy, late["id"], "lead", "harassment", rationale="a repeat offender",
               now=T0 + dt.timedelta(hours=26), config=cfg)
    claim_case(store, kept["id"], "bob", cfg, now=T0 + dt.timedelta(hours=1))
    DEC.decide(store, taxonomy, kept["id"], "bob", "harassment", now=T0 + dt.timedelta(hours=2), config=cfg)
    return _case_of(store, "h1"), kept


def test_an_escalation_after_the_sla_lapsed_is_a_miss_of_the_commitment(any_store, taxonomy, cfg):
    late, kept = _escalated_late(any_store, taxonomy, cfg)
    assert late["queue"] == cfg.escalation_queue and late["meta"]["due_before_escalation"]
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=30), config=cfg)
    # before: {"met": 2, "missed": 0, "rate": 1.0}: the reset window hid the lapsed commitment
    assert k["sla"]["P2"] == {"cases": 2, "met": 1, "missed": 1, "pending": 0, "rate": 0.5}
    assert k["sla_escalation"]["P2"] == {"cases": 1, "met": 1, "missed": 0, "pending": 0, "rate": 1.0}
    home = kept["queue"]
    assert k["sla_by_queue"][home]["commitment"] == {"cases": 2, "met": 1, "missed": 1, "pending": 0, "rate": 0.5}
    assert k["sla_by_queue"][home]["escalation_window"]["met"] == 1
    assert cfg.escalation_queue not in k["sla_by_queue"]  # counted where it came from


def test_a_commitment_is_counted_at_the_tier_it_was_made_at(any_store, taxonomy, cfg):
    """Escalated at P0 after its P2 SLA lapsed: the lapsed commitment was a P2 one (it counted
    under P0, a tier that case never promised), the escalation's window a P0 one."""
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown and a fool"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = _case_of(any_store, "h1")
    escalate(any_store, taxonomy, case["id"], "ann", "a threat", cfg, severity="P0", now=T0 + dt.timedelta(hours=25))
    assert _case_of(any_store, "h1")["severity"] == "P0"
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=30), config=cfg)
    assert k["sla"]["P2"]["missed"] == 1 and "P0" not in k["sla"]
    assert k["sla_escalation"]["P0"]["cases"] == 1 and "P2" not in k["sla_escalation"]


def test_a_waiting_escalation_past_its_first_due_time_is_missed_not_pending(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown and a fool"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = _case_of(any_store, "h1")
    escalate(any_store, taxonomy, case["id"], "ann", "needs a lead", cfg, now=T0 + dt.timedelta(hours=20))
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=30), config=cfg)  # 6 hours past the first 24
    assert k["sla"]["P2"]["missed"] == 1 and k["sla"]["P2"]["pending"] == 0
    assert k["sla_escalation"]["P2"]["pending"] == 1  # its own window runs to hour 44


def test_an_escalation_before_the_due_time_met_both(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "harassment", "p": 0.9, "text": "you are a clown and a fool"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = _case_of(any_store, "h1")
    escalate(any_store, taxonomy, case["id"], "ann", "needs a lead", cfg, now=T0 + dt.timedelta(hours=2))
    claim_case(any_store, case["id"], "lead", cfg, now=T0 + dt.timedelta(hours=3))
    DEC.decide(any_store, taxonomy, case["id"], "lead", "harassment", rationale="abuse",
               now=T0 + dt.timedelta(hours=4), config=cfg)
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=30), config=cfg)
    assert k["sla"]["P2"]["met"] == 1 and k["sla_escalation"]["P2"]["met"] == 1


def test_a_hand_edited_due_before_escalation_is_a_one_line_error(sqlite_store, taxonomy, cfg):
    late, _ = _escalated_late(sqlite_store, taxonomy, cfg)
    with sqlite_store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == late["id"]).values(
            meta={**late["meta"], "due_before_escalation": "yesterday"}))
    with pytest.raises(ValueError, match=rf"^case {late['id']}: meta field 'due_before_escalation' .*'yesterday'$"):
        ops.ops_kpis(sqlite_store, now=T0 + dt.timedelta(hours=30), config=cfg)


def test_sla_by_queue_on_arrays():
    # due 100; the escalated case had 50 before, decided at 80 (inside its window, past the commitment)
    out = ops.sla_by_queue(["a", "a", "b"], [True, False, False], [100, 100, 100], [50, NAN, NAN], [80, 90, NAN], now=120)
    assert out["a"]["commitment"] == {"cases": 2, "met": 1, "missed": 1, "pending": 0, "rate": 0.5}
    assert out["a"]["escalation_window"] == {"cases": 1, "met": 1, "missed": 0, "pending": 0, "rate": 1.0}
    assert out["b"]["escalation_window"] is None and out["b"]["commitment"]["missed"] == 1


# -- drift: statistics on degenerate windows -------------------------------------------------------
def test_the_evaluation_reports_psi_bins_a_one_valued_reference_the_same_way():
    """`evaluation.metrics.psi` (the evaluation report's per-label PSI) had its own edges: a
    reference scored 0 throughout gave one bin and PSI 0.0 against a current window at 0.9."""
    from evaluation import metrics as em

    assert em.psi(np.zeros(2000), np.full(2000, 0.9)) > 5
    assert em.psi(np.zeros(2000), np.zeros(1500)) == pytest.approx(0.0, abs=1e-9)
    assert em.psi(np.zeros(2000), np.full(2000, 0.9)) == pytest.approx(
        ds.score_shift(np.zeros(2000), np.full(2000, 0.9))["psi"], rel=1e-12)  # one rule: the same bins


def test_a_one_valued_reference_still_measures_a_shift():
    """A policy the model scored 0 on every reference item made one bin (-inf, inf): PSI and JS
    read 0.0 against a current window scored 0.9 throughout, while KS read 1.0."""
    s = ds.score_shift(np.zeros(2000), np.full(2000, 0.9))
    assert s["ks"] == 1.0 and s["psi"] > 5 and s["js"] == pytest.approx(math.sqrt(math.log(2)), abs=1e-3)
    assert ds.score_shift(np.zeros(2000), np.zeros(1500))["js"] == pytest.approx(0.0, abs=1e-9)
    # against scipy on the bins (< 0, = 0, > 0): reference all 0, current half 0 and half 0.9
    from scipy.spatial.distance import jensenshannon
    from scipy.special import rel_entr

    half = ds.score_shift(np.zeros(2000), np.r_[np.zeros(1000), np.full(1000, 0.9)])
    p, q = np.array([0, 1.0, 0]), np.array([0, 0.5, 0.5])
    pc, qc = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    assert half["js"] == pytest.approx(jensenshannon(p, q), rel=1e-12)
    assert half["psi"] == pytest.approx((rel_entr(qc, pc) + rel_entr(pc, qc)).sum(), rel=1e-9)  # symmetric KL
    checks = score_checks(WindowData(2000, np.zeros((2000, 1)), np.array(["x"] * 2000)),
                          WindowData(2000, np.full((2000, 1), 0.9), np.array(["x"] * 2000)), ["hate"], ScoreCheck())
    assert all(c.alarm for c in checks)


def test_holm_adjusted_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 over 4: 0.04, 0.09, max(0.08, 0.09), 0.2; NaN is in no family
    got = ds.holm_adjusted([0.01, 0.04, 0.03, 0.2, NAN])
    assert got[:4] == pytest.approx([0.04, 0.09, 0.09, 0.2]) and math.isnan(got[4])
    assert np.isnan(ds.holm_adjusted([NAN])).all()


def _null_windows(rng, n, k):
    return (WindowData(n, rng.random((n, k)), np.array(["x"] * n, dtype=object)),
            WindowData(n, rng.random((n, k)), np.array(["x"] * n, dtype=object)))


def test_many_policies_on_small_windows_do_not_false_alarm():
    """30 policies, windows of 200 identical-distribution items (min_items 200): the distance alone
    gave 17.6 false alarms a run (JS ~ 0.15 by chance). Holm over the policies: at most alpha a run."""
    rng = np.random.default_rng(0)
    policies = [f"p{j}" for j in range(30)]
    runs = [score_checks(*_null_windows(rng, 200, 30), policies, ScoreCheck(min_items=200)) for _ in range(20)]
    assert sum(any(c.alarm for c in run) for run in runs) <= 1
    assert runs[0][0].detail["family"] == 30 and "Holm" in runs[0][0].message
    s = rng.beta(2, 5, (200, 30))
    moved = score_checks(WindowData(200, s, None), WindowData(200, rng.beta(5, 2, (200, 30)), None), policies,
                         ScoreCheck(min_items=200))
    assert all(c.alarm for c in moved)  # a real shift still alarms on every policy


def test_label_mix_needs_significance_on_many_labels():
    """20 labels drawn alike in windows of 200: JS distance ~ 0.15 by chance passed 0.1 every run."""
    rng = np.random.default_rng(1)
    labels = [f"l{j}" for j in range(20)]
    cfg = LabelMixCheck(min_items=200)
    fired = [label_mix_check(WindowData(200, np.zeros((0, 1)), rng.choice(labels, 200).astype(object)),
                             WindowData(200, np.zeros((0, 1)), rng.choice(labels, 200).astype(object)), labels, cfg)
             for _ in range(20)]
    assert all(c.statistic > 0.1 for c in fired) and sum(c.alarm for c in fired) <= 1
    moved = label_mix_check(WindowData(200, np.zeros((0, 1)), rng.choice(labels[:5], 200).astype(object)),
                            WindowData(200, np.zeros((0, 1)), rng.choice(labels[10:], 200).astype(object)), labels, cfg)
    assert moved.alarm


def test_a_nan_embedding_is_left_out_not_the_whole_report():
    """One NaN vector a broken embedding model cached made LogisticRegression raise: no report."""
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    cur[3, 2] = np.nan
    ref[:5] = np.inf
    out = ds.domain_classifier_auc(ref, cur)
    assert (out["nonfinite_reference"], out["nonfinite_current"]) == (5, 1) and abs(out["auc"] - 0.5) < 0.06
    check = embedding_check(WindowData(600, np.zeros((0, 1)), None, embeddings=ref),
                            WindowData(600, np.zeros((0, 1)), None, embeddings=cur), EmbeddingCheck(min_items=595))
    assert check.status == "ok" and (check.n_reference, check.n_current) == (595, 599)


# -- drift: from the store ------------------------------------------------------------------------
def _report(store, taxonomy):
    from evaluation.drift import drift_report
    from test_drift import NOW, SMALL

    return drift_report(store, SMALL, taxonomy, now=NOW)


def test_null_and_missing_stored_scores_are_left_out_and_counted(any_store, taxonomy, tmp_path):
    """A broken model's row with `"spam": null` ended the report (float(None)); a prediction
    without a label's score counted 0.0 for it, and 0.0 against the reference's real benign
    scores alarmed on a shift nothing made."""
    from core.schema import Prediction
    from test_drift import fill

    fill(any_store, taxonomy, tmp_path, shift=False)
    with any_store.begin() as conn:
        rows = conn.execute(select(Prediction.id, Prediction.scores).where(
            Prediction.item_id.like("reports:cur%"), Prediction.model_version == "m1")).all()
        for n, (pid, sc) in enumerate(rows):
            sc = {k: v for k, v in sc.items() if k != "benign"}  # a model without this label's score
            if n < 3:
                sc["spam"] = None
            conn.execute(update(Prediction.__table__).where(Prediction.id == pid).values(scores=sc))
    rep = _report(any_store, taxonomy)
    by = {c.check: c for c in rep.checks}
    assert by["score_psi:benign"].status == "not enough data" and not by["score_psi:benign"].alarm
    assert by["score_psi:benign"].n_current == 0
    assert "non-finite scores left out: 0 reference, 600 current" in by["score_psi:benign"].message
    spam = by["score_js:spam"]
    assert spam.status == "ok" and spam.n_current == 597 and spam.detail["nonfinite_cur"] == 3
    assert rep.alarms == []


def _flood(store, taxonomy, tmp_path, copies: int) -> None:
    """`copies` items of one text in the current window, scored and with a cached vector."""
    import json

    from core.ingest import ColumnMap, ingest_paths
    from core.schema import Embedding, Item, Prediction, utcnow
    from test_drift import NOW

    src = tmp_path / "flood.jsonl"
    at = (NOW - dt.timedelta(days=1)).isoformat()
    src.write_text("".join(json.dumps({"id": f"flood{i}", "text": "CLAIM YOUR PRIZE NOW at prize.example",
                                       "at": at}) + "\n" for i in range(copies)), encoding="utf-8")
    ingest_paths(store, taxonomy, [str(src)], source="reports", columns=ColumnMap(id="id", created="at"),
                 progress=False)
    sc = {lab: 0.0 for lab in taxonomy.labels}
    sc["spam"], sc["benign"] = 0.97, 0.03
    with store.begin() as conn:
        hashes = dict(conn.execute(select(Item.id, Item.text_hash).where(Item.id.like("reports:flood%"))).all())
        assert len(hashes) == copies
        conn.execute(Prediction.__table__.insert(), [
            dict(item_id=i, model_version="m1", label="spam", score=0.97, scores=sc, uncertainty=0.0,
                 taxonomy_version=taxonomy.version, created_at=utcnow()) for i in hashes])
        vec = np.full(8, 3.0, dtype=np.float32)
        conn.execute(Embedding.__table__.insert().values(model="all-MiniLM-L6-v2", text_hash=next(iter(hashes.values())),
                                                         dim=8, vector=vec.tobytes()))


def test_a_flood_of_one_text_neither_raises_nor_hides_an_alarm(any_store, taxonomy, tmp_path):
    """3,000 copies of one text in the current window of a quiet store alarmed on the spam score,
    the label mix and the embeddings; in a store where 18 campaigns emerged (6 before) the same
    flood diluted the current rate per 1,000 items below the reference's and hid the alarm."""
    from test_drift import fill

    fill(any_store, taxonomy, tmp_path, shift=False)
    _flood(any_store, taxonomy, tmp_path, 3000)
    rep = _report(any_store, taxonomy)
    assert rep.n_current == 3600 and rep.alarms == [], [c.message for c in rep.alarms]
    by = {c.check: c for c in rep.checks}
    assert by["score_js:spam"].n_current == 601 and by["embedding"].n_current == 601


def test_a_flood_does_not_hide_campaign_emergence(any_store, taxonomy, tmp_path):
    from test_drift import fill

    fill(any_store, taxonomy, tmp_path, shift=True)
    _flood(any_store, taxonomy, tmp_path, 3000)
    camp = next(c for c in _report(any_store, taxonomy).checks if c.check == "campaign_emergence")
    assert camp.alarm and camp.n_current == 601, camp.message
