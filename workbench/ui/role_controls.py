"""Controls a role cannot use, shown as such when a tab opens: disabled (or hidden), with one line
saying which roles may use them, instead of enabled and refused only after a click (audit: an
analyst's Retrain and Promote, whose refusal printed below the fold; the Appeals resolve form
for analysts; an engineer's Review tab whose Next only refused).

The rule is the service's one: `core.permissions.refusal` asks `core.hooks.check_permission`
for the session's principal, and the roles named are those `core.permissions.allowed` lets do
the action under the store's roles.yaml (no second role table here). Every service call still
checks the permission itself (defence in depth): a control a stale page left enabled is refused
as before.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.permissions import allowed, refusal
from core.principals import Principal

from .format import md_escape
from .session import actor

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def roles_allowed(app: "AppContext", action: str) -> list[str]:
    """The roles of roles.yaml that may do `action` (as the role policy answers, scopes aside)."""
    roles = app.roles()
    return [name for name in roles.roles if allowed(roles, Principal(name="role-check", role=name), action)]


def may(app: "AppContext", who: Optional[str], request: Any, action: str, what: str) -> Optional[str]:
    """None when the session's principal may do `action`; else one line saying who may do `what`.
    A store without accounts (loopback, as the CLI): the analyst box's name is no signed-in
    principal, so nothing is held back here (the services decide, as before).
    A session that ended, or a store that fails: the controls are held back too (the click would
    be refused), and the line says so."""
    try:
        if not app.has_users():
            return None
        principal = actor(app, who or "", request)
        if refusal(principal, action) is None:
            return None
        role = getattr(principal, "role", None)
        names = roles_allowed(app, action)
    except Exception as exc:  # noqa: BLE001 - no principal (session ended) or a store failure
        return f"{what}: not available now ({' '.join(str(exc).split())[:160]}); reload the page."
    who_may = ", ".join(names) if names else "no role"
    return (f"{what}: only for the {who_may} role{'s' if len(names) != 1 else ''} "
            f"(permission '{action}'); your role is {role}.")


def held(note: Optional[str], n: int, hide: bool = False) -> tuple[Any, ...]:
    """`n` control updates (enabled, or disabled / hidden when `note`) and the note as Markdown."""
    if note is None:
        return (*([gr.update(interactive=True, visible=True)] * n), gr.update(value="", visible=False))
    control = gr.update(visible=False) if hide else gr.update(interactive=False)
    return (*([control] * n), gr.update(value=f"*{md_escape(note)}*", visible=True))


def claim_controls(app: "AppContext") -> Any:
    """The Review tab's page-load check: its claiming controls (`n`, Open, `c`, Ctrl+Enter, `s`:
    each claims a case when none is on screen) held back for a role without `claim` (an engineer
    landed on a Next that only refused), with the line saying who reviews."""

    def review_controls(who: str, request: gr.Request) -> tuple[Any, ...]:
        note = may(app, who, request, "claim", "Reviewing cases")
        return held(None if note is None else f"{note} The other tabs are open to you.", 6)

    return review_controls
