"""One outbound POST for everything that calls an external URL (webhook deliveries, audit
checkpoints posted to a witness): the rules live here once.

- The whole exchange ends within its timeout (`_Deadline`): a socket timeout bounds each read, not
  the exchange, so a receiver that drips its answer a byte at a time would otherwise hold the
  caller for ever.
- Redirects are not followed: urllib turns a 301/302 answer to a POST into a GET to wherever the
  receiver points, another host included (127.0.0.1, 169.254.169.254: a request forgery).
- Only http:// and https://, and never a URL with credentials (user:password@host): urllib does not
  send them, it looks the whole `user:password@host` up as a host name and prints it in its errors.
  `public_url` is the URL as it may be printed.
"""
from __future__ import annotations

import http.client
import re
import socket
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Optional

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def public_url(url: str) -> str:
    """`url` without the credentials of its `user:password@` part, to print in errors and events."""
    return _printable(_USERINFO.sub(r"\1***@", url))


def _printable(text: str) -> str:
    """One line without control characters: a receiver's answer is stored as an attempt's error
    and printed by `workbench webhooks list/show`, where escape sequences would drive the terminal."""
    return _CONTROL.sub(" ", text).strip()[:500]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a redirect is a failure
        return None


class _Deadline:
    """The connections of one POST, cut when its time is up (see the module doc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expired = self.done = False
        self.conns: list[http.client.HTTPConnection] = []

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
    exchange ends within `timeout` seconds (`_Deadline`); redirects are not followed."""
    if not re.match(r"(?i)^https?://", url):
        return None, "ValueError: not an http:// or https:// URL"
    if _USERINFO.match(url):
        return None, "ValueError: the URL holds credentials (user:password@host), which are never sent"
    deadline = _Deadline()
    opener = urllib.request.build_opener(_NoRedirect(), _HTTP(deadline), _HTTPS(deadline))
    req = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    timer = threading.Timer(timeout, deadline.cut)
    timer.daemon = True
    timer.start()
    try:
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
        return exc.code, _printable(f"HTTP {exc.code} {exc.reason}: {detail}")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a receiver that answers with something other than HTTP (BadStatusLine,
        # LineTooLong, IncompleteRead) fails this attempt like a refused connection.
        if deadline.expired:
            return None, f"TimeoutError: no complete answer within {timeout:g} s"
        reason = getattr(exc, "reason", exc)
        return None, _printable(f"{type(exc).__name__}: {reason}")
    finally:
        timer.cancel()
