"""The Gradio review workbench: a thin view over the service layer (review, queue, decisions).

Tabs: Review (claim the next case, see the masked text, the model's scores, similar past
decisions, campaign and author history; confirm in one key, override, escalate, skip), Campaigns
(list, timeline plot, act on a whole campaign), Evaluation (the `workbench eval report`
figures and plots), Operations (queue KPIs). Keys on the Review tab
when no text box has focus: c confirm, n next, r reveal, s skip, x release.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from .store import Store
from .taxonomy import Taxonomy

log = logging.getLogger(__name__)

SHORTCUTS_JS = """
<script>
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable)) return;
  const ids = {c: 'wb-confirm', n: 'wb-next', r: 'wb-reveal', s: 'wb-skip', x: 'wb-release'};
  const el = document.getElementById(ids[e.key]);
  if (el) { e.preventDefault(); el.click(); }
});
</script>
"""

CSS = """
#wb-text {font-size: 1.15em; line-height: 1.5; padding: 0.6em; border-radius: 6px;
          background: var(--background-fill-secondary);}
.wb-masked {color: var(--body-text-color-subdued); font-family: monospace;}
.wb-keys kbd {border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: 0.85em;}
"""


def _esc(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")


def header_md(p: dict[str, Any]) -> str:
    c = p["case"]
    left = p.get("minutes_left")
    due = "no SLA" if left is None else (f"**overdue by {-left:.0f} min**" if left < 0 else f"due in {left:.0f} min")
    tags = []
    if c.get("is_audit"):
        tags.append("QA audit")
    if c.get("calibration_set"):
        tags.append(f"calibration: {c['calibration_set']}")
    if c.get("escalation_reason"):
        tags.append(f"escalated: {c['escalation_reason']}")
    if c.get("campaign_id") is not None and not c.get("item_id"):
        tags.append(f"campaign case ({(p.get('campaign') or {}).get('members', '?')} items, decided in bulk)")
    return (f"### Case {c['id']} · {c['queue']} · {c.get('severity') or 'no tier'} · {due}\n"
            f"{' · '.join(tags)}\n\n**Why first:** {c.get('priority_reason') or '—'}")


def text_html(p: dict[str, Any]) -> str:
    item = p.get("item")
    if item is None:
        camp = p.get("campaign") or {}
        return f"<div>Campaign {camp.get('id')}: {camp.get('members', '?')} members — see the Campaigns tab.</div>"
    note = ("<div class='wb-masked'><small>Masked: possibly offensive. Press <b>r</b> or Reveal to show "
            "(audited).</small></div>") if p.get("masked") else ""
    meta = f"<small>{_esc(item['id'])} · {item['source']} · {item['surface']} · {item.get('created_at') or ''}</small>"
    cls = "wb-masked" if p.get("masked") else ""
    return f"{meta}<div class='{cls}'>{_esc(item['text'])}</div>{note}"


def model_md(p: dict[str, Any]) -> str:
    pred = p.get("prediction")
    if not pred:
        return "No model prediction for this case."
    flags = ", ".join(k for k, v in (pred.get("flags") or {}).items() if v)
    return (f"Model **{pred['label']}** at {pred['score']:.2f} (uncertainty {pred['uncertainty']:.2f}) · "
            f"`{pred['model_version']}`" + (f" · input flags: {flags}" if flags else ""))


def terms_text(top_terms: Any, n: int = 8) -> str:
    """Top terms stored as [term, weight] pairs (or plain terms), as a comma list."""
    out = [t[0] if isinstance(t, (list, tuple)) else str(t) for t in (top_terms or [])[:n]]
    return ", ".join(out) or "—"


def entities_text(entities: Any, n: int = 4) -> str:
    """Shared entities per kind, most widespread first: `phone 0871… (7 items)`."""
    parts = []
    for kind, values in (entities or {}).items():
        shown = []
        for v in list(values or [])[:n]:
            if isinstance(v, dict):
                shown.append(f"{v.get('value')} ({v.get('items', '?')} items{'' if v.get('links', True) else ', too common to link'})")
            else:
                shown.append(str(v))
        if shown:
            parts.append(f"{kind}: " + "; ".join(shown))
    return " · ".join(parts) or "none"


def campaign_md(p: dict[str, Any]) -> str:
    camp = p.get("campaign")
    if not camp:
        return "Not part of a campaign."
    shown = entities_text(camp.get("entities"))
    why = f" · linked by {camp['linked_by']}" if camp.get("linked_by") else ""
    return (f"**Campaign {camp.get('id')}** · {camp.get('members', camp.get('size'))} items · first "
            f"{camp.get('first_seen') or '?'} · last {camp.get('last_seen') or '?'}{why}\n\nShared entities: {shown}\n\n"
            f"Top terms: {terms_text(camp.get('top_terms'))}")


def author_rows(p: dict[str, Any]) -> list[list[Any]]:
    return [[r["item_id"], r["created_at"], r["predicted"], r["decided"], r["action"], r["text"][:120]]
            for r in p["author"]["recent"]]


def similar_rows(p: dict[str, Any]) -> list[list[Any]]:
    return [[r["similarity"], r["label"], r["action"], r["reviewer"], (r["rationale"] or "")[:80], r["text"][:120]]
            for r in p["similar_decisions"]]


def build_app(store: Store, taxonomy: Taxonomy, analyst: str = "analyst", queue: Optional[str] = None) -> Any:
    """The Gradio Blocks app; every handler calls a service function and renders its result."""
    import gradio as gr

    from labeling.decisions import decide
    from . import review
    from .queue import QueueError, load_queue_config, next_case, release, skip

    qconfig = load_queue_config(taxonomy=taxonomy)
    settings = review.load_review_settings(taxonomy=taxonomy)
    labels = taxonomy.labels

    def queue_choices() -> list[tuple[str, str]]:
        counts = review.queue_overview(store)
        return [(f"{q} ({counts.get(q, 0)})", q) for q in qconfig.queues]

    empty = (None, "No case claimed. Pick a queue and press **Next** (n).", "", {}, "", "", [], [],
             gr.update(value=None), gr.update(choices=[], value=None), "", "")

    def render(packet: Optional[dict[str, Any]], message: str) -> tuple[Any, ...]:
        if packet is None:
            return (*empty[:1], message or empty[1], *empty[2:])
        pred = packet.get("prediction") or {}
        label = packet["suggested_label"]
        choice = packet["choices"][label]
        confidences = {k: float(v) for k, v in (pred.get("scores") or {}).items()}
        return (packet, header_md(packet) + (f"\n\n{message}" if message else ""), text_html(packet), confidences,
                model_md(packet), campaign_md(packet), author_rows(packet), similar_rows(packet),
                gr.update(value=label), gr.update(choices=choice["actions"], value=choice["default_action"]),
                choice["policy_ref"], "")

    def claim(who: str, queue: str, message: str = "") -> tuple[Any, ...]:
        if not who.strip():
            return render(None, "Enter your analyst name first.")
        try:
            case = next_case(store, who.strip(), queue, config=qconfig, detail=False)
        except QueueError as exc:
            return render(None, f"Warning: {exc}")
        if case is None:
            return render(None, f"{message}\n\nQueue **{queue}** is empty.".strip())
        return render(review.review_packet(store, taxonomy, case["id"], settings), message)

    def on_label(label: Optional[str]) -> tuple[Any, Any]:
        if not label:
            return gr.update(), ""
        pol = taxonomy.policies[label]
        return gr.update(choices=pol.actions, value=pol.default_action), pol.policy_ref

    def submit(packet: Optional[dict[str, Any]], who: str, queue: str, label: str, action: str,
               policy_ref: str, rationale: str) -> tuple[Any, ...]:
        if packet is None:
            return claim(who, queue)
        case_id = packet["case"]["id"]
        try:
            out = decide(store, taxonomy, case_id, who.strip(), label, action=action or None,
                         policy_ref=policy_ref or None, rationale=rationale or None, config=qconfig)
        except (QueueError, ValueError) as exc:
            # Keep everything the analyst typed: the packet and the form stay as they are.
            gr.Warning(str(exc))
            return (packet, header_md(packet) + f"\n\n**Not saved:** {exc}", *([gr.update()] * 10))
        n = len(out.get("decision_ids", []))
        return claim(who, queue, f"Saved: case {case_id}: {label} / {action or 'default action'}"
                                 f"{f' on {n} items' if n > 1 else ''}.")

    def confirm(packet: Optional[dict[str, Any]], who: str, queue: str) -> tuple[Any, ...]:
        if packet is None:
            return claim(who, queue)
        label = packet["suggested_label"]
        return submit(packet, who, queue, label, packet["choices"][label]["default_action"],
                      packet["choices"][label]["policy_ref"], "")

    def do_escalate(packet: Optional[dict[str, Any]], who: str, queue: str, rationale: str) -> tuple[Any, ...]:
        if packet is None:
            return render(None, "No case to escalate.")
        try:
            out = review.escalate_with_packet(store, taxonomy, packet["case"]["id"], who.strip(), rationale)
        except (QueueError, ValueError) as exc:
            gr.Warning(str(exc))
            return (packet, header_md(packet) + f"\n\n**Not escalated:** {exc}", *([gr.update()] * 10))
        return claim(who, queue, f"Escalated case {packet['case']['id']}: packet at `{out['packet_path']}`")

    def give_back(packet: Optional[dict[str, Any]], who: str, queue: str, skip_it: bool) -> tuple[Any, ...]:
        if packet is None:
            return render(None, "")
        try:
            (skip if skip_it else release)(store, packet["case"]["id"], who.strip(), config=qconfig)
        except QueueError as exc:
            return render(None, f"Warning: {exc}")
        verb = "Skipped" if skip_it else "Released"
        return claim(who, queue, f"{verb} case {packet['case']['id']}.") if skip_it else render(None, f"{verb} case {packet['case']['id']}.")

    def reveal(packet: Optional[dict[str, Any]], who: str) -> Any:
        if packet is None or not packet.get("item"):
            return gr.update()
        packet = dict(packet, masked=False, item=dict(packet["item"], text=review.reveal_text(store, packet["case"]["id"], who.strip())))
        return text_html(packet)

    # -- campaigns --------------------------------------------------------------------------
    def campaign_table() -> list[list[Any]]:
        from clustering.service import list_campaigns

        try:
            rows = list_campaigns(store, limit=100)
        except Exception as exc:  # noqa: BLE001 - no campaigns built yet
            return [[None, 0, str(exc), "", "", ""]]
        return [[r.get("id"), r.get("size"), campaign_text(r, r.get("exemplar_text") or "")[:100], r.get("first_seen"),
                 r.get("last_seen"), terms_text(r.get("top_terms"), 5)] for r in rows]

    def campaign_text(camp: dict[str, Any], text: str) -> str:
        # Campaign texts are masked like case texts, on the campaign's mean scores.
        return review.mask_text(text) if review.should_mask(settings, camp.get("mean_scores"), None) else text

    def show_campaign(campaign_id: Optional[float]) -> tuple[Any, ...]:
        from clustering.service import campaign_detail, campaign_timeline

        if campaign_id is None:
            return "Pick a campaign id.", None, []
        cid = int(campaign_id)
        try:
            d = campaign_detail(store, cid, members_limit=50, taxonomy=taxonomy)
            png = campaign_timeline(store, cid, png_path=store.path("plots", f"campaign-{cid}-timeline.png"))["png"]
        except Exception as exc:  # noqa: BLE001 - unknown id, no campaigns built yet
            return f"Warning: {exc}", None, []
        mean = d.get("mean_scores") or {}
        growth = d.get("growth") or {}
        md = (f"### Campaign {cid}: {d.get('size')} items ({d.get('status')})\n"
              f"**Exemplar:** {campaign_text(d, d.get('exemplar_text') or '')}\n\n"
              f"- first seen {d.get('first_seen')}, last seen {d.get('last_seen')}; growth: "
              f"{growth.get('last_hour', 0)} in the last hour, {growth.get('last_day', 0)} in the last day\n"
              f"- shared entities: {entities_text(d.get('entities'))}\n"
              f"- top terms: {terms_text(d.get('top_terms'))}\n"
              f"- why linked: {(d.get('link_reasons') or {}).get('members_by_reason', {})}\n"
              f"- model mean scores: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()) + "\n"
              f"- decided members: {d.get('decided', 0)}; label mix {d.get('label_mix') or {}}")
        members = [[m["item_id"], m["seen"], m["linked_by"], m["similarity"], m["decided_label"],
                    campaign_text(d, m["text"])[:120]] for m in d.get("members", [])]
        return md, png, members

    def act_on_campaign(campaign_id: Optional[float], who: str, label: str, action: str, rationale: str) -> str:
        if campaign_id is None:
            return "Pick a campaign id."
        case_id = review.campaign_case(store, int(campaign_id))
        if case_id is None:
            return f"Warning: Campaign {int(campaign_id)} has no waiting case (run `workbench cases build`)."
        try:
            out = decide(store, taxonomy, case_id, who.strip(), label, action=action or None,
                         rationale=rationale or None, config=qconfig)
        except (QueueError, ValueError) as exc:
            return f"Warning: Not saved: {exc}"
        return f"Saved: {label} / {action} applied to {len(out.get('decision_ids', []))} items of campaign {int(campaign_id)}."

    def evaluation() -> tuple[Any, ...]:
        from evaluation.report import write_report

        out = write_report(store, taxonomy, store.path("reports", "ui"))
        text = open(out["report"], encoding="utf-8").read().split("\n![")[0]
        plots = out["plots"]
        return text, plots.get("override_rate"), plots.get("reliability"), plots.get("score_drift")

    def kpis() -> tuple[Any, Any]:
        from evaluation.ops import ops_kpis

        data = ops_kpis(store)
        return data, review.queue_overview(store)

    with gr.Blocks(title="T&S workbench") as app:
        gr.Markdown("## Trust & Safety workbench")
        packet_state = gr.State(None)
        with gr.Tab("Review"):
            with gr.Row():
                who = gr.Textbox(value=analyst, label="Analyst", scale=1)
                waiting = review.queue_overview(store)
                busiest = max(qconfig.queues, key=lambda q: waiting.get(q, 0))
                queue = gr.Dropdown(choices=queue_choices(), value=queue or busiest, label="Queue", scale=2,
                                    elem_id="wb-queue", allow_custom_value=True)
                next_btn = gr.Button("Next case (n)", elem_id="wb-next", variant="primary", scale=1)
            header = gr.Markdown(empty[1])
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.HTML(elem_id="wb-text")
                    reveal_btn = gr.Button("Reveal text (r)", elem_id="wb-reveal", size="sm")
                with gr.Column(scale=2):
                    scores = gr.Label(label="Model scores", num_top_classes=len(labels))
                    model_info = gr.Markdown()
            with gr.Row():
                label_in = gr.Radio(choices=labels, label="Label")
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
            next_btn.click(claim, [who, queue], outputs)
            confirm_btn.click(confirm, [packet_state, who, queue], outputs)
            decide_btn.click(submit, [packet_state, who, queue, label_in, action_in, policy_in, rationale_in], outputs)
            escalate_btn.click(do_escalate, [packet_state, who, queue, rationale_in], outputs)
            skip_btn.click(lambda p, w, q: give_back(p, w, q, True), [packet_state, who, queue], outputs)
            release_btn.click(lambda p, w, q: give_back(p, w, q, False), [packet_state, who, queue], outputs)
            reveal_btn.click(reveal, [packet_state, who], [text])
            label_in.input(on_label, [label_in], [action_in, policy_in])

        with gr.Tab("Campaigns"):
            refresh = gr.Button("Refresh campaigns", size="sm")
            table = gr.Dataframe(headers=["id", "size", "exemplar", "first seen", "last seen", "top terms"],
                                 interactive=False, wrap=True)
            with gr.Row():
                camp_id = gr.Number(label="Campaign id", precision=0)
                show_btn = gr.Button("Show")
            camp_md = gr.Markdown()
            timeline = gr.Image(label="Timeline", type="filepath")
            members = gr.Dataframe(headers=["item", "seen", "linked by", "similarity", "decided", "text"],
                                   interactive=False, wrap=True)
            with gr.Row():
                bulk_label = gr.Radio(choices=labels, label="Label for the whole campaign")
                bulk_action = gr.Dropdown(choices=[], label="Action", allow_custom_value=True)
                bulk_rationale = gr.Textbox(label="Rationale")
            bulk_btn = gr.Button("Apply to the whole campaign", variant="stop")
            bulk_out = gr.Markdown()
            refresh.click(campaign_table, None, table)
            show_btn.click(show_campaign, [camp_id], [camp_md, timeline, members])
            bulk_label.input(lambda l: on_label(l)[0], [bulk_label], [bulk_action])
            bulk_btn.click(act_on_campaign, [camp_id, who, bulk_label, bulk_action, bulk_rationale], bulk_out)
            app.load(campaign_table, None, table)

        with gr.Tab("Evaluation"):
            eval_btn = gr.Button("Compute report", size="sm")
            eval_md = gr.Markdown("Model against human decisions: overrides, precision/recall, calibration, drift.")
            with gr.Row():
                override_png = gr.Image(label="Override rate per day", type="filepath")
                reliability_png = gr.Image(label="Calibration on human labels", type="filepath")
            drift_png = gr.Image(label="Score drift", type="filepath")
            eval_btn.click(evaluation, None, [eval_md, override_png, reliability_png, drift_png])

        with gr.Tab("Operations"):
            kpi_btn = gr.Button("Refresh", size="sm")
            kpi_json = gr.JSON(label="Queue KPIs")
            waiting_json = gr.JSON(label="Waiting cases per queue")
            kpi_btn.click(kpis, None, [kpi_json, waiting_json])
            app.load(kpis, None, [kpi_json, waiting_json])
    return app


def start_sweeper(store: Store, taxonomy: Taxonomy, every_seconds: int) -> Optional[threading.Event]:
    """Run `queue.sweep` every `every_seconds` in a daemon thread; set the returned event to stop."""
    if every_seconds <= 0:
        return None
    from .queue import sweep

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            try:
                sweep(store, taxonomy)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next sweep retries
                log.warning("queue sweep failed: %s", exc)

    threading.Thread(target=loop, name="queue-sweeper", daemon=True).start()
    return stop


def serve(store: Store, taxonomy: Taxonomy, host: str = "127.0.0.1", port: int = 7860, analyst: str = "analyst",
          queue: Optional[str] = None, block: bool = True) -> Any:
    """Launch the app (blocking unless `block=False`, for tests) with the periodic queue sweep."""
    from .review import load_review_settings

    app = build_app(store, taxonomy, analyst, queue)
    if block:
        start_sweeper(store, taxonomy, load_review_settings(taxonomy=taxonomy).sweep_every_seconds)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
               head=SHORTCUTS_JS, css=CSS, footer_links=[])
    return app
