"""The learning loop, third audit: what a reader of the retrain job sees while serve's automatic
retrain runs, and the label-error ranking's input checks."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select

import evaluation.promotion as promotion
from core.config import config_dir
from core.principals import Principal
from evaluation.promotion import PromotionError, RetrainBusy
from core.schema import Case
from labeling.label_errors import find_label_errors, rank_label_errors
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from labeling.rescore import RescoreJob
from test_label_errors import decided_store
from test_promotion_gate import MODELS
from test_queue_support import T0
from test_seeding import BagOfWords
from workbench.learning import RetrainJob, check_and_retrain, retrain_state, start_retrain

ENGINEER = Principal("erin", "engineer", "user")


def _app(store, taxonomy, queue_config) -> SimpleNamespace:
    """serve's context as the loop reads it, the last UI retrain (by `uma`, long finished) on it."""
    done = RetrainJob(by="uma", started_at="2026-01-01T00:00:00+00:00",
                      result={"challenger": "v0", "champion": "v-", "promoted": False, "gate": "worse", "report": None})
    return SimpleNamespace(store=lambda: store, models=lambda: MODELS, taxonomy=lambda: taxonomy,
                           queues=lambda: queue_config, retrain_lock=threading.Lock(), rescore_job=None,
                           retrain_job=done)


def _due(monkeypatch, retrain) -> None:
    monkeypatch.setattr(promotion, "retrain_due", lambda *a, **k: {"due": True, "reason": "240 new human decisions"})
    monkeypatch.setattr(promotion, "retrain_and_gate", retrain)


def test_an_automatic_retrain_is_the_job_readers_see_and_a_refused_click_names_it(any_store, taxonomy, queue_config,
                                                                                  roles, monkeypatch):
    """While the automatic retrain ran, `GET /api/v1/jobs/retrain` (and the Models tab) showed the
    last UI retrain, finished, and a Retrain click was refused as 'already running (started
    2026-01-01 by uma)': a job that had ended long before, not the one holding the lock."""
    app = _app(any_store, taxonomy, queue_config)
    seen: dict = {}

    def retrain(store, taxonomy, **kw):
        kw["echo"]("assembling training data")
        seen["state"] = retrain_state(app.retrain_job)
        with pytest.raises(PromotionError) as refused:
            start_retrain(app, ENGINEER)
        seen["refusal"] = str(refused.value)
        return {"challenger": "v2", "champion": "v1", "promoted": False, "gate": {"reason": "not better"}}

    _due(monkeypatch, retrain)
    out = check_and_retrain(app)
    assert out["challenger"] == "v2" and not app.retrain_lock.locked()
    assert seen["state"]["state"] == "running" and seen["state"]["by"] == "system", seen["state"]
    assert "assembling training data" in seen["state"]["steps"]
    assert "uma" not in seen["refusal"] and "by system" in seen["refusal"], seen["refusal"]
    after = retrain_state(app.retrain_job)
    assert after["state"] == "finished" and after["result"]["challenger"] == "v2"
    assert after["result"]["gate"] == "not better"


def test_a_failed_automatic_retrain_is_a_failed_job_and_a_busy_one_leaves_the_last_job(any_store, taxonomy,
                                                                                      queue_config, monkeypatch):
    app = _app(any_store, taxonomy, queue_config)
    last = app.retrain_job

    def busy(store, taxonomy, **kw):
        raise RetrainBusy("a retrain is already running on this store")

    _due(monkeypatch, busy)
    assert check_and_retrain(app) is None and app.retrain_job is last  # nothing ran in this process

    def broken(store, taxonomy, **kw):
        raise OSError("disk full")

    _due(monkeypatch, broken)
    with pytest.raises(OSError):
        check_and_retrain(app)
    state = retrain_state(app.retrain_job)
    assert state["state"] == "failed" and state["by"] == "system" and "disk full" in state["error"], state
    assert not app.retrain_lock.locked()


def _probs() -> tuple[np.ndarray, np.ndarray]:
    """60 decisions of 2 labels, rows 3, 7 and 40 given the label the model finds implausible."""
    y = np.array([0] * 30 + [1] * 30)
    p = np.full((60, 2), 0.05)
    p[:30, 0] += 0.9
    p[30:, 1] += 0.9
    p[[3, 7, 40]] = p[[3, 7, 40], ::-1]
    return y, p / p.sum(axis=1, keepdims=True)


def test_nan_or_non_probability_rows_are_refused_by_name():
    """A NaN row passed through cleanlab unnoticed: its quality NaN, and every threshold of the
    confident joint NaN with it, so row 40's slip was no longer flagged (only 3 and 7 were)."""
    y, p = _probs()
    assert np.flatnonzero(rank_label_errors(y, p)[1]).tolist() == [3, 7, 40]
    bad = p.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match=r"pred_probs row 10 is not a probability distribution"):
        rank_label_errors(y, bad)
    for row in ([1.5, -0.5], [0.3, 0.3], [np.inf, 0.0]):
        bad = p.copy()
        bad[12] = row
        with pytest.raises(ValueError, match="row 12"):
            rank_label_errors(y, bad)
    with pytest.raises(ValueError, match="label 2 of row 0"):
        rank_label_errors(np.r_[2, y[1:]], p)
    # all-identical probabilities are a model that learnt nothing, not bad input: ranked, stable
    order, flagged, quality = rank_label_errors(y, np.full((60, 2), 0.5))
    assert order.tolist() == list(range(60)) and np.allclose(quality, 0.5)



# -- the lead's queue: one pending re-review per item ----------------------------------------------
@pytest.fixture
def lcfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


def _lead_queue(store) -> list[tuple[str, bool]]:
    """(item, is a label-error case) of the cases waiting in the re-review queue."""
    C = Case.__table__
    with store.read() as conn:
        rows = conn.execute(select(C.c.item_id, C.c.meta).where(C.c.queue == "label-review",
                                                               C.c.state.in_(["open", "claimed"]))).all()
    return [(r.item_id, bool((r.meta or {}).get("label_error"))) for r in rows]


def test_an_item_drawn_for_blind_re_review_is_not_queued_beside_it_as_a_label_error(any_store, taxonomy, lcfg):
    """A lead drew every decided item for blind QA re-review; the scan then queued bob's slips
    beside their blind cases, in the same queue: two re-reviews of one decision, and the
    label-error case showed the lead the given label and analyst the blind case hides."""
    decided_store(any_store, taxonomy, lcfg, 40, {"s3": "benign", "c5": "spam"})
    drawn = draw_rereviews(any_store, lcfg, "lea", 80, now=T0)
    assert drawn["drawn"] == 80
    out = find_label_errors(any_store, taxonomy, lcfg, "eng", BagOfWords(), now=T0, max_cases=5)
    items = [i for i, _ in _lead_queue(any_store)]
    assert out["queued"] == 0 and len(items) == len(set(items)) == 80, out
    assert out["already_queued"] >= 2, out  # said, not silently skipped


def test_an_item_queued_as_a_label_error_is_not_drawn_beside_it_for_blind_re_review(any_store, taxonomy, lcfg):
    """The reverse order: the scan queued bob's slips, then a blind draw of every decided item
    queued them again (82 cases for 80 items)."""
    decided_store(any_store, taxonomy, lcfg, 40, {"s3": "benign", "c5": "spam"})
    out = find_label_errors(any_store, taxonomy, lcfg, "eng", BagOfWords(), now=T0, max_cases=5)
    assert out["queued"] >= 2, out
    draw_rereviews(any_store, lcfg, "lea", 80, now=T0)
    items = [i for i, _ in _lead_queue(any_store)]
    assert len(items) == len(set(items)) == 80


def test_the_automatic_retrain_waits_for_a_rescoring_still_running(any_store, taxonomy, queue_config, monkeypatch):
    """A UI retrain promoted and released the lock with its rescoring still running: the next
    automatic check retrained (and could promote) over it, replacing `app.rescore_job`, so the
    first rescoring was cut short and its thread left unjoined at close."""
    app = _app(any_store, taxonomy, queue_config)
    running = RescoreJob(total=50, done=10)
    app.rescore_job = running
    calls = []

    def retrain(store, taxonomy, **kw):
        calls.append(kw)
        return {"challenger": "v2", "champion": "v1", "promoted": False, "gate": {"reason": "not better"}}

    _due(monkeypatch, retrain)
    assert check_and_retrain(app) is None and calls == [] and app.rescore_job is running
    running.result = {"scored": 50}
    assert check_and_retrain(app)["challenger"] == "v2" and len(calls) == 1  # once it is done
