"""The web guard's per-client sign-in throttle (`login.max_failures_per_client` per
`window_seconds`, `configs/web.yaml`), out of `web_guard` so that module stays small.

A client is its address, except that an IPv6 client is its /64: one subscriber or host holds a
whole /64 (2**64 addresses), so counted per address every new address brought a fresh allowance
of failed sign-ins and the limit limited nothing. An IPv4-mapped IPv6 address is its IPv4 address.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Optional

from core.web_sessions import client_key  # one definition, shared with the per-account limits

__all__ = ["MAX_CLIENTS", "Throttle", "client_key"]


MAX_CLIENTS = 10_000  # clients remembered at once (a few hundred bytes each)


class Throttle:
    """Failed sign-ins per client (`client_key`) within a sliding window (in this process).

    An attempt takes its slot before the password is checked (`reserve`), so requests sent
    together cannot all pass the check before any failure is counted; a success gives it back.

    Clients are kept least recently active first, so forgetting costs O(1) per attempt: those quiet
    for `keep` seconds, and beyond `max_clients` the least recent. Before, past 10,000 clients every
    attempt scanned them all under the lock and none active within the hour was forgotten: a host
    holding many addresses (an IPv6 /48 is 65,536 /64s) grew the table without bound and slowed
    every sign-in. Forgetting a client beyond the cap forgets its failures; the per-(account, client)
    and per-account limits (`core.accounts.verify_password`) still hold."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self._fails: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_clients = max(1, max_clients)

    def reserve(self, client: str, limit: int, window: float, keep: float = 3600.0) -> tuple[float, Optional[float]]:
        """(seconds to wait, None) when failures and attempts in flight reach `limit`; else (0, a
        slot), counted as a failure until `release(client, slot)`."""
        now = time.monotonic()
        key = client_key(client)
        with self._lock:
            q = self._fails.get(key)
            if q is None:
                q = self._fails[key] = collections.deque()
            else:
                self._fails.move_to_end(key)
            while q and q[0] <= now - window:
                q.popleft()
            if len(q) >= limit:
                return max(q[0] + window - now, 0.0), None
            q.append(now)
            while len(self._fails) > self.max_clients or self._quiet(next(iter(self._fails.values())), now - keep):
                self._fails.popitem(last=False)  # never this client's: it is the most recent
            return 0.0, now

    @staticmethod
    def _quiet(q: collections.deque[float], since: float) -> bool:
        return not q or q[-1] < since

    def release(self, client: str, slot: float) -> None:
        """The attempt succeeded: it is not a failure."""
        with self._lock:
            q = self._fails.get(client_key(client))
            if q is not None and slot in q:
                q.remove(slot)
