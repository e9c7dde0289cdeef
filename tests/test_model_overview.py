"""The registry beside the gate's verdicts (evaluation.model_overview), what the Models tab reads:
verdicts newest first from the audit log, each version's latest verdict, its comparison report,
a forced promotion with the engineer's reason, `read` needed, and a report path outside the
store's data directory never read."""
from __future__ import annotations

import pytest

from core import audit
from core.hooks import PermissionDenied
from core.principals import Principal
from evaluation.model_overview import comparison_report, gate_verdicts, model_overview
from evaluation.promotion import retrain_and_gate
from test_promotion_gate import MODELS, loop  # noqa: F401 (the fixture)


def test_verdicts_newest_first_with_each_versions_latest_and_its_report(loop, taxonomy, tmp_path):  # noqa: F811
    store, champ, _ = loop
    better = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng",
                              rescore="none", show_progress=False)  # promoted: the champion learned every label wrong
    worse = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                             rescore="none", params={"C": 1e-6}, show_progress=False)
    got = gate_verdicts(store, "eng")
    assert [v["challenger"] for v in got] == [worse["challenger"], better["challenger"]]
    assert [v["passed"] for v in got] == [False, True] and [v["champion"] for v in got] == [better["challenger"], champ]
    assert got[0]["metric"] == MODELS.promotion.metric and "lower bound" in got[0]["reason"]
    assert got[1]["reason"] == better["gate"]["reason"] and got[1]["actor"] == "eng" and not got[1]["forced"]

    rows = {m["id"]: m for m in model_overview(store, "eng")}
    assert rows[champ]["role"] != "champion" and rows[champ]["verdict"] is None  # never met the gate
    assert rows[better["challenger"]]["verdict"]["passed"] is True and rows[better["challenger"]]["role"] == "champion"
    assert rows[worse["challenger"]]["verdict"]["passed"] is False

    rep = comparison_report(store, "eng", better["challenger"])
    assert rep["markdown"] and better["challenger"] in rep["markdown"] and rep["png"].endswith("comparison.png")
    none = comparison_report(store, "eng", champ)
    assert none["markdown"] is None and "has not been through the gate" in none["note"]

    # A forced promotion: listed with the engineer's reason beside the gate's refusal.
    retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", rescore="none",
                     params={"C": 1e-6}, force=True, reason="rollback drill", show_progress=False)
    top = gate_verdicts(store, "eng", limit=2)
    assert [v["action"] for v in top] == ["model.force_promote", "model.gate"]
    assert top[0]["forced"] and top[0]["force_reason"] == "rollback drill" and not top[0]["passed"]

    # The gate over time, one PNG: each verdict's difference with its interval on the test split.
    from evaluation.promotion_report import plot_gate_history

    every = gate_verdicts(store, "eng")
    split = every[-1]["sets"]["test_split"]
    assert split["lower"] <= split["delta"] <= split["upper"] and split["n"] > 0
    assert every[-1]["min_lower_bound"] == MODELS.promotion.min_lower_bound
    png = plot_gate_history(tmp_path / "gates.png", every)
    assert png and (tmp_path / "gates.png").stat().st_size > 5000
    assert plot_gate_history(tmp_path / "none.png", []) is None and not (tmp_path / "none.png").exists()


def test_needs_read_and_never_reads_a_report_outside_the_store(loop, roles, tmp_path):  # noqa: F811
    store, champ, _ = loop
    outside = tmp_path / "elsewhere" / "comparison.md"
    outside.parent.mkdir()
    outside.write_text("# not the store's")
    with store.begin() as conn:  # a gate row whose report path points outside the data directory
        audit.record(conn, "eng", "model.gate", "model_version", "forged-1",
                     {"champion": champ, "passed": False, "metric": "macro_f1", "reason": "x",
                      "report": str(outside)})
        audit.record(conn, "eng", "model.gate", "model_version", "forged-2",
                     {"champion": champ, "passed": False, "metric": "macro_f1", "reason": "x",
                      "report": str(store.data_dir / "audit.key")})
    rep = comparison_report(store, Principal("vic", "viewer"), "forged-1")
    assert rep["markdown"] is None and "not inside the store's data directory" in rep["note"]
    rep = comparison_report(store, Principal("vic", "viewer"), "forged-2")
    assert rep["markdown"] is None and "not a report" in rep["note"]
    no_read = Principal("tok", "engineer", "user", ("train",))
    for call in (lambda: gate_verdicts(store, no_read), lambda: model_overview(store, no_read),
                 lambda: comparison_report(store, no_read, champ)):
        with pytest.raises(PermissionDenied, match="needs permission 'read'"):
            call()


def test_models_gates_command_lists_the_verdicts(loop, taxonomy):  # noqa: F811
    import json

    from click.testing import CliRunner

    from workbench.cli import cli

    store, champ, _ = loop
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                           rescore="none", show_progress=False)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(store.data_dir), "models", "gates", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["challenger"], r["champion"], r["passed"]) for r in rows] == [(out["challenger"], champ, True)]
    res = runner.invoke(cli, ["--data-dir", str(store.data_dir), "models", "gates"], catch_exceptions=False)
    assert res.exit_code == 0 and f"{out['challenger']} vs {champ}: passed by eng" in res.output
    res = runner.invoke(cli, ["--data-dir", str(store.data_dir), "models", "gates", "--plot",
                              str(store.data_dir / "gates.png")], catch_exceptions=False)
    assert res.exit_code == 0 and "plot: " in res.output and (store.data_dir / "gates.png").stat().st_size > 5000
    res = runner.invoke(cli, ["--data-dir", str(store.data_dir), "models", "gates", "--plot",
                              str(store.data_dir / "no-such-folder" / "gates.png")])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["--data-dir", str(store.data_dir), "models", "gates", "--limit", "0"])
    assert res.exit_code == 2 and "--limit" in res.output
