"""The `/api/v1` HTTP API: bearer tokens, role checks, batch ingest with quarantine, items, appeals
and decision paging, through FastAPI's TestClient over the same services as the command line."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from workbench.api import create_app  # noqa: E402
from workbench.context import AppContext  # noqa: E402


@pytest.fixture
def api(sqlite_store):
    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("vic", "viewer"), ("eng", "engineer"), ("ann", "analyst")):
        add_user(sqlite_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = create_token(sqlite_store, name, actor="setup")["token"]
    ctx = AppContext(store=sqlite_store)
    client = TestClient(create_app(ctx))
    client.tokens = tokens
    client.ctx = ctx
    return client


def auth(client, name):
    return {"Authorization": f"Bearer {client.tokens[name]}"}


BATCH = {"source": "platform", "items": [
    {"id": "p1", "text": "hello there friend", "author": "u1", "created_at": "2026-11-30T10:00:00",
     "metadata": {"country": "GB"}},
    {"id": 2, "text": "win a free prize now", "author": "u2"},
]}


def test_no_token_bad_token_and_viewer_are_refused(api):
    assert api.post("/api/v1/items", json=BATCH).status_code == 401
    r = api.post("/api/v1/items", json=BATCH, headers={"Authorization": "Bearer wbt_nope"})
    assert r.status_code == 401 and "unknown token" in r.json()["detail"]
    r = api.post("/api/v1/items", json=BATCH, headers=auth(api, "vic"))
    assert r.status_code == 403 and "ingest" in r.json()["detail"]
    assert api.get("/api/v1/decisions").status_code == 401


def test_batch_is_stored_and_reposting_counts_duplicates(api):
    r = api.post("/api/v1/items", json=BATCH, headers=auth(api, "eng"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["read"], body["stored"], body["duplicate"], body["quarantined"]) == (2, 2, 0, 0)
    again = api.post("/api/v1/items", json=BATCH, headers=auth(api, "eng")).json()
    assert (again["stored"], again["duplicate"]) == (0, 2)
    changed = {"source": "platform", "items": [{"id": "p1", "text": "a different text"}]}
    assert api.post("/api/v1/items", json=changed, headers=auth(api, "eng")).json()["conflict"] == 1


def test_bad_row_is_quarantined_not_stored(api):
    batch = {"source": "platform", "items": [{"id": "ok1", "text": "fine"}, {"id": "bad1"},
                                             {"id": "bad2", "text": "x", "created_at": "not a time"}]}
    body = api.post("/api/v1/items", json=batch, headers=auth(api, "eng")).json()
    assert (body["stored"], body["quarantined"]) == (1, 2)
    assert "missing text" in body["quarantine_reasons"]
    assert api.get("/api/v1/items/platform:bad1", headers=auth(api, "vic")).status_code == 404
    too_many = {"source": "platform", "items": [{"id": i, "text": "t"} for i in range(1001)]}
    assert api.post("/api/v1/items", json=too_many, headers=auth(api, "eng")).status_code == 422


def test_get_item_masked_and_revealed(api):
    api.post("/api/v1/items", json=BATCH, headers=auth(api, "eng"))
    r = api.get("/api/v1/items/platform:p1", headers=auth(api, "vic"))
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["id"] == "platform:p1" and item["author_id"] == "u1" and item["metadata"] == {"country": "G•"}  # masked with the text
    assert item["masked"] is True and item["text"] != "hello there friend"  # no scores yet: masked
    assert item["prediction"] is None and item["case"] is None and item["decision"] is None
    assert api.get("/api/v1/items/platform:p1?reveal=true", headers=auth(api, "vic")).status_code == 403
    shown = api.get("/api/v1/items/platform:p1?reveal=true", headers=auth(api, "ann")).json()
    assert shown["text"] == "hello there friend" and shown["masked"] is False and shown["metadata"] == {"country": "GB"}
    assert api.get("/api/v1/items/platform:nope", headers=auth(api, "vic")).status_code == 404


def _decide(ctx, item_id):
    """Give the item a prediction and a case, and decide it as ann."""
    from sqlalchemy import insert

    from core.schema import Prediction, utcnow
    from labeling import decisions as DEC
    from labeling.cases import build_cases
    from labeling.claims import next_case

    store, taxonomy = ctx.store(), ctx.taxonomy()
    cfg = ctx.queues().model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    with store.begin() as conn:
        conn.execute(insert(Prediction.__table__).values(
            item_id=item_id, model_version="test-v1", label="scam", score=0.9, scores={"scam": 0.9},
            uncertainty=0.1, taxonomy_version=taxonomy.version, created_at=utcnow()))
    build_cases(store, taxonomy, cfg, progress=False)
    case = next_case(store, "ann", "fraud", config=cfg)
    assert case is not None and case["item_id"] == item_id
    return DEC.decide(store, taxonomy, case["id"], "ann", "scam", "block_sender", rationale="lure", config=cfg)


def test_appeal_and_decision_paging(api):
    api.post("/api/v1/items", json=BATCH, headers=auth(api, "eng"))
    r = api.post("/api/v1/items/platform:2/appeals", json={"reason": "not spam"}, headers=auth(api, "ann"))
    assert r.status_code == 400 and "no decision to appeal" in r.json()["detail"]
    _decide(api.ctx, "platform:2")
    item = api.get("/api/v1/items/platform:2", headers=auth(api, "vic")).json()
    assert item["decision"]["label"] == "scam" and item["prediction"]["label"] == "scam"
    assert api.post("/api/v1/items/platform:2/appeals", json={"reason": "x"}, headers=auth(api, "vic")).status_code == 403
    r = api.post("/api/v1/items/platform:2/appeals", json={"reason": "it was my bank"}, headers=auth(api, "ann"))
    assert r.status_code == 200, r.text
    assert r.json()["queue"] == "appeals" and r.json()["state"] == "open"
    again = api.post("/api/v1/items/platform:2/appeals", json={"reason": "it was my bank"}, headers=auth(api, "ann"))
    assert again.status_code == 409 and again.json()["case_id"] == r.json()["id"]  # a retry: the case it opened
    assert "already has an appeal waiting" in again.json()["detail"]
    assert api.post("/api/v1/items/platform:nope/appeals", json={"reason": "x"},
                    headers=auth(api, "ann")).status_code == 404

    first = api.get("/api/v1/decisions?limit=1", headers=auth(api, "vic")).json()
    assert [d["item_id"] for d in first["decisions"]] == ["platform:2"] and first["next_cursor"] is None
    # more decisions: page through them one at a time
    api.post("/api/v1/items", json={"source": "platform", "items": [{"id": "p3", "text": "claim a prize"}]},
             headers=auth(api, "eng"))
    _decide(api.ctx, "platform:p3")
    page1 = api.get("/api/v1/decisions?limit=1", headers=auth(api, "vic")).json()
    assert len(page1["decisions"]) == 1 and page1["next_cursor"] == page1["decisions"][0]["id"]
    page2 = api.get(f"/api/v1/decisions?after={page1['next_cursor']}&limit=1", headers=auth(api, "vic")).json()
    assert page2["decisions"][0]["item_id"] == "platform:p3" and page2["next_cursor"] is None
    assert "rationale" not in page2["decisions"][0]


def test_openapi_docs_under_the_prefix(api):
    r = api.get("/api/v1/openapi.json")
    assert r.status_code == 200 and "/items" in r.json()["paths"]
    assert api.get("/api/v1/docs").status_code == 200


def test_api_module_is_not_imported_by_the_cli():
    import subprocess
    import sys

    code = "import sys, workbench.cli; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_served_on_the_same_server_as_the_ui(api):
    """`workbench serve` puts the API in front of Gradio's routes: bearer tokens, not the session."""
    import socket

    import httpx

    pytest.importorskip("gradio")
    from workbench.ui import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    blocks = serve(api.ctx, port=port, block=False)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/decisions", timeout=10).status_code == 401
        r = httpx.get(f"{base}/api/v1/decisions", headers=auth(api, "vic"), timeout=10)
        assert r.status_code == 200 and r.json() == {"decisions": [], "next_cursor": None}
        assert httpx.get(f"{base}/api/v1/openapi.json", timeout=10).status_code == 200
        assert httpx.get(f"{base}/", timeout=10).status_code == 200  # Gradio's login page still answers
    finally:
        blocks.close()


def toy_champion(api) -> None:
    """A first tfidf_lr champion over 60 toy items in the API's store."""
    from models.registry import train_model
    from test_models_fixtures import add_items, toy_corpus

    texts, ys = toy_corpus(12)
    add_items(api.ctx.store(), texts, ys)
    train_model(api.ctx.store(), api.ctx.taxonomy(), config=api.ctx.models(), kind="tfidf_lr",
                params={"min_df": 1}, show_progress=False)


def test_new_items_are_scored_and_queued_when_a_champion_exists(api):
    toy_champion(api)
    batch = {"source": "platform", "items": [{"id": "s1", "text": "WINNER claim your free prize now, text back"}]}
    body = api.post("/api/v1/items", json=batch, headers=auth(api, "eng")).json()
    assert body["stored"] == 1 and body["scored"] >= 1 and body["cases"] is not None
    item = api.get("/api/v1/items/platform:s1", headers=auth(api, "vic")).json()
    assert item["prediction"] is not None
    off = api.post("/api/v1/items?score=false", json={"source": "platform", "items": [{"id": "s2", "text": "hi"}]},
                   headers=auth(api, "eng")).json()
    assert off["scored"] is None
