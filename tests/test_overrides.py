"""Override telemetry (evaluation.overrides): the test of change, windows, confusion matrix,
confirmed vs overridden scores, by hand; and from a reviewed store."""
import datetime as dt

import pytest
from eval_support import T0, seed_reviews

from core.config import config_dir
from evaluation import overrides as ov
from evaluation.config import load_evaluation_config


@pytest.fixture(scope="module")
def eval_config():
    return load_evaluation_config(config_dir())


def test_two_proportion_test_by_hand():
    t = ov.two_proportion_test(10, 100, 25, 100)
    # pooled p = 0.175, se = sqrt(0.175 * 0.825 * 0.02) = 0.053735, z = 0.15 / se
    assert t["change"] == pytest.approx(0.15)
    assert t["z"] == pytest.approx(2.7915, abs=1e-3)
    assert t["pvalue"] == pytest.approx(0.00525, abs=2e-4)
    assert t["lo"] < 0.15 < t["hi"] and t["lo"] > 0  # Newcombe's interval excludes 0 here
    same = ov.two_proportion_test(10, 100, 10, 100)
    assert same["change"] == 0 and same["pvalue"] == pytest.approx(1.0)
    assert ov.two_proportion_test(0, 0, 1, 2)["pvalue"] is None


def test_windows_and_rates():
    end = dt.datetime(2026, 11, 29)
    bounds = ov.window_bounds(end, 7, 3)
    assert bounds[-1] == (dt.datetime(2026, 11, 22), end) and bounds[0][0] == dt.datetime(2026, 11, 8)
    times = [dt.datetime(2026, 11, 9), dt.datetime(2026, 11, 10), dt.datetime(2026, 11, 23), dt.datetime(2026, 11, 24),
             dt.datetime(2026, 11, 25), dt.datetime(2026, 12, 1)]  # the last one is after `end`: left out
    flags = [False, True, True, True, False, True]
    series = ov.rates_over_windows(times, flags, bounds, conf=0.9)
    assert [w["n"] for w in series] == [2, 0, 3]
    assert series[0]["estimate"] == 0.5 and series[1]["estimate"] is None
    assert series[2]["estimate"] == pytest.approx(2 / 3) and series[2]["lo"] < 2 / 3 < series[2]["hi"]
    change = ov.change_between_last_windows(series, alpha=0.05)
    assert change["change"] is None and change["significant"] is False  # the previous window is empty


def test_confusion_and_score_split():
    m = ov.confusion_matrix(["spam", "spam", "benign", "hate"], ["spam", "benign", "benign", "spam"],
                            ["benign", "spam", "hate"])
    assert m == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]  # rows: model; columns: human
    split = ov.score_split([0.9, 0.8, 0.7, 0.55, 0.6, None], [False, False, False, True, True, True])
    assert split["confirmed"]["n"] == 3 and split["overridden"]["n"] == 2
    assert split["confirmed"]["mean"] == pytest.approx(0.8) and split["overridden"]["median"] == pytest.approx(0.575)
    assert split["auc"] == pytest.approx(1.0)  # every confirmed score above every overridden one


@pytest.fixture
def reviewed(sqlite_store, make_scored, taxonomy, queue_config):
    return sqlite_store, seed_reviews(sqlite_store, make_scored, taxonomy, queue_config)


@pytest.fixture
def reviewed_any(any_store, make_scored, taxonomy, queue_config):
    """The same reviewed store on SQLite and on the real PostgreSQL server."""
    return any_store, seed_reviews(any_store, make_scored, taxonomy, queue_config)


def test_override_telemetry_from_the_store(reviewed_any, taxonomy, eval_config):
    store, plan = reviewed_any
    end = T0 + dt.timedelta(days=28)
    tel = ov.override_telemetry(store, taxonomy, eval_config, now=end)
    decided = plan["decisions"]
    rereviews = len(plan["rereviews"])
    # every review decision plus the lead's re-reviews (judged against the model too)
    assert tel["overall"]["n"] == len(decided) + rereviews
    assert tel["overall"]["k"] == plan["overrides"] + sum(r["label"] != r["model"] for r in plan["rereviews"])
    weeks = [w for w in tel["windows"] if w["n"]]
    assert len(weeks) >= 4
    last, before = tel["windows"][-1], tel["windows"][-2]
    assert last["estimate"] > before["estimate"]  # the last week overrides benign more
    assert tel["change"]["change"] == pytest.approx(last["estimate"] - before["estimate"])
    assert set(tel["by_policy"]) <= set(taxonomy.labels) and "benign" in tel["by_policy"]
    assert set(tel["by_model_version"]) == {"test-v1"}
    assert "general" in tel["by_queue"] or "low-risk" in tel["by_queue"]
    total = sum(sum(r) for r in tel["confusion"])
    assert total == tel["overall"]["n"]
    assert tel["scores"]["confirmed"]["n"] + tel["scores"]["overridden"]["n"] == tel["overall"]["n"]
    for g in tel["by_policy"].values():
        assert g["overall"]["n"] == sum(w["n"] for w in g["windows"])


def test_eval_report_cli_writes_html_and_markdown(reviewed, tmp_path):
    import json

    from click.testing import CliRunner

    from workbench.cli import cli

    store, plan = reviewed
    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "eval", "report", str(out), "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["overrides"]["overall"]["n"] == len(plan["decisions"]) + len(plan["rereviews"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "<table>" in page
    md = (out / "report.md").read_text()
    assert "![override_rate](override_rate.png)" in md and (out / "override_rate.png").exists()
    assert "## Analyst quality (leads only)" in md  # the local command line acts as admin
    res = CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "eval", "report", str(out)],
                             catch_exceptions=False)
    assert "override rate" in res.output and "report.html" in res.output


def test_operations_kpis_carry_n_and_interval_for_every_rate(reviewed, queue_config):
    from evaluation.ops import ops_kpis

    store, plan = reviewed
    k = ops_kpis(store, config=queue_config)
    for name in ("override_rate", "rework_rate", "escalation_rate", "audit_share"):
        est = k["rate_intervals"][name]
        assert est["estimate"] == pytest.approx(k[name]) and est["n"] > 0 and est["lo"] <= est["estimate"] <= est["hi"]
    assert k["rate_intervals"]["rework_rate"]["k"] == len(plan["corrected"])
    assert k["rate_intervals"]["appeals_upheld_rate"]["n"] == 0


def test_short_histories_get_shorter_windows():
    assert ov.window_days_for(40, 7) == 7
    assert ov.window_days_for(5, 7) == 1.0          # five days of decisions: daily windows
    assert ov.window_days_for(0.5, 7) == 1 / 24     # an afternoon: hourly
    assert ov.window_days_for(0.0, 7) == 1 / 96
    assert ov.window_label(7) == "7 days" and ov.window_label(0.25) == "6 hours" and ov.window_label(1 / 96) == "15 minutes"
