"""Web sessions, third round:

1. The session cookie had the same name over https as over http: a sibling subdomain or a
   plain-http neighbour could plant one (session fixation, or the victim signed out). Over https
   (or `secure_cookies: always`) it is now `__Host-<name>` (Secure, Path=/, no Domain) and an
   unprefixed cookie is not read there.
2. A password reset between a sign-in's password check and the start of its session ended every
   live session but not that one (not yet live): a session opened with the old password survived
   the reset. The sign-in now carries the password stamp read before the check.
3. The absolute timeout was fixed into each session at sign-in: lowering it in web.yaml (and
   restarting) left every live session running under the old one.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.parse

import pytest
from sqlalchemy import select, text, update

import core.accounts
from core.accounts import hash_password, set_password
from core.hooks import PermissionDenied
from core.schema import User, utcnow
from core.web_sessions import (SessionError, end_user_sessions, list_sessions, password_stamp, session_user,
                               start_session)
from test_web_session import Server, _configs, _users
from workbench.context import AppContext
from workbench.ui.session import actor

U = User.__table__
DAY = dt.timedelta(hours=12)
IDLE = dt.timedelta(minutes=30)
ONE_HOUR = "session: {absolute_timeout_hours: 1, idle_timeout_seconds: 86400}\n"  # idle: never, here


@pytest.fixture
def served(sqlite_store, tmp_path):
    """`served(web_yaml)`: a real server over a store with users (as in test_web_session)."""
    started: list[Server] = []

    def start(web_yaml: str = "{}\n") -> Server:
        if not started:
            _users(sqlite_store)
        started.append(Server(sqlite_store, _configs(tmp_path, web_yaml)))
        return started[-1]

    yield start
    for srv in started:
        srv.close()


def _attrs(set_cookie: str) -> list[str]:
    return [a.strip().lower() for a in set_cookie.split(";")[1:]]


# -- 1. __Host- cookie ----------------------------------------------------------------------------
def test_the_cookie_is_host_prefixed_when_secure(served):
    srv = served("session: {secure_cookies: always}\n")
    status, hdrs, _ = srv.login("ann", "ann-pass-123")
    assert status == 200
    [cookie] = hdrs["set-cookie"]
    assert cookie.startswith(f"__Host-{srv.cookie_name}="), cookie
    attrs = _attrs(cookie)
    assert "secure" in attrs and "path=/" in attrs and not any(a.startswith("domain") for a in attrs)
    jar = cookie.split(";")[0]
    value = jar.split("=", 1)[1]
    assert srv.user(jar) == "ann"
    # a cookie without the prefix (anyone on a sibling domain or plain http can set one) is no session
    assert srv.user(f"{srv.cookie_name}={value}") is None
    status, hdrs, _ = srv.req("POST", "/logout", headers={"Cookie": jar, "Origin": srv.origin})
    assert status == 303 and hdrs["set-cookie"][0].startswith(f"__Host-{srv.cookie_name}=;")
    assert "max-age=0" in _attrs(hdrs["set-cookie"][0]) and srv.user(jar) is None


def test_the_cookie_is_host_prefixed_over_https_from_a_trusted_proxy(served):
    srv = served("trusted_proxies: [127.0.0.1/32]\n")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "wb.example.org"}
    status, hdrs, _ = srv.req("POST", "/login", urllib.parse.urlencode({"username": "ann", "password": "ann-pass-123"}),
                              {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://wb.example.org",
                               **https})
    assert status == 200 and hdrs["set-cookie"][0].startswith(f"__Host-{srv.cookie_name}=")
    jar = hdrs["set-cookie"][0].split(";")[0]
    assert srv.user(jar, headers=https) == "ann"
    planted = f"{srv.cookie_name}={jar.split('=', 1)[1]}"
    assert srv.user(planted, headers=https) is None
    assert srv.sign_in("lee", "lee-pass-123").startswith(f"{srv.cookie_name}=")  # plain http: no prefix


# -- 2. a password reset racing a sign-in ----------------------------------------------------------
def test_a_session_checked_against_a_reset_password_does_not_start(any_store):
    _users(any_store)
    stamp = password_stamp(any_store, "ann")
    assert stamp is not None and password_stamp(any_store, "nobody") is None
    assert password_stamp(any_store, "a\x00b") is None  # no query with a NUL (PostgreSQL refuses it)
    set_password(any_store, "ann", "ann-new-pass-1", actor="boss")  # the reset, after the check
    with pytest.raises(SessionError, match="password of 'ann' changed"):
        start_session(any_store, "tok-old", "ann", absolute=DAY, stamp=stamp)
    assert list_sessions(any_store, "ann") == [] and session_user(any_store, "tok-old", idle=IDLE) is None
    start_session(any_store, "tok-new", "ann", absolute=DAY, stamp=password_stamp(any_store, "ann"))
    assert session_user(any_store, "tok-new", idle=IDLE) is not None


def test_a_reset_and_a_session_start_at_the_same_moment_on_postgresql(pg_store):
    """On PostgreSQL the session's start read the old password while a reset was between its
    update and its commit (the reset had already ended the live sessions): the new session outlived
    the reset. Its start now locks the account's row, waits for the reset and sees the new password.
    (SQLite's BEGIN IMMEDIATE already serialises the two.)"""
    _users(pg_store)
    stamp = password_stamp(pg_store, "ann")
    result: dict = {}

    def sign_in() -> None:
        try:
            start_session(pg_store, "tok-race", "ann", absolute=DAY, stamp=stamp)
            result["started"] = True
        except SessionError as exc:
            result["refused"] = str(exc)

    with pg_store.begin() as conn:  # the reset, caught between its update and its commit
        uid = conn.execute(select(U.c.id).where(U.c.name == "ann")).scalar_one()
        conn.execute(update(U).where(U.c.id == uid).values(password_hash=hash_password("ann-new-pass-1")))
        end_user_sessions(conn, uid, "ann", "password", "boss")
        racer = threading.Thread(target=sign_in)
        racer.start()
        for _ in range(6000):  # until the sign-in has finished, or waits for the reset's row lock
            if not racer.is_alive():
                break
            with pg_store.read() as probe:
                if probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")).scalar():
                    break
            time.sleep(0.005)
    racer.join(60)
    assert "refused" in result and "changed while signing in" in result["refused"], result
    assert session_user(pg_store, "tok-race", idle=IDLE) is None and list_sessions(pg_store, "ann") == []


def test_a_reset_between_the_password_check_and_the_session_wins(served, monkeypatch):
    checked = core.accounts.verify_password

    def then_reset(store, name, password, now=None):
        who = checked(store, name, password, now)
        if who is not None and name == "ann":  # an admin resets ann's password just after the check
            set_password(store, "ann", "ann-new-pass-1", actor="boss")
        return who

    monkeypatch.setattr(core.accounts, "verify_password", then_reset)
    srv = served()
    status, hdrs, body = srv.login("ann", "ann-pass-123")
    assert status == 400 and b"changed while signing in" in body, (status, body)
    assert "set-cookie" not in hdrs and list_sessions(srv.store, "ann") == []
    assert srv.sign_in("lee", "lee-pass-123")  # others sign in as before


# -- 3. a lowered absolute timeout -------------------------------------------------------------------
def test_a_lowered_absolute_timeout_bounds_live_sessions(any_store):
    _users(any_store)
    t0 = dt.datetime(2026, 12, 1, 9, 0)
    start_session(any_store, "tok-a", "ann", absolute=DAY, now=t0)  # signed in under a 12-hour timeout
    later = t0 + dt.timedelta(hours=2)
    info = session_user(any_store, "tok-a", idle=DAY, absolute=dt.timedelta(hours=3), now=later)
    assert info is not None and info.expires_at == t0 + dt.timedelta(hours=3)
    assert session_user(any_store, "tok-a", idle=DAY, absolute=dt.timedelta(hours=1), now=later) is None
    assert [r["end_reason"] for r in list_sessions(any_store, "ann", live_only=False)] == ["expired"]


def test_a_lowered_absolute_timeout_over_http_and_in_callbacks(served, tmp_path):
    import gradio as gr
    from starlette.requests import Request as StarletteRequest

    srv = served(ONE_HOUR)
    start_session(srv.store, "tok-old", "ann", absolute=DAY, now=utcnow() - dt.timedelta(hours=2))
    start_session(srv.store, "tok-cb", "lee", absolute=DAY, now=utcnow() - dt.timedelta(hours=2))
    assert srv.user(f"{srv.cookie_name}=tok-old") is None
    assert srv.req("GET", "/session", headers={"Cookie": f"{srv.cookie_name}=tok-old"})[0] == 401
    jar = srv.sign_in("ann", "ann-pass-123")
    status, _, body = srv.req("GET", "/session", headers={"Cookie": jar})
    expires = dt.datetime.fromisoformat(json.loads(body)["expires_at"].rstrip("Z"))
    assert status == 200 and expires <= utcnow() + dt.timedelta(hours=1)
    # a Gradio callback re-checks the session with the configured timeout too
    app = AppContext(store=srv.store, config_dir_=_configs(tmp_path / "cb", ONE_HOUR))
    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "query_string": b"",
             "headers": [(b"cookie", b"access-token-unsecure-abc=tok-cb")]}
    with pytest.raises(PermissionDenied, match="session ended"):
        actor(app, "", gr.Request(request=StarletteRequest(scope), username="lee", session_hash="s1"))


# -- 4. the per-client sign-in throttle and IPv6 ------------------------------------------------------
def test_the_sign_in_throttle_counts_an_ipv6_client_by_its_64(served):
    """An IPv6 client holds a /64 (2**64 addresses): counted per address, it got a fresh
    allowance of failed sign-ins from each one, so the per-client limit limited nothing."""
    from starlette.testclient import TestClient

    srv = served("login: {max_failures_per_client: 3, window_seconds: 600}\n")

    def login(address: str, name: str, password: str) -> int:
        client = TestClient(srv.blocks.app, client=(address, 5000), base_url=srv.origin)
        return client.post("/login", data={"username": name, "password": password},
                           headers={"Origin": srv.origin}).status_code

    for i, name in enumerate(("nobody", "ghost", "nobody")):
        assert login(f"2001:db8:1:2::{i + 1}", name, "guess-123") == 400
    assert login("2001:db8:1:2:ffff::9", "lee", "lee-pass-123") == 429  # same /64, another address
    assert login("2001:db8:1:3::1", "lee", "lee-pass-123") == 200  # another /64
    # an IPv4-mapped address is its IPv4 address
    for address in ("::ffff:192.0.2.7", "192.0.2.7", "::ffff:192.0.2.7"):
        assert login(address, "ghost", "guess-123") == 400
    assert login("192.0.2.7", "ann", "ann-pass-123") == 429
    assert login("192.0.2.8", "ann", "ann-pass-123") == 200


def test_a_cookie_name_with_a_prefix_of_its_own_is_refused(tmp_path):
    """`cookie_name: __Host-wb` passed: over plain http browsers drop a __Host- / __Secure- cookie
    (no sign-in ever held), over https it became `__Host-__Host-wb_<port>`."""
    from core.config import ConfigError
    from core.web_config import load_web_config

    for name in ("__Host-wb", "__host-wb", "__Secure-wb", "__SECURE-x"):
        (tmp_path / "web.yaml").write_text(f"session: {{cookie_name: {name}}}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"web.yaml: field 'session.cookie_name'.*leave out the __Host-"):
            load_web_config(tmp_path)
    (tmp_path / "web.yaml").write_text("session: {cookie_name: __wb_Host-x}\n", encoding="utf-8")
    assert load_web_config(tmp_path).session.cookie_name == "__wb_Host-x"


def test_a_get_logout_without_sec_fetch_site_needs_a_referer_of_this_server(served):
    """A browser that sends no Sec-Fetch-Site (older Safari, Firefox) had a GET /logout read as
    same-origin: any page's link or image signed the user out (with SameSite=Lax the cookie went
    along). Without that header a GET now needs a Referer (or Origin) of this server."""
    srv = served("session: {same_site: lax}\n")
    jar = srv.sign_in("ann", "ann-pass-123")
    for headers in ({}, {"Referer": "https://evil.example/page"}, {"Origin": "https://evil.example"}):
        assert srv.req("GET", "/logout", headers={"Cookie": jar, **headers})[0] == 403, headers
        assert srv.user(jar) == "ann"
    status, hdrs, _ = srv.req("GET", "/logout", headers={"Cookie": jar, "Referer": srv.origin + "/"})
    assert status == 303 and srv.user(jar) is None
