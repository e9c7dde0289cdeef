"""The Evaluation tab: the `workbench eval report` figures and plots (model against human decisions)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from evaluation.report import write_report

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def build_evaluation_tab(app: "AppContext") -> None:
    """Lay out the Evaluation tab inside the current Blocks and wire it."""

    def evaluation() -> tuple[Any, ...]:
        store = app.store()
        out = write_report(store, app.taxonomy(), store.path("reports", "ui"))
        text = open(out["report"], encoding="utf-8").read().split("\n![")[0]
        plots = out["plots"]
        return text, plots.get("override_rate"), plots.get("reliability"), plots.get("score_drift")

    eval_btn = gr.Button("Compute report", size="sm")
    eval_md = gr.Markdown("Model against human decisions: overrides, precision/recall, calibration, drift.")
    with gr.Row():
        override_png = gr.Image(label="Override rate per day", type="filepath")
        reliability_png = gr.Image(label="Calibration on human labels", type="filepath")
    drift_png = gr.Image(label="Score drift", type="filepath")
    eval_btn.click(evaluation, None, [eval_md, override_png, reliability_png, drift_png])
