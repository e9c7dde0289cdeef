"""Hardening of what an integrity engineer reads: the gate history, the registry's latest verdict,
comparison reports after a data folder moved, `eval drift --check` and `eval report`'s summary.

The defects: the gate-history plot drew every verdict of a version ever forced in red ("forced
over it"), its refused retrain and refused `models promote` included, not only the verdict the
force overrode; the registry's "latest gate verdict" read only `model.gate`, so a champion just
forced over the gate read "refused"; a report path stored absolute in the audit log was "not
inside the store's data directory" once the data folder was moved or restored elsewhere;
`eval drift --check` exited 0 (all clear) when not one check had enough data to measure; and
`eval report` printed "377 decisions ... n=381", two different counts with no word of what each is.
"""
from __future__ import annotations

import shutil

from click.testing import CliRunner

from core import audit
from core.config import config_dir
from evaluation import promotion_report as PR
from evaluation.model_overview import comparison_report, gate_verdicts, latest_verdict_text, model_overview
from workbench.cli import cli

RED, GREY, GREEN = "#c44e52", "#8c8c8c", "#4a9a6a"


def _gate(conn, version: str, passed: bool, delta: float, report: str | None = None) -> None:
    sets = {"test_split": {"delta": delta, "lower": delta - 0.05, "upper": delta + 0.05, "n": 40}}
    audit.record(conn, "eric", "model.gate", "model_version", version,
                 {"champion": "champ-0", "passed": passed, "metric": "macro_f1", "min_lower_bound": 0.0,
                  "sets": sets, "reason": "lower bound below 0", "report": report})


def _force(conn, version: str, delta: float, reason: str = "rollback drill") -> None:
    """What `compare_and_promote` writes for a forced promotion: its gate row, then the force."""
    _gate(conn, version, False, delta)
    gate = {"champion": "champ-0", "passed": False, "metric": "macro_f1", "min_lower_bound": 0.0,
            "sets": {"test_split": {"delta": delta, "lower": delta - 0.05, "upper": delta + 0.05, "n": 40}},
            "reason": "lower bound below 0"}
    audit.record(conn, "eric", "model.force_promote", "model_version", version,
                 {"reason": reason, "approved_by": "eric", "gate": gate})


def _add_version(conn, version: str, role: str = "candidate") -> None:
    from sqlalchemy import insert

    from core.schema import ModelVersion

    conn.execute(insert(ModelVersion.__table__).values(id=version, kind="tfidf", artifact_path="x", labels=[],
                                                       role=role))


# -- 1. the gate history marks only the verdict a force overrode --------------------------------
def test_only_the_verdict_a_force_overrode_is_drawn_red(any_store, tmp_path, monkeypatch):
    with any_store.begin() as conn:
        _gate(conn, "v2", False, -0.02)   # the retrain: refused
        _gate(conn, "other", False, -0.03)  # another version: refused, never forced
        _gate(conn, "v2", False, -0.01)   # `models promote v2`: refused
        _force(conn, "v2", -0.015)        # `models promote v2 --force --reason ...`
        _gate(conn, "v3", True, 0.04)     # a later challenger that passed
    verdicts = gate_verdicts(any_store, "eric")
    drawn = {}
    real = PR._save

    def keep(fig, path):
        drawn["colours"] = [ln.get_color() for ln in fig.axes[0].lines if ln.get_marker() == "o"]
        return real(fig, path)

    monkeypatch.setattr(PR, "_save", keep)
    assert PR.plot_gate_history(tmp_path / "gates.png", verdicts)
    # oldest first: v2 retrain, other, v2 promote, v2 forced promote's gate row, v3
    assert drawn["colours"] == [GREY, GREY, GREY, RED, GREEN]
    # the force event alone (its gate row cut off by a limit) is drawn itself, in red
    only_force = [v for v in verdicts if v["forced"]]
    assert PR.plot_gate_history(tmp_path / "force.png", only_force)
    assert drawn["colours"] == [RED]


# -- 2. a champion forced over the gate reads as forced, by whom, when and why -----------------
def test_the_registry_shows_a_forced_promotion_as_the_latest_verdict(any_store):
    with any_store.begin() as conn:
        _add_version(conn, "v2", role="champion")
        _add_version(conn, "v3")
        _gate(conn, "v2", False, -0.02)
        _force(conn, "v2", -0.015, reason="rollback after the v1 outage")
        _gate(conn, "v3", False, -0.04)
    rows = {m["id"]: m for m in model_overview(any_store, "eric")}
    v = rows["v2"]["verdict"]
    assert v["forced"] and v["action"] == "model.force_promote" and v["actor"] == "eric"
    assert v["force_reason"] == "rollback after the v1 outage" and v["at"]
    text = latest_verdict_text(v)
    assert text.startswith("forced over the gate (macro_f1) by eric at ")
    assert text.endswith(": rollback after the v1 outage")
    assert latest_verdict_text(rows["v3"]["verdict"]) == "refused (macro_f1)"
    assert latest_verdict_text(None) == "—"


# -- 3. a report of a former data folder is found under this one's reports/ ------------------
def test_a_report_stored_under_a_former_data_folder_is_read_from_this_one(any_store, tmp_path):
    here = any_store.data_dir / "reports" / "promotion-v2" / "comparison.md"
    here.parent.mkdir(parents=True)
    here.write_text("# Challenger v2 against champion champ-0\n", encoding="utf-8")
    (here.parent / "comparison.png").write_bytes(b"\x89PNG")
    secret = tmp_path / "outside" / "reports" / "promotion-v9" / "comparison.md"
    secret.parent.mkdir(parents=True)
    secret.write_text("# not this store's", encoding="utf-8")
    with any_store.begin() as conn:
        _gate(conn, "v2", False, -0.02, report="/tmp/ux/data/reports/promotion-v2/comparison.md")
        _gate(conn, "v4", False, -0.02, report="/tmp/ux/data/reports/promotion-v4/comparison.md")  # not here
        _gate(conn, "v5", False, -0.02, report="/tmp/ux/data/reports/../audit.key")  # out of reports/
        _gate(conn, "v9", False, -0.02, report="/tmp/ux/data/reports/../../../" + str(secret).lstrip("/"))
    rep = comparison_report(any_store, "eric", "v2")
    assert rep["markdown"] and "Challenger v2" in rep["markdown"], rep["note"]
    assert rep["png"] == str((here.parent / "comparison.png").resolve())
    for version in ("v4", "v5", "v9"):
        rep = comparison_report(any_store, "eric", version)
        assert rep["markdown"] is None and "not inside the store's data directory" in rep["note"], version


# -- 4. `eval drift --check` with nothing measured is exit 2, not an all-clear ------------------
def test_drift_check_with_no_check_measured_exits_2(any_store, taxonomy, tmp_path):
    from test_drift import NOW, fill

    fill(any_store, taxonomy, tmp_path, shift=False, n_ref=40, n_cur=20)  # far below the shipped minimums
    cfg = tmp_path / "configs"
    shutil.copytree(config_dir(), cfg)
    base = ["--data-dir", str(any_store.data_dir), "--config-dir", str(cfg)]
    base += [] if any_store.is_sqlite else ["--db", any_store.url]
    res = CliRunner().invoke(cli, [*base, "eval", "drift", "--check", "--now", NOW.isoformat()])
    assert res.exit_code == 2, res.output
    assert "exit 2: could not measure" in res.stderr and "ALARM" not in res.stdout
    res = CliRunner().invoke(cli, [*base, "eval", "drift", "--check", "--json", "--now", NOW.isoformat()])
    assert res.exit_code == 2 and res.stdout.lstrip().startswith("{")
    res = CliRunner().invoke(cli, [*base, "eval", "drift", "--now", NOW.isoformat()])  # no --check: a listing
    assert res.exit_code == 0, res.output


# -- 5. `eval report` says what each of its two counts is ------------------------------------
def test_eval_report_summary_names_each_count(any_store, taxonomy, tmp_path):
    from test_queue_support import add_scored

    add_scored(any_store, taxonomy, [{"id": "s1", "label": "spam", "p": 0.9, "text": "cheap pills, order now"}])
    base = ["--data-dir", str(any_store.data_dir)] + ([] if any_store.is_sqlite else ["--db", any_store.url])
    res = CliRunner().invoke(cli, [*base, "eval", "report", str(tmp_path / "r")], env={"WORKBENCH_TOKEN": None})
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if "override rate" in ln)
    assert line.startswith("0 human-labelled items (0 from QA audits); override rate n/a over 0 judgements "
                           "of the model's suggestion; report at "), line
    assert " decisions (" not in line and " n=" not in line


def test_drift_check_with_an_alarm_and_unmeasured_checks_says_both(any_store, monkeypatch):
    """An alarm wins (exit 1), and the line beside it says what could not be measured."""
    import datetime as dt

    from evaluation import drift
    from test_drift import NOW

    def report(*_a, **_k):
        ref, cur = (NOW - dt.timedelta(days=35), NOW - dt.timedelta(days=7)), (NOW - dt.timedelta(days=7), NOW)
        return drift.DriftReport(ref, cur, NOW, 900, 300, [
            drift.CheckResult("label_mix", 0.4, 0.1, True, drift.ALARM, 900, 300, "label_mix: JS 0.400 > 0.1"),
            drift.CheckResult("embedding", None, 0.7, False, drift.NOT_ENOUGH, 90, 30, "embedding: could not measure")])

    base = ["--data-dir", str(any_store.data_dir)] + ([] if any_store.is_sqlite else ["--db", any_store.url])
    monkeypatch.setattr(drift, "drift_report", report)
    res = CliRunner().invoke(cli, [*base, "eval", "drift", "--check"])
    assert res.exit_code == 1, res.output
    assert "ALARM label_mix" in res.stdout and "1 alarm(s) in 2 checks (1 with not enough data)" in res.stdout
    assert "exit 1: alarm; 1 of 2 checks could not be measured" in res.stderr
    monkeypatch.setattr(drift, "drift_report", lambda *a, **k: drift.DriftReport(
        report().reference, report().current, NOW, 90, 30, report().checks[1:]))
    res = CliRunner().invoke(cli, [*base, "eval", "drift", "--check"])
    assert res.exit_code == 2 and "none of the 1 checks had enough data" in res.stderr, res.output
