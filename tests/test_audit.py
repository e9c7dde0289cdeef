import sqlite3

from sqlalchemy import text

from core import audit


def _events(store, n=5):
    heads = []
    for i in range(n):
        with store.begin() as conn:
            heads.append(audit.record(conn, f"analyst{i % 2}", "case.decide", "case", i, {"label": "spam", "n": i}))
    return heads


def test_intact_chain_verifies(any_store):
    heads = _events(any_store)
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert result.ok and result.events == 5 and result.head == heads[-1]


def test_event_rolls_back_with_its_transaction(sqlite_store):
    try:
        with sqlite_store.begin() as conn:
            audit.record(conn, "a", "x")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with sqlite_store.read() as conn:
        assert audit.verify(conn).events == 0


def _tamper_sqlite(store, sql):
    """Bypass the append-only triggers the way an attacker with file access would."""
    db = sqlite3.connect(store.data_dir / "workbench.db")
    db.execute("DROP TRIGGER audit_events_no_update")
    db.execute("DROP TRIGGER audit_events_no_delete")
    db.execute(sql)
    db.commit()
    db.close()


def _tamper_pg(store, sql):
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def _tamper(store, sql):
    (_tamper_sqlite if store.is_sqlite else _tamper_pg)(store, sql)


def test_edited_event_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, "UPDATE audit_events SET actor = 'someone_else' WHERE id = 3")
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert any("event 3" in p and "edited" in p for p in result.problems)


def test_edited_payload_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, """UPDATE audit_events SET payload = '{"label": "benign", "n": 1}' WHERE id = 2""")
    with any_store.read() as conn:
        assert not audit.verify(conn).ok


def test_deleted_event_is_detected(any_store):
    _events(any_store)
    _tamper(any_store, "DELETE FROM audit_events WHERE id = 2")
    with any_store.read() as conn:
        result = audit.verify(conn)
    assert not result.ok
    assert any("deleted" in p for p in result.problems)


def test_truncated_tail_is_detected_against_a_kept_head(sqlite_store):
    heads = _events(sqlite_store)
    _tamper(sqlite_store, "DELETE FROM audit_events WHERE id = 5")
    with sqlite_store.read() as conn:
        assert audit.verify(conn).ok  # the chain alone cannot see a cut tail...
        assert not audit.verify(conn, expect_head=heads[-1]).ok  # ...a head kept elsewhere can
