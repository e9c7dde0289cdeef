"""The Models tab and the learning-loop glue attacked through their callbacks, without a browser:
a version a client sends that no registry row can have, a store that fails under a retrain
started from the tab, a retrain thread that cannot start, a retrain pressed while the open cases
are still rescored after a promotion, and a plots or reports folder that cannot be written. Each
gets one line on screen (and in `GET /api/v1/jobs/...`); nothing is stuck, promoted or crashed
into Gradio's bare "Error"."""
from __future__ import annotations

import shutil
import threading

import pytest

from core.predictions import champion_version
from core.principals import Principal
from evaluation.promotion import PromotionError
from labeling.rescore import RescoreJob
from test_hardening_ui_tabs import _gone, _one_line
from test_promotion_gate import MODELS, make_loop
from test_rescore_progress import LoopContext
from test_ui_tabs_fixes import _models
from workbench.learning import rescore_state, retrain_state, start_retrain

ENGINEER = Principal("erin", "engineer", "user")


@pytest.fixture
def loop(sqlite_store, taxonomy, queue_config):
    """A champion that learned every label wrong, its open cases, and 240 human decisions."""
    return make_loop(sqlite_store, taxonomy, queue_config)


def _app(store) -> LoopContext:
    app = LoopContext(store=store)
    app._configs["models"] = MODELS
    return app


def _wait(job, seconds: float = 60) -> None:
    job.thread.join(seconds)
    assert not job.thread.is_alive()


@pytest.mark.parametrize("version", ["v1\ud800", "v1\0", 12, ["v1"]])
def test_a_version_no_registry_row_can_have_is_refused_in_one_line(any_store, version):
    """The Version box's value comes from the client: a lone surrogate was a traceback in the
    store's driver (both stores), a NUL or a number read as 'the store is busy or unavailable'
    (PostgreSQL) or was shown back as a version that 'has not been through the gate'."""
    fns = _models(_app(any_store))
    shown, png = fns["report"][0](version, "eng", None)
    assert shown.startswith("Not shown: not a model version name") and _one_line(shown), shown
    assert png["visible"] is False
    said = fns["promote"][0](version, True, "roll back", "eng", None)[0]
    assert said.startswith("**Not promoted:** not a model version name") and _one_line(said), said
    with any_store.read() as conn:
        assert champion_version(conn) is None


def test_a_failing_store_under_a_ui_retrain_is_one_line_without_its_sql(any_store, roles):
    """The retrain's thread kept the driver's whole message: the SQL statement and its values over
    ten lines, in the Models header and in `GET /api/v1/jobs/retrain`."""
    from workbench.ui.models import rescore_line, retrain_line

    app = _app(any_store)
    _gone(any_store, "items", "decisions", "model_versions")
    job = start_retrain(app, ENGINEER)
    _wait(job)
    error = retrain_state(job)["error"]
    assert error.startswith("the store is busy or unavailable (") and _one_line(error), error
    assert "model_versions" not in error and not app.retrain_lock.locked()
    line = retrain_line(app)
    assert "Retrain failed" in line and _one_line(line) and "SELECT" not in line, line
    # a rescoring job's error, as `labeling.rescore` writes it, is read back the same way
    app.rescore_job = RescoreJob(total=9, done=3, error="OperationalError: (sqlite3.OperationalError) no such "
                                                        "table: cases\n[SQL: SELECT cases.id FROM cases]\n[parameters: ()]")
    assert rescore_state(app.rescore_job)["error"] == "the store is busy or unavailable (OperationalError)"
    assert _one_line(rescore_line(app)) and "SELECT" not in rescore_line(app)


class _NoThread(threading.Thread):
    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def test_a_retrain_whose_thread_cannot_start_frees_the_lock(sqlite_store, roles, monkeypatch):
    """The lock was taken and the job put on the context before the thread started: when it could
    not start, every later Retrain click was refused as 'already running' and the header showed a
    retrain running for ever (a bare "Error" on the click itself)."""
    app = _app(sqlite_store)
    retrain = _models(app)["retrain"][0]
    with monkeypatch.context() as m:
        m.setattr(threading, "Thread", _NoThread)
        said = retrain("eng", None)[0]
    assert said.startswith("**Not started:** can't start new thread") and _one_line(said), said
    assert not app.retrain_lock.locked() and app.retrain_job is None
    assert retrain("eng", None)[0].startswith("**Retrain started**")  # the next click runs
    _wait(app.retrain_job)


def test_a_retrain_waits_for_the_rescore_of_the_last_promotion(sqlite_store, roles):
    """serve's automatic check waits for a rescoring still running; a Retrain click did not: its
    promotion started a second rescoring beside the first, which it cut short and left unjoined."""
    app = _app(sqlite_store)
    app.rescore_job = RescoreJob(total=40, done=12)  # still running
    with pytest.raises(PromotionError, match=r"still being rescored after the last promotion \(12 of 40 items\)"):
        start_retrain(app, ENGINEER)
    said = _models(app)["retrain"][0]("eng", None)[0]
    assert said.startswith("**Not started:** the open cases are still being rescored") and _one_line(said)
    assert app.retrain_job is None and not app.retrain_lock.locked()
    app.rescore_job.result = {"scored": 40, "stale_left": 0}  # finished: a retrain may start
    job = start_retrain(app, ENGINEER)
    _wait(job)


def test_a_plots_folder_that_cannot_be_written_leaves_the_tables(any_store):
    """The gate-history PNG is written under the data directory on each refresh: a `plots` that is
    no folder (or a full disk) was a traceback, and the tab showed nothing at all."""
    (any_store.data_dir / "plots").write_text("not a folder")
    head, versions, verdicts, pick, history = _models(_app(any_store))["listing"][0]("eng", None)
    assert head.startswith("No champion yet.") and _one_line(head) and (versions, verdicts, history) == ([], [], None)
    assert pick["choices"] == []


def test_a_report_that_cannot_be_written_refuses_the_promotion_in_one_line(loop, taxonomy):
    """A forced rollback writes its comparison report first: a full disk (here a `reports` that is
    no folder) was a traceback, and the engineer could not tell whether the champion changed."""
    from evaluation.promotion import retrain_and_gate

    store, champ, _ = loop
    challenger = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng",
                                  promote=False, rescore="none", show_progress=False)["challenger"]
    reports = store.data_dir / "reports"
    shutil.rmtree(reports)
    reports.write_text("not a folder")
    said = _models(_app(store))["promote"][0](challenger, True, "roll back", "eng", None)[0]
    assert said.startswith("**Not promoted:**") and "File exists" in said and _one_line(said), said
    with store.read() as conn:
        assert champion_version(conn) == champ


def test_two_promote_clicks_at_once_compare_and_rescore_once(loop, taxonomy, monkeypatch):
    """Two engineers (or one double click) pressed Promote on the same version while the first
    was still comparing: each ran the gate, each was audited, and each could start a rescoring of
    the open cases; the second click is now refused until the first has its verdict."""
    import evaluation.promotion as P
    from sqlalchemy import func, select

    from core.schema import AuditEvent

    store, champ, _ = loop
    challenger = P.retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng",
                                    promote=False, rescore="none", show_progress=False)["challenger"]
    app = _app(store)
    promote = _models(app)["promote"][0]
    real, entered, release, calls = P.promote_through_gate, threading.Event(), threading.Event(), []

    def held(*a, **k):  # the first click is still comparing when the second comes
        calls.append(k["actor"])
        if len(calls) == 1:
            entered.set()
            release.wait(60)
        return real(*a, **k)

    monkeypatch.setattr(P, "promote_through_gate", held)
    first: dict = {}
    clicker = threading.Thread(target=lambda: first.update(said=promote(challenger, True, "roll back", "eng", None)[0]))
    clicker.start()
    assert entered.wait(60)
    second = promote(challenger, True, "roll back", "lou", None)[0]
    release.set()
    clicker.join(120)
    assert second.startswith("**Not promoted:** another promotion is running here \\(by eng\\)"), second
    assert _one_line(second) and calls == ["eng"]
    assert "Not promoted" not in first["said"], first["said"]
    with store.read() as conn:
        assert champion_version(conn) == challenger
        gates = conn.execute(select(func.count()).where(AuditEvent.action == "model.gate")).scalar()
    assert gates == 2  # the retrain's verdict above, and one for the two clicks
    _wait(app.rescore_job)
    assert "already the champion" in promote(challenger, False, "", "lou", None)[0]  # free again
