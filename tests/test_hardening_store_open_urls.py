"""Opening a store, secrets in webhook and checkpoint URLs, and closing the application context.

Each test reproduces a defect found in an audit: `open_store` gave an OSError or SQLAlchemy
traceback for a data dir that cannot be created or a disk that fills while the schema is written
(only the application context turned it into one line); a token in a webhook or witness URL's
query string or path was printed in errors and stored in every failed attempt; a URL urllib cannot
parse was a ValueError traceback out of the one outbound POST; and closing the context left the
webhook worker and the retrain and rescoring threads writing to the store after it.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import core.audit as audit
from core import outbox
from core.http_post import http_post, public_url
from core.schema import WebhookAttempt
from core.store import Store, StoreError, open_store
from labeling.rescore import RescoreJob
from workbench.context import AppContext
from workbench.learning import RetrainJob
from workbench.webhooks import DeliveryWorker, load_webhooks, start_webhook_worker

from webhook_support import SECRET, SECRET_ENV, write_config

GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken
TOKEN = "tok3nS3cr3tValue42"


def _fresh_target(store: Store, tmp_path, request) -> tuple[str | None, str]:
    """A new, empty database of `store`'s dialect: (url or None for SQLite, data dir)."""
    data_dir = str(tmp_path / f"fresh-{uuid.uuid4().hex[:6]}")
    if store.is_sqlite:
        return None, data_dir
    from tests.conftest import _create_pg_database, _drop_pg_database

    admin = request.getfixturevalue("pg_server_url")
    name, url = _create_pg_database(admin)
    request.addfinalizer(lambda: _drop_pg_database(admin, name))
    return url, data_dir


# -- opening a store --------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["under a file", "is a file"])
def test_a_data_dir_that_cannot_be_created_is_one_line_from_open_store(any_store, tmp_path, request, where):
    """NotADirectoryError / FileExistsError tracebacks to every caller but the application context
    (on PostgreSQL too: the data dir holds the audit key and the artefacts)."""
    url, _ = _fresh_target(any_store, tmp_path, request)
    (tmp_path / "file").write_text("x")
    data_dir = tmp_path / "file" / "data" if where == "under a file" else tmp_path / "file"
    with pytest.raises(StoreError) as err:
        open_store(data_dir, url)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"cannot open the store in {data_dir}")
    assert url is None or ("127.0.0.1" in msg and "(database " in msg)


def test_a_disk_that_fills_while_the_schema_is_created_is_one_line(any_store, tmp_path, request, monkeypatch):
    """On a 48 KiB tmpfs the schema's commit failed: a sqlalchemy OperationalError traceback."""
    def disk_full(*_a, **_k):
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))

    url, data_dir = _fresh_target(any_store, tmp_path, request)
    monkeypatch.setattr(audit, "seal", disk_full)  # the last step before the schema's commit
    with pytest.raises(StoreError) as err:
        open_store(data_dir, url)
    msg = str(err.value)
    assert "\n" not in msg and f"cannot open the store in {data_dir}" in msg and "disk is full" in msg
    assert url is None or "127.0.0.1" in msg  # PostgreSQL: the database is named too


# -- secrets in URLs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("url, shown", [
    (f"https://witness.example/hook?token={TOKEN}&v=2", "https://witness.example/hook?token=***&v=***"),
    (f"https://h.example/x?api_key={TOKEN}&sig={TOKEN}x#{TOKEN}", "https://h.example/x?api_key=***&sig=***#***"),
    (f"https://hooks.example/services/T01/B02/{TOKEN}", "https://hooks.example/services/T01/B02/***"),
    (f"https://svc:pw@h.example/x?{TOKEN}", "https://***@h.example/x?***"),
])
def test_public_url_masks_query_values_and_token_segments(url, shown):
    assert public_url(url) == shown
    assert public_url("https://h.example/enforcement-receiver/2024-01-01?dry") == \
        "https://h.example/enforcement-receiver/2024-01-01?***"


@pytest.mark.parametrize("tail", [f"?token={TOKEN}", f"/{TOKEN}?x=1 y"])
def test_a_checkpoint_error_never_prints_the_token(tail):
    """`could not post the checkpoint to http://...?token=<the token>` (and urllib's InvalidURL
    quoting the path again)."""
    with pytest.raises(audit.AuditError) as err:
        audit.post_checkpoint(f"http://127.0.0.1:1/hook{tail}", {"head": "h", "count": 1, "time": "t"}, timeout=2)
    assert TOKEN not in str(err.value) and "/hook" in str(err.value)


def test_a_url_urllib_cannot_parse_is_the_posts_error_not_a_traceback():
    code, error = http_post(f"http://[::1/hook?token={TOKEN}", b"{}", {}, 2)
    assert code is None and error.startswith("ValueError") and TOKEN not in error


@pytest.fixture
def echo_receiver():
    """A receiver that answers 404 quoting the path and query it was sent to (as many frameworks do)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = f"no route for {self.path}".encode()
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_event(store) -> None:
    with store.begin() as conn:
        outbox.enqueue(conn, "decision.created", {"decisions": [{"item_id": "x1"}]}, f"k-{uuid.uuid4().hex}")


def _errors(store) -> list[str]:
    with store.read() as conn:
        attempts = [r[0] for r in conn.execute(select(WebhookAttempt.error))]
        listed = [r["last_error"] for r in outbox.list_deliveries(conn)]
    return attempts + listed


def test_a_failed_delivery_stores_no_token_of_the_endpoint_url(any_store, tmp_path, echo_receiver):
    """The attempt's error (and `webhooks list`) held `no route for /hooks?token=<the token>`."""
    folder = write_config(tmp_path / "cfg", f'"{echo_receiver}/hooks?token={TOKEN}"', max_attempts=1)
    _one_event(any_store)
    stats = DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET})).run(once=True)
    errors = _errors(any_store)
    assert stats["dead"] == 1 and len(errors) == 2
    assert all(TOKEN not in e and "HTTP 404" in e and "token=***" in e for e in errors)


def test_a_sender_that_raises_with_the_url_stores_no_token(any_store, tmp_path):
    folder = write_config(tmp_path / "cfg", f'"https://hooks.example/in/{TOKEN}"', max_attempts=1)

    def broken(url, body, headers, timeout):
        raise RuntimeError(f"cannot reach {url}")

    _one_event(any_store)
    DeliveryWorker(any_store, load_webhooks(folder, {SECRET_ENV: SECRET}), send=broken).run(once=True)
    errors = _errors(any_store)
    assert errors and all(TOKEN not in e and "hooks.example/in/***" in e for e in errors)


# -- closing the context ----------------------------------------------------------------------------
def _writes_after(store, release: threading.Event, out: list[str]):
    def work() -> None:
        release.wait(GUARD)
        _one_event(store)  # a batch of rescored cases, a retrain's audit event
        out.append("written")
    return work


@pytest.mark.parametrize("kind", ["rescore", "retrain"])
def test_close_waits_for_a_running_retrain_or_rescoring(any_store, kind):
    """close() returned at once and disposed the store while the job's thread went on writing."""
    app, release, out = AppContext(store=any_store), threading.Event(), []
    thread = threading.Thread(target=_writes_after(any_store, release, out), daemon=True)
    if kind == "rescore":
        app.rescore_job = RescoreJob(total=1, thread=thread)
    else:
        app.retrain_job = RetrainJob(by="ann", started_at="now", thread=thread)
    thread.start()
    threading.Timer(0.2, release.set).start()
    app.close()
    assert out == ["written"] and not thread.is_alive()


def test_close_gives_up_on_a_job_after_its_wait_and_names_it(any_store, caplog):
    app, release = AppContext(store=any_store), threading.Event()
    thread = threading.Thread(target=release.wait, args=(GUARD,), daemon=True)
    app.retrain_job = RetrainJob(by="ann", started_at="now", thread=thread)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="workbench.context"):
            app.close(wait=0.05)
        assert thread.is_alive() and "retrain still running" in caplog.text
    finally:
        release.set()


def test_close_stops_the_webhook_worker(any_store, tmp_path, monkeypatch):
    """serve's delivery worker polled the store for ever after the context was closed."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    app = AppContext(config_dir_=write_config(tmp_path / "cfg", "http://receiver.invalid/h"), store=any_store)
    stop = start_webhook_worker(app)
    worker = next(t for t in threading.enumerate() if t.name == "webhook-worker" and t.is_alive())
    app.close()
    assert stop is not None and stop.is_set() and not worker.is_alive()
