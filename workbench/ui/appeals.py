"""The Appeals tab: a lead reads an open appeal (the original decision and its rationale beside
the appellant's reason) and confirms the decision or reverses it, with a rationale.

The rules are the service's (`labeling.appeals.resolve_appeal`): `resolve_appeal` permission
(leads), and nobody resolves an appeal of an item they decided (separation of duties); a refusal
is shown beside the button, in the service's words.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from labeling.appeals import open_appeals, resolve_appeal
from labeling.packets import reveal_text

from .format import local_time, md_escape, short, zone_name
from .review_hold import STORE_ERRORS
from .role_controls import held, may
from .session import actor
from .tab_access import check_reader, one_line, refused, row_id, said

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

HEADERS = ["case", "item", "filed", "due", "decision", "decided by", "appellant's reason"]
OUTCOMES = [("Confirm the decision (appeal denied)", "confirm"), ("Reverse it (appeal upheld)", "reverse")]


def appeal_rows(appeals: list[dict[str, Any]]) -> list[list[Any]]:
    return [[a["case_id"], a["item_id"], local_time(a["filed_at"]), local_time(a["due_at"]),
             f"{a['decision'].get('label')} / {a['decision'].get('action')}", a["decision"].get("reviewer") or "—",
             short(a["reason"], 120)] for a in appeals]


def side_by_side(a: Optional[dict[str, Any]]) -> tuple[str, str, str]:
    """(the item, the original decision, the appellant's reason) as three Markdown panes."""
    if a is None:
        return "Pick an open appeal.", "", ""
    d = a["decision"]
    item = (f"**Case {md_escape(a['case_id'])}** · item `{md_escape(a['item_id'])}`\n\n> {md_escape(a['text'])}"
            + ("\n\n*Masked: possibly offensive, with the reason and rationale that quote it (Reveal text: "
               "audited).*" if a["masked"] else ""))
    original = (f"**Original decision #{md_escape(d.get('id'))}**: **{md_escape(d.get('label'))} / "
                f"{md_escape(d.get('action'))}** ({md_escape(d.get('policy_ref') or 'no policy ref')})\n\n"
                f"by **{md_escape(d.get('reviewer'))}**, "
                f"{local_time(d.get('created_at'), zone=True)}, kind {md_escape(d.get('kind'))}\n\n"
                f"**Rationale:** {md_escape(d.get('rationale') or '— none given —')}" + since_filed(a))
    reason = (f"**Appellant:** {md_escape(a.get('appellant'))}, filed {local_time(a.get('filed_at'), zone=True)}\n\n"
              f"**Reason:** {md_escape(a.get('reason'))}\n\nDue {local_time(a.get('due_at'), zone=True)}")
    return item, original, reason


def since_filed(a: dict[str, Any]) -> str:
    """The item's decision now, when another than the appealed one (a correction since): what a
    confirmation keeps and a reversal replaces, so the lead reads it before resolving."""
    if a["still_current"]:
        return ""
    now = a.get("current")
    if not now:
        return "\n\n*The item has no decision any more: this appeal cannot be resolved.*"
    return (f"\n\n**Corrected since the appeal was filed:** now decision #{md_escape(now.get('id'))}, "
            f"**{md_escape(now.get('label'))} / {md_escape(now.get('action'))}** "
            f"by **{md_escape(now.get('reviewer'))}**, "
            f"{local_time(now.get('created_at'), zone=True)}: confirming keeps it, reversing replaces it.\n\n"
            f"**Its rationale:** {md_escape(now.get('rationale') or '— none given —')}")


def shown(a: Optional[dict[str, Any]], seen: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The tab's state once `a` is on screen (None: nothing is): the case and the item's decision
    it shows as current, which resolving checks; a case just saved is kept (`resolve`)."""
    if a is None:
        return {k: v for k, v in (seen or {}).items() if k == "saved"}
    return {"case": a["case_id"], "decision": a["current_id"]}


def build_appeals_tab(app: "AppContext", tab: gr.Tab, who: Optional[gr.Textbox] = None) -> None:
    """Lay out the Appeals tab and wire it; `who` is the Review tab's analyst box. The list loads
    each time `tab` is opened (not on page load: see `build_campaigns_tab`)."""
    taxonomy = app.taxonomy()
    who_in = who if who is not None else gr.State("")

    def viewer(name: str, request: Optional[gr.Request]) -> Any:
        """Who reads the appeals: texts, reasons and rationales unmask only for their own reveal."""
        try:
            return actor(app, name or "", request)
        except PermissionDenied:
            return None

    def listing(name: str, request: gr.Request) -> tuple[Any, Any]:
        try:
            check_reader(app, name, request, "appeals")  # a session ended, or a role without `read`
            appeals = open_appeals(app.store(), app.review(), config=app.queues(), principal=viewer(name, request))
        except (PermissionDenied, *STORE_ERRORS) as exc:
            return [], gr.update(choices=[], value=None, label=f"Not shown: {one_line(exc, 'refresh appeals')}")
        label = f"Appeal to decide ({len(appeals)} open)" if appeals else "No open appeals"
        return (appeal_rows(appeals), gr.update(choices=[(f"case {a['case_id']} · {a['item_id']}", a["case_id"])
                                                          for a in appeals], value=None, label=label))

    def open_appeal(case_id: Any, name: str, request: Optional[gr.Request]) -> Optional[dict[str, Any]]:
        """The open appeal `case_id` as the list offers it to this viewer; None for any other case id
        (resolved since, never an appeal, or not one of the choices a client was offered)."""
        if case_id is None:
            return None
        check_reader(app, name, request, "appeals")
        return next((a for a in open_appeals(app.store(), app.review(), config=app.queues(),
                                             principal=viewer(name, request)) if a["case_id"] == case_id), None)

    def show(case_id: Optional[int], name: str, request: gr.Request, seen: Optional[dict[str, Any]] = None
             ) -> tuple[Any, ...]:
        """The picked appeal; another appeal than the one on screen starts the outcome, label,
        action and rationale afresh (what was typed for one appeal must not resolve the next)."""
        keep = (gr.update(),) * 4
        try:
            found = open_appeal(case_id, name, request)
        except (PermissionDenied, *STORE_ERRORS) as exc:
            return (*side_by_side(None), *keep, shown(None, seen),
                    f"**Not shown:** {said(exc, 'pick the appeal again')}")
        if found is None:  # nothing picked (or just resolved): keep the result line as it is
            return (*side_by_side(None), *keep, shown(None, seen), gr.update())
        if (seen or {}).get("case") == found["case_id"]:  # the same appeal again: what was typed stays
            return (*side_by_side(found), *keep, shown(found, seen), "")
        # nothing pre-picked: the lead picks the outcome, and a reversal's label (`resolve`)
        return (*side_by_side(found), gr.update(value=None), gr.update(choices=[], value=None), gr.update(value=None),
                gr.update(value=""), shown(found, seen), "")

    def reveal(case_id: Optional[int], name: str, request: gr.Request, seen: Optional[dict[str, Any]] = None
               ) -> tuple[Any, ...]:
        """The appeal's text, reason and rationale unmasked for this lead (`reveal`; audited); what
        they chose or typed to resolve it stays."""
        if case_id is None:
            return (*side_by_side(None), shown(None, seen), "**Pick an appeal first.**")
        try:
            found = open_appeal(case_id, name, request)
        except (PermissionDenied, *STORE_ERRORS) as exc:
            return (gr.update(),) * 3 + (seen, f"**Not revealed:** {said(exc, 'nothing was revealed: try again')}")
        if found is None:  # a reveal is audited and counts toward exposure
            return (gr.update(),) * 3 + (seen, f"**Not revealed:** case {md_escape(case_id)} is not an open appeal "
                                               "(resolved since, or never one): Refresh appeals.")
        try:
            reveal_text(app.store(), int(case_id), actor(app, name, request), taxonomy=app.taxonomy(),
                        settings=app.review())
        except (ValueError, PermissionDenied, *STORE_ERRORS) as exc:
            refused(app, name, request, f"reveal case {case_id}", exc)  # audited: who tried what
            return (gr.update(),) * 3 + (seen, f"**Not revealed:** {said(exc, 'nothing was revealed: try again')}")
        try:
            found = open_appeal(case_id, name, request)
        except (PermissionDenied, *STORE_ERRORS) as exc:
            return (gr.update(),) * 3 + (seen, f"**Revealed, not shown:** {said(exc, 'press Reveal again')}")
        return (*side_by_side(found), shown(found, seen), "")

    def on_label(label: Optional[str]) -> Any:
        if not label or label not in taxonomy.policies:  # a client may send any value: no KeyError
            return gr.update()
        pol = taxonomy.policies[label]
        return gr.update(choices=pol.actions, value=pol.default_action)

    def unpicked(outcome: Optional[str], label: Optional[str], action: Optional[str]) -> Optional[str]:
        """What the lead has still to pick, in one line (None: nothing). No outcome is pre-set, and
        a reversal needs its label and action picked: a pre-set "confirm", or a reversal to the
        benign label nobody chose, saved a decision the lead never made (audit: appeal 668)."""
        if outcome not in {v for _, v in OUTCOMES}:
            return "pick an outcome first: confirm the decision (appeal denied) or reverse it (appeal upheld)"
        if outcome == "reverse" and (not label or label not in taxonomy.policies):
            return "pick the label the item gets when reversed (Label if reversed), then its action"
        if outcome == "reverse" and (not action or action not in taxonomy.policies[label].actions):
            return f"pick the action for {label} (Action if reversed)"
        return None

    def resolve(case_id: Optional[int], outcome: str, label: str, action: str, rationale: str, name: str,
                request: gr.Request, seen: Optional[dict[str, Any]] = None) -> tuple[Any, ...]:
        """Resolve the appeal on screen. `seen` is what the tab shows (its state; None for a direct
        call): another case, or an item whose decision changed since it was shown, is refused; the
        button pressed again on the appeal just saved keeps its Saved line."""
        keep = (gr.update(),) * 3
        if case_id is None:
            return ("**Pick an appeal first.**", *keep, seen)
        try:
            case_id = row_id(case_id, "appeal's case id")  # 1e30 or inf failed in int() or the store's query
            if seen is not None and seen.get("saved") == case_id:
                return (gr.update(), *keep, seen)  # the same press twice: saved once, said once
            if seen is not None and seen.get("case") != case_id:
                raise ValueError(f"case {case_id} is not the appeal shown: pick it and read it before resolving")
            if (why := unpicked(outcome, label, action)) is not None:
                raise ValueError(why)
            reverse = outcome == "reverse"  # a confirmation keeps the decision: the label boxes say nothing
            out = resolve_appeal(app.store(), taxonomy, case_id, actor(app, name, request), outcome, rationale,
                                 label=label if reverse else None, action=action if reverse else None, config=app.queues(),
                                 seen_decision=(seen or {}).get("decision"))
        except (ValueError, PermissionDenied, *STORE_ERRORS) as exc:
            refused(app, name, request, f"resolve_appeal case {case_id}", exc)  # audited: who tried what
            return (f"**Not resolved:** {said(exc, 'nothing was saved: resolve again')}", *keep, seen)
        rows, choices = listing(name, request)
        verb = "reversed (appeal upheld)" if out["upheld"] else "confirmed (appeal denied)"
        return (f"**Saved:** case {int(case_id)}: decision {verb}; new decision #{out['decision_id']}.",
                rows, choices, "", {"saved": case_id})

    refresh = gr.Button("Refresh appeals", size="sm")
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="wb-appeals",
                         column_widths=["6%", "13%", "12%", "12%", "15%", "10%", "32%"], max_height=260,
                         label=f"Open appeals, oldest due first (times in {zone_name()}); click one to decide it")
    pick = gr.Dropdown(choices=[], label="Appeal to decide", elem_id="wb-appeal-pick")
    with gr.Row(equal_height=True):
        item_md = gr.Markdown("Pick an open appeal.", elem_id="wb-appeal-item")
        original_md = gr.Markdown(elem_id="wb-appeal-original")
        reason_md = gr.Markdown(elem_id="wb-appeal-reason")
    reveal_btn = gr.Button("Reveal text (audited)", size="sm", elem_id="wb-appeal-reveal")
    with gr.Row():
        outcome = gr.Radio(choices=OUTCOMES, value=None, label="Outcome (pick one)", elem_id="wb-appeal-outcome",
                           scale=2)
        label = gr.Dropdown(choices=taxonomy.labels, value=None, label="Label if reversed (pick one to reverse)",
                            scale=1, elem_id="wb-appeal-label")
        action = gr.Dropdown(choices=[], value=None, label="Action if reversed", scale=1,
                             allow_custom_value=True, elem_id="wb-appeal-action")
    rationale = gr.Textbox(label="Rationale (required)", lines=2, elem_id="wb-appeal-rationale")
    resolve_btn = gr.Button("Resolve appeal", variant="primary", elem_id="wb-appeal-resolve")
    access = gr.Markdown(visible=False, elem_id="wb-appeal-access")  # who may resolve, for a role that may not
    result = gr.Markdown(elem_id="wb-appeal-result")
    seen = gr.State({})  # the appeal on screen and its item's decision then (`shown`): resolving checks it
    def controls(name: str, request: gr.Request) -> tuple[Any, ...]:
        """The resolve form only for a role that may resolve (role_controls): hidden otherwise,
        with a line saying who may; the list and the appeal stay readable."""
        return held(may(app, name, request, "resolve_appeal", "Resolving appeals"), 5, hide=True)

    def row_picked(rows: Any, evt: gr.SelectData) -> Any:
        """A clicked row of the list picks that appeal."""
        try:
            row = evt.row_value if evt.row_value is not None else rows.iloc[evt.index[0]].tolist()
            return int(row[0])
        except (AttributeError, IndexError, TypeError, ValueError, OverflowError):  # a cell of inf: no crash
            return gr.update()

    refresh.click(listing, [who_in], [table, pick])
    table.select(row_picked, [table], [pick])
    pick.change(show, [pick, who_in, seen], [item_md, original_md, reason_md, label, action, outcome, rationale,
                                             seen, result])
    reveal_btn.click(reveal, [pick, who_in, seen], [item_md, original_md, reason_md, seen, result])
    label.input(on_label, [label], [action])
    resolve_btn.click(resolve, [pick, outcome, label, action, rationale, who_in, seen],
                      [result, table, pick, rationale, seen])
    tab.select(listing, [who_in], [table, pick])
    tab.select(controls, [who_in], [outcome, label, action, rationale, resolve_btn, access])
