"""Hostile requests to `/api/v1`: a batch that cannot be written whole, deep or huge metadata and
bodies, ids that lax validation would coerce, cursors past 64 bits, and malformed webhook
signature headers. Each is refused with a 4xx naming the field (or False), never a 500 and never
a batch left half stored."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core.schema import IngestRun, Item  # noqa: E402
from core.webhook_signature import signature_header, verify_signature  # noqa: E402
from test_api import api as api_fixture, auth, toy_champion  # noqa: E402  (the fixture and its token helper)
import workbench.api as wapi  # noqa: E402
from workbench.api import create_app  # noqa: E402

api = api_fixture  # the same fixture, under the name the tests ask for


def _stored(api, prefix):
    with api.ctx.store().read() as conn:
        return conn.execute(select(Item.id).where(Item.id.like(f"{prefix}%")).order_by(Item.id)).scalars().all()


def _json_post(api, body: bytes, query: str = ""):
    return api.post(f"/api/v1/items{query}", content=body,
                    headers={**auth(api, "eng"), "Content-Type": "application/json"})


# -- a. nothing stored when a later row cannot be written -----------------------------------------
def test_a_lone_surrogate_refuses_the_whole_batch_naming_the_field(api):
    body = ('{"source":"pb","items":[{"id":"a1","text":"hello there","surface":"sms"},'
            '{"id":"b1","text":"bad \\ud800 text","surface":"post"}]}').encode()
    r = _json_post(api, body)
    assert r.status_code == 400 and r.json()["detail"].startswith("items[1].text:"), r.text
    assert _stored(api, "pb:") == []
    body = '{"source":"pb","items":[{"id":"a1","text":"ok","metadata":{"k\\udc80":"v"}}]}'.encode()
    r = _json_post(api, body)
    assert r.status_code == 400 and r.json()["detail"].startswith("items[0].metadata:"), r.text


def test_items_stored_but_never_scored_are_scored_on_the_retry(api):
    from core.ingest import ColumnMap, ingest_paths

    toy_champion(api)
    batch = {"source": "platform", "items": [{"id": "r1", "text": "WINNER claim your free prize now"}]}
    # An earlier request stored the row, then failed before scoring it.
    rows = api.ctx.store().data_dir / "rows.jsonl"
    rows.write_text('{"id": "r1", "text": "WINNER claim your free prize now"}\n', encoding="utf-8")
    ingest_paths(api.ctx.store(), api.ctx.taxonomy(), [rows], source="platform", fmt="jsonl",
                 columns=ColumnMap(id="id", text="text"), progress=False)
    assert api.get("/api/v1/items/platform:r1", headers=auth(api, "vic")).json()["prediction"] is None
    body = api.post("/api/v1/items", json=batch, headers=auth(api, "eng")).json()
    assert body["duplicate"] == 1 and body["scored"] >= 1
    assert api.get("/api/v1/items/platform:r1", headers=auth(api, "vic")).json()["prediction"] is not None


# -- b. deeply nested or large metadata -------------------------------------------------------------
def test_deeply_nested_metadata_is_refused_naming_the_field(api):
    depth = 500
    body = ('{"source":"deep","items":[{"id":"d1","text":"hello","metadata":{"k":%s}}]}'
            % ("[" * depth + "]" * depth)).encode()
    r = _json_post(api, body, "?score=false")
    assert r.status_code in (400, 422), r.text
    assert "metadata" in r.text and "MAX_METADATA_DEPTH" in r.text
    assert _stored(api, "deep:") == []
    with api.ctx.store().read() as conn:
        assert conn.execute(select(func.count()).select_from(IngestRun)
                            .where(IngestRun.finished_at.is_(None))).scalar_one() == 0
    ok = {"k": [[[]]]}
    for _ in range(20):  # well within MAX_METADATA_DEPTH
        ok = {"k": ok}
    batch = {"source": "deep", "items": [{"id": "d2", "text": "x", "metadata": ok}]}
    r = api.post("/api/v1/items?score=false", json=batch, headers=auth(api, "eng"))
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text


def test_large_metadata_is_refused(api):
    items = [{"id": "m1", "text": "x", "metadata": {"blob": "y" * 70_000}}]
    r = api.post("/api/v1/items?score=false", json={"source": "meta", "items": items}, headers=auth(api, "eng"))
    assert r.status_code in (400, 422) and "MAX_METADATA_BYTES" in r.text
    assert _stored(api, "meta:") == []


# -- c. request body and text size --------------------------------------------------------------------
def test_a_text_over_the_limit_is_refused_naming_it(api):
    items = [{"id": "t1", "text": "a" * (wapi.MAX_TEXT_CHARS + 1)}]
    r = api.post("/api/v1/items?score=false", json={"source": "big", "items": items}, headers=auth(api, "eng"))
    assert r.status_code in (400, 422) and "MAX_TEXT_CHARS" in r.text and "text" in r.text
    assert _stored(api, "big:") == []


def test_a_body_over_the_limit_is_413_by_length_and_by_bytes_received(api):
    body = b'{"source":"big","items":[{"id":"x","text":"' + b"a" * wapi.MAX_BODY_BYTES + b'"}]}'
    r = _json_post(api, body, "?score=false")
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["detail"]
    assert _stored(api, "big:") == []


def test_a_chunked_body_is_counted_as_it_arrives():
    import asyncio

    sent: list = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the route saw an oversized body")

    async def receive():
        return {"type": "http.request", "body": b"x" * 400, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/items", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(wapi._BodyLimit(app, limit=1000)(scope, receive, send))
    assert sent[0]["status"] == 413


def test_a_small_body_reaches_the_route_whole():
    import asyncio

    seen: list = []

    async def app(scope, receive, send):
        seen.append(await receive())

    chunks = [{"type": "http.request", "body": b"ab", "more_body": True},
              {"type": "http.request", "body": b"cd", "more_body": False}]

    async def receive():
        return chunks.pop(0)

    async def send(message):  # pragma: no cover
        raise AssertionError(message)

    asyncio.run(wapi._BodyLimit(app, limit=1000)({"type": "http", "headers": []}, receive, send))
    assert seen == [{"type": "http.request", "body": b"abcd", "more_body": False}]


# -- d. ids that lax validation would coerce ----------------------------------------------------------
def test_float_and_boolean_ids_are_quarantined_not_merged(api):
    r = api.post("/api/v1/items?score=false", headers=auth(api, "eng"), json={"source": "fx", "items": [
        {"id": 1, "text": "same text"}, {"id": 1.0, "text": "same text"}, {"id": True, "text": "same text"},
        {"id": 2, "text": "other", "author": 7.0}, {"id": 3, "text": "when", "created_at": True}]})
    body = r.json()
    assert r.status_code == 200, r.text
    assert (body["stored"], body["duplicate"], body["quarantined"]) == (1, 0, 4), body
    assert _stored(api, "fx:") == ["fx:1"]


# -- e. cursors past 64 bits ----------------------------------------------------------------------------
@pytest.mark.parametrize("after", ["9223372036854775808", "99999999999999999999"])
def test_a_cursor_past_64_bits_is_a_4xx_naming_it(api, after):
    r = api.get(f"/api/v1/decisions?after={after}", headers=auth(api, "vic"))
    assert r.status_code == 422 and "after" in r.text
    ok = api.get("/api/v1/decisions?after=9223372036854775807", headers=auth(api, "vic"))
    assert ok.status_code == 200 and ok.json()["decisions"] == []


def test_no_hostile_request_is_a_500(api):
    client = TestClient(create_app(api.ctx), raise_server_exceptions=False)
    client.tokens = api.tokens
    assert client.get("/api/v1/decisions?after=99999999999999999999", headers=auth(client, "vic")).status_code < 500
    depth = 2000
    body = ('{"source":"deep","items":[{"id":"d1","text":"hello","metadata":{"k":%s}}]}'
            % ("[" * depth + "]" * depth)).encode()
    r = client.post("/api/v1/items", content=body, headers={**auth(client, "eng"), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


# -- f. webhook signature headers ---------------------------------------------------------------------
@pytest.mark.parametrize("header", [
    "t={now},v1=\u00e9", "t={now},v1=5f2b\u00e9e1", "t={now},v1=\udc80", "t={now},v1=\ud800",
    "t=" + "9" * 400 + ",v1=ab",
])
def test_a_malformed_signature_header_is_false_not_an_error(header):
    secret, body = b"s3cret", b'{"id":"e1"}'
    assert verify_signature(secret, signature_header(secret, body), body)
    assert verify_signature(secret, header.replace("{now}", str(int(time.time()))), body) is False
