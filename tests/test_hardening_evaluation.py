"""Evaluation hardening: the audit sample keeps its contested items, the operations KPIs count an
undone slip nowhere, names from configs and data stay text in report.md, report.html and the
plots, and a Wilson interval at 0 of n or n of n holds its own estimate."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from core.config import config_dir
from core.principals import Principal
from evaluation import data as ed
from evaluation import plots, render
from evaluation.analysts import analyst_quality
from evaluation.config import load_evaluation_config
from evaluation.drift import DriftConfig, DriftReport, compare_windows, drift_markdown, plot_drift
from evaluation.drift_stats import WindowData
from evaluation.estimates import policy_estimates, proportion, wilson
from evaluation.ops import ops_kpis
from evaluation.overrides import override_telemetry
from evaluation.report import _audit_estimates, write_report
from labeling import appeals as APP
from labeling.cases import build_cases
from labeling.decisions import correct, decide
from labeling.undo import undo_last
from test_evaluation_integrity import _cases as _item_cases, _cfg  # the same store helpers
from test_queue_support import T0, add_scored

EVIL_LANG = "<img src=x onerror=alert(1)>"
EVIL_SURFACE = "[click me](https://evil.example/phish)"
EVIL_SOURCE = "![pixel](https://tracker.example/p.png)"
EVIL_POLICY = "$\\foo{$"
LEAD = Principal("lena", "lead")


def test_appealed_audit_items_stay_in_the_audit_sample(any_store, taxonomy):
    """An appeal's outcome supersedes the audited decision from the appeals case: read from there,
    the uniform audit lost every appealed item, the reversal (the model's own miss) first, and
    precision read 4/4 where the audit says 5/6."""
    cfg = _cfg(taxonomy, qa_share=1.0)
    add_scored(any_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(6)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(any_store)
    for i in range(6):
        decide(any_store, taxonomy, cases[f"a{i}"], "ann", "scam", action="block_sender", rationale="prize lure",
               now=T0 + dt.timedelta(minutes=i), config=cfg)
    for i, outcome in enumerate(("reverse", "confirm")):
        ap = APP.appeal(any_store, f"a{i}", "user-1", "not me", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
        APP.resolve_appeal(any_store, taxonomy, ap["id"], "bob", outcome, "checked", config=cfg,
                           now=T0 + dt.timedelta(hours=2))
    rows = ed.decision_rows(any_store, taxonomy)
    audit = [r for r in rows if r["is_audit"]]
    assert len(rows) == 6 and len(audit) == 6
    assert {r["kind"] for r in audit} == {"qa_audit", "appeal"}
    assert all(r["inclusion"] == 1.0 and r["queue"] != cfg.appeals_queue for r in audit)
    est = _audit_estimates(audit, taxonomy, load_evaluation_config(config_dir()))
    assert est["per_policy"]["scam"]["precision"]["estimate"] == pytest.approx(5 / 6)


def test_ops_kpis_count_an_undone_slip_nowhere(sqlite_store, taxonomy, roles):
    """A slip taken back with undo is no decision and no judgement: the KPIs counted it (1 override
    in 3 decisions) where the evaluation report, on the same store, says 0 in 2."""
    cfg = _cfg(taxonomy)
    add_scored(sqlite_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(2)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(sqlite_store)
    t = T0 + dt.timedelta(minutes=1)
    decide(sqlite_store, taxonomy, cases["a0"], "ann", "benign", rationale="slip", now=t, config=cfg)
    undo_last(sqlite_store, "ann", cfg, 60, now=t + dt.timedelta(seconds=5))
    for k, item in enumerate(("a0", "a1")):
        decide(sqlite_store, taxonomy, cases[item], "ann", "scam", action="block_sender", rationale="prize lure",
               now=t + dt.timedelta(seconds=10 + k), config=cfg)
    kpis = ops_kpis(sqlite_store, now=T0 + dt.timedelta(hours=1), config=cfg, actor="lead")
    assert kpis["decisions"] == 2 and kpis["labelling_acts"] == 2
    assert kpis["override_rate"] == 0.0 and kpis["rework_rate"] == 0.0
    ov = kpis["rate_intervals"]["override_rate"]
    report = override_telemetry(sqlite_store, taxonomy, load_evaluation_config(config_dir()))["overall"]
    assert (ov["k"], ov["n"]) == (report["k"], report["n"]) == (0, 2)
    assert kpis["resolved_per_analyst"] == {"ann": 2}


def test_analyst_override_rates_count_first_judgements_only(sqlite_store, taxonomy, roles):
    """A lead's correction is rework, not a judgement of the model: the analyst table gave the lead
    an override rate of 2/2 for two corrections, where the report counts 0 overrides in 4."""
    cfg = _cfg(taxonomy)
    add_scored(sqlite_store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(4)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(sqlite_store)
    ids = [decide(sqlite_store, taxonomy, cases[f"a{i}"], "ann", "scam", action="block_sender", rationale="lure",
                  now=T0 + dt.timedelta(minutes=i), config=cfg)["decision_ids"][0] for i in range(4)]
    for k in range(2):
        correct(sqlite_store, taxonomy, ids[k], LEAD, "benign", rationale="a real bank notice",
                now=T0 + dt.timedelta(hours=1, minutes=k))
    ecfg = load_evaluation_config(config_dir())
    rows = {r["analyst"]: r for r in analyst_quality(sqlite_store, LEAD, ecfg)["analysts"]}
    assert (rows["lena"]["override_rate"]["k"], rows["lena"]["override_rate"]["n"]) == (0, 0)
    assert (rows["ann"]["override_rate"]["k"], rows["ann"]["override_rate"]["n"]) == (0, 4)
    assert (rows["ann"]["rework_rate"]["k"], rows["ann"]["rework_rate"]["n"]) == (2, 4)
    overall = override_telemetry(sqlite_store, taxonomy, ecfg)["overall"]
    assert sum(r["override_rate"]["n"] for r in rows.values()) == overall["n"] == 4


def test_hostile_names_stay_text_in_the_report(sqlite_store, taxonomy, tmp_path):
    """An item's language, surface and source become slice names: report.md carried them raw, so a
    `<img onerror>`, a link or a remote tracking image rendered in any Markdown viewer."""
    cfg = _cfg(taxonomy)
    add_scored(sqlite_store, taxonomy, [
        {"id": f"a{i}", "label": "scam", "p": 0.9, "meta": {"language": EVIL_LANG}, "surface": EVIL_SURFACE,
         "source": EVIL_SOURCE if i % 2 else "sms"} for i in range(4)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cases = _item_cases(sqlite_store)
    for i in range(4):
        decide(sqlite_store, taxonomy, cases[f"a{i}"], "ann", "scam", action="block_sender", rationale="prize lure",
               now=T0 + dt.timedelta(minutes=i), config=cfg)
    out = write_report(sqlite_store, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()))
    md = open(out["report"], encoding="utf-8").read()
    page = open(out["html"], encoding="utf-8").read()
    for raw in (EVIL_LANG, EVIL_SURFACE, EVIL_SOURCE):
        assert raw not in md
    assert not re.search(r"(?<!\\)\]\(https|(?<!\\)<img", md)  # no link, image or tag left live
    assert "language=\\<img src=x onerror=alert(1)\\>" in md and "surface=\\[click me\\](https" in md
    assert "<img src=x" not in page and "language=&lt;img src=x onerror=alert(1)&gt;" in page
    assert "surface=[click me](https://evil.example/phish)" in page  # text, as written
    assert "0.00 [0.00, " in md  # the figures stay readable


def test_tables_escape_names_and_keep_their_own_markup():
    t = render.Table(["policy", f"F1 {EVIL_LANG}"], [["a|b **x** `c` _i_", render.Md("**changed**")]])
    md = render.table_markdown(t)
    assert "\\<img" in md and "a\\|b \\*\\*x\\*\\* \\`c\\` \\_i\\_" in md and "| **changed** |" in md
    page = render.table_html(t)
    assert "&lt;img" in page and "<td>a|b **x** `c` _i_</td>" in page and "<b>changed</b>" in page
    assert render.inline_html("a \\*\\*b\\*\\* **c**") == "a **b** <b>c</b>"


def test_plots_draw_names_with_dollar_signs(tmp_path):
    """matplotlib reads `$...$` as mathtext: a policy or model version named `$\\foo{$` failed the
    whole report (ValueError) and a well-formed one drew as a formula."""
    per = policy_estimates([EVIL_POLICY, "benign", EVIL_POLICY], [EVIL_POLICY, "benign", "benign"],
                           ["benign", EVIL_POLICY])
    assert plots.estimates_png(per)[:4] == b"\x89PNG"
    w = [{"start": f"2026-11-0{i + 1}T00:00:00", "end": f"2026-11-0{i + 2}T00:00:00", "n": 5, "k": 1,
          "estimate": 0.2, "lo": 0.1, "hi": 0.5} for i in range(3)]
    assert plots.override_rate_png(w, {EVIL_POLICY: {"windows": w}, "v2": {"windows": w}})[:4] == b"\x89PNG"
    rng = np.random.default_rng(0)

    def window(n):
        s = rng.beta(2, 5, n)
        return WindowData(n_items=n, scores=np.c_[1 - s, s], predicted=np.array(["benign"] * n, dtype=object))

    checks = compare_windows(window(50), window(50), ["benign", EVIL_POLICY], DriftConfig())
    t = dt.datetime(2026, 11, 30)
    report = DriftReport((t - dt.timedelta(days=35), t - dt.timedelta(days=7)), (t - dt.timedelta(days=7), t), t,
                         50, 50, checks)
    assert plots.figure_png(plot_drift(report))[:4] == b"\x89PNG"
    assert "| score\\_psi:$\\\\foo{$ |" in drift_markdown(report)


@pytest.mark.parametrize("n", [1, 5, 17, 27, 28, 30, 33, 44, 1000])
def test_wilson_bounds_are_exact_at_0_and_n(n):
    """Rounding put the upper bound of n of n at 1 - 1e-16 (629 of n = 1..1999): an interval beside
    its own estimate of 1.0, which a true rate of 1 never fell in."""
    assert wilson(n, n)[1] == 1.0 and wilson(0, n)[0] == 0.0
    e = proportion(n, n)
    assert e["lo"] <= e["estimate"] <= e["hi"]
    prec = policy_estimates(["spam"] * n, ["spam"] * n, ["spam"])["spam"]["precision"]
    assert prec["lo"] <= prec["estimate"] == 1.0 <= prec["hi"]
