"""Outbox and webhook delivery hardening, third pass.

1. `core.http_post` used urllib's default opener, which takes HTTP_PROXY / HTTPS_PROXY /
   ALL_PROXY from the environment: every signed enforcement payload (and a token in the URL) went
   to whatever proxy the process inherited. It now goes straight to the URL's host.
2. A payload with a lone surrogate was stored (both stores) and then `event_body` raised on
   every claim: the delivery never went out, never died, and the worker's sender failed each
   pass. A NaN was stored on SQLite (invalid JSON sent) and broke the decision on PostgreSQL.
   `enqueue` refuses both, naming the field; a row stored before is sent escaped.
3. `exponential_backoff` returned any wait its cap allowed (`auto_retrain.failure_backoff_cap_seconds`
   is unbounded): `now + timedelta(seconds=wait)` raised OverflowError; NaN slipped through.
4. Two replays of an event to an endpoint that never had it, at once on PostgreSQL: the second
   failed with an IntegrityError traceback. It now adds nothing, and one delivery exists.
Local servers only, never the network.
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import math
import random
import threading
import time

import pytest
from sqlalchemy import func, insert, select, text, update

from core import outbox
from core.backoff import exponential_backoff
from core.http_post import http_post
from core.schema import OutboxEvent, WebhookDelivery
from core.webhook_signature import (IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SIGNATURE_V2_HEADER, signature_headers,
                                    verify, verify_signature)
from workbench.webhooks import DeliveryWorker, load_webhooks

from test_hardening_webhook_replay import _event
from test_queue_support import T0
from webhook_support import SECRET, SECRET_ENV, Receiver, write_config

GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken
ACTOR = "ops"


# -- 1. no proxy from the environment -------------------------------------------------------------
class _Recording(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append((self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_POST


@pytest.fixture
def servers():
    started = []

    def start() -> http.server.ThreadingHTTPServer:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
        srv.daemon_threads = True
        srv.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_an_environment_proxy_never_gets_the_signed_payload(servers, monkeypatch, variable):
    receiver, proxy = servers(), servers()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.server_address[1]}")
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks?token=s3cr3t-token"
    assert http_post(url, b'{"signed": true}', {"Workbench-Signature-V2": "t=1,v2=ab"}, GUARD) == (200, None)
    assert receiver.seen == [("/hooks?token=s3cr3t-token", b'{"signed": true}')]
    assert proxy.seen == []


# -- 2. payloads no receiver can read ---------------------------------------------------------------
@pytest.mark.parametrize("payload, where", [
    ({"decisions": [{"item_id": "x", "note": "bad \udcff text"}]}, "payload.decisions[0].note holds a lone surrogate"),
    ({"decisions": [{"item_id": "x"}], "score": math.nan}, "payload.score is nan"),
    ({"decisions": [{"item_id": "x"}], "\ud800": 1}, "payload (a key) holds a lone surrogate"),
])
def test_a_payload_no_receiver_can_read_is_refused_at_enqueue_naming_the_field(any_store, payload, where):
    with any_store.begin() as conn:
        _event(conn, 1, "x")
    with pytest.raises(outbox.OutboxError) as err:
        with any_store.begin() as conn:
            outbox.enqueue(conn, "decision.created", payload, "decision.created:2")
    assert where in str(err.value) and "decision.created:2" in str(err.value) and "\n" not in str(err.value)
    with any_store.read() as conn:  # the transaction is rolled back; the event before is kept
        assert conn.execute(select(func.count()).select_from(OutboxEvent)).scalar_one() == 1


def test_non_ascii_text_goes_out_as_utf8_unchanged(any_store):
    with any_store.begin() as conn:
        outbox.enqueue(conn, "decision.created", {"decisions": [{"item_id": "é✓🙂", "note": "Привет"}]}, "k:1")
        ev = conn.execute(select(OutboxEvent.__table__)).mappings().one()
    body = outbox.event_body(ev)
    assert "Привет".encode() in body and json.loads(body)["data"]["decisions"][0]["item_id"] == "é✓🙂"


def test_an_event_stored_with_a_lone_surrogate_is_still_delivered(any_store, tmp_path):
    """Stored before `enqueue` refused them (the JSON columns of both stores keep `\\udcff`)."""
    receiver = Receiver().start()
    try:
        with any_store.begin() as conn:
            conn.execute(insert(OutboxEvent.__table__).values(
                event_id="e-1", event_type="decision.created", idempotency_key="decision.created:1", created_at=T0,
                payload={"decisions": [{"id": 1, "item_id": "x", "note": "bad \udcff"}]}))
        folder = write_config(tmp_path / "cfg", receiver.url, max_attempts=2)
        worker = DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET}), rng=random.Random(1))
        assert worker.run(once=True)["delivered"] == 1
        [got] = receiver.received
        body = got["body"]
        assert b"\\udcff" in body and body.decode("ascii")
        assert verify(SECRET, got["headers"][SIGNATURE_V2_HEADER], got["headers"][IDEMPOTENCY_HEADER], body,
                      now=time.time())
    finally:
        receiver.stop()


# -- 3. back-off waits that no date can hold ---------------------------------------------------------
@pytest.mark.parametrize("attempt", [40, 61, 10**9])
def test_a_backoff_wait_always_fits_a_date(attempt):
    wait = exponential_backoff(attempt, 3600, 10**30)  # an unbounded cap (auto_retrain's config)
    assert T0 + dt.timedelta(seconds=wait) > T0
    assert exponential_backoff(attempt, 5, 3600) == 3600  # a sane cap is kept


@pytest.mark.parametrize("base, cap", [(math.nan, 10), (5, math.nan), (5, math.inf), (-1, 10), (5, 0)])
def test_a_non_finite_or_non_positive_backoff_is_refused(base, cap):
    with pytest.raises(ValueError, match="finite number of seconds above 0"):
        exponential_backoff(3, base, cap)


# -- 4. two replays at once -----------------------------------------------------------------------
def _waiting_on_a_lock(store) -> bool:
    with store.read() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()")).scalar_one())


def test_two_replays_at_once_to_an_endpoint_that_never_had_the_event_make_one_delivery(any_store):
    with any_store.begin() as conn:
        event = _event(conn, 1, "x")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})  # "late" was configured afterwards
    errors: list[BaseException] = []
    counts: list[int] = []

    def second() -> None:
        try:
            with any_store.begin() as conn:
                counts.append(outbox.replay(conn, "late", outbox.EVENT_TYPES, [event], actor=ACTOR))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with any_store.begin() as conn:
        counts.append(outbox.replay(conn, "late", outbox.EVENT_TYPES, [event], actor=ACTOR))
        thread = threading.Thread(target=second)
        thread.start()
        if any_store.dialect == "postgresql":  # the second replay's insert waits for this one
            end = time.monotonic() + GUARD
            while not _waiting_on_a_lock(any_store) and time.monotonic() < end:
                time.sleep(0.02)
            assert _waiting_on_a_lock(any_store)
    thread.join(GUARD)
    assert not thread.is_alive() and errors == []
    assert sorted(counts) == [0, 1]
    with any_store.read() as conn:
        rows = conn.execute(select(WebhookDelivery.status).where(WebhookDelivery.endpoint == "late")).scalars().all()
    assert rows == ["pending"]


# -- 5. a NaN clock or tolerance turned the replay window off -----------------------------------
def test_a_nan_clock_or_tolerance_never_lets_a_stale_signature_through():
    body = b'{"idempotency_key":"decision.created:1"}'
    headers = signature_headers(SECRET, body, "decision.created:1", timestamp=1_000)
    v1, v2 = headers[SIGNATURE_HEADER], headers[SIGNATURE_V2_HEADER]
    assert verify(SECRET, v2, "decision.created:1", body, now=1_100) and verify_signature(SECRET, v1, body, now=1_100)
    assert not verify(SECRET, v2, "decision.created:1", body, now=math.nan)
    assert not verify_signature(SECRET, v1, body, now=math.nan)
    assert not verify_signature(SECRET, v1, body, tolerance=math.nan, now=10**9)
    assert verify_signature(SECRET, v1, body, tolerance=None, now=10**9)  # None: the window off, as documented


# -- 6. a discard reason that drives the operator's terminal --------------------------------------
@pytest.mark.parametrize("reason, problem", [("item gone \x1b]0;owned\x07\x1b[2J", "control character at character 11"),
                                             ("item gone \x00 for ever", "control character at character 11"),
                                             ("item gone \udcff", "lone surrogate at character 11")])
def test_a_discard_reason_the_terminal_would_obey_is_refused(any_store, reason, problem):
    """The reason is kept in the delivery's last_error, which `workbench webhooks list` prints as is;
    a NUL also broke the transaction on PostgreSQL."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
        conn.execute(update(WebhookDelivery).values(status="dead", last_error="HTTP 422"))
        dead = conn.execute(select(WebhookDelivery.id)).scalar_one()
    with pytest.raises(outbox.OutboxError, match=problem):
        with any_store.begin() as conn:
            outbox.discard(conn, [dead], reason, actor=ACTOR)
    with any_store.read() as conn:
        assert conn.execute(select(WebhookDelivery.status, WebhookDelivery.last_error)).one() == ("dead", "HTTP 422")


# -- 7. a replay of an event id that names nothing ------------------------------------------------
def test_replaying_an_event_that_is_not_there_says_so_and_changes_nothing(any_store):
    with any_store.begin() as conn:
        event = _event(conn, 1, "x")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
    with pytest.raises(outbox.OutboxError, match="no event 'no-such-event' of enforcement's types .*nothing was"):
        with any_store.begin() as conn:
            outbox.replay(conn, "enforcement", outbox.EVENT_TYPES, [event, "no-such-event"], actor=ACTOR)
    with pytest.raises(outbox.OutboxError, match=f"no event '{event}'"):  # not of the endpoint's types
        with any_store.begin() as conn:
            outbox.replay(conn, "enforcement", ["appeal.resolved"], [event], actor=ACTOR)
    with any_store.read() as conn:
        assert conn.execute(select(WebhookDelivery.status, WebhookDelivery.attempts)).all() == [("pending", 0)]


def test_a_url_whose_path_is_not_ascii_fails_with_a_clear_error():
    """http.client cannot send it: each attempt failed with "UnicodeEncodeError: ordinal not in range(128)"."""
    code, error = http_post("http://127.0.0.1:9/hööks?x=é", b"{}", {}, GUARD)
    assert code is None and "non-ASCII" in error and "percent-encode" in error


def test_an_endpoint_url_that_is_not_ascii_or_a_secret_that_is_not_utf8_is_a_config_error(tmp_path):
    """A path like `/hööks` loaded and then failed on every attempt; a secret of undecodable bytes
    (a lone surrogate in os.environ) crashed the load with a UnicodeEncodeError traceback."""
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="endpoints.0.url.*percent-encode"):
        load_webhooks(write_config(tmp_path / "a", "http://127.0.0.1/h\u00f6\u00f6ks"), {SECRET_ENV: SECRET})
    with pytest.raises(ConfigError, match=f"secret_env.*{SECRET_ENV} is not UTF-8"):
        load_webhooks(write_config(tmp_path / "b", "http://127.0.0.1/h"), {SECRET_ENV: "k\udcff"})
