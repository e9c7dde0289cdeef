"""The web server's guard: sessions with an idle timeout, logout, CSRF, login throttling and the
single-sign-on proxy mode, as one ASGI middleware around Gradio's app (`configs/web.yaml`).

It builds on Gradio's own sign-in instead of replacing it. Gradio's `/login` checks the password
with our `auth` callable (`core.accounts.verify_password`: argon2, per-(account, address) and per-account limits) and puts
a random token in `app.tokens` and in cookies; every page and `/gradio_api` route then asks
`app.tokens.get(cookie)` for the user and answers 401 (or the login page) without one. Here:

- `app.tokens` becomes `SessionTokens`, backed by `core.web_sessions`: a login starts a session
  in the store, and each request re-reads it (idle timeout, absolute expiry, revoked, disabled
  user: None, so 401 / the login page), in a worker thread: Gradio's synchronous `app.tokens`
  calls run on the event loop, so they never touch the store (see `SessionTokens`).
- Gradio's cookies (`SameSite=None`, a random per-process name) are replaced on the way out by
  one cookie of ours, `<cookie_name>_<port>` (a stable name, so a restart keeps sessions),
  HttpOnly, SameSite (Strict by default); over https (or `secure_cookies: always`) it is Secure
  and named `__Host-...` (only this host over https may set it: no planting by a sibling domain
  or a plain-http neighbour; an unprefixed one is not read then). On the way in, our cookie is
  checked and handed to Gradio under its own cookie name; any `access-token*` cookie a client
  sends itself is dropped. A sign-in's session starts only while the account still has the
  password that was checked (`web_sessions.password_stamp`): a reset racing it wins.
- Activity refreshes the session: loading the page, and a key press or click in it (the page
  script posts `/session/touch`, at most every tenth of the idle timeout). Gradio's own calls do
  not count, since timers in the page fire them with nobody there, so an open but unused tab
  still times out. The page script (`SESSION_JS`) shows who is signed in with a "Log out"
  button, polls `/session`, and on a 401 (from it or any Gradio call) goes back to the login page.
- `POST /logout` (or a same-site `GET`) ends the session in the store and clears the cookie.
- Every state-changing `/gradio_api` request without a live session gets 401 here, including
  the few that Gradio itself leaves unguarded (`/cancel`, `/stream/...`, `/reset`).
- CSRF: every state-changing request (any method but GET / HEAD / OPTIONS), except the bearer-
  token API under `/api/v1`, needs an Origin (else a Referer) of the server itself or of
  `allowed_origins`; otherwise 403 before anything runs. The session cookie is also SameSite.
- Failed sign-ins are counted per client address, an IPv6 one by its /64 (`web_throttle`:
  `login.max_failures_per_client` per `window_seconds`, then 429 without checking the password),
  on top of the per-account lockout; an attempt counts from its arrival until it succeeds, so
  concurrent ones share the limit.
- Single sign-on: with `sso.enabled`, a request whose TCP peer is in `trusted_proxies` and that
  carries `sso.user_header` acts as that account (it must exist and be enabled, else 403; never
  created here). From any other peer the header is dropped and the login page applies.
- Every answer says it may not be framed elsewhere (clickjacking of the decide buttons); the
  anonymous login page carries no API map; cross-origin reads only for `allowed_origins`
  (`web_guard_page`, which also holds the page script `SESSION_JS`).
- Without accounts (no login page; `workbench serve` only allows loopback then) the Host header
  must be a loopback name, so a DNS-rebinding page cannot drive the UI.

The peer address: uvicorn rewrites `scope["client"]` from `X-Forwarded-For` when the peer is
loopback, before any app code runs. `record_peer` wraps uvicorn's app to keep the real peer in
the scope; a request with `X-Forwarded-For` but no recorded peer is never trusted.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import ipaddress
import json
import secrets
import threading
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from .web_guard_page import SESSION_JS, hide_api_info, limit_cors, with_security_headers
from .web_throttle import Throttle

if TYPE_CHECKING:  # pragma: no cover
    from core.web_config import WebConfig

    from ..context import AppContext

PEER_KEY = "workbench.peer"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API_PREFIX = "/api/v1"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
UNTRUSTED_HEADERS = (b"x-forwarded-host", b"x-forwarded-proto")  # from others than trusted_proxies
__all__ = ["SESSION_JS", "SessionTokens", "WebGuard", "guard_middleware", "record_peer"]


class _Request:
    """One guarded request, for Gradio's `app.tokens` calls in it: the client, the tokens the guard
    checked (token -> user), and the session writes Gradio asked for (`flush`: in order, off the loop)."""

    def __init__(self, owner: "SessionTokens", client: Optional[str], known: dict[str, str]) -> None:
        self.owner, self.client, self.known = owner, client, known
        self.pending: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self.stamps: dict[str, str] = {}  # user -> password stamp read before this sign-in's check

    async def flush(self) -> None:
        while self.pending:
            fn, args = self.pending.pop(0)
            await run_in_threadpool(fn, *args)


_request: contextvars.ContextVar[Optional[_Request]] = contextvars.ContextVar("workbench_request", default=None)


def current_client() -> Optional[str]:
    """The client address of the guarded request being served (None outside one): Gradio gives
    its `auth` callable no request, so the sign-in check asks here (`session.login_client`)."""
    req = _request.get()
    return req.client if req is not None else None


def note_password_stamp(username: str, stamp: Optional[str]) -> None:
    """Called by the login check (`session.login_check`) inside a guarded sign-in: the password
    stamp it read before checking `username`'s password, for the session Gradio then starts."""
    req = _request.get()
    if req is not None and stamp is not None:
        req.stamps[username] = stamp


class SessionTokens:
    """Gradio's `app.tokens`, backed by the store (`core.web_sessions`) instead of a dict.

    Gradio sets `tokens[token] = username` after a good password and asks `tokens.get(token)` on
    every request. SSO requests get a per-process token (never sent to a browser) that maps to
    the proxy's user and is re-checked against the account on every lookup.

    Gradio calls these on the event loop, where a slow store stalls everyone: inside a guarded
    request a lookup answers from the guard's own check (made in a worker thread; a token it did
    not check is unknown) and a session start or end is written by the guard, in a worker thread,
    before the response leaves. Outside one (a direct call) the store is used here."""

    def __init__(self, app: "AppContext") -> None:
        self.app = app
        self._proxy: dict[str, str] = {}
        self._proxy_by_name: dict[str, str] = {}
        self._lock = threading.Lock()

    def _idle(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.app.web().session.idle_timeout_seconds)

    def _absolute(self) -> dt.timedelta:
        return dt.timedelta(hours=self.app.web().session.absolute_timeout_hours)

    def _here(self) -> Optional[_Request]:
        req = _request.get()
        return req if req is not None and req.owner is self else None

    def _start(self, token: str, username: str, client: Optional[str], stamp: Optional[str] = None) -> None:
        from core.web_sessions import start_session

        start_session(self.app.store(), token, username, absolute=self._absolute(), client=client, stamp=stamp)

    def __setitem__(self, token: str, username: str) -> None:
        req = self._here()
        if req is None:
            self._start(token, username, None)
        else:
            req.pending.append((self._start, (token, username, req.client, req.stamps.get(username))))

    def get(self, token: Optional[str], default: Optional[str] = None) -> Optional[str]:
        from core.accounts import AccountError, principal_for_user
        from core.web_sessions import session_user

        req = self._here()
        if req is not None or not token:  # a guarded request: the guard's check, no store on the loop
            return req.known.get(token, default) if req is not None and token else default
        name = self._proxy.get(token)
        if name is not None:
            try:
                return principal_for_user(self.app.store(), name).name
            except AccountError:
                return default
        info = session_user(self.app.store(), token, idle=self._idle(), absolute=self._absolute())
        return info.principal.name if info is not None else default

    def __getitem__(self, token: str) -> str:
        name = self.get(token)
        if name is None:
            raise KeyError(token)
        return name

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.get(token) is not None

    def __delitem__(self, token: str) -> None:
        from core.web_sessions import end_session

        req = self._here()
        if req is None:
            end_session(self.app.store(), token)
        else:
            req.known.pop(token, None)
            req.pending.append((end_session, (self.app.store(), token)))

    def keys(self) -> list[str]:
        return []  # sessions are not enumerable (only hashes are stored); logout is ours (WebGuard)

    def proxy_token(self, name: str) -> str:
        """The per-process token standing for SSO user `name` (created once)."""
        with self._lock:
            tok = self._proxy_by_name.get(name)
            if tok is None:
                tok = "sso-" + secrets.token_urlsafe(32)
                self._proxy_by_name[name], self._proxy[tok] = tok, name
            return tok


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """Request headers, lower-cased; repeated ones joined (cookies with '; ')."""
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        key, val = k.decode("latin-1").lower(), v.decode("latin-1")
        out[key] = f"{out[key]}{'; ' if key == 'cookie' else ', '}{val}" if key in out else val
    return out


def _cookies(raw: str) -> dict[str, str]:
    """The request's cookies by name; a name sent twice reads as empty (no session): a sibling
    subdomain or a plain-http neighbour can plant a second cookie of our name, and whichever came
    last won (the victim signed out, or acting in the attacker's session)."""
    out: dict[str, str] = {}
    twice: set[str] = set()
    for part in raw.split(";"):  # one by one: a malformed pair must not drop the others
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(part.strip())
        except Exception:  # noqa: BLE001 - an unparsable cookie is ignored
            continue
        for k, morsel in jar.items():
            if k in out:
                twice.add(k)
            out[k] = morsel.value
    return {k: ("" if k in twice else v) for k, v in out.items()}


def _origin_of(url: str) -> Optional[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _is_loopback_host(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


async def _respond(send: Any, status: int, body: dict[str, Any], headers: Optional[list[tuple[str, str]]] = None) -> None:
    data = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store")]
    hdrs += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": with_security_headers(hdrs)})
    await send({"type": "http.response.body", "body": data})


class WebGuard:
    """The ASGI middleware (see the module notes); `Middleware(WebGuard, ctx=..., port=...)`."""

    def __init__(self, app: Any, ctx: "AppContext", port: int) -> None:
        self.app = app
        self.ctx = ctx
        self.port = port
        self.tokens = SessionTokens(ctx)
        self.throttle = Throttle()
        self.cors_limited = False

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def web(self) -> "WebConfig":
        return self.ctx.web()

    @property
    def cookie_name(self) -> str:
        return f"{self.web.session.cookie_name}_{self.port}"

    def cookie_for(self, secure: bool) -> str:
        """Our cookie's name: `__Host-` prefixed when Secure, so only this host over https sets it."""
        return f"__Host-{self.cookie_name}" if secure else self.cookie_name

    def peer(self, scope: dict[str, Any], headers: dict[str, str]) -> Optional[str]:
        """The TCP peer: recorded before uvicorn's X-Forwarded-For rewrite, else (no such header,
        so no rewrite) the scope's client; None when it cannot be known."""
        if PEER_KEY in scope:
            return scope[PEER_KEY]
        if "x-forwarded-for" in headers:
            return None
        client = scope.get("client")
        return client[0] if client else None

    def view(self, scope: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """Who is asking from where: peer, trusted, client, scheme and host as the browser saw them."""
        peer = self.peer(scope, headers)
        trusted = self.web.trusted(peer)
        scheme = scope.get("workbench.scheme", scope.get("scheme", "http"))
        host = headers.get("host", "")
        client = peer
        if trusted:
            scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
            host = headers.get("x-forwarded-host", host).split(",")[0].strip() or host
            fwd = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
            client = fwd[-1] if fwd else peer
        return {"peer": peer, "trusted": trusted, "scheme": scheme, "host": host, "client": client or "unknown"}

    def csrf_problem(self, headers: dict[str, str], where: dict[str, Any]) -> Optional[str]:
        """Why a state-changing request is refused as cross-site (None: it is same-origin)."""
        own = _origin_of(f"{where['scheme']}://{where['host']}") if where["host"] else None
        allowed = {o for o in [own, *self.web.allowed_origins] if o}
        origin = headers.get("origin")
        if origin is not None:
            got = _origin_of(origin) if origin != "null" else None
            return None if got in allowed else f"cross-site request refused (Origin {origin!r} is not this server)"
        referer = headers.get("referer")
        if referer:
            got = _origin_of(referer)
            return None if got in allowed else "cross-site request refused (Referer is not this server)"
        return "a state-changing request needs an Origin or Referer header of this server"

    def set_cookie(self, token: str, secure: bool) -> str:
        s = self.web.session
        return (f"{self.cookie_for(secure)}={token}; Path=/; HttpOnly; SameSite={s.same_site.capitalize()}"
                + ("; Secure" if secure else ""))

    def clear_cookie(self, secure: bool) -> str:
        return self.set_cookie("", secure) + "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"

    # -- the middleware --------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("app")
        if server is not None and not isinstance(getattr(server, "tokens", None), SessionTokens):
            server.tokens = self.tokens  # before any login can reach Gradio's plain dict
        if server is not None and not self.cors_limited:  # Gradio's CORS layer, outside: allowed_origins only
            self.cors_limited = limit_cors(server, lambda origin: _origin_of(origin) in self.web.allowed_origins)
        login_on = getattr(server, "auth", None) is not None
        path, method = scope.get("path", "/"), scope.get("method", "GET")
        headers = _headers(scope)
        where = self.view(scope, headers)
        secure = where["scheme"] == "https" or self.web.session.secure_cookies == "always"

        if not login_on and not _is_loopback_host(where["host"]) and not where["trusted"]:
            # No accounts: loopback only, and only under a loopback name (no DNS rebinding).
            await _respond(send, 403, {"detail": f"unexpected Host {where['host']!r}: this server has no accounts "
                                                 f"and answers only on 127.0.0.1 / localhost"})
            return
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            await self.app(scope, receive, send)  # bearer tokens, no cookies: no CSRF, no session
            return
        if method not in SAFE_METHODS:
            problem = self.csrf_problem(headers, where)
            if problem is not None:
                await _respond(send, 403, {"detail": problem})
                return

        # Who is this? SSO header from a trusted proxy, else our session cookie.
        sso_name: Optional[str] = None
        sso_user: Optional[str] = None  # the account's name, checked off the loop
        sso = self.web.sso
        header_key = sso.user_header.lower().encode("latin-1")
        if login_on and sso.enabled and where["trusted"] and header_key.decode() in headers:
            from core.accounts import AccountError, principal_for_user

            sso_name = headers[header_key.decode()].strip()
            try:
                sso_user = (await run_in_threadpool(principal_for_user, self.ctx.store(), sso_name)).name
            except AccountError:
                await _respond(send, 403, {"detail": f"the signed-in user {sso_name!r} has no enabled workbench "
                                                     f"account (an admin adds it: workbench users add)"})
                return
        cookie_value = _cookies(headers.get("cookie", "")).get(self.cookie_for(secure))
        # Activity is what a person does: load the page, or press a key / click in it (the page
        # script's POST /session/touch). Gradio calls are not: timers poll on their own.
        activity = (method == "GET" and path in ("/", "")) or (method == "POST" and path == "/session/touch")
        info = None
        if sso_name is None and login_on and cookie_value:
            from core.web_sessions import session_user

            info = await run_in_threadpool(lambda: session_user(
                self.ctx.store(), cookie_value, touch=activity,
                idle=dt.timedelta(seconds=self.web.session.idle_timeout_seconds),
                absolute=dt.timedelta(hours=self.web.session.absolute_timeout_hours)))
        token = self.tokens.proxy_token(sso_name) if sso_name is not None else (cookie_value if info else None)
        stale = bool(cookie_value) and info is None and sso_name is None

        if path == "/session" and method == "GET":
            await self.session_info(send, login_on, sso_name, info, stale, secure)
            return
        if path == "/session/touch" and method == "POST":
            ok = info is not None or sso_name is not None or not login_on
            await _respond(send, 200 if ok else 401, {"active": ok},
                           [("set-cookie", self.clear_cookie(secure))] if stale else None)
            return
        if path in ("/logout", "/logout/"):
            await self.logout(scope, send, headers, where, method, cookie_value, sso_name is not None, secure)
            return
        if login_on and token is None and method not in SAFE_METHODS and path.startswith("/gradio_api/"):
            # Gradio leaves a few POSTs unguarded (/cancel, /stream/…, /reset): none without a session.
            await _respond(send, 401, {"detail": "not signed in (or the session ended)"},
                           [("set-cookie", self.clear_cookie(secure))] if stale else None)
            return
        is_login = path in ("/login", "/login/") and method == "POST"
        slot: Optional[float] = None
        if is_login:  # a slot now, before the check: concurrent attempts share the limit
            login = self.web.login
            wait, slot = self.throttle.reserve(where["client"], login.max_failures_per_client, login.window_seconds,
                                               keep=max(3600.0, login.window_seconds))
            if slot is None:
                await _respond(send, 429, {"detail": f"too many failed sign-ins from {where['client']}: "
                                                     f"try again in {int(wait) + 1} s"},
                               [("retry-after", str(int(wait) + 1))])
                return

        # Hand Gradio our identity under its own cookie name; drop whatever the client sent for it
        # and the SSO header (so no other layer reads an unchecked one). Gradio builds the page's
        # root URL (where its login form posts the password) from X-Forwarded-Host / -Proto and
        # X-Gradio-Server: believed only from a trusted proxy, the last never.
        scope = dict(scope)
        dropped = (b"cookie", header_key, b"x-gradio-server") + (() if where["trusted"] else UNTRUSTED_HEADERS)
        kept = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
        if where["scheme"] in ("http", "https"):  # uvicorn believed X-Forwarded-Proto from any loopback peer
            scope["scheme"] = where["scheme"]
        jar = {k: v for k, v in _cookies(headers.get("cookie", "")).items()
               if not k.startswith("access-token") and k not in (self.cookie_name, self.cookie_for(True))}
        if token is not None and server is not None:
            jar[f"access-token-unsecure-{server.cookie_id}"] = token
        if jar:
            kept.append((b"cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode("latin-1")))
        scope["headers"] = kept

        # Gradio's `app.tokens` calls in this request answer from this check (no store on the loop).
        name = sso_user if sso_name is not None else (info.principal.name if info else None)
        request = _Request(self.tokens, where["client"], {token: name} if token and name else {})
        # The login page a visitor without a session gets: Gradio embeds its whole API map in it.
        anonymous_page = login_on and token is None and method == "GET" and path in ("/", "")
        from core.web_sessions import SessionError

        held: list[dict[str, Any]] = []
        refused: list[bool] = []  # a sign-in whose session could not start: Gradio's answer is dropped

        async def send_out(message: dict[str, Any]) -> None:
            if refused:
                return
            if message["type"] == "http.response.start":
                try:
                    await request.flush()  # sessions Gradio started or ended: stored before it answers
                except SessionError as exc:  # disabled, or the password reset, since the check
                    if not is_login:
                        raise
                    refused.append(True)
                    await _respond(send, 400, {"detail": str(exc)})
                    return
                out = [(k, v) for k, v in message.get("headers", [])
                       if not (k.lower() == b"set-cookie" and v.startswith(b"access-token"))]
                if is_login:
                    status = message["status"]
                    new = _cookies("; ".join(v.decode("latin-1").split(";")[0] for k, v in message.get("headers", [])
                                             if k.lower() == b"set-cookie"))
                    got = next((v for k, v in new.items() if k.startswith("access-token")), None)
                    if status < 400 and slot is not None:  # not a failure; anything else keeps the slot
                        self.throttle.release(where["client"], slot)
                    if status == 200 and got:
                        out.append((b"set-cookie", self.set_cookie(got, secure).encode("latin-1")))
                        if cookie_value and cookie_value != got:  # signing in again ends the old session
                            from core.web_sessions import end_session

                            await run_in_threadpool(end_session, self.ctx.store(), cookie_value)
                elif stale:
                    out.append((b"set-cookie", self.clear_cookie(secure).encode("latin-1")))
                message = dict(message, headers=with_security_headers(out))
                if anonymous_page:
                    held.append(message)  # sent with the page's body, once it is rewritten
                    return
            elif anonymous_page and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body", False):
                    return
                start, body = held[0], hide_api_info(b"".join(m.get("body", b"") for m in held[1:]))
                hdrs = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"cache-control")]
                await send(dict(start, headers=hdrs + [(b"content-length", str(len(body)).encode()),
                                                       (b"cache-control", b"no-store")]))
                message = {"type": "http.response.body", "body": body}
            await send(message)

        reset = _request.set(request)
        try:
            await self.app(scope, receive, send_out)
        finally:
            _request.reset(reset)

    async def session_info(self, send: Any, login_on: bool, sso_name: Optional[str], info: Any, stale: bool,
                           secure: bool) -> None:
        """`GET /session`: who is signed in (not activity: polling it does not keep a session alive)."""
        s = self.web.session
        if not login_on:
            await _respond(send, 200, {"user": None, "accounts": False})
            return
        if sso_name is not None:
            from core.accounts import principal_for_user

            who = await run_in_threadpool(principal_for_user, self.ctx.store(), sso_name)
            await _respond(send, 200, {"user": who.name, "role": who.role, "via": "sso",
                                       "logout": self.web.sso.logout_url, "idle_timeout_seconds": None})
            return
        if info is None:
            await _respond(send, 401, {"detail": "not signed in (or the session ended)"},
                           [("set-cookie", self.clear_cookie(secure))] if stale else None)
            return
        await _respond(send, 200, {"user": info.principal.name, "role": info.principal.role, "via": "password",
                                   "logout": "logout", "idle_timeout_seconds": s.idle_timeout_seconds,
                                   "expires_at": info.expires_at.isoformat() + "Z"})

    async def logout(self, scope: dict[str, Any], send: Any, headers: dict[str, str], where: dict[str, Any],
                     method: str, cookie_value: Optional[str], via_sso: bool, secure: bool) -> None:
        """End the session in the store, clear the cookie, back to the login page (or the SSO
        proxy's sign-out). A GET only from the site itself (Sec-Fetch-Site; from a browser that
        sends none, a Referer of this server), so a link elsewhere cannot sign anyone out."""
        from core.web_sessions import end_session

        if method not in ("GET", "POST"):
            await _respond(send, 405, {"detail": "use POST /logout"})
            return
        site = headers.get("sec-fetch-site")
        if method == "GET" and (site not in ("same-origin", "none") if site is not None
                                else self.csrf_problem(headers, where) is not None):
            await _respond(send, 403, {"detail": "cross-site logout refused"})
            return
        if cookie_value:
            await run_in_threadpool(end_session, self.ctx.store(), cookie_value)
        root = scope.get("root_path", "") or ""
        target = (self.web.sso.logout_url if via_sso and self.web.sso.logout_url else f"{root}/")
        hdrs = [(b"location", target.encode("latin-1")), (b"content-length", b"0"), (b"cache-control", b"no-store"),
                (b"set-cookie", self.clear_cookie(secure).encode("latin-1"))]
        await send({"type": "http.response.start", "status": 303, "headers": with_security_headers(hdrs)})
        await send({"type": "http.response.body", "body": b""})


class PeerRecorder:
    """Wraps uvicorn's outermost app: keeps the real TCP peer and scheme in the scope before
    uvicorn's proxy-headers middleware rewrites them from X-Forwarded-For / -Proto."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            client = scope.get("client")
            scope[PEER_KEY] = client[0] if client else None
            scope["workbench.scheme"] = scope.get("scheme", "http")
        await self.app(scope, receive, send)


def record_peer(blocks: Any) -> bool:
    """Install `PeerRecorder` on the running server (new connections use it). False when there is
    no uvicorn server to wrap (then no request with X-Forwarded-For is ever trusted)."""
    config = getattr(getattr(blocks, "server", None), "config", None)
    if config is None or not hasattr(config, "loaded_app"):
        return False
    if not isinstance(config.loaded_app, PeerRecorder):
        config.loaded_app = PeerRecorder(config.loaded_app)
    return True


def guard_middleware(ctx: "AppContext", port: int) -> Any:
    """The `Middleware` entry for `launch(app_kwargs={"middleware": [...]})`: in place before the
    server answers its first request."""
    from starlette.middleware import Middleware

    ctx.web()  # a broken web.yaml fails here, before the server starts
    return Middleware(WebGuard, ctx=ctx, port=port)
