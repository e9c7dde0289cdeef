"""What keeps a key of the Review tab from losing a decision or applying it blind (review.submit,
review.escalate, review.claim_next).

A decision or an escalation goes only to a case the analyst still holds: `check_held` renews the
claim first (`labeling.claims.renew`), so a hold that lapsed, whether the case still sits lapsed,
went back to its queue or was taken by someone else, is refused with what became of it. Without
it `labeling.decisions.decide` accepted an open or lapsed case, and a decision typed on a case the
screen had lost was saved with no word. A store that fails (busy, gone) is a refusal too
(`refusal`): the screen keeps the case and says nothing was saved, where Gradio showed a bare
"Error" and, after `c`, left the next case on screen as if this one were done.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError

from core.principals import actor_name
from labeling.cases import case_detail
from labeling.claims import renew
from labeling.errors import QueueError

# What a store that is busy or gone raises through a service (a transaction rolled back).
STORE_ERRORS = (DBAPIError,)


def check_held(store: Any, case_id: int, principal: Any, config: Any) -> None:
    """Refuse (QueueError) unless `principal` still holds `case_id`, renewing the hold: a key acts
    only on a case the screen still has. A case another analyst holds now is named as such."""
    try:
        renew(store, case_id, principal, config)
    except QueueError as exc:
        case = case_detail(store, case_id)
        who = actor_name(principal)
        if case["state"] == "claimed" and case["claimed_by"] and case["claimed_by"] != who:
            raise QueueError(f"case {case_id} is claimed by {case['claimed_by']} now, no longer by {who}: "
                             "nothing was saved; press n for the next case") from exc
        raise


def refusal(exc: Exception, then: str = "nothing was saved: press the key again") -> Exception:
    """`exc` as the screen says it: a store failure becomes a one-line refusal (no SQL, no
    values) saying `then` (what became of the key), any other refusal stays as it is."""
    if isinstance(exc, STORE_ERRORS):
        kind = type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
        return QueueError(f"the store is busy or unavailable ({kind}), {then}")
    return exc
