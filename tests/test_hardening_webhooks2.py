"""Webhook hardening: per-item order of deliveries (a correction never reaches an endpoint before
the decision it corrects, across retries, workers and a fan-out under way); a receiver that drips
its answer is cut at the endpoint's timeout; an empty secret verifies nothing; hostile endpoint
URLs, back-off, lease and CLI values are refused up front."""
from __future__ import annotations

import datetime as dt
import json
import random
import socket
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, text, update

from core import outbox
from core.config import ConfigError, config_dir
from core.schema import OutboxEvent, OutboxItem, WebhookDelivery
from core.webhook_signature import signature_header, verify_signature
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.queue_config import load_queue_config
from workbench.webhooks import DeliveryWorker, http_post, load_webhooks

from test_queue_support import T0, add_scored
from webhook_support import SECRET, SECRET_ENV, write_config

ENV = {SECRET_ENV: SECRET}
GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _decide(store, taxonomy, cfg, items: list[str]) -> dict[str, int]:
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in items])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    ids = {}
    for _ in items:
        c = next_case(store, "ann", "fraud", now=T0, config=cfg)
        [ids[c["item_id"]]] = DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender", now=T0,
                                         config=cfg)["decision_ids"]
    return ids


def _correct(store, taxonomy, decision_id: int) -> None:
    DEC.correct(store, taxonomy, decision_id, "ann", "benign", "not a scam after all", action="no_action")


def _deliveries(store):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(WebhookDelivery.__table__).order_by(WebhookDelivery.id)).mappings()]


class Recorder:
    """A sender that answers 500 to the first `fail` POSTs, then 200; records (type, items)."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.sent = fail, []

    def __call__(self, url, body, headers, timeout):
        event = json.loads(body)
        self.sent.append((event["type"], sorted({d["item_id"] for d in event["data"]["decisions"]})))
        if len(self.sent) <= self.fail:
            return 500, "HTTP 500 Internal Server Error"
        return 200, None


def test_a_correction_waits_for_the_retry_of_the_decision_it_corrects(any_store, taxonomy, cfg, tmp_path):
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h", base=60, cap=60)
    ids = _decide(any_store, taxonomy, cfg, ["x", "y"])
    send = Recorder(fail=1)  # the receiver refuses the first decision once: it is retried later
    worker = DeliveryWorker(any_store, load_webhooks(folder, ENV), rng=random.Random(1), send=send)
    assert worker.run(once=True)["retrying"] == 1
    _correct(any_store, taxonomy, ids["x"])
    worker.run(once=True)
    # The correction of x waits for x's decision (still in its back-off); y is not held back.
    assert send.sent == [("decision.created", ["x"]), ("decision.created", ["y"])]
    with any_store.begin() as conn:  # x's back-off ends
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.status == "pending")
                     .values(next_attempt_at=dt.datetime(2000, 1, 1)))
    worker.run(once=True)
    assert send.sent[2:] == [("decision.created", ["x"]), ("decision.corrected", ["x"])]
    assert {d["status"] for d in _deliveries(any_store)} == {"delivered"}


def test_a_second_worker_does_not_send_a_correction_while_the_first_sends_its_decision(any_store, taxonomy, cfg):
    ids = _decide(any_store, taxonomy, cfg, ["x"])
    _correct(any_store, taxonomy, ids["x"])
    with any_store.begin() as conn:
        outbox.fan_out(conn, {"e": outbox.EVENT_TYPES})
    with any_store.begin() as conn:  # worker a holds x's decision (sending it)
        [first] = outbox.claim(conn, ["e"], "a", 60, limit=1)
    assert first["event_type"] == "decision.created"
    with any_store.begin() as conn:  # worker b must not send the correction meanwhile
        assert outbox.claim(conn, ["e"], "b", 60) == []
    with any_store.begin() as conn:
        outbox.finish(conn, first["id"], "a", 1, T0, ok=True, status_code=200, error=None, retry_at=None)
    with any_store.begin() as conn:
        assert [r["event_type"] for r in outbox.claim(conn, ["e"], "b", 60)] == ["decision.corrected"]


def test_a_correction_waits_while_its_decision_is_being_fanned_out(any_store, taxonomy, cfg):
    """Another worker's fan-out of the decision not committed yet: its event shows as not fanned out."""
    ids = _decide(any_store, taxonomy, cfg, ["x"])
    _correct(any_store, taxonomy, ids["x"])
    with any_store.begin() as conn:
        outbox.fan_out(conn, {"e": outbox.EVENT_TYPES})
        first = conn.execute(select(OutboxEvent.event_id).order_by(OutboxEvent.id)).scalars().first()
        conn.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id == first))
        conn.execute(update(OutboxEvent).where(OutboxEvent.event_id == first).values(fanned_out_at=None))
    with any_store.begin() as conn:
        assert outbox.claim(conn, ["e"], "b", 60) == []


def test_a_receiver_that_drips_its_answer_is_cut_at_the_timeout():
    """A socket timeout bounds each read only: one byte a little faster than the timeout kept the
    sender for ever, past its lease (another worker would send the delivery again)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    done = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not done.wait(0.1):
                conn.sendall(b"a")
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=drip, daemon=True).start()
    result: dict = {}
    sender = threading.Thread(target=lambda: result.update(r=http_post(
        f"http://127.0.0.1:{server.getsockname()[1]}/h", b"{}", {}, 0.5)), daemon=True)
    sender.start()
    sender.join(GUARD)
    done.set()
    server.close()
    assert not sender.is_alive(), "the POST outlived its timeout"
    code, error = result["r"]
    assert code is None and "no complete answer within 0.5 s" in error


def test_an_empty_secret_verifies_nothing():
    body = b'{"type":"decision.created"}'
    assert not verify_signature("", signature_header("", body), body)
    assert not verify_signature(b"", signature_header(b"", body), body)
    assert verify_signature(SECRET, signature_header(SECRET, body), body)


@pytest.mark.parametrize("url, problem", [
    ("http://svc:hunter2@127.0.0.1/h", "must not hold credentials"),
    ("http://svc:hunter2@hooks.example", "must not hold credentials"),
    ("http://127.0.0.1:99999/h", "not a valid URL"),
    ("http://127.0.0.1/a b", "without spaces or control characters"),
    ("http://bücher.test/h", "host holds non-ASCII characters"),
])
def test_a_bad_endpoint_url_is_a_config_error(tmp_path, url, problem):
    folder = write_config(tmp_path / "cfg", f'"{url}"')
    with pytest.raises(ConfigError) as err:
        load_webhooks(folder, ENV)
    assert problem in str(err.value) and "endpoints.0.url" in str(err.value) and "hunter2" not in str(err.value)


def test_hostile_backoff_and_lease_values_are_refused(tmp_path):
    # A back-off of 1e12 s overflowed the date after the send: the attempt was never recorded.
    with pytest.raises(ConfigError, match="backoff_base_seconds"):
        load_webhooks(write_config(tmp_path / "a", "http://h.invalid/h", base=1e12, cap=1e12), ENV)
    # A lease of 1e9 s: a worker that dies holds its deliveries for 31 years.
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_webhooks(write_config(tmp_path / "b", "http://h.invalid/h", lease=1e9), ENV)
    config = load_webhooks(write_config(tmp_path / "c", "http://h.invalid/h"), ENV)
    for lease in (float("nan"), float("inf"), 1e9):
        with pytest.raises(ConfigError, match="lease must be"):
            DeliveryWorker(None, config, lease_seconds=lease)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", [["--max-seconds", "nan"], ["--max-seconds", "0"], ["--lease-seconds", "nan"],
                                    ["--lease-seconds", "inf"]])
def test_cli_refuses_hostile_seconds(sqlite_store, tmp_path, option):
    """--max-seconds 0 or NaN ran for ever (a cron job piling up); a NaN lease crashed the claim."""
    from workbench.cli import cli

    folder = write_config(tmp_path / "cfg", "http://h.invalid/h")
    out = CliRunner().invoke(cli, ["--data-dir", str(sqlite_store.data_dir), "--config-dir", str(folder),
                                   "webhooks", "deliver", "--once", *option], env=ENV)
    assert out.exit_code == 2 and option[0] in out.output, out.output


def test_a_receivers_answer_cannot_drive_the_operators_terminal(sqlite_store, taxonomy, cfg, tmp_path):
    """The error body of a 500 was stored and printed by `webhooks list` as it came, escape
    sequences included (retitle, clear the screen, paint a fake status)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from workbench.cli import cli

    hostile = b"\x1b]0;owned\x07\x1b[2J\x1b[1;31mall delivered\r\nfake line"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.send_header("Content-Length", str(len(hostile)))
            self.end_headers()
            self.wfile.write(hostile)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = write_config(tmp_path / "cfg", f"http://127.0.0.1:{server.server_port}/h", base=60, cap=60)
        _decide(sqlite_store, taxonomy, cfg, ["x"])
        worker = DeliveryWorker(sqlite_store, load_webhooks(folder, ENV), rng=random.Random(1))
        assert worker.run(once=True)["retrying"] == 1
    finally:
        server.shutdown()
        server.server_close()
    [d] = _deliveries(sqlite_store)
    assert d["last_status_code"] == 500 and "all delivered" in d["last_error"]
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in d["last_error"])
    out = CliRunner().invoke(cli, ["--data-dir", str(sqlite_store.data_dir), "--config-dir", str(folder),
                                   "webhooks", "list"], env=ENV)
    assert out.exit_code == 0 and "all delivered" in out.output
    assert "\x1b" not in out.output and "\x07" not in out.output


# -- the held check at scale: an index of each event's items (migration 0010) ---------------------
def _event(conn, n: int, *items) -> str:
    return outbox.enqueue(conn, "decision.created", {"decisions": [{"id": n, "item_id": i} for i in items]},
                          f"decision.created:{n}")


def _indexed(conn) -> set[tuple[int, str]]:
    return {tuple(r) for r in conn.execute(select(OutboxItem.outbox_id, OutboxItem.item_id))}


def test_enqueue_indexes_its_events_items_in_the_same_transaction(any_store):
    with any_store.begin() as conn:
        _event(conn, 1, "b", "a", "a", None)
        _event(conn, 2)  # about no item: nothing to index
        [oid] = conn.execute(select(OutboxEvent.id).where(OutboxEvent.idempotency_key == "decision.created:1")).scalars()
    with pytest.raises(RuntimeError), any_store.begin() as conn:  # a rolled-back decision leaves no row
        _event(conn, 3, "c")
        raise RuntimeError("the decision's transaction fails")
    with any_store.read() as conn:
        assert _indexed(conn) == {(oid, "a"), (oid, "b")}
    with pytest.raises(outbox.OutboxError, match=r"^decision.created event 'decision.created:4': an item id is "
                                                 r"longer than 200 characters$"), any_store.begin() as conn:
        _event(conn, 4, "x" * 201)


def test_migration_0010_indexes_the_events_already_in_the_outbox(any_store):
    from alembic import command

    cfg = any_store._alembic_config()
    with any_store.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
        rows = [{"decisions": [{"id": 1, "item_id": "a"}, {"id": 2, "item_id": "b"}, {"id": 3, "item_id": "a"}]},
                {"decision_count": 0}, {"decisions": [{"id": 4, "item_id": None}, {"id": 5, "item_id": 7}]}]
        for k, payload in enumerate(rows * 400):  # more than one chunk of the backfill
            conn.execute(insert(OutboxEvent.__table__).values(event_id=f"e{k}", event_type="decision.created",
                                                              payload=payload, idempotency_key=f"k{k}", created_at=T0))
        ids = list(conn.execute(select(OutboxEvent.id).order_by(OutboxEvent.id)).scalars())
        command.upgrade(cfg, "head")
        assert _indexed(conn) == {(oid, i) for n, oid in enumerate(ids)
                                  for i in (("a", "b"), (), ("7",))[n % 3]}


def test_only_an_older_event_about_its_item_holds_a_delivery(any_store):
    """The held check read every event not fanned out below the newest candidate: an event about x
    waiting for fan-out held back an OLDER delivery about x, as if it had to go first."""
    with any_store.begin() as conn:
        _event(conn, 1, "x")
        young = _event(conn, 2, "x")
        _event(conn, 3, "y")
        _event(conn, 4, "z", "y")  # about y too: waits for 3
        _event(conn, 5, "w")
        outbox.fan_out(conn, {"e": outbox.EVENT_TYPES})
        conn.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id == young))
        conn.execute(update(OutboxEvent).where(OutboxEvent.event_id == young).values(fanned_out_at=None))
    with any_store.begin() as conn:
        got = [r["idempotency_key"] for r in outbox.claim(conn, ["e"], "a", 60)]
    assert got == ["decision.created:1", "decision.created:3", "decision.created:5"]


def _held_plan(store, ids: list[int]) -> str:
    q = outbox._held_query().params(ids=ids).compile(dialect=store.engine.dialect,
                                                      compile_kwargs={"literal_binds": True})
    with store.begin() as conn:
        if store.is_sqlite:
            return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return " | ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {q}"))


def test_the_held_check_reads_the_item_index_not_the_backlog(sqlite_store):
    """Each claim read and parsed the payload of every pending delivery (0.85 s a claim behind
    5,000 in back-off); now the candidates' items are looked up in `ix_outbox_items_item`."""
    with sqlite_store.begin() as conn:
        for k in range(300):
            _event(conn, k, f"i{k % 50}")
        outbox.fan_out(conn, {"e": outbox.EVENT_TYPES})
        conn.exec_driver_sql("ANALYZE")  # with statistics, a scan would tempt the planner
    plan = _held_plan(sqlite_store, list(range(280, 301)))
    assert "ix_outbox_items_item (item_id=? AND outbox_id<?)" in plan and "SCAN" not in plan, plan


@pytest.mark.postgres
def test_the_held_check_uses_the_item_index_on_postgresql(pg_store):
    with pg_store.begin() as conn:
        _event(conn, 1, "x")
        outbox.fan_out(conn, {"e": outbox.EVENT_TYPES})
    plan = _held_plan(pg_store, [1])
    assert "ix_outbox_items_item" in plan and "Seq Scan" not in plan, plan
