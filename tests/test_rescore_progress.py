"""Progress of the rescoring after an automatic promotion (issue 18): serve's check runs it as a
job kept on the application context and logs it, and `GET /api/v1/jobs/rescore` reports the
latest job to anyone who may read, refused like every other endpoint otherwise."""
from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.hooks import pm  # noqa: E402
from core.permissions import RolePolicy, load_roles  # noqa: E402
from labeling.rescore import RescoreJob, stale_open_cases  # noqa: E402
from test_promotion_gate import MODELS, loop  # noqa: E402,F401 - `loop`: the fixture
from workbench.api import create_app  # noqa: E402
from workbench.context import AppContext  # noqa: E402
from workbench.learning import check_and_retrain, follow_rescore  # noqa: E402

ON = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
    update={"enabled": True, "after_decisions": 200})})
URL = "/api/v1/jobs/rescore"


class LoopContext(AppContext):
    """The context serve hands the learning loop, with the tests' fast models config (auto retrain on)."""

    def models(self):
        return ON


def _client(store):
    """An API client over `store`: an admin (the first account must be one), a viewer, an engineer,
    and `nora`, the viewer's token narrowed to `claim` (so without `read`)."""
    roles = load_roles(config_dir())
    for name, role in (("ada", "admin"), ("vic", "viewer"), ("eng", "engineer")):
        add_user(store, name, role, actor="setup", roles=roles, password="correct horse battery")
    tokens = {name: create_token(store, user, actor="setup", scopes=scopes)["token"]
              for name, user, scopes in (("vic", "vic", None), ("eng", "eng", None), ("nora", "vic", ["claim"]))}
    ctx = LoopContext(store=store)
    client = TestClient(create_app(ctx))
    client.tokens, client.ctx = tokens, ctx
    return client


@pytest.fixture
def uninstall_roles():
    """`create_api` installs the role policy on the shared plugin manager: take it off afterwards."""
    yield
    policy = pm.get_plugin(RolePolicy.PLUGIN_NAME)
    if policy is not None:
        pm.unregister(policy)


@pytest.fixture
def api(loop, uninstall_roles):
    client = _client(loop[0])
    client.loop = loop
    return client


@pytest.fixture
def bare(sqlite_store, uninstall_roles):
    return _client(sqlite_store)


def auth(client, name):
    return {"Authorization": f"Bearer {client.tokens[name]}"}


def test_none_before_then_the_finished_job_of_an_automatic_promotion(api, caplog):
    store, champ, _ = api.loop
    r = api.get(URL, headers=auth(api, "vic"))
    assert r.status_code == 200, r.text
    assert r.json() == {"state": "none", "done": 0, "total": 0, "result": None, "error": None}

    caplog.set_level(logging.INFO, logger="workbench.learning")
    result = check_and_retrain(api.ctx)
    job = api.ctx.rescore_job
    assert result["promoted"] and result["rescore_job"] is job
    assert job.finished and job.error is None and not job.thread.is_alive()
    assert result["rescore"] == job.result and result["rescore"]["stale_left"] == 0
    assert stale_open_cases(store) == []

    body = api.get(URL, headers=auth(api, "vic")).json()
    assert body["state"] == "finished" and body["error"] is None
    assert body["done"] == body["total"] > 0
    assert body["result"]["stale_left"] == 0 and body["result"]["scored"] == body["total"]
    assert body["result"]["champion"] == result["challenger"] != champ
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "workbench.learning"]
    assert f"rescoring open cases after the promotion: {body['total']} items to score" in messages
    assert any(m.startswith(f"rescoring open cases finished: {body['total']} scored") for m in messages), messages

    # No new decisions since: no retrain, and the endpoint still shows the last job.
    assert check_and_retrain(api.ctx) is None and api.ctx.rescore_job is job
    assert api.get(URL, headers=auth(api, "eng")).json() == body


def test_a_running_and_a_failed_job_as_the_endpoint_reports_them(bare, caplog):
    bare.ctx.rescore_job = RescoreJob(total=40, done=15)
    assert bare.get(URL, headers=auth(bare, "vic")).json() == {
        "state": "running", "done": 15, "total": 40, "result": None, "error": None}
    failed = RescoreJob(total=40, done=15, error="OperationalError: database is locked")
    bare.ctx.rescore_job = failed
    assert bare.get(URL, headers=auth(bare, "vic")).json() == {
        "state": "failed", "done": 15, "total": 40, "result": None,
        "error": "OperationalError: database is locked"}
    caplog.set_level(logging.INFO, logger="workbench.learning")
    follow_rescore(failed)
    warned = [rec for rec in caplog.records if rec.levelno == logging.WARNING and rec.name == "workbench.learning"]
    assert [rec.getMessage() for rec in warned] == [
        "rescoring open cases failed after 15 of 40 items: OperationalError: database is locked"]


def test_without_read_the_endpoint_is_refused_like_the_others(bare):
    bare.ctx.rescore_job = RescoreJob(total=3, done=3, result={"stale_left": 0})
    assert bare.get(URL).status_code == 401
    r = bare.get(URL, headers={"Authorization": "Bearer wbt_nope"})
    assert r.status_code == 401 and "unknown token" in r.json()["detail"]
    assert r.json() == bare.get("/api/v1/decisions", headers={"Authorization": "Bearer wbt_nope"}).json()
    refused = bare.get(URL, headers=auth(bare, "nora"))
    other = bare.get("/api/v1/decisions", headers=auth(bare, "nora"))
    assert refused.status_code == other.status_code == 403
    assert "'read'" in refused.json()["detail"] and "'read'" in other.json()["detail"]
    assert bare.get(URL, headers=auth(bare, "vic")).json()["state"] == "finished"
