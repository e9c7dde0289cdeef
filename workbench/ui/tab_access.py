"""What the tabs beside Review check before they show or act (Campaigns, Appeals, Operations,
Evaluation, Search): who reads, and what a hostile id or a failing store becomes on screen.

`check_reader`: on a store with accounts the session's principal must hold `read` (roles.yaml:
"queues, cases (masked), campaigns, items, status, reports"), checked server-side by the role
policy on every call, so a role without it, or a session that ended while the event waited in
Gradio's queue, is refused instead of shown the list. `row_id`: an id a client sent (a number
box, a clicked cell, a dropdown) as a whole number the store can hold, else a one-line refusal.
`said`: any refusal as one line of inert Markdown (a store failure without its SQL).
`refused`: a PermissionDenied a callback caught, in the audit log as `workbench.refusals` records
the API's 403s (surface `ui`), so a signed-in account probing the UI's actions shows there too.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from core.hooks import PermissionDenied, check_permission
from core.schema import MAX_ROW_ID

from .format import md_escape
from .review_hold import refusal
from .session import actor

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def check_reader(app: "AppContext", who: Optional[str], request: Any, what: str) -> Any:
    """The principal reading `what` once `read` is allowed (raises PermissionDenied); None on a
    store without accounts, served on loopback, where reading needs no name (as the CLI)."""
    if not app.has_users():
        return None
    principal = actor(app, who or "", request)
    try:
        check_permission(principal, "read", what)
    except PermissionDenied as exc:
        _audit(app, principal, f"read {what}", exc)
        raise
    return principal


def refused(app: "AppContext", who: Optional[str], request: Any, action: str, exc: BaseException) -> None:
    """Audit `exc` when it is a refusal (PermissionDenied) of the session's signed-in principal
    trying `action` (`workbench.refusals`: surface `ui`, budgeted); anything else, a store without
    accounts or a session that ended, records nothing. Never raises: the callback still shows it."""
    if not isinstance(exc, PermissionDenied):
        return
    try:
        if not app.has_users():  # the analyst box's name is not an authenticated principal
            return
        principal = actor(app, who or "", request)
    except Exception:  # noqa: BLE001 - no principal (session ended, store down): nothing to record
        return
    _audit(app, principal, action, exc)


def _audit(app: "AppContext", principal: Any, action: str, exc: BaseException) -> None:
    from ..refusals import audit_refusal

    audit_refusal(app, principal, "ui", action, str(exc))


def row_id(value: Any, what: str) -> int:
    """`value` as a row id from 1 to MAX_ROW_ID: a client may send 1e30, inf, NaN or text, which
    failed in `int()` or in the store's query (with its SQL) instead of being refused."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"the {what} must be a whole number, not {str(value)[:40]!r}") from None
    if not (math.isfinite(number) and number.is_integer() and 1 <= number <= MAX_ROW_ID):
        raise ValueError(f"the {what} must be a whole number from 1 to {MAX_ROW_ID}, not {value!r}")
    return int(number)


def page_number(value: Any) -> int:
    """A page box: a whole number from 1 (anything else, NaN or inf included, is page 1), at most
    MAX_ROW_ID (an offset the store can hold)."""
    try:
        number = float(value or 1)
    except (TypeError, ValueError, OverflowError):
        return 1
    return int(min(max(number, 1), MAX_ROW_ID)) if math.isfinite(number) else 1


def one_line(exc: Exception, then: str = "nothing was changed: try again") -> str:
    """A refusal as one line of plain text (a table cell, a label): a store failure as
    `review_hold.refusal` says it (no SQL, no values), `then` saying what became of the action."""
    return " ".join(str(refusal(exc, then)).split())


def said(exc: Exception, then: str = "nothing was changed: try again") -> str:
    """`one_line` as Markdown, every text escaped (a message may quote a stored name or a value a
    client sent, which must not become a link, an image or a tag)."""
    return md_escape(one_line(exc, then))
