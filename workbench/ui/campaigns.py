"""The Campaigns tab: the list of campaigns, one campaign's facts and timeline plot, and one
decision applied to the whole campaign (its campaign case, decided in bulk)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from clustering.explore import campaign_detail, campaign_timeline, list_campaigns
from labeling.cases import campaign_case
from labeling.decisions import bulk_preview, decide
from labeling.masking import mask_text, should_mask

from .render import campaign_detail_md, terms_text
from .session import actor
from .review import SERVICE_ERRORS

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def build_campaigns_tab(app: "AppContext", blocks: gr.Blocks, who: gr.Textbox) -> None:
    """Lay out the Campaigns tab inside `blocks` and wire it; `who` is the Review tab's analyst box."""
    store, taxonomy = app.store(), app.taxonomy()

    def shown(camp: dict[str, Any], text: str) -> str:
        # Campaign texts are masked like case texts, on the campaign's mean scores.
        return mask_text(text) if should_mask(app.review(), camp.get("mean_scores"), None) else text

    def campaign_table() -> list[list[Any]]:
        try:
            rows = list_campaigns(store, limit=100)
        except Exception as exc:  # noqa: BLE001 - no campaigns built yet
            return [[None, 0, str(exc), "", "", ""]]
        return [[r.get("id"), r.get("size"), shown(r, r.get("exemplar_text") or "")[:100], r.get("first_seen"),
                 r.get("last_seen"), terms_text(r.get("top_terms"), 5)] for r in rows]

    def show_campaign(campaign_id: Optional[float]) -> tuple[Any, ...]:
        if campaign_id is None:
            return "Pick a campaign id.", None, []
        cid = int(campaign_id)
        try:
            d = campaign_detail(store, cid, members_limit=50, taxonomy=taxonomy)
            png = campaign_timeline(store, cid, png_path=store.path("plots", f"campaign-{cid}-timeline.png"))["png"]
        except Exception as exc:  # noqa: BLE001 - unknown id, no campaigns built yet
            return f"Warning: {exc}", None, []
        members = [[m["item_id"], m["seen"], m["linked_by"], m["similarity"], m["decided_label"],
                    shown(d, m["text"])[:120]] for m in d.get("members", [])]
        return campaign_detail_md(d, shown(d, d.get("exemplar_text") or "")) + preview_md(cid), png, members

    def preview_md(cid: int) -> str:
        """What applying a decision would do, said before the button is pressed."""
        case_id = campaign_case(store, cid)
        if case_id is None:
            return "\n\nNo waiting campaign case: nothing to apply."
        p = bulk_preview(store, case_id, "")
        held = len(p["held_by_others"])
        decided = ", ".join(f"{n} {lab}" for lab, n in p["already_decided_labels"].items())
        return (f"\n\n**Applying a decision** labels {p['members'] - held} of {p['members']} members"
                + (f"; {held} held by other analysts are left out" if held else "")
                + (f"; {p['already_decided']} already decided ({decided}) get a superseding decision, "
                   "or are left out if you tick the box" if p["already_decided"] else "") + ".")

    def on_label(label: Optional[str]) -> Any:
        if not label:
            return gr.update()
        pol = taxonomy.policies[label]
        return gr.update(choices=pol.actions, value=pol.default_action)

    def act_on_campaign(campaign_id: Optional[float], who: str, label: str, action: str, rationale: str,
                        keep_decided: bool, request: gr.Request) -> str:
        if campaign_id is None:
            return "Pick a campaign id."
        case_id = campaign_case(store, int(campaign_id))
        if case_id is None:
            return f"Warning: Campaign {int(campaign_id)} has no waiting case (run `workbench cases build`)."
        try:
            out = decide(store, taxonomy, case_id, actor(app, who, request), label, action=action or None,
                         rationale=rationale or None, config=app.queues(),
                         existing="skip" if keep_decided else "supersede")
        except SERVICE_ERRORS as exc:
            return f"Warning: Not saved: {exc}"
        bulk = out.get("bulk") or {}
        left = [f"{len(bulk[k])} {what}" for k, what in (("skipped_held", "held by other analysts"),
                                                         ("skipped_decided", "already decided")) if bulk.get(k)]
        return (f"Saved: {label} / {action} applied to {len(out.get('decision_ids', []))} items of campaign "
                f"{int(campaign_id)}" + (f"; left out {', '.join(left)}" if left else "")
                + (f"; superseded {bulk['superseded']} earlier decisions" if bulk.get("superseded") else "") + ".")

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
        bulk_label = gr.Radio(choices=taxonomy.labels, label="Label for the whole campaign")
        bulk_action = gr.Dropdown(choices=[], label="Action", allow_custom_value=True)
        bulk_rationale = gr.Textbox(label="Rationale")
        bulk_keep = gr.Checkbox(label="Leave out members already decided", value=False)
    bulk_btn = gr.Button("Apply to the whole campaign", variant="stop")
    bulk_out = gr.Markdown()
    refresh.click(campaign_table, None, table)
    show_btn.click(show_campaign, [camp_id], [camp_md, timeline, members])
    bulk_label.input(on_label, [bulk_label], [bulk_action])
    bulk_btn.click(act_on_campaign, [camp_id, who, bulk_label, bulk_action, bulk_rationale, bulk_keep], bulk_out)
    blocks.load(campaign_table, None, table)
