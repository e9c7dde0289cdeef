"""Evaluation figures that must not depend on how the rows happen to come back: the stratified
audit intervals on the row order, and an analyst's QA pass rate and rework on which copy of a
campaign the bulk decision's collapse (one row per distinct text) happened to keep."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.principals import Principal
from core.schema import Case
from evaluation import analysts as an
from evaluation.config import load_evaluation_config
from evaluation.estimates import policy_estimates, prevalence_estimates
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from test_queue_support import T0, add_campaign, add_scored

LEAD, QA = Principal("lead", "lead"), Principal("lena", "lead")


def _interval(est):
    return est["lo"], est["hi"]


def test_stratified_intervals_do_not_depend_on_the_row_order():
    # the same six audited items, listed in reverse: spam precision read [0.2, 0.75] and [0.2, 0.8]
    y = ["spam", "benign", "benign", "spam", "benign", "benign"]
    p = ["spam", "benign", "spam", "benign", "benign", "benign"]
    w = [2.0, 10.0, 2.0, 10.0, 10.0, 10.0]
    r = list(reversed(range(len(y))))
    ry, rp, rw = [y[i] for i in r], [p[i] for i in r], [w[i] for i in r]
    labels = ["benign", "spam"]
    a, b = policy_estimates(y, p, labels, w), policy_estimates(ry, rp, labels, rw)
    for lab in labels:
        for measure in ("precision", "recall", "f1"):
            assert a[lab][measure]["method"] == "stratified-posterior"
            assert _interval(a[lab][measure]) == _interval(b[lab][measure]), (lab, measure)
    pa, pb = prevalence_estimates(y, labels, p, w), prevalence_estimates(ry, labels, rp, rw)
    assert all(_interval(pa[lab]) == _interval(pb[lab]) for lab in labels)


def _campaign_decided_over(store, taxonomy, copy):
    """Three identical copies of one text in a campaign; ann decides `copy` as benign, the lead
    then decides the campaign as scam over it, and a second lead re-reviews every copy: scam."""
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "qa_strata": [], "calibration_sets": []})
    members = ["w1", "w2", "w3"]
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8, "text": "claim your refund now"}
                                 for m in members])
    add_campaign(store, members)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        own = dict(conn.execute(select(Case.item_id, Case.id).where(Case.campaign_id.is_(None))).all())
        camp = conn.execute(select(Case.id).where(Case.campaign_id.is_not(None))).scalar()
    DEC.decide(store, taxonomy, own[copy], "ann", "benign", rationale="looks fine", now=T0, config=cfg)
    DEC.decide(store, taxonomy, camp, LEAD, "scam", rationale="a refund scam", now=T0 + dt.timedelta(hours=1),
               config=cfg, existing="supersede")
    for k in range(3):  # one campaign decision is one unit of a draw: each copy in a draw of its own
        out = draw_rereviews(store, cfg, QA, 3, seed=1 + k)
        assert out["drawn"] == 1
        DEC.decide(store, taxonomy, out["case_ids"][0], QA, "scam", rationale="a refund scam",
                   now=T0 + dt.timedelta(hours=2), config=cfg)
    rows = an.analyst_quality(store, QA, load_evaluation_config(config_dir()))["analysts"]
    return {r["analyst"]: r for r in rows}


@pytest.mark.parametrize("copy", ["w1", "w3"])
def test_a_rereviewed_campaign_copy_is_the_bulk_deciders_qa_check(any_store, taxonomy, roles, copy):
    # the re-reviews checked the lead's campaign decision; with w3 ann's replaced decision took a QA fail (0/1)
    rows = _campaign_decided_over(any_store, taxonomy, copy)
    assert rows["ann"]["qa_pass_rate"]["n"] == 0
    lead = rows["lead"]["qa_pass_rate"]
    assert lead["n"] >= 1 and lead["k"] == lead["n"]


@pytest.mark.parametrize("copy", ["w1", "w3"])
def test_rework_of_a_campaign_copy_does_not_depend_on_the_copy(any_store, taxonomy, roles, copy):
    # ann's benign was changed to scam by the campaign decision: rework 1/1 for w1, 0/1 for w3
    rows = _campaign_decided_over(any_store, taxonomy, copy)
    assert (rows["ann"]["rework_rate"]["k"], rows["ann"]["rework_rate"]["n"]) == (1, 1)


def test_a_corrected_rereview_answer_is_the_qa_verdict(any_store, taxonomy, roles):
    # the re-reviewer's slip (benign) corrected to scam, ann's label: ann read 0/1, as if it stood
    from labeling.decisions import correct

    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "qa_strata": [], "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        case = conn.execute(select(Case.id).where(Case.item_id == "s1")).scalar()
    DEC.decide(any_store, taxonomy, case, "ann", "scam", rationale="first look", now=T0, config=cfg)
    out = draw_rereviews(any_store, cfg, QA, 1, seed=1)
    answer = DEC.decide(any_store, taxonomy, out["case_ids"][0], QA, "benign", rationale="slip",
                        now=T0 + dt.timedelta(hours=1), config=cfg)["decision_ids"][0]
    config = load_evaluation_config(config_dir())
    ann = {r["analyst"]: r for r in an.analyst_quality(any_store, QA, config)["analysts"]}["ann"]
    assert (ann["qa_pass_rate"]["k"], ann["qa_pass_rate"]["n"]) == (0, 1)  # the answer as given: a fail
    correct(any_store, taxonomy, answer, QA, "scam", rationale="misclicked", now=T0 + dt.timedelta(hours=2))
    ann = {r["analyst"]: r for r in an.analyst_quality(any_store, QA, config)["analysts"]}["ann"]
    assert (ann["qa_pass_rate"]["k"], ann["qa_pass_rate"]["n"]) == (1, 1)


def test_audits_still_pending_in_a_band_are_carried_by_its_decided_ones(any_store, make_scored, queue_config,
                                                                        taxonomy):
    """A band whose audits are mostly still waiting stands for as much traffic as when they are all
    decided: its decided audits weigh 1 / (inclusion x share decided). Weighted by 1 / inclusion
    alone, the band worked first (here the spam-flagged one, a census) swamped the estimate."""
    from evaluation.report import evaluation_summary
    from labeling.queue_config import QaStratum

    cfg = queue_config.model_copy(update={"qa_share": 0.5, "calibration_sets": [],
                                          "qa_strata": [QaStratum(policy=["spam"], share=1.0)]})
    spam = {"benign": 0.1, "spam": 0.8, "scam": 0.05, "hate": 0.03, "harassment": 0.02}
    ham = {"benign": 0.9, "spam": 0.05, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
    make_scored(any_store, [{"id": str(i), "text": f"message {i}"} for i in range(60)],
                {str(i): spam if i < 10 else ham for i in range(60)}, build=False)
    build_cases(any_store, taxonomy, cfg, progress=False)
    with any_store.read() as conn:
        cases = conn.execute(select(Case.id, Case.item_id, Case.audit_inclusion, Case.predicted_label)
                             .where(Case.is_audit.is_(True)).order_by(Case.id)).all()
    benign_band = [c for c in cases if c.predicted_label == "benign"]
    assert {c.audit_inclusion for c in cases} == {1.0, 0.5} and len(benign_band) >= 9
    worked = [c for c in cases if c.predicted_label == "spam"] + benign_band[: len(benign_band) // 3]
    w = {}
    for c in worked:  # predicted spam is spam; a benign prediction is right
        label = "spam" if c.predicted_label == "spam" else "benign"
        DEC.decide(any_store, taxonomy, c.id, "ann", label, config=cfg)
        share = 1.0 if c.predicted_label == "spam" else (len(benign_band) // 3) / len(benign_band)
        w[c.id] = (label, 1.0 / (c.audit_inclusion * share))
    expected = sum(x for lab, x in w.values() if lab == "spam") / sum(x for _, x in w.values())
    s = evaluation_summary(any_store, taxonomy, "lea", config=load_evaluation_config(config_dir()))
    qa = s["estimates"]["qa_audit"]
    assert qa["weighted"] and qa["n"] == len(worked)
    assert qa["prevalence"]["spam"]["estimate"] == pytest.approx(expected)  # 10 / (10 + 2 x 3 x k), not 10 / (10 + 2k)
