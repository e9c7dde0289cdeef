"""Web sessions under attack: an action Gradio runs after the session ended (queued events), a
user disabled between the guard's check and the callback, and aware datetimes in the timeouts."""
from __future__ import annotations

import datetime as dt
import pickle

import gradio as gr
import pytest
from starlette.requests import Request as StarletteRequest

from core.accounts import disable_user, set_role
from core.config import config_dir
from core.hooks import PermissionDenied
from core.permissions import load_roles
from core.principals import Principal
from core.web_sessions import end_session, list_sessions, revoke_sessions, session_user, start_session
from test_web_session import _users
from workbench.context import AppContext
from workbench.ui.session import actor

DAY = dt.timedelta(hours=12)
IDLE = dt.timedelta(minutes=30)


def _request(token: str, name: str, queued: bool) -> gr.Request:
    """The gr.Request a callback gets: the guard hands Gradio the session under its own cookie name.
    `queued`: as Gradio keeps it for an event waiting in its queue (pickled, cookies as a dict)."""
    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "query_string": b"",
             "headers": [(b"cookie", f"access-token-unsecure-abc={token}".encode())]}
    req = gr.Request(request=StarletteRequest(scope), username=name, session_hash="s1")
    return pickle.loads(pickle.dumps(req)) if queued else req


@pytest.mark.parametrize("queued", [False, True])
def test_an_action_run_after_the_session_ended_is_refused(any_store, queued):
    _users(any_store)
    app = AppContext(store=any_store)
    roles = load_roles(config_dir())
    start_session(any_store, "tok-a", "ann", absolute=DAY)
    assert actor(app, "", _request("tok-a", "ann", queued)) == Principal("ann", "analyst", "user")
    set_role(any_store, "ann", "lead", actor="boss", roles=roles)  # the account's role now, not at sign-in
    assert actor(app, "", _request("tok-a", "ann", queued)).role == "lead"
    end_session(any_store, "tok-a")  # logout while the event waited in Gradio's queue
    with pytest.raises(PermissionDenied, match="session ended"):
        actor(app, "", _request("tok-a", "ann", queued))
    start_session(any_store, "tok-b", "lee", absolute=DAY)
    revoke_sessions(any_store, "lee", actor=Principal("boss", "admin", "user"))  # an admin signs lee out
    with pytest.raises(PermissionDenied, match="session ended"):
        actor(app, "", _request("tok-b", "lee", queued))
    start_session(any_store, "tok-c", "boss", absolute=DAY)  # one user's session never stands for another
    with pytest.raises(PermissionDenied):
        actor(app, "", _request("tok-c", "lee", queued))


def test_a_user_disabled_after_the_guard_let_the_request_in_is_a_refusal(any_store):
    """Callbacks show PermissionDenied beside their button; an AccountError was a bare Gradio error."""
    _users(any_store)
    app = AppContext(store=any_store)
    disable_user(any_store, "lee", actor="boss", roles=load_roles(config_dir()))
    with pytest.raises(PermissionDenied, match="lee is disabled"):
        actor(app, "", gr.Request(username="lee"))


def test_timeouts_with_an_aware_now(any_store):
    _users(any_store)
    t0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 07:00 UTC
    start_session(any_store, "tok-z", "ann", absolute=DAY, now=t0)
    [row] = list_sessions(any_store, "ann")
    assert row["created_at"] == dt.datetime(2026, 12, 1, 7, 0)  # stored as naive UTC, offset applied
    info = session_user(any_store, "tok-z", idle=IDLE, touch=True, now=t0 + dt.timedelta(minutes=20))
    assert info is not None and info.last_seen_at == dt.datetime(2026, 12, 1, 7, 20)
    naive_later = dt.datetime(2026, 12, 1, 7, 45)  # 25 minutes after the touch: still alive
    assert session_user(any_store, "tok-z", idle=IDLE, now=naive_later) is not None
    assert session_user(any_store, "tok-z", idle=IDLE, now=t0 + dt.timedelta(minutes=51)) is None
    assert list_sessions(any_store, "ann", live_only=False)[0]["end_reason"] == "idle"
