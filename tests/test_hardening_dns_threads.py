"""`core.http_post`: how many threads a name server that never answers may hold, and the host's form.

1. Each POST looked its host up in a thread of its own and, past its deadline, left that thread
   blocked in `getaddrinfo` (nothing interrupts it): one more idle thread per delivery attempt, so a
   name server that never answers grew the worker's thread count without bound (200 attempts: 200
   stuck threads). Lookups now run on one shared pool of RESOLVER_SLOTS daemon threads; once every
   slot is held by a lookup its POST gave up on, a POST fails at once with a one-line error (the
   outbox's back-off retries it) rather than starting a thread; a lookup given up on while still
   queued never runs; an IP address in the URL needs no slot.
2. A non-ASCII host name was sent in the Host header as Latin-1 bytes (`bücher.test`) while the
   lookup, SNI and certificate check used its IDNA form, or failed each attempt with
   "UnicodeEncodeError: ordinal not in range(256)": it is now refused in one line, like a
   non-ASCII path.
Local servers only, never the network; a blocking resolver is a monkeypatched `socket.getaddrinfo`.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

import core.http_post as hp
from core.http_post import http_post
from webhook_support import Receiver

GUARD = 15.0  # seconds: only ever reached when the behaviour under test is broken
ATTEMPTS = 40


class Names:
    """`socket.getaddrinfo` where `hangs.test` and `slow.test` wait for `gate` and other `*.test`
    names are 127.0.0.1; counts the calls by name and those still waiting."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.gate = threading.Event()
        self.cond = threading.Condition()
        self.calls: dict[str, int] = {}
        self.waiting = 0

    def __call__(self, host, port, *args, **kwargs):
        with self.cond:
            self.calls[host] = self.calls.get(host, 0) + 1
        if host in ("hangs.test", "slow.test"):
            with self.cond:
                self.waiting += 1
                self.cond.notify_all()
            self.gate.wait(GUARD * 4)
            with self.cond:
                self.waiting -= 1
                self.cond.notify_all()
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return self.real(host, port, *args, **kwargs)

    def wait_for(self, predicate) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, GUARD)


@pytest.fixture
def names(monkeypatch):
    fake = Names()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.gate.set()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _resolver_threads() -> int:
    return sum(t.name == "http-post-resolve" and t.is_alive() for t in threading.enumerate())


def _until(predicate) -> bool:
    """True once `predicate()` is (polled; GUARD only bounds a broken implementation)."""
    end, pause = time.monotonic() + GUARD, threading.Event()
    while not predicate():
        if time.monotonic() > end:
            return False
        pause.wait(0.01)
    return True


def test_a_name_server_that_never_answers_holds_a_fixed_number_of_threads(names, receiver):
    before = _resolver_threads()
    got = [http_post("http://hangs.test/hooks", b"{}", {}, 0.05) for _ in range(ATTEMPTS)]
    grown, stuck = _resolver_threads() - before, names.waiting
    assert stuck < ATTEMPTS // 2, f"{stuck} threads stuck in the lookup after {ATTEMPTS} attempts"
    assert grown <= hp.RESOLVER_SLOTS and stuck <= hp.RESOLVER_SLOTS
    assert names.calls["hangs.test"] == stuck  # the attempts past the slots never looked it up

    timeout = (None, "TimeoutError: no complete answer within 0.05 s")
    busy = [error for code, error in got if (code, error) != timeout]
    assert len(busy) >= ATTEMPTS - hp.RESOLVER_SLOTS and got[-1][1] == busy[-1]
    assert busy[-1] == (f"URLError: hangs.test not looked up: all {hp.RESOLVER_SLOTS} DNS lookup threads still "
                        "wait for a name server that has not answered (hangs.test); the POST is retried later")
    assert all(code is None for code, _ in got)

    # Another name fails at once too, starting no thread; an IP address needs no lookup at all.
    code, error = http_post(f"http://receiver.test:{receiver.port}/hooks", b"{}", {}, GUARD)
    assert code is None and error.startswith("URLError: receiver.test not looked up: all ")
    assert "receiver.test" not in names.calls and _resolver_threads() - before == grown
    assert http_post(receiver.url, b"{}", {}, GUARD) == (200, None)

    names.gate.set()  # the name server answers at last: the slots come back
    assert names.wait_for(lambda: names.waiting == 0)
    assert _until(lambda: http_post(f"http://receiver.test:{receiver.port}/hooks", b"{}", {}, GUARD) == (200, None))
    assert receiver.received[-1]["headers"]["Host"] == f"receiver.test:{receiver.port}"
    assert _resolver_threads() - before == grown


def test_a_lookup_given_up_while_queued_never_runs(names, receiver, monkeypatch):
    """Both slots of a pool of two busy with lookups whose POSTs still wait: a third POST queues,
    gives up at its deadline, and its name is never looked up (it would take a slot for nothing)."""
    monkeypatch.setattr(hp, "_RESOLVER", hp._Resolver(2))  # the real pool, of a size the test knows
    got: list = []
    senders = [threading.Thread(target=lambda: got.append(http_post(f"http://slow.test:{receiver.port}/hooks",
                                                                      b"{}", {}, GUARD)), daemon=True)
               for _ in range(2)]
    for sender in senders:
        sender.start()
    assert names.wait_for(lambda: names.waiting == 2)
    assert http_post("http://queued.test/hooks", b"{}", {}, 0.05) == (None, "TimeoutError: no complete answer within 0.05 s")
    names.gate.set()
    for sender in senders:
        sender.join(GUARD)
        assert not sender.is_alive()
    assert got == [(200, None), (200, None)]
    # The pool's two threads are free again; a new lookup runs after any the queue still held.
    assert http_post(f"http://after.test:{receiver.port}/hooks", b"{}", {}, GUARD) == (200, None)
    assert "queued.test" not in names.calls


@pytest.mark.parametrize("host", ["bücher.test", "例え.test"])
def test_a_non_ascii_host_is_refused_in_one_line(names, receiver, host):
    code, error = http_post(f"http://{host}:{receiver.port}/hooks", b"{}", {}, GUARD)
    assert (code, error) == (None, "ValueError: the URL's host holds non-ASCII characters: give its ASCII (xn--) form")
    assert receiver.received == []
