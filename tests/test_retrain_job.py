"""A retrain started from the web UI (issue 18): `workbench.learning.start_retrain` runs the same
`retrain_and_gate` in a thread, checks permissions before it starts, keeps one retrain at a
time per process (serve's automatic check skips while one runs), and `GET /api/v1/jobs/retrain`
reports its steps and verdict."""
from __future__ import annotations

import time

import pytest

from core.hooks import PermissionDenied
from core.predictions import champion_version
from core.principals import Principal
from evaluation.promotion import PromotionError
from labeling.rescore import stale_open_cases
from test_promotion_gate import loop  # noqa: F401 - `loop`: the fixture
from test_rescore_progress import LoopContext, api, auth, uninstall_roles  # noqa: F401 - fixtures
from workbench.learning import check_and_retrain, retrain_state, start_retrain

ENGINEER = Principal("erin", "engineer", "user")


def _wait(job, seconds: float = 60) -> None:
    job.thread.join(seconds)
    assert not job.thread.is_alive()


def test_a_retrain_runs_in_the_background_and_promotes_through_the_gate(loop, roles):  # noqa: F811
    store, champ, _ = loop
    app = LoopContext(store=store)
    with pytest.raises(PermissionDenied, match="needs permission 'train'"):
        start_retrain(app, Principal("ann", "analyst", "user"))
    assert app.retrain_job is None and retrain_state(None)["state"] == "none"

    job = start_retrain(app, ENGINEER)
    assert app.retrain_job is job and retrain_state(job)["by"] == "erin"
    _wait(job)
    state = retrain_state(job)
    assert state["state"] == "finished" and state["error"] is None, state
    assert state["result"]["champion"] == champ and state["result"]["promoted"]  # the champion was all wrong
    assert any("assembling training data" in s for s in state["steps"])
    assert any(s.startswith("promoted ") for s in state["steps"])
    with store.read() as conn:
        assert champion_version(conn) == state["result"]["challenger"]
    _wait(app.rescore_job)  # the open cases, rescored after the promotion
    assert stale_open_cases(store) == []
    assert not app.retrain_lock.locked()  # released when the thread ends


def test_one_retrain_at_a_time_and_the_automatic_check_waits(loop, roles):  # noqa: F811
    store, champ, _ = loop
    app = LoopContext(store=store)
    assert app.retrain_lock.acquire(blocking=False)  # a retrain is running
    try:
        with pytest.raises(PromotionError, match="a retrain is already running"):
            start_retrain(app, ENGINEER)
        assert check_and_retrain(app) is None  # due (240 new decisions), but it waits for the lock
    finally:
        app.retrain_lock.release()
    with store.read() as conn:
        assert champion_version(conn) == champ
    out = check_and_retrain(app)  # the lock free: the automatic retrain runs
    assert out is not None and out["promoted"]


def test_the_retrain_job_endpoint(api):  # noqa: F811
    url = "/api/v1/jobs/retrain"
    assert api.get(url, headers=auth(api, "vic")).json()["state"] == "none"
    assert api.get(url, headers=auth(api, "nora")).status_code == 403  # a token without read
    job = start_retrain(api.ctx, Principal("eng", "engineer", "user"))
    deadline = time.time() + 60
    while retrain_state(job)["state"] == "running" and time.time() < deadline:
        time.sleep(0.1)
    body = api.get(url, headers=auth(api, "vic")).json()
    assert body["state"] == "finished" and body["by"] == "eng" and body["result"]["promoted"] is True
    assert body["result"]["challenger"] and "lower bound" in body["result"]["gate"]
    _wait(api.ctx.rescore_job)


def test_a_failed_retrain_is_kept_on_the_job_and_frees_the_lock(sqlite_store, roles):
    app = LoopContext(store=sqlite_store)  # nothing to train on
    job = start_retrain(app, ENGINEER)
    _wait(job)
    state = retrain_state(job)
    assert state["state"] == "failed" and state["result"] is None and state["error"], state
    assert not app.retrain_lock.locked()
    assert start_retrain(app, ENGINEER).thread is not None  # the next one may start
    _wait(app.retrain_job)
