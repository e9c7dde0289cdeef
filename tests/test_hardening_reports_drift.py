"""Reports and drift hardening: item times the checks must not trust, windows no calendar holds,
and figures that are not numbers.

- One ingested item dated 9999-12-31 became the default end of the drift windows: both windows
  moved to the year 9999, every check read "not enough data" and `eval drift --check` exited 0 on
  a store whose traffic had shifted (the retrain trigger read the same report).
- `--now 0001-01-02` or `--current-days inf` ended `eval drift` in an OverflowError traceback.
- A stored score that is NaN (or infinite) showed as "nan" in report.md (the calibration error,
  the slices' AUCs), and an infinite decision score made the mean "inf".
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pytest
from sqlalchemy import select, update

from core.config import config_dir
from core.ingest import ColumnMap, ingest_paths
from core.schema import Prediction
from evaluation import overrides as ov
from evaluation import render
from evaluation.config import load_evaluation_config
from evaluation.drift import DriftError, DriftReport, compare_windows, drift_report, plot_drift
from evaluation.report import write_report
from labeling.cases import build_cases
from labeling.decisions import decide
from test_drift import NOW, SMALL, _cli, fill, _window
from test_evaluation_integrity import _cases, _cfg
from test_queue_support import T0, add_scored


def _plant(store, taxonomy, tmp_path, at: str) -> None:
    src = tmp_path / "planted.jsonl"
    src.write_text(json.dumps({"id": "planted", "text": "a message from the far future", "at": at}) + "\n",
                   encoding="utf-8")
    ingest_paths(store, taxonomy, [str(src)], source="reports", columns=ColumnMap(id="id", created="at"),
                 progress=False)


def test_an_item_dated_in_the_future_does_not_blind_the_default_windows(any_store, taxonomy, tmp_path, monkeypatch):
    fill(any_store, taxonomy, tmp_path, shift=True)
    _plant(any_store, taxonomy, tmp_path, "9999-12-31T23:59:59")
    monkeypatch.setattr("core.schema.utcnow", lambda: NOW)  # the clock reads NOW
    rep = drift_report(any_store, SMALL, taxonomy)
    # before: now 9999-12-31 23:59:59, 0 alarms, every check "not enough data"
    assert rep.now == NOW + dt.timedelta(days=1)  # the newest item within a day of the clock
    fired = {c.check for c in rep.alarms}
    assert {"score_js:spam", "label_mix", "embedding", "override_rate"} <= fired
    # a store whose every item is dated after the clock is still measured where its data is
    monkeypatch.setattr("core.schema.utcnow", lambda: dt.datetime(2000, 1, 1))
    assert drift_report(any_store, SMALL, taxonomy).now == dt.datetime(9999, 12, 31, 23, 59, 59)


def test_windows_before_the_year_one_are_one_line_errors(sqlite_store, taxonomy, tmp_path):
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}])
    res = _cli(sqlite_store, tmp_path, "--now", "0001-01-02", "--check")
    assert res.exit_code == 2 and "start before the year 1" in res.output and len(res.output.splitlines()) == 1
    res = _cli(sqlite_store, tmp_path, "--current-days", "inf", "--check")
    assert res.exit_code == 2 and "--current-days must be more than 0 and at most 3650 days, got inf" in res.output
    for days in (math.inf, math.nan, 1e9):
        with pytest.raises(DriftError, match="--reference-days must be"):
            drift_report(sqlite_store, SMALL, taxonomy, now=NOW, reference_days=days)


def _decided(store, taxonomy, n: int = 9) -> None:
    cfg = _cfg(taxonomy)
    add_scored(store, taxonomy, [{"id": f"a{i}", "label": "scam", "p": 0.9} for i in range(n)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    cases = _cases(store)
    for i in range(n):
        human = "benign" if i % 3 == 0 else "scam"
        decide(store, taxonomy, cases[f"a{i}"], "ann", human, action="no_action" if human == "benign" else "remove",
               rationale="checked", now=T0 + dt.timedelta(minutes=i), config=cfg)


def test_a_nan_stored_score_is_left_out_not_shown_as_nan(any_store, taxonomy, tmp_path):
    _decided(any_store, taxonomy)
    with any_store.begin() as conn:  # the text "NaN": PostgreSQL's JSON holds no NaN number
        for item in ("a0", "a1"):
            pid, sc = conn.execute(select(Prediction.id, Prediction.scores).where(Prediction.item_id == item)).one()
            conn.execute(update(Prediction.__table__).where(Prediction.id == pid).values(scores={**sc, "benign": "NaN"}))
    out = write_report(any_store, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()))
    md = open(out["report"], encoding="utf-8").read()
    assert not re.search(r"\bnan\b", md, re.IGNORECASE), [ln for ln in md.splitlines() if "nan" in ln.lower()]
    assert out["calibration"]["n"] == 7 and out["calibration"]["nonfinite"] == 2 and out["calibration"]["ece"] >= 0
    assert "Left out: 2 decisions whose stored scores are not finite numbers." in md
    assert out["slices"]["overall_auc"]["n"] == 7


def test_figures_that_are_not_numbers_read_n_a():
    nan, inf = math.nan, math.inf
    assert render.num(nan) == render.num(inf) == "n/a" and render.num(0.25) == "0.250"
    assert render.est({"estimate": nan, "lo": 0.0, "hi": 1.0, "n": 4}) == "n/a (n=4)"
    assert render.est({"estimate": 0.5, "lo": nan, "hi": 1.0, "n": 4}) == "0.50 n=4"
    assert render.kappa({"estimate": 0.5, "lo": 0.1, "hi": 0.9, "n": 4, "kappa": nan}) == "0.50 [0.10, 0.90] n=4"


def test_an_infinite_decision_score_is_left_out_of_the_score_split():
    s = ov.score_split([math.inf, 0.5, 0.2, math.nan], [True, False, False, True])
    assert s["overridden"]["n"] == 0 and s["overridden"]["mean"] is None  # was: mean inf, q25 NaN
    assert s["confirmed"]["n"] == 2 and s["auc"] is None


def test_override_telemetry_takes_an_aware_now(sqlite_store, taxonomy):
    _decided(sqlite_store, taxonomy)
    cfg = load_evaluation_config(config_dir())
    naive = T0 + dt.timedelta(hours=1)
    aware = naive.replace(tzinfo=dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    got = ov.override_telemetry(sqlite_store, taxonomy, cfg, now=aware)  # was: TypeError naive vs aware
    assert got == ov.override_telemetry(sqlite_store, taxonomy, cfg, now=naive)


def test_the_drift_plot_names_a_fractional_reference_window():
    rng = np.random.default_rng(0)
    t = NOW
    report = DriftReport((t - dt.timedelta(days=1), t - dt.timedelta(hours=12)), (t - dt.timedelta(hours=12), t), t,
                         10, 10, compare_windows(_window(rng, 10), _window(rng, 10), ["benign", "spam"], SMALL))
    assert "vs the 0.5 days before" in plot_drift(report).axes[0].get_title()  # was: "the 0 days before"


def test_a_null_stored_score_is_left_out_not_the_end_of_the_report(any_store, taxonomy, tmp_path):
    """`evaluation.data.decision_rows` read a stored null score with `float(None)`: TypeError ended
    the whole report. Now it is NaN and left out like one; a label the prediction has no key for
    (added to the taxonomy after the model) still reads 0.0, so older predictions stay usable."""
    from evaluation.data import decision_rows

    _decided(any_store, taxonomy)
    with any_store.begin() as conn:
        pid, sc = conn.execute(select(Prediction.id, Prediction.scores).where(Prediction.item_id == "a0")).one()
        conn.execute(update(Prediction.__table__).where(Prediction.id == pid).values(scores={**sc, "benign": None}))
        pid, sc = conn.execute(select(Prediction.id, Prediction.scores).where(Prediction.item_id == "a1")).one()
        conn.execute(update(Prediction.__table__).where(Prediction.id == pid)
                     .values(scores={k: v for k, v in sc.items() if k != "spam"}))
    rows = {r["item_id"]: r for r in decision_rows(any_store, taxonomy)}
    assert math.isnan(rows["a0"]["proba"][taxonomy.labels.index("benign")])
    assert rows["a1"]["proba"][taxonomy.labels.index("spam")] == 0.0
    out = write_report(any_store, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()))
    assert out["calibration"]["nonfinite"] == 1 and out["calibration"]["n"] == 8
