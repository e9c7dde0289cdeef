"""Hardening of the store and its migrations: what opening a database refuses, and where it lives.

Each test reproduces a defect found in an audit: a database upgraded by a newer workbench gave an
alembic traceback, a wrong `--db` got the workbench's tables created beside its own, a data dir
holding `?` or `%xx` put the database somewhere else, an error spanned lines, and `items`
repeated rows when items were ingested while it paged.
"""
from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, inspect, text

import core.items as items_mod
from core.schema import Item, utcnow
from core.store import DB_FILE, Store, StoreError, open_store


def _fresh_target(store: Store, tmp_path, request) -> tuple[str | None, str]:
    """A new, empty database of `store`'s dialect: (url or None for SQLite, data dir)."""
    data_dir = str(tmp_path / f"other-{uuid.uuid4().hex[:6]}")
    if store.is_sqlite:
        return None, data_dir
    from tests.conftest import _create_pg_database, _drop_pg_database

    admin = request.getfixturevalue("pg_server_url")
    name, url = _create_pg_database(admin)
    request.addfinalizer(lambda: _drop_pg_database(admin, name))
    return url, data_dir


def test_database_of_a_newer_workbench_is_refused_in_one_line(any_store):
    """An unknown (newer) schema revision: a one-line StoreError, and the database left as it was."""
    with any_store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    url = None if any_store.is_sqlite else any_store.url
    with pytest.raises(StoreError) as err:
        open_store(any_store.data_dir, url)
    msg = str(err.value)
    assert "0999_future" in msg and "newer" in msg and "\n" not in msg
    assert any_store.schema_revision() == "0999_future"


def test_database_with_foreign_tables_is_not_taken_over(any_store, tmp_path, request):
    """A `--db` pointing at someone else's database: refused by name, no workbench table added."""
    url, data_dir = _fresh_target(any_store, tmp_path, request)
    if url is None:
        Path(data_dir).mkdir(parents=True)
    raw = create_engine(url or f"sqlite:///{data_dir}/{DB_FILE}")
    try:
        with raw.begin() as conn:
            conn.execute(text("CREATE TABLE items (sku VARCHAR(20) PRIMARY KEY)"))
        with pytest.raises(StoreError) as err:
            open_store(data_dir, url)
        msg = str(err.value)
        assert "not a workbench database" in msg and "items" in msg and "\n" not in msg
        with raw.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"items"}
    finally:
        raw.dispose()


@pytest.mark.parametrize("name", ["what?why", "pct%41x"])
def test_sqlite_database_lives_in_a_data_dir_with_url_characters(tmp_path, name):
    """`?`, `%xx` and `#` in the data dir are part of the path, not a query string or an escape."""
    data_dir = tmp_path / name
    store = open_store(data_dir)
    try:
        assert store.schema_revision() == store.head_revision()
        assert (data_dir / DB_FILE).is_file()
        with sqlite3.connect(data_dir / DB_FILE) as raw:
            assert raw.execute("SELECT version_num FROM alembic_version").fetchone()[0] == store.head_revision()
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written beside it
    finally:
        store.dispose()


def test_unreachable_database_error_is_one_line_without_password(tmp_path):
    """A connection failure: one line naming the database, the password masked."""
    with pytest.raises(StoreError) as err:
        open_store(tmp_path / "d", "postgresql://bob:hunter2pw@127.0.0.1:1/nowhere")
    msg = str(err.value)
    assert "\n" not in msg and "hunter2pw" not in msg and "127.0.0.1:1/nowhere" in msg


def test_items_listing_never_repeats_an_item_ingested_meanwhile(any_store, monkeypatch):
    """Paging by the last id seen: items added before the cursor mid-listing repeat nothing."""
    def add(ids: list[str]) -> None:
        with any_store.begin() as conn:
            for i in ids:
                conn.execute(insert(Item.__table__).values(id=i, source="s", text=f"t {i}", text_hash=i[-8:],
                                                           created_at=utcnow()))

    add([f"s:{k:03d}" for k in range(10, 20)])
    monkeypatch.setattr(items_mod, "PAGE", 4)
    seen = []
    for n, row in enumerate(items_mod.iter_items(any_store, limit=None)):
        seen.append(row["id"])
        if n == 0:
            add(["s:001", "s:002"])  # an ingest running beside the listing
    assert len(seen) == len(set(seen)) == 10
    assert seen == [f"s:{k:03d}" for k in range(10, 20)]
    # an offset still starts the listing where asked
    assert [r["id"] for r in items_mod.iter_items(any_store, limit=3, offset=2)] == ["s:010", "s:011", "s:012"]


def test_status_counts_agree_while_an_ingest_commits(any_store):
    """`status` reads one moment on both stores: an item committed between its count and its
    per-source breakdown shows in neither (PostgreSQL showed it in the breakdown only)."""
    from sqlalchemy import event

    from core.items import store_status

    other = Store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    fired: list[bool] = []

    def ingest_between(_conn, _cursor, statement, *_args) -> None:
        if not fired and "FROM items" in statement and "GROUP BY" not in statement:
            fired.append(True)
            with other.begin() as conn:
                conn.execute(insert(Item.__table__).values(id="s:late", source="s", text="t", text_hash="h",
                                                           created_at=utcnow()))

    engines = {any_store.read_engine, any_store.engine}
    for engine in engines:
        event.listen(engine, "after_cursor_execute", ingest_between)
    try:
        status = store_status(any_store)
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", ingest_between)
        other.dispose()
    assert fired
    assert status["items"] == sum(status["by_source"].values())


@pytest.mark.parametrize("url", ["postgresql://bob:hunter2pw@db.example:notaport/wb",
                                 "mysql://bob:hunter2pw@db.example/wb",
                                 "postgresql+psycopg2://bob:hunter2@pw@db.example/wb"])
def test_unusable_database_url_is_one_line_without_password(tmp_path, url):
    """A mistyped `--db` (bad port, a driver not installed): a StoreError, not a traceback."""
    with pytest.raises(StoreError) as err:
        open_store(tmp_path / "d", url)
    msg = str(err.value)
    assert msg.startswith("cannot use the database URL") and "\n" not in msg
    assert "hunter2" not in msg and "db.example" in msg


def test_failed_upgrade_is_one_line_and_changes_nothing(any_store):
    """An upgrade step the database refuses: a one-line StoreError naming both revisions; the
    schema stays where it was (one transaction)."""
    from alembic import command

    with any_store.begin() as conn:
        cfg = any_store._alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
        conn.execute(text("CREATE TABLE outbox_items (x INTEGER)"))  # 0010 creates this table
    url = None if any_store.is_sqlite else any_store.url
    with pytest.raises(StoreError) as err:
        open_store(any_store.data_dir, url)
    msg = str(err.value)
    assert "from 0009 to " in msg and "outbox_items" in msg and "\n" not in msg
    assert any_store.schema_revision() == "0009"
