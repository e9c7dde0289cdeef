"""Hardening of the Operations KPIs' reads (12-07): the Operations tab (`workbench.ui.operations`,
`evaluation.ops.ops_kpis`) read every case and every decision ever stored on each refresh, so a
team with a million decisions stalled the tab. Counts are SQL aggregates now and the rest is read
over the KPI period: the rows one refresh reads do not grow with the cases decided before it,
on SQLite and PostgreSQL, and the figures of the period are those of before."""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterator

import pytest
from sqlalchemy.engine.cursor import CursorResult

from evaluation import ops
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from test_queue_support import T0, add_scored, asked, case_row

OLD = T0 - dt.timedelta(days=400)  # decided long before any KPI period, the tab's included
NOW, SINCE = T0 + dt.timedelta(hours=6), T0 - dt.timedelta(days=30)
STOCK = ("cases", "queues", "backlog", "overdue")  # counts over every case, whatever the period


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


@contextlib.contextmanager
def fetched(monkeypatch: Any) -> Iterator[list[int]]:
    """[rows handed from the store's cursors to Python] while inside, by every fetch path of a result."""
    seen = [0]
    one, many, every, each = (CursorResult._fetchone_impl, CursorResult._fetchmany_impl,
                              CursorResult._fetchall_impl, CursorResult._fetchiter_impl)

    def fetchone(self: Any, *a: Any, **kw: Any) -> Any:
        row = one(self, *a, **kw)
        seen[0] += row is not None
        return row

    def fetchmany(self: Any, *a: Any, **kw: Any) -> Any:
        rows = many(self, *a, **kw)
        seen[0] += len(rows)
        return rows

    def fetchall(self: Any) -> Any:
        rows = every(self)
        seen[0] += len(rows)
        return rows

    def fetchiter(self: Any) -> Iterator[Any]:
        for row in each(self):
            seen[0] += 1
            yield row

    with monkeypatch.context() as m:
        m.setattr(CursorResult, "_fetchone_impl", fetchone)
        m.setattr(CursorResult, "_fetchmany_impl", fetchmany)
        m.setattr(CursorResult, "_fetchall_impl", fetchall)
        m.setattr(CursorResult, "_fetchiter_impl", fetchiter)
        yield seen


def _decided(store, taxonomy, cfg, prefix: str, n: int, at: dt.datetime) -> None:
    """`n` scam items, their fraud cases built at `at` and decided by ann 20 minutes later."""
    add_scored(store, taxonomy, [{"id": f"{prefix}{i}", "label": "scam", "p": 0.9} for i in range(n)])
    build_cases(store, taxonomy, cfg, now=at, progress=False)
    for _ in range(n):
        c = next_case(store, "ann", "fraud", now=at + dt.timedelta(minutes=5), config=cfg)
        DEC.decide(store, taxonomy, c["id"], "ann", "scam", now=at + dt.timedelta(minutes=20), config=cfg)


def _recent(store, taxonomy, cfg) -> None:
    """Two fraud cases decided at T0 and a hate case left open."""
    add_scored(store, taxonomy, [{"id": "h0", "label": "hate", "p": 0.9}])
    _decided(store, taxonomy, cfg, "r", 2, T0)


def _read(store, cfg, monkeypatch, **kw: Any) -> tuple[dict[str, Any], int, int]:
    """(the KPIs, rows fetched, statements run) of one `ops_kpis` at NOW."""
    with fetched(monkeypatch) as rows, asked(store) as stmts:
        k = ops.ops_kpis(store, now=NOW, config=cfg, actor="lead", **kw)
    return k, rows[0], stmts[0]


def _flows(k: dict[str, Any]) -> dict[str, Any]:
    return {key: v for key, v in k.items() if key not in (*STOCK, "since")}


def test_the_kpis_read_the_period_not_every_case_ever_decided(any_store, taxonomy, cfg, monkeypatch):
    _recent(any_store, taxonomy, cfg)
    before, rows0, stmts0 = _read(any_store, cfg, monkeypatch, since=SINCE)
    assert before["decisions"] == 2 and before["cases"] == 3 and before["backlog"] == 1
    # every case lies in the period: the same figures as the whole store (the figures of before)
    assert _flows(before) == _flows(ops.ops_kpis(any_store, now=NOW, config=cfg, actor="lead"))
    _decided(any_store, taxonomy, cfg, "o", 3, OLD)
    some, rows1, stmts1 = _read(any_store, cfg, monkeypatch, since=SINCE)
    _decided(any_store, taxonomy, cfg, "p", 12, OLD)
    many, rows2, stmts2 = _read(any_store, cfg, monkeypatch, since=SINCE)
    assert rows0 == rows1 == rows2 and stmts0 == stmts1 == stmts2  # was: every case and decision, 3 + 15 more
    assert _flows(many) == _flows(before)  # the period's figures, as before the old cases came
    assert many["cases"] == 18 and many["queues"]["fraud"]["decided"] == 17 and many["backlog"] == 1
    everything = ops.ops_kpis(any_store, now=NOW, config=cfg, actor="lead")  # no period: every case, as before
    assert everything["decisions"] == 17 and everything["resolved_per_analyst"] == {"ann": 17}
    assert everything["median_minutes_to_resolution"] == 20.0
    # an aware `since` is the same instant (the store keeps naive UTC)
    aware = SINCE.replace(tzinfo=dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert _flows(_read(any_store, cfg, monkeypatch, since=aware)[0]) == _flows(before)


def test_the_operations_tab_reads_no_more_for_older_cases(any_store, taxonomy, cfg, monkeypatch):
    from test_campaign_bulk_integrity import _App
    from test_ui_tabs_fixes import _blocks_fns
    from workbench.ui.operations import build_operations_tab

    kpis = _blocks_fns(lambda who, tab: build_operations_tab(_App(any_store, taxonomy, cfg), tab))["kpis"][0]
    add_scored(any_store, taxonomy, [{"id": "h0", "label": "hate", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)  # open: in every period
    _decided(any_store, taxonomy, cfg, "o", 2, OLD)
    with fetched(monkeypatch) as few:
        when, summary, *_ = kpis()
    _decided(any_store, taxonomy, cfg, "p", 10, OLD)
    with fetched(monkeypatch) as more:
        when, summary, *_ = kpis()
    assert few[0] == more[0]  # was: 12 cases and 12 decisions more read on each refresh
    shown = {row[0]: row[1] for row in summary}
    assert shown["cases"] == 13 and shown["backlog"] == 1 and shown["decisions"] == 0
    assert when.startswith("As of ") and "the rest: cases created, decided or open since" in when


def test_work_still_open_from_before_the_period_stays_in_its_figures(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "h0", "label": "hate", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=OLD, progress=False)  # opened long ago, never decided
    _decided(any_store, taxonomy, cfg, "o", 2, OLD)
    period = ops.ops_kpis(any_store, now=NOW, config=cfg, actor="lead", since=SINCE)
    assert period["backlog"] == 1 and period["overdue"] == 1
    missed = [t for t, v in period["sla"].items() if v["missed"]]
    assert len(missed) == 1 and period["sla"][missed[0]]["cases"] == 1  # the lapsed SLA of the open case
    assert period["decisions"] == 0 and period["escalation_rate"] == 0.0  # of the one case in the period


def test_the_command_line_chart_names_the_zone_of_its_time(sqlite_store, cfg, tmp_path, monkeypatch):
    import matplotlib.figure

    titles: list[str] = []
    save = matplotlib.figure.Figure.savefig

    def saved(self: Any, *a: Any, **kw: Any) -> Any:
        titles.extend(ax.get_title() for ax in self.axes)
        return save(self, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saved)
    at = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 14:00 UTC
    ops.plot_kpis(ops.ops_kpis(sqlite_store, now=at, config=cfg), tmp_path / "kpis.png")
    assert titles[0] == "Cases per queue (as of 2026-11-25 14:00 UTC)"  # was: "as of 2026-11-25T14:00:00", no zone


def test_an_appeal_escalated_out_of_its_queue_still_counts_as_an_appeal(any_store, taxonomy, cfg):
    from sqlalchemy import update

    from core.schema import Case
    from labeling import appeals as APP

    _decided(any_store, taxonomy, cfg, "a", 1, T0)
    ap = APP.appeal(any_store, "a0", "user-1", "my bank", taxonomy, now=T0 + dt.timedelta(hours=1), config=cfg)
    # escalated as a store did before `escalate` refused appeals: it waits in the escalation queue
    meta = {**(case_row(any_store, ap["id"])["meta"] or {}), "escalated_from": cfg.appeals_queue}
    with any_store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.__table__.c.id == ap["id"]).values(
            queue=cfg.escalation_queue, state="escalated", escalation_reason="appeal SLA about to lapse", meta=meta))
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), config=cfg, actor="lead")
    assert k["appeals"] == 1 and k["appeals_sla"]["cases"] == 1  # was: 0, counted as review work
    assert k["escalation_rate"] == 0.0  # the one review case, never escalated (was: 1 of 2)
    assert cfg.appeals_queue not in k["sla_by_queue"]


def test_workbench_queues_days_reads_the_period(any_store, taxonomy, cfg, monkeypatch, tmp_path):
    """`workbench queues --days N` asks the KPIs over the last N days (the tab's bounded read)."""
    import json

    import core.store
    from click.testing import CliRunner

    from workbench.cli import cli

    _decided(any_store, taxonomy, cfg, "o", 3, OLD)
    monkeypatch.setattr(core.store, "open_store", lambda *a, **k: any_store)
    monkeypatch.setattr(ops, "utcnow", lambda: NOW, raising=False)

    def run(*args: str) -> dict[str, Any]:
        res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "cli"), "queues", *args, "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    assert run()["decisions"] == 3 and run()["cases"] == 3
    recent = run("--days", "30")
    assert recent["decisions"] == 0 and recent["cases"] == 3  # decided 400 days ago: outside the period
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "cli"), "queues", "--days", "0"])
    assert res.exit_code != 0 and "--days" in res.output
