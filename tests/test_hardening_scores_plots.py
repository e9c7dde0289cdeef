"""Hardening: a broken model's scores, names in plots, lone surrogates, prevalence.

- A NaN, infinite, negative or over-1 score is refused where predictions are written (the item is
  left unscored with a reason, the rest of the batch stored), and no priority is ever NaN.
- A policy, queue or model version named `$\\foo{$` is plot text, not mathtext.
- A lone surrogate (`\\ud800`) in a text a tokenizer reads is refused in one line (or, for stored
  text being scored, replaced and flagged), by one rule in `core.text`.
- Per-policy prevalence from the QA audit, uniform and stratified, with its interval.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from core.plotting import label_text
from core.predictions import prediction_problem
from core.schema import Prediction
from core.text import has_lone_surrogate, lone_surrogate_at, replace_lone_surrogates
from evaluation import estimates as es
from models.config import load_models_config
from models.registry import load_model_version, train_model
from models.scoring import prepare_text, score_items
from test_models_fixtures import add_items, toy_corpus

MODELS = load_models_config()
EVIL = "$\\foo{$"


# -- 1. broken scores ----------------------------------------------------------------------------
@pytest.mark.parametrize("value,says", [(float("nan"), "is nan"), (float("inf"), "is inf"),
                                        (-0.2, "outside [0, 1]"), (1.7, "outside [0, 1]"), ("0.3", "not a number")])
def test_prediction_problem_names_the_field(value, says):
    row = {"score": 0.9, "scores": {"spam": 0.9, "benign": value}, "uncertainty": 0.2}
    problem = prediction_problem(row)
    assert problem.startswith("scores['benign'] ") and says in problem and "\n" not in problem
    assert prediction_problem({"score": 0.9, "scores": {"spam": 0.9, "benign": 0.1}, "uncertainty": value}
                              ).startswith("uncertainty ")
    assert prediction_problem({"score": 1.0 + 1e-9, "scores": {"spam": 1.0, "benign": 0.0}, "uncertainty": 0.0}) is None


def test_a_broken_model_leaves_its_bad_items_unscored_and_stores_the_rest(any_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(any_store, texts, ys)
    bad = ["poison nan", "poison inf", "poison neg", "poison big"]
    bad_ids = add_items(any_store, bad, [None] * 4, prefix="bad")
    train_model(any_store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1}, show_progress=False)
    model, row = load_model_version(any_store, None)
    honest = model.predict_proba

    def hostile(batch, emb=None):  # a broken artifact: garbage for some texts, honest for the rest
        out = np.array(honest(batch, emb), dtype=float)
        for i, t in enumerate(batch):
            if t.startswith("poison"):
                out[i, 0] = {"nan": np.nan, "inf": np.inf, "neg": -0.5, "big": 3.0}[t.split()[1]]
        return out

    model.predict_proba = hostile
    summary = score_items(any_store, taxonomy, row["id"], model=model, config=MODELS, show_progress=False)
    assert summary.unscored == 4 and summary.scored == len(texts)
    assert sum(summary.by_label.values()) == len(texts)
    for item_id, line in zip(bad_ids, summary.refused):
        assert line.startswith(f"item {item_id!r}: ") and "left unscored" in line and "\n" not in line
    assert any("is nan" in x for x in summary.refused) and any("outside [0, 1]" in x for x in summary.refused)
    assert "4 left unscored" in summary.describe()
    with any_store.read() as conn:
        stored = set(conn.execute(select(Prediction.item_id)).scalars())
    assert stored.isdisjoint(bad_ids) and len(stored) == len(texts)
    model.predict_proba = honest  # a fixed model scores them on the next run (they were left unscored)
    again = score_items(any_store, taxonomy, row["id"], model=model, config=MODELS, show_progress=False)
    assert again.scored == 4 and again.unscored == 0


def test_no_priority_is_nan(taxonomy, queue_config):
    from labeling.priority import PriorityError, score_features

    t0 = dt.datetime(2026, 11, 25, 8)
    feats = {"risk": float("nan"), "uncertainty": 0.1, "severity": None, "label": "spam", "score": 0.9}
    with pytest.raises(PriorityError, match=r"^no priority: feature risk is nan"):
        score_features(taxonomy, feats, queue_config, t0, t0 + dt.timedelta(hours=1), t0)
    p, _, _ = score_features(taxonomy, dict(feats, risk=0.4), queue_config, t0, t0 + dt.timedelta(hours=1), t0)
    assert np.isfinite(p)


def test_build_cases_skips_a_bad_stored_prediction_and_builds_the_rest(any_store, taxonomy, queue_config):
    """Needs the labeling/cases.py change (`_plan`), see the report: a NaN stored before the write
    check existed made `build_cases` fail for the whole batch (NOT NULL constraint: cases.priority)."""
    from labeling.cases import build_cases
    from test_queue_support import T0, add_scored, scores_for

    cfg = queue_config.model_copy(update={"qa_share": 0.0, "qa_strata": [], "calibration_sets": []})
    bad = scores_for(taxonomy, "scam", 0.9)
    bad["benign"] = float("nan") if any_store.dialect == "sqlite" else 7.0  # PostgreSQL's JSON has no NaN
    add_scored(any_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(3)]
               + [{"id": "bad1", "label": "scam", "p": 0.9, "scores": bad}])
    out = build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    assert out["item_cases"] == 3 and out["skipped"] == 1
    assert out["skipped_reasons"][0].startswith("bad1: scores['benign'] is ")


# -- 2. names in plots ---------------------------------------------------------------------------
def test_label_text_escapes_mathtext():
    assert label_text(EVIL) == "\\$\\foo{\\$" and label_text(3) == "3"


def test_plots_of_this_floor_draw_a_dollar_name(tmp_path):
    from evaluation import plots
    from models.metrics import plot_reliability

    proba, y = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]]), np.array([1, 0, 1])
    assert plot_reliability(proba, y, str(tmp_path / "r.png"), title=f"{EVIL} on validation split")
    w = [{"start": "2026-11-01T00:00:00", "end": f"2026-11-0{i + 2}T00:00:00", "n": 5, "k": 1,
          "estimate": 0.2, "lo": 0.1, "hi": 0.5} for i in range(3)]
    assert plots.override_rate_png(w, {EVIL: {"windows": w}}, title=f"Override rate, {EVIL}")[:4] == b"\x89PNG"
    assert plots.reliability_png(proba, y, title=EVIL)[:4] == b"\x89PNG"
    per = es.policy_estimates([EVIL, "benign"], [EVIL, "benign"], [EVIL, "benign"])
    assert plots.estimates_png(per, title=EVIL)[:4] == b"\x89PNG"


def test_plots_of_the_upper_floors_draw_a_dollar_name(tmp_path):
    """Queue, tier, analyst, model-version, policy and evaluation-set names are data: the KPI
    chart, the Operations tab's chart and the promotion report's two plots raised ValueError."""
    from evaluation.ops import plot_kpis
    from evaluation.promotion_report import plot_comparison, plot_gate_history
    from workbench.ui.operations import ops_chart

    kpis = {"as_of": "2026", "queues": {EVIL: {"backlog": 2, "total": 3}, "fraud": {"backlog": 1, "total": 1}},
            "sla": {EVIL: {"met": 1, "missed": 0, "rate": 1.0}}, "resolved_per_analyst": {EVIL: 3}}
    plot_kpis(kpis, tmp_path / "k.png")
    ops_chart(kpis, tmp_path / "o.png")
    comp = {EVIL: {"n": 5, "macro_f1": {"delta": 0.1, "lower": 0.0, "upper": 0.2},
                   "auc": {EVIL: {"delta": 0.1, "lower": 0.0, "upper": 0.2}}}}
    plot_comparison(tmp_path / "c.png", EVIL, "v2", comp, None)
    plot_gate_history(tmp_path / "g.png", [{"event": 1, "challenger": "v2", "passed": True, "metric": "macro_f1",
                                            "sets": {EVIL: {"delta": 0.1, "lower": 0.0, "n": 3}}}], EVIL)
    for name in ("k", "o", "c", "g"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


# -- 3. lone surrogates --------------------------------------------------------------------------
def test_one_rule_for_lone_surrogates():
    for s in ("\ud800", "a\udbff", "x\udc00y", "b\udcff"):
        assert has_lone_surrogate(s)
    assert lone_surrogate_at("ab\ud800") == 3 and lone_surrogate_at("caf\u00e9 \U0001f600") is None
    assert replace_lone_surrogates("a\ud800b\udcffc") == "a\ufffdb\ufffdc"


def test_a_lone_surrogate_is_refused_in_one_line_before_the_tokenizer(sqlite_store, campaign_settings, taxonomy,
                                                                      queue_config):
    from clustering.search import search_text
    from clustering.service import CampaignError
    from core.principals import SYSTEM
    from labeling.errors import QueueError
    from labeling.seeding import check_example, check_keyword, seed_cases

    with pytest.raises(CampaignError, match=r"^search text is not Unicode text \(a lone surrogate .* character 5\)$"):
        search_text(sqlite_store, "win \ud800 prize", campaign_settings)
    with pytest.raises(QueueError, match=r"^--query 1: .*lone surrogate"):
        check_example("win \ud800 prize", "--query 1")
    with pytest.raises(QueueError, match=r"^--keyword 1: .*lone surrogate"):
        check_keyword("pr\ud800mio", "--keyword 1")
    with pytest.raises(QueueError, match=r"^example 1: .*lone surrogate"):
        seed_cases(sqlite_store, taxonomy, queue_config, SYSTEM["system"], policy="spam", examples=["win \ud800"],
                   embedder=None)


def test_stored_text_with_a_lone_surrogate_is_scored_as_replacement_characters():
    p = prepare_text("cash \ud800 now \udcff", max_chars=100)
    assert p.text == "cash \ufffd now \ufffd" and p.flags == {"undecodable": True}
    p.text.encode("utf-8")  # a tokenizer can read it


# -- 4. prevalence -------------------------------------------------------------------------------
LABELS = ["benign", "spam", "hate"]


def test_prevalence_uniform_by_hand():
    truth = ["spam"] * 3 + ["benign"] * 7
    model = ["spam", "spam", "benign"] + ["benign"] * 6 + ["spam"]
    prev = es.prevalence_estimates(truth, LABELS, model, conf=0.9)
    assert prev["spam"]["estimate"] == pytest.approx(0.3) and prev["spam"]["n"] == 10
    assert (prev["spam"]["lo"], prev["spam"]["hi"]) == pytest.approx(es.wilson(3, 10, 0.9))
    assert prev["spam"]["method"] == "wilson"
    assert prev["hate"]["estimate"] == 0.0 and prev["hate"]["lo"] == 0.0
    assert prev["hate"]["hi"] == pytest.approx(es.wilson(0, 10, 0.9)[1])  # the upper bound of a policy never seen
    assert es.prevalence_estimates([], LABELS) == {}


def test_prevalence_stratified_by_hand():
    # band A drawn with pi = 1/2 (weight 2), band B with pi = 1/10 (weight 10)
    truth = ["spam", "spam", "benign", "benign"] + ["spam", "benign", "benign", "benign", "benign"]
    model = ["spam", "spam", "benign", "spam"] + ["benign"] * 5
    w = [2.0] * 4 + [10.0] * 5
    prev = es.prevalence_estimates(truth, LABELS, model, w, conf=0.9)
    point = (2 * 2 + 1 * 10) / (4 * 2 + 5 * 10)  # Horvitz-Thompson share
    s = prev["spam"]
    assert s["estimate"] == pytest.approx(point) and s["n"] == 9
    assert s["method"] == "stratified-posterior" and 0 < s["lo"] < point < s["hi"] < 1
    assert prev["benign"]["estimate"] == pytest.approx(1 - point)
    census = es.prevalence_estimates(truth, LABELS, model, [1.0] * 9)  # pi = 1 everywhere: known exactly
    assert census["spam"]["lo"] == census["spam"]["hi"] == pytest.approx(3 / 9)


def test_stratified_prevalence_is_unbiased_and_covers():
    """A population where spam hides mostly in a big, rarely audited band: the Horvitz-Thompson
    prevalence averages to the truth (the unweighted share of the audit would not), and the
    90% interval covers it about as often as it says."""
    rng = np.random.default_rng(7)
    n_hi, n_lo = 2000, 18000
    truth = np.array(["spam"] * 1200 + ["benign"] * 800 + ["spam"] * 360 + ["benign"] * 17640, dtype=object)
    model = np.array(["spam"] * n_hi + ["benign"] * n_lo, dtype=object)
    pi = np.r_[np.full(n_hi, 0.05), np.full(n_lo, 0.01)]
    true_prev = float((truth == "spam").mean())
    ests, raw, covered = [], [], 0
    for rep in range(200):
        s = rng.random(len(truth)) < pi
        e = es.prevalence_estimates(truth[s], ["spam"], model[s], 1 / pi[s], conf=0.9, seed=rep)["spam"]
        ests.append(e["estimate"])
        raw.append(float((truth[s] == "spam").mean()))
        covered += e["lo"] <= true_prev <= e["hi"]
    assert abs(np.mean(ests) - true_prev) < 0.004  # standard error of the mean here is about 0.001
    assert np.mean(raw) - true_prev > 0.1  # unweighted: the over-drawn spam band inflates it
    assert covered / 200 >= 0.84


def test_report_shows_prevalence_in_the_estimates_section(taxonomy):
    from core.config import config_dir
    from evaluation.config import load_evaluation_config
    from evaluation.report import _audit_estimates
    from evaluation.sections import _estimate_sections

    audit = [{"human": h, "model": m, "inclusion": 0.1} for h, m in
             [("spam", "spam"), ("spam", "benign"), ("benign", "benign"), ("benign", "benign")]]
    qa = _audit_estimates(audit, taxonomy, load_evaluation_config(config_dir()))
    assert qa["prevalence"]["spam"]["estimate"] == pytest.approx(0.5) and qa["prevalence"]["spam"]["n"] == 4
    s = {"estimates": {"qa_audit": qa, "all_decisions": {"per_policy": {}, "accuracy": es.proportion(0, 0)}},
         "target_width": 0.1, "confidence": 0.9}
    tables = _estimate_sections(s)[0].tables
    prev = [t for t in tables if t.headers[1] == "prevalence"][0]
    spam = [r for r in prev.rows if r[0] == "spam"][0]
    assert str(spam[1]).startswith("0.500 [") and str(spam[1]).endswith("n=4")
