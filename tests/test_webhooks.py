"""Enforcement hand-off by webhook: the outbox row is written in the decision's transaction; the
worker delivers signed POSTs to a real local HTTP receiver, retries with back-off while it is
down, dead-letters, redelivers after a SIGKILL between send and acknowledgement, and the CLI
lists, retries and replays."""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core import outbox
from core.config import ConfigError
from core.schema import OutboxEvent, WebhookAttempt, WebhookDelivery
from core.webhook_signature import signature_header, verify_signature
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.queue_config import load_queue_config
from core.config import config_dir
from workbench.webhooks import DeliveryWorker, backoff_delay, load_webhooks

from test_queue_support import T0, add_campaign, add_scored
from webhook_support import SECRET, SECRET_ENV, Receiver, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {SECRET_ENV: SECRET}


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.release.set()
    r.stop()


def _decide(store, taxonomy, cfg, n: int = 1, prefix: str = "i") -> list[int]:
    add_scored(store, taxonomy, [{"id": f"{prefix}{k}", "label": "scam", "p": 0.9} for k in range(n)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    ids = []
    for _ in range(n):
        c = next_case(store, "ann", "fraud", now=T0, config=cfg)
        ids += DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender", now=T0, config=cfg)["decision_ids"]
    return ids


def _rows(store, table):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(table.__table__)).mappings()]


def _worker(store, folder, **kw):
    return DeliveryWorker(store, load_webhooks(folder, ENV), rng=random.Random(1), **kw)


def test_outbox_event_is_written_in_the_decision_transaction(any_store, taxonomy, cfg):
    [d1] = _decide(any_store, taxonomy, cfg)
    events = _rows(any_store, OutboxEvent)
    assert [e["event_type"] for e in events] == ["decision.created"]
    data = events[0]["payload"]
    assert data["decisions"][0]["id"] == d1 and data["decisions"][0]["action"] == "block_sender"
    assert events[0]["idempotency_key"] == f"decision.created:{d1}" and len(events[0]["event_id"]) == 36
    # A refused decision (override without rationale) rolls back: no decision, no event.
    add_scored(any_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    with pytest.raises(DecisionError):
        DEC.decide(any_store, taxonomy, c["id"], "ann", "spam", now=T0, config=cfg)
    assert len(_rows(any_store, OutboxEvent)) == 1
    # Corrections, campaign decisions and appeal resolutions have their own events.
    DEC.correct(any_store, taxonomy, d1, "lead", "spam", "not a scam", action="label")
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ("m1", "m2", "m3")])
    add_campaign(any_store, ["m1", "m2", "m3"])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(any_store, "lead", "campaigns", now=T0, config=cfg)
    DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", now=T0, config=cfg)
    ap = APP.appeal(any_store, "m2", "owner", "real raffle", taxonomy, config=cfg, now=T0)
    APP.resolve_appeal(any_store, taxonomy, ap["id"], "bob", "reverse", "licensed", label="spam", action="label",
                       config=cfg, now=T0)
    events = _rows(any_store, OutboxEvent)
    assert [e["event_type"] for e in events] == ["decision.created", "decision.corrected", "campaign.decided",
                                                 "appeal.resolved"]
    assert events[2]["payload"]["decision_count"] == 3
    assert sorted(d["item_id"] for d in events[2]["payload"]["decisions"]) == ["m1", "m2", "m3"]
    assert events[3]["payload"]["upheld"] is True and len({e["idempotency_key"] for e in events}) == 4


def test_delivered_signed_and_verifiable(any_store, taxonomy, cfg, receiver, tmp_path):
    folder = write_config(tmp_path / "cfg", receiver.url)
    [d1] = _decide(any_store, taxonomy, cfg)
    stats = _worker(any_store, folder).run(once=True)
    assert stats["delivered"] == 1 and stats["fanned_out"] == 1
    [got] = receiver.received
    body, headers = got["body"], got["headers"]
    event = json.loads(body)
    assert event["type"] == "decision.created" and event["data"]["decisions"][0]["id"] == d1
    assert headers["Idempotency-Key"] == event["idempotency_key"] == f"decision.created:{d1}"
    sig = headers["Workbench-Signature"]
    assert verify_signature(SECRET, sig, body)
    assert not verify_signature(SECRET, sig, body.replace(b"block_sender", b"no_action"))  # changed body
    assert not verify_signature("another-secret", sig, body)
    assert not verify_signature(SECRET, sig, body, now=time.time() + 301)  # stale
    assert not verify_signature(SECRET, "t=abc,v1=00", body) and not verify_signature(SECRET, "", body)
    old = signature_header(SECRET, body, timestamp=1_000_000)
    assert verify_signature(SECRET, old, body, now=1_000_100) and not verify_signature(SECRET, old, body)
    [d] = _rows(any_store, WebhookDelivery)
    assert (d["status"], d["attempts"], d["last_status_code"], d["lease_owner"]) == ("delivered", 1, 200, None)
    [a] = _rows(any_store, WebhookAttempt)
    assert a["status_code"] == 200 and a["error"] is None and a["finished_at"] is not None
    assert _worker(any_store, folder).run(once=True)["delivered"] == 0  # nothing twice
    assert len(receiver.received) == 1


def test_receiver_down_for_a_while_gets_everything_after_recovery(sqlite_store, taxonomy, cfg, tmp_path):
    receiver = Receiver()  # port closed: connections refused
    folder = write_config(tmp_path / "cfg", receiver.url, max_attempts=20, base=0.05, cap=0.3)
    _decide(sqlite_store, taxonomy, cfg, n=4)
    worker = _worker(sqlite_store, folder)
    first = worker.run(max_seconds=1.0)
    assert first["delivered"] == 0 and first["retrying"] >= 4
    down = _rows(sqlite_store, WebhookDelivery)
    assert all(d["status"] == "pending" and d["attempts"] >= 1 and "Connection refused" in (d["last_error"] or "")
               for d in down)
    receiver.start()
    try:
        worker.run(max_seconds=3.0)
        events = {e["event_id"] for e in _rows(sqlite_store, OutboxEvent)}
        assert set(receiver.event_ids()) == events and len(events) == 4
        assert all(d["status"] == "delivered" for d in _rows(sqlite_store, WebhookDelivery))
        assert len(_rows(sqlite_store, WebhookAttempt)) == sum(d["attempts"] for d in _rows(sqlite_store, WebhookDelivery))
    finally:
        receiver.stop()


def test_dead_letter_after_max_attempts_then_cli_retry_and_replay(sqlite_store, taxonomy, cfg, receiver, tmp_path):
    from workbench.cli import cli

    folder = write_config(tmp_path / "cfg", receiver.url, max_attempts=3, base=0.01, cap=0.02)
    _decide(sqlite_store, taxonomy, cfg, n=2)
    receiver.mode = "fail"
    _worker(sqlite_store, folder).run(max_seconds=1.5)
    deliveries = _rows(sqlite_store, WebhookDelivery)
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [("dead", 3, 500)] * 2
    assert len(receiver.received) == 6 and len(_rows(sqlite_store, WebhookAttempt)) == 6
    base = ["--data-dir", str(sqlite_store.data_dir), "--config-dir", str(folder), "webhooks"]
    runner = CliRunner()
    out = runner.invoke(cli, base + ["list", "--status", "dead", "--json"], env=ENV)
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert listed["summary"]["endpoints"]["enforcement"] == {"dead": 2} and len(listed["deliveries"]) == 2
    out = runner.invoke(cli, base + ["show", str(deliveries[0]["id"]), "--json"], env=ENV)
    assert out.exit_code == 0 and len(json.loads(out.output)["attempt_log"]) == 3
    receiver.mode = "ok"
    out = runner.invoke(cli, base + ["retry", str(deliveries[0]["id"]), "--json"], env=ENV)
    assert json.loads(out.output) == {"retried": 1}
    out = runner.invoke(cli, base + ["deliver", "--once", "--json"], env=ENV)
    assert out.exit_code == 0 and json.loads(out.output)["delivered"] == 1, out.output
    assert runner.invoke(cli, base + ["retry", "--all-dead"], env=ENV).exit_code == 0
    runner.invoke(cli, base + ["deliver", "--once"], env=ENV)
    assert {d["status"] for d in _rows(sqlite_store, WebhookDelivery)} == {"delivered"}
    assert runner.invoke(cli, base + ["retry"], env=ENV).exit_code != 0  # names nothing: refused
    # Replay a delivered event: the same event id and idempotency key arrive again.
    event_id = deliveries[0]["event_id"]
    before = len(receiver.received)
    out = runner.invoke(cli, base + ["replay", "--endpoint", "enforcement", "--event", event_id, "--json"], env=ENV)
    assert json.loads(out.output) == {"pending": 1}
    runner.invoke(cli, base + ["deliver", "--once"], env=ENV)
    again = receiver.received[before:]
    assert [r["event"]["id"] for r in again] == [event_id]
    original = next(r for r in receiver.received if r["event"]["id"] == event_id)
    assert again[0]["headers"]["Idempotency-Key"] == original["headers"]["Idempotency-Key"]
    # An endpoint added later gets past events by replay --since.
    second = Receiver().start()
    try:
        write_config(folder, receiver.url, extra=f"""  - name: audit-mirror
    url: {second.url}
    events: [decision.created]
    timeout_seconds: 2
    secret_env: {SECRET_ENV}""")
        out = runner.invoke(cli, base + ["replay", "--endpoint", "audit-mirror", "--since", "2000-01-01"], env=ENV)
        assert out.exit_code == 0 and "2 deliveries" in out.output, out.output
        runner.invoke(cli, base + ["deliver", "--once"], env=ENV)
        assert sorted(second.event_ids()) == sorted({d["event_id"] for d in deliveries})
        out = runner.invoke(cli, base + ["replay", "--endpoint", "nope", "--since", "2000-01-01"], env=ENV)
        assert out.exit_code != 0 and "no webhook endpoint named 'nope'" in out.output
    finally:
        second.stop()


def test_worker_killed_between_send_and_ack_redelivers(any_store, taxonomy, cfg, receiver, tmp_path):
    folder = write_config(tmp_path / "cfg", receiver.url, timeout=1, lease=2)
    [d1] = _decide(any_store, taxonomy, cfg)
    receiver.mode = "hold"
    args = [sys.executable, "-m", "workbench.cli", "--data-dir", str(any_store.data_dir), "--config-dir", str(folder)]
    if not any_store.is_sqlite:
        args += ["--db", any_store.url]
    proc = subprocess.Popen(args + ["webhooks", "deliver", "--max-seconds", "30"], cwd=ROOT,
                            env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if not receiver.arrived.wait(30):
            proc.kill()
            pytest.fail(f"the worker sent nothing: {proc.communicate()[1].decode()[-2000:]}")
        proc.send_signal(signal.SIGKILL)  # sent, not acknowledged
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    receiver.mode = "ok"
    receiver.release.set()
    [d] = _rows(any_store, WebhookDelivery)
    assert (d["status"], d["attempts"]) == ("pending", 1) and d["lease_owner"] is not None
    assert _rows(any_store, WebhookAttempt) == []  # the outcome was never recorded
    assert _worker(any_store, folder).run(once=True)["delivered"] == 0  # the lease still holds
    time.sleep(max(0.0, (d["lease_expires_at"] - dt.datetime.utcnow()).total_seconds()) + 0.2)
    assert _worker(any_store, folder).run(once=True)["delivered"] == 1
    first, second = receiver.received
    assert first["event"]["id"] == second["event"]["id"]
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"] == f"decision.created:{d1}"
    assert first["body"] == second["body"] and verify_signature(SECRET, second["headers"]["Workbench-Signature"],
                                                                second["body"])
    [d] = _rows(any_store, WebhookDelivery)
    assert (d["status"], d["attempts"]) == ("delivered", 2)
    lost, ok = _rows(any_store, WebhookAttempt)
    assert "worker lost" in lost["error"] and lost["attempt"] == 1 and ok["status_code"] == 200


def test_concurrent_workers_send_each_delivery_once(any_store, taxonomy, cfg, receiver, tmp_path):
    import threading

    folder = write_config(tmp_path / "cfg", receiver.url)
    _decide(any_store, taxonomy, cfg, n=24)
    workers = [_worker(any_store, folder, batch_size=3) for _ in range(3)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = receiver.event_ids()
    assert len(ids) == len(set(ids)) == 24
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in _rows(any_store, WebhookDelivery))


def test_config_is_validated_and_secrets_read_by_the_application(tmp_path):
    folder = write_config(tmp_path / "ok", "http://127.0.0.1:9/x")
    loaded = load_webhooks(folder, ENV)
    assert loaded.endpoint("enforcement").secret == SECRET.encode() and SECRET not in repr(loaded)
    with pytest.raises(ConfigError, match=r"webhooks.yaml: field 'endpoints.0.secret_env': environment variable "
                                          rf"{SECRET_ENV} is not set"):
        load_webhooks(folder, {})
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "hook.secret").write_text("from-a-file\n")
    (tmp_path / "f" / "webhooks.yaml").write_text(
        "endpoints:\n  - {name: a, url: 'https://x.example/h', events: [decision.created], secret_file: hook.secret}\n")
    assert load_webhooks(tmp_path / "f", {}).endpoint("a").secret == b"from-a-file"
    bad = {
        "events: [decision.deleted]": "endpoints.0.events.0",
        "url: ftp://x": "endpoints.0.url",
        "secret: inline": "endpoints.0.secret",
        "max_attempts: 0": "endpoints.0.max_attempts",
    }
    for line, field in bad.items():
        key = line.split(":")[0]
        spec = {"name": "a", "url": "'https://x.example/h'", "events": "[decision.created]", "secret_env": "S"}
        spec[key] = line.split(": ", 1)[1]
        (tmp_path / "f" / "webhooks.yaml").write_text(
            "endpoints:\n  - {" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}\n")
        with pytest.raises(ConfigError, match=rf"webhooks.yaml: field '{field}"):
            load_webhooks(tmp_path / "f", {"S": "x"})
    (tmp_path / "f" / "webhooks.yaml").write_text(
        "endpoints:\n  - {name: a, url: 'https://x.example/h', events: [decision.created], secret_env: S,"
        " secret_file: s}\n")
    with pytest.raises(ConfigError, match="exactly one of secret_env"):
        load_webhooks(tmp_path / "f", {"S": "x"})
    assert load_webhooks(tmp_path / "none", {}).endpoints == ()  # no file: no endpoints
    assert load_webhooks(config_dir(), {}).enabled == ()  # the bundled file has none


def test_backoff_is_exponential_with_full_jitter():
    rng = random.Random(0)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        draws = [backoff_delay(attempt, 2, 60, rng) for _ in range(300)]
        assert 0 <= min(draws) and max(draws) <= ceiling and max(draws) > ceiling * 0.8


def test_serve_starts_no_worker_without_enabled_endpoints(tmp_path):
    from workbench.context import AppContext
    from workbench.webhooks import start_webhook_worker

    assert start_webhook_worker(AppContext(tmp_path / "d", config_dir_=config_dir())) is None
    assert outbox.EVENT_TYPES == ("decision.created", "decision.corrected", "appeal.resolved", "campaign.decided")


def test_a_receiver_that_answers_garbage_fails_its_own_deliveries_only(sqlite_store, taxonomy, cfg, receiver, tmp_path):
    """A receiver answering something that is not HTTP (http.client's BadStatusLine) used to escape
    the worker: its batch stayed leased with no attempt recorded, and no endpoint got anything."""
    broken = Receiver().start()
    broken.mode = "garbage"
    try:
        folder = write_config(tmp_path / "cfg", broken.url, name="broken", max_attempts=2, base=0.01, cap=0.02,
                              extra=f"""  - name: healthy
    url: {receiver.url}
    events: [decision.created]
    timeout_seconds: 2
    secret_env: {SECRET_ENV}""")
        _decide(sqlite_store, taxonomy, cfg, n=3)
        _worker(sqlite_store, folder).run(max_seconds=1.5)
        by_endpoint = {}
        for d in _rows(sqlite_store, WebhookDelivery):
            by_endpoint.setdefault(d["endpoint"], []).append(d)
        assert [(d["status"], d["attempts"]) for d in by_endpoint["broken"]] == [("dead", 2)] * 3
        assert all("BadStatusLine" in d["last_error"] for d in by_endpoint["broken"])
        assert {d["status"] for d in by_endpoint["healthy"]} == {"delivered"} and len(receiver.event_ids()) == 3
    finally:
        broken.stop()


def test_a_sender_that_raises_is_a_failed_attempt(sqlite_store, taxonomy, cfg, tmp_path):
    def explode(url, body, headers, timeout):
        raise RuntimeError("plugin bug")

    folder = write_config(tmp_path / "cfg", "http://127.0.0.1:9/hooks", max_attempts=1)
    _decide(sqlite_store, taxonomy, cfg, n=2)
    stats = DeliveryWorker(sqlite_store, load_webhooks(folder, ENV), rng=random.Random(1), send=explode).run(once=True)
    assert stats["dead"] == 2
    assert [(d["status"], d["last_error"]) for d in _rows(sqlite_store, WebhookDelivery)] == \
        [("dead", "RuntimeError: plugin bug")] * 2
