"""The HTTP API's refusals in the audit log, out of `workbench.api` so that module stays small.

A 403 (the role policy, a token's scopes or a plugin refused) is recorded as one
`permission.denied` event on surface `api`: who, which route (`GET /items/x`) and the one-line
refusal. The budget, the rules (authenticated principals only, never changing the answer) and
the recording are `workbench.refusals`', shared with the web UI and the CLI; the names here stay
for the API and its tests (`budget_for` is looked up here at each call, so it can be replaced).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .refusals import ACTION, PER_MINUTE, RefusalBudget, budget_for, clean as _clean
from .refusals import audit_refusal as _record

if TYPE_CHECKING:  # pragma: no cover
    from .context import AppContext

__all__ = ["ACTION", "PER_MINUTE", "RefusalBudget", "audit_refusal", "budget_for", "_clean"]


def audit_refusal(app: "AppContext", who: Optional[Any], method: str, path: str, detail: str) -> bool:
    """Record `who`'s refused request (`method` `path`, `detail` the 403's one line) as
    `permission.denied` on surface `api`; True when recorded (see `workbench.refusals`)."""
    return _record(app, who, "api", f"{method} {path}", detail, budgets=lambda a: budget_for(a))
