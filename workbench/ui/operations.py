"""The Operations tab: queue KPIs and the waiting cases per queue."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from evaluation.ops import ops_kpis
from labeling.cases import queue_overview

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def build_operations_tab(app: "AppContext", blocks: gr.Blocks) -> None:
    """Lay out the Operations tab inside `blocks` and wire it (refreshed on every page load)."""

    def kpis() -> tuple[Any, Any]:
        store = app.store()
        return ops_kpis(store, config=app.queues()), queue_overview(store)

    kpi_btn = gr.Button("Refresh", size="sm")
    kpi_json = gr.JSON(label="Queue KPIs")
    waiting_json = gr.JSON(label="Waiting cases per queue")
    kpi_btn.click(kpis, None, [kpi_json, waiting_json])
    blocks.load(kpis, None, [kpi_json, waiting_json])
