"""Web sessions (issue 16): sessions in the store with an idle timeout and logout, cookie
attributes, CSRF on every state-changing request, throttled sign-ins, the single-sign-on proxy
mode (trusted addresses only), and `configs/web.yaml`.

Raw HTTP against a real server (`serve(..., block=False)`) with valid session cookies, and
starlette's TestClient where a test needs another client address.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import shutil
import socket
import time
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.accounts import add_user, disable_user, set_password, verify_password
from core.config import ConfigError, config_dir
from core.hooks import PermissionDenied
from core.permissions import load_roles
from core.principals import Principal
from core.schema import AuditEvent, Case, WebSession
from core.web_config import load_web_config
from core.web_sessions import (end_session, list_sessions, revoke_sessions, session_hash, session_user,
                               start_session)

IDLE = dt.timedelta(minutes=30)
DAY = dt.timedelta(hours=12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _users(store) -> None:
    roles = load_roles(config_dir())
    add_user(store, "boss", "admin", actor="setup", roles=roles, password="boss-pass-123")
    add_user(store, "ann", "analyst", actor="setup", roles=roles, password="ann-pass-123")
    add_user(store, "lee", "lead", actor="setup", roles=roles, password="lee-pass-123")


def _configs(tmp_path: Path, web_yaml: str) -> Path:
    """A copy of the bundled configs with this test's web.yaml."""
    out = tmp_path / "configs"
    if not out.exists():
        shutil.copytree(config_dir(), out)
    (out / "web.yaml").write_text(web_yaml, encoding="utf-8")
    return out


class Server:
    """A served workbench and a tiny raw-HTTP client for it."""

    def __init__(self, store, configs: Path) -> None:
        from workbench.context import AppContext
        from workbench.ui import serve

        self.store = store
        self.port = _free_port()
        self.ctx = AppContext(store=store, config_dir_=configs)
        self.blocks = serve(self.ctx, port=self.port, block=False)
        self.origin = f"http://127.0.0.1:{self.port}"
        self.cookie_name = f"wb_session_{self.port}"

    def req(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            hdrs: dict[str, list[str]] = {}
            for k, v in r.getheaders():
                hdrs.setdefault(k.lower(), []).append(v)
            return r.status, hdrs, data
        finally:
            conn.close()

    def login(self, name: str, password: str, origin: str | None = "same") -> tuple[int, dict, bytes]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "same" else origin
        return self.req("POST", "/login", urllib.parse.urlencode({"username": name, "password": password}), headers)

    def sign_in(self, name: str, password: str) -> str:
        """The session cookie ("name=value") of a good sign-in."""
        status, hdrs, body = self.login(name, password)
        assert status == 200, body
        [cookie] = hdrs["set-cookie"]
        return cookie.split(";")[0]

    def user(self, cookie: str | None = None, headers=None) -> object:
        """Who Gradio itself sees for this request (its /gradio_api/user route)."""
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        status, _, body = self.req("GET", "/gradio_api/user", headers=h)
        assert status == 200, body
        return json.loads(body)

    def close(self) -> None:
        self.blocks.close()


@pytest.fixture
def served(sqlite_store, tmp_path):
    """`served(web_yaml)`: a server over a store with users, configured by that web.yaml."""
    started: list[Server] = []

    def start(web_yaml: str = "{}\n", users: bool = True) -> Server:
        if users and not started:
            _users(sqlite_store)
        srv = Server(sqlite_store, _configs(tmp_path, web_yaml))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.close()


def _claimed(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(Case).where(Case.state == "claimed")).scalar()


def _events(store, action: str) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == action)
                                              .order_by(AuditEvent.id)).mappings()]


# -- configs/web.yaml ------------------------------------------------------------------------------
def test_web_config_defaults_and_errors(tmp_path):
    web = load_web_config(config_dir())
    assert web.session.idle_timeout_seconds == 1800 and web.session.same_site == "strict"
    assert web.trusted_proxies == [] and not web.sso.enabled and not web.trusted("127.0.0.1")
    assert load_web_config(tmp_path).session.cookie_name == "wb_session"  # a folder without web.yaml: defaults
    (tmp_path / "web.yaml").write_text("sso: {enabled: true}\n")
    with pytest.raises(ConfigError, match=r"web.yaml: field .*sso.enabled needs trusted_proxies"):
        load_web_config(tmp_path)
    (tmp_path / "web.yaml").write_text("trusted_proxies: [10.0.0.0/8, not-an-ip]\n")
    with pytest.raises(ConfigError, match=r"field 'trusted_proxies'.*'not-an-ip' is not an IP address"):
        load_web_config(tmp_path)
    (tmp_path / "web.yaml").write_text("session: {idle_timeout_seconds: 0}\n")
    with pytest.raises(ConfigError, match=r"field 'session.idle_timeout_seconds'"):
        load_web_config(tmp_path)
    (tmp_path / "web.yaml").write_text("trusted_proxies: [10.1.0.0/16]\n")
    web = load_web_config(tmp_path)
    assert web.trusted("10.1.2.3") and not web.trusted("10.2.0.1") and not web.trusted(None)


# -- the session store -------------------------------------------------------------------------------
def test_sessions_in_the_store(any_store):
    _users(any_store)
    t0 = dt.datetime(2026, 12, 1, 9, 0)
    sid = start_session(any_store, "tok-1", "ann", absolute=DAY, client="10.0.0.7", now=t0)
    info = session_user(any_store, "tok-1", idle=IDLE, now=t0 + dt.timedelta(minutes=10), touch=True)
    assert info is not None and info.id == sid and info.principal == Principal("ann", "analyst", "user")
    # activity moved the idle clock: 29 minutes after the touch it is still alive, not after 31
    assert session_user(any_store, "tok-1", idle=IDLE, now=t0 + dt.timedelta(minutes=39)) is not None
    assert session_user(any_store, "tok-1", idle=IDLE, now=t0 + dt.timedelta(minutes=41)) is None
    assert session_user(any_store, "tok-1", idle=IDLE, now=t0 + dt.timedelta(minutes=11)) is None  # ended for good
    with any_store.read() as conn:
        row = conn.execute(select(WebSession.__table__).where(WebSession.id == sid)).mappings().one()
    assert row["end_reason"] == "idle" and row["token_hash"] == session_hash("tok-1") and row["client"] == "10.0.0.7"
    # only the hash is stored
    with any_store.read() as conn:
        assert conn.execute(select(func.count()).select_from(WebSession)
                            .where(WebSession.token_hash == "tok-1")).scalar() == 0

    # absolute expiry, however active
    start_session(any_store, "tok-2", "ann", absolute=dt.timedelta(hours=1), now=t0)
    for minutes in (20, 40, 59):
        assert session_user(any_store, "tok-2", idle=IDLE, touch=True, now=t0 + dt.timedelta(minutes=minutes))
    assert session_user(any_store, "tok-2", idle=IDLE, now=t0 + dt.timedelta(minutes=61)) is None

    # logout, disable, new password and revocation end sessions at once
    start_session(any_store, "tok-3", "ann", absolute=DAY)
    assert end_session(any_store, "tok-3") and not end_session(any_store, "tok-3")
    assert session_user(any_store, "tok-3", idle=IDLE) is None
    start_session(any_store, "tok-4", "lee", absolute=DAY)
    start_session(any_store, "tok-5", "lee", absolute=DAY)
    set_password(any_store, "lee", "lee-new-pass-1", actor="boss")
    assert session_user(any_store, "tok-4", idle=IDLE) is None and session_user(any_store, "tok-5", idle=IDLE) is None
    start_session(any_store, "tok-6", "lee", absolute=DAY)
    analyst = Principal("ann", "analyst", "user")
    from workbench.context import AppContext

    AppContext(store=any_store).roles()  # install the role policy
    with pytest.raises(PermissionDenied, match="users"):
        revoke_sessions(any_store, "lee", actor=analyst)
    assert session_user(any_store, "tok-6", idle=IDLE) is not None
    assert revoke_sessions(any_store, "lee", actor=Principal("boss", "admin", "user")) == {"user": "lee", "ended": 1}
    assert session_user(any_store, "tok-6", idle=IDLE) is None
    start_session(any_store, "tok-7", "ann", absolute=DAY)
    disable_user(any_store, "ann", actor="boss", roles=load_roles(config_dir()))
    assert session_user(any_store, "tok-7", idle=IDLE) is None
    reasons = {r["end_reason"] for r in list_sessions(any_store, live_only=False)}
    assert reasons == {"idle", "expired", "logout", "password", "revoked", "disabled"}
    assert list_sessions(any_store) == []
    assert len(_events(any_store, "session.start")) == 7 and len(_events(any_store, "session.end")) == 7


# -- over HTTP ---------------------------------------------------------------------------------------
def test_login_cookie_session_and_logout(served):
    srv = served()
    status, hdrs, _ = srv.login("ann", "ann-pass-123")
    assert status == 200
    [cookie] = hdrs["set-cookie"]  # ours only: Gradio's SameSite=None access-token cookies are gone
    assert cookie.startswith(srv.cookie_name + "=")
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain http on loopback
    jar = cookie.split(";")[0]
    assert srv.user(jar) == "ann"
    status, _, body = srv.req("GET", "/session", headers={"Cookie": jar})
    assert status == 200 and json.loads(body)["user"] == "ann" and json.loads(body)["role"] == "analyst"
    assert len(list_sessions(srv.store, "ann")) == 1
    # a client's own Gradio cookie is not a session
    assert srv.user(f"access-token-unsecure-x={jar.split('=', 1)[1]}") is None

    # logout: 303 to the login page, cookie cleared, the session ended in the store
    status, hdrs, _ = srv.req("POST", "/logout", headers={"Cookie": jar, "Origin": srv.origin})
    assert status == 303 and hdrs["location"] == ["/"]
    assert "max-age=0" in hdrs["set-cookie"][0].lower()
    assert srv.user(jar) is None
    assert srv.req("GET", "/session", headers={"Cookie": jar})[0] == 401
    assert [r["end_reason"] for r in list_sessions(srv.store, "ann", live_only=False)] == ["logout"]
    # a cross-site GET /logout is refused (and a same-site one works)
    jar = srv.sign_in("ann", "ann-pass-123")
    assert srv.req("GET", "/logout", headers={"Cookie": jar, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert srv.user(jar) == "ann"
    assert srv.req("GET", "/logout", headers={"Cookie": jar, "Sec-Fetch-Site": "same-origin"})[0] == 303
    assert srv.user(jar) is None
    # signing in again over a live session replaces it (no session fixation, no orphans)
    old = srv.sign_in("ann", "ann-pass-123")
    status, hdrs, _ = srv.req("POST", "/login", urllib.parse.urlencode({"username": "ann", "password": "ann-pass-123"}),
                              {"Content-Type": "application/x-www-form-urlencoded", "Origin": srv.origin, "Cookie": old})
    new = hdrs["set-cookie"][0].split(";")[0]
    assert status == 200 and new != old and srv.user(new) == "ann" and srv.user(old) is None


def test_secure_cookie_over_https_from_a_trusted_proxy(served):
    srv = served("trusted_proxies: [127.0.0.1/32]\n")
    status, hdrs, _ = srv.req("POST", "/login", urllib.parse.urlencode({"username": "ann", "password": "ann-pass-123"}),
                              {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https",
                               "X-Forwarded-Host": "wb.example.org", "Origin": "https://wb.example.org"})
    assert status == 200
    assert "secure" in [a.strip().lower() for a in hdrs["set-cookie"][0].split(";")]


def test_idle_timeout_disabled_user_and_restart(served):
    srv = served("session: {idle_timeout_seconds: 3}\n")
    jar = srv.sign_in("boss", "boss-pass-123")
    for _ in range(4):  # a person's key presses / clicks (the page posts /session/touch) keep it alive
        time.sleep(1.0)
        assert srv.req("POST", "/session/touch", headers={"Cookie": jar, "Origin": srv.origin})[0] == 200
    assert srv.user(jar) == "boss"  # 4 s after signing in, 3 s idle timeout
    for _ in range(4):  # Gradio calls (timers in the page fire them) are not activity
        time.sleep(1.0)
        srv.req("POST", "/gradio_api/call/claim", json.dumps({"data": ["", "spam"]}),
                {"Cookie": jar, "Origin": srv.origin, "Content-Type": "application/json"})
    assert srv.req("GET", "/session", headers={"Cookie": jar})[0] == 401
    assert srv.req("POST", "/session/touch", headers={"Cookie": jar, "Origin": srv.origin})[0] == 401

    jar = srv.sign_in("ann", "ann-pass-123")
    assert srv.user(jar) == "ann"
    time.sleep(3.5)  # idle past the timeout: refused, and the cookie is cleared
    status, hdrs, _ = srv.req("GET", "/session", headers={"Cookie": jar})
    assert status == 401 and "max-age=0" in hdrs["set-cookie"][0].lower()
    assert srv.user(jar) is None
    status, _, _ = srv.req("POST", "/gradio_api/call/claim", json.dumps({"data": ["", "spam"]}),
                           {"Cookie": jar, "Origin": srv.origin, "Content-Type": "application/json"})
    assert status == 401
    assert [r["end_reason"] for r in list_sessions(srv.store, "ann", live_only=False)] == ["idle"]

    # a disabled user's session stops on the next request
    jar = srv.sign_in("lee", "lee-pass-123")
    assert srv.user(jar) == "lee"
    disable_user(srv.store, "lee", actor="boss", roles=load_roles(config_dir()))
    assert srv.user(jar) is None

    # sessions live in the store: another server process over it (a restart) knows them
    jar = srv.sign_in("boss", "boss-pass-123")
    other = served("session: {idle_timeout_seconds: 3}\n")
    value = jar.split("=", 1)[1]
    assert other.user(f"{other.cookie_name}={value}") == "boss"


def test_csrf_foreign_origin_refused_and_nothing_changes(served, make_scored):
    srv = served()
    make_scored(srv.store, [{"id": "a", "text": "WINNER!! Claim your prize", "author": "u1"}],
                {"a": {"benign": 0.02, "spam": 0.9, "scam": 0.06, "hate": 0.01, "harassment": 0.01}})
    jar = srv.sign_in("ann", "ann-pass-123")
    body = json.dumps({"data": ["", "spam"]})
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {},
                    {"Origin": f"http://127.0.0.1:{srv.port + 1}"}):
        for path in ("/gradio_api/call/claim", "/gradio_api/queue/join", "/gradio_api/upload"):
            status, _, text = srv.req("POST", path, body, {"Cookie": jar, "Content-Type": "application/json", **headers})
            assert status == 403, (path, headers, text)
            assert b"cross-site" in text or b"Origin or Referer" in text
    assert _claimed(srv.store) == 0
    # a foreign Origin can neither sign in nor sign out
    status, hdrs, _ = srv.login("lee", "lee-pass-123", origin="http://evil.example")
    assert status == 403 and "set-cookie" not in hdrs and list_sessions(srv.store, "lee") == []
    assert srv.login("lee", "lee-pass-123", origin=None)[0] == 403
    assert srv.req("POST", "/logout", headers={"Cookie": jar, "Origin": "http://evil.example"})[0] == 403
    assert srv.user(jar) == "ann"
    # the same request from the page itself goes through, and claims as the signed-in user
    status, _, text = srv.req("POST", "/gradio_api/call/claim", body,
                              {"Cookie": jar, "Content-Type": "application/json", "Origin": srv.origin})
    assert status == 200, text
    event = json.loads(text)["event_id"]
    srv.req("GET", f"/gradio_api/call/claim/{event}", headers={"Cookie": jar})
    assert _claimed(srv.store) == 1
    with srv.store.read() as conn:
        assert conn.execute(select(Case.claimed_by).where(Case.state == "claimed")).scalar() == "ann"
    # a Referer of the page itself is enough when a client sends no Origin
    assert srv.req("POST", "/logout", headers={"Cookie": jar, "Referer": srv.origin + "/"})[0] == 303


def test_failed_logins_lock_the_account_and_throttle_the_client(served):
    srv = served("login: {max_failures_per_client: 8, window_seconds: 600}\n")
    for _ in range(5):  # the per-account lockout of core.accounts, through the web login
        assert srv.login("ann", "wrong-password")[0] == 400
    assert srv.login("ann", "ann-pass-123")[0] == 400  # locked: even the right password
    assert [e["entity_id"] for e in _events(srv.store, "user.locked")] == ["ann"]
    assert verify_password(srv.store, "ann", "ann-pass-123") is None
    assert list_sessions(srv.store, "ann") == []
    # per client: 8 failures in the window (any names), then 429 before any password is checked
    for name in ("nobody", "ghost"):
        assert srv.login(name, "whatever-123")[0] == 400
    status, hdrs, body = srv.login("lee", "lee-pass-123")
    assert status == 429 and int(hdrs["retry-after"][0]) > 0 and b"too many failed sign-ins" in body
    assert list_sessions(srv.store, "lee") == []


SSO_LOCAL = "trusted_proxies: [127.0.0.1/32]\nsso: {enabled: true, user_header: X-Forwarded-User, logout_url: /oauth2/sign_out}\n"
SSO_REMOTE = "trusted_proxies: [10.9.9.0/24]\nsso: {enabled: true, user_header: X-Auth-User}\n"


def test_sso_header_from_the_trusted_proxy(served):
    srv = served(SSO_LOCAL)
    assert srv.user(headers={"X-Forwarded-User": "lee"}) == "lee"
    status, _, body = srv.req("GET", "/session", headers={"X-Forwarded-User": "lee"})
    assert status == 200 and json.loads(body)["via"] == "sso" and json.loads(body)["logout"] == "/oauth2/sign_out"
    for who in ("mallory", "system", ""):  # never created; reserved and blank names are unknown too
        status, _, body = srv.req("GET", "/gradio_api/user", headers={"X-Forwarded-User": who})
        assert status == 403 and b"no enabled workbench account" in body
    from core.accounts import list_users

    assert {u["name"] for u in list_users(srv.store)} == {"boss", "ann", "lee"}
    # the header wins over a cookie of someone else
    jar = srv.sign_in("ann", "ann-pass-123")
    assert srv.user(jar, headers={"X-Forwarded-User": "lee"}) == "lee"
    # logout under SSO goes to the proxy's sign-out
    status, hdrs, _ = srv.req("POST", "/logout", headers={"X-Forwarded-User": "lee", "Origin": srv.origin})
    assert status == 303 and hdrs["location"] == ["/oauth2/sign_out"]
    disable_user(srv.store, "lee", actor="boss", roles=load_roles(config_dir()))
    assert srv.req("GET", "/gradio_api/user", headers={"X-Forwarded-User": "lee"})[0] == 403


def test_sso_header_ignored_from_other_addresses(served):
    srv = served(SSO_REMOTE)
    # from 127.0.0.1 (not a trusted proxy) the header is ignored: no user, the login page applies
    assert srv.user(headers={"X-Auth-User": "lee"}) is None
    status, _, body = srv.req("GET", "/config", headers={"X-Auth-User": "lee"})
    assert status == 401
    # ... even when it claims to come through the proxy (uvicorn believes X-Forwarded-For from loopback)
    assert srv.user(headers={"X-Auth-User": "lee", "X-Forwarded-For": "10.9.9.7"}) is None
    # the normal login still works
    assert srv.user(srv.sign_in("ann", "ann-pass-123")) == "ann"


def test_sso_by_client_address_with_testclient(served):
    from starlette.testclient import TestClient

    srv = served(SSO_REMOTE)
    proxy = TestClient(srv.blocks.app, client=("10.9.9.7", 4180), base_url=srv.origin)
    other = TestClient(srv.blocks.app, client=("192.0.2.10", 5000), base_url=srv.origin)
    assert proxy.get("/gradio_api/user", headers={"X-Auth-User": "ann"}).json() == "ann"
    assert proxy.get("/gradio_api/user", headers={"X-Auth-User": "nobody"}).status_code == 403
    assert proxy.get("/gradio_api/user").json() is None  # no header: the normal login applies
    assert other.get("/gradio_api/user", headers={"X-Auth-User": "ann"}).json() is None
    assert other.get("/config", headers={"X-Auth-User": "ann"}).status_code == 401


def test_without_accounts_loopback_host_only_and_csrf(served):
    srv = served(users=False)
    assert srv.req("GET", "/session")[2] == b'{"user": null, "accounts": false}'
    status, _, body = srv.req("GET", "/", headers={"Host": "rebind.evil.example:%d" % srv.port})
    assert status == 403 and b"unexpected Host" in body
    assert srv.req("GET", "/", headers={"Host": f"localhost:{srv.port}"})[0] == 200
    status, _, _ = srv.req("POST", "/gradio_api/call/claim", json.dumps({"data": ["eve", "spam"]}),
                           {"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert status == 403


def test_serve_refuses_a_public_host_without_accounts(tmp_path):
    from click.testing import CliRunner

    from workbench.cli import cli

    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "refusing to serve on 0.0.0.0" in result.output


def test_users_sessions_and_logout_commands(tmp_path):
    from click.testing import CliRunner

    from core.store import open_store
    from workbench.cli import cli

    def run(*args, token=None):
        env = {"WORKBENCH_TOKEN": token} if token else {}
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), *args], env=env)

    res = run("users", "add", "ada", "--role", "admin", "--json")
    ada = json.loads(res.output)["token"]["token"]
    res = run("users", "add", "bob", "--role", "analyst", token=ada)
    assert res.exit_code == 0, res.output
    bob = json.loads(run("tokens", "create", "bob", "--json", token=ada).output)["token"]
    store = open_store(tmp_path / "d")
    try:
        start_session(store, "web-1", "bob", absolute=DAY, client="10.0.0.9")
        start_session(store, "web-2", "bob", absolute=DAY)
        rows = json.loads(run("users", "sessions", "bob", "--json", token=ada).output)
        assert [r["client"] for r in rows] == [None, "10.0.0.9"]
        res = run("users", "logout", "bob", token=bob)  # an analyst may not
        assert res.exit_code != 0 and "may not users" in res.output
        res = run("users", "logout", "bob", token=ada)
        assert res.exit_code == 0 and "2 session(s) of bob ended" in res.output
        assert session_user(store, "web-1", idle=IDLE) is None
        assert json.loads(run("users", "sessions", "--json", token=ada).output) == []
        res = run("users", "sessions", "--all", token=ada)
        assert res.output.count("(revoked)") == 2
        res = run("users", "logout", "nobody", token=ada)
        assert res.exit_code != 0 and "no user 'nobody'" in res.output
    finally:
        store.dispose()


def test_serve_stops_on_a_broken_web_yaml(tmp_path):
    from click.testing import CliRunner

    from workbench.cli import cli

    configs = _configs(tmp_path, "sso: {enabled: true}\n")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "--config-dir", str(configs), "serve"])
    assert result.exit_code != 0 and "web.yaml: field" in result.output and "trusted_proxies" in result.output


def test_gradio_posts_it_leaves_open_need_a_session(served):
    srv = served()
    body = json.dumps({"session_hash": "abc", "fn_index": 0, "event_id": "e1"})
    headers = {"Content-Type": "application/json", "Origin": srv.origin}
    for path in ("/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/stream/e1/close"):
        status, _, text = srv.req("POST", path, body, headers)
        assert status == 401 and b"not signed in" in text, (path, text)
    jar = srv.sign_in("ann", "ann-pass-123")
    assert srv.req("POST", "/gradio_api/reset", body, {**headers, "Cookie": jar})[0] != 401
