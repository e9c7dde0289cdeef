"""Webhook endpoints do not hold each other back: each has its own sender, so a receiver that hangs
delays only its own deliveries, and one that does not answer is rested (a circuit breaker) instead
of costing a timeout per delivery. Deterministic: the slow receiver blocks until the test releases
it; the waits below only guard against a hang."""
from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from core.config import ConfigError, config_dir
from core.schema import OutboxEvent, WebhookDelivery
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.queue_config import load_queue_config
from workbench.webhooks import DeliveryWorker, load_webhooks

from test_queue_support import T0, add_scored
from webhook_support import SECRET, SECRET_ENV, Receiver, write_config

ENV = {SECRET_ENV: SECRET}
N = 6
GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _decide(store, taxonomy, cfg, n: int) -> None:
    add_scored(store, taxonomy, [{"id": f"i{k}", "label": "scam", "p": 0.9} for k in range(n)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    for _ in range(n):
        c = next_case(store, "ann", "fraud", now=T0, config=cfg)
        DEC.decide(store, taxonomy, c["id"], "ann", "scam", "block_sender", now=T0, config=cfg)


def _two_endpoints(folder, slow_url: str, fast_url: str, **kw):
    """`slow` is listed first, so its deliveries come first in the claim order of every event."""
    return write_config(folder, slow_url, name="slow", extra=f"""  - name: fast
    url: {fast_url}
    events: [decision.created]
    timeout_seconds: 2
    secret_env: {SECRET_ENV}""", **kw)


def _rows(store, table):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(table.__table__).order_by(table.__table__.c.id)).mappings()]


def _wait_for(condition, guard: float = GUARD) -> bool:
    end = time.monotonic() + guard
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_a_hanging_receiver_does_not_hold_back_a_healthy_one(any_store, taxonomy, cfg, tmp_path):
    slow, fast = Receiver().start(), Receiver().start()
    slow.mode = "hold"  # accepts, then answers only when released
    folder = _two_endpoints(tmp_path / "cfg", slow.url, fast.url, timeout=60, lease=70)
    _decide(any_store, taxonomy, cfg, N)
    worker = DeliveryWorker(any_store, load_webhooks(folder, ENV), rng=random.Random(1))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(worker.run(once=True)), daemon=True)
    thread.start()
    try:
        assert slow.arrived.wait(GUARD), "the slow endpoint was never sent to"
        got_all = _wait_for(lambda: len(fast.event_ids()) == N)
        # The slow receiver still holds its first delivery (it is released only below).
        assert len(slow.event_ids()) == 1 and thread.is_alive()
        assert got_all, f"the healthy endpoint got {len(fast.event_ids())} of {N} while the other hung"
    finally:
        slow.release.set()
        thread.join(GUARD)
        slow.stop()
        fast.stop()
    assert not thread.is_alive()
    assert result["delivered"] == 2 * N and result["retrying"] == result["dead"] == 0
    events = [e["event_id"] for e in _rows(any_store, OutboxEvent)]
    # Per endpoint, deliveries go one at a time in claim order, as before.
    assert fast.event_ids() == events and slow.event_ids() == events
    assert {(d["status"], d["attempts"]) for d in _rows(any_store, WebhookDelivery)} == {("delivered", 1)}


def test_an_unanswering_receiver_costs_one_send_then_rests(any_store, taxonomy, cfg, tmp_path):
    """The circuit breaker: after a send with no answer, that endpoint's other claimed deliveries
    are handed back unsent (not an attempt) and the endpoint rests for its back-off."""
    calls: dict[str, int] = {"slow": 0, "fast": 0}

    def send(url, body, headers, timeout):
        name = "slow" if url.startswith("http://slow") else "fast"
        calls[name] += 1
        return (None, "TimeoutError: timed out") if name == "slow" else (200, None)

    folder = _two_endpoints(tmp_path / "cfg", "http://slow.invalid/h", "http://fast.invalid/h",
                            base=60, cap=60, timeout=2, lease=5)
    _decide(any_store, taxonomy, cfg, N)
    worker = DeliveryWorker(any_store, load_webhooks(folder, ENV), rng=random.Random(1), send=send)
    stats = worker.run(once=True)
    assert calls == {"slow": 1, "fast": N}
    assert (stats["delivered"], stats["retrying"], stats["released"]) == (N, 1, N - 1)
    slow_rows = [d for d in _rows(any_store, WebhookDelivery) if d["endpoint"] == "slow"]
    assert [(d["status"], d["attempts"], d["lease_owner"]) for d in slow_rows] == \
        [("pending", 1, None)] + [("pending", 0, None)] * (N - 1)
    assert "timed out" in slow_rows[0]["last_error"]
    # Resting (its back-off is up to 60 s): the next pass sends it nothing, though deliveries are due.
    assert worker.run(once=True)["delivered"] == 0 and calls["slow"] == 1
    # Another worker has its own circuit: it tries the next due delivery, once.
    other = DeliveryWorker(any_store, load_webhooks(folder, ENV), rng=random.Random(2), send=send)
    assert other.run(once=True)["retrying"] == 1 and calls["slow"] == 2
    assert [d["attempts"] for d in _rows(any_store, WebhookDelivery) if d["endpoint"] == "slow"] == \
        [1, 1] + [0] * (N - 2)


def test_max_parallel_is_checked(sqlite_store, tmp_path):
    folder = write_config(tmp_path / "cfg", "http://127.0.0.1:9/hooks")
    with pytest.raises(ConfigError, match="max_parallel must be at least 1, got 0"):
        DeliveryWorker(sqlite_store, load_webhooks(folder, ENV), max_parallel=0)
