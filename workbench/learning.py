"""The learning loop inside `workbench serve`: automatic retrains, off by default.

When `auto_retrain.enabled` is true in models.yaml, a daemon thread asks
`evaluation.promotion.retrain_due` every `auto_retrain.check_seconds`; when a retrain is due
(enough new decisions, or the override-rate alarm) it runs `retrain_and_gate` there, so serving
never waits, as the `system` principal: the gate alone decides the promotion (never forced). After a
promotion the open cases are rescored as a `labeling.rescore.RescoreJob` in its own thread: the
job is kept on the application context (`app.rescore_job`, what `GET /api/v1/jobs/rescore`
reports) and the check thread follows it to its end, logging its progress, so that no retrain
starts while the open cases are still being rescored. Errors are logged and the next check retries.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from labeling.rescore import RescoreJob

log = logging.getLogger(__name__)
# Seconds between two progress lines in the log while the open cases are rescored.
PROGRESS_EVERY = 30.0


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
            "result": dict(job.result) if job.result is not None else None, "error": job.error}


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
    from core.principals import SYSTEM
    from evaluation.promotion import retrain_and_gate, retrain_due

    due = retrain_due(app.store(), app.models(), drift=drift_check(app))
    if not due["due"]:
        return None
    log.info("automatic retrain: %s", due["reason"])
    result = retrain_and_gate(app.store(), app.taxonomy(), models_config=app.models(), queue_config=app.queues(),
                              actor=SYSTEM["system"], rescore="background", show_progress=False)
    log.info("automatic retrain: %s %s (%s)", result["challenger"],
             "promoted" if result["promoted"] else "not promoted", result["gate"]["reason"])
    job = result.get("rescore_job")
    if job is not None:
        app.rescore_job = job  # one assignment: readers see the previous job or this one
        follow_rescore(job)
        result["rescore"] = job.result
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

    threading.Thread(target=loop, name="auto-retrain", daemon=True).start()
    return stop
