"""The context panel of the Review tab: the policy's text, the item's decision history, the
author's other items, and notes and tags (with a box to add a note and tag the item or campaign).

Two functions make the interface the Review tab uses:

- `build_context_panel(app, case_state, who=None)` lays the panel out where it is called and
  wires its own buttons (the session's principal through `session.actor`; `who` is the Review
  tab's analyst box, for a store without accounts) and returns the displayed components;
- `context_values(app, packet, principal)` returns their values for a review packet (None: no
  case), in the same order, so the Review tab can put them among its outputs.

Every value comes from `labeling.context.case_context` (masked unless this analyst revealed the
case); notes and tags are written by `labeling.notes`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from labeling.context import case_context
from labeling.notes import add_note, add_tag, remove_tag

from .format import local_time, md_escape, short, zone_name
from .render import table_html
from .session import actor

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

ERRORS = (ValueError, PermissionDenied)
# Few, wide columns: the panel sits in the Review tab's narrow right-hand column.
HISTORY_HEADERS = ["when · who", "decision", "rationale"]
AUTHOR_HEADERS = ["item · posted", "model → decided", "text"]
HISTORY_WIDTHS, AUTHOR_WIDTHS = ["30%", "35%", "35%"], ["30%", "32%", "38%"]
NO_CASE = "No case on screen."


def policy_md(policy: Optional[dict[str, Any]]) -> str:
    """The suggested label's policy text: title, reference, tier, definition, guidance, examples."""
    if not policy:
        return NO_CASE
    head = (f"**{policy['label']}** · `{policy['policy_ref']}` · {policy.get('severity') or 'no tier'} · "
            f"{md_escape(policy['title'])}")
    if not policy.get("definition"):
        return head + "\n\nNo policy text in configs/taxonomy.yaml for this policy."
    parts = [head, f"**Covers:** {md_escape(policy['definition'])}"]
    if policy.get("guidance"):
        parts.append(f"**Enforce:** {md_escape(policy['guidance'])}")
    for ex in policy.get("examples") or []:
        parts.append(f"- *Example:* “{md_escape(ex['text'])}” — {md_escape(ex['why'])}")
    parts.append(f"Actions: {', '.join(policy['actions'])} (default **{policy['default_action']}**)")
    return "\n\n".join(parts)


def history_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    """Every decision on the item, oldest first, superseded ones marked."""
    rows = []
    for h in history:
        status = "current" if h["current"] else (f"superseded by #{h['superseded_by']}" if h["superseded_by"] else "")
        rows.append([f"{local_time(h['created_at'])} · {h['reviewer']}",
                     f"#{h['id']} {h['label']} / {h['action']} ({h['kind']}) {status}".strip(),
                     short(h.get("rationale") or "—", 160)])
    return rows


def author_md(author: dict[str, Any]) -> str:
    if not author.get("author_id"):
        return "No author recorded for this item."
    return (f"Author `{md_escape(author['author_id'])}`: {author['items']} other items, {author['decided']} decided, "
            f"**{author['violations']}** enforced against.")


def author_rows(author: dict[str, Any]) -> list[list[Any]]:
    return [[f"{r['item_id']} · {local_time(r['created_at'])}",
             f"{r['predicted'] or '—'} → " + (f"{r['decided']} / {r['action']} by {r['reviewer']}" if r["decided"] else "—"),
             short(r["text"], 140)] for r in author.get("recent", [])]


def rows_html(headers: list[str], rows: list[list[Any]], empty: str, widths: list[str], case_id: Any = "",
              caption: str = "") -> str:
    """Rows as a plain HTML table rendered here, every cell escaped (a cell is text, never markup).
    Why not gr.Dataframe: two of them re-rendered on every case cost the page more than the rest
    of the case together (issue 17); `data-case` says which case the table belongs to."""
    cells = [[html.escape(str(c)) for c in r] for r in rows]
    cap = f"<div class='wb-sub'>{html.escape(caption)}</div>" if caption else ""
    return (f"<div class='wb-ctx-table' data-case='{html.escape(str(case_id or ''))}'>{cap}"
            f"{table_html(headers, cells, empty, widths)}</div>")


def history_html(history: list[dict[str, Any]], case_id: Any = "") -> str:
    return rows_html(HISTORY_HEADERS, history_rows(history), "No decisions on this item yet.", HISTORY_WIDTHS,
                     case_id, f"times in {zone_name()}")


def author_table_html(author: dict[str, Any], case_id: Any = "") -> str:
    return rows_html(AUTHOR_HEADERS, author_rows(author), "No other items of this author.", AUTHOR_WIDTHS, case_id)


def notes_md(ctx: dict[str, Any]) -> str:
    """Notes of the item and its campaign, oldest first, and their tags."""
    parts = []
    for kind, title in (("item", f"item `{md_escape(ctx.get('item_id'))}`"),
                        ("campaign", f"campaign {ctx.get('campaign_id')}")):
        if kind == "campaign" and not ctx.get("campaign_id"):
            continue
        if kind == "item" and not ctx.get("item_id"):
            continue
        tags = ctx["tags"][kind]
        lines = [f"**On {title}** · tags: " + (", ".join(f"`{md_escape(t)}`" for t in tags) if tags else "none")]
        lines += [f"- {local_time(n['created_at'])} **{md_escape(n['author'])}**: {md_escape(n['body'])}"
                  for n in ctx["notes"][kind]] or ["- no notes yet"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "No notes."


def _targets(ctx: dict[str, Any]) -> list[str]:
    return [k for k, v in (("item", ctx.get("item_id")), ("campaign", ctx.get("campaign_id"))) if v]


def context_values(app: "AppContext", packet: Optional[dict[str, Any]], principal: Any) -> tuple[Any, ...]:
    """Values for the panel's components (the order `build_context_panel` returns them) for a
    review packet, or the empty panel for None."""
    if not packet or not (packet.get("case") or {}).get("id"):
        return (NO_CASE, "", author_table_html({}), history_html([]), "", gr.update(choices=["item"], value="item"),
                "", "")
    ctx = case_context(app.store(), app.taxonomy(), int(packet["case"]["id"]), principal, app.review())
    targets = _targets(ctx) or ["item"]
    default = "campaign" if packet["case"].get("campaign_id") is not None and "campaign" in targets else targets[0]
    case_id = int(packet["case"]["id"])
    return (policy_md(ctx["policy"]), author_md(ctx["author"]), author_table_html(ctx["author"], case_id),
            history_html(ctx["history"], case_id), notes_md(ctx), gr.update(choices=targets, value=default), "", "")


def build_context_panel(app: "AppContext", case_state: gr.State, who: Optional[gr.Textbox] = None) -> list[gr.Component]:
    """Lay the panel out here and wire its note and tag buttons; returns the displayed components."""
    who_in = who if who is not None else gr.State("")

    def principal(name: str, packet: Optional[dict[str, Any]], request: gr.Request) -> Any:
        # On a store without accounts, the analyst box names the actor (else the case's claimant).
        if not app.has_users() and not (name or "").strip():
            name = ((packet or {}).get("case") or {}).get("claimed_by") or ""
        return actor(app, name, request)

    def target_id(packet: dict[str, Any], target: str) -> Any:
        ctx_case = packet.get("case") or {}
        if target == "campaign":
            return ctx_case.get("campaign_id") or (packet.get("campaign") or {}).get("id")
        return (packet.get("item") or {}).get("id") or ctx_case.get("item_id")

    def refreshed(packet: dict[str, Any], who_acts: Any, message: str) -> tuple[Any, Any]:
        """The notes list again, and the box that was used emptied."""
        gr.Info(message)
        ctx = case_context(app.store(), app.taxonomy(), int(packet["case"]["id"]), who_acts, app.review())
        return notes_md(ctx), ""

    def on_note(packet: Optional[dict[str, Any]], target: str, body: str, name: str,
                request: gr.Request) -> tuple[Any, ...]:
        if not packet:
            return gr.update(), gr.update()
        try:
            who_acts = principal(name, packet, request)
            add_note(app.store(), target, target_id(packet, target), body, who_acts)
            return refreshed(packet, who_acts, f"Note added to the {target}.")
        except ERRORS as exc:
            gr.Warning(f"Note not added: {exc}")
            return gr.update(), gr.update()

    def on_tag(packet: Optional[dict[str, Any]], target: str, tag: str, name: str, remove: bool,
               request: gr.Request) -> tuple[Any, ...]:
        if not packet:
            return gr.update(), gr.update()
        try:
            who_acts = principal(name, packet, request)
            fn = remove_tag if remove else add_tag
            out = fn(app.store(), target, target_id(packet, target), tag, who_acts)
            return refreshed(packet, who_acts, f"Tag {out['tag']!r} {'removed from' if remove else 'on'} the {target}.")
        except ERRORS as exc:
            gr.Warning(f"Tag not {'removed' if remove else 'added'}: {exc}")
            return gr.update(), gr.update()

    with gr.Accordion("Policy", open=True):
        policy = gr.Markdown(NO_CASE, elem_id="wb-ctx-policy")
    with gr.Accordion("Item history (every decision, superseded ones too)", open=True):
        history = gr.HTML(history_html([]), js_on_load=None, elem_id="wb-ctx-history")
    with gr.Accordion("Author's other items and past decisions", open=False):
        author_info = gr.Markdown()
        author = gr.HTML(author_table_html({}), js_on_load=None, elem_id="wb-ctx-author")
    with gr.Accordion("Notes and tags", open=True):
        notes = gr.Markdown("No notes.", elem_id="wb-ctx-notes")
        note_box = gr.Textbox(label="Note (kept for good, visible to the team)", lines=2, elem_id="wb-ctx-note")
        with gr.Row(equal_height=True):
            target = gr.Radio(choices=["item"], value="item", label="On", scale=2, min_width=120,
                              elem_id="wb-ctx-note-target", container=False)
            note_btn = gr.Button("Add note", size="sm", scale=1, min_width=90, elem_id="wb-ctx-add-note")
        with gr.Row(equal_height=True):
            tag_box = gr.Textbox(placeholder="tag, e.g. bank-impersonation", show_label=False, scale=2, min_width=120,
                                 elem_id="wb-ctx-tag", container=False)
            tag_btn = gr.Button("Add tag", size="sm", scale=1, min_width=80, elem_id="wb-ctx-add-tag")
            untag_btn = gr.Button("Remove tag", size="sm", scale=1, min_width=90, elem_id="wb-ctx-remove-tag")
    note_btn.click(on_note, [case_state, target, note_box, who_in], [notes, note_box])
    def add_tag_cb(packet: Optional[dict[str, Any]], target: str, tag: str, name: str,
                   request: gr.Request) -> tuple[Any, ...]:
        return on_tag(packet, target, tag, name, False, request)

    def remove_tag_cb(packet: Optional[dict[str, Any]], target: str, tag: str, name: str,
                      request: gr.Request) -> tuple[Any, ...]:
        return on_tag(packet, target, tag, name, True, request)

    tag_btn.click(add_tag_cb, [case_state, target, tag_box, who_in], [notes, tag_box])
    untag_btn.click(remove_tag_cb, [case_state, target, tag_box, who_in], [notes, tag_box])
    return [policy, author_info, author, history, notes, target, note_box, tag_box]
