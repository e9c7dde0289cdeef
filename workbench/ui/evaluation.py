"""The Evaluation tab: the `workbench eval report` figures, drawn by the same functions.

`evaluation.report.evaluation_summary` computes every figure and `summary_html` renders the
same sections as report.html (tables, plots inlined), so the tab and the report never disagree.
The analyst-quality section follows the viewer's role: the signed-in user's principal (or the
analyst box's name on a store without accounts) is what `analyst_quality` checks.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied, check_permission
from evaluation.config import load_evaluation_config
from evaluation.drift import load_drift_config
from evaluation.report import evaluation_summary, summary_html

from .review_hold import STORE_ERRORS
from .session import actor
from .tab_access import one_line, refused

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

INTRO = ("Model against human decisions: QA-audit estimates with intervals, override rates over time, "
         "calibration, agreement, slices and bias, drift; analyst quality for leads.")


def build_evaluation_tab(app: "AppContext", who: Optional[Any] = None) -> None:
    """Lay out the Evaluation tab inside the current Blocks and wire it; `who` is the analyst box."""

    def evaluation(name: Optional[str], request: gr.Request) -> str:
        try:
            principal = actor(app, name or "", request)
            check_permission(principal, "read", "evaluation report")  # roles.yaml: read covers reports
            config = app._once("evaluation", lambda: load_evaluation_config(app.config_dir))
            drift = app._once("drift", lambda: load_drift_config(app.config_dir))
            summary = evaluation_summary(app.store(), app.taxonomy(), principal, config=config, drift_config=drift)
        except (PermissionDenied, ValueError, *STORE_ERRORS) as exc:  # ValueError: a config that does not load
            refused(app, name, request, "read evaluation report", exc)  # audited: who tried what
            return f"<p>Not shown: {html.escape(one_line(exc, 'press Compute report again'))}</p>"
        return summary_html(summary)

    eval_btn = gr.Button("Compute report", size="sm", elem_id="wb-eval-compute")
    out = gr.HTML(f"<p>{html.escape(INTRO)}</p>", elem_id="wb-eval-report")
    eval_btn.click(evaluation, [who] if who is not None else [gr.State("")], out)
