"""The learning loop inside `workbench serve`: automatic retrains, off by default.

When `auto_retrain.enabled` is true in models.yaml, a daemon thread asks
`evaluation.promotion.retrain_due` every `auto_retrain.check_seconds`; when a retrain is due
(enough new decisions, or the override-rate alarm) it runs `retrain_and_gate` as the `system`
principal: the gate alone decides the promotion (never forced), and after a promotion the open
cases are rescored in that same background thread, so serving never waits. Errors are logged
and the next check retries.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

log = logging.getLogger(__name__)


def drift_check(app: Any) -> Any:
    """The drift report of the store as `retrain_due` asks for it (computed only when it does)."""
    def run() -> Any:
        from evaluation.drift import drift_report, load_drift_config

        return drift_report(app.store(), load_drift_config(app.config_dir), app.taxonomy())
    return run


def check_and_retrain(app: Any) -> Optional[dict[str, Any]]:
    """One check: the retrain's result when one was due and ran, else None."""
    from core.principals import SYSTEM
    from evaluation.promotion import retrain_and_gate, retrain_due

    due = retrain_due(app.store(), app.models(), drift=drift_check(app))
    if not due["due"]:
        return None
    log.info("automatic retrain: %s", due["reason"])
    result = retrain_and_gate(app.store(), app.taxonomy(), models_config=app.models(), queue_config=app.queues(),
                              actor=SYSTEM["system"], rescore="foreground", show_progress=False)
    log.info("automatic retrain: %s %s (%s)", result["challenger"],
             "promoted" if result["promoted"] else "not promoted", result["gate"]["reason"])
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
