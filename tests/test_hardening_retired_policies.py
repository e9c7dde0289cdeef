"""Retired policies in the evaluation: a decision whose human or model label is no longer in the
taxonomy stays in the figures. Dropped, the evidence against the model went with it: two of six
audited "scam" calls that humans labelled spam made scam precision 4/6; with spam retired it
read 4/4, the model looking better the day a policy was removed."""
from __future__ import annotations

import datetime as dt

import pytest

from core.config import config_dir
from core.principals import Principal
from core.taxonomy import Taxonomy
from evaluation import data as ed
from evaluation.config import load_evaluation_config
from evaluation.report import _audit_estimates, evaluation_summary, model_quality, write_report
from evaluation.slices import slice_report
from labeling.cases import build_cases
from labeling.decisions import decide
from test_evaluation_integrity import _cases, _cfg
from test_queue_support import T0, add_scored

LEAD = Principal("lena", "lead")


def retire(taxonomy: Taxonomy, policy: str) -> Taxonomy:
    """`taxonomy` with `policy` removed, and every reference to it (escalation, source maps)."""
    d = taxonomy.model_dump()
    del d["policies"][policy]
    for crit in d["escalation"]:
        crit["policies"] = [p for p in crit["policies"] if p != policy]
    d["escalation"] = [c for c in d["escalation"] if c["policies"] or c.get("patterns")]
    d["sources"] = {k: v for k, v in d["sources"].items()
                    if policy not in v["labels"].values() and all(r["policy"] != policy for r in v["refine"])}
    return Taxonomy.model_validate(d)


def _decided(store, taxonomy, plan):
    """Items scored by the model as each plan entry's first label, QA-audited (qa_share 1) and
    decided by a human as its second."""
    cfg = _cfg(taxonomy, qa_share=1.0)
    add_scored(store, taxonomy, [{"id": i, "label": m, "p": 0.9} for i, (m, _) in plan.items()])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    cases = _cases(store)
    for n, (i, (_, h)) in enumerate(plan.items()):
        decide(store, taxonomy, cases[i], "ann", h, action=None, rationale="checked",
               now=T0 + dt.timedelta(minutes=n), config=cfg)


SCAM_PLAN = {**{f"s{i}": ("scam", "scam") for i in range(4)}, **{f"x{i}": ("scam", "spam") for i in range(2)},
             **{f"b{i}": ("benign", "benign") for i in range(4)}}


def test_retiring_a_policy_does_not_flatter_the_precision_of_another(any_store, taxonomy):
    _decided(any_store, taxonomy, SCAM_PLAN)
    ecfg = load_evaluation_config(config_dir())
    before = _audit_estimates([r for r in ed.decision_rows(any_store, taxonomy) if r["is_audit"]], taxonomy, ecfg)
    assert before["per_policy"]["scam"]["precision"]["estimate"] == pytest.approx(4 / 6)
    retired = retire(taxonomy, "spam")
    rows = ed.decision_rows(any_store, retired)
    assert len(rows) == 10 and sum(r["retired"] for r in rows) == 2  # was 8 rows, the spam ones gone
    after = _audit_estimates([r for r in rows if r["is_audit"]], retired, ecfg)
    prec = after["per_policy"]["scam"]["precision"]
    assert prec["estimate"] == pytest.approx(4 / 6) and prec["n"] == 6  # was 4/4 on n = 4
    assert after["n"] == 10 and after["prevalence"]["scam"]["estimate"] == pytest.approx(4 / 10)  # was 4/8
    assert after["accuracy"]["estimate"] == pytest.approx(8 / 10)
    assert "spam" not in after["per_policy"]  # a retired policy gets no row of its own


def test_a_retired_model_label_is_a_miss_of_the_humans_current_policy(any_store, taxonomy):
    plan = {**{f"s{i}": ("scam", "scam") for i in range(2)}, **{f"m{i}": ("spam", "scam") for i in range(2)},
            "b0": ("benign", "benign")}
    _decided(any_store, taxonomy, plan)
    retired = retire(taxonomy, "spam")
    rows = ed.decision_rows(any_store, retired)
    assert len(rows) == 5 and {r["item_id"] for r in rows if r["retired"]} == {"m0", "m1"}
    est = _audit_estimates([r for r in rows if r["is_audit"]], retired, load_evaluation_config(config_dir()))
    assert est["per_policy"]["scam"]["recall"]["estimate"] == pytest.approx(2 / 4)  # was 2/2
    assert est["per_policy"]["scam"]["precision"]["estimate"] == pytest.approx(1.0)


def test_the_report_counts_retired_labels_and_does_not_stop(any_store, taxonomy, tmp_path):
    """`report._quality` and `evaluation_summary` looked each label's index up in the taxonomy: a
    retired label kept in the rows raised KeyError there."""
    plan = {**SCAM_PLAN, "m0": ("spam", "benign")}
    _decided(any_store, taxonomy, plan)
    retired = retire(taxonomy, "spam")
    ecfg = load_evaluation_config(config_dir())
    q = model_quality(any_store, retired)
    assert q["decisions"] == 11 and q["qa_audit_sample"]["per_label"]["scam"]["precision"] == pytest.approx(4 / 6)
    assert q["all_decisions"]["accuracy"] == pytest.approx(8 / 11)
    s = evaluation_summary(any_store, retired, LEAD, config=ecfg)
    assert s["retired"] == {"decisions": 3, "qa_audit": 3, "labels": {"spam": 3}}
    assert s["estimates"]["all_decisions"]["per_policy"]["scam"]["precision"]["estimate"] == pytest.approx(4 / 6)
    # the human's retired label is a wrong top label for calibration; a retired model label's
    # scores lack the model's own class, so that row is left out of it and counted
    assert s["calibration"]["n"] == 10 and s["calibration"]["retired_model"] == 1
    out = write_report(any_store, retired, tmp_path / "r", config=ecfg)
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert out["retired"]["decisions"] == 3
    assert ("**3** of these decisions carry a policy label no longer in the taxonomy (spam: 3), "
            "3 of them from the QA audit") in md


def test_no_retired_label_adds_no_line(any_store, taxonomy, tmp_path):
    _decided(any_store, taxonomy, SCAM_PLAN)
    s = evaluation_summary(any_store, taxonomy, LEAD, config=load_evaluation_config(config_dir()))
    assert s["retired"] == {"decisions": 0, "qa_audit": 0, "labels": {}}
    assert not any(r["retired"] for r in ed.decision_rows(any_store, taxonomy))


def test_slices_keep_a_retired_label_as_not_benign(taxonomy):
    """A retired human label is a policy someone enforced: not benign, so a model that called it
    benign missed it (FNR), and the model's scam call on it is a false positive for scam."""
    base = {"is_audit": False, "inclusion": None, "response": None, "source": "t", "surface": "sms",
            "language": None, "campaign": False, "text": "x", "served": None}
    j = taxonomy.labels.index(taxonomy.benign_label)
    proba = [0.0] * len(taxonomy.labels)
    proba[j] = 0.9
    rows = [{**base, "human": "spam", "model": "benign", "proba": proba, "retired": True},
            {**base, "human": "spam", "model": "scam", "proba": proba, "retired": True},
            {**base, "human": "scam", "model": "scam", "proba": proba, "retired": False}]
    retired = retire(taxonomy, "spam")
    rep = slice_report(rows, retired, load_evaluation_config(config_dir()))["overall"]
    assert rep["fnr"]["k"] == 1 and rep["fnr"]["n"] == 3
    assert rep["per_policy"]["scam"]["precision"]["estimate"] == pytest.approx(0.5)
