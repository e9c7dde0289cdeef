"""What keeps a key of the Review tab on the case the analyst sees (review.build_review_tab).

The page may show a case the server has not yet put in the tab's state (the optimistic view of
`c`, assets.SHORTCUTS_JS), so each key that acts on a case sends the case id its page shows
(`page_case_js`) and the server refuses a key whose case is not the tab's (`wrong_case`) instead
of acting on another case. `c` saves the model's suggestion only while the screen shows it
(`confirm_refusal`). A label-review case's form starts from the decision under review
(`form_values`, `label_form`). Also the refusal outputs the tab's keys share (`refused`,
`needs_confirm`), and what "Open in Review" says (`opened`).
"""
from __future__ import annotations

import html
import re
from typing import Any, Optional

import gradio as gr

from labeling.decisions import decision_under_review

from .format import md_escape
from .render import lease_html, message_html, plain, where_error_goes

# The case's outputs a refusal leaves as they are: header, text, side column, label, action,
# policy reference. The rationale box is no output: the page empties it when the case on screen
# changes (assets.SHORTCUTS_JS), so what was typed stays on a refusal.
KEPT = 6


def html_box(value: Any = None, **kw: Any) -> gr.HTML:
    """A gr.HTML without Gradio's default on-load script (it re-ran on every update: issue 17)."""
    return gr.HTML(value, js_on_load=None, **kw)


def page_case_js(at: int, confirm: bool = False) -> str:
    """An event's `js`: input `at` becomes the case id the page's header shows ('' for none).
    During the optimistic view of `c` the header shows the next case; only `c`'s own click
    (`confirm`) still speaks for the case it was pressed on (`data-from`)."""
    shown = "(h.getAttribute('data-case') || '')"
    pick = f"h.hasAttribute('data-optimistic') ? (h.getAttribute('data-from') || '') : {shown}" if confirm else shown
    return (f"(...a) => {{ const h = document.querySelector('#wb-header .wb-head'); a[{int(at)}] = h ? ({pick}) : ''; "
            "return a; }")


def wrong_case(packet: Optional[dict[str, Any]], page_case: Any) -> Optional[str]:
    """Why a key must not act: the page shows another case than the tab's (None: it may act).
    No case in the tab: nothing to act on, so nothing to check."""
    if packet is None:
        return None
    tab = int(packet["case"]["id"])
    text = str(page_case if page_case is not None else "").strip()
    if not text:
        return f"the page did not say which case it shows (this tab's case is {tab}): nothing was done"
    if text != str(tab):
        return (f"the page shows case {text} but this tab's case is {tab}: nothing was done; "
                "wait until the screen settles, then press the key again")
    return None


def confirm_refusal(packet: dict[str, Any], label: Optional[str], action: Optional[str],
                    policies: dict[str, Any]) -> Optional[str]:
    """Why `c` (the model's label and default action) must not save: the screen shows another
    pick. No label on screen reads as the model's; an action a fast key left out of step with the
    label is the label's default (as review.submit reads it)."""
    model = packet["suggested_label"]
    if model not in packet["choices"]:  # a label the taxonomy no longer has: nothing for `c` to save
        return (f"the model's label ({model}) is not one of the taxonomy's labels: pick a label (keys 1-9), then "
                "Ctrl+Enter saves it")
    default = packet["choices"][model]["default_action"]
    if not label or label == model:
        pol = policies.get(model)
        if not action or action == default or (pol is not None and action not in pol.actions):
            return None
    picked = f"{label or model} / {action or default}"
    return (f"the label you picked ({picked}) is not the model's ({model} / {default}): Ctrl+Enter saves yours; "
            f"c confirms only the model's")


def chosen_fields(policies: dict[str, Any], label: str, action: Optional[str],
                  policy_ref: Optional[str]) -> tuple[Optional[str], str]:
    """(action, policy_ref) of the form as `decide` takes them for `label`: the action and the
    reference follow the label, so an action a fast key left out of step with it is the label's
    default, and a taxonomy reference in the box (the one the screen filled in, or another label's)
    is no choice at all: '' lets the service fill in the label's own, and a label re-review keeps
    the reference of the decision it confirms (a custom one included) instead of "correcting" it
    to the default. Only a reference the analyst typed that is none of the taxonomy's is sent."""
    pol = policies.get(label)
    if pol is None:
        return action, policy_ref or ""
    if action not in pol.actions:
        action = pol.default_action
    if policy_ref in {p.policy_ref for p in policies.values()}:
        policy_ref = ""
    return action, policy_ref or ""


def with_under_review(packet: dict[str, Any], store: Any, config: Any) -> dict[str, Any]:
    """`packet` (a label-review case's) with the decision under review's label, action, severity
    and reference in `label_review["decision"]` (`labeling.decisions.decision_under_review`),
    which the form starts from; any other packet as it is."""
    if packet.get("label_review") is not None:
        packet["label_review"]["decision"] = decision_under_review(store, packet["case"]["id"], config)
    return packet


def form_values(packet: dict[str, Any],
                label: Optional[str] = None) -> tuple[Optional[str], list[str], Optional[str], str]:
    """(label, actions, action, policy_ref) the form shows for `label` (None: the case's own).
    A label-review case starts from the decision under review, and its label brings back that
    decision's action and reference, so keeping them confirms it (`decide` corrects only what
    changed); any other label, or case, brings the policy's defaults. A model's label the
    taxonomy no longer has (a model trained before a label was retired) picks nothing: the
    analyst picks one (`form_note`); it failed the whole screen, on every `n` again."""
    under = (packet.get("label_review") or {}).get("decision")
    label = label or (under["label"] if under and under["label"] in packet["choices"] else packet["suggested_label"])
    choice = packet["choices"].get(label)
    if choice is None:
        return None, [], None, ""
    if under and under["label"] == label and under["action"] in choice["actions"]:
        return label, choice["actions"], under["action"], under["policy_ref"] or choice["policy_ref"]
    return label, choice["actions"], choice["default_action"], choice["policy_ref"]


def label_form(policies: dict[str, Any], label: Optional[str],
               packet: Optional[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """A label picked (keys 1-9): the action list and policy reference follow it, the label's
    error line empties; a label the taxonomy lacks (a client may send any value) changes nothing.
    A re-review's own label brings back its decision's action and reference (`form_values`)."""
    if not label or label not in policies:
        return gr.update(), gr.update(), ""
    pol = policies[label]
    _, actions, action, ref = form_values(packet, label) if packet else (label, pol.actions, pol.default_action,
                                                                        pol.policy_ref)
    return gr.update(choices=actions, value=action), ref, ""


def form_note(packet: Optional[dict[str, Any]]) -> str:
    """What the form was filled with, where that needs saying: on a label-review case the decision
    under review and what saving it does; a model's label the taxonomy no longer has."""
    model = (packet or {}).get("suggested_label")
    if packet and model not in (packet.get("choices") or {}):
        return f"The model's label ({model}) is not one of the taxonomy's labels: pick a label (keys 1-9)."
    under = ((packet or {}).get("label_review") or {}).get("decision")
    if not under:
        return ""
    return (f"The form shows {under['reviewer']}'s decision under review ({under['label']} / {under['action']} / "
            f"{under['policy_ref']}): saving it unchanged confirms it; another label, action or policy "
            f"reference writes a correction (a rationale either way).")


def lost_note(message: str) -> str:
    """The lease line when the heartbeat finds the hold lost; `message` is renew's reason."""
    again = ", or open this one again by its id" if "lapsed" in message else ""
    return f"Lost: {plain(message)}. What you typed is kept; press n for the next case{again}."


def refused(settings: Any, packet: dict[str, Any], armed: Optional[int], exc: Exception, what: str = "Not saved",
            restore: Optional[tuple[str, str, str]] = None) -> tuple[Any, ...]:
    """A refusal: keep the packet and everything typed; the reason goes beside its control.
    `restore` (render.restored_html): the case's header, text and side column sent again."""
    msg = f"{what}: {plain(str(exc))}"
    spot = where_error_goes(str(exc))
    errs = {k: message_html(msg, "error") if spot == k else "" for k in ("label", "rationale", "buttons")}
    lease = lease_html(None, settings, lost=msg) if spot == "lease" else gr.update()
    if spot == "lease":
        errs["buttons"] = message_html(msg, "error")
    case = restore or (gr.update(),) * 3
    return (packet, armed, *case, *([gr.update()] * (KEPT - 3)), errs["label"], errs["rationale"], errs["buttons"],
            lease, gr.update(), gr.update(), gr.update())


def needs_confirm(packet: dict[str, Any], armed: Optional[int], what: str) -> Optional[tuple[Any, ...]]:
    """A campaign decision asks once more, saying how many items it will label."""
    cc = packet.get("campaign_case")
    if not cc or armed == packet["case"]["id"]:
        return None
    n = cc["will_decide"]
    msg = (f"This decides {n} items of campaign {cc['campaign_id']} ({cc['already_decided']} already decided). "
           f"Press {what} again, or Confirm, to decide {n} items.")
    return (packet, packet["case"]["id"], *([gr.update()] * KEPT), "", "",
            message_html(msg, "confirm"), gr.update(), gr.update(), gr.update(), gr.update())


def untouched(n: int, at: int, message: str) -> tuple[Any, ...]:
    """`n` outputs left as they are but output `at`, which says `message` (an error): a key
    refused before it touched anything (the tab's state, the claim ahead, the context panel)."""
    out: list[Any] = [gr.update()] * n
    out[at] = message_html(message, "error")
    return tuple(out)


def opened(tab_id: str, packet: Optional[dict[str, Any]], case_id: Any, refusal: str) -> tuple[Any, str]:
    """After "Open in Review" (review's `open_from`): switch to the Review tab (`tab_id`) when the
    case asked for is on screen, else stay and say why in one line of inert Markdown (the
    refusal the key put beside the buttons, its HTML stripped)."""
    if packet and case_id is not None and int(packet["case"]["id"]) == int(case_id):
        return gr.Tabs(selected=tab_id), f"Opened case {int(case_id)} on the Review tab."
    why = html.unescape(re.sub(r"<[^>]+>", " ", refusal or "")).strip() or "pick a result with a case first"
    return gr.update(), f"Not opened: {md_escape(why)}"
