"""The audit chain takes hostile values and keeps verifying, and a redaction leaves no old copy.

`audit.record` runs in the caller's transaction: a value the log cannot store (a file name that is
not UTF-8, a NaN metric on PostgreSQL, an entity id longer than its column) used to fail the
action with a traceback, or lose its event after the work was done. And on PostgreSQL a redacted
value survived in the old row version until some VACUUM. On SQLite and on the real PostgreSQL."""
from __future__ import annotations

import logging
import math
import os

import pytest
from sqlalchemy import select, text

from core import audit
from core.ingest import ingest_paths
from core.schema import AuditEvent
from core.store import Store

from test_hardening_audit_redaction import ARGON, _old_event

E = AuditEvent.__table__


def _record(store: Store, *args) -> int:
    with store.begin() as conn:
        digest = audit.record(conn, *args)
        return int(conn.execute(select(E.c.id).where(E.c.hash == digest)).scalar_one())


def _row(store: Store, eid: int):
    with store.read() as conn:
        return conn.execute(select(E).where(E.c.id == eid)).mappings().one()


def _verify(store: Store) -> audit.VerifyResult:
    with store.read(snapshot=True) as conn:
        return audit.verify(conn)


@pytest.mark.parametrize("payload, stored", [
    ({"auc": float("nan"), "hi": float("inf"), "lo": -float("inf")}, {"auc": "NaN", "hi": "Infinity", "lo": "-Infinity"}),
    ({"paths": ["caf\udce9.csv"], "why\ud800": "x"}, {"paths": ["caf\ufffd.csv"], "why\ufffd": "x"}),
    ({"n": 10 ** 5000}, {"n": f"{10 ** 5000:#x}"}),
    ({1: "a", "1": "b", (2, 3): "c"}, {"1": "a", "1#2": "b", "(2, 3)": "c"}),
], ids=["non-finite", "lone-surrogate", "huge-int", "colliding-keys"])
def test_hostile_payload_values_are_stored_as_hashed_and_verify(any_store, payload, stored):
    eid = _record(any_store, "ada", "model.gate", "model_version", 7, payload)
    _record(any_store, "ada", "x.after", None, None, {"ok": True})
    assert _row(any_store, eid)["payload"] == stored  # nothing silently dropped, the same on both stores
    result = _verify(any_store)
    assert result.ok, result.problems
    assert result.keyed_events == 2


def test_text_columns_hold_what_the_store_can_hold(any_store):
    eid = _record(any_store, "ev\udcffil", "labels.export", "dataset", "/d\x00" + "x" * 300, {})
    row = _row(any_store, eid)
    assert row["actor"] == "ev\ufffdil"
    assert len(row["entity_id"]) == 200 and row["entity_id"].startswith("/d\ufffdxx") and row["entity_id"][-1] == "…"
    assert _verify(any_store).ok


@pytest.mark.skipif(os.name != "posix", reason="a file name that is not UTF-8 needs a POSIX file system")
def test_ingest_of_a_file_whose_name_is_not_utf8_is_audited(any_store, taxonomy, tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.csv")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("id,text\n1,hello world\n2,another text\n")
    ingest_paths(any_store, taxonomy, [os.fsdecode(path)], source="cafe", progress=False)
    with any_store.read() as conn:
        event = conn.execute(select(E).where(E.c.action == "ingest")).mappings().one()
    assert event["payload"]["paths"] == [os.fsdecode(path).replace("\udce9", "\ufffd")]
    assert _verify(any_store).ok


def _tuples_holding(store: Store, value: str) -> int:
    """Row versions, live or dead, of audit_events whose bytes hold `value` (pageinspect), or -1."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        except Exception:  # noqa: BLE001 - not installed on this server: the caller checks the stats instead
            return -1
        return int(conn.execute(text(
            "SELECT count(*) FROM generate_series(0, pg_relation_size('audit_events') / 8192 - 1) AS b, "
            "heap_page_items(get_raw_page('audit_events', b::int)) AS i "
            "WHERE position(convert_to(:v, 'UTF8') IN i.t_data) > 0"), {"v": value}).scalar_one())


def _last_vacuum(store: Store):
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return conn.execute(text("SELECT last_vacuum, n_dead_tup FROM pg_stat_user_tables "
                                 "WHERE relname = 'audit_events'")).one()


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["redact", "migrate"])
def test_redacted_value_leaves_no_old_row_version_on_postgresql(pg_store, how):
    eid = _old_event(pg_store, "user.set_password", {"was": {"password_hash": ARGON}})
    if how == "redact":  # `workbench audit redact`
        with pg_store.begin() as conn:
            assert [r["event"] for r in audit.redact(conn, "admin")["redacted"]] == [eid]
    else:  # `workbench init` on an upgraded store
        pg_store.migrate()
    assert ARGON not in str(_row(pg_store, eid)["payload"])
    found = _tuples_holding(pg_store, ARGON)
    if found >= 0:
        assert found == 0  # not in the live row, nor in a dead one
    last, dead = _last_vacuum(pg_store)
    assert last is not None and dead == 0
    assert _verify(pg_store).ok


@pytest.mark.postgres
def test_an_older_transaction_keeping_the_old_version_is_reported(pg_store, caplog):
    eid = _old_event(pg_store, "user.set_password", {"was": {"password_hash": ARGON}})
    with pg_store.read(snapshot=True) as old:
        old.execute(select(E.c.id)).all()  # its snapshot still sees the secret: VACUUM must keep it
        with caplog.at_level(logging.WARNING, logger="workbench.audit"):
            with pg_store.begin() as conn:
                audit.redact(conn, "admin")
        assert ARGON in str(old.execute(select(E.c.payload).where(E.c.id == eid)).scalar_one())
    assert any("VACUUM audit_events" in r.getMessage() and "left" in r.getMessage() for r in caplog.records)


def test_non_finite_values_still_verify_in_events_written_before(sqlite_store):
    """SQLite stored NaN as given before; such events keep verifying beside the strict JSON of new ones."""
    with sqlite_store.begin() as conn:
        akey = audit.connection_key(conn)
        prev = audit._chain_head(conn, akey)
        ts = audit.utcnow()
        payload = {"auc": float("nan")}
        digest = audit.keyed_hash(akey.get(conn), prev, ts, "ada", "model.gate", None, None, payload)
        conn.execute(E.insert().values(ts=ts, actor="ada", action="model.gate", entity_type=None, entity_id=None,
                                       payload=payload, prev_hash=prev, hash=digest))
    eid = _record(sqlite_store, "ada", "x.after", None, None, {"auc": float("nan")})
    assert math.isnan(_row(sqlite_store, 1)["payload"]["auc"])
    assert _row(sqlite_store, eid)["payload"] == {"auc": "NaN"}  # new events: strict JSON, as on PostgreSQL
    assert _verify(sqlite_store).ok
