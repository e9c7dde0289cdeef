"""A request that fails validation gets one line naming the row and field, not FastAPI's list.

The defect: a batch with one bad row answered with FastAPI's default 422 body, a list that
echoed every offending input back (megabytes for an oversized text) and named the place as
["body", "items", 3, "text"]; the rest of the API answers `{"detail": "<one line>"}`.
"""
from __future__ import annotations

from workbench import api as wapi
from workbench.api import validation_errors

from test_api import api, auth  # noqa: F401  (fixtures)


def test_a_bad_row_is_named_in_one_line_and_not_echoed(api):  # noqa: F811
    items = [{"id": "ok1", "text": "fine"}, {"id": "ok2", "text": "fine"}, {"id": "x", "text": "t", "surface": ["post"]},
             {"id": "big", "text": "a" * (wapi.MAX_TEXT_CHARS + 1)}]
    r = api.post("/api/v1/items?score=false", json={"source": "v", "items": items}, headers=auth(api, "eng"))
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert body["detail"].startswith("items[2].surface: "), body["detail"]
    assert "(and 1 more)" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == ["items[2].surface", "items[3].text"]
    assert "MAX_TEXT_CHARS" in body["errors"][1]["msg"]
    assert len(r.content) < 5_000  # the oversized text is not sent back


def test_a_bad_query_parameter_is_named(api):  # noqa: F811
    r = api.get("/api/v1/decisions?after=-1", headers=auth(api, "eng"))
    assert r.status_code == 422 and r.json()["detail"].startswith("after: ")


def test_many_errors_are_counted_and_capped():
    errors = [{"loc": ("body", "items", i, "id"), "msg": "Field required", "type": "missing"} for i in range(500)]
    out = validation_errors(errors)
    assert out["detail"] == "items[0].id: Field required (and 499 more)"
    assert len(out["errors"]) == wapi.MAX_ERRORS_SHOWN
    assert validation_errors([])["detail"] == "request: invalid request"
