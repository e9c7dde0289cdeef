"""What keeps a key of the Review tab from losing a decision or applying it blind (review.submit,
review.escalate, review.claim_next).

A decision or an escalation goes only to a case the analyst still holds: the tab calls
`labeling.decisions.decide` and `labeling.packets.escalate_with_packet` with `holder_only=True`,
which check the hold in the transaction that saves, under the case's lock, so a hold that lapsed,
went back to its queue, was decided or escalated, or was taken by someone else is refused with
what became of it. (The screen once renewed the claim in a transaction of its own first: the
hold could still change between that check and the save.) A store that fails (busy, gone) is a
refusal too (`refusal`): the screen keeps the case and says nothing was saved, where Gradio
showed a bare "Error" and, after `c`, left the next case on screen as if this one were done.
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from labeling.errors import QueueError

# What a store that is busy or gone raises through a service (a transaction rolled back), and a
# connection pool with every connection taken for its whole timeout (busy too; not a DBAPIError).
STORE_ERRORS = (DBAPIError, PoolTimeout)


def refusal(exc: Exception, then: str = "nothing was saved: press the key again") -> Exception:
    """`exc` as the screen says it: a store failure becomes a one-line refusal (no SQL, no
    values) saying `then` (what became of the key), any other refusal stays as it is."""
    if isinstance(exc, STORE_ERRORS):
        orig = getattr(exc, "orig", None)
        kind = type(orig).__name__ if orig is not None else type(exc).__name__
        return QueueError(f"the store is busy or unavailable ({kind}), {then}")
    return exc


def idle_now(idle_ms: Any, idle_seconds: float) -> bool:
    """True when the page's idle time (ms since the analyst's last key or click) says the hold
    should not be renewed: past `idle_seconds`, or not a finite, non-negative number (NaN
    compared as "active" and a hostile or broken page renewed the hold forever)."""
    if isinstance(idle_ms, bool) or not isinstance(idle_ms, (int, float)):
        return True
    if isinstance(idle_ms, float) and not math.isfinite(idle_ms):
        return True
    return idle_ms < 0 or idle_ms > idle_seconds * 1000  # no division: a huge int overflowed a float
