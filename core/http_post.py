"""One outbound POST for everything that calls an external URL (webhook deliveries, audit
checkpoints posted to a witness): the rules live here once.

- The whole exchange ends within its timeout (`_Deadline`): a socket timeout bounds each read, not
  the exchange, so a receiver that drips its answer a byte at a time would otherwise hold the
  caller for ever. The host name is looked up within it too (`_Deadline.resolve`): a resolver
  that hangs (a name server that never answers, glibc's retries) is no timeout of the socket's.
  The connection then goes to the address found, while the Host header, TLS's SNI and the
  certificate check still use the name in the URL (http.client's own `_create_connection` hook).
- Lookups run on one small pool shared by the process (`_Resolver`, RESOLVER_SLOTS daemon threads):
  nothing can interrupt `getaddrinfo`, so a lookup whose POST gave up holds its thread until the
  name server answers. Once every slot is held so, a POST fails at once with a one-line error
  (the outbox's back-off retries it like any failed POST) instead of starting one more thread per
  attempt, which a name server that never answers would grow without bound. An IP address in
  the URL needs no lookup and never waits for a slot. A host name must be ASCII (its xn-- form):
  http.client would send a non-ASCII name in the Host header as Latin-1 bytes while the lookup,
  SNI and certificate check use its IDNA form.
- Redirects are not followed: urllib turns a 301/302 answer to a POST into a GET to wherever the
  receiver points, another host included (127.0.0.1, 169.254.169.254: a request forgery).
- Only http:// and https://, and never a URL with credentials (user:password@host): urllib does not
  send them, it looks the whole `user:password@host` up as a host name and prints it in its errors.
  `public_url` is the URL as it may be printed (errors, logs, audit events, listings): no
  credentials, the query string's values and the fragment masked (`?token=***`, keys kept), and
  path segments that look like a token masked (`/services/T0/B0/***`); `redact` masks the same
  parts wherever they appear in an error text. What is sent is the URL as given.
- No proxy from the environment (HTTP_PROXY, HTTPS_PROXY and NO_PROXY, which urllib's default
  opener honours): the POST goes straight to the host of the URL. Those variables are set
  for package downloads and model hubs, or injected (a CGI `Proxy:` header becomes HTTP_PROXY),
  and would silently hand every signed enforcement payload, and a token in the URL, to another
  host, beyond the redirect rule above. A deployment whose egress must pass a proxy allows the
  receivers' hosts through its firewall instead: a refused connection shows in each attempt.
"""
from __future__ import annotations

import collections
import http.client
import ipaddress
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping, Optional

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)(.*)$", re.S)
_MASK = "***"


def _token_like(segment: str) -> bool:
    """A path segment that may be a secret: long, and mixing digits and letters (a UUID, Discord's
    token) or letters of both cases (Slack's). Words, dates and numeric ids stay readable."""
    if len(segment) < 16:
        return False
    digit, lower, upper = (bool(re.search(p, segment)) for p in (r"[0-9]", r"[a-z]", r"[A-Z]"))
    return (digit and (lower or upper)) or (len(segment) >= 20 and lower and upper)


def _split_secrets(url: str) -> tuple[str, list[str]]:
    """(`url` as it may be printed, the secret parts taken out of it), one reading for both."""
    secrets: list[str] = []
    m = _AUTHORITY.match(url)
    authority, rest = (m.group(1), m.group(2)) if m else ("", url)
    if "@" in authority:  # user:password@host
        scheme, _, host = authority.partition("://")
        userinfo, _, host = host.rpartition("@")
        secrets.append(userinfo)
        authority = f"{scheme}://{_MASK}@{host}"
    rest, hash_, fragment = rest.partition("#")
    path, q, query = rest.partition("?")
    segments = path.split("/")
    for i, seg in enumerate(segments):
        if _token_like(seg):
            secrets.append(seg)
            segments[i] = _MASK
    items = []
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        if not eq and key:  # `?SECRET`: a bare item is a value
            secrets.append(key)
            key = _MASK
        elif value:
            secrets.append(value)
            value = _MASK
        items.append(f"{key}{eq}{value}")
    if fragment:
        secrets.append(fragment)
    shown = authority + "/".join(segments) + (q + "&".join(items)) + (hash_ + (_MASK if fragment else ""))
    return shown, secrets


def public_url(url: str) -> str:
    """`url` as it may be printed in errors, logs, audit events and listings (see the module doc)."""
    return _printable(_split_secrets(url)[0])


def redact(text: str, url: str) -> str:
    """`text` (an error about `url`: urllib's, a receiver's answer) with the secret parts of `url`,
    as given or percent-decoded, masked as `public_url` masks them; one printable line."""
    shown, secrets = _split_secrets(url)
    text = text.replace(url, shown)
    found = {s for s in secrets if len(s) >= 4} | {urllib.parse.unquote_plus(s) for s in secrets if len(s) >= 4}
    for secret in sorted(found, key=len, reverse=True):  # the longest first: never half of one
        text = text.replace(secret, _MASK)
    return _printable(text)


def _printable(text: str) -> str:
    """One line without control characters: a receiver's answer is stored as an attempt's error
    and printed by `workbench webhooks list/show`, where escape sequences would drive the terminal."""
    return _CONTROL.sub(" ", text).strip()[:500]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a redirect is a failure
        return None


RESOLVER_SLOTS = 8  # lookup threads shared by every POST of the process (see the module doc)


class _Lookup:
    __slots__ = ("host", "port", "done", "state", "result")

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.done = threading.Event()
        self.state = "queued"  # then "running", then "finished"
        self.result: Any = None  # getaddrinfo's list, or what it raised


class _Resolver:
    """`socket.getaddrinfo` on at most `slots` daemon threads, started as needed and kept. A lookup
    its POST gave up on while it ran is stuck: it holds its thread until the name server answers.
    When every slot is stuck a lookup fails at once; one given up while still queued never runs."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._reset()

    def _reset(self) -> None:
        """Empty, with no thread: also a forked child's state (the parent's threads are not in it)."""
        self.cond = threading.Condition()
        self.queue: collections.deque[_Lookup] = collections.deque()
        self.threads = self.idle = 0
        self.stuck: dict[_Lookup, str] = {}  # running lookups whose POST gave up -> their host

    def lookup(self, host: str, port: int, wait: float) -> list[tuple[Any, ...]]:
        job = _Lookup(host, port)
        with self.cond:
            if len(self.stuck) >= self.slots:
                names = ", ".join(sorted(set(self.stuck.values())))
                raise OSError(f"{host} not looked up: all {self.slots} DNS lookup threads still wait for a name "
                              f"server that has not answered ({names}); the POST is retried later")
            if len(self.queue) >= self.idle and self.threads < self.slots:  # no idle thread for this one
                threading.Thread(target=self._work, name="http-post-resolve", daemon=True).start()
                self.threads += 1  # (a thread that cannot start fails this POST before it queues)
            self.queue.append(job)
            self.cond.notify()
        if not job.done.wait(wait):
            with self.cond:
                if job.state == "queued":  # never started: it never will
                    self.queue.remove(job)
                elif job.state == "running":
                    self.stuck[job] = host
                if job.state != "finished":
                    raise TimeoutError(f"looking up {host} took longer than the time left")
        if isinstance(job.result, BaseException):
            raise job.result
        return job.result

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.idle += 1
                    self.cond.wait()
                    self.idle -= 1
                job = self.queue.popleft()
                job.state = "running"
            try:
                job.result = socket.getaddrinfo(job.host, job.port, 0, socket.SOCK_STREAM)
            except BaseException as exc:  # noqa: BLE001 - raised in the POST's thread
                job.result = exc
            with self.cond:
                job.state = "finished"
                self.stuck.pop(job, None)
            job.done.set()


_RESOLVER = _Resolver(RESOLVER_SLOTS)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RESOLVER._reset)


class _Deadline:
    """The connections of one POST, cut when its time is up (see the module doc)."""

    def __init__(self, timeout: float) -> None:
        self.lock = threading.Lock()
        self.expired = self.done = False
        self.conns: list[http.client.HTTPConnection] = []
        self.end = time.monotonic() + timeout

    def left(self) -> float:
        return self.end - time.monotonic()

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """`socket.getaddrinfo` on the shared pool (`_Resolver`), waited for at most the time left:
        the lookup cannot be interrupted, so one that hangs keeps its slot until it ends on its own
        while this POST fails with a timeout (the worker's circuit breaker then rests the endpoint).
        An IP address is no lookup: it is read here, never queued behind a hanging name server."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        try:
            return _RESOLVER.lookup(host, port, max(0.0, self.left()))
        except TimeoutError:
            self.cut()
            raise

    def create_connection(self, address: tuple[str, int], timeout: Any = None,
                          source_address: Optional[tuple[str, int]] = None) -> socket.socket:
        """`socket.create_connection` within the deadline: the name looked up by `resolve`, each
        address tried for no longer than the time left, which then bounds each read (the TLS
        handshake included, before `connect` hands the connection to the timer's watch)."""
        host, port = address
        error: Optional[OSError] = None
        per_read = timeout if isinstance(timeout, (int, float)) else None
        for family, kind, proto, _, sockaddr in self.resolve(host, port):
            left = self.left()
            if not left > 0:
                break
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(left if per_read is None else min(per_read, left))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if not self.left() > 0:
            self.cut()
            raise TimeoutError(f"no connection to {host} within the time left") from error
        raise error or OSError(f"no address found for {host}")

    @staticmethod
    def _shut(conn: http.client.HTTPConnection) -> None:
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            if self.done:  # answered in time
                return
            self.expired = True
            for conn in self.conns:
                self._shut(conn)

    def finish(self) -> bool:
        """Whether the time ran out; after this the timer cuts nothing."""
        with self.lock:
            self.done = True
            return self.expired

    def watch(self, cls: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
        deadline = self

        class Watched(cls):  # type: ignore[valid-type, misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                # What `connect` opens its socket with; SNI and the certificate check keep self.host.
                self._create_connection = deadline.create_connection

            def connect(self) -> None:
                super().connect()
                with deadline.lock:
                    deadline.conns.append(self)
                    if deadline.expired:  # the time ran out while connecting
                        deadline._shut(self)

        return Watched


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self.deadline.watch(http.client.HTTPConnection), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self.deadline.watch(http.client.HTTPSConnection), req,
                            context=self._context)  # type: ignore[attr-defined]


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[Optional[int], Optional[str]]:
    """POST `body`; (status code, None) on 2xx, (status or None, error text) otherwise. The whole
    exchange ends within `timeout` seconds (`_Deadline`); redirects are not followed; no proxy."""
    if not re.match(r"(?i)^https?://", url):
        return None, "ValueError: not an http:// or https:// URL"
    if _USERINFO.match(url):
        return None, "ValueError: the URL holds credentials (user:password@host), which are never sent"
    m = _AUTHORITY.match(url)
    if m and not m.group(2).isascii():  # http.client would fail each attempt: "ordinal not in range(128)"
        return None, "ValueError: the URL's path or query holds non-ASCII characters: percent-encode them"
    if m and not m.group(1).isascii():  # sent in the Host header as Latin-1, looked up as IDNA
        return None, "ValueError: the URL's host holds non-ASCII characters: give its ASCII (xn--) form"
    deadline = _Deadline(timeout)
    # ProxyHandler({}): no proxy from the environment (see the module doc).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(), _HTTP(deadline),
                                         _HTTPS(deadline))
    timer = threading.Timer(timeout, deadline.cut)
    timer.daemon = True
    timer.start()
    try:
        # Built inside the try: a URL urllib cannot parse (`http://[::1/x`) is this POST's error.
        req = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
        with opener.open(req, timeout=timeout) as resp:
            resp.read(65536)
        if deadline.finish():  # cut mid-answer (a cut reads as the end of the headers or body)
            return None, f"TimeoutError: no complete answer within {timeout:g} s"
        return resp.status, None
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read(300).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the status is what matters
            detail = ""
        return exc.code, redact(f"HTTP {exc.code} {exc.reason}: {detail}", url)  # an answer may echo the URL
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a receiver that answers with something other than HTTP (BadStatusLine,
        # LineTooLong, IncompleteRead) fails this attempt like a refused connection.
        if deadline.expired or deadline.left() <= 0:  # a socket's timeout may beat the timer by a hair
            return None, f"TimeoutError: no complete answer within {timeout:g} s"
        reason = getattr(exc, "reason", exc)
        return None, redact(f"{type(exc).__name__}: {reason}", url)  # urllib's errors quote the URL
    finally:
        timer.cancel()
