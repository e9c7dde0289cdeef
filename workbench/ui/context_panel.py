"""The context panel of the Review tab: the policy's text, the item's decision history, the
author's other items, and notes and tags (with a box to add a note and tag the item or campaign).

Two functions make the interface the Review tab uses:

- `build_context_panel(app, case_state, who=None)` lays the panel out where it is called and
  wires its own buttons (the session's principal through `session.actor`; `who` is the Review
  tab's analyst box, for a store without accounts) and returns the components a case fills (the
  note and tag boxes are not among them: the page empties them when the case changes);
- `context_values(app, packet, principal)` returns their values for a review packet (None: no
  case), in the same order, so the Review tab can put them among its outputs.

Policy, history and the author's items are one HTML block made here (sections the analyst opens
and closes, remembered across cases by assets.SHORTCUTS_JS), the notes another: every output of
a key on the Review tab costs the page on every later event too (Gradio re-reads the loading
state of each component that ever was an output), so the panel has few of them (issue 17), and
no Markdown to render in the browser. Every cell is escaped here; times are `<time>` elements the
page shows in the viewer's local time (render.when).

Every value comes from `labeling.context.case_context` (masked unless this analyst revealed the
case); notes and tags are written by `labeling.notes`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from labeling.context import case_context
from labeling.notes import NOTES_COUNTED, add_note, add_tag, remove_tag

from .format import local_time, short
from .render import WRAP, esc, table_html, when
from .review_hold import STORE_ERRORS
from .session import actor
from .tab_access import one_line, refused

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

# A refusal, or a store that fails (busy, gone): said in one line, without its SQL (`one_line`).
ERRORS = (ValueError, PermissionDenied, *STORE_ERRORS)
# Few, wide columns: the panel sits in the Review tab's narrow right-hand column.
HISTORY_HEADERS = ["when · who", "decision", "rationale"]
AUTHOR_HEADERS = ["item · posted", "model → decided", "text"]
HISTORY_WIDTHS, AUTHOR_WIDTHS = ["30%", "35%", "35%"], ["30%", "32%", "38%"]
NO_CASE = "No case on screen."


class Html(str):
    """A table cell that is HTML made here (a `<time>` element and escaped text), not plain text."""


def section(key: str, title: str, body: str, open_: bool = True) -> str:
    """A section the analyst opens and closes; `data-acc` names it so the page keeps the choice
    from one case to the next (the panel is made anew for each case)."""
    return (f"<details class='wb-acc' data-acc='{key}'{' open' if open_ else ''}><summary>{html.escape(title)}"
            f"</summary>{body}</details>")


def policy_html(policy: Optional[dict[str, Any]]) -> str:
    """The suggested label's policy text: title, reference, tier, definition, guidance, examples."""
    if not policy:
        return f"<div>{NO_CASE}</div>"
    head = (f"<b>{esc(policy['label'])}</b> · <code>{esc(policy['policy_ref'])}</code> · "
            f"{esc(policy.get('severity') or 'no tier')} · {esc(policy['title'])}")
    if not policy.get("definition"):
        return f"<p>{head}</p><p>No policy text in configs/taxonomy.yaml for this policy.</p>"
    parts = [head, f"<b>Covers:</b> {esc(policy['definition'])}"]
    if policy.get("guidance"):
        parts.append(f"<b>Enforce:</b> {esc(policy['guidance'])}")
    examples = "".join(f"<li><i>Example:</i> “{esc(ex['text'])}” — {esc(ex['why'])}</li>"
                       for ex in policy.get("examples") or [])
    actions = f"Actions: {esc(', '.join(policy['actions']))} (default <b>{esc(policy['default_action'])}</b>)"
    return "".join(f"<p>{p}</p>" for p in parts) + (f"<ul>{examples}</ul>" if examples else "") + f"<p>{actions}</p>"


def history_rows(history: list[dict[str, Any]], cells: bool = False) -> list[list[Any]]:
    """Every decision on the item, oldest first, superseded ones marked. `cells`: the first
    column as HTML with a `<time>` the page shows in local time; else all plain text."""
    rows = []
    for h in history:
        status = "current" if h["current"] else (f"superseded by #{h['superseded_by']}" if h["superseded_by"] else "")
        stamp = (Html(f"{when(h['created_at'])} · {esc(h['reviewer'])}") if cells
                 else f"{local_time(h['created_at'])} · {h['reviewer']}")
        rows.append([stamp, f"#{h['id']} {h['label']} / {h['action']} ({h['kind']}) {status}".strip(),
                     short(h.get("rationale") or "—", 160)])
    return rows


def author_line(author: dict[str, Any]) -> str:
    if not author.get("author_id"):
        return "No author recorded for this item."
    return (f"Author <code>{esc(author['author_id'])}</code>: {author['items']} other items, {author['decided']} "
            f"decided, <b>{author['violations']}</b> enforced against.")


def author_rows(author: dict[str, Any]) -> list[list[Any]]:
    return [[Html(f"{esc(r['item_id'])} · {when(r['created_at'])}"),
             f"{r['predicted'] or '—'} → " + (f"{r['decided']} / {r['action']} by {r['reviewer']}" if r["decided"] else "—"),
             short(r["text"], 140)] for r in author.get("recent", [])]


def rows_html(headers: list[str], rows: list[list[Any]], empty: str, widths: list[str], case_id: Any = "") -> str:
    """Rows as a plain HTML table rendered here, every text cell escaped (a cell is text, never
    markup; an `Html` cell was made here). Why not gr.Dataframe: two of them re-rendered on every
    case cost the page more than the rest of the case together (issue 17); `data-case` says which
    case the table belongs to."""
    cells = [[c if isinstance(c, Html) else esc(str(c)) for c in r] for r in rows]
    return (f"<div class='wb-ctx-table' data-case='{html.escape(str(case_id or ''))}'>"
            f"{table_html(headers, cells, empty, widths)}</div>")


def history_html(history: list[dict[str, Any]], case_id: Any = "") -> str:
    return rows_html(HISTORY_HEADERS, history_rows(history, cells=True), "No decisions on this item yet.",
                     HISTORY_WIDTHS, case_id)


def author_table_html(author: dict[str, Any], case_id: Any = "") -> str:
    return rows_html(AUTHOR_HEADERS, author_rows(author), "No other items of this author.", AUTHOR_WIDTHS, case_id)


def panel_html(ctx: Optional[dict[str, Any]]) -> str:
    """Policy, history and author sections in one block (None: no case on screen)."""
    ctx = ctx or {}
    case_id = ctx.get("case_id") or ""
    author = ctx.get("author") or {}
    return (f"<div class='wb-ctx' data-case='{html.escape(str(case_id))}' {WRAP}>"
            + section("policy", "Policy", f"<div id='wb-ctx-policy'>{policy_html(ctx.get('policy'))}</div>")
            + section("history", "Item history (every decision, superseded ones too)",
                      f"<div id='wb-ctx-history'>{history_html(ctx.get('history') or [], case_id)}</div>")
            + section("author", "Author's other items and past decisions",
                      f"<div id='wb-ctx-author'><div class='wb-sub'>{author_line(author) if ctx else NO_CASE}</div>"
                      f"{author_table_html(author, case_id)}</div>", open_=False)
            + "</div>")


def notes_html(ctx: dict[str, Any]) -> str:
    """Notes of the item and its campaign, oldest first (the newest `labeling.notes.NOTES_SHOWN` of each, with how
    many older ones are not shown), and their tags: text as typed, never markup."""
    parts = []
    for kind, title in (("item", f"item <code>{esc(ctx.get('item_id'))}</code>"),
                        ("campaign", f"campaign {esc(ctx.get('campaign_id'))}")):
        if kind == "campaign" and not ctx.get("campaign_id"):
            continue
        if kind == "item" and not ctx.get("item_id"):
            continue
        tags = ctx["tags"][kind]
        lines = older_line(kind, (ctx.get("notes_older") or {}).get(kind, 0), ctx) + "".join(
            f"<li>{when(n['created_at'])} <b>{esc(n['author'])}</b>: {esc(n['body'])}</li>"
            for n in ctx["notes"][kind]) or "<li>no notes yet</li>"
        parts.append(f"<div><b>On {title}</b> · tags: "
                     + (", ".join(f"<code>{esc(t)}</code>" for t in tags) if tags else "none") + f"<ul>{lines}</ul></div>")
    return f"<div class='wb-notes' {WRAP}>{''.join(parts) or 'No notes.'}</div>"


def older_line(kind: str, older: int, ctx: dict[str, Any]) -> str:
    """Above the newest notes: how many older ones are not shown, and where to read them all (the
    panel lists the newest `labeling.notes.NOTES_SHOWN`, counting older ones up to `NOTES_COUNTED`)."""
    if not older:
        return ""
    many = f"{NOTES_COUNTED:,}+" if older >= NOTES_COUNTED else f"{older:,}"
    target = ctx.get("item_id") if kind == "item" else ctx.get("campaign_id")
    return (f"<li class='wb-notes-older'><i>{many} older notes not shown: <code>workbench notes {kind} "
            f"{esc(target)}</code> lists them all.</i></li>")


def _targets(ctx: dict[str, Any]) -> list[str]:
    return [k for k, v in (("item", ctx.get("item_id")), ("campaign", ctx.get("campaign_id"))) if v]


def context_values(app: "AppContext", packet: Optional[dict[str, Any]], principal: Any) -> tuple[Any, ...]:
    """Values for the panel's components (the order `build_context_panel` returns them) for a
    review packet, or the empty panel for None."""
    if not packet or not (packet.get("case") or {}).get("id"):
        return panel_html(None), "<div class='wb-notes'>No notes.</div>", gr.update(choices=["item"], value="item")
    try:
        ctx = case_context(app.store(), app.taxonomy(), int(packet["case"]["id"]), principal, app.review())
    except ERRORS as exc:  # the key's own answer (a decision saved) stands: the panel says why it is empty
        why = esc(f"Context not shown: {one_line(exc, 'open the case again to see it')}")
        return (f"<div class='wb-ctx' data-case='' {WRAP}>{why}</div>", "<div class='wb-notes'>No notes.</div>",
                gr.update(choices=["item"], value="item"))
    targets = _targets(ctx) or ["item"]
    default = "campaign" if packet["case"].get("campaign_id") is not None and "campaign" in targets else targets[0]
    return panel_html(ctx), notes_html(ctx), gr.update(choices=targets, value=default)


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
        gr.Info(html.escape(message))  # a toast is HTML: the tag or error may quote what was typed
        try:
            ctx = case_context(app.store(), app.taxonomy(), int(packet["case"]["id"]), who_acts, app.review())
        except ERRORS:  # saved all the same (the toast says so): the list shows it when read again
            return gr.update(), ""
        return notes_html(ctx), ""

    def on_note(packet: Optional[dict[str, Any]], target: str, body: str, name: str,
                request: gr.Request) -> tuple[Any, ...]:
        if not packet:
            return gr.update(), gr.update()
        try:
            who_acts = principal(name, packet, request)
            add_note(app.store(), target, target_id(packet, target), body, who_acts)
            return refreshed(packet, who_acts, f"Note added to the {target}.")
        except ERRORS as exc:
            refused(app, name, request, f"note on {target} {target_id(packet, target)}", exc)  # audited
            gr.Warning(html.escape(f"Note not added: {one_line(exc, 'nothing was saved: try again')}"))
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
            refused(app, name, request, f"{'untag' if remove else 'tag'} {target} {target_id(packet, target)}", exc)
            said = one_line(exc, "nothing was changed: try again")
            gr.Warning(html.escape(f"Tag not {'removed' if remove else 'added'}: {said}"))
            return gr.update(), gr.update()

    panel = gr.HTML(panel_html(None), js_on_load=None, elem_id="wb-ctx-panel")
    with gr.Accordion("Notes and tags", open=True):
        notes = gr.HTML("<div class='wb-notes'>No notes.</div>", js_on_load=None, elem_id="wb-ctx-notes")
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
    return [panel, notes, target]
