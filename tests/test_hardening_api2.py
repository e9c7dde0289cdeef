"""Hardening of the HTTP API's batch ingest and of the gate history (helper api2):

- `POST /api/v1/items` scores and cases only the batch's own items, as the token's principal,
  and only when the token may (`score`, `build_cases`);
- a request body with a key twice is a 422 naming the JSON path, as file ingest refuses a JSONL
  row with a key twice;
- a forced promotion that the compare-and-swap refused is not shown as promoted, and a refusal
  belongs to the verdict it followed, not to every verdict of that version.
"""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from sqlalchemy import func, select  # noqa: E402

import evaluation.promotion as EP  # noqa: E402
from core.accounts import create_token  # noqa: E402
from core.predictions import champion_version  # noqa: E402
from core.schema import AuditEvent, Case, Item, Prediction  # noqa: E402
from evaluation.model_overview import gate_verdicts, model_overview, verdict_word  # noqa: E402
from evaluation.promotion import PromotionRefused, promote_through_gate  # noqa: E402
from labeling.rescore import score_ids  # noqa: E402
from models.registry import promote, train_model  # noqa: E402
from models.training import TrainingSet  # noqa: E402
from test_api import api as api_fixture, auth, toy_champion  # noqa: E402 (the fixture and its helpers)
from test_models_fixtures import add_items, toy_corpus  # noqa: E402
from test_promotion_gate import FAST, MODELS, _rotated, loop as loop_fixture  # noqa: E402 (the fixture)

api, loop = api_fixture, loop_fixture  # the same fixtures, under the names the tests ask for


# -- 1. an API batch scores and cases its own items, as the token, only when the token may ------------
def _count(api, table, *where) -> int:
    with api.ctx.store().read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_without_score_stores_the_batch_unscored_and_says_so(api):
    toy_champion(api)  # 60 items nobody has scored yet
    ingest_only = create_token(api.ctx.store(), "eng", actor="setup", scopes=["ingest"])["token"]
    batch = {"source": "platform", "items": [{"id": "s1", "text": "WINNER claim your free prize now"}]}
    body = api.post("/api/v1/items", json=batch, headers=_bearer(ingest_only)).json()
    assert body["stored"] == 1 and body["scored"] is None and body["cases"] is None
    assert "needs permission 'score'" in body["not_scored"] and "\n" not in body["not_scored"]
    assert _count(api, Prediction) == 0 and _count(api, Case) == 0
    assert _count(api, AuditEvent, AuditEvent.action == "cases.build") == 0
    # Asked for explicitly, scoring it may not do refuses the request before anything is stored.
    asked = {"source": "platform", "items": [{"id": "s2", "text": "hello"}]}
    r = api.post("/api/v1/items?score=true", json=asked, headers=_bearer(ingest_only))
    assert r.status_code == 403 and "needs permission 'score'" in r.json()["detail"]
    assert _count(api, Item, Item.id == "platform:s2") == 0


def test_a_batch_scores_and_cases_only_its_own_items_as_the_token(api):
    toy_champion(api)
    backlog = add_items(api.ctx.store(), ["an older unscored item", "another"], [None, None], prefix="backlog")
    scored_before = add_items(api.ctx.store(), ["an older scored item with no case yet"], [None], prefix="old")
    with api.ctx.store().read() as conn:
        champ = champion_version(conn)
    score_ids(api.ctx.store(), api.ctx.taxonomy(), api.ctx.models(), champ, scored_before, False, lambda n: None)
    long_id = "x" * 300  # stored under file ingest's hashed id
    batch = {"source": "platform", "items": [{"id": "s1", "text": "WINNER claim your free prize now"},
                                             {"id": long_id, "text": "see you at lunch tomorrow"},
                                             {"id": "bad"}]}  # no text: quarantined
    body = api.post("/api/v1/items", json=batch, headers=auth(api, "eng")).json()
    assert (body["stored"], body["quarantined"], body["scored"], body["not_scored"]) == (2, 1, 2, None)
    assert body["cases"]["item_cases"] == 2
    assert _count(api, Prediction) == 3 and _count(api, Prediction, Prediction.item_id.in_(backlog)) == 0
    assert _count(api, Case, Case.item_id.like("platform:%")) == 2
    assert _count(api, Case, Case.item_id.in_(scored_before)) == 0  # the store's backlog is `cases build`'s
    with api.ctx.store().read() as conn:
        assert conn.execute(select(AuditEvent.actor).where(AuditEvent.action == "cases.build")).scalars().all() \
            == ["eng"]


# -- 2. a key given twice in a request body ------------------------------------------------------
@pytest.mark.parametrize("body, where", [
    ('{"source":"d","items":[{"id":"a","text":"first"}],"items":[{"id":"b","text":"second"}]}', "items"),
    ('{"source":"d","items":[{"id":"a","text":"x"},{"id":"c","text":"benign","text":"scam"}]}', "items[1].text"),
    ('{"source":"d","items":[{"id":"e","text":"x","metadata":{"k":{"z":1,"z":2}}}]}', "items[0].metadata.k.z"),
])
def test_a_key_given_twice_is_a_422_naming_its_path_and_nothing_is_stored(api, body, where):
    r = api.post("/api/v1/items?score=false", content=body.encode(),
                 headers={**auth(api, "eng"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"{where}: duplicate key") and "\n" not in detail
    assert r.json()["errors"][0]["loc"] == where and _count(api, Item, Item.source == "d") == 0


def test_the_body_is_parsed_once_and_other_routes_refuse_a_key_twice(api, monkeypatch):
    from starlette.requests import Request

    bad = api.post("/api/v1/items", content=b'{"source": ',
                   headers={**auth(api, "eng"), "Content-Type": "application/json"})
    assert bad.status_code == 422 and "JSON" in bad.text  # not JSON at all: FastAPI's own answer, as before

    async def no_second_parse(self):
        raise AssertionError("the body was parsed a second time")

    monkeypatch.setattr(Request, "json", no_second_parse)
    r = api.post("/api/v1/items?score=false", json={"source": "once", "items": [{"id": "a", "text": "hi"}]},
                 headers=auth(api, "eng"))
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    r = api.post("/api/v1/items/once:a/appeals", content=b'{"reason": "a", "reason": "b"}',
                 headers={**auth(api, "ada"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("reason: duplicate key"), r.text


# -- the gate history (evaluation.model_overview) ---------------------------------------------------
def _train(store, taxonomy, ids, weak: bool) -> str:
    texts, ys = toy_corpus(60, seed=4)
    data = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    return train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", promote_if="never", show_progress=False,
                       params={**FAST, "C": 1e-6} if weak else FAST, data=_rotated(data) if weak else data)["id"]


def _gate(store, taxonomy, version, monkeypatch, race_with=None, **kw):
    """`promote_through_gate` of `version`; with `race_with`, that version is promoted by someone
    else between the verdict and the compare-and-swap, and the refusal is returned."""
    if race_with is not None:
        real = EP.write_markdown

        def racing(*a, **k):
            promote(store, race_with, actor="eng2", reason="another host")
            monkeypatch.setattr(EP, "write_markdown", real)
            return real(*a, **k)

        monkeypatch.setattr(EP, "write_markdown", racing)
        with pytest.raises(PromotionRefused, match="nothing promoted"):
            promote_through_gate(store, taxonomy, version, models_config=MODELS, queue_config=None, actor="eng",
                                 rescore="none", show_progress=False, **kw)
        return None
    return promote_through_gate(store, taxonomy, version, models_config=MODELS, queue_config=None, actor="eng",
                                rescore="none", show_progress=False, **kw)


def test_a_refused_forced_promotion_is_not_shown_as_forced_over_the_gate(loop, taxonomy, monkeypatch):
    store, champ, ids = loop
    weak, other = _train(store, taxonomy, ids, weak=True), _train(store, taxonomy, ids, weak=False)
    _gate(store, taxonomy, weak, monkeypatch, race_with=other, force=True, reason="rollback drill")
    forced, gate = gate_verdicts(store, "eng", limit=2)
    assert forced["action"] == "model.force_promote" and forced["challenger"] == weak
    assert forced["promote_refused"] and f"the champion is now {other}" in forced["promote_refused"]
    assert verdict_word(forced) == "forced, not promoted: the champion changed meanwhile"
    assert gate["action"] == "model.gate" and verdict_word(gate) == "refused"  # the gate's own verdict
    # a forced promotion that landed still reads as forced
    _gate(store, taxonomy, weak, monkeypatch, force=True, reason="rollback drill, again")
    latest = gate_verdicts(store, "eng", limit=1)[0]
    assert latest["forced"] and latest["promote_refused"] is None and verdict_word(latest) == "forced over the gate"


def test_an_earlier_refusal_does_not_mark_a_later_successful_verdict(loop, taxonomy, monkeypatch):
    store, champ, ids = loop
    good, weak = _train(store, taxonomy, ids, weak=False), _train(store, taxonomy, ids, weak=True)
    _gate(store, taxonomy, good, monkeypatch, race_with=weak)  # passes, loses the compare-and-swap
    assert _gate(store, taxonomy, good, monkeypatch)["promoted"]  # again, against the new champion: promoted
    later, earlier = gate_verdicts(store, "eng", challenger=good)
    assert later["champion"] == weak and later["passed"] and later["promote_refused"] is None
    assert verdict_word(later) == "passed"
    assert earlier["champion"] == champ and f"the champion is now {weak}" in earlier["promote_refused"]
    assert verdict_word(earlier) == "passed, not promoted: the champion changed meanwhile"
    row = {m["id"]: m for m in model_overview(store, "eng")}[good]
    assert row["role"] == "champion" and verdict_word(row["verdict"]) == "passed"
