"""Hostile input to `/api/v1/items` and to file ingest, found in review: a number JSON cannot hold
cost a whole chunk on PostgreSQL, a batch's metadata keys were copied into every item (as nulls,
quadratically), a bad surface in a later group left the batch half stored, a NUL in an item id in
the path was a 500 on PostgreSQL, a duplicated header column or JSON key or a UTF-16 file was
read silently wrong, the text "nan" became a missing time, negative CLI counts were a traceback,
and the API's answer did not say which items of a batch it refused."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.ingest import ColumnMap, ingest_paths  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.schema import Item  # noqa: E402
from test_api import api as api_fixture, auth  # noqa: E402,F401  (the fixture and its token helper)
from workbench.api import create_app  # noqa: E402
from workbench.cli import cli  # noqa: E402
from workbench.context import AppContext  # noqa: E402

api = api_fixture  # the SQLite API of tests/test_api.py


@pytest.fixture
def any_api(any_store):
    """The same API over SQLite and over the real PostgreSQL server; 500s are answers, not raised."""
    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("vic", "viewer"), ("eng", "engineer"), ("ann", "analyst")):
        add_user(any_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = create_token(any_store, name, actor="setup")["token"]
    ctx = AppContext(store=any_store)
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.tokens, client.ctx = tokens, ctx
    return client


def _items(store, prefix):
    t = Item.__table__
    with store.read() as conn:
        rows = conn.execute(select(t.c.id, t.c.text, t.c.metadata).where(t.c.id.like(f"{prefix}%"))).all()
    return {r.id: (r.text, r.metadata) for r in rows}


def _post(client, raw: bytes):
    return client.post("/api/v1/items?score=false", content=raw,
                       headers={**auth(client, "eng"), "Content-Type": "application/json"})


# -- numbers JSON cannot hold ---------------------------------------------------------------------
def test_a_non_finite_number_in_metadata_costs_its_row_not_its_chunk(any_store, taxonomy, tmp_path):
    src = tmp_path / "posts.jsonl"
    good = [json.dumps({"id": i, "text": f"good row {i}", "score": 1.5}) for i in range(5)]
    src.write_text("\n".join(good + ['{"id": 98, "text": "x", "score": Infinity}',
                                     '{"id": 99, "text": "y", "score": {"deep": [NaN]}}']) + "\n")
    s = ingest_paths(any_store, taxonomy, [str(src)], columns=ColumnMap(id="id", meta=["score"]), progress=False)
    assert (s.total("stored"), s.total("quarantined"), s.total("lost")) == (5, 2, 0), s.as_dict()
    assert sorted(_items(any_store, "posts:")) == [f"posts:{i}" for i in range(5)]
    reasons = s.files[0].reasons
    assert sum(reasons.values()) == 2 and all("JSON cannot hold" in r for r in reasons), reasons


def test_infinity_in_an_api_items_metadata_quarantines_that_item(any_api):
    r = _post(any_api, b'{"source":"inf","items":[{"id":"a","text":"fine"},'
                       b'{"id":"b","text":"x","metadata":{"m":Infinity}}]}')
    body = r.json()
    assert r.status_code == 200 and (body["stored"], body["quarantined"], body["lost"]) == (1, 1, 0), body
    assert list(_items(any_api.ctx.store(), "inf:")) == ["inf:a"]


# -- metadata: each item its own keys ---------------------------------------------------------------
def test_an_item_is_stored_with_its_own_metadata_keys_only(api):
    batch = {"source": "mk", "items": [{"id": "a", "text": "first", "metadata": {"country": "GB"}},
                                       {"id": "b", "text": "second"},
                                       {"id": "c", "text": "third", "metadata": {"lang": "en"}}]}
    assert api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng")).json()["stored"] == 3
    assert _items(api.ctx.store(), "mk:") == {"mk:a": ("first", {"country": "GB"}), "mk:b": ("second", None),
                                              "mk:c": ("third", {"lang": "en"})}


def test_distinct_metadata_keys_do_not_multiply_into_every_item(api):
    """1000 items with 5 keys each of their own: 5,000 stored keys, not 5,000,000 (the old
    union of keys took minutes and gigabytes for a body of under 200 KiB)."""
    batch = {"source": "mm", "items": [{"id": i, "text": "t", "metadata": {f"k{i}_{j}": j for j in range(5)}}
                                       for i in range(1000)]}
    r = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng"))
    assert r.status_code == 200 and r.json()["stored"] == 1000, r.text
    stored = _items(api.ctx.store(), "mm:")
    assert sum(len(meta) for _, meta in stored.values()) == 5000
    assert stored["mm:7"][1] == {f"k7_{j}": j for j in range(5)}


def test_a_nul_in_a_metadata_key_quarantines_that_item(api):
    batch = {"source": "nk", "items": [{"id": "a", "text": "good", "metadata": {"ok": 1}},
                                       {"id": "b", "text": "bad", "metadata": {"k\u0000": 1}}]}
    body = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng")).json()
    assert (body["stored"], body["quarantined"]) == (1, 1), body
    assert "metadata key contains NUL bytes" in body["quarantine_reasons"]
    assert _items(api.ctx.store(), "nk:") == {"nk:a": ("good", {"ok": 1})}


def test_the_response_names_each_item_not_stored(api):
    batch = {"source": "rf", "items": [
        {"id": "a", "text": "fine", "surface": "sms"}, {"id": "b"},
        {"id": "c", "text": "x", "created_at": "not a time", "surface": "sms"}, {"id": {"x": 1}, "text": "t"}]}
    body = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng")).json()
    assert [(r["index"], r["id"], r["field"], r["conflict"]) for r in body["refused"]] == [
        (1, "b", "text", False), (2, "c", "created_at", False), (3, None, "id", False)], body
    again = {"source": "rf", "items": [{"id": "a", "text": "a new text", "surface": "sms"}]}
    [conflict] = api.post("/api/v1/items?score=false", json=again, headers=auth(api, "eng")).json()["refused"]
    assert (conflict["index"], conflict["id"], conflict["conflict"]) == (0, "a", True)
    assert "fine" not in str(conflict)  # the stored text is not handed out


# -- a batch refused whole, before anything is stored ----------------------------------------------
@pytest.mark.parametrize("surface, words", [("x" * 300, "300 characters"), ("po\u200bst", "U+200B")])
def test_a_bad_surface_in_a_later_group_refuses_the_batch_before_storing(api, surface, words):
    batch = {"source": "sf", "items": [{"id": "a", "text": "first", "surface": "sms"},
                                       {"id": "b", "text": "second", "surface": surface}]}
    r = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng"))
    detail = r.json()["detail"]
    assert r.status_code == 400 and detail.startswith("items[1].surface:") and words in detail, r.text
    assert "api-batches" not in detail and "--surface" not in detail  # no server path, no CLI flag
    assert _items(api.ctx.store(), "sf:") == {}


# -- item ids in the path ---------------------------------------------------------------------------
def test_a_nul_in_an_item_id_is_404_not_500(any_api):
    assert any_api.get("/api/v1/items/k:%00", headers=auth(any_api, "vic")).status_code == 404
    r = any_api.post("/api/v1/items/k:%00/appeals", json={"reason": "x"}, headers=auth(any_api, "ann"))
    assert r.status_code == 404, r.text


# -- files --------------------------------------------------------------------------------------------
def _ingest(tmp_path, name, data: bytes, *args):
    src = tmp_path / name
    src.write_bytes(data)
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", str(src), *args, "--json"],
                             catch_exceptions=False)
    return res, json.loads(res.stdout)


def test_a_used_column_named_twice_in_the_header_is_one_error_naming_it(tmp_path):
    res, s = _ingest(tmp_path, "posts.csv", b"id,text,text\n1,first text,second text\n", "--id-column", "id")
    assert res.exit_code == 1 and s["stored"] == 0
    error = s["files"][0]["error"]
    assert "posts.csv" in error and "'text' 2 times (columns 2, 3)" in error
    res, s = _ingest(tmp_path, "extra.csv", b"id,text,note,note\n1,hello,a,b\n", "--id-column", "id")
    assert res.exit_code == 0 and s["stored"] == 1  # an unused duplicate costs nothing


def test_blank_lines_before_the_header_do_not_cost_every_row(tmp_path):
    res, s = _ingest(tmp_path, "posts.csv", b"\r\n\nid,text\n1,hello\n2,\n3,there\n", "--id-column", "id")
    assert res.exit_code == 0 and (s["stored"], s["quarantined"]) == (2, 1), s
    [rec] = [json.loads(x) for x in (tmp_path / "data" / "quarantine.jsonl").read_text().splitlines()]
    assert (rec["line"], rec["field"], rec["reason"]) == (5, "text", "missing text")  # the file's own line


def test_a_key_given_twice_in_a_jsonl_object_quarantines_that_row(tmp_path):
    body = b'{"id": 1, "text": "benign", "text": "scam"}\n{"id": 2, "text": "fine"}\n'
    res, s = _ingest(tmp_path, "posts.jsonl", body, "--id-column", "id")
    assert res.exit_code == 0 and (s["stored"], s["quarantined"]) == (1, 1), s
    [rec] = [json.loads(x) for x in (tmp_path / "data" / "quarantine.jsonl").read_text().splitlines()]
    assert (rec["line"], rec["field"]) == (1, "text") and "duplicate key 'text'" in rec["reason"]


def test_a_used_column_named_twice_in_a_parquet_file_is_one_error_naming_it(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "posts.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array(["first"]), pa.array(["second"])],
                                        names=["id", "text", "text"]), src)
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", str(src), "--id-column", "id",
                                   "--json"], catch_exceptions=False)
    s = json.loads(res.stdout)
    assert res.exit_code == 1 and s["stored"] == 0 and "'text' 2 times (columns 2, 3)" in s["files"][0]["error"]


@pytest.mark.parametrize("name", ["posts.csv", "posts.jsonl"])
def test_a_utf16_file_is_one_error_naming_the_encoding(tmp_path, name):
    body = "id,text\n1,hello\n" if name.endswith(".csv") else '{"id": 1, "text": "hello"}\n'
    res, s = _ingest(tmp_path, name, body.encode("utf-16"), "--id-column", "id")
    assert res.exit_code == 1 and (s["read"], s["quarantined"]) == (0, 0), s
    assert "is UTF-16" in s["files"][0]["error"] and name in s["files"][0]["error"]


def test_the_text_nan_is_an_unparsable_time_not_a_missing_one(tmp_path):
    res, s = _ingest(tmp_path, "posts.csv", b"id,text,at\n1,hello,nan\n2,there,2026-11-30T10:00:00\n",
                     "--id-column", "id", "--created-column", "at")
    assert (s["stored"], s["quarantined"]) == (1, 1), s
    assert s["files"][0]["reasons"] == {"unparsable time 'nan'": 1}


@pytest.mark.parametrize("args", [["items", "--offset", "-3"], ["audit", "log", "--limit", "-2"],
                                  ["items", "--limit", "99999999999"]])
def test_a_negative_or_huge_count_is_a_usage_error_not_a_traceback(any_store, args):
    res = CliRunner().invoke(cli, ["--data-dir", str(any_store.data_dir), "--db", any_store.url, *args])
    assert res.exit_code == 2 and "is not in the range" in res.output, res.output
