"""The Review tab: the analyst's screen. Claim the next case (or one by id), read the text
(masked by the server until revealed), the model's scores, the campaign it belongs to, similar
past decisions and the author's history; confirm in one key, override, escalate, skip, release,
undo.

Each callback is a few lines over one `labeling` service call; `Screen.show` turns the packet
the service returns (already masked: `labeling.masking.mask_packet`) into the tab's outputs.
The analyst's next case is claimed ahead (a normal lease) and rendered, masked like any case,
into a hidden box; on `c` the page shows it at once and the server's answer then replaces that
view (a refusal puts the case back). Each key that acts on a case sends the case id the page
shows and is refused when that is not the tab's case (review_actions). A timer renews both leases
while the case is on screen (`labeling.claims.renew`) and refreshes the queue counts; the page
counts the lease down. A key refused (PermissionDenied) is in the audit log (tab_access.refused).
Keys (assets.SHORTCUTS_JS): 1-9 label, a action, o override rationale, e escalate, Ctrl+Enter
save, c confirm, n next, r reveal, s skip, x release, u undo, ? help.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Optional

import gradio as gr

from core.hooks import PermissionDenied
from labeling.claims import claim_case, next_case, release, renew, skip
from labeling.decisions import decide
from labeling.packets import escalate_with_packet, review_packet, reveal_text
from labeling.undo import undo_last
from labeling.wellbeing import set_preferences

from .context_panel import build_context_panel, context_values
from .render import (empty_header, header_html, lease_html, message_html, prefetch_html,
                     restored_html, saved_message, side_html, status_html, text_html)
from .review_actions import (chosen_fields, form_note, form_values, html_box, label_form, lost_note,
                             needs_confirm, opened, page_case_js, refused, untouched, with_under_review, wrong_case)
from .review_confirm import confirm_choice, no_case_note
from .review_counts import ListedCounts, as_event, known_counts, queue_name, unknown_queue
from .review_guard import (FAILURES, case_number, counts_view, display_prefs, done_already, exposure_of, finite_numbers,
                           line_and_list, load_name, queue_choices, repeat_note, start_view, status_line, told, unread)
from .review_hold import STORE_ERRORS, idle_now, refusal
from .role_controls import claim_controls
from .session import actor
from .tab_access import refused as audited

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

# What a service refuses with (LabelingError is a ValueError): shown to the analyst, never a crash;
# FAILURES adds a busy store, a refusal too on every key (review_guard.told, review_hold.refusal).
SERVICE_ERRORS = (ValueError, PermissionDenied)
# What one key event has read already (the store's accounts, the principal): each key asked
# the store for both up to four times (issue 17). Set per event by `wired`; None elsewhere.
_EVENT: contextvars.ContextVar[Optional[dict[Any, Any]]] = contextvars.ContextVar("wb_review_event", default=None)


@dataclass
class ReviewTab:
    """What other tabs use of the Review tab: the analyst box (the session's user) and
    `open_from(event, case_box, tabs, tab_id, note)`, which wires an event elsewhere (Search's
    "Open in Review") to claim the case in `case_box` and show it here, switching `tabs` to this
    tab when it opened and saying why not in `note` otherwise."""

    who: gr.Textbox
    open_from: Callable[..., Any]


def build_review_tab(app: "AppContext", blocks: gr.Blocks, analyst: str, queue: Optional[str]) -> ReviewTab:
    """Lay out the Review tab inside the current Blocks and wire it."""
    store, taxonomy, qconfig, settings = app.store(), app.taxonomy(), app.queues(), app.review()
    labels = list(taxonomy.labels)
    ctx_components: list[Any] = []

    def accounts() -> bool:
        """Whether the store has accounts (read once per key event)."""
        memo = _EVENT.get()
        if memo is None:
            return app.has_users()
        if "accounts" not in memo:
            memo["accounts"] = app.has_users()
        return bool(memo["accounts"])

    def who_of(who: str, request: Optional[gr.Request]) -> Any:
        """The acting principal (session.actor), re-read from the store once per key event."""
        memo = _EVENT.get()
        if memo is None:
            return actor(app, who, request)
        if ("actor", who) not in memo:
            memo[("actor", who)] = actor(app, who, request)
        return memo[("actor", who)]

    def viewer(who: str, request: Optional[gr.Request]) -> Any:
        """The principal, or None (no name given yet, or not allowed)."""
        try:
            return who_of(who, request) if (accounts() or (who or "").strip()) else None
        except FAILURES:
            return None

    expo_of, prefs_of = partial(exposure_of, store, settings), partial(display_prefs, store, settings)

    def show(packet: Optional[dict[str, Any]], principal: Any, queue: Optional[str], message: str = "",
             kind: str = "info", switch_queue: bool = False,
             ahead: Optional[tuple[Optional[int], str]] = None) -> tuple[Any, ...]:
        """The case's outputs of the tab for a packet (or for none): what the analyst decides on.
        The "N left" line, the break offer and the context panel are added by `after_case` (see
        `wired`), the panel only when the case changed; the queue list's counts follow the counts
        timer (re-rendering the list on every key costs the screen more than the count is worth).
        `ahead`: the case claimed ahead and its hidden rendering (None: both as they are)."""
        pre = ahead if ahead is not None else (gr.update(), gr.update())
        queue_list = gr.update(value=queue, **queue_choices(store, qconfig, principal)) if switch_queue else gr.update()
        if packet is None:
            return (None, None, empty_header(message if kind == "info" else ""), "", side_html(None),
                    None, gr.update(choices=[], value=None), "", "", "",
                    message_html(message, kind) if kind != "info" else "", lease_html(None, settings), *pre, queue_list)
        label, actions, action, policy_ref = form_values(packet)  # a re-review: the decision under review's
        prefs, message = prefs_of(principal), f"{message} {form_note(packet)}".strip()
        return (packet, None, header_html(packet, message), text_html(packet, prefs), side_html(packet),
                label, gr.update(choices=actions, value=action), policy_ref, "", "", "", lease_html(packet, settings),
                *pre, queue_list)

    def after_case(packet: Optional[dict[str, Any]], shown: Optional[int], who: str, queue: str,
                   request: gr.Request) -> tuple[Any, ...]:
        """After a key: the "N left" line, the break offer, the queue list's counts (review_counts),
        the context panel (only when the case on screen changed from `shown`)."""
        principal = viewer(who, request)
        expo = expo_of(principal)
        case_id = packet["case"]["id"] if packet else None
        # one queue's count (an index range), not `queue_status` over every live case: this runs on every key
        why = unread(accounts, partial(who_of, who, request))
        line, listing = (why, gr.update()) if why else line_and_list(store, queue, expo, listed, request,
                                                                     list(qconfig.queues), principal, qconfig)
        head = (line, break_update(expo, queue), listing)
        if case_id == shown and packet is not None:
            return (*head, case_id, *([gr.update()] * len(ctx_components)))
        return (*head, case_id, *context_values(app, packet, principal))

    kept = partial(refused, settings)  # a refusal: the packet and everything typed kept

    def packet_for(case_id: int, principal: Any) -> dict[str, Any]:
        return finite_numbers(with_under_review(review_packet(store, taxonomy, case_id, settings, app.campaigns(),
                                                              viewer=principal, config=qconfig), store, qconfig))

    def fetch_ahead(principal: Any, queue: str, on_screen: Optional[int]) -> tuple[Optional[int], str]:
        """Claim the analyst's next case of `queue` ahead (a normal lease; first one of theirs a
        reload left held, never the one `on_screen`) and render it, masked as the screen would
        show it, for the hidden box the page swaps in on `c`."""
        try:
            case = next_case(store, principal, queue, config=qconfig, detail=False, resume=True,
                             exclude=() if on_screen is None else (on_screen,))
            if case is not None:
                return case["id"], prefetch_html(packet_for(case["id"], principal), prefs_of(principal))
        except FAILURES:
            pass
        return None, prefetch_html(None)

    def promoted(ahead: Optional[int], principal: Any, queue: str) -> Optional[dict[str, Any]]:
        """The case claimed ahead as the one on screen, its lease renewed; None when it is no longer
        the analyst's (lapsed, or taken) or is of another queue (`wired` then gives it back)."""
        try:
            packet = renew(store, ahead, principal, qconfig) and packet_for(ahead, principal) if ahead else None
        except FAILURES:
            return None
        return packet if packet and packet["case"]["queue"] == queue else None

    def drop(ahead: Optional[int], principal: Any) -> None:
        """Give the case claimed ahead back to its queue (quietly: its hold may have lapsed)."""
        if ahead is not None:
            with contextlib.suppress(*FAILURES):
                release(store, ahead, principal, qconfig)

    def claim_next(who: str, queue: str, request: gr.Request, message: str = "", switch_queue: bool = False,
                   principal: Any = None, ahead: Optional[int] = None) -> tuple[Any, ...]:
        """The next case on screen: the one claimed ahead if it is still the analyst's, else the
        queue's next; and a new one claimed ahead of it."""
        if not accounts() and not who.strip():
            return show(None, None, queue, "Enter your analyst name first (top left).", "error")
        try:
            principal = principal or who_of(who, request)
            packet = promoted(ahead, principal, queue)
            if packet is None:
                case = next_case(store, principal, queue, config=qconfig, detail=False, resume=True)  # a reload resumes
                packet = packet_for(case["id"], principal) if case else None
        except FAILURES as exc:
            audited(app, who, request, f"claim next case of queue {queue}", exc)
            why = told(exc, "no next case was claimed: press n")
            return show(None, None, queue, f"{message} {why}".strip(), "error")
        if packet is None:
            return show(None, principal, queue, f"{message} Queue {queue} is empty.".strip(), switch_queue=switch_queue)
        return show(packet, principal, queue, message, switch_queue=switch_queue,
                    ahead=fetch_ahead(principal, queue, packet["case"]["id"]))

    def claim(who: str, queue: str, ahead: Optional[int], request: gr.Request) -> tuple[Any, ...]:
        return claim_next(who, queue, request, ahead=ahead)

    def open_case(who: str, queue: str, case_text: Any, ahead: Optional[int], request: gr.Request) -> tuple[Any, ...]:
        if case_text is None or not str(case_text).strip():
            return show(None, None, queue, "Type a case number first.", "error")
        try:
            case_id = case_number(case_text)
        except ValueError as exc:
            return show(None, None, queue, f"Cannot open case: {exc}.", "error")
        try:
            principal = who_of(who, request)
            drop(ahead, principal)  # the next case is claimed ahead anew, after the one opened
            claim_case(store, case_id, principal, qconfig)
            return show(packet_for(case_id, principal), principal, queue, f"Opened case {case_id}.",
                        ahead=fetch_ahead(principal, queue, case_id))
        except FAILURES as exc:
            audited(app, who, request, f"open case {case_id}", exc)
            return show(None, None, queue, f"Cannot open case {case_id}: {told(exc)}", "error")

    def on_label(label: Optional[str], packet: Optional[dict[str, Any]]) -> tuple[Any, Any, Any]:
        return label_form(taxonomy.policies, label, packet)

    def submit(packet: Optional[dict[str, Any]], armed: Optional[int], who: str, queue: str, label: str,
               action: str, policy_ref: str, rationale: str, ahead: Optional[int], request: gr.Request,
               key: str = "Ctrl+Enter") -> tuple[Any, ...]:
        if packet is None:
            return claim_next(who, queue, request, ahead=ahead)
        if not label:
            return kept(packet, armed, ValueError("pick a label first (keys 1-9)"),
                        restore=restored_html(packet, prefs_of(viewer(who, request))))
        action, policy_ref = chosen_fields(taxonomy.policies, label, action, policy_ref)
        ask = needs_confirm(packet, armed, key)
        if ask is not None:
            return ask
        case_id = packet["case"]["id"]
        try:
            principal = who_of(who, request)  # holder_only: a lost hold is refused, not decided blind
            out = decide(store, taxonomy, case_id, principal, label, action=action or None,
                         policy_ref=policy_ref or None, rationale=rationale or None, config=qconfig, holder_only=True,
                         seen=packet.get("prediction") or {})
        except FAILURES as exc:
            audited(app, who, request, f"decide case {case_id}", exc)
            if isinstance(exc, ValueError) and done_already(store, case_id, viewer(who, request)) == "saved":
                return claim_next(who, queue, request, f"Case {case_id} was saved already (a key sent twice, or "
                                  "another tab): nothing was saved twice.", ahead=ahead)
            return kept(packet, armed, refusal(exc), restore=restored_html(packet, prefs_of(viewer(who, request))))
        return claim_next(who, queue, request, saved_message(case_id, label, action, out), principal=principal,
                          ahead=ahead)

    def confirm(packet: Optional[dict[str, Any]], armed: Optional[int], who: str, queue: str, label: Optional[str],
                action: Optional[str], ahead: Optional[int], request: gr.Request) -> tuple[Any, ...]:
        """`c`: the model's suggestion, only while the screen shows it (review_confirm: not on a
        label-review case, whose form needs a rationale; with no case on screen, nothing).
        The page may show the case claimed ahead already; this response replaces it."""
        if packet is None:  # nothing on screen: claims nothing (a second `c` decided a case unread)
            return show(None, None, queue, no_case_note(), "error")
        plan, why = confirm_choice(packet, label, action, taxonomy.policies)
        if why or plan is None:
            return kept(packet, armed, ValueError(why), restore=restored_html(packet, prefs_of(viewer(who, request))))
        return submit(packet, armed, who, queue, *plan, "", ahead, request, key="c")

    def escalate(packet: Optional[dict[str, Any]], armed: Optional[int], who: str, queue: str, reason: str,
                 ahead: Optional[int], request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return show(None, None, queue, "No case to escalate.", "error")
        if not (reason or "").strip():
            return kept(packet, armed, ValueError("say why you escalate: type the reason in the box, then Ctrl+Enter "
                                                  "or Escalate again"),
                        "Not escalated")
        try:
            out = escalate_with_packet(store, taxonomy, packet["case"]["id"], who_of(who, request), reason, qconfig,
                                       settings, app.campaigns(), holder_only=True)
        except FAILURES as exc:
            audited(app, who, request, f"escalate case {packet['case']['id']}", exc)
            if isinstance(exc, ValueError) and done_already(store, packet["case"]["id"],
                                                             viewer(who, request)) == "escalated":
                return claim_next(who, queue, request, f"Case {packet['case']['id']} was escalated already (a key sent "
                                  "twice, or another tab): nothing was sent twice.", ahead=ahead)
            return kept(packet, armed, refusal(exc), "Not escalated")
        folded = out["case"].get("folded_from")
        return claim_next(who, queue, request, f"Escalated case {packet['case']['id']}"
                          + (f" (its campaign's case {out['case']['id']} was escalated already: reason added there)"
                             if folded else "") + ".", ahead=ahead)

    def skip_case(packet: Optional[dict[str, Any]], who: str, queue: str, ahead: Optional[int],
                  request: gr.Request) -> tuple[Any, ...]:
        if packet is None:
            return claim_next(who, queue, request, ahead=ahead)
        try:
            skip(store, packet["case"]["id"], who_of(who, request), qconfig)
        except FAILURES as exc:
            audited(app, who, request, f"skip case {packet['case']['id']}", exc)
            if note := repeat_note(store, exc, packet["case"]["id"], viewer(who, request), "skip"):
                return claim_next(who, queue, request, note, ahead=ahead)  # the case its first press put on screen
            return show(None, None, queue, f"Not skipped: {told(exc, 'nothing was changed: press n')}", "error")
        return claim_next(who, queue, request, f"Skipped case {packet['case']['id']}.", ahead=ahead)

    def release_case(packet: Optional[dict[str, Any]], who: str, queue: str, ahead: Optional[int],
                     request: gr.Request) -> tuple[Any, ...]:
        """`x`: the case goes back; so does the one claimed ahead (`wired`: no case on screen, none ahead)."""
        if packet is None:
            return show(None, None, queue)
        try:
            principal = who_of(who, request)
            release(store, packet["case"]["id"], principal, qconfig)
        except FAILURES as exc:
            audited(app, who, request, f"release case {packet['case']['id']}", exc)
            if note := repeat_note(store, exc, packet["case"]["id"], viewer(who, request), "release"):
                return show(None, None, queue, note)
            return show(None, None, queue, f"Not released: {told(exc, 'nothing was changed: press n')}", "error")
        return show(None, principal, queue, f"Released case {packet['case']['id']}.")

    def undo(packet: Optional[dict[str, Any]], who: str, queue: str, ahead: Optional[int],
             request: gr.Request) -> tuple[Any, ...]:
        """`u`: the undone case comes back on screen; the one on screen goes back to its queue, and
        the one claimed ahead stays claimed ahead."""
        try:
            principal = who_of(who, request)
            out = undo_last(store, principal, qconfig, settings.undo_seconds)
        except FAILURES as exc:
            audited(app, who, request, "undo last decision", exc)
            if packet is not None:
                return kept(packet, None, refusal(exc, "nothing was undone: press u again"), "Not undone")
            return show(None, None, queue, f"Not undone: {told(exc, 'nothing was undone: press u again')}", "error")
        if out["lease_expires_at"] is None:  # it corrected an earlier decision, which is back: nothing to decide
            return show(packet, principal, queue,
                        f"Undone: your {out['label']} / {out['action']} on case {out['case_id']}; the decision "
                        "it replaced is the label of record again (the case stays decided).", ahead=None)
        if packet is not None and packet["case"]["id"] != out["case_id"]:
            with contextlib.suppress(*FAILURES):  # the case on screen goes back; the undone one comes back
                release(store, packet["case"]["id"], principal, qconfig)
        done = f"Undone: your {out['label']} / {out['action']} on case {out['case_id']}"
        try:
            back = packet_for(out["case_id"], principal)
        except FAILURES as exc:  # the undo is saved and the case is the analyst's again: `n` shows it
            return show(None, principal, queue, f"{done}; {told(exc, 'the case is not shown: press n')}", "error")
        return show(back, principal, queue, f"{done} ({len(out['undone'])} decision"
                    f"{'s' if len(out['undone']) != 1 else ''}). Decide it again.",
                    ahead=None if ahead is not None else fetch_ahead(principal, queue, out["case_id"]))

    def reveal(packet: Optional[dict[str, Any]], who: str, queue: str, page: Any,
               request: gr.Request) -> tuple[Any, ...]:
        """The case's own texts unmasked (audited): the text, the side column and the context panel;
        only the case the page shows (`page`)."""
        n_ctx = len(ctx_components)
        if packet is None or not packet.get("item"):
            return (gr.update(),) * (6 + n_ctx)
        if (why := wrong_case(packet, page)) is not None:
            return untouched(6 + n_ctx, 3, f"Not revealed: {why}")
        try:
            principal = who_of(who, request)
            renew(store, packet["case"]["id"], principal, qconfig)  # only a case still held: not one lost meanwhile
            reveal_text(store, packet["case"]["id"], principal, taxonomy=taxonomy, settings=settings)
            fresh = packet_for(packet["case"]["id"], principal)
        except FAILURES as exc:
            audited(app, who, request, f"reveal case {packet['case']['id']}", exc)
            return untouched(6 + n_ctx, 3, f"Not revealed: {told(exc, 'nothing was revealed: press r again')}")
        expo = expo_of(principal)
        return (fresh, text_html(fresh, prefs_of(principal)), side_html(fresh), "",
                unread(accounts, lambda: principal) or status_line(store, queue, expo, principal, qconfig),
                break_update(expo, queue), *context_values(app, fresh, principal))

    def heartbeat(packet: Optional[dict[str, Any]], held: Optional[dict[str, Any]], ahead: Optional[int], who: str,
                  idle_ms: Optional[float], request: gr.Request) -> tuple[Any, ...]:
        """Renew the lease while the analyst is active, and the one claimed ahead (lost: none is
        ahead, the next key claims the queue's next); `held` is the last renewal (case, expiry)."""
        same = (gr.update(), gr.update())
        if packet is None:
            return gr.update(), None, *same
        case_id = packet["case"]["id"]
        expires = held["expires"] if held and held.get("case") == case_id else packet["case"]["lease_expires_at"]
        shown = dict(packet, case=dict(packet["case"], lease_expires_at=expires))
        if idle_now(idle_ms, settings.idle_seconds):  # NaN, negative, not a number: idle
            return lease_html(shown, settings, idle=True), held, *same
        try:
            principal = who_of(who, request)
            if ahead is not None:
                try:
                    renew(store, ahead, principal, qconfig)
                except SERVICE_ERRORS:
                    same = (None, prefetch_html(None))
            out = renew(store, case_id, principal, qconfig)
        except FAILURES as exc:  # a failing store loses no hold: the clock as it was, the next tick tries again
            return (gr.update(), held, *same) if isinstance(exc, STORE_ERRORS) else (
                lease_html(None, settings, lost=lost_note(str(exc))), None, *same)
        fresh = {"case": case_id, "expires": out["lease_expires_at"]}
        return (lease_html(dict(packet, case=dict(packet["case"], lease_expires_at=fresh["expires"])), settings), fresh,
                *same)

    def switch_ahead(packet: Optional[dict[str, Any]], ahead: Optional[int], who: str, queue: str,
                     request: gr.Request) -> tuple[Any, Any]:
        """Another queue picked: the case claimed ahead goes back, the next comes from that queue."""
        try:
            principal = who_of(who, request)
        except FAILURES:
            return gr.update(), gr.update()
        drop(ahead, principal)
        queue = queue_name(queue, qconfig.queues) or ""
        if packet is None or queue not in qconfig.queues:
            return None, prefetch_html(None)
        return fetch_ahead(principal, queue, packet["case"]["id"])

    def refresh_counts(who: str, queue: str, request: gr.Request) -> tuple[Any, Any, Any]:
        principal = viewer(who, request)
        expo, why = expo_of(principal), unread(accounts, partial(who_of, who, request))
        if (name := queue_name(queue, qconfig.queues)) is None:  # text typed into the list: back to a queue
            return message_html(f"Not switched: {unknown_queue(queue)}", "error"), gr.update(), gr.update()
        # no `read` (a session ended), or a failing store: the line says so, the list stays
        line, choices = (why, None) if why else counts_view(store, qconfig, name, expo, principal)
        listed.put(request, known_counts(choices))
        return line, break_update(expo, name), gr.update() if choices is None else gr.update(choices=choices)

    def break_queue_name(queue: Optional[str]) -> Optional[str]:
        return settings.break_queue if settings.break_queue in qconfig.queues else None

    def break_update(expo: Optional[dict[str, Any]], queue: Optional[str]) -> Any:
        over = bool(expo and expo["over_budget"])
        target = break_queue_name(queue)
        return gr.update(visible=over and target is not None and queue != target,
                         value=f"Take a break, or switch to the {target} queue")

    def to_break(who: str, ahead: Optional[int], request: gr.Request) -> tuple[Any, ...]:
        with contextlib.suppress(*FAILURES):
            drop(ahead, who_of(who, request))  # claimed ahead in the queue left
        return claim_next(who, break_queue_name(None) or qconfig.default_queue, request,
                          "Switched to a milder queue.", switch_queue=True)

    def save_prefs(packet: Optional[dict[str, Any]], who: str, blur: bool, gray: bool, request: gr.Request) -> Any:
        try:
            prefs = set_preferences(store, who_of(who, request), settings, blur=bool(blur), grayscale=bool(gray))
        except FAILURES:
            prefs = {"blur": bool(blur), "grayscale": bool(gray)}
        return text_html(packet, prefs) if packet else ""

    def on_load(who: str, request: gr.Request) -> tuple[Any, ...]:
        """The session's start: the most urgent queue this analyst may work, their display settings."""
        name = load_name(app, who, request)
        principal = viewer(name, request) if name and name.strip() else None
        prefs, expo = prefs_of(principal), expo_of(principal)
        first, line, choices = start_view(store, qconfig, queue, principal, expo,
                                          unread(accounts, partial(who_of, name, request)))
        listed.put(request, known_counts(choices))
        return (name, gr.update(value=first) if choices is None else gr.update(choices=choices, value=first), line,
                prefs["blur"], prefs["grayscale"], break_update(expo, first))

    # -- layout ---------------------------------------------------------------------------------
    packet_state = gr.State(None)
    armed_state = gr.State(None)  # the campaign case a first `c` / Ctrl+Enter armed
    ahead_state = gr.State(None)  # the case claimed ahead: the analyst's next (its HTML is in `prefetch`)
    signed = app.has_users()
    with gr.Row(elem_id="wb-topbar", equal_height=True):
        who = gr.Textbox(value="" if signed else analyst, label="Signed in as" if signed else "Analyst",
                         interactive=not signed, scale=1, min_width=120, elem_id="wb-who")
        queue_in = gr.Dropdown(choices=[(q, q) for q in qconfig.queues], value=queue or qconfig.default_queue,
                               label="Queue", scale=2, min_width=200, elem_id="wb-queue")
        next_btn = gr.Button("Next case (n)", elem_id="wb-next", variant="primary", scale=1, min_width=110)
        open_in = gr.Textbox(label="Open case #", scale=1, min_width=90, elem_id="wb-open", max_lines=1,
                             placeholder="id, Enter")
        open_btn = gr.Button("Open", elem_id="wb-open-btn", scale=0, min_width=60)
        with gr.Column(scale=2, min_width=220):
            status = html_box(status_html({}, queue, None), elem_id="wb-status-box")
            lease = html_box(lease_html(None, settings), elem_id="wb-lease-box")
    break_btn = gr.Button("Take a break", visible=False, elem_id="wb-break", size="sm")
    access = gr.Markdown(visible=False, elem_id="wb-review-access")  # a role that may not claim: who may
    header = html_box(empty_header(), elem_id="wb-header")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            text = html_box(elem_id="wb-text")
            label_in = gr.Radio(choices=[(f"{i + 1} {lab}", lab) for i, lab in enumerate(labels)], label="Label (1-9)",
                                elem_id="wb-label")
            label_err = html_box(elem_id="wb-label-err", elem_classes=["wb-err"])
            action_in = gr.Radio(choices=[], label="Enforcement action (a cycles)", elem_id="wb-action")
            with gr.Row(equal_height=True):
                rationale_in = gr.Textbox(label="Rationale (o: override) or escalation reason (e)", lines=1,
                                          max_lines=4, elem_id="wb-rationale", scale=4)
                policy_in = gr.Textbox(label="Policy reference", scale=1, min_width=110, elem_id="wb-policy-ref")
            rationale_err = html_box(elem_id="wb-rationale-err", elem_classes=["wb-err"])
            with gr.Row(elem_id="wb-buttons"):
                confirm_btn = gr.Button("Confirm (c)", elem_id="wb-confirm", variant="primary", min_width=100)
                decide_btn = gr.Button("Save (Ctrl+↵)", elem_id="wb-decide", min_width=100)
                escalate_btn = gr.Button("Escalate (e)", elem_id="wb-escalate", variant="stop", min_width=100)
                skip_btn = gr.Button("Skip (s)", elem_id="wb-skip", min_width=70)
                release_btn = gr.Button("Release (x)", elem_id="wb-release", min_width=90)
                undo_btn = gr.Button("Undo (u)", elem_id="wb-undo", min_width=70)
            buttons_err = html_box(elem_id="wb-buttons-err", elem_classes=["wb-err"])
            with gr.Row(elem_id="wb-display", equal_height=True):
                reveal_btn = gr.Button("Reveal text (r)", elem_id="wb-reveal", size="sm", scale=0, min_width=120)
                blur_in = gr.Checkbox(label="Blur revealed text (hover, focus or b reads)", value=settings.default_blur, elem_id="wb-blur",
                                      scale=0, min_width=150, container=False)
                gray_in = gr.Checkbox(label="Grayscale", value=settings.default_grayscale, elem_id="wb-gray",
                                      scale=0, min_width=110, container=False)
                html_box("<div class='wb-keys'>Keys: <kbd>1</kbd>-<kbd>9</kbd> label · <kbd>a</kbd> action · "
                        "<kbd>c</kbd> confirm · <kbd>o</kbd> override · <kbd>e</kbd> escalate · <kbd>Ctrl</kbd>+"
                        "<kbd>Enter</kbd> save · <kbd>u</kbd> undo · <kbd>n</kbd> next · <kbd>b</kbd> unblur · <kbd>?</kbd> all keys</div>")
        with gr.Column(scale=2, min_width=360):
            side = html_box(side_html(None), elem_id="wb-side")  # model, campaign, similar decisions
            with gr.Accordion("Context: policy, history, notes", open=True, elem_id="wb-context"):
                ctx_components.extend(build_context_panel(app, packet_state, who))
    prefetch = html_box(prefetch_html(None), elem_id="wb-prefetch")  # hidden (assets.CSS)
    idle_ms = gr.Number(value=0, visible="hidden", elem_id="wb-idle")
    page_case = gr.Textbox(visible="hidden", elem_id="wb-page-case")  # the case the page shows (page_case_js)
    heartbeat_timer = gr.Timer(settings.heartbeat_seconds)
    counts_timer = gr.Timer(settings.counts_refresh_seconds)

    outputs = [packet_state, armed_state, header, text, side,
               label_in, action_in, policy_in, label_err, rationale_err, buttons_err, lease, ahead_state, prefetch, queue_in]
    shown_state = gr.State(None)  # the case the context panel shows
    listed = ListedCounts()  # the counts each page's queue list shows (review_counts)

    def settle_ahead(out: tuple[Any, ...], packet: Optional[dict[str, Any]], held: Optional[int], who: str,
                     request: gr.Request) -> tuple[Any, ...]:
        """No claim ahead leaks: with no case on screen none is held ahead, and the one held before
        the key goes back unless it is now on screen or still the one ahead."""
        at = outputs.index(ahead_state)
        new = out[at]
        if packet is None and not (new is None or isinstance(new, int)):
            out, new = (*out[:at], None, prefetch_html(None), *out[at + 2:]), None
        now = new if new is None or isinstance(new, int) else held
        if held is not None and held != now and (packet is None or packet["case"]["id"] != held):
            with contextlib.suppress(*FAILURES):
                drop(held, who_of(who, request))
        return out

    def wired(event: Any, fn: Callable[..., Any], inputs: list[Any], switches: bool = False) -> Any:
        """A key's event: the case's outputs and, in the same response, what follows a case change
        (`after_case`): one event, not a chained `.then` (a second event per key cost the browser
        more than it saved: issue 17). Not queued, no progress overlay, a second key in flight is
        dropped; no Gradio pre/postprocessing (plain values; each moved every value through a worker
        thread). The break offer is an output only of a key that `switches` the queue; the queue
        list of every key, re-rendered only when its count changed (review_counts). A key is refused,
        untouched, when the page showed another case than the tab's, or its queue names none."""
        n_in = len(inputs)
        page = inputs.index(page_case) if page_case in inputs else None
        outs = [*outputs, status, break_btn] if switches else [*outputs[:-1], status]

        def with_after(*args: Any) -> tuple[Any, ...]:
            shown, request = args[n_in], args[n_in + 1]
            at = inputs.index(queue_in) if queue_in in inputs else None  # a list label reads as its queue
            name = queue_name(args[at], qconfig.queues) if at is not None else None
            why = (wrong_case(args[inputs.index(packet_state)], args[page]) if page is not None else None) or (
                unknown_queue(args[at]) if at is not None and name is None else None)
            if why:
                return untouched(len(outs) + 1 + len(ctx_components) + (not switches), outs.index(buttons_err),
                                 f"Not done: {why}")
            args = args if at is None else (*args[:at], name, *args[at + 1:])
            token = _EVENT.set({})
            try:
                out = fn(*(a for i, a in enumerate(args[:n_in]) if i != page), request)
                packet = out[0] if isinstance(out[0], dict) and "case" in out[0] else None
                out = settle_ahead(out, packet, args[inputs.index(ahead_state)], args[inputs.index(who)], request)
                q = name if at is not None else (break_queue_name(None) or qconfig.default_queue)
                line, offer, listing, *rest = after_case(packet, shown, args[inputs.index(who)], q, request)
                if switches:
                    return (*out, line, offer, *rest)
                return (*out[:-1], line, *rest, listing)  # the list's counts only, and no break offer
            finally:
                _EVENT.reset(token)

        as_event(with_after, n_in + 1, fn.__name__)  # the inputs, the shown case, then the request
        tail = [] if switches else [queue_in]  # a switch sends the list already
        return event(with_after, [*inputs, shown_state], [*outs, shown_state, *ctx_components, *tail],
                     js=None if page is None else page_case_js(page, confirm=fn is confirm),
                     show_progress="hidden", trigger_mode="once", queue=False, preprocess=False, postprocess=False)

    wire: list[tuple[Any, Callable[..., Any], list[Any]]] = [
        (next_btn.click, claim, [who, queue_in, ahead_state]),
        (open_btn.click, open_case, [who, queue_in, open_in, ahead_state]),
        (open_in.submit, open_case, [who, queue_in, open_in, ahead_state]),
        (confirm_btn.click, confirm, [packet_state, armed_state, who, queue_in, label_in, action_in, ahead_state,
                                      page_case]),
        (decide_btn.click, submit, [packet_state, armed_state, who, queue_in, label_in, action_in, policy_in,
                                    rationale_in, ahead_state, page_case]),
        (escalate_btn.click, escalate, [packet_state, armed_state, who, queue_in, rationale_in, ahead_state,
                                        page_case]),
        (skip_btn.click, skip_case, [packet_state, who, queue_in, ahead_state, page_case]),
        (release_btn.click, release_case, [packet_state, who, queue_in, ahead_state, page_case]),
        (undo_btn.click, undo, [packet_state, who, queue_in, ahead_state, page_case]),
    ]
    for event, fn, inputs in wire:
        wired(event, fn, inputs)
    reveal_btn.click(reveal, [packet_state, who, queue_in, page_case],
                     [packet_state, text, side, buttons_err, status, break_btn, *ctx_components], js=page_case_js(3),
                     show_progress="hidden")
    label_in.input(on_label, [label_in, packet_state], [action_in, policy_in, label_err], show_progress="hidden")
    held_state = gr.State(None)  # the last renewal: {"case": id, "expires": datetime}
    heartbeat_timer.tick(heartbeat, [packet_state, held_state, ahead_state, who, idle_ms],
                         [lease, held_state, ahead_state, prefetch],
                         js="(p, h, a, w, i) => [p, h, a, w, Date.now() - (window.wbLastActivity || Date.now())]")
    counts_timer.tick(refresh_counts, [who, queue_in], [status, break_btn, queue_in])
    queue_in.input(refresh_counts, [who, queue_in], [status, break_btn, queue_in], show_progress="hidden")
    queue_in.input(switch_ahead, [packet_state, ahead_state, who, queue_in], [ahead_state, prefetch],
                   show_progress="hidden")
    wired(break_btn.click, to_break, [who, ahead_state], switches=True)
    for box in (blur_in, gray_in):
        box.input(save_prefs, [packet_state, who, blur_in, gray_in], [text], show_progress="hidden")
    blocks.load(on_load, [who], [who, queue_in, status, blur_in, gray_in, break_btn])
    blocks.load(claim_controls(app), [who], [next_btn, open_btn, open_in, confirm_btn, decide_btn, skip_btn, access])

    def open_from(event: Any, case_box: Any, tabs: Any, tab_id: str, note: Any) -> None:
        def switched(packet: Optional[dict[str, Any]], case_id: Any, refusal: str) -> tuple[Any, str]:
            return opened(tab_id, packet, case_id, refusal)

        wired(event, open_case, [who, queue_in, case_box, ahead_state]).then(
            switched, [packet_state, case_box, buttons_err], [tabs, note], show_progress="hidden", queue=False)

    return ReviewTab(who=who, open_from=open_from)
