"""The Operations tab: the queue KPIs as tables and charts (`evaluation.ops`), refreshed on load.

A summary table (backlog, overdue, speed, override, rework, escalation, audit share, appeals),
the cases per queue and state, SLA compliance per tier, decisions per analyst, and one PNG of
the three as bar charts. Decisions per analyst follow the viewer's role: `ops_kpis` is handed the
signed-in user's principal and leaves them out without `analyst_quality` (leads); without
accounts the viewer is the local admin, as on the command line. With accounts, a session that
names no usable account (ended, disabled) or a role without `read` is refused in one line.
Backlog, overdue and cases count every case (SQL aggregates); the rest is over the last
`PERIOD_DAYS` (`evaluation.ops.in_period`), so a refresh reads the same rows however old the store.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from core.plotting import label_text, pyplot, serialised
from core.principals import local_principal
from core.schema import utcnow
from evaluation.ops import ops_kpis

from .format import local_time, minutes, percent
from .review_hold import STORE_ERRORS
from .tab_access import check_reader, said

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

STATES = ("open", "claimed", "escalated", "decided", "appealed")
QUEUE_HEADERS = ["queue", "backlog", *STATES, "total"]
SLA_HEADERS = ["tier", "cases", "met", "missed", "pending", "compliance"]


def summary_rows(k: dict[str, Any]) -> list[list[Any]]:
    """The headline KPIs, formatted, each with what it counts."""
    appeals_sla = (k.get("appeals_sla") or {}).get("rate")
    return [
        ["backlog", k["backlog"], "cases waiting or claimed, not yet decided"],
        ["overdue", k["overdue"], "waiting cases past their SLA due time (calibration copies owe none)"],
        ["cases", k["cases"], "all cases, every state" + (
            f"; {k['closed_without_decision']} {'of the period ' if k.get('since') else ''}closed without a "
            "decision (a merged campaign's, behind an appeal), "
            "left out of SLA and time to resolution" if k.get("closed_without_decision") else "")],
        ["decisions", k["decisions"], f"{k['labelling_acts']} labelling acts (a bulk decision counts once per text)"],
        ["time to first action", minutes(k["median_minutes_to_first_action"]), "median, case creation to first claim"],
        ["time to resolution", minutes(k["median_minutes_to_resolution"]), "median, case creation to decision"],
        ["override rate", percent(k["override_rate"]), "decisions that changed the model's label"],
        ["rework rate", percent(k["rework_rate"]),
         "decisions later superseded with another label or action (a bulk decision counts once per text)"],
        ["escalation rate", percent(k["escalation_rate"]), "cases escalated"],
        ["QA audit share", percent(k["audit_share"]), "cases drawn for QA audit"],
        ["appeals", k["appeals"], f"SLA met {percent(appeals_sla)}, upheld {percent(k['appeals_upheld_rate'])}"],
    ]


def queue_rows(k: dict[str, Any]) -> list[list[Any]]:
    """Per queue: the backlog (waiting or claimed), the cases in each state, and all of them."""
    return [[q, v.get("backlog", 0), *[v.get(s, 0) for s in STATES], v.get("total", 0)]
            for q, v in sorted(k["queues"].items(), key=lambda kv: (-kv[1].get("backlog", 0), kv[0]))]


@serialised
def ops_chart(k: dict[str, Any], path: Any) -> str:
    """One PNG, three panels sized for a laptop screen: cases per queue (backlog beside done),
    SLA compliance per tier against the 95% line, and cases decided per analyst."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    queues = sorted(k["queues"], key=lambda q: k["queues"][q].get("backlog", 0))
    tiers = [t for t, v in k["sla"].items() if v["met"] + v["missed"]]
    people = list((k.get("resolved_per_analyst") or {}).items())[:10][::-1]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(12.5, 3.2), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    back = [k["queues"][q].get("backlog", 0) for q in queues]
    a1.barh(range(len(queues)), back, color="#3a6ea5", label="backlog")
    a1.barh(range(len(queues)), [k["queues"][q].get("total", 0) - b for q, b in zip(queues, back)], left=back,
            color="#c8c8c8", label="done")
    a1.set_yticks(range(len(queues)), [label_text(q) for q in queues])  # names from configs: `label_text`
    a1.set_title("Cases per queue"), a1.legend(loc="lower right", fontsize=8), a1.tick_params(labelsize=8)
    if tiers:
        a2.bar(range(len(tiers)), [100 * k["sla"][t]["rate"] for t in tiers], color="#4a9a6a", width=0.5)
        a2.set_xticks(range(len(tiers)), [label_text(t) for t in tiers])
        a2.axhline(95, color="#c44", linestyle="--", linewidth=1, label="95% target")
        a2.legend(loc="lower right", fontsize=8)
    else:
        a2.text(0.5, 0.5, "no case closed or overdue yet", ha="center", va="center", transform=a2.transAxes)
    a2.set_ylim(0, 105), a2.set_ylabel("% met"), a2.set_title("SLA compliance per tier")
    if people:
        a3.barh(range(len(people)), [n for _, n in people], color="#8a6bb0")
        a3.set_yticks(range(len(people)), [label_text(p) for p, _ in people])  # analyst names
    else:
        shown = "leads only (analyst_quality)" if k.get("resolved_per_analyst_refused") else "no decisions yet"
        a3.text(0.5, 0.5, shown, ha="center", va="center", transform=a3.transAxes)
    a3.set_title("Cases decided per analyst"), a3.tick_params(labelsize=8)
    for ax in (a1, a3):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts of cases, never 0.2 of one
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def sla_rows(k: dict[str, Any]) -> list[list[Any]]:
    return [[t, v["cases"], v["met"], v["missed"], v["pending"], percent(v["rate"])] for t, v in k["sla"].items()]


CHART = ("plots", "operations.png")
PERIOD_DAYS = 30  # the KPI period of the flows (SLAs, times, decisions, rates): what one refresh reads


def as_of_line(k: dict[str, Any]) -> str:
    """When the figures were taken and over what: counts over every case, the rest over the period."""
    return (f"As of {local_time(k['as_of'], zone=True)}. Backlog, overdue and cases: every case; the rest: cases "
            f"created, decided or open since {local_time(k['since'], zone=True)}" if k.get("since") else
            f"As of {local_time(k['as_of'], zone=True)}") + "."


def chart_file(store: Any, k: dict[str, Any]) -> tuple[Optional[str], str]:
    """(the chart's file, "") once drawn; (None, one line naming the file) when the data dir cannot
    take it (full, read-only, `plots` not a folder), which lost the KPIs read fine to a bare "Error".
    Drawn aside, then swapped in whole: Gradio reads the returned file after this returns, and
    another viewer's refresh rewriting it in place served a truncated PNG (1 read in 10)."""
    tmp = None
    try:
        final = store.path(*CHART)
        tmp = final.with_name(f".operations-{uuid.uuid4().hex}.png")
        os.replace(ops_chart(k, tmp), final)
        return str(final), ""
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        why = exc.strerror or type(exc).__name__
        return None, f"Chart not drawn: cannot write {'/'.join(CHART)} in the data dir ({why})."


def build_operations_tab(app: "AppContext", tab: gr.Tab) -> None:
    """Lay out the Operations tab and wire it: refreshed each time `tab` is opened (not on page
    load, which would put its outputs in every Review key's status walk; issue 17) and by its button."""

    def viewer(request: Optional[gr.Request]) -> Any:
        """The signed-in user's principal holding `read` (accounts; PermissionDenied when the
        session names no usable account, or the role may not read), else the local admin."""
        if not app.has_users():
            return local_principal("local")
        return check_reader(app, "", request, "operations")

    def kpis(request: Optional[gr.Request] = None) -> tuple[Any, ...]:
        store = app.store()
        try:
            now = utcnow()  # a period of the last PERIOD_DAYS: a refresh reads its rows, not every one stored
            k = ops_kpis(store, now=now, since=now - dt.timedelta(days=PERIOD_DAYS), config=app.queues(),
                         actor=viewer(request))
        except (PermissionDenied, ValueError, *STORE_ERRORS) as exc:  # ValueError: AccountError
            return (f"Not shown: {said(exc, 'press Refresh')}", [], [], [],
                    gr.update(value=[], label="Decided per analyst"), None)
        png, unsaved = chart_file(store, k)
        when = as_of_line(k) + (f" {unsaved}" if unsaved else "")  # words of ours
        refused = k["resolved_per_analyst_refused"]
        analysts = gr.update(value=[[name, n] for name, n in (k["resolved_per_analyst"] or {}).items()],
                             label="Decided per analyst" + (": leads only (needs permission 'analyst_quality')"
                                                            if refused else ""))
        return when, summary_rows(k), queue_rows(k), sla_rows(k), analysts, png

    with gr.Row():
        as_of = gr.Markdown(elem_id="wb-ops-asof")
        kpi_btn = gr.Button("Refresh", size="sm", scale=0, min_width=100)
    with gr.Row():
        with gr.Column(scale=3):
            summary = gr.Dataframe(headers=["measure", "value", "what it counts"], interactive=False, wrap=True,
                                   label="Queue KPIs", column_widths=["26%", "16%", "58%"], elem_id="wb-ops-kpis",
                                   max_height=1200)  # every KPI in view at 1366x768, no inner scrollbar
        with gr.Column(scale=4):
            queues = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, label="Waiting cases per queue",
                                  elem_id="wb-ops-queues", max_height=360, wrap=True,
                                  column_widths=["17%", "11%", "8%", "11%", "16%", "11%", "14%", "9%"])
            with gr.Row():
                sla = gr.Dataframe(headers=SLA_HEADERS, interactive=False, label="SLA compliance per tier",
                                   elem_id="wb-ops-sla", scale=3)
                analysts = gr.Dataframe(headers=["analyst", "cases decided"], interactive=False,
                                        label="Decided per analyst", scale=2)
    chart = gr.Image(label="Cases per queue, SLA compliance per tier, cases decided per analyst", type="filepath",
                     height=340, elem_id="wb-ops-chart")
    outs = [as_of, summary, queues, sla, analysts, chart]
    kpi_btn.click(kpis, None, outs)
    tab.select(kpis, None, outs)
