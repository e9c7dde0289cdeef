"""Refused actions in the audit log, whichever surface refused them (HTTP API, web UI, CLI).

A refusal (the role policy, a token's scopes or a plugin said no) is recorded as one
`permission.denied` event: who, the surface (`api`, `ui`, `cli`: the event's entity type), the
action tried (`GET /items/x`, `read campaigns`, `workbench campaigns list`: its entity id) and the
one-line refusal. A low-privilege account probing actions it may not use must show in the log on
every surface, not only the API's. Only an authenticated principal's refusal is recorded (no name
to record otherwise, and anonymous clients must not be able to grow the log), and at most
`PER_MINUTE` of one principal's a minute per application context, whatever the surface: a loop
over refused actions must not grow the log without bound nor queue on the audit chain's lock; the
next event recorded says how many were left out (`suppressed`). Recording never changes the
answer and never raises: a store or chain failure is logged, the refusal stands.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from core.principals import Principal  # standard library only

if TYPE_CHECKING:  # pragma: no cover
    from .context import AppContext

ACTION = "permission.denied"
PER_MINUTE = 10  # refusals of one principal recorded a minute; the rest are counted in the next
SURFACES = ("api", "ui", "cli")
log = logging.getLogger("workbench.refusals")


class RefusalBudget:
    """Per principal: at most `per_minute` recorded refusals in any 60-second window (a fixed
    window from the first), and how many were left out since the last one recorded."""

    def __init__(self, per_minute: int = PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._lock = threading.Lock()
        self._window: dict[str, tuple[float, int, int]] = {}  # name -> (window start, recorded, suppressed)

    def take(self, name: str) -> Optional[int]:
        """The refusals suppressed before this one when it may be recorded; None when it may not."""
        now = self.clock()
        with self._lock:
            if len(self._window) > 10_000:  # many principals: forget the windows that ended
                self._window = {k: v for k, v in self._window.items() if now - v[0] < 60.0}
            start, n, skipped = self._window.get(name, (now, 0, 0))
            if now - start >= 60.0:
                start, n = now, 0
            if n >= self.per_minute:
                self._window[name] = (start, n, skipped + 1)
                return None
            self._window[name] = (start, n + 1, 0)
            return skipped


_BUDGETS: "weakref.WeakKeyDictionary[Any, RefusalBudget]" = weakref.WeakKeyDictionary()
_BUDGETS_LOCK = threading.Lock()


def budget_for(app: Any) -> RefusalBudget:
    """The refusal budget of one application context (one server or one command: its principals'
    windows), shared by every surface that context serves."""
    with _BUDGETS_LOCK:
        if app not in _BUDGETS:
            _BUDGETS[app] = RefusalBudget()
        return _BUDGETS[app]


def clean(value: str, n: int) -> str:
    """`value` on one printable line of at most `n` characters that every store takes (no NUL,
    no lone surrogate): an action names the client's hostile input (a path, an id)."""
    from core.text import one_line

    return one_line(value, n).encode("utf-8", "replace").decode("utf-8")


def audit_refusal(app: "AppContext", who: Optional[Any], surface: str, action: str, detail: str) -> bool:
    """Record `who`'s refused `action` on `surface` (`detail` the refusal's one line) as
    `permission.denied`; True when recorded. Nothing for a caller that is not an authenticated
    Principal; never raises (a failure is logged, one line). The budget is `budget_for(app)`'s."""
    if not isinstance(who, Principal):
        return False
    try:
        from core import audit

        suppressed = budget_for(app).take(who.name)
        if suppressed is None:
            return False
        with app.store().begin() as conn:
            audit.record(conn, who, ACTION, clean(str(surface), 20), clean(str(action), 200),
                         {"detail": clean(str(detail), 300), "role": who.role, "surface": clean(str(surface), 20),
                          "scoped": who.scopes is not None, **({"suppressed": suppressed} if suppressed else {})})
    except Exception as exc:  # noqa: BLE001 - the refusal stands whether or not it is recorded
        log.error("refusal of %s not audited: %s", who.name, clean(f"{type(exc).__name__}: {exc}", 300))
        return False
    return True
