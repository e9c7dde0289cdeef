"""Enforcement hand-off by webhook: the endpoints config and the delivery worker.

`configs/webhooks.yaml` lists the endpoints (name, URL, event types, a secret given as the name
of an environment variable or a file, enabled, max attempts, back-off base and cap, timeout);
`load_webhooks` validates it (errors name the file and the field) and reads each secret once.
`AppContext.webhooks()` is the one caller.

`DeliveryWorker` moves events from the outbox (`core/outbox.py`, written in each decision's own
transaction) to the endpoints: fan out, claim with a lease, POST the JSON body signed with
HMAC-SHA256 (`core/webhook_signature.py`: v2 covers the timestamp, the `Idempotency-Key` and the
body; the legacy v1 header, timestamp and body only, is sent too unless the endpoint sets
`legacy_signature: false`), record the attempt, and on failure retry after an
exponential back-off with full jitter (uniform(0, min(cap, base * 2**(n-1)))) until the
endpoint's `max_attempts`, then dead-letter. Each endpoint has its own sender thread (deliveries
to one endpoint go one at a time, in claim order), so a receiver that hangs holds back only its
own deliveries; one that does not answer (timeout, refused connection) is rested for its back-off
rather than costing a timeout per delivery (a circuit breaker). At least once: a worker killed
between sending and recording is found by its expired lease and the event sent again with the
same `Idempotency-Key`. Leases run on the store's clock (`core.lease_clock`), never a worker
host's, so a host whose clock is off never sends a delivery another worker is still sending. It runs inside `workbench serve` (`start_webhook_worker`, a daemon thread)
and as `workbench webhooks deliver` for cron.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import uuid
from concurrent import futures
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.backoff import exponential_backoff
from core.config import ConfigError, load_model, raise_problems
from core.http_post import http_post, redact  # the one outbound POST: hard deadline, no redirects
from core.event_scope import item_scoped
from core.outbox import EVENT_TYPES
from core.reviewer_pseudonym import pseudonymous_payload

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store

log = logging.getLogger(__name__)

WEBHOOKS_FILE = "webhooks.yaml"
MAX_PARALLEL = 8  # endpoints sent to at once by one worker; more wait for a free sender
MAX_BACKOFF_SECONDS = 7 * 86400  # a longer wait is a typo (and past year 9999 a crash after the send)
MAX_LEASE_SECONDS = 3600  # a worker that dies holds its deliveries this long: longer is as good as lost
EventType = Literal["decision.created", "decision.corrected", "appeal.resolved", "campaign.decided"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    url: str
    events: list[EventType] = Field(min_length=1)
    secret_env: Optional[str] = None
    secret_file: Optional[str] = None
    enabled: bool = True
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_base_seconds: float = Field(5.0, gt=0, le=MAX_BACKOFF_SECONDS)
    backoff_cap_seconds: float = Field(3600.0, gt=0, le=MAX_BACKOFF_SECONDS)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    legacy_signature: bool = True  # also send the v1 header (timestamp and body only)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        """Checked whole, as it will be sent: a flaw found only at send time would fail every
        delivery, and credentials in it would be copied into each attempt's error and the log."""
        if not re.match(r"^https?://[^\s/]+", v) or re.search(r"[\x00-\x20\x7f]", v):
            raise ValueError("must be an http:// or https:// URL without spaces or control characters")
        try:
            parts = urllib.parse.urlsplit(v)
            parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("names no host")
        if "@" in parts.netloc:
            raise ValueError("must not hold credentials (user:password@host): "
                             "the secret goes in secret_env or secret_file")
        if not (parts.path + parts.query + parts.fragment).isascii():
            raise ValueError("the path or query holds non-ASCII characters: percent-encode them")
        if not parts.netloc.isascii():
            # refused here, not at every send (core.http_post refuses it too): one config error
            raise ValueError("the host holds non-ASCII characters: give its ASCII (xn--) form")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> "EndpointSpec":
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env (an environment variable's name) "
                             "or secret_file (a file holding the secret)")
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_cap_seconds must be at least backoff_base_seconds")
        return self


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_seconds: float = Field(2.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0, le=MAX_LEASE_SECONDS)
    batch_size: int = Field(20, ge=1, le=1000)


class WebhooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[EndpointSpec] = Field(default_factory=list)
    worker: WorkerSpec = Field(default_factory=WorkerSpec)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A configured endpoint with its secret read (never printed: `repr` leaves it and the URL, which
    may hold a token, out; `core.http_post.public_url(url)` is the URL as it may be printed)."""

    name: str
    url: str = dataclasses.field(repr=False)
    events: tuple[str, ...]
    secret: bytes = dataclasses.field(repr=False)
    enabled: bool = True
    max_attempts: int = 8
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    legacy_signature: bool = True


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    endpoints: tuple[Endpoint, ...] = ()
    poll_seconds: float = 2.0
    lease_seconds: float = 60.0
    batch_size: int = 20
    path: Optional[Path] = None

    def endpoint(self, name: str) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise ConfigError(f"{self.path or WEBHOOKS_FILE}: no webhook endpoint named {name!r} "
                          f"(configured: {', '.join(e.name for e in self.endpoints) or 'none'})")

    @property
    def enabled(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.enabled)

    def subscriptions(self) -> dict[str, tuple[str, ...]]:
        return {e.name: e.events for e in self.endpoints}


def load_webhooks(config_dir: Path, environ: Mapping[str, str]) -> WebhookConfig:
    """`webhooks.yaml` validated, each enabled endpoint's secret read (from `environ` or a file);
    no file: no endpoints. Errors name the file and the field."""
    path = Path(config_dir) / WEBHOOKS_FILE
    if not path.exists():
        return WebhookConfig(path=path)
    spec = load_model(path, WebhooksFile)
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    endpoints = []
    for i, e in enumerate(spec.endpoints):
        where = f"endpoints.{i}"
        if e.name in seen:
            problems.append((f"{where}.name", f"duplicate endpoint name {e.name!r}"))
        seen.add(e.name)
        if e.timeout_seconds + 1 > spec.worker.lease_seconds:
            problems.append((f"{where}.timeout_seconds",
                             f"must be at least 1 s below worker.lease_seconds ({spec.worker.lease_seconds:g})"))
        secret = b""
        if e.secret_env is not None:
            value = environ.get(e.secret_env, "")
            if not value and e.enabled:
                problems.append((f"{where}.secret_env", f"environment variable {e.secret_env} is not set or empty"))
            try:
                secret = value.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes in the environment arrive as lone surrogates
                problems.append((f"{where}.secret_env", f"environment variable {e.secret_env} is not UTF-8 text"))
        else:
            file = Path(e.secret_file or "")
            file = file if file.is_absolute() else path.parent / file
            try:
                secret = file.read_bytes().strip()
            except OSError as exc:
                if e.enabled:
                    problems.append((f"{where}.secret_file", f"cannot read {file}: {exc.strerror or exc}"))
            if not secret and e.enabled and file.exists():
                problems.append((f"{where}.secret_file", f"{file} is empty"))
        endpoints.append(Endpoint(e.name, e.url, tuple(e.events), secret, e.enabled, e.max_attempts,
                                  e.backoff_base_seconds, e.backoff_cap_seconds, e.timeout_seconds,
                                  e.legacy_signature))
    raise_problems(path, problems)
    w = spec.worker
    return WebhookConfig(tuple(endpoints), w.poll_seconds, w.lease_seconds, w.batch_size, path)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform(0, `core.backoff.exponential_backoff`) seconds before the next try."""
    return rng.uniform(0.0, exponential_backoff(attempt, base, cap))


def _as_sent(row: Mapping[str, Any], key: bytes) -> Mapping[str, Any]:
    """The event as it is sent: only `campaign.decided` names a campaign as its target; in any other
    (an appeal's outcome or a lead's correction of one member of a campaign decision, also one
    stored before appeals were written so, pending or re-driven by `retry` / `replay`) each decision
    names its own item, the campaign as `origin_campaign_id` (`core.event_scope.item_scoped`): a
    receiver read one member's reversal as the whole campaign's. Deterministic, so every
    redelivery sends the same bytes; the stored event is left as it is. Each decision's reviewer
    goes out as its pseudonym under `key` (`core.reviewer_pseudonym`): an event stored before the
    outbox wrote pseudonyms, retried or replayed, must not send an analyst's name."""
    row = {**row, "payload": pseudonymous_payload(key, row["payload"])} if isinstance(row.get("payload"), Mapping) else row
    if row.get("event_type") == "campaign.decided" or not isinstance(row.get("payload"), Mapping):
        return row
    return {**row, "payload": item_scoped(row["payload"])}


Sender = Callable[[str, bytes, Mapping[str, str], float], tuple[Optional[int], Optional[str]]]


class DeliveryWorker:
    """Fans out and delivers outbox events to the configured endpoints (see the module doc)."""

    def __init__(self, store: "Store", config: WebhookConfig, name: Optional[str] = None,
                 send: Sender = http_post, rng: Optional[random.Random] = None,
                 lease_seconds: Optional[float] = None, batch_size: Optional[int] = None,
                 max_parallel: int = MAX_PARALLEL) -> None:
        self.store = store
        self.config = config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.send = send
        self.rng = rng or random.Random()
        self.lease_seconds = config.lease_seconds if lease_seconds is None else lease_seconds
        self.batch_size = batch_size or config.batch_size
        if not 0 < self.lease_seconds <= MAX_LEASE_SECONDS:  # also NaN
            raise ConfigError(f"lease must be more than 0 and at most {MAX_LEASE_SECONDS} s, "
                              f"got {self.lease_seconds:g}")
        if max_parallel < 1:
            raise ConfigError(f"max_parallel must be at least 1, got {max_parallel}")
        self.max_parallel = max_parallel
        slowest = max((e.timeout_seconds for e in config.endpoints), default=0.0)
        if self.lease_seconds < slowest + 1:
            raise ConfigError(f"lease of {self.lease_seconds:g} s is shorter than an endpoint's timeout "
                              f"({slowest:g} s) plus a second: two workers could send the same delivery")
        self._lock = threading.Lock()  # guards rng and the circuit state, shared by the senders
        self._busy: dict[str, Future[dict[str, int]]] = {}  # endpoint -> its sender still running
        self._started: dict[str, float] = {}  # endpoint -> when its last sender started (fair turns)
        self._failures: dict[str, int] = {}  # endpoint -> sends in a row it did not answer
        self._open_until: dict[str, float] = {}  # endpoint -> monotonic time its circuit closes

    # -- one delivery ------------------------------------------------------------------------
    def _deliver(self, row: Mapping[str, Any], started: Any) -> str:
        from core.outbox import event_body, finish
        from core.schema import utcnow
        from core.webhook_signature import signature_headers

        ep = self.config.endpoint(row["endpoint"])
        answered: Optional[bool] = None  # a sender that raised says nothing about the receiver
        try:  # signing refuses a key no header can carry: that delivery's failed attempt, like a send
            body = event_body(_as_sent(row, self.store.audit_key.get()))  # (so is a body that cannot be built: not a sender crashed mid-batch)
            headers = {"Content-Type": "application/json", "User-Agent": "ts-workbench-webhooks/1",
                       **signature_headers(ep.secret, body, row["idempotency_key"], legacy=ep.legacy_signature),
                       "Workbench-Event": row["event_type"],
                       "Workbench-Event-Id": row["event_id"], "Workbench-Delivery": str(row["id"]),
                       "Workbench-Attempt": str(row["attempts"])}
            code, error = self.send(ep.url, body, headers, ep.timeout_seconds)
            answered = code is not None  # None: a timeout or a connection failure
        except Exception as exc:  # noqa: BLE001 - one endpoint's failure is that delivery's attempt, never
            # the worker's: an uncaught error would leave the batch leased and stall every endpoint.
            code, error = None, f"{type(exc).__name__}: {exc}"
        if error is not None:  # stored, listed and logged: never the URL's token (any sender's error)
            error = redact(error, ep.url)
        ok = error is None and code is not None and 200 <= code < 300
        now = utcnow()
        retry_at = None
        if not ok and row["attempts"] < ep.max_attempts:
            import datetime as dt

            with self._lock:
                delay = backoff_delay(row["attempts"], ep.backoff_base_seconds, ep.backoff_cap_seconds, self.rng)
            retry_at = now + dt.timedelta(seconds=delay)
        with self.store.begin() as conn:
            status = finish(conn, row["id"], self.name, row["attempts"], started, ok=ok, status_code=code,
                            error=None if ok else (error or f"HTTP {code}"), retry_at=retry_at, now=now)
        if answered is not None:
            self._note_answer(ep, answered, error)
        return status

    def _note_answer(self, ep: Endpoint, answered: bool, error: Optional[str]) -> None:
        """Circuit breaker: a send the receiver did not answer rests the endpoint for its back-off
        (growing with each such send in a row), so a hanging receiver costs one timeout per rest,
        not one per delivery; any answer closes the circuit."""
        with self._lock:
            if answered:
                self._failures.pop(ep.name, None)
                self._open_until.pop(ep.name, None)
                return
            n = self._failures[ep.name] = self._failures.get(ep.name, 0) + 1
            rest = backoff_delay(n, ep.backoff_base_seconds, ep.backoff_cap_seconds, self.rng)
            self._open_until[ep.name] = time.monotonic() + rest
        log.warning("webhook endpoint %s did not answer (%s); resting it %.1f s", ep.name, error, rest)

    def _circuit_open(self, name: str) -> bool:
        with self._lock:
            return time.monotonic() < self._open_until.get(name, 0.0)

    # -- passes --------------------------------------------------------------------------------
    def fan_out(self) -> int:
        from core.outbox import fan_out

        subs = self.config.subscriptions()
        total = 0
        while True:
            with self.store.begin() as conn:
                n = fan_out(conn, subs, limit=500)
            total += n
            if n < 500:
                return total

    def _drain(self, ep: Endpoint, deadline: Optional[float], stop: threading.Event) -> dict[str, int]:
        """One endpoint's sender: claim its due deliveries (`batch_size` at a time, in the claim's
        order) and send them one by one until none is due, the deadline, `stop`, or its circuit opens."""
        from core.outbox import claim, release
        from core.schema import utcnow

        stats = {"delivered": 0, "retrying": 0, "dead": 0, "released": 0}
        while not stop.is_set() and not self._circuit_open(ep.name) and \
                (deadline is None or time.monotonic() < deadline):
            claimed_at = time.monotonic()
            with self.store.begin() as conn:
                rows = claim(conn, [ep.name], self.name, self.lease_seconds, self.batch_size, now=utcnow())
            if not rows:
                break
            for i, row in enumerate(rows):
                # Never start a send that could outlive the lease (half a second spare); hand the
                # rest back, as on the deadline, on `stop` and when the endpoint stopped answering.
                # The first row of a claim is always sent, so a pass makes progress.
                late = time.monotonic() - claimed_at + ep.timeout_seconds > self.lease_seconds - 0.5
                if i > 0 and (late or stop.is_set() or self._circuit_open(ep.name)
                              or (deadline is not None and time.monotonic() >= deadline)):
                    with self.store.begin() as conn:
                        stats["released"] += release(conn, [r["id"] for r in rows[i:]], self.name)
                    break
                status = self._deliver(row, utcnow())
                stats["delivered" if status == "delivered" else "retrying" if status == "pending" else "dead"] += 1
        return stats

    def _start(self, ep: Endpoint, deadline: Optional[float], stop: threading.Event) -> None:
        future: Future[dict[str, int]] = Future()

        def job() -> None:
            try:
                future.set_result(self._drain(ep, deadline, stop))
            except BaseException as exc:  # noqa: BLE001 - handed to the pass that collects it
                future.set_exception(exc)

        self._busy[ep.name] = future
        self._started[ep.name] = time.monotonic()
        # Daemon threads: a receiver that hangs never holds up the process's exit.
        threading.Thread(target=job, name=f"webhook-{ep.name}", daemon=True).start()

    def _collect(self, stats: dict[str, int], timeout: Optional[float]) -> None:
        """Wait up to `timeout` (None: until all are done) for the running senders; add the counts
        of those done to `stats` (a sender's error is raised here, once)."""
        if self._busy:
            futures.wait(list(self._busy.values()), timeout=timeout)
        for name, future in list(self._busy.items()):
            if future.done():
                del self._busy[name]
                for k, v in future.result().items():
                    stats[k] += v

    def run_pass(self, deadline: Optional[float] = None, stop: Optional[threading.Event] = None,
                 wait: Optional[float] = None) -> dict[str, int]:
        """Fan out new events, then deliver everything due now (until `deadline`, a monotonic time).

        Each endpoint has its own sender (at most `max_parallel` at once), so a receiver that hangs
        holds back only its own deliveries. The pass waits for its senders, or at most `wait`
        seconds: a sender still running goes on, its endpoint skipped and its counts added by a
        later pass."""
        stop = stop or threading.Event()
        stats = {"fanned_out": self.fan_out(), "delivered": 0, "retrying": 0, "dead": 0, "released": 0}
        self._collect(stats, 0)
        ready = [e for e in self.config.enabled if e.name not in self._busy and not self._circuit_open(e.name)]
        for ep in sorted(ready, key=lambda e: self._started.get(e.name, 0.0)):  # longest idle first
            if len(self._busy) >= self.max_parallel:
                break
            self._start(ep, deadline, stop)
        self._collect(stats, wait)
        return stats

    def run(self, stop: Optional[threading.Event] = None, once: bool = False,
            max_seconds: Optional[float] = None) -> dict[str, int]:
        """Deliver until `stop` is set, after one pass (`once`), or after `max_seconds`."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        totals: dict[str, int] = {}
        try:
            while not stop.is_set():
                wait = None if once else self.config.poll_seconds
                if wait is not None and deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                stats = self.run_pass(deadline, stop, wait)
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0) + v
                if once or (deadline is not None and time.monotonic() >= deadline):
                    break
                busy = stats["fanned_out"] or stats["delivered"] or stats["retrying"] or stats["dead"]
                if not busy and not self._busy:  # a running sender already made the pass wait
                    stop.wait(wait or 0.0)
        finally:
            rest = {k: 0 for k in ("delivered", "retrying", "dead", "released")}
            self._collect(rest, None)  # senders stop at the deadline or `stop` (after one send at most)
            for k, v in rest.items():
                totals[k] = totals.get(k, 0) + v
        return totals


def start_webhook_worker(app: Any) -> Optional[threading.Event]:
    """Run a `DeliveryWorker` in a daemon thread (for `workbench serve`; `app` is the
    application context) when an endpoint is enabled; set the returned event to stop it. Errors are
    logged and the loop goes on. The thread is tracked by the context (`AppContext.track`): closing
    it stops the worker (after the send in flight) before the store is released."""
    config = app.webhooks()
    if not config.enabled:
        return None
    worker = DeliveryWorker(app.store(), config)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                worker.run(stop)
            except Exception as exc:  # noqa: BLE001 - keep serving; the next pass retries
                log.warning("webhook delivery failed: %s", exc)
                stop.wait(config.poll_seconds)

    thread = threading.Thread(target=loop, name="webhook-worker", daemon=True)
    thread.start()
    track = getattr(app, "track", None)  # an AppContext; a test's stand-in may have none
    if track is not None:
        track(thread, stop)
    return stop
