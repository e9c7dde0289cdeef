"""Webhook replay hardening.

1. The v1 signature covered the timestamp and the body but not the `Idempotency-Key` header: a
   captured delivery re-sent with a fresh key still verified, defeating a receiver deduplicating
   on the header. v2 (`Workbench-Signature-V2`) signs timestamp, key and body; `verify` checks it.
   The v1 header is still sent, unchanged, for receivers not on v2 yet.
2. A delivery held behind an older event about its item was held only while that one was
   pending: once the older one died, the newer (a correction) went out, and re-driving the dead
   one (`retry`, `replay`) put the decision after the correction that corrects it.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time

import pytest
from sqlalchemy import select, update

from core import outbox
from core.config import config_dir
from core.schema import OutboxEvent, WebhookDelivery
from core.webhook_signature import (IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SIGNATURE_V2_HEADER, signature_headers,
                                    verify, verify_signature)
from labeling.queue_config import load_queue_config
from workbench.webhooks import DeliveryWorker, load_webhooks

from test_hardening_webhooks2 import _correct, _decide
from test_queue_support import T0
from webhook_support import SECRET, SECRET_ENV, write_config

ENV = {SECRET_ENV: SECRET}
ACTOR = "ops"


class Recorder:
    """A sender that answers 500 while `failing`, else 200; records every POST."""

    def __init__(self) -> None:
        self.failing, self.posts = False, []

    def __call__(self, url, body, headers, timeout):
        self.posts.append({"body": body, "headers": dict(headers)})
        return (500, "HTTP 500 Internal Server Error") if self.failing else (200, None)

    def sent(self, since: int = 0) -> list[tuple[str, list[str]]]:
        events = [json.loads(p["body"]) for p in self.posts[since:]]
        return [(e["type"], sorted({d["item_id"] for d in e["data"]["decisions"]})) for e in events]


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "calibration_sets": []})


def _deliveries(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(
            select(WebhookDelivery.__table__, OutboxEvent.event_type).join(
                OutboxEvent, OutboxEvent.event_id == WebhookDelivery.event_id).order_by(WebhookDelivery.id)).mappings()]


def _worker(store, tmp_path, send, **kw) -> DeliveryWorker:
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h", **kw)
    return DeliveryWorker(store, load_webhooks(folder, ENV), rng=random.Random(1), send=send)


# -- 1. the signature covers the idempotency key -------------------------------------------------
def _delivered(sqlite_store, taxonomy, cfg, tmp_path, extra: str = "") -> dict:
    send = Recorder()
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h", extra=extra)
    _decide(sqlite_store, taxonomy, cfg, ["x"])
    assert DeliveryWorker(sqlite_store, load_webhooks(folder, ENV), send=send).run(once=True)["delivered"] == 1
    [post] = send.posts
    return post


def test_a_replay_with_a_fresh_idempotency_key_fails_v2_but_old_receivers_still_verify(sqlite_store, taxonomy, cfg,
                                                                                       tmp_path):
    post = _delivered(sqlite_store, taxonomy, cfg, tmp_path)
    body, h = post["body"], post["headers"]
    key, v2, v1 = h[IDEMPOTENCY_HEADER], h[SIGNATURE_V2_HEADER], h[SIGNATURE_HEADER]
    assert key == json.loads(body)["idempotency_key"]
    assert verify(SECRET, v2, key, body, tolerance=300)
    # The attack: the same signed delivery replayed with a fresh key. v1 cannot tell (it never
    # covered the header, hence the README's "deduplicate on the body's key"); v2 refuses it.
    assert verify_signature(SECRET, v1, body)
    assert not verify(SECRET, v2, key + "-replay", body) and not verify(SECRET, v2, "decision.created:999999", body)
    # The old scheme is untouched: same header name, same `t=...,v1=...` form, same timestamp.
    assert v1.split(",")[0] == v2.split(",")[0] and v1.split(",")[1].startswith("v1=")
    assert not verify_signature(SECRET, v1, body.replace(b"block_sender", b"no_action"))


def test_v2_refuses_a_changed_timestamp_body_or_secret_and_a_stale_or_mismatched_key():
    body = json.dumps({"idempotency_key": "decision.created:7", "data": {"action": "block_sender"}}).encode()
    key = "decision.created:7"
    h = signature_headers(SECRET, body, key, timestamp=1_000_000)
    v2 = h[SIGNATURE_V2_HEADER]
    assert verify(SECRET, v2, key, body, now=1_000_100)
    assert not verify(SECRET, v2.replace("t=1000000", "t=1000050"), key, body, now=1_000_100)  # re-stamped
    assert not verify(SECRET, v2, key, body.replace(b"block_sender", b"no_action"), now=1_000_100)  # changed body
    assert not verify("another-secret", v2, key, body, now=1_000_100) and not verify("", v2, key, body, now=1_000_100)
    # Stale or future by more than the tolerance, which is the receiver's to set.
    assert not verify(SECRET, v2, key, body, now=1_000_301) and not verify(SECRET, v2, key, body, now=999_699)
    assert verify(SECRET, v2, key, body, tolerance=600, now=1_000_301)
    assert not verify(SECRET, v2, key, body, tolerance=60, now=1_000_100)
    for off in (None, 0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance must be a finite number of seconds above 0"):
            verify(SECRET, v2, key, body, tolerance=off, now=1_000_100)  # type: ignore[arg-type]
    # A body whose own key is not the header's (both signed) is refused: either one dedupes alike.
    other = body.replace(b"created:7", b"created:8")
    mismatched = signature_headers(SECRET, other, key, timestamp=1_000_000)[SIGNATURE_V2_HEADER]
    assert not verify(SECRET, mismatched, key, other, now=1_000_100)

    with pytest.raises(ValueError, match="idempotency key"):
        signature_headers(SECRET, body, "k\ninjected")
    # Malformed headers, several v2 values while the secret rotates, and v1 never stands in for v2.
    assert not verify(SECRET, "t=abc,v2=00", key, body) and not verify(SECRET, "", key, body)
    rotated = signature_headers("old-secret", body, key, timestamp=1_000_000)[SIGNATURE_V2_HEADER]
    assert verify(SECRET, f"{rotated},{v2.split(',')[1]}", key, body, now=1_000_100)
    assert not verify(SECRET, h[SIGNATURE_HEADER], key, body, now=1_000_100)


def test_an_endpoint_done_with_the_transition_gets_only_v2(sqlite_store, taxonomy, cfg, tmp_path):
    post = _delivered(sqlite_store, taxonomy, cfg, tmp_path, extra="    legacy_signature: false")
    h = post["headers"]
    assert SIGNATURE_HEADER not in h and verify(SECRET, h[SIGNATURE_V2_HEADER], h[IDEMPOTENCY_HEADER], post["body"])


# -- 2. re-driven deliveries keep each item's order ----------------------------------------------
def test_a_correction_waits_behind_its_dead_decision_and_a_retry_sends_both_in_order(any_store, taxonomy, cfg,
                                                                                    tmp_path):
    ids = _decide(any_store, taxonomy, cfg, ["x", "y"])
    send = Recorder()
    send.failing = True  # x's decision (and y's) die at the first attempt
    worker = _worker(any_store, tmp_path, send, max_attempts=1)
    assert worker.run(once=True)["dead"] == 2
    send.failing = False
    _correct(any_store, taxonomy, ids["x"])
    before = len(send.posts)
    worker.run(once=True)
    assert send.sent(before) == []  # the correction of x is not sent ahead of x's decision
    dead_x, dead_y, parked = _deliveries(any_store)
    assert parked["event_type"] == "decision.corrected" and parked["status"] == "dead"
    assert parked["attempts"] == 0 and f"parked behind dead delivery {dead_x['id']}" in parked["last_error"]
    # The operator re-drives x's decision only: its correction follows it, y stays dead.
    with any_store.begin() as conn:
        assert outbox.retry(conn, [dead_x["id"]], actor=ACTOR) == 2
    worker.run(once=True)
    assert send.sent(before) == [("decision.created", ["x"]), ("decision.corrected", ["x"])]
    assert [d["status"] for d in _deliveries(any_store)] == ["delivered", "dead", "delivered"]


def test_retrying_only_the_parked_correction_does_not_send_it_first(any_store, taxonomy, cfg, tmp_path):
    ids = _decide(any_store, taxonomy, cfg, ["x"])
    send = Recorder()
    send.failing = True
    worker = _worker(any_store, tmp_path, send, max_attempts=1)
    worker.run(once=True)
    send.failing = False
    _correct(any_store, taxonomy, ids["x"])
    worker.run(once=True)
    decision, correction = _deliveries(any_store)
    with any_store.begin() as conn:
        assert outbox.retry(conn, [correction["id"]], actor=ACTOR) == 1
    before = len(send.posts)
    worker.run(once=True)
    assert send.sent(before) == [] and [d["status"] for d in _deliveries(any_store)] == ["dead", "dead"]
    with any_store.begin() as conn:  # every dead one of the endpoint: the held check orders them
        assert outbox.retry(conn, endpoint="enforcement", actor=ACTOR) == 2
    worker.run(once=True)
    assert send.sent(before) == [("decision.created", ["x"]), ("decision.corrected", ["x"])]


def test_replaying_a_decision_resends_the_newer_events_about_its_items_after_it(any_store, taxonomy, cfg, tmp_path):
    ids = _decide(any_store, taxonomy, cfg, ["x", "y"])
    _correct(any_store, taxonomy, ids["x"])
    send = Recorder()
    worker = _worker(any_store, tmp_path, send)
    worker.run(once=True)
    assert send.sent() == [("decision.created", ["x"]), ("decision.created", ["y"]), ("decision.corrected", ["x"])]
    decision_x = _deliveries(any_store)[0]
    with any_store.begin() as conn:
        n = outbox.replay(conn, "enforcement", outbox.EVENT_TYPES, [decision_x["event_id"]], actor=ACTOR)
    assert n == 2
    worker.run(once=True)
    # The receiver (one that lost its state, replay's use) ends with x corrected, not blocked.
    assert send.sent(3) == [("decision.created", ["x"]), ("decision.corrected", ["x"])]
    # An endpoint not subscribed to corrections gets only what it subscribes to.
    with any_store.begin() as conn:
        assert outbox.replay(conn, "enforcement", ["decision.created"], [decision_x["event_id"]], actor=ACTOR) == 1


def test_a_parked_delivery_whose_lease_ran_out_keeps_its_lost_attempt(any_store, taxonomy, cfg, tmp_path):
    """A worker died sending the correction (lease ran out) while the decision was re-driven and
    died again: parking it records the lost attempt, as a claim would."""
    ids = _decide(any_store, taxonomy, cfg, ["x"])
    _correct(any_store, taxonomy, ids["x"])
    with any_store.begin() as conn:
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
    decision, correction = _deliveries(any_store)
    gone = dt.datetime(2000, 1, 1)
    with any_store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == decision["id"]).values(status="dead"))
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == correction["id"]).values(
            lease_owner="w-dead", lease_expires_at=gone, attempts=1))
    with any_store.begin() as conn:
        assert outbox.claim(conn, ["enforcement"], "w2", 60) == []
        [lost] = outbox.attempts_of(conn, correction["id"])
    assert lost["worker"] == "w-dead" and "outcome unknown" in lost["error"]
    row = _deliveries(any_store)[1]
    assert (row["status"], row["lease_owner"], row["attempts"]) == ("dead", None, 1)


def test_v2_verifies_a_real_delivery_within_the_default_tolerance_only(sqlite_store, taxonomy, cfg, tmp_path):
    post = _delivered(sqlite_store, taxonomy, cfg, tmp_path)
    h = post["headers"]
    assert verify(SECRET, h[SIGNATURE_V2_HEADER], h[IDEMPOTENCY_HEADER], post["body"])
    assert not verify(SECRET, h[SIGNATURE_V2_HEADER], h[IDEMPOTENCY_HEADER], post["body"], now=time.time() + 301)


def _event(conn, n: int, *items) -> str:
    return outbox.enqueue(conn, "decision.created", {"decisions": [{"id": n, "item_id": i} for i in items]},
                          f"decision.created:{n}")


def _drain(store) -> list[str]:
    """Claim and acknowledge one delivery at a time: the order an endpoint gets them in."""
    got = []
    while True:
        with store.begin() as conn:
            rows = outbox.claim(conn, ["enforcement"], "w", 60, limit=1)
            if not rows:
                return got
            outbox.finish(conn, rows[0]["id"], "w", rows[0]["attempts"], T0, ok=True, status_code=200, error=None,
                          retry_at=None)
        got.append(rows[0]["idempotency_key"])


@pytest.mark.parametrize("status", ["dead", "delivered"])
def test_a_re_drive_brings_along_newer_events_through_shared_items(any_store, status):
    """1 is about x, 2 about x and y, 3 about y only: re-driving 1 must bring 3 too (it follows 2 on y)."""
    with any_store.begin() as conn:
        first = _event(conn, 1, "x")
        _event(conn, 2, "x", "y")
        _event(conn, 3, "y")
        _event(conn, 4, "z")
        outbox.fan_out(conn, {"enforcement": outbox.EVENT_TYPES})
        conn.execute(update(WebhookDelivery).values(status=status))
        [did] = conn.execute(select(WebhookDelivery.id).where(WebhookDelivery.event_id == first)).scalars()
    with any_store.begin() as conn:
        n = (outbox.retry(conn, [did], actor=ACTOR) if status == "dead"
             else outbox.replay(conn, "enforcement", outbox.EVENT_TYPES, [first], actor=ACTOR))
    assert n == 3
    assert _drain(any_store) == ["decision.created:1", "decision.created:2", "decision.created:3"]
