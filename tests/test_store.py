from sqlalchemy import text

from core import audit
from core.store import open_store


def test_migrate_creates_schema_at_head(any_store):
    assert any_store.schema_revision() == any_store.head_revision()


def test_reopen_is_idempotent(sqlite_store):
    again = open_store(sqlite_store.data_dir)
    assert again.schema_revision() == sqlite_store.schema_revision()


def test_sqlite_runs_in_wal_mode(sqlite_store):
    with sqlite_store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_audit_table_refuses_update_and_delete(any_store):
    import pytest

    with any_store.begin() as conn:
        audit.record(conn, "tester", "test.event", "thing", 1, {"a": 1})
    for stmt in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"):
            with any_store.begin() as conn:
                conn.execute(text(stmt))
