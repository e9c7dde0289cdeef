"""The Review tab: claim the next case, read the masked text, the model's scores, similar past
decisions, campaign and author history; confirm in one key, override, escalate, skip, release.

Each callback is a few lines over one `labeling` service call; `_show` turns the packet the
service returns into the tab's outputs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from labeling.cases import queue_overview
from labeling.claims import next_case, release, skip
from labeling.decisions import decide
from labeling.packets import escalate_with_packet, review_packet, reveal_text

from .session import actor
from .render import EMPTY_HEADER, author_rows, campaign_md, header_md, model_md, similar_rows, text_html

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

# What a service refuses with (LabelingError is a ValueError): shown to the analyst, never a crash.
SERVICE_ERRORS = (ValueError, PermissionDenied)


def _show(packet: Optional[dict[str, Any]], message: str) -> tuple[Any, ...]:
    """The outputs for a claimed case (or for none): state, header, text, scores, info, form."""
    if packet is None:
        return (None, message or EMPTY_HEADER, "", {}, "", "", [], [], gr.update(value=None),
                gr.update(choices=[], value=None), "", "")
    pred = packet.get("prediction") or {}
    label = packet["suggested_label"]
    choice = packet["choices"][label]
    confidences = {k: float(v) for k, v in (pred.get("scores") or {}).items()}
    return (packet, header_md(packet) + (f"\n\n{message}" if message else ""), text_html(packet), confidences,
            model_md(packet), campaign_md(packet), author_rows(packet), similar_rows(packet),
            gr.update(value=label), gr.update(choices=choice["actions"], value=choice["default_action"]),
            choice["policy_ref"], "")


def _kept(packet: dict[str, Any], what: str, exc: Exception) -> tuple[Any, ...]:
    """A refusal: keep the packet and everything the analyst typed; only the header says why."""
    gr.Warning(str(exc))
    return (packet, header_md(packet) + f"\n\n**{what}:** {exc}", *([gr.update()] * 10))


def build_review_tab(app: "AppContext", analyst: str, queue: Optional[str]) -> gr.Textbox:
    """Lay out the Review tab inside the current Blocks and wire it; returns the analyst box."""
    store, taxonomy, qconfig = app.store(), app.taxonomy(), app.queues()

    def claim(who: str, queue: str, request: gr.Request, message: str = "") -> tuple[Any, ...]:
        if not app.has_users() and not who.strip():
            return _show(None, "Enter your analyst name first.")
        try:
            case = next_case(store, actor(app, who, request), queue, config=qconfig, detail=False)
        except SERVICE_ERRORS as exc:
            return _show(None, f"Warning: {exc}")
        if case is None:
            return _show(None, f"{message}\n\nQueue **{queue}** is empty.".strip())
        return _show(review_packet(store, taxonomy, case["id"], app.review(), app.campaigns()), message)

    def on_label(label: Optional[str]) -> tuple[Any, Any]:
        if not label:
            return gr.update(), ""
        pol = taxonomy.policies[label]
        return gr.update(choices=pol.actions, value=pol.default_action), pol.policy_ref

    def submit(packet: Optional[dict[str, Any]], who: str, queue: str, label: str, action: str,
               policy_ref: str, rationale: str, request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return claim(who, queue, request)
        case_id = packet["case"]["id"]
        try:
            out = decide(store, taxonomy, case_id, actor(app, who, request), label, action=action or None,
                         policy_ref=policy_ref or None, rationale=rationale or None, config=qconfig)
        except SERVICE_ERRORS as exc:
            return _kept(packet, "Not saved", exc)
        n = len(out.get("decision_ids", []))
        return claim(who, queue, request, f"Saved: case {case_id}: {label} / {action or 'default action'}"
                                 f"{f' on {n} items' if n > 1 else ''}.")

    def confirm(packet: Optional[dict[str, Any]], who: str, queue: str, request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return claim(who, queue, request)
        label = packet["suggested_label"]
        choice = packet["choices"][label]
        return submit(packet, who, queue, label, choice["default_action"], choice["policy_ref"], "", request)

    def escalate(packet: Optional[dict[str, Any]], who: str, queue: str, rationale: str,
                 request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return _show(None, "No case to escalate.")
        try:
            out = escalate_with_packet(store, taxonomy, packet["case"]["id"], actor(app, who, request), rationale,
                                       qconfig, app.review(), app.campaigns())
        except SERVICE_ERRORS as exc:
            return _kept(packet, "Not escalated", exc)
        return claim(who, queue, request, f"Escalated case {packet['case']['id']}: packet at `{out['packet_path']}`")

    def skip_case(packet: Optional[dict[str, Any]], who: str, queue: str, request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return _show(None, "")
        try:
            skip(store, packet["case"]["id"], actor(app, who, request), qconfig)
        except SERVICE_ERRORS as exc:
            return _show(None, f"Warning: {exc}")
        return claim(who, queue, request, f"Skipped case {packet['case']['id']}.")

    def release_case(packet: Optional[dict[str, Any]], who: str, request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return _show(None, "")
        try:
            release(store, packet["case"]["id"], actor(app, who, request), qconfig)
        except SERVICE_ERRORS as exc:
            return _show(None, f"Warning: {exc}")
        return _show(None, f"Released case {packet['case']['id']}.")

    def reveal(packet: Optional[dict[str, Any]], who: str, request: gr.Request) -> Any:
        if packet is None or not packet.get("item"):
            return gr.update()
        try:
            text = reveal_text(store, packet["case"]["id"], actor(app, who, request))
        except SERVICE_ERRORS as exc:
            gr.Warning(str(exc))
            return gr.update()
        return text_html(dict(packet, masked=False, item=dict(packet["item"], text=text)))

    packet_state = gr.State(None)
    with gr.Row():
        accounts = app.has_users()
        who = gr.Textbox(value="" if accounts else analyst, label="Signed in as" if accounts else "Analyst",
                         interactive=not accounts, scale=1)
        waiting = queue_overview(store)
        busiest = max(qconfig.queues, key=lambda q: waiting.get(q, 0))
        queue_in = gr.Dropdown(choices=[(f"{q} ({waiting.get(q, 0)})", q) for q in qconfig.queues],
                               value=queue or busiest, label="Queue", scale=2, elem_id="wb-queue",
                               allow_custom_value=True)
        next_btn = gr.Button("Next case (n)", elem_id="wb-next", variant="primary", scale=1)
    header = gr.Markdown(EMPTY_HEADER)
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.HTML(elem_id="wb-text")
            reveal_btn = gr.Button("Reveal text (r)", elem_id="wb-reveal", size="sm")
        with gr.Column(scale=2):
            scores = gr.Label(label="Model scores", num_top_classes=len(taxonomy.labels))
            model_info = gr.Markdown()
    with gr.Row():
        label_in = gr.Radio(choices=taxonomy.labels, label="Label")
        # Choices follow the label; the service validates the pair, so a value that is briefly
        # out of step with the choices (a fast click after a label change) is not a UI error.
        action_in = gr.Dropdown(choices=[], label="Enforcement action", allow_custom_value=True,
                                elem_id="wb-action")
        policy_in = gr.Textbox(label="Policy reference")
    rationale_in = gr.Textbox(label="Rationale (required to override or escalate)", lines=2,
                              elem_id="wb-rationale")
    with gr.Row():
        confirm_btn = gr.Button("Confirm model (c)", elem_id="wb-confirm", variant="primary")
        decide_btn = gr.Button("Save decision", elem_id="wb-decide")
        escalate_btn = gr.Button("Escalate with packet", elem_id="wb-escalate", variant="stop")
        skip_btn = gr.Button("Skip (s)", elem_id="wb-skip")
        release_btn = gr.Button("Release (x)", elem_id="wb-release")
    gr.Markdown("<span class='wb-keys'>Keys: <kbd>c</kbd> confirm · <kbd>n</kbd> next · <kbd>r</kbd> reveal · "
                "<kbd>s</kbd> skip · <kbd>x</kbd> release</span>")
    with gr.Accordion("Campaign", open=True):
        campaign_info = gr.Markdown()
    with gr.Accordion("Similar past decisions", open=True):
        similar = gr.Dataframe(headers=["similarity", "label", "action", "reviewer", "rationale", "text"],
                               interactive=False, wrap=True)
    with gr.Accordion("Author history", open=False):
        author = gr.Dataframe(headers=["item", "created", "predicted", "decided", "action", "text"],
                              interactive=False, wrap=True)

    outputs = [packet_state, header, text, scores, model_info, campaign_info, author, similar,
               label_in, action_in, policy_in, rationale_in]
    next_btn.click(claim, [who, queue_in], outputs)
    confirm_btn.click(confirm, [packet_state, who, queue_in], outputs)
    decide_btn.click(submit, [packet_state, who, queue_in, label_in, action_in, policy_in, rationale_in], outputs)
    escalate_btn.click(escalate, [packet_state, who, queue_in, rationale_in], outputs)
    skip_btn.click(skip_case, [packet_state, who, queue_in], outputs)
    release_btn.click(release_case, [packet_state, who], outputs)
    reveal_btn.click(reveal, [packet_state, who], [text])
    label_in.input(on_label, [label_in], [action_in, policy_in])
    return who
