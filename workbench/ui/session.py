"""Who acts in the web UI: the signed-in user once the store has accounts, else the name typed.

With accounts, Gradio's login page (`launch(auth=...)`, checked by `core.accounts.verify_password`:
argon2 and the per-(account, address) and per-account limits, in a worker thread, given the
client's address) guards every page, queue and
`/gradio_api` endpoint: a request without a session gets 401 and never reaches a callback. The
session itself (in the store, idle timeout, logout, cookies, CSRF, login throttle, SSO proxy) is
`web_guard`'s. Each callback builds the Principal from the request's session, re-reading it
and the account, so a session ended (logout, idle, revoked) or a user disabled while the event
waited in Gradio's queue stops there, and the role the services check is the account's now. The
analyst box only names the actor on a store without accounts (served on loopback).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

import gradio as gr

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext


def actor(app: "AppContext", who: str, request: Optional[gr.Request]) -> Any:
    """The Principal of the session's user (accounts), else the analyst box's name."""
    if app.has_users():
        from core.accounts import AccountError, principal_for_user
        from core.hooks import PermissionDenied

        name = getattr(request, "username", None)
        if not name:
            raise PermissionDenied("sign in first")
        app.roles()  # the roles policy (core.permissions) is installed once per process
        token = session_token(request)
        if token is not None and not token.startswith("sso-"):  # SSO: the proxy's user, re-read below
            from core.web_sessions import session_user

            info = session_user(app.store(), token, idle=_idle(app), absolute=_absolute(app))
            if info is None or info.principal.name != name:
                raise PermissionDenied("your session ended (logout, timeout or revoked): sign in again")
            return info.principal
        try:
            return principal_for_user(app.store(), name)
        except AccountError as exc:  # disabled or gone since the request was let in: a refusal
            raise PermissionDenied(f"{exc}: sign in again") from None
    return box_name(who)


def session_token(request: Any) -> Optional[str]:
    """The session token the web guard handed Gradio for this request (`access-token*` cookie;
    the guard drops any a client sends itself), or None (no guard: a direct call).

    Gradio checks the session when an event joins its queue and runs the callback later (after
    the queue's wait, or a generator's steps): a logout, revocation or idle end meanwhile must
    stop the action, so `actor` checks the session again, not just the account."""
    cookies = getattr(request, "cookies", None)
    try:
        for key in list(cookies.keys()) if cookies is not None else []:
            if str(key).startswith("access-token") and isinstance(cookies[key], str) and cookies[key]:
                return cookies[key]
    except (AttributeError, KeyError, TypeError):
        return None
    return None


def _idle(app: "AppContext") -> Any:
    import datetime as dt

    return dt.timedelta(seconds=app.web().session.idle_timeout_seconds)


def _absolute(app: "AppContext") -> Any:
    """The configured absolute timeout now: a lowered one bounds sessions started before it."""
    import datetime as dt

    return dt.timedelta(hours=app.web().session.absolute_timeout_hours)


def box_name(who: Optional[str]) -> str:
    """The analyst box's name once the CLI's `--as` check accepts it: a blank, odd or reserved
    name would be recorded as the actor. Refused as PermissionDenied (one line), which every
    caller already shows beside its button, before any service is called."""
    from core.hooks import PermissionDenied
    from core.principals import InvalidName, check_name

    try:
        return check_name(who.strip() if isinstance(who, str) else "", "name")
    except InvalidName as exc:
        raise PermissionDenied(f"type your name in the Analyst box ({exc})") from None


def login_client() -> Optional[str]:
    """The address of the sign-in being checked (the web guard's view of the request: the peer,
    or a trusted proxy's X-Forwarded-For), or None outside a guarded request. The password check
    limits failures per (account, client) with it, so guesses lock out their source, not the
    account's owner signing in from elsewhere (`core.accounts.verify_password`)."""
    from . import web_guard

    client = web_guard.current_client()  # Gradio's `auth` callable is given no request: the guard's context
    return client if isinstance(client, str) and client and client != "unknown" else None


LOGIN_THREADS = 4  # password checks at once: argon2 takes ~64 MiB and a core each


def login_check(app: "AppContext") -> Optional[Callable[[str, str], Awaitable[bool]]]:
    """Gradio's `auth` callable for a store with accounts (None without: no login page).

    A coroutine, so Gradio awaits it: the check (argon2, store writes) runs in a worker thread
    instead of freezing the event loop for everyone, in a pool of its own so a flood of sign-ins
    cannot take the threads other requests need. The account's password stamp is read before the
    check and handed to the guard, so a reset between the check and the session's start (which
    ends every live session, and this one was not yet) refuses that session instead."""
    if not app.has_users():
        return None
    import anyio
    import anyio.to_thread

    from core.accounts import verify_password
    from core.web_sessions import SIGN_IN_CLIENT, password_stamp

    from .web_guard import note_password_stamp

    limiter: list[anyio.CapacityLimiter] = []  # made on first use, inside the server's event loop

    def verify(username: str, password: str, client: Optional[str]) -> tuple[bool, Optional[str]]:
        stamp = password_stamp(app.store(), username)  # before the check: a reset after it shows
        reset = SIGN_IN_CLIENT.set(client)  # read by verify_password (its signature stays as it was)
        try:
            return verify_password(app.store(), username, password) is not None, stamp
        finally:
            SIGN_IN_CLIENT.reset(reset)

    async def check(username: str, password: str) -> bool:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(LOGIN_THREADS))
        ok, stamp = await anyio.to_thread.run_sync(verify, username, password, login_client(),
                                                   limiter=limiter[0])
        if ok:
            note_password_stamp(username, stamp)
        return ok

    return check
