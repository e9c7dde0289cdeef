"""The platform's way in, treated as hostile (found in review):

- two ingests of overlapping ids in opposite orders (a platform retrying a batch while the next
  one lands) deadlocked on PostgreSQL: one request answered 200 with its whole chunk `lost`;
- file ingest stored a text of any length (a 100 MB CSV field became one item, served, masked
  and scored whole) while the API refused one over MAX_TEXT_CHARS;
- an item field the API does not know (`author_id` for `author`, `created` for `created_at`) was
  dropped silently: every item stored without its author or time;
- an anonymous POST had its body (up to 32 MB) read and parsed before the token was checked;
- a file whose rows quote distinct bad values (a time column in a format ingest cannot read)
  named one quarantine reason per row: a million-line summary, stored in `ingest_runs`;
- a hostile key named in a 422 (a key given twice) came back whole and on several lines.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

pytest.importorskip("fastapi")
from sqlalchemy import insert, select, text  # noqa: E402

from core.ingest import MAX_REASON_KINDS, ColumnMap, ingest_paths  # noqa: E402
from core.readers import MAX_TEXT_CHARS  # noqa: E402
from core.schema import Item  # noqa: E402
from core.text import text_hash  # noqa: E402
from test_api import api as api_fixture, auth  # noqa: E402,F401  (the fixture and its token helper)
from workbench.api import create_app  # noqa: E402

api = api_fixture  # the SQLite API of tests/test_api.py


def _ids(store, prefix):
    with store.read() as conn:
        return sorted(conn.execute(select(Item.id).where(Item.id.like(f"{prefix}%"))).scalars())


def _quarantined(store):
    return [json.loads(line) for line in store.quarantine_path.read_text(encoding="utf-8").splitlines()]


# -- 1. concurrent overlapping batches ------------------------------------------------------------
def _wait_for_lock_wait(store, deadline_s: float = 60.0) -> None:
    """Until some session of this database waits on a row lock (the ingest blocked behind us)."""
    end = time.monotonic() + deadline_s
    with store.engine.connect() as watch:
        while time.monotonic() < end:
            waiting = watch.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                         " AND wait_event_type = 'Lock'")).scalar_one()
            watch.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the ingest never waited on the held row")


def test_overlapping_ingests_in_opposite_orders_do_not_deadlock(pg_store, taxonomy, tmp_path):
    # Another ingest (here: an open transaction) holds `dl:a`; this file lists b before a. Rows
    # inserted in file order took b, then waited on a while the other waited on b: a deadlock,
    # and PostgreSQL aborted one of them (its chunk counted lost). In id order neither holds a
    # row the other needs first.
    src = tmp_path / "rows.jsonl"
    src.write_text('{"id": "b", "text": "two"}\n{"id": "a", "text": "one"}\n', encoding="utf-8")

    def row(key, body):
        return {"id": f"dl:{key}", "source": "dl", "surface": "post", "text": body, "text_hash": text_hash(body)}

    holder = pg_store.engine.connect()
    tx = holder.begin()
    holder.execute(insert(Item.__table__).values(**row("a", "one")))
    done: dict = {}

    def run():
        try:
            done["summary"] = ingest_paths(pg_store, taxonomy, [str(src)], source="dl", fmt="jsonl",
                                           columns=ColumnMap(id="id", text="text"), progress=False)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            done["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait_for_lock_wait(pg_store)
        holder.execute(insert(Item.__table__).values(**row("b", "two")))  # a deadlock aborts one of us
        tx.commit()
    finally:
        if tx.is_active:
            tx.rollback()
        holder.close()
        worker.join(120)
    assert "error" not in done, done
    f = done["summary"].files[0]
    assert (f.lost, f.error, f.stored, f.duplicate) == (0, None, 0, 2), f
    assert _ids(pg_store, "dl:") == ["dl:a", "dl:b"]


# -- 2. a text longer than any item holds ---------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_text_over_max_text_chars_is_quarantined_naming_file_line_and_field(any_store, taxonomy,
                                                                                   tmp_path, fmt):
    huge = "a" * (MAX_TEXT_CHARS + 1)
    src = tmp_path / f"posts.{fmt}"
    if fmt == "csv":
        src.write_text(f'id,body\n1,fine\n2,"{huge}"\n3,also fine\n', encoding="utf-8")
    else:
        src.write_text("".join(json.dumps({"id": i, "body": t}) + "\n"
                               for i, t in ((1, "fine"), (2, huge), (3, "also fine"))), encoding="utf-8")
    s = ingest_paths(any_store, taxonomy, [str(src)], source="big", columns=ColumnMap(id="id", text="body"),
                     progress=False)
    assert (s.total("stored"), s.total("quarantined"), s.total("lost")) == (2, 1, 0), s.describe()
    assert _ids(any_store, "big:") == ["big:1", "big:3"]
    [rec] = _quarantined(any_store)
    assert (rec["file"], rec["line"], rec["field"]) == (str(src), 3 if fmt == "csv" else 2, "body")
    assert rec["reason"] == f"text is {MAX_TEXT_CHARS + 1} characters, over MAX_TEXT_CHARS ({MAX_TEXT_CHARS})"
    assert huge in json.dumps(rec["row"])  # kept whole in the quarantine, not lost
    ok = "b" * MAX_TEXT_CHARS  # the limit itself is stored
    src.write_text(json.dumps({"id": 4, "body": ok}) + "\n", encoding="utf-8")
    assert ingest_paths(any_store, taxonomy, [str(src)], source="big", fmt="jsonl",
                        columns=ColumnMap(id="id", text="body"), progress=False).total("stored") == 1


# -- 3. an item field the API does not know --------------------------------------------------------
@pytest.mark.parametrize("item, where", [
    ({"id": "a", "text": "hello", "author_id": "u9"}, "items[1].author_id"),
    ({"id": "a", "text": "hello", "created": "2026-01-01T00:00:00"}, "items[1].created"),
])
def test_an_unknown_item_field_is_a_422_naming_it_and_nothing_is_stored(api, item, where):
    r = api.post("/api/v1/items?score=false", json={"source": "uf", "items": [{"id": "ok", "text": "x"}, item]},
                 headers=auth(api, "eng"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"{where}: unknown field (an item's own fields go in its metadata)"
    assert _ids(api.ctx.store(), "uf:") == []
    r = api.post("/api/v1/items?score=false", json={"source": "uf", "items": [{"id": "a", "text": "x"}],
                                                    "score": True}, headers=auth(api, "eng"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "score", r.text


def test_a_hostile_field_name_is_named_short_and_on_one_line(api):
    key = "k\n" + "x" * 100_000
    for body in ({"source": "uf", "items": [{"id": "a", "text": "x", key: 1}]},
                 '{"source":"uf","items":[{"id":"a","text":"x","metadata":{"%s":1,"%s":2}}]}' % (key, key)):
        raw = body if isinstance(body, str) else json.dumps(body)
        r = api.post("/api/v1/items?score=false", content=raw.replace("\n", "\\n").encode(),
                     headers={**auth(api, "eng"), "Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:300]
        detail = r.json()["detail"]
        assert "\n" not in detail and len(detail) < 600 and detail.startswith("items[0]."), detail[:300]


# -- 4. an anonymous body is never read -------------------------------------------------------------
def _asgi_post(app, headers):
    """POST /api/v1/items straight through ASGI; how many times the body was asked for."""
    asked, sent = [], []

    async def receive():
        asked.append(1)
        return {"type": "http.request", "body": b'{"source":"an","items":[{"id":"a","text":"x"}]}',
                "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/v1/items", "raw_path": b"/api/v1/items", "root_path": "",
             "query_string": b"score=false", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"48"), *headers]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), len(asked)


@pytest.mark.parametrize("headers, says", [
    ([], "send Authorization: Bearer"),
    ([(b"authorization", b"Bearer wbt_nope")], "unknown token"),
    ([(b"authorization", b"Basic YWRhOnB3")], "send Authorization: Bearer"),
])
def test_an_anonymous_or_unknown_token_post_is_401_before_its_body_is_read(api, headers, says):
    status, body, asked = _asgi_post(create_app(api.ctx), headers)
    assert (status, asked) == (401, 0) and body["detail"].startswith(says), (status, body, asked)
    token = api.tokens["eng"].encode()
    status, body, asked = _asgi_post(create_app(api.ctx), [(b"authorization", b"Bearer " + token)])
    assert status == 200 and body["stored"] == 1 and asked >= 1, body


# -- 5. a bounded number of reasons -------------------------------------------------------------------
def test_distinct_bad_values_name_a_bounded_number_of_reasons(sqlite_store, taxonomy, tmp_path):
    n = MAX_REASON_KINDS * 4
    src = tmp_path / "times.csv"
    src.write_text("id,text,when\n" + "".join(f"{i},post {i},31/12/2024 10:{i % 60:02d} PM {i}\n"
                                              for i in range(n)), encoding="utf-8")
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], source="tm",
                     columns=ColumnMap(id="id", text="text", created="when"), progress=False)
    reasons = s.files[0].reasons
    assert s.total("quarantined") == n and sum(reasons.values()) == n
    assert len(reasons) == MAX_REASON_KINDS + 1, len(reasons)
    assert reasons["other reasons (each is in the quarantine file)"] == n - MAX_REASON_KINDS
    assert len(s.describe().splitlines()) < MAX_REASON_KINDS + 5
    assert len(_quarantined(sqlite_store)) == n  # every row still has its own record


# -- 6. files joined together ---------------------------------------------------------------------------
def test_joined_csv_files_do_not_store_the_second_header_as_an_item(any_store, taxonomy, tmp_path):
    src = tmp_path / "joined.csv"
    src.write_bytes(b"\xef\xbb\xbfid,text\n1,first\nid,text\n2,second\n\xef\xbb\xbfid,text\n3,third\n")
    s = ingest_paths(any_store, taxonomy, [str(src)], source="jn", columns=ColumnMap(id="id", text="text"),
                     progress=False)
    assert (s.total("stored"), s.total("quarantined")) == (3, 2), s.describe()
    assert _ids(any_store, "jn:") == ["jn:1", "jn:2", "jn:3"]
    recs = _quarantined(any_store)
    assert [(r["line"], r["field"], r["reason"]) for r in recs] == [
        (3, "row", "the header line again (files joined together?)"),
        (5, "row", "the header line again (files joined together?)")]


def test_joined_jsonl_files_keep_the_row_after_a_second_bom(any_store, taxonomy, tmp_path):
    src = tmp_path / "joined.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"id": 1, "text": "first"}\n\xef\xbb\xbf{"id": 2, "text": "second"}\n')
    s = ingest_paths(any_store, taxonomy, [str(src)], source="jj", columns=ColumnMap(id="id", text="text"),
                     progress=False)
    assert (s.total("stored"), s.total("quarantined")) == (2, 0), s.describe()
    assert _ids(any_store, "jj:") == ["jj:1", "jj:2"]


# -- 7. a batch the store refused is not a 200 ------------------------------------------------------------
def test_a_batch_the_store_refused_is_a_503_and_the_retry_stores_it(api, monkeypatch):
    import core.ingest as ingest

    def refuse(self, conn, items):
        raise RuntimeError("could not write: disk full")

    batch = {"source": "rf", "items": [{"id": "a", "text": "hello"}, {"id": "b", "text": "there"}]}
    monkeypatch.setattr(ingest._ChunkWriter, "_insert", refuse)
    r = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng"))
    assert r.status_code == 503 and r.headers["retry-after"], r.text
    body = r.json()
    assert body["lost"] == 2 and body["stored"] == 0 and "disk full" in body["detail"] and "\n" not in body["detail"]
    assert _ids(api.ctx.store(), "rf:") == []
    monkeypatch.undo()
    r = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng"))
    assert r.status_code == 200 and (r.json()["stored"], r.json()["lost"]) == (2, 0), r.text


def test_an_unknown_item_id_is_named_short_in_the_404(sqlite_store, roles):
    """A 60,000-character id came back whole in the 404's detail."""
    from fastapi import HTTPException

    from core.principals import Principal
    from workbench.api_reveal import item_or_404
    from workbench.context import AppContext

    with pytest.raises(HTTPException) as err:
        item_or_404(AppContext(store=sqlite_store), "x" * 60_000, Principal("ann", "analyst"))
    assert err.value.status_code == 404 and len(err.value.detail) < 300
    assert err.value.detail.startswith("no item 'xxx") and err.value.detail.endswith("...")
