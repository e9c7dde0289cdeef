"""Hardening of two reads that grew with the data: the audit log looked up by action or entity,
and `workbench cases preview` of a campaign case.

1. `audit_events` had no index but its primary key and hashes, yet the champion's training event
   and the latest gate verdict (`evaluation.retrain_mark`), the gate verdicts
   (`evaluation.model_overview`), the redaction claims (`core.audit`) look events up by `action`,
   and a hand-off's timeline (`labeling.packets.escalation_packet`) by the entity: each scanned the
   whole log. Migration 0015 adds `ix_audit_action` (action, id) and `ix_audit_entity`
   (entity_type, entity_id, id); shown here with the plans of the very statements those reads run.
2. `cases preview` planned the decision over every member (`decisions.bulk_preview`): 2,000
   members asked more of the store than 20. It now asks the same (`labeling.bulk_preview`), with
   the same exact figures, each kind left out counted and its first members named.
3. `cases preview` planned without the queue config `decide` gets: a member whose own case waits
   in the appeals queue was counted as one the decision would label; and it had no `--existing`,
   so it could not say what `decide --existing skip` would do.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import insert, inspect as sa_inspect, select, update

from core import audit
from core.schema import AuditEvent, Campaign, Case, Decision
from core.store import open_store
from evaluation.model_overview import gate_verdicts
from evaluation.retrain_mark import counting_marks
from labeling import bulk_preview as BP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.errors import DecisionError
from workbench.cli import cli

from test_queue_support import T0, add_campaign, add_scored, asked, case_ids, listening, quiet

A, C, D = AuditEvent.__table__, Case.__table__, Decision.__table__
LIVE = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(days=1)  # live at T0 and now
INDEXES = {"ix_audit_action": ["action", "id"], "ix_audit_entity": ["entity_type", "entity_id", "id"]}


# -- 1. the audit log by action and by entity -------------------------------------------------
def _indexes(conn) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in sa_inspect(conn).get_indexes("audit_events")}


def _events(store, n: int) -> None:
    """`n` ordinary events about cases, then a few of the rare actions the readers look for."""
    rows = [dict(actor="ann", action="case.claim", entity_type="case", entity_id=str(i % 400), payload={})
            for i in range(n)]
    rows += [dict(actor="ml", action="model.train", entity_type="model_version", entity_id="v1", payload={}),
             dict(actor="ml", action="model.gate", entity_type="model_version", entity_id="v1",
                  payload={"passed": True, "champion": "v0"}),
             dict(actor="ml", action="audit.redact", entity_type="audit_event", entity_id="1", payload={})]
    with store.begin() as conn:
        conn.execute(insert(A), [dict(r, ts=T0, prev_hash=f"p{i:063d}", hash=f"h{i:063d}")
                                 for i, r in enumerate(rows)])
        if not store.is_sqlite:  # PostgreSQL analyses a grown table by itself (autovacuum); SQLite here never
            conn.exec_driver_sql("ANALYZE audit_events")


@contextlib.contextmanager
def _statements(store):
    """The statements run on `audit_events` that filter it (with their parameters) while inside."""
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, params, context, executemany):
        if "audit_events" in statement and "WHERE" in statement:
            seen.append((statement, params))
    with listening(store, keep):
        yield seen


def _plan(conn, store, statement: str, params) -> str:
    if store.is_sqlite:
        return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # may it use an index at all: tiny tables scan anyway
    return " | ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {statement}", params))


def test_the_audit_logs_readers_by_action_and_entity_use_its_indexes(any_store, taxonomy, queue_config,
                                                                     review_settings, campaign_settings):
    from labeling.packets import escalation_packet

    s, cfg = any_store, quiet(queue_config)
    add_scored(s, taxonomy, [{"id": "x1", "label": "scam", "p": 0.9}])
    build_cases(s, taxonomy, cfg, now=T0, progress=False)
    _events(s, 3000)
    with s.read() as conn:
        assert {k: _indexes(conn).get(k) for k in INDEXES} == INDEXES
        if not s.is_sqlite:
            defs = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes "
                                             "WHERE tablename = 'audit_events'").all())
            assert "(action, id)" in defs["ix_audit_action"], defs
    with _statements(s) as seen:
        with s.read() as conn:
            later, _ = counting_marks(conn, {"id": "v1", "metrics": {}})
            claims = audit._claims(conn, s.audit_key.get(conn))
        verdicts = gate_verdicts(s, "lead") + gate_verdicts(s, "lead", challenger="v1")
        packet = escalation_packet(s, taxonomy, case_ids(s)["x1"], review_settings, campaign_settings)
    assert later.audit_id is not None and claims == {} and [v["challenger"] for v in verdicts] == ["v1", "v1"]
    assert packet["timeline"] is not None
    by = {"action": [st for st in seen if "action" in st[0].split("WHERE", 1)[1]],
          "entity": [st for st in seen if "entity_type" in st[0].split("WHERE", 1)[1]]}
    assert len(by["action"]) >= 5 and len(by["entity"]) >= 2, seen
    with s.read() as conn:
        for statement, params in by["action"] + by["entity"]:
            plan = _plan(conn, s, statement, params)
            assert "ix_audit_" in plan, (statement, plan)  # was: SCAN audit_events / Seq Scan


def test_the_upgrade_to_0015_adds_the_indexes_and_keeps_every_event(any_store):
    _events(any_store, 10)
    with any_store.begin() as conn:
        alembic_cfg = any_store._alembic_config()
        alembic_cfg.attributes["connection"] = conn
        command.downgrade(alembic_cfg, "0014")
    with any_store.read() as conn:
        assert not set(INDEXES) & set(_indexes(conn))
        before = [tuple(r) for r in conn.execute(select(A).order_by(A.c.id)).all()]
    store = open_store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    try:
        assert store.schema_revision() == store.head_revision()
        with store.read() as conn:
            assert {k: _indexes(conn).get(k) for k in INDEXES} == INDEXES
            assert [tuple(r) for r in conn.execute(select(A).order_by(A.c.id)).all()] == before
            cases = {ix["name"]: ix["column_names"] for ix in sa_inspect(conn).get_indexes("cases")}
            assert cases["ix_cases_created"] == ["created_at"] and cases["ix_cases_resolved"] == ["resolved_at"]
    finally:
        store.dispose()


# -- 2, 3. the campaign preview ---------------------------------------------------------------
def _case(store, item_id, **values) -> int:
    row = dict(item_id=item_id, queue="fraud", state="open", created_at=T0, updated_at=T0, meta={})
    with store.begin() as conn:
        return conn.execute(insert(C).values(**dict(row, **values)).returning(C.c.id)).scalar_one()


def _decided(store, item_ids, label="spam") -> None:
    if not item_ids:
        return
    with store.begin() as conn:
        conn.execute(insert(D), [dict(item_id=m, reviewer="ann", kind="review", label=label, action="remove",
                                      taxonomy_version="t", created_at=T0) for m in item_ids])


def _hold(store, case_id, who) -> None:
    with store.begin() as conn:
        conn.execute(update(C).where(C.c.id == case_id).values(state="claimed", claimed_by=who,
                                                               lease_expires_at=LIVE))


def _wave(store, taxonomy, cfg, prefix: str, n: int) -> int:
    """A campaign case of `n` members: a quarter decided, 3 held by others, 2 under appeal (one only
    by its queue), the rest undecided. Its case id."""
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ids])
    cid = add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    cases = case_ids(store, lambda c: f"camp{c}")
    _decided(store, ids[5:n // 4])
    for m, who in zip(ids[:3], ("bob", "carol", "bob")):
        _hold(store, cases[m], who)
    _case(store, ids[3], queue=cfg.appeals_queue, meta={"appeal": {"decision_id": 1}})
    _case(store, ids[4], queue=cfg.appeals_queue)  # in the appeals queue, no packet: an appeal to `decide`
    return cases[f"camp{cid}"]


def _cli(store, monkeypatch, tmp_path, *args):
    import core.store

    monkeypatch.setattr(core.store, "open_store", lambda *a, **k: store)  # the CLI's store is the test's
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "cli"), "cases", "preview", *args, "--as", "lead"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_cases_preview_asks_the_same_of_the_store_for_20_and_2000_members(any_store, taxonomy, queue_config,
                                                                          monkeypatch, tmp_path):
    """Was (SQLite): 2,000 members ran more statements binding thousands more values than 20."""
    s, cfg, seen, got = any_store, quiet(queue_config), {}, {}
    for n in (20, 2000):
        case_id = _wave(s, taxonomy, cfg, f"w{n}", n)
        with asked(s) as count:
            got[n] = json.loads(_cli(s, monkeypatch, tmp_path, str(case_id), "--json"))
        seen[n] = tuple(count)
    assert seen[20] == seen[2000] and seen[20][0] > 0, seen
    for n in (20, 2000):
        case_id = case_ids(s, lambda c: f"camp{c}")[f"camp{got[n]['campaign_id']}"]
        full = DEC.bulk_preview(s, case_id, "lead", now=T0, config=cfg)
        few = json.loads(_cli(s, monkeypatch, tmp_path, str(case_id), "--show", "2", "--json"))
        assert few == dict(got[n], shown=2, held_by_others=dict(list(got[n]["held_by_others"].items())[:2]),
                           skipped_appeal=got[n]["skipped_appeal"][:2])
        assert (got[n]["members"], got[n]["will_decide"], got[n]["already_decided"]) == (n, n - 5, n // 4 - 5)
        for key in ("members", "will_decide", "already_decided", "already_decided_labels"):
            assert got[n][key] == full[key], key
        assert (got[n]["held_by_others_total"], got[n]["skipped_appeal_total"]) == (3, 2)
        assert got[n]["held_by_others"] == dict(sorted(full["held_by_others"].items()))
        assert got[n]["skipped_appeal"] == full["skipped_appeal"]
    text = _cli(s, monkeypatch, tmp_path, str(case_id), "--show", "1")
    assert "held by other analysts 3 (w2000-00000 (bob) and 2 more)" in text, text
    assert "will decide 1995" in text and len(text.strip().splitlines()) == 1


def test_cases_preview_counts_what_decide_then_does(any_store, taxonomy, queue_config, monkeypatch, tmp_path):
    """An appeals-queue member is left out by `decide` (its config); the preview, given none, counted
    it as one to label. And `--existing skip` is previewed as `decide --existing skip` does it."""
    s, cfg = any_store, quiet(queue_config)
    case_id = _wave(s, taxonomy, cfg, "d", 40)
    monkeypatch.setattr("workbench.context.AppContext.queues", lambda self: cfg)
    shown = json.loads(_cli(s, monkeypatch, tmp_path, str(case_id), "--json"))
    assert shown["skipped_appeal"] == ["d-00003", "d-00004"] and shown["will_decide"] == 35
    skip = json.loads(_cli(s, monkeypatch, tmp_path, str(case_id), "--existing", "skip", "--json"))
    assert (skip["existing"], skip["skipped_decided_total"], skip["will_decide"]) == ("skip", 5, 30)
    out = DEC.decide(s, taxonomy, case_id, "lead", "scam", now=T0, config=cfg, existing="skip",
                     rationale="one scam wave")  # an escalated case: say why
    assert len(out["decision_ids"]) == skip["will_decide"] and out["bulk"]["superseded"] == skip["already_decided"]
    assert sorted(out["bulk"]["skipped_appeal"]) == shown["skipped_appeal"]


def test_preview_names_the_plans_members_and_counts_them_all(any_store, taxonomy, queue_config):
    s, cfg = any_store, quiet(queue_config)
    case_id = _wave(s, taxonomy, cfg, "m", 40)
    for config in (None, cfg):
        for existing in (None, "supersede", "skip"):
            for who in ("lead", "bob"):
                full = DEC.bulk_preview(s, case_id, who, now=T0, existing=existing, config=config)
                for shown in (0, 2, 1000):
                    got = BP.preview(s, case_id, who, now=T0, existing=existing, config=config, shown=shown)
                    where = (config is not None, existing, who, shown)
                    for key in ("members", "will_decide", "existing", "already_decided", "already_decided_labels"):
                        assert got[key] == full[key], (key, where)
                    for key in ("held_by_others", "skipped_appeal", "skipped_decided"):
                        assert got[f"{key}_total"] == len(full[key]), (key, where)
                    assert got["held_by_others"] == dict(sorted(full["held_by_others"].items())[:shown]), where
                    assert got["skipped_appeal"] == full["skipped_appeal"][:shown], where
                    assert got["skipped_decided"] == full["skipped_decided"][:shown], where
    skip = BP.preview(s, case_id, "lead", now=T0, existing="skip", config=cfg, shown=3)
    assert skip["skipped_decided_total"] == 5 and skip["skipped_decided"] == ["m-00005", "m-00006", "m-00007"]


def test_preview_refuses_as_the_plan_does(sqlite_store, taxonomy, queue_config):
    s, cfg = sqlite_store, quiet(queue_config)
    case_id = _wave(s, taxonomy, cfg, "e", 8)
    for kwargs, words in (({"existing": "all"}, "existing must be one of"), ({"shown": -1}, "shown must be"),
                          ({"shown": True}, "shown must be")):
        with pytest.raises(DecisionError, match=words):
            BP.preview(s, case_id, "lead", now=T0, **kwargs)
    with pytest.raises(DecisionError, match="no case 999999"):
        BP.preview(s, 999999, "lead")
    one = BP.preview(s, case_ids(s)["e-00007"], "lead", now=T0)
    assert (one["members"], one["will_decide"], one["held_by_others"], one["held_by_others_total"]) == (1, 1, {}, 0)
    with s.begin() as conn:
        cid = conn.execute(select(C.c.campaign_id).where(C.c.id == case_id)).scalar_one()
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(status="merged"))
    with pytest.raises(DecisionError, match=f"campaign {cid} of case {case_id} is merged"):
        BP.preview(s, case_id, "lead", now=T0)
