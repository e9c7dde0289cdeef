"""Hardening of the store, item lookups and folded text search against hostile input.

Each test reproduces a defect found in an audit: a data dir holding a byte that is not UTF-8 was
a UnicodeEncodeError traceback from every command (SQLAlchemy could not write it in the SQLite
URL); a password given as `?password=`, or holding `/`, was echoed in the store's error lines;
an item id or listing filter with a NUL or a lone surrogate, a campaign number past the 32-bit
column, an offset past 2**63 - 1 or a negative audit-log limit crashed a store (or, on SQLite,
listed the whole audit log) instead of finding nothing; and a folded text search for a NUL or
only invisible characters matched every text on SQLite, a lone surrogate or a NUL crashed the
drivers, and a query over 50,000 bytes was "LIKE or GLOB pattern too complex" on SQLite.
"""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from sqlalchemy import literal, select

from core import audit
from core.items import get_item, iter_items, recent_audit_events
from core.schema import MAX_ROW_ID
from core.store import StoreError, open_store
from core.textsearch import contains_folded
from test_models_fixtures import add_items


def test_a_data_dir_with_a_byte_that_is_not_utf8_opens_and_is_named_escaped(tmp_path):
    raw = os.fsencode(tmp_path) + b"/x\xff"
    data_dir = os.fsdecode(raw)  # what Python makes of argv's `--data-dir $'/tmp/x\xff'`
    store = open_store(data_dir)
    try:
        assert store.schema_revision() == store.head_revision()
        ids = add_items(store, ["hello"], ["spam"])
        assert get_item(store, ids[0])["text"] == "hello"
        assert os.path.isfile(raw + b"/workbench.db")  # the file is in the folder named, byte for byte
        assert store.display_url.endswith("/x\\xff/workbench.db")  # named escaped, printable
        store.display_url.encode("utf-8")
    finally:
        store.dispose()
    from workbench.cli import cli

    res = CliRunner().invoke(cli, ["--data-dir", data_dir, "status", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["items"] == 1


@pytest.mark.parametrize("url", [
    "postgresql://u@127.0.0.1:1/x?password=hunter2&sslmode=disable",  # libpq takes ?password= too
    "postgresql://u@127.0.0.1:1/x?sslpassword=hunter2",
    "postgresql://u:hun/ter2@127.0.0.1:abc/x",  # unparseable, and the password holds a /
    "postgresql://u@127.0.0.1:abc/x?password=hunter2",
])
def test_a_password_in_the_database_url_is_never_in_its_error(tmp_path, url):
    with pytest.raises(StoreError) as err:
        open_store(tmp_path / "data", url)
    message = str(err.value)
    assert "hunter2" not in message and "ter2" not in message and "\n" not in message
    assert "127.0.0.1" in message  # still names the database


def test_item_lookups_with_ids_no_item_can_have_find_nothing(any_store):
    add_items(any_store, ["hello world"], ["spam"])
    for hostile in ["x\x00y", "\ud800", "toy:\udcff", "x" * 100_000]:
        assert get_item(any_store, hostile) is None


def test_listing_filters_no_row_can_match_list_nothing(any_store):
    ids = add_items(any_store, ["a", "b", "c"], ["spam"] * 3)
    assert list(iter_items(any_store, campaign=MAX_ROW_ID + 1)) == []  # PostgreSQL: integer out of range
    assert list(iter_items(any_store, offset=2**63)) == []  # SQLite: OverflowError
    assert list(iter_items(any_store, source="s\udcff")) == []  # both: UnicodeEncodeError
    assert list(iter_items(any_store, label="spam\x00")) == []  # PostgreSQL: NUL in a query
    assert [r["id"] for r in iter_items(any_store, offset=-1)] == ids  # PostgreSQL: OFFSET must not be negative


def test_audit_log_limit_below_one_lists_nothing_and_a_huge_one_everything(any_store):
    with any_store.begin() as conn:
        for n in range(3):
            audit.record(conn, "ann", "test.event", "item", str(n))
    assert recent_audit_events(any_store, -1) == []  # SQLite read LIMIT -1 as no limit: the whole log
    assert len(recent_audit_events(any_store, 2**63)) == 3  # both: out of range for the driver
    assert len(recent_audit_events(any_store, 2)) == 2


def test_folded_search_for_what_no_text_holds_matches_nothing_and_long_queries_work(any_store):
    def found(text: str, query: str) -> bool:
        with any_store.read() as conn:
            return bool(conn.execute(select(contains_folded(literal(text), query, any_store.dialect))).scalar())

    for hostile in ["\x00", "a\x00", "\ud800", "\u200b", "\u200b\u00ad ", ""]:
        assert not found("hello world", hostile), repr(hostile)
    long = "x" * 60_000  # over SQLite's 50,000-byte LIKE pattern limit
    assert found("a" + long + "b", long.upper()) and not found("a" + long[1:] + "b", long)
    assert found("50% off", "50%") and not found("5 off", "%") and not found("ab", "_") and found("a\\b", "\\")


def test_an_unparseable_database_url_is_named_on_one_line_with_escapes_shown(tmp_path):
    with pytest.raises(StoreError) as err:
        open_store(tmp_path / "data", "postgresql://u:pw\nx@127.0.0.1:abc/db\nSECOND\x1b[2J")
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message and "\\x1b[2J" in message and "pw" not in message


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:wb?mode=memory&uri=true"])
def test_an_in_memory_sqlite_url_is_refused_in_one_line(tmp_path, url):
    """Each pooled connection opened its own, empty database: a "no such table" traceback."""
    with pytest.raises(StoreError, match="in-memory SQLite") as err:
        open_store(tmp_path / "data", url)
    assert "\n" not in str(err.value)


def test_a_database_url_with_a_byte_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    """The failed connection's message crashed rendering the URL: a UnicodeEncodeError traceback."""
    url = "postgresql://u:hunter2@127.0.0.1:1/x" + os.fsdecode(b"\xff")
    with pytest.raises(StoreError, match="not UTF-8 at character") as err:
        open_store(tmp_path / "data", url)
    assert "\\udcff" in str(err.value) and "hunter2" not in str(err.value)
    str(err.value).encode("utf-8")


@pytest.mark.parametrize("query", ["case:3000000000", "campaign:3000000000"])
def test_a_search_for_an_id_past_the_id_columns_finds_nothing(any_store, review_settings, query):
    """PostgreSQL's id columns are 32-bit: the number was a DataError "integer out of range"."""
    from core.principals import Principal
    from labeling.search import search

    out = search(any_store, query, Principal("lee", "lead"), review_settings)
    assert out["results"] == [] and out["total"] == 0
