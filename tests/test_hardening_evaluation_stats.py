"""Evaluation statistics hardening: figures that must stay honest at the edges.

- The override telemetry's change test read 0 of 3 overrides against 3 of 3 as p 0.014 (z-test),
  "significant" at the default alpha of 0.05 from six decisions; Fisher's exact p is 0.1.
- Fleiss' kappa read a perfect 1.0 in the agreement table when every rater gave one and the same
  label (chance agreement 1, kappa 0/0).
- The weighted bootstrap interval resampled the whole audit as one stratum, though the design's
  strata (units of equal weight) are what `ratio_estimate` and the posterior use.
- A stored score far outside [0, 1] (a row from before `core.predictions`' rule) stayed in the
  calibration: ECE over 100. `model_quality` dropped its ECE altogether for one NaN row.
- `score_drift` ended in `float(None)` on a null stored score, and its max PSI hung on label order.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import select, update

from core.config import config_dir
from core.schema import Case, Decision, Prediction
from evaluation import estimates as es
from evaluation import metrics as em
from evaluation import overrides as ov
from evaluation.config import load_evaluation_config
from evaluation.data import decision_rows
from evaluation.report import agreement, model_quality, score_drift, write_report
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.queue_config import CalibrationSet
from models.metrics import expected_calibration_error
import test_evaluation
from test_evaluation_integrity import _cfg
from test_hardening_reports_drift import _decided
from test_queue_support import T0, add_scored

reviewed = test_evaluation.reviewed  # the fixture: eight items over a week, scored by a champion


def test_a_change_of_override_rate_on_a_handful_of_decisions_uses_the_exact_test():
    # 2 x 2 table [[3, 0], [0, 3]]: P(this table) = C(3,3) C(3,0) / C(6,3) = 1/20 each way, two-sided 0.1
    t = ov.two_proportion_test(0, 3, 3, 3)
    assert t["pvalue"] == pytest.approx(0.1) and t["exact"] is True and t["change"] == 1.0
    assert 0.0 <= t["lo"] <= 1.0 and t["hi"] == pytest.approx(1.0)  # Newcombe's interval, unchanged
    series = [{"k": 0, "n": 3}, {"k": 3, "n": 3}]
    assert ov.change_between_last_windows(series, alpha=0.05)["significant"] is False  # was: True (p 0.014)
    big = ov.two_proportion_test(10, 100, 25, 100)  # expected counts of 17.5: still the z-test
    assert big["exact"] is False and big["pvalue"] == pytest.approx(0.00525, abs=2e-4)


def test_fleiss_kappa_of_one_label_throughout_is_undefined():
    # p_j = (1, 0): chance agreement 1, kappa (1 - 1) / (1 - 1)
    assert em.fleiss_kappa(np.array([[3, 0], [3, 0]])) is None
    assert em.fleiss_kappa(np.array([[2], [2], [2]])) is None
    assert em.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)


def test_the_agreement_table_says_n_a_when_every_rater_gave_one_label(any_store, taxonomy):
    cfg = _cfg(taxonomy, calibration_sets=[CalibrationSet(name="cal", share=1.0, reviewers=2)])
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(6)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cal = conn.execute(select(Case.id, Case.item_id).where(Case.calibration_set == "cal").order_by(Case.id)).all()
    by_item: dict[str, list[int]] = {}
    for cid, item in cal:
        by_item.setdefault(item, []).append(cid)
    for c1, c2 in by_item.values():
        decide(any_store, taxonomy, c1, "ann", "scam", rationale="x", config=cfg)
        decide(any_store, taxonomy, c2, "bob", "scam", rationale="x", config=cfg)
    got = agreement(any_store)["cal"]
    assert (got["items"], got["raters_per_item"]) == (6, 2)
    assert got["kappa"] is None and got["kappa_note"] == "undefined: one label only"  # was: 1.0


def test_the_weighted_bootstrap_resamples_within_the_equal_weight_strata():
    """Without `strata`, units of equal weight form a stratum for the point, the linearised
    variance and the posterior; the bootstrap must resample the same way (it resampled the audit
    as one stratum: a resample could draw none of the heavy band)."""
    yt = ["spam"] * 60 + ["benign"] * 40 + ["spam"] * 3 + ["benign"] * 17
    yp = ["spam"] * 60 + ["benign"] * 40 + ["benign"] * 20
    w = [1.0] * 100 + [20.0] * 20
    labels = ["spam", "benign"]
    plain = es.policy_estimates(yt, yp, labels, w, method="bootstrap", n_boot=1000)
    explicit = es.policy_estimates(yt, yp, labels, w, strata=[str(x) for x in w], method="bootstrap", n_boot=1000)
    for name in ("precision", "recall", "f1"):
        a, b = plain["spam"][name], explicit["spam"][name]
        assert (a["lo"], a["hi"]) == (b["lo"], b["hi"]), name  # recall's hi was 0.780, stratified 0.773
    # by hand: recall = 60 / (60 + 3 x 20) = 0.5 (Horvitz-Thompson), the interval inside [0, 1] around it
    r = plain["spam"]["recall"]
    assert r["estimate"] == pytest.approx(0.5) and 0.0 <= r["lo"] < 0.5 < r["hi"] <= 1.0


def test_a_score_row_is_a_probability_vector():
    assert em.finite_row([0.2, 0.8]) and em.finite_row([0.0, 1.0000004])  # stored to 6 places
    assert not em.finite_row([1000.0, -999.0]) and not em.finite_row([1.5, 0.0])
    assert not em.finite_row([math.nan, 1.0]) and not em.finite_row(None) and not em.finite_row(["x"])


def _set_scores(store, item: str, change) -> None:
    with store.begin() as conn:
        pid, sc = conn.execute(select(Prediction.id, Prediction.scores).where(Prediction.item_id == item)).one()
        conn.execute(update(Prediction.__table__).where(Prediction.id == pid).values(scores=change(sc)))


def test_a_stored_score_outside_0_1_is_left_out_of_calibration(any_store, taxonomy, tmp_path):
    _decided(any_store, taxonomy)
    good = [r for r in decision_rows(any_store, taxonomy) if r["item_id"] != "a2"]
    _set_scores(any_store, "a2", lambda sc: {**dict.fromkeys(sc, 0.0), "scam": 1000.0, "benign": -999.0})
    idx = {lab: i for i, lab in enumerate(taxonomy.labels)}
    proba = np.array([r["proba"] for r in good])
    want = expected_calibration_error(proba / proba.sum(axis=1, keepdims=True), np.array([idx[r["human"]] for r in good]))
    out = write_report(any_store, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()))
    cal = out["calibration"]
    assert (cal["n"], cal["nonfinite"]) == (8, 1) and cal["ece"] == pytest.approx(want)  # was: n 9, nonfinite 0
    assert 0.0 <= cal["ece"] <= 1.0 and out["slices"]["overall_auc"]["n"] == 8
    q = model_quality(any_store, taxonomy)["all_decisions"]
    assert q["ece"] == pytest.approx(want) and (q["ece_n"], q["ece_unscored"]) == (8, 1)


def test_model_quality_keeps_its_calibration_error_beside_a_nan_score(any_store, taxonomy):
    _decided(any_store, taxonomy)
    _set_scores(any_store, "a0", lambda sc: {**sc, "benign": "NaN"})
    q = model_quality(any_store, taxonomy)["all_decisions"]
    assert "ece" in q and 0.0 <= q["ece"] <= 1.0 and (q["ece_n"], q["ece_unscored"]) == (8, 1)  # was: no ece


def test_score_drift_reads_a_null_score_and_takes_the_max_over_measured_policies(reviewed, taxonomy):
    with reviewed.begin() as conn:
        rows = conn.execute(select(Prediction.id, Prediction.scores)).all()
        for pid, sc in rows:  # the first policy has no number at all; one other score is null
            conn.execute(update(Prediction.__table__).where(Prediction.id == pid)
                         .values(scores={**sc, taxonomy.labels[0]: None}))
    drift = score_drift(reviewed, taxonomy)  # was: TypeError float(None)
    first = drift["per_label"][taxonomy.labels[0]]
    assert math.isnan(first["psi"]) and math.isnan(first["mean_ref"])
    rest = [v["psi"] for lab, v in drift["per_label"].items() if lab != taxonomy.labels[0]]
    assert drift["max_psi"] == pytest.approx(max(rest))  # was: NaN, the first label's


def test_a_calibration_decision_is_no_decision_of_record(any_store, taxonomy):
    """The evaluation's rows are the labels of record (`core.labels`: one per item, calibration
    answers are no part of it): a calibration copy counted nowhere in the model's figures."""
    cfg = _cfg(taxonomy, calibration_sets=[CalibrationSet(name="cal", share=1.0, reviewers=2)])
    add_scored(any_store, taxonomy, [{"id": "c0", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cases = conn.execute(select(Case.id, Case.calibration_set).where(Case.item_id == "c0").order_by(Case.id)).all()
    for cid, cal_set in cases:
        decide(any_store, taxonomy, cid, "ann" if cal_set is None else f"r{cid}", "spam", rationale="x", config=cfg)
    with any_store.read() as conn:
        kinds = sorted(k for (k,) in conn.execute(select(Decision.kind).where(Decision.item_id == "c0")))
    assert "calibration" in kinds
    assert len(decision_rows(any_store, taxonomy)) == kinds.count("review") + kinds.count("qa_audit")



def test_an_audited_item_a_campaign_decision_relabelled_stays_in_the_qa_sample(any_store, taxonomy):
    """A campaign's copies collapse to one per text for evaluation; the copy kept was the first,
    so an audited item (drawn at p = 0.5) whose label a campaign decision later replaced dropped
    out of the QA sample and the stratum's weights were off. The audited copy stands for the text."""
    from sqlalchemy import insert

    from test_queue_support import MODEL

    add_scored(any_store, taxonomy, [{"id": "x1", "label": "spam", "p": 0.9, "text": "same"},
                                     {"id": "x2", "label": "spam", "p": 0.9, "text": "same"},
                                     {"id": "y", "label": "spam", "p": 0.9}])

    def case(item, **kw):
        with any_store.begin() as c:
            return c.execute(insert(Case.__table__).values(
                item_id=item, queue="general", state="closed", priority=0.0, created_at=T0, updated_at=T0,
                predicted_label="spam", model_version=MODEL, meta={}, **kw).returning(Case.__table__.c.id)).scalar_one()

    def dec(case_id, item, kind, label, sup=None):
        with any_store.begin() as c:
            return c.execute(insert(Decision.__table__).values(
                case_id=case_id, item_id=item, reviewer="ann", kind=kind, label=label, action="remove",
                model_version=MODEL, model_label="spam", model_score=0.9, is_override=label != "spam",
                taxonomy_version=taxonomy.version, supersedes_id=sup, created_at=T0)
                .returning(Decision.__table__.c.id)).scalar_one()

    first = dec(case("x1", is_audit=True, audit_inclusion=0.5), "x1", "qa_audit", "scam")
    dec(case("y", is_audit=True, audit_inclusion=0.1), "y", "qa_audit", "spam")
    camp = case("x2")
    dec(camp, "x2", "bulk", "scam")
    dec(camp, "x1", "bulk", "scam", sup=first)
    rows = {r["item_id"]: r for r in decision_rows(any_store, taxonomy)}
    assert rows["x1"]["is_audit"] and rows["x1"]["inclusion"] == 0.5 and rows["x1"]["human"] == "scam"
    assert "x2" not in rows  # still one row for the campaign's text
    assert rows["y"]["is_audit"]
