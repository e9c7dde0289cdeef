"""Evaluation reports, audited as a statistician: an analyst's peer agreement is as sure as the
items it rests on, not the pairs; a stored inclusion probability that is no probability neither
stops the report nor weights its audit; a re-review of one's own decision is nobody's QA check."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import update

from core.config import config_dir
from core.principals import Principal
from core.schema import Case
from evaluation import analysts as an
from evaluation import data as ed
from evaluation.config import load_evaluation_config
from evaluation.estimates import inverse_probability_weights, policy_estimates, wilson
from evaluation.report import _audit_estimates
from labeling.cases import build_cases
from labeling.decisions import decide
from test_evaluation_integrity import _cases as _item_cases, _cfg  # the same store helpers
from test_queue_support import T0, add_scored

T = dt.datetime(2026, 11, 2, 9, 0)
LEAD = Principal("lena", "lead")


def ev(i, who, kind, label, item, sup=None, case=None, cal=None):
    return {"id": i, "case_id": case or 100 + i, "item_id": item, "reviewer": who, "kind": kind, "label": label,
            "action": label, "model_version": None, "model_label": None, "model_score": None, "is_override": False,
            "supersedes_id": sup, "created_at": T + dt.timedelta(minutes=i), "queue": "q", "calibration_set": cal}


def test_peer_agreement_on_one_item_is_as_sure_as_one_item():
    """Ten raters of one calibration item: each analyst's 9 of 9 pairs read [0.77, 1.0], the
    certainty of nine items from one answer. The interval is now that of one item."""
    events = [ev(i, f"r{i}", "calibration", "spam", "x", cal="w") for i in range(10)]
    peer = {r["analyst"]: r for r in an.analyst_table(events, {}, 0.9)}["r0"]["peer_agreement"]
    assert (peer["lo"], peer["hi"]) == pytest.approx(wilson(1, 1, 0.9)) and peer["lo"] < 0.3
    assert (peer["k"], peer["n"], peer["items"]) == (9, 9, 1)  # the pairs still counted as before


def test_peer_agreement_over_items_of_two_raters_is_the_plain_wilson_interval():
    # one peer per item: the pairs are the items, nothing changes
    events = [ev(2 * i + j, who, "calibration", "spam" if (i or who == "ann") else "benign", f"x{i}", cal="w")
              for i in range(4) for j, who in enumerate(("ann", "bob"))]
    peer = {r["analyst"]: r for r in an.analyst_table(events, {}, 0.9)}["ann"]["peer_agreement"]
    assert (peer["k"], peer["n"], peer["method"]) == (3, 4, "wilson")
    assert (peer["lo"], peer["hi"]) == pytest.approx(wilson(3, 4, 0.9))


def test_peer_agreement_intervals_never_count_more_than_the_items():
    # three raters on each of two items, mixed agreement: at most two units, however the pairs fall
    events = [ev(1, "ann", "calibration", "spam", "a", cal="w"), ev(2, "bob", "calibration", "spam", "a", cal="w"),
              ev(3, "cy", "calibration", "benign", "a", cal="w"), ev(4, "ann", "calibration", "hate", "b", cal="w"),
              ev(5, "bob", "calibration", "spam", "b", cal="w"), ev(6, "cy", "calibration", "hate", "b", cal="w")]
    peer = {r["analyst"]: r for r in an.analyst_table(events, {}, 0.9)}["ann"]["peer_agreement"]
    assert peer["hi"] - peer["lo"] >= wilson(1, 2, 0.9)[1] - wilson(1, 2, 0.9)[0] - 1e-12
    assert (peer["k"], peer["n"], peer["items"]) == (2, 4, 2) and peer["n_eff"] <= 2


def test_a_rereview_of_ones_own_decision_is_nobodys_qa_check():
    """bob decided x, ann corrected it, then (a row from before self-review was refused) ann's QA
    answer re-reviewed her own correction: bob took a QA fail for a decision nobody re-reviewed."""
    events = [ev(1, "bob", "review", "spam", "x", case=1), ev(2, "ann", "review", "benign", "x", sup=1, case=1),
              ev(3, "ann", "qa_audit", "benign", "x", sup=2, case=3)]
    assert an.qa_pass_pairs(events) == []
    rows = {r["analyst"]: r for r in an.analyst_table(events, {}, 0.9)}
    assert rows["bob"]["qa_pass_rate"]["n"] == 0 and rows["ann"]["qa_pass_rate"]["n"] == 0


def test_a_rereview_of_someone_elses_decision_still_counts():
    events = [ev(1, "bob", "review", "spam", "x", case=1), ev(2, "ann", "qa_audit", "spam", "x", sup=1, case=2)]
    assert an.qa_pass_pairs(events) == [("bob", True)]


@pytest.mark.parametrize("bad", [float("nan"), -0.3, 0.0, 2.0, float("inf"), "abc", True, 1e-300])
def test_an_inclusion_that_is_no_probability_counts_as_not_stored(bad):
    """NaN, negative or infinite stopped the report (ValueError: weights must be positive); 2.0
    weighed its audit as half an item (spam precision 0.09 where the audit says 0.29); 1e-300 (a
    weight of 1e300) overflowed the posterior's negative binomial draws (ValueError)."""
    w = inverse_probability_weights([bad, 0.5, 0.5, 0.1])
    assert w is not None and np.all(np.isfinite(w)) and list(w) == [2.0, 2.0, 2.0, 10.0]


def test_a_corrupt_tiny_inclusion_no_longer_stops_the_estimates():
    y, p = ["spam", "benign", "spam", "benign"], ["spam", "benign", "benign", "benign"]
    w = inverse_probability_weights([1e-300, 0.5, 0.5, 0.1])
    est = policy_estimates(y, p, ["spam", "benign"], w)["spam"]["recall"]  # was ValueError
    assert est["lo"] <= est["estimate"] <= est["hi"]


def test_a_response_share_that_is_no_probability_counts_as_all_decided():
    w = inverse_probability_weights([0.5, 0.1], [float("nan"), -1.0])
    assert list(w) == [2.0, 10.0]


def test_a_corrupt_stored_inclusion_does_not_stop_the_audit_estimates(any_store, taxonomy):
    cfg = _cfg(taxonomy, qa_share=1.0)
    add_scored(any_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(6)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(any_store)
    for i in range(6):
        decide(any_store, taxonomy, cases[f"a{i}"], "ann", "scam" if i else "benign", action=None,
               rationale="checked", now=T0 + dt.timedelta(minutes=i), config=cfg)
    C = Case.__table__
    with any_store.begin() as conn:
        conn.execute(update(C).where(C.c.id.in_([cases["a1"], cases["a2"]])).values(audit_inclusion=0.5))
        conn.execute(update(C).where(C.c.id == cases["a3"]).values(audit_inclusion=-0.3))  # a hand-edited row
    audit = [r for r in ed.decision_rows(any_store, taxonomy) if r["is_audit"]]
    assert len(audit) == 6 and {r["item_id"]: r["inclusion"] for r in audit}["a3"] is None
    est = _audit_estimates(audit, taxonomy, load_evaluation_config(config_dir()))  # was ValueError
    assert est["weighted"] and est["per_policy"]["scam"]["precision"]["n"] == 6  # every audit the model called scam


@pytest.mark.parametrize("bad", ["not a mapping", ["a"], {"reviewer": 5, "outcome": "corrected"}])
def test_a_corrupt_label_error_record_does_not_stop_the_analyst_table(any_store, taxonomy, bad):
    """A re-review case whose `label_error` meta is no mapping raised AttributeError, and a reviewer
    that is no string TypeError (sorting it with the names): the report lost its analyst part, or
    stopped, for every lead."""
    cfg = _cfg(taxonomy)
    add_scored(any_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(2)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(any_store)
    C = Case.__table__
    with any_store.begin() as conn:
        conn.execute(update(C).where(C.c.id == cases["a0"]).values(
            meta={"label_error": {"reviewer": "ann", "outcome": "confirmed"}}))
        conn.execute(update(C).where(C.c.id == cases["a1"]).values(meta={"label_error": bad}))
    out = an.analyst_quality(any_store, LEAD, load_evaluation_config(config_dir()))
    rows = {r["analyst"]: r for r in out["analysts"]}
    assert rows["ann"]["label_errors"]["confirmed"] == 1
    assert out["label_errors_queued"] == (2 if isinstance(bad, dict) else 1)
    assert all(isinstance(name, str) for name in rows)


def test_a_bidi_control_in_a_name_is_shown_as_its_code_point():
    """U+202E in an analyst, slice or label name made a report row of figures read backwards in a
    text viewer; it is shown as `[U+202E]`, and the rest of the name as written."""
    from evaluation.render import plain

    assert plain("ann\u202e0.91 | 0.12\u202c") == "ann[U+202E]0.91 \\| 0.12[U+202C]"
    assert plain("\u2066x\u2069") == "[U+2066]x[U+2069]"


def test_a_corrupt_label_error_record_is_no_count_in_the_tally():
    """`tally_label_errors` (the CLI's per-analyst counts) raised on a record that is not a mapping
    and on a reviewer that is not text, as the analyst table did."""
    from labeling.label_errors import tally_label_errors

    out = tally_label_errors([["x"], "junk", 7, {"reviewer": 5, "outcome": "corrected"},
                              {"reviewer": "ann", "outcome": "confirmed"}, None])
    assert out["5"]["corrected"] == 1 and out["ann"]["confirmed"] == 1 and set(out) == {"5", "ann"}
