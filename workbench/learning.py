"""The learning loop inside `workbench serve`: automatic retrains, off by default.

When `auto_retrain.enabled` is true in models.yaml, a daemon thread asks
`evaluation.promotion.retrain_due` every `auto_retrain.check_seconds`; when a retrain is due
(enough new decisions, or the override-rate alarm) it runs `retrain_and_gate` there, so serving
never waits, as the `system` principal: the gate alone decides the promotion (never forced). After a
promotion the open cases are rescored as a `labeling.rescore.RescoreJob` in its own thread: the
job is kept on the application context (`app.rescore_job`, what `GET /api/v1/jobs/rescore`
reports) and the check thread follows it to its end, logging its progress, so that no retrain
starts while the open cases are still being rescored. A failed retrain is logged and audited
(`model.retrain_failed`); the next try waits `auto_retrain.failure_backoff_seconds`, doubling per
failure in a row, so a lasting failure is not retrained at every check.

A retrain can also be started from the web UI's Models tab (`start_retrain`): the same
`retrain_and_gate` in a thread, its steps and outcome on a `RetrainJob` (`app.retrain_job`, what
`GET /api/v1/jobs/retrain` reports). One retrain at a time per process: both paths take
`app.retrain_lock`, and the automatic check skips while the lock is held. An automatic retrain
is on `app.retrain_job` too (by `system`), so readers and a refused UI retrain see the one running.
A UI retrain also waits for the rescoring of the last promotion, as the automatic check does; a
promotion from the Models tab (`promote_now`) is one at a time per process. A job's error is one
line (`job_error`): a store failure without its SQL.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from labeling.rescore import RescoreJob

log = logging.getLogger(__name__)
# Seconds between two progress lines in the log while the open cases are rescored.
PROGRESS_EVERY = 30.0


def embedder_for(app: Any) -> Any:
    """The embedding model of models.yaml (building it reads no weights)."""
    from models.embeddings import Embedder

    return Embedder.from_settings(app.models().embedding)


def learning_pass(app: Any, actor: Any, queue: Optional[str] = None) -> dict[str, Any]:
    """Re-plan the learning share of the configured queues (or one) over the embedding cache:
    after `cases build` and `cases sweep`, and on every pass of `serve`'s queue sweeper, since
    each pinned learning case claimed leaves the share short until the next plan."""
    from labeling.learning import apply_learning_share

    return apply_learning_share(app.store(), app.taxonomy(), app.queues(), actor,
                                embedding_model=embedder_for(app).model_id, queues=[queue] if queue else None)


def sweep_once(app: Any, actor: Any = None, progress: bool = False) -> dict[str, Any]:
    """One queue sweep as `workbench cases sweep` and `serve`'s sweeper run it: the sweep
    (`labeling.escalation.sweep`: leases, SLA escalations, priorities), then the learning pass
    where queues.yaml gives a queue a share (`learning` in the result). `actor`: who asked (needs
    `sweep`); None for the sweeper itself, which acts as the reserved principal `sweeper`."""
    from core.principals import SYSTEM
    from labeling.escalation import sweep

    out = sweep(app.store(), app.taxonomy(), app.queues(), progress=progress, requested_by=actor)
    if learning_due(app):
        out["learning"] = learning_pass(app, actor if actor is not None else SYSTEM["sweeper"])
    return out


def learning_due(app: Any) -> bool:
    """Whether a learning pass has work: a queue with a share, or one taken out of
    `learning.queues` that still holds pinned learning cases (`labeling.learning.left_pinned`):
    with the last line removed the pass never ran, and those cases stayed pinned for good."""
    from labeling.learning import left_pinned

    return bool(app.queues().learning.queues) or bool(left_pinned(app.store(), app.queues()))


def resume_rescore(app: Any) -> Optional["RescoreJob"]:
    """When `serve` starts: open cases that do not carry the champion's prediction mean a
    rescoring was cut short (a restart mid-way) or skipped (`models promote --no-rescore`), so
    finish it in the background, as the `system` principal, on `app.rescore_job`. None when
    nothing is stale or a rescoring is already running."""
    from core.principals import SYSTEM
    from labeling.rescore import stale_open_cases, start_background_rescore

    running = getattr(app, "rescore_job", None)
    if running is not None and not running.finished:
        return None
    stale = stale_open_cases(app.store(), app.queues())
    if not stale:
        return None
    log.info("%d open cases do not carry the champion's prediction: rescoring them in the background", len(stale))
    job = start_background_rescore(app.store(), app.taxonomy(), models_config=app.models(),
                                   queue_config=app.queues(), actor=SYSTEM["system"])
    app.rescore_job = job
    return job


def drift_check(app: Any) -> Any:
    """The drift report of the store as `retrain_due` asks for it (computed only when it does)."""
    def run() -> Any:
        from evaluation.drift import drift_report, load_drift_config

        return drift_report(app.store(), load_drift_config(app.config_dir), app.taxonomy())
    return run


def rescore_state(job: Optional["RescoreJob"]) -> dict[str, Any]:
    """A rescoring job as readers see it (the API, the log): `state` none (no job since the
    process started), running, finished or failed; `done` of `total` items scored; the counts
    when finished, the error when failed."""
    if job is None:
        return {"state": "none", "done": 0, "total": 0, "result": None, "error": None}
    state = "failed" if job.error is not None else "finished" if job.result is not None else "running"
    return {"state": state, "done": job.done, "total": job.total,
            "result": dict(job.result) if job.result is not None else None,
            "error": None if job.error is None else error_line(job.error)}


def follow_rescore(job: "RescoreJob", every: float = PROGRESS_EVERY) -> None:
    """Wait for a rescoring job, logging its progress every `every` seconds, then its counts or
    its error (the job's thread has no caller to report to)."""
    log.info("rescoring open cases after the promotion: %d items to score", job.total)
    while job.thread is not None and job.thread.is_alive():
        job.thread.join(every)
        if job.thread.is_alive():
            log.info("rescoring open cases: %d of %d items scored", job.done, job.total)
    if job.error is not None:
        log.warning("rescoring open cases failed after %d of %d items: %s", job.done, job.total, job.error)
    elif job.result is not None:
        r = job.result
        log.info("rescoring open cases finished: %d scored, %d re-planned, %d refreshed, %d still stale",
                 r.get("scored", 0), r.get("replanned", 0), r.get("refreshed", 0), r.get("stale_left", 0))


def check_and_retrain(app: Any) -> Optional[dict[str, Any]]:
    """One check: the retrain's result when one was due and ran, else None. After a promotion
    the rescoring job is `app.rescore_job` (and `result['rescore_job']`), followed to its end:
    its counts are `result['rescore']` (None when it failed; the error is on the job)."""
    from core.principals import SYSTEM, actor_name
    from evaluation.promotion import RetrainBusy, failure_recorded, retrain_and_gate, retrain_due

    due = retrain_due(app.store(), app.models(), drift=drift_check(app))
    if not due["due"]:
        return None
    rescoring = getattr(app, "rescore_job", None)
    if rescoring is not None and not rescoring.finished:
        # A UI retrain's promotion (or `resume_rescore`) leaves its rescoring running after the lock is
        # released: a promotion now cut it short, and its thread, no longer `app.rescore_job`, went
        # unjoined by `AppContext.close`.
        log.info("automatic retrain due (%s), but the open cases are still being rescored: the next check "
                 "retries", due["reason"])
        return None
    if not app.retrain_lock.acquire(blocking=False):
        log.info("automatic retrain due (%s), but a retrain is running: the next check retries", due["reason"])
        return None
    # On `app.retrain_job` as a UI retrain is: the Models tab and `GET /api/v1/jobs/retrain` showed the
    # previous (finished) UI job, and a refused Retrain click named it as the one running.
    previous = getattr(app, "retrain_job", None)
    job = RetrainJob(by=actor_name(SYSTEM["system"]), started_at=_now_iso(),
                     steps=[f"automatic retrain: {due['reason']}"])
    app.retrain_job = job
    try:
        log.info("automatic retrain: %s", due["reason"])
        with failure_recorded(app.store(), SYSTEM["system"], due["reason"]):  # a failure backs off
            result = retrain_and_gate(app.store(), app.taxonomy(), models_config=app.models(),
                                      queue_config=app.queues(), actor=SYSTEM["system"], rescore="background",
                                      show_progress=False, echo=job.step)
        job.result = _outcome(result)
    except RetrainBusy as exc:  # another process or host is retraining: its verdict will count
        log.info("automatic retrain due (%s), but %s: the next check retries", due["reason"], exc)
        app.retrain_job = previous  # nothing ran here
        return None
    except BaseException as exc:
        job.error = job_error(exc)
        raise
    finally:
        app.retrain_lock.release()
    log.info("automatic retrain: %s %s (%s)", result["challenger"],
             "promoted" if result["promoted"] else "not promoted", result["gate"]["reason"])
    rescore = result.get("rescore_job")
    if rescore is not None:
        app.rescore_job = rescore  # one assignment: readers see the previous job or this one
        follow_rescore(rescore)
        result["rescore"] = rescore.result
    return result


def start_auto_retrain(app: Any) -> Optional[threading.Event]:
    """Start the checking thread when `auto_retrain.enabled`; set the returned event to stop it."""
    cfg = app.models().auto_retrain
    if not cfg.enabled:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(cfg.check_seconds):
            try:
                check_and_retrain(app)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next check retries
                log.warning("automatic retrain failed: %s", exc)

    thread = threading.Thread(target=loop, name="auto-retrain", daemon=True)
    thread.start()
    if getattr(app, "track", None) is not None:
        app.track(thread, stop)  # AppContext.close() stops and joins it
    return stop


@dataclass
class RetrainJob:
    """A retrain started from the web UI: who and when, the steps so far, then the outcome."""

    by: str
    started_at: str
    steps: list[str] = field(default_factory=list)
    result: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    thread: Optional[threading.Thread] = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    def step(self, message: Any = "", *_: Any, **__: Any) -> None:
        """`retrain_and_gate`'s `echo`: each line it prints becomes a step readers see."""
        self.steps.append(str(message).strip())


def job_error(exc: BaseException) -> str:
    """`exc` as a job keeps it for readers (the Models tab, `GET /api/v1/jobs/...`, the log): one
    line, a store failure without its SQL and values (they were the whole statement, over lines)."""
    from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

    if isinstance(exc, (DBAPIError, PoolTimeout)):
        orig = getattr(exc, "orig", None)
        return f"the store is busy or unavailable ({type(orig if orig is not None else exc).__name__})"
    return error_line(f"{type(exc).__name__}: {exc}")


def error_line(text: Any) -> str:
    """A job's error text on one line, cut before a store error's `[SQL: ...]` (a rescoring job's
    error is written by `labeling.rescore`) and at 500 characters, control characters escaped."""
    from core.text import one_line

    text = str(text)
    cut = text.find("[SQL:")
    if cut >= 0:
        head = text[:cut].split("\n")[0]
        text = f"the store is busy or unavailable ({head.split(':')[0].strip() or 'store error'})"
    return one_line(text, 500)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _outcome(out: dict[str, Any]) -> dict[str, Any]:
    """What a retrain job keeps of `retrain_and_gate`'s result."""
    return {"challenger": out["challenger"], "champion": out["champion"], "promoted": out["promoted"],
            "gate": out["gate"]["reason"], "report": out.get("report")}


def retrain_state(job: Optional[RetrainJob]) -> dict[str, Any]:
    """A retrain job as readers see it (the API, the Models tab): `state` none, running, finished
    or failed; who started it and when; its last steps; the outcome (challenger, champion
    compared with, promoted, the gate's reason) or the error."""
    if job is None:
        return {"state": "none", "by": None, "started_at": None, "steps": [], "result": None, "error": None}
    state = "failed" if job.error is not None else "finished" if job.result is not None else "running"
    return {"state": state, "by": job.by, "started_at": job.started_at, "steps": list(job.steps[-20:]),
            "result": dict(job.result) if job.result is not None else None,
            "error": None if job.error is None else error_line(job.error)}


def start_retrain(app: Any, actor: Any) -> RetrainJob:
    """Start `retrain_and_gate` for `actor` in a thread (never forced: the gate alone decides);
    after a promotion the open cases are rescored as `app.rescore_job`. Permissions (`train`,
    `promote`, and the rescore's `score` and `build_cases`) are checked here, before the thread, so
    a refusal is the caller's error; a second retrain while one runs, or while the open cases are
    still rescored after a promotion, is refused (`PromotionError`). A failure is the job's
    `error`, one line (`job_error`)."""
    from core.hooks import check_permission
    from core.principals import actor_name
    from evaluation.promotion import PromotionError, retrain_and_gate

    for action in ("train", "promote", "score", "build_cases"):
        check_permission(actor, action, "retrain")
    rescoring = getattr(app, "rescore_job", None)
    if rescoring is not None and not rescoring.finished:  # as the automatic check waits for it: a promotion
        # now cut it short and left its thread unjoined (no longer `app.rescore_job`), two rescores at once
        raise PromotionError(f"the open cases are still being rescored after the last promotion ({rescoring.done} "
                             f"of {rescoring.total} items): retrain once it has finished")
    if not app.retrain_lock.acquire(blocking=False):
        running = getattr(app, "retrain_job", None)
        since = (f" (started {running.started_at} by {running.by})"
                 if running is not None and not running.finished else "")  # a finished job is not the one running
        raise PromotionError(f"a retrain is already running{since}: wait for its verdict")
    job = RetrainJob(by=actor_name(actor), started_at=_now_iso())

    def run() -> None:
        try:
            out = retrain_and_gate(app.store(), app.taxonomy(), models_config=app.models(), queue_config=app.queues(),
                                   actor=actor, rescore="background", show_progress=False, echo=job.step)
            rescore = out.get("rescore_job")
            if rescore is not None:
                app.rescore_job = rescore
            job.result = _outcome(out)
        except Exception as exc:  # noqa: BLE001 - kept on the job: a thread has no caller to raise to
            job.error = job_error(exc)
            log.warning("retrain started by %s failed: %s", job.by, job.error)
        finally:
            app.retrain_lock.release()

    previous, app.retrain_job = getattr(app, "retrain_job", None), job
    job.thread = threading.Thread(target=run, name="workbench-retrain", daemon=True)
    try:
        job.thread.start()
    except BaseException:  # no thread (RuntimeError: can't start new thread): the lock was held for good,
        app.retrain_job = previous  # and the job shown running for ever
        app.retrain_lock.release()
        raise
    return job


_LOCKS = threading.Lock()  # guards the making of a context's promotion lock


def promote_now(app: Any, version: str, actor: Any, *, force: bool = False, reason: str = "") -> dict[str, Any]:
    """`promote_through_gate` for the Models tab: `version` compared with the champion and promoted
    through the gate (or forced with a reason), the open cases then rescored in the background as
    `app.rescore_job`. One promotion at a time per process: two engineers pressing Promote at once
    (or one pressing twice) each compared and forced it, both audited as forced over the gate, and
    each started a rescoring of the open cases; the second is now refused (`PromotionError`) while
    the first runs. Another process's promotion meets the registry's compare-and-swap."""
    from core.principals import actor_name
    from evaluation.promotion import PromotionError, promote_through_gate

    with _LOCKS:
        lock = getattr(app, "promote_lock", None)
        if lock is None:
            lock = app.promote_lock = threading.Lock()
    if not lock.acquire(blocking=False):
        by = getattr(app, "promoting_by", None) or "someone"
        raise PromotionError(f"another promotion is running here (by {by}): wait for its verdict, then refresh")
    try:
        app.promoting_by = actor_name(actor)
        out = promote_through_gate(app.store(), app.taxonomy(), version, models_config=app.models(),
                                   queue_config=app.queues(), actor=actor, force=force, reason=reason,
                                   rescore="background", show_progress=False)
    finally:
        app.promoting_by = None
        lock.release()
    if out.get("rescore_job") is not None:
        app.rescore_job = out["rescore_job"]  # followed by the Models tab and `GET /api/v1/jobs/rescore`
    return out
