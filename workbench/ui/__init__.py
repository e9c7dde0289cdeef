"""The Gradio review workbench: a thin view over the services, handed the application context.

Tabs, one module each: Review (`review`: the analyst's screen: the most urgent queue first, the
next case or one by id, the text masked by the server until revealed, the model's scores, the
campaign, similar past decisions and author history, a context panel (`context_panel`); one key
to confirm, override, escalate, skip, undo; a lease heartbeat and live counts), Campaigns (`campaigns`: list, timeline plot, act on a whole campaign),
Evaluation (`evaluation`: the `workbench eval report` figures and plots), Models (`models`: the
registry beside the gate's verdicts and comparison reports, promotion through the gate), Operations
(`operations`: queue KPIs as tables and charts), Search (`search`: text, id, author, tag, note),
Appeals (`appeals`: a lead confirms or reverses). `format` holds the shared time and text
formatting, `render` holds the pure rendering helpers, `assets` the keyboard
shortcuts and CSS. Keys on the Review tab: 1-9 label, a action, c confirm, o override, e escalate,
Ctrl+Enter save, u undo, n next, r reveal, s skip, x release, ? help.

Importing this package is light: Gradio and the tab modules load inside `build_app`.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

log = logging.getLogger(__name__)

__all__ = ["build_app", "serve", "start_sweeper"]


def build_app(app: "AppContext", analyst: str = "analyst", queue: Optional[str] = None) -> Any:
    """The Gradio Blocks app; every handler calls a service function and renders its result."""
    import gradio as gr

    from .campaigns import build_campaigns_tab
    from .evaluation import build_evaluation_tab
    from .operations import build_operations_tab
    from .review import build_review_tab

    with gr.Blocks(title="T&S workbench") as blocks, gr.Tabs(elem_id="wb-tabs") as tabs:
        with gr.Tab("Review", id="review", elem_id="wb-review-tab"):
            review = build_review_tab(app, blocks, analyst, queue)
        who = review.who  # filled with the session's user on load
        with gr.Tab("Campaigns", id="campaigns") as campaigns_tab:
            build_campaigns_tab(app, campaigns_tab, who)
        with gr.Tab("Evaluation", id="evaluation"):
            build_evaluation_tab(app, who)
        with gr.Tab("Models", id="models") as models_tab:
            from .models import build_models_tab  # issue 18: the registry, the gate's verdicts, gated promotion

            build_models_tab(app, models_tab, who)
        with gr.Tab("Operations", id="operations") as operations_tab:
            build_operations_tab(app, operations_tab)
        with gr.Tab("Search", id="search"):
            from .search import build_search_tab  # issue 17: find by text, id, author, tag

            # "Open in Review": claim the result's case and show it on the Review tab
            build_search_tab(app, who, lambda event, case_box, note: review.open_from(event, case_box, tabs, "review",
                                                                                      note))
        with gr.Tab("Appeals", id="appeals") as appeals_tab:
            from .appeals import build_appeals_tab  # issue 17: a lead decides appeals

            build_appeals_tab(app, appeals_tab, who)
    return blocks


def start_sweeper(app: "AppContext", every_seconds: int) -> Optional[threading.Event]:
    """Every `every_seconds`, in a daemon thread, what `workbench cases sweep` does: the queue
    sweep (`labeling.escalation.sweep`), then the learning share re-planned where queues.yaml
    gives one (claimed learning cases are replaced). Set the returned event to stop."""
    if every_seconds <= 0:
        return None
    from ..learning import sweep_once

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            try:
                sweep_once(app)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next sweep retries
                log.warning("queue sweep failed: %s", exc)

    thread = threading.Thread(target=loop, name="queue-sweeper", daemon=True)
    thread.start()
    if getattr(app, "track", None) is not None:
        app.track(thread, stop)  # AppContext.close() stops and joins it
    return stop


def serve(app: "AppContext", host: str = "127.0.0.1", port: int = 7860, analyst: str = "analyst",
          queue: Optional[str] = None, block: bool = True) -> Any:
    """Launch the app (blocking unless `block=False`, for tests) with the periodic queue sweep,
    the webhook delivery worker and the `/api/v1` HTTP API (`workbench.api`) on the same server."""
    from .assets import CSS, SHORTCUTS_JS

    blocks = build_app(app, analyst, queue)
    if block:
        start_sweeper(app, app.review().sweep_every_seconds)
        from ..webhooks import start_webhook_worker  # the enforcement hand-off (webhooks.yaml)

        start_webhook_worker(app)
        from ..learning import resume_rescore, start_auto_retrain  # issue 18

        resume_rescore(app)  # a rescoring cut short by a restart, or skipped, is finished
        start_auto_retrain(app)  # off unless models.yaml auto_retrain.enabled
    from .session import login_check
    from .web_guard import SESSION_JS, guard_middleware, record_peer

    # The guard (sessions in the store, idle timeout, logout, CSRF, login throttle, SSO proxy;
    # configs/web.yaml) is a middleware of the app Gradio creates, so it is there before the
    # first request; record_peer keeps the real TCP peer for the trusted-proxy check.
    blocks.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=not block,
                  auth=login_check(app), auth_message="Sign in with your workbench account.",
                  head=SHORTCUTS_JS + SESSION_JS, css=CSS, footer_links=[],
                  # Gradio's run history re-serialises up to 100 past runs (inputs and outputs) into
                  # localStorage on every event: each key grew ~1 ms slower per case until 100 (issue
                  # 17), and it kept revealed texts in the browser after the session. Off.
                  run_history=False,
                  app_kwargs={"middleware": [guard_middleware(app, port)]},
                  # Gradio's own "is localhost reachable" probe gives up after one 3 s HEAD and then
                  # refuses to start (a loaded machine failed a test's launch): `_reachable` waits.
                  _frontend=False)
    _reachable(blocks.local_url)
    record_peer(blocks)
    from ..api import mount_api  # the /api/v1 HTTP API (bearer tokens), ahead of Gradio's routes

    mount_api(app, blocks.app)
    if block:
        blocks.block_thread()
    return blocks


def _reachable(url: str, seconds: float = 30.0) -> None:
    """Wait until the server just started answers at `url` (any HTTP answer: the login guard may
    refuse), up to `seconds`; a one-line error when it never does."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.head(url, timeout=5)
            return
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web UI started but {url} does not answer ({type(exc).__name__}): "
                                   "check the host, port and any proxy settings") from None
            time.sleep(0.5)
