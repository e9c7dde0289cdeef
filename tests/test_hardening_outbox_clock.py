"""Outbox and webhook delivery hardening: whose clock decides, and how long a name lookup may take.

1. A delivery's lease was set and checked with each worker host's own `utcnow()`: a host whose
   clock ran ahead by more than the lease saw every live lease as expired and sent the delivery a
   second time while its holder was still sending it; a host whose clock ran behind wrote leases
   that had already expired for everyone else. The lease is now the store's time
   (`core.lease_clock`: PostgreSQL's clock; on SQLite, one host, the process's). A skewed worker is
   simulated by the `now` it passes (and, for the worker, by its `utcnow`).
2. `core.http_post` bounded the exchange but not the host name's lookup (getaddrinfo, which
   nothing can interrupt): a resolver that hangs held the sender, and the endpoint's lease, for as
   long as it hung. The lookup now ends within the POST's timeout, and the connection goes to the
   address found with the Host header, SNI and certificate check of the URL's name.
Local servers only, never the network; a blocking resolver is a monkeypatched `socket.getaddrinfo`.
"""
from __future__ import annotations

import datetime as dt
import http.server
import random
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from sqlalchemy import select, update

from core import outbox
from core.http_post import http_post
from core.lease_clock import lease_now
from core.schema import WebhookAttempt, WebhookDelivery, utcnow
from workbench.webhooks import DeliveryWorker, load_webhooks

from test_hardening_webhook_replay import _event
from webhook_support import SECRET, SECRET_ENV, Receiver, write_config

GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken
SKEW = dt.timedelta(hours=2)  # far more than any lease (MAX_LEASE_SECONDS is an hour)
SUBS = {"enforcement": outbox.EVENT_TYPES}


def _delivery(store) -> dict:
    with store.read() as conn:
        return dict(conn.execute(select(WebhookDelivery.__table__)).mappings().one())


def _attempts(store) -> int:
    with store.read() as conn:
        return len(conn.execute(select(WebhookAttempt.id)).all())


# -- 1. the lease is the store's time ---------------------------------------------------------------
def test_a_worker_whose_clock_runs_ahead_never_takes_a_live_lease(any_store):
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        outbox.fan_out(conn, SUBS)
    with any_store.begin() as conn:
        [mine] = outbox.claim(conn, ["enforcement"], "w-a", 60, now=utcnow())
    with any_store.begin() as conn:  # its clock says the lease ran out two hours ago
        assert outbox.claim(conn, ["enforcement"], "w-fast", 60, now=utcnow() + SKEW) == []
    row = _delivery(any_store)
    assert (row["lease_owner"], row["attempts"]) == ("w-a", 1) and _attempts(any_store) == 0
    with any_store.read() as conn:  # naive UTC like every time in the schema, and live by the store's clock
        assert row["lease_expires_at"].tzinfo is None and row["lease_expires_at"] > lease_now(conn)
    with any_store.begin() as conn:
        assert outbox.finish(conn, mine["id"], "w-a", 1, utcnow(), ok=True, status_code=200, error=None,
                             retry_at=None) == "delivered"


def test_a_worker_whose_clock_runs_behind_still_gets_a_live_lease(any_store):
    """Its lease used to end at its own `now` plus the lease: already over for every other worker."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        outbox.fan_out(conn, SUBS, now=utcnow() - 2 * SKEW)  # due for the slow clock too
    with any_store.begin() as conn:
        assert len(outbox.claim(conn, ["enforcement"], "w-slow", 60, now=utcnow() - SKEW)) == 1
    with any_store.begin() as conn:
        assert outbox.claim(conn, ["enforcement"], "w-b", 60, now=utcnow()) == []
    assert _delivery(any_store)["lease_owner"] == "w-slow" and _attempts(any_store) == 0


def test_a_skewed_clock_never_parks_a_delivery_another_worker_is_sending(any_store):
    """A delivery held behind a dead one is dead-lettered only once its lease ran out (`_park`):
    a fast clock used to dead-letter it mid-send, and the sender's outcome was then dropped."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        _event(conn, 2, "x")
        outbox.fan_out(conn, SUBS)
        first, second = conn.execute(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).scalars().all()
    with any_store.begin() as conn:
        [got] = outbox.claim(conn, ["enforcement"], "w-a", 60, limit=1)
        assert got["id"] == first
        # The second is being sent by w-b (as after a replay), while the first has just died.
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == first).values(
            status="dead", lease_owner=None, lease_expires_at=None))
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == second).values(
            lease_owner="w-b", lease_expires_at=lease_now(conn) + dt.timedelta(seconds=60), attempts=1))
    with any_store.begin() as conn:
        assert outbox.claim(conn, ["enforcement"], "w-fast", 60, now=utcnow() + SKEW) == []
    with any_store.read() as conn:
        row = conn.execute(select(WebhookDelivery.status, WebhookDelivery.lease_owner)
                           .where(WebhookDelivery.id == second)).one()
    assert tuple(row) == ("pending", "w-b") and _attempts(any_store) == 0


def test_a_lease_that_ran_out_in_the_stores_time_is_taken_over_whatever_the_workers_clock(any_store):
    """At least once still holds: a dead worker's lease is claimed again, the lost attempt kept."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        outbox.fan_out(conn, SUBS, now=utcnow() - 2 * SKEW)
    with any_store.begin() as conn:
        conn.execute(update(WebhookDelivery).values(lease_owner="w-dead", attempts=1,
                                                    lease_expires_at=lease_now(conn) - dt.timedelta(seconds=1)))
    with any_store.begin() as conn:  # a clock behind by more than the lease sees it live: the store's does not
        [got] = outbox.claim(conn, ["enforcement"], "w-slow", 60, now=utcnow() - SKEW)
        [lost] = outbox.attempts_of(conn, got["id"])
    assert lost["worker"] == "w-dead" and "outcome unknown" in lost["error"]


def test_a_delivery_worker_on_a_host_whose_clock_runs_ahead_sends_nothing_leased(any_store, tmp_path, monkeypatch):
    receiver = Receiver().start()
    try:
        with any_store.begin() as conn:
            _event(conn, 1, "x")
            outbox.fan_out(conn, SUBS)
        with any_store.begin() as conn:  # another worker is sending it now
            [held] = outbox.claim(conn, ["enforcement"], "w-a", 60)
        folder = write_config(tmp_path / "cfg", receiver.url, timeout=2, lease=60)
        worker = DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET}), name="w-fast",
                                rng=random.Random(1))
        monkeypatch.setattr("core.schema.utcnow", lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + SKEW)
        stats = worker.run(once=True)
        assert stats["delivered"] == 0 and receiver.received == []
        assert _delivery(any_store)["lease_owner"] == "w-a"
        monkeypatch.undo()
        with any_store.begin() as conn:
            assert outbox.finish(conn, held["id"], "w-a", 1, utcnow(), ok=True, status_code=200, error=None,
                                 retry_at=None) == "delivered"
    finally:
        receiver.stop()


# -- 2. the name lookup is within the deadline ---------------------------------------------------------
@pytest.fixture
def resolver(monkeypatch):
    """`socket.getaddrinfo` where `hangs.test` never answers (until the test ends) and `*.test`
    names are 127.0.0.1; the rest as usual."""
    real, gate = socket.getaddrinfo, threading.Event()

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hangs.test":
            gate.wait(GUARD * 4)
        elif isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    gate.set()


def test_a_resolver_that_hangs_fails_the_post_with_a_timeout(resolver):
    got: list = []
    thread = threading.Thread(target=lambda: got.append(http_post("http://hangs.test/hooks", b"{}", {}, 0.3)),
                              daemon=True)
    thread.start()
    thread.join(GUARD)
    assert not thread.is_alive(), "the POST waited for the resolver, past its deadline"
    assert got == [(None, "TimeoutError: no complete answer within 0.3 s")]


def test_the_connection_goes_to_the_address_found_with_the_urls_host_header(resolver):
    receiver = Receiver().start()
    try:
        assert http_post(f"http://receiver.test:{receiver.port}/hooks", b"{}", {}, GUARD) == (200, None)
        assert receiver.received[0]["headers"]["Host"] == f"receiver.test:{receiver.port}"
        assert http_post("http://nothing.invalid/hooks", b"{}", {}, GUARD)[1].startswith("URLError: [Errno")
    finally:
        receiver.stop()


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """An HTTPS server on 127.0.0.1 whose self-signed certificate names `receiver.test` only,
    trusted through SSL_CERT_FILE (what the default context reads)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=receiver.test", "-addext", "subjectAltName=DNS:receiver.test"],
                   check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    seen: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.append((self.headers["Host"], self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sni: list = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], seen, sni
    srv.shutdown()
    srv.server_close()


def test_tls_still_checks_the_certificate_against_the_urls_name(resolver, tls_receiver):
    port, seen, sni = tls_receiver
    assert http_post(f"https://receiver.test:{port}/hooks", b"{}", {}, GUARD) == (200, None)
    assert seen == [(f"receiver.test:{port}", b"{}")] and sni[0] == "receiver.test"
    code, error = http_post(f"https://other.test:{port}/hooks", b"{}", {}, GUARD)  # same address, another name
    assert code is None and "CERTIFICATE_VERIFY_FAILED" in error and len(seen) == 1


def test_a_tls_handshake_dripped_a_byte_at_a_time_ends_with_the_deadline():
    """http.client hands the connection to the timer's watch only after the handshake: the
    handshake is bounded by the socket's timeout, now the time left after the lookup and connect."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB, then one byte at a time
            while not stop.wait(0.05):
                try:
                    conn.sendall(b"\x00")
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    got: list = []
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/hooks"
    thread = threading.Thread(target=lambda: got.append(http_post(url, b"{}", {}, 0.5)), daemon=True)
    try:
        thread.start()
        thread.join(GUARD)
        assert not thread.is_alive(), "the POST waited for the handshake, past its deadline"
        assert got == [(None, "TimeoutError: no complete answer within 0.5 s")]
    finally:
        stop.set()
        listener.close()
