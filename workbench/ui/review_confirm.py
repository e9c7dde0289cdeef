"""What `c` (confirm) saves on the Review tab, and when it must not (review.build_review_tab).

One keystroke per obvious case, no decision lost and none made unread:

* `c` with no case on screen claims nothing: it says to press `n`. It used to claim and show the
  next case like `n`, so a second `c` (meant for a case that was not there) confirmed a case the
  analyst had not asked to see (audit: bob's `c c` confirmed case 136 as hate at p=0.15, seen
  for 2.5 s). With a case on screen `c` saves it and shows the next (the page shows it at once):
  one key per case. A second press within 400 ms of a new case is dropped by the page
  (assets.SHORTCUTS_JS, GUARD_MS), so a bounce or a double tap decides nothing either.
* On a label-review (QA) case `c` saves nothing and says, in one line, what the form shows and
  how to save it: the form starts from the decision under review (review_actions.form_values),
  and `c` read as "the model's label" told the lead "the label you picked is not the model's"
  about a form they never touched. Why not make `c` confirm the decision under review: a
  re-review needs a rationale (labeling.decisions), so the lead types one in the rationale box
  whatever they decide, and there a plain `c` types a letter; Ctrl+Enter saves from the box,
  the form unchanged confirming the decision and a changed one correcting it. One key after the
  rationale either way, and no `c` that would confirm a decision without saying why.
"""
from __future__ import annotations

from typing import Any, Optional

from .review_actions import confirm_refusal


def no_case_note() -> str:
    """What `c` says with no case on screen (it claims nothing)."""
    return "No case on screen: press n for the next case (c confirms only a case you see)."


def confirm_choice(packet: dict[str, Any], label: Optional[str], action: Optional[str],
                   policies: dict[str, Any]) -> tuple[Optional[tuple[str, str, str]], Optional[str]]:
    """((label, action, policy_ref) `c` saves, None) or (None, why it saves nothing): the model's
    label and default action while the screen shows them (`confirm_refusal`); on a label-review
    case nothing, and the one line saying how the form there is saved."""
    under = (packet.get("label_review") or {}).get("decision")
    if under:
        decided = f"{under['reviewer']}'s decision under review ({under['label']} / {under['action']})"
        kept = (label or under["label"]) == under["label"] and (action or under["action"]) == under["action"]
        shows = f"the form shows {decided}" if kept else f"the form shows your correction ({label} / {action}) of {decided}"
        return None, (f"{shows}: type why in the rationale box, then Ctrl+Enter saves it (unchanged, it confirms the "
                      "decision); c does not save a re-review, which needs a rationale")
    why = confirm_refusal(packet, label, action, policies)
    if why:
        return None, why
    model = packet["suggested_label"]
    choice = packet["choices"][model]
    return (model, choice["default_action"], choice["policy_ref"]), None
