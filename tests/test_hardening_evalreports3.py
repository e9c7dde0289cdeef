"""Evaluation outputs, audited with hostile and edge inputs: names from the data stay text in the
comparison report, a set too small for an interval says so, every report file and plot is
replaced in one step, and the estimates' text names the interval method the table used."""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

from core.config import config_dir
from evaluation import drift as dr
from evaluation.compare import paired_bootstrap
from evaluation.config import load_evaluation_config
from evaluation.drift_stats import WindowData
from evaluation.estimates import wilson
from evaluation.promotion_report import plot_comparison, write_markdown

HOSTILE = "sp|am`x`<script>alert(1)</script>\n# heading [l](http://x.test) *b*"


def _entry(delta: float = 0.05) -> dict:
    return {"champion": 0.8, "challenger": 0.8 + delta, "delta": delta, "lower": 0.01, "upper": 0.09,
            "p_not_better": 0.02}


def _result(comparisons: dict, **more) -> dict:
    return {"challenger": "v2", "champion": "v1", "promoted": False, "confidence": 0.9, "data": {},
            "gate": {"metric": "macro_f1", "min_lower_bound": 0.0, "reason": "r", "passed": False},
            "comparisons": comparisons, **more}


def _table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("|")]


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row)) - 2


def test_hostile_names_stay_text_in_the_comparison_report(tmp_path):
    """A model, policy, evaluation-set, split or left-out label name, a gate reason or a warning
    holding `|`, backticks, `<script>` or a newline broke the table rows, started headings of its
    own and put a live tag into comparison.md."""
    res = _result({HOSTILE: {"n": 10, "groups": 5, "classes": 2, "macro_f1": _entry(), "auc": {HOSTILE: _entry()}}},
                  challenger=HOSTILE, champion=HOSTILE, warnings=[HOSTILE], promote_refused=HOSTILE,
                  data={"items": 3, "by_split": {HOSTILE: 3}, "dropped": {HOSTILE: 2}, "warnings": [HOSTILE]})
    res["gate"]["reason"] = HOSTILE
    md = open(write_markdown(tmp_path / "c.md", res, "comparison.png"), encoding="utf-8").read()
    rows = _table_rows(md)
    assert rows and all(_cells(r) == _cells(rows[0]) or _cells(r) == 3 for r in rows), rows
    assert {_cells(r) for r in rows} == {7, 3}
    live = re.findall(r"(?<!\\)[<>]|(?<!\\)\]\(|(?i:https?|ftp)://|www\.|\w@\w",
                      md.replace("![comparison](comparison.png)", ""))
    assert live == [], live  # no raw tag, link, image or autolink left
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# Challenger ") and not any(h.startswith("# heading") for h in headings)
    assert len(headings) == 4  # title, "Evaluation sets", the one set, "Training data"


@pytest.mark.parametrize("y, says", [([1], "1 group"), ([1, 1, 1], "one class only")])
def test_a_set_too_small_for_an_interval_says_not_enough_data(tmp_path, y, says):
    """One item gave the interval [+0.0000, +0.0000] with P(not better) 1, a measured tie to the
    reader; one class dropped every AUC row without a word."""
    n = len(y)
    p, pred = np.full((n, 2), 0.5), np.ones(n, dtype=int)
    comp = paired_bootstrap(y, p, p, pred, pred, ["benign", "spam"], n_boot=50)
    md = open(write_markdown(tmp_path / "c.md", _result({"test_split": comp}), "x.png"), encoding="utf-8").read()
    assert "Not enough data" in md and says in md
    f1 = [r for r in _table_rows(md) if r.startswith("| macro F1")][0]
    cells = [c.strip() for c in f1.split("|")[1:-1]]
    if n == 1:
        assert cells[4:] == ["n/a", "n/a", "n/a"]
    assert "nan" not in md.lower().replace("n/a", "")


def _failing_pil_save(monkeypatch):
    """PIL's PNG writer fails half way (disk full) after writing a few bytes where it was told to."""
    import PIL.Image

    def save(self, fp, *a, **k):
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "wb") as f:
                f.write(b"\x89PNG half")
        else:
            fp.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", save)


def test_a_failed_write_leaves_the_last_comparison_png(tmp_path, monkeypatch):
    """`savefig(path)` truncated the PNG before writing it: a failure left half an image where
    the last good one was (and a reader could see one at any time)."""
    png = tmp_path / "comparison.png"
    png.write_bytes(b"OLD")
    _failing_pil_save(monkeypatch)
    comps = {"test_split": {"n": 10, "groups": 5, "macro_f1": {**_entry()}, "auc": {}}}
    with pytest.raises(OSError):
        plot_comparison(png, "v1", "v2", comps, None)
    assert png.read_bytes() == b"OLD" and sorted(p.name for p in tmp_path.iterdir()) == ["comparison.png"]


def test_a_delta_outside_its_bootstrap_interval_is_drawn(tmp_path):
    """A percentile bootstrap interval need not hold the point estimate (F1 and AUC are not linear
    in the resample); the negative error bar made matplotlib raise, ending the retrain after the
    challenger was trained, with no report."""
    comps = {"test_split": {"n": 10, "groups": 5, "macro_f1": _entry(), "auc": {HOSTILE: _entry(-0.02)}}}
    out = plot_comparison(tmp_path / "c.png", "v1", "v2", comps, None)
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_comparison_png_stays_readable_with_long_names(tmp_path, monkeypatch):
    """A policy or model name with a newline drew on two lines, and a long one (300 characters)
    squeezed the delta panel to a sliver: the figure is 1500 pixels wide, shown at 1366."""
    from matplotlib.figure import Figure
    from PIL import Image

    drawn, save = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), save(self, *a, **k))[1])
    long = HOSTILE + "W" * 300
    comps = {"test_split": {"n": 10, "groups": 5, "macro_f1": _entry(), "auc": {long: _entry(0.03)}}}
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.9, 0.1]])
    out = plot_comparison(tmp_path / "c.png", "v1$x$", long, comps, {"champion": (p, y), "challenger": (p, y)})
    with Image.open(out) as im:
        assert im.size == (1500, 460)
    axes = drawn[0].axes
    assert min(ax.get_position().width for ax in axes) > 0.12, [ax.get_position().width for ax in axes]
    texts = [t.get_text() for t in axes[2].get_yticklabels()] + [ax.get_title() for ax in axes[:2]]
    assert all(len(t.split("\n")) <= 2 and max(len(line) for line in t.split("\n")) < 90 for t in texts), texts
    assert [f.name for f in tmp_path.iterdir()] == ["c.png"]


def test_the_evaluation_report_is_written_all_or_nothing(sqlite_store, taxonomy, tmp_path, monkeypatch):
    """report.md was written before report.html was rendered: a rendering error left this run's
    report.md beside the last run's report.html. And nothing lands outside the chosen folder,
    whatever the model version is called."""
    from evaluation import render
    from evaluation.report import write_report

    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("OLD", encoding="utf-8")

    def broken(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(render, "report_html", broken)
    with pytest.raises(RuntimeError):
        write_report(sqlite_store, taxonomy, out, model_version="../../x/evil",
                     config=load_evaluation_config(config_dir()))
    assert (out / "report.md").read_text(encoding="utf-8") == "OLD"
    monkeypatch.undo()
    before = {p for p in tmp_path.rglob("*") if p.parent != out}
    res = write_report(sqlite_store, taxonomy, out, model_version="../../x/evil<script>|\n",
                       config=load_evaluation_config(config_dir()))
    assert {p for p in tmp_path.rglob("*") if p.parent != out} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    md = open(res["report"], encoding="utf-8").read()
    assert "evil\\<script\\>\\|" in md and "nan" not in re.sub(r"n/a", "", md).lower()


def test_the_estimates_text_names_the_interval_method_the_table_used(taxonomy):
    """evaluation.yaml `interval_method: bootstrap` computed percentile bootstrap intervals while
    the section still read "Wilson intervals"."""
    from evaluation.report import _audit_estimates
    from evaluation.estimates import proportion
    from evaluation.sections import _estimate_sections

    audit = [{"human": h, "model": m, "inclusion": None} for h, m in
             [("spam", "spam"), ("spam", "benign"), ("benign", "benign"), ("benign", "spam"), ("spam", "spam")]]
    base = load_evaluation_config(config_dir())
    for method, says, not_says in (("bootstrap", "bootstrap", "Wilson"), ("wilson", "Wilson", "bootstrap")):
        qa = _audit_estimates(audit, taxonomy, base.model_copy(update={"interval_method": method}))
        s = {"estimates": {"qa_audit": qa, "all_decisions": {"per_policy": {}, "accuracy": proportion(0, 0)}},
             "target_width": 0.1, "confidence": 0.9}
        text = _estimate_sections(s)[0].text
        assert says in text and not_says not in text, text


def test_wilson_matches_a_direct_computation():
    z = 1.6448536269514722  # the 95th percentile of the standard normal: a 90% two-sided interval
    k, n = 2, 3
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(k, n, 0.9) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert wilson(0, 1, 0.9)[0] == 0.0 and wilson(1, 1, 0.9)[1] == 1.0


def _window(rng, n, shift=0.0, override_rate=0.1):
    scores = np.clip(rng.beta(2, 5, size=(n, 2)) + shift, 0, 1)
    return WindowData(n_items=n, scores=scores, predicted=np.where(scores[:, 1] > 0.5, "spam", "benign"),
                      embeddings=rng.normal(size=(n, 4)) + shift * 4, new_campaigns=3, decisions=n,
                      overrides=int(n * override_rate))


def test_drift_is_quiet_on_one_distribution_and_alarms_on_a_clear_shift():
    cfg = dr.DriftConfig()
    rng = np.random.default_rng(7)
    ref = _window(rng, 1500)
    same = dr.compare_windows(ref, ref, ["benign", "spam"], cfg)
    assert not [c.check for c in same if c.alarm] and all(c.status == dr.OK for c in same), same
    shifted = dr.compare_windows(ref, _window(rng, 1500, shift=0.3, override_rate=0.3), ["benign", "spam"], cfg)
    alarms = {c.check for c in shifted if c.alarm}
    assert {"score_psi:spam", "score_js:spam", "embedding", "override_rate"} <= alarms, alarms


def test_no_new_campaign_in_either_window_is_no_ratio_of_zero():
    """0 new campaigns against 0 read "new-campaign rate ratio 0.000 <= 2": a rate ratio of 0 / 0
    shown as a measured fall to nothing, a bar at 0 in the plot."""
    rng = np.random.default_rng(3)
    ref = WindowData(n_items=2000, scores=rng.random((2000, 2)), predicted=np.array(["benign"] * 2000),
                     new_campaigns=0)
    camp = next(c for c in dr.compare_windows(ref, ref, ["benign", "spam"], dr.DriftConfig())
                if c.check == "campaign_emergence")
    assert camp.statistic is None and camp.status == dr.NOT_ENOUGH and not camp.alarm
    assert "no new campaign in either window" in camp.message and "0.000" not in camp.message


def test_an_undefined_kappa_says_why_in_the_agreement_table():
    """`report.agreement` notes why a kappa is undefined (one label only, fewer than 2 raters);
    the table showed a bare "n/a" beside the method, as if the figure were merely missing."""
    from evaluation.sections import _calibration_and_agreement

    s = {"calibration": {"ece": None, "n": 0},
         "agreement": {"w|<b>": {"items": 3, "raters_per_item": 2, "kappa": None, "method": "scott",
                                 "kappa_note": "undefined: one label only"},
                       "solo": {"items": 0, "raters_per_item": 1, "kappa": None, "method": None,
                                "kappa_note": "fewer than 2 raters per item"},
                       "ok": {"items": 9, "raters_per_item": 2, "kappa": 0.61, "method": "scott", "kappa_note": None}}}
    rows = _calibration_and_agreement(s)[1].tables[0].rows
    assert [r[-1] for r in rows] == ["n/a (undefined: one label only)", "n/a (fewer than 2 raters per item)", "0.610"]


def test_the_report_plots_keep_a_long_or_multiline_name_on_one_short_line(monkeypatch):
    """A 200-character policy name with a newline pushed the estimates axes out of the figure
    ("tight layout not applied", ticks and labels cut off) and ran the override legend off the
    image; a policy without any estimate was an empty row, now it says so."""
    import warnings

    from matplotlib.figure import Figure

    from evaluation import plots
    from evaluation.estimates import proportion

    drawn, save = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), save(self, *a, **k))[1])
    long = HOSTILE + "W" * 200
    pp = {"benign": {k: proportion(8, 10) for k in ("precision", "recall", "f1")},
          long: {k: proportion(1, 3) for k in ("precision", "recall", "f1")},
          "hate": {k: proportion(0, 0) for k in ("precision", "recall", "f1")}}
    ws = [{"start": f"2026-01-0{i}T00:00", "end": f"2026-01-0{i + 1}T00:00", "n": n, "k": k, **proportion(k, n)}
          for i, (n, k) in enumerate([(0, 0), (1, 1), (10, 2)], 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied" is a UserWarning
        assert plots.estimates_png(pp) and plots.override_rate_png(ws, {long: {"windows": ws}})
    est, ovr = drawn[0].axes[0], drawn[1].axes[0]
    ticks = [t.get_text() for t in est.get_yticklabels()]
    legend = [t.get_text() for t in ovr.get_legend().get_texts()]
    assert all("\n" not in t and len(t) <= 32 for t in ticks + legend), ticks + legend
    assert any(t.get_text() == "no estimate (n=0)" for t in est.texts)


def test_a_bare_url_or_email_in_a_name_is_no_live_link():
    """An analyst, slice or model named `http://phish.test`, `www.phish.test` or `bob@phish.test`
    stayed a live link in report.md (GFM autolinks them without markup); the HTML still shows
    the name as written."""
    from evaluation.render import Table, inline_html, plain, table_html, table_markdown

    name = "see http://phish.test, HTTPS://p.test www.phish.test bob@phish.test"
    md = table_markdown(Table(["analyst"], [[name]]))
    assert not re.search(r"(?i)(?:https?|ftp)://|www\.|\w@\w", md), md
    assert inline_html(plain(name)) == name.replace("&", "&amp;")
    assert name in table_html(Table(["analyst"], [[name]]))


def test_the_paired_bootstrap_interval_is_the_percentile_interval_of_direct_resamples():
    """The comparison report's intervals, as documented: the percentile interval of challenger -
    champion over the item resamples; recomputed here with sklearn on the same draws."""
    from sklearn.metrics import f1_score, roc_auc_score

    from evaluation.compare import resample_weights

    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0])
    pa = np.array([.8, .3, .6, .7, .4, .9, .55, .2, .7, .6, .45, .35])
    pb = np.array([.9, .2, .3, .8, .3, .7, .6, .1, .4, .65, .3, .6])
    proba_a, proba_b = np.c_[pa, 1 - pa], np.c_[pb, 1 - pb]
    pred_a, pred_b = proba_a.argmax(1), proba_b.argmax(1)
    comp = paired_bootstrap(y, proba_a, proba_b, pred_a, pred_b, ["benign", "spam"], n_boot=300, seed=5,
                            confidence=0.9)
    w = resample_weights(len(y), 300, 5)
    f1 = np.array([f1_score(y, pred_b, average="macro", sample_weight=r, labels=[0, 1], zero_division=0)
                   - f1_score(y, pred_a, average="macro", sample_weight=r, labels=[0, 1], zero_division=0)
                   for r in w])

    def auc(p, r):
        keep = r > 0
        return roc_auc_score(y[keep] == 1, p[keep, 1], sample_weight=r[keep]) if len(set(y[keep])) == 2 else np.nan

    d_auc = np.array([auc(proba_b, r) - auc(proba_a, r) for r in w])
    d_auc = d_auc[np.isfinite(d_auc)]
    got_f1, got_auc = comp["macro_f1"], comp["auc"]["spam"]
    assert (got_f1["lower"], got_f1["upper"]) == pytest.approx(tuple(np.quantile(f1, [0.05, 0.95])), abs=1e-6)
    assert (got_auc["lower"], got_auc["upper"]) == pytest.approx(tuple(np.quantile(d_auc, [0.05, 0.95])), abs=1e-6)
    assert got_auc["delta"] == pytest.approx(roc_auc_score(y, proba_b[:, 1]) - roc_auc_score(y, proba_a[:, 1]))
    assert got_f1["p_not_better"] == pytest.approx((f1 <= 0).mean(), abs=1e-6)


def test_the_drift_plot_keeps_every_check_label_readable_beside_a_long_policy_name():
    """One policy named with 200 characters and a newline pushed the drift plot's axes out of the
    figure: "tight layout not applied", and every check's label, `override_rate` too, cut off."""
    import datetime as dt
    import warnings

    rng = np.random.default_rng(1)
    pol = ["benign", "sp|am`<script>\n" + "W" * 200]
    win = WindowData(n_items=50, scores=rng.random((50, 2)), predicted=np.array(["benign"] * 50))
    t = dt.datetime(2026, 1, 8)
    report = dr.DriftReport((t - dt.timedelta(days=35), t - dt.timedelta(days=7)), (t - dt.timedelta(days=7), t), t,
                            50, 50, dr.compare_windows(win, win, pol, dr.DriftConfig()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = dr.plot_drift(report)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert all("\n" not in t and len(t) <= 60 for t in ticks), ticks
    assert fig.axes[0].get_position().x0 < 0.5  # the bars keep more than half the width


@pytest.mark.parametrize("bad", ["../../etc/x", "a/b", "..", "a\\b", "x\x00y", ""])
def test_a_model_id_that_is_a_path_names_no_report_folder(sqlite_store, bad):
    """The promotion report's folder is named from the challenger's id: an id holding a path (never
    made by the registry today, but read back from a store) must not write outside the reports."""
    from evaluation.promotion import _report_folder

    with pytest.raises(ValueError, match="cannot name a report folder"):
        _report_folder(sqlite_store, bad)
    assert not (sqlite_store.path("reports", "x").parent.parent / "etc").exists()
    assert _report_folder(sqlite_store, "tfidf_lr-20261207-1").name == "promotion-tfidf_lr-20261207-1"
