"""Audit checkpoints posted to a witness, and the audit key file.

`audit.post_checkpoint` used urllib's default opener: a receiver that dripped its answer a byte at a
time held it for ever (the timeout bounds each read), a 302 was followed as a GET to any host
(127.0.0.1, 169.254.169.254), and its errors printed the URL's `user:password@`. It now goes
through `core.http_post`, the webhooks' opener moved down into core. A key file with one bad hex
digit was quietly used as text, i.e. as another key ("none of the N events is keyed with this key").
Local servers only, never the network."""
from __future__ import annotations

import http.server
import threading

import pytest
from click.testing import CliRunner

from core import audit
from core.store import Store

GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken
CP = {"head": "a" * 64, "count": 3, "time": "2025-01-01T00:00:00Z"}


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 with the given handler, recording the requests it got."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.seen: list[tuple[str, str]] = []
        self.done = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.done.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _note(self) -> "_Server":
        owner = self.server.owner  # type: ignore[attr-defined]
        owner.seen.append((self.command, self.path))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return owner


class _Target(_Handler):
    def do_GET(self) -> None:
        self._note()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET


@pytest.fixture
def target():
    srv = _Server(_Target)
    yield srv
    srv.close()


def test_a_redirect_is_not_followed_to_another_host(target):
    """A witness answering 302 to 127.0.0.1 had the checkpoint tool GET that URL (SSRF)."""
    class Redirect(_Handler):
        def do_POST(self) -> None:
            self._note()
            self.send_response(302)
            self.send_header("Location", f"{target.url}/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    witness = _Server(Redirect)
    try:
        with pytest.raises(audit.AuditError) as err:
            audit.post_checkpoint(f"{witness.url}/hook", CP)
    finally:
        witness.close()
    assert "302" in str(err.value) and "\n" not in str(err.value)
    assert witness.seen == [("POST", "/hook")]
    assert target.seen == []  # the redirect's target was never asked
    assert audit.post_checkpoint(f"{target.url}/hook", CP) == 200  # a witness answering 200 still gets it
    assert target.seen == [("POST", "/hook")]


def test_a_witness_that_drips_its_answer_is_cut_at_the_timeout():
    """The socket timeout bounds each read: one header byte every 0.1 s held the post for ever."""
    class Drip(_Handler):
        def do_POST(self) -> None:
            owner = self._note()
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self.wfile.flush()
                while not owner.done.wait(0.1):
                    self.wfile.write(b"a")
                    self.wfile.flush()
            except OSError:
                pass

    witness = _Server(Drip)
    result: dict = {}

    def post() -> None:
        try:
            result["status"] = audit.post_checkpoint(f"{witness.url}/hook", CP, timeout=0.5)
        except audit.AuditError as exc:
            result["error"] = str(exc)

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    poster.join(GUARD)
    alive = poster.is_alive()
    witness.close()
    assert not alive, "the post outlived its timeout"
    assert "no complete answer within 0.5 s" in result["error"]


@pytest.mark.parametrize("url", ["http://svc:hunter2@127.0.0.1:{port}/hook", "http://svc:hunter2@127.0.0.1/hook",
                                 "ftp://svc:hunter2@127.0.0.1/hook"])
def test_credentials_in_the_url_are_never_printed_nor_looked_up(target, url):
    """urllib does not send user:password@; it looked `svc:hunter2@127.0.0.1` up as a host (DNS saw
    the password), and the error line printed the whole URL."""
    url = url.format(port=target.url.rsplit(":", 1)[1])
    with pytest.raises(audit.AuditError) as err:
        audit.post_checkpoint(url, CP)
    msg = str(err.value)
    assert "hunter2" not in msg and "***@127.0.0.1" in msg and "\n" not in msg
    assert target.seen == []


def test_the_checkpoint_command_prints_no_credentials(tmp_path):
    from workbench.cli import cli

    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "audit", "checkpoint",
                                   "--post", "http://svc:hunter2@127.0.0.1:9/hook"])
    assert res.exit_code == 1 and "hunter2" not in res.output and "could not post the checkpoint" in res.output


def test_webhooks_use_the_one_core_opener():
    """One rule in one place: the webhook sender is the core POST (hard deadline, no redirects)."""
    from core import http_post
    from workbench import webhooks

    assert webhooks.http_post is http_post.http_post


# -- the key file -----------------------------------------------------------------------------------
def _keyed_store(tmp_path):
    store = Store(tmp_path / "d")
    store.migrate()
    with store.begin() as conn:
        audit.record(conn, "ada", "x")
    store.dispose()
    return tmp_path / "d" / audit.KEY_FILE


@pytest.mark.parametrize("corrupt", [lambda k: k[:10] + "g" + k[11:], lambda k: k[:-1], lambda k: "not a hex key at all, words"])
def test_a_corrupt_key_file_is_refused_naming_it(tmp_path, corrupt):
    """One bad hex digit made the file's text the key: `verify` then blamed the chain."""
    key = _keyed_store(tmp_path)
    good = key.read_text().strip()
    key.write_text(corrupt(good) + "\n")
    with pytest.raises(audit.AuditError) as err:
        audit.AuditKey(path=key).get()
    msg = str(err.value)
    assert str(key) in msg and "hex" in msg and "\n" not in msg
    store = Store(tmp_path / "d")
    with pytest.raises(audit.AuditError, match="does not hold a key in hex"), store.read() as conn:
        audit.verify(conn)
    store.dispose()
    key.write_text(good.upper() + "\n")  # the right key, its hex digits in either case, still verifies
    store = Store(tmp_path / "d")
    with store.read() as conn:
        assert audit.verify(conn).ok
    store.dispose()
