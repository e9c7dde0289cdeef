"""The tamper suite (issue 15): what someone with database access but without the audit key can
do to decisions and the audit chain, on SQLite and on the real PostgreSQL. Each attack is either
refused by the database or found by `audit.verify`; an untouched store with events appended after
its last checkpoint verifies."""
from __future__ import annotations

import datetime as dt
import sqlite3
import uuid

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from core import audit
from core.config import config_dir
from core.schema import AuditEvent, Decision
from core.store import Store
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.queue_config import load_queue_config

from test_queue_support import T0, add_scored

E = AuditEvent.__table__
D = Decision.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "calibration_sets": []})


def _decide_some(store, taxonomy, cfg, ids=("a", "b", "c")) -> list[int]:
    """Decide one case per id through the service (bound events), then correct the first."""
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9, "text": f"claim your prize {i}"} for i in ids])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    out = []
    for _ in ids:
        c = next_case(store, "ann", "fraud", now=T0, config=cfg)
        out += DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender", rationale="prize lure",
                          now=T0 + dt.timedelta(minutes=5), config=cfg)["decision_ids"]
    out.append(DEC.correct(store, taxonomy, out[0], "lead", "scam", "second look", action="remove")["decision_id"])
    return out


def _verify(store, **kw) -> audit.VerifyResult:
    with store.read() as conn:
        return audit.verify(conn, **kw)


def _checkpoint(store, tmp_path) -> list[dict]:
    with store.read() as conn:
        cp = audit.head(conn)
    path = audit.append_checkpoint(tmp_path / "checkpoints.jsonl", cp)
    return audit.read_checkpoints(path)


def _sql(store, *statements: str) -> None:
    """Run SQL as an attacker with database access (a plain connection, no store settings)."""
    if store.is_sqlite:
        db = sqlite3.connect(store.data_dir / "workbench.db")
        try:
            for s in statements:
                db.execute(s)
            db.commit()
        finally:
            db.close()
    else:
        with store.engine.begin() as conn:
            for s in statements:
                conn.execute(text(s))


def _drop_triggers(store) -> None:
    names = [f"{t}_no_{v}" for t in ("decisions", "audit_events") for v in ("update", "delete", "replace", "truncate")]
    if store.is_sqlite:
        _sql(store, *[f"DROP TRIGGER IF EXISTS {n}" for n in names])
    else:
        _sql(store, *[f"DROP TRIGGER IF EXISTS {n} ON {n.split('_no_')[0]}" for n in names])


def _problems(result) -> str:
    assert not result.ok, "verify should have found the tampering"
    return "\n".join(result.problems)


# -- refused by the database ---------------------------------------------------------------------
def test_replace_into_is_refused(any_store, taxonomy, cfg):
    ids = _decide_some(any_store, taxonomy, cfg)
    if any_store.is_sqlite:
        attacks = [f"REPLACE INTO decisions (id, reviewer, kind, label, action, is_override, taxonomy_version, "
                   f"created_at) VALUES ({ids[1]}, 'x', 'review', 'benign', 'no_action', 0, 'v', '2026-01-01')",
                   "INSERT OR REPLACE INTO audit_events (id, ts, actor, action, prev_hash, hash) "
                   "VALUES (2, '2026-01-01', 'x', 'y', 'p', 'h')"]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            _sql(any_store, attacks[0])  # a plain connection: the INSERT guard of migration 0003
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            _sql(any_store, attacks[1])
        with pytest.raises(DBAPIError, match="append-only"), any_store.begin() as conn:
            conn.exec_driver_sql(attacks[0])  # the store's own connections (recursive_triggers on)
    else:
        with pytest.raises(DBAPIError, match="append-only"):
            _sql(any_store, f"INSERT INTO decisions (id, reviewer, kind, label, action, is_override, taxonomy_version, "
                            f"created_at) VALUES ({ids[1]}, 'x', 'review', 'benign', 'no_action', false, 'v', now()) "
                            "ON CONFLICT (id) DO UPDATE SET label = excluded.label")
    assert _verify(any_store).ok


def test_truncate_and_update_and_delete_are_refused(any_store, taxonomy, cfg):
    _decide_some(any_store, taxonomy, cfg)
    # SQLite has no TRUNCATE; an unqualified DELETE is its truncate, and the triggers stop it too.
    wipe = "DELETE FROM {}" if any_store.is_sqlite else "TRUNCATE {}"
    err = sqlite3.DatabaseError if any_store.is_sqlite else DBAPIError
    for table in ("decisions", "audit_events"):
        for sql in (wipe.format(table), f"UPDATE {table} SET id = id", f"DELETE FROM {table} WHERE id = 1"):
            with pytest.raises(err, match="append-only"):
                _sql(any_store, sql)
    assert _verify(any_store).ok


# -- found by verify, with the triggers dropped ----------------------------------------------------
def test_edited_decision_row_is_detected(any_store, taxonomy, cfg):
    ids = _decide_some(any_store, taxonomy, cfg)
    _drop_triggers(any_store)
    _sql(any_store, f"UPDATE decisions SET label = 'benign', action = 'no_action' WHERE id = {ids[1]}")
    assert f"decision {ids[1]} differs from what event" in _problems(_verify(any_store))


def test_replaced_decision_row_is_detected(sqlite_store, taxonomy, cfg):
    ids = _decide_some(sqlite_store, taxonomy, cfg)
    _drop_triggers(sqlite_store)
    with sqlite_store.read() as conn:
        row = dict(conn.execute(select(D).where(D.c.id == ids[2])).mappings().one())
    _sql(sqlite_store, f"REPLACE INTO decisions (id, case_id, item_id, reviewer, kind, label, action, is_override, "
                       f"taxonomy_version, created_at) VALUES ({ids[2]}, {row['case_id']}, '{row['item_id']}', "
                       f"'ann', 'review', 'benign', 'no_action', 0, '{row['taxonomy_version']}', "
                       f"'{row['created_at'].isoformat(sep=' ')}')")
    assert f"decision {ids[2]} differs" in _problems(_verify(sqlite_store))


def test_deleted_and_forged_decisions_are_detected(any_store, taxonomy, cfg):
    ids = _decide_some(any_store, taxonomy, cfg)
    _drop_triggers(any_store)
    _sql(any_store, f"DELETE FROM decisions WHERE id = {ids[1]}")
    with any_store.engine.begin() as conn:
        conn.execute(insert(D).values(reviewer="mallory", kind="review", label="benign", action="no_action",
                                      is_override=False, taxonomy_version="x", created_at=T0))
    problems = _problems(_verify(any_store))
    assert f"decision {ids[1]}, bound by event" in problems and "is missing" in problems
    assert "has no audit event binding it" in problems


def test_deleted_middle_event_is_detected(any_store, taxonomy, cfg):
    _decide_some(any_store, taxonomy, cfg)
    _drop_triggers(any_store)
    _sql(any_store, "DELETE FROM audit_events WHERE id = 3")
    problems = _problems(_verify(any_store))
    assert "events deleted" in problems


def test_deleted_tail_is_detected(any_store, taxonomy, cfg, tmp_path):
    ids = _decide_some(any_store, taxonomy, cfg)
    cps = _checkpoint(any_store, tmp_path)
    _drop_triggers(any_store)
    with any_store.read() as conn:
        last = conn.execute(select(E.c.id).order_by(E.c.id.desc()).limit(1)).scalar()
    # Cut the newest event and the decision it bound: the chain alone still links up...
    _sql(any_store, f"DELETE FROM audit_events WHERE id = {last}", f"DELETE FROM decisions WHERE id = {ids[-1]}")
    assert _verify(any_store).ok
    # ...the checkpoint kept outside the database does not.
    assert "events deleted or truncated" in _problems(_verify(any_store, checkpoints=cps))


def test_truncated_tables_are_detected(any_store, taxonomy, cfg, tmp_path):
    _decide_some(any_store, taxonomy, cfg)
    cps = _checkpoint(any_store, tmp_path)
    _drop_triggers(any_store)
    _sql(any_store, "DELETE FROM audit_events")  # decisions stay: they have lost their events
    assert "has no audit event binding it" in _problems(_verify(any_store))
    _sql(any_store, "DELETE FROM decisions")
    assert "chain has 0" in _problems(_verify(any_store, checkpoints=cps))


def _rewrite_chain(store, rows, hasher) -> None:
    """Re-insert `rows` (audit events) with hashes recomputed by `hasher(prev, row)`."""
    _drop_triggers(store)
    _sql(store, "DELETE FROM audit_events")
    prev = audit.GENESIS
    with store.engine.begin() as conn:
        for i, r in enumerate(rows, 1):
            r = dict(r, id=i, prev_hash=prev)
            r["hash"] = hasher(prev, r)
            conn.execute(insert(E).values(**r))
            prev = r["hash"]


def _all_events(store):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(E).order_by(E.c.id)).mappings()]


def _sha(prev, r):
    return audit.event_hash(prev, r["ts"], r["actor"], r["action"], r["entity_type"], r["entity_id"], r["payload"])


@pytest.mark.parametrize("how", ["unkeyed", "other_key", "unkeyed_after_seal"])
def test_chain_recomputed_without_the_key_is_detected(any_store, taxonomy, cfg, tmp_path, how):
    _decide_some(any_store, taxonomy, cfg)
    cps = _checkpoint(any_store, tmp_path)
    rows = _all_events(any_store)
    del rows[2]  # drop an event in the middle, then make the chain link up again
    if how == "unkeyed":
        _rewrite_chain(any_store, rows, _sha)
    elif how == "other_key":
        mine = b"attacker-chosen-key-0123456789"
        _rewrite_chain(any_store, rows, lambda p, r: audit.keyed_hash(mine, p, r["ts"], r["actor"], r["action"],
                                                                       r["entity_type"], r["entity_id"], r["payload"]))
    else:  # pretend the chain was old (unkeyed) and forge a seal: the seal itself needs the key
        seal = dict(rows[0], action=audit.SEAL_ACTION, actor="system", entity_type="audit_chain", entity_id=None,
                    payload={"algorithm": "hmac-sha256", "legacy_events": len(rows), "decisions_upto": None})
        _rewrite_chain(any_store, rows + [seal], _sha)
    problems = _problems(_verify(any_store))
    assert "recomputed without the key" in problems
    assert "recomputed" in _problems(_verify(any_store, checkpoints=cps))


def test_reordered_events_are_detected(any_store, taxonomy, cfg, tmp_path):
    _decide_some(any_store, taxonomy, cfg)
    cps = _checkpoint(any_store, tmp_path)
    rows = _all_events(any_store)
    rows[-2], rows[-1] = rows[-1], rows[-2]  # the newest two: the checkpointed position moves
    _drop_triggers(any_store)
    _sql(any_store, "DELETE FROM audit_events")
    with any_store.engine.begin() as conn:
        for i, r in enumerate(rows, 1):
            conn.execute(insert(E).values(**dict(r, id=i)))
    problems = _problems(_verify(any_store, checkpoints=cps))
    assert "deleted or re-ordered" in problems and "not the one checkpointed" in problems


# -- no false alarms -------------------------------------------------------------------------------
def test_untouched_store_with_events_after_the_checkpoint_verifies(any_store, taxonomy, cfg, tmp_path):
    _decide_some(any_store, taxonomy, cfg, ids=("a", "b"))
    cps = _checkpoint(any_store, tmp_path)
    with any_store.read() as conn:
        old_head = audit.head(conn)["head"]
    # Normal work after the checkpoint: a claim, a decision, an appeal and its resolution.
    add_scored(any_store, taxonomy, [{"id": "z", "label": "scam", "p": 0.8}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(any_store, "bob", "fraud", now=T0, config=cfg)
    DEC.decide(any_store, taxonomy, c["id"], "bob", "scam", "block_sender", now=T0, config=cfg)
    APP.appeal(any_store, "z", "user-9", "not me", taxonomy, now=T0, config=cfg)
    ac = next_case(any_store, "cy", "appeals", now=T0, config=cfg)
    APP.resolve_appeal(any_store, taxonomy, ac["id"], "cy", "reverse", "it was theirs", now=T0, config=cfg)
    cps += _checkpoint(any_store, tmp_path)[-1:]
    with any_store.begin() as conn:
        audit.record(conn, "ann", "case.claim", "case", 1)
    result = _verify(any_store, checkpoints=cps, expect_head=old_head)
    assert result.ok, result.problems
    assert result.checkpoints == 2 and result.decisions >= 5 and result.keyed_events == result.events


# -- the least-privilege role on the real PostgreSQL ----------------------------------------------
APP_GRANTS = """
GRANT CONNECT ON DATABASE "{db}" TO {role};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON decisions, audit_events FROM {role};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role};
"""


@pytest.mark.postgres
def test_app_role_cannot_update_delete_or_truncate(pg_store, taxonomy, cfg):
    """The GRANTs of docs/deployment.md: refused by privilege even with the triggers dropped."""
    ids = _decide_some(pg_store, taxonomy, cfg)
    role = f"wb_app_{uuid.uuid4().hex[:8]}"
    db = pg_store.engine.url.database
    grants = [s for s in APP_GRANTS.format(db=db, role=role).split(";\n") if s.strip()]
    _sql(pg_store, f"CREATE ROLE {role} NOLOGIN", *grants)
    _drop_triggers(pg_store)
    try:
        for sql in (f"UPDATE decisions SET label = 'benign' WHERE id = {ids[0]}", "DELETE FROM decisions",
                    "TRUNCATE decisions", "UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events",
                    "TRUNCATE audit_events", "UPDATE alembic_version SET version_num = 'x'",
                    "ALTER TABLE decisions DISABLE TRIGGER USER"):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), pg_store.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL ROLE {role}"))
                conn.execute(text(sql))
        with pg_store.engine.begin() as conn:  # the application's own work still runs as the role
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            audit.record(conn, "ann", "case.claim", "case", 1)
            conn.execute(text("UPDATE cases SET updated_at = updated_at"))
        assert _verify(pg_store).ok
    finally:
        _sql(pg_store, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


# -- keys and old chains ----------------------------------------------------------------------------
def test_key_file_is_created_0600_and_an_open_one_refused(tmp_path):
    store = Store(tmp_path / "d")
    store.migrate()
    with store.begin() as conn:
        audit.record(conn, "a", "x")
    key = tmp_path / "d" / audit.KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600
    store.dispose()
    key.chmod(0o644)
    other = Store(tmp_path / "d")
    with pytest.raises(audit.AuditError, match="readable by others"), other.begin() as conn:
        audit.record(conn, "a", "y")
    other.dispose()


def test_explicit_key_and_a_wrong_key(tmp_path):
    store = Store(tmp_path / "d", audit_key="team-secret-from-the-vault-0001")
    store.migrate()
    with store.begin() as conn:
        audit.record(conn, "a", "x")
    assert not (tmp_path / "d" / audit.KEY_FILE).exists()
    assert _verify(store).ok
    with store.read() as conn:
        wrong = audit.verify(conn, key=audit.AuditKey("another-secret-entirely-0002"))
    assert not wrong.ok and "not the key it was written with" in "\n".join(wrong.problems)
    store.dispose()


def test_an_old_unkeyed_chain_is_sealed_and_still_verifies(any_store, taxonomy, cfg):
    """Events and decisions written before the key (plain SHA-256, no binding) stay valid."""
    with any_store.engine.begin() as conn:  # what the code before issue 15 wrote
        prev = audit.GENESIS
        for i in range(3):
            r = dict(ts=T0 + dt.timedelta(seconds=i), actor="old", action="case.claim", entity_type="case",
                     entity_id=str(i), payload={"n": i}, prev_hash=prev)
            r["hash"] = _sha(prev, r)
            conn.execute(insert(E).values(**r))
            prev = r["hash"]
        old_decision = conn.execute(insert(D).values(reviewer="old", kind="review", label="scam", action="remove",
                                                     is_override=False, taxonomy_version="0", created_at=T0)
                                    .returning(D.c.id)).scalar_one()
    any_store.migrate()  # an upgrade seals the old chain
    _decide_some(any_store, taxonomy, cfg, ids=("a",))
    result = _verify(any_store)
    assert result.ok, result.problems
    assert result.legacy_events == 3 and result.keyed_events >= 3
    _drop_triggers(any_store)
    _sql(any_store, f"UPDATE decisions SET label = 'benign' WHERE id = {old_decision}")
    assert "existed when the chain was keyed were changed" in _problems(_verify(any_store))
