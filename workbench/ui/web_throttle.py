"""The web guard's per-client sign-in throttle (`login.max_failures_per_client` per
`window_seconds`, `configs/web.yaml`), out of `web_guard` so that module stays small.

A client is its address, except that an IPv6 client is its /64: one subscriber or host holds a
whole /64 (2**64 addresses), so counted per address every new address brought a fresh allowance
of failed sign-ins and the limit limited nothing. An IPv4-mapped IPv6 address is its IPv4 address.
"""
from __future__ import annotations

import collections
import ipaddress
import threading
import time
from typing import Optional


def client_key(client: str) -> str:
    """The key failed sign-ins of `client` (an address, or a placeholder such as "unknown") count under."""
    try:
        ip = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Throttle:
    """Failed sign-ins per client (`client_key`) within a sliding window (in this process).

    An attempt takes its slot before the password is checked (`reserve`), so requests sent
    together cannot all pass the check before any failure is counted; a success gives it back."""

    def __init__(self) -> None:
        self._fails: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def reserve(self, client: str, limit: int, window: float, keep: float = 3600.0) -> tuple[float, Optional[float]]:
        """(seconds to wait, None) when failures and attempts in flight reach `limit`; else (0, a
        slot), counted as a failure until `release(client, slot)`."""
        now = time.monotonic()
        key = client_key(client)
        with self._lock:
            if len(self._fails) > 10_000:  # many clients: forget those quiet for `keep` seconds
                for k in [k for k, q in self._fails.items() if not q or q[-1] < now - keep]:
                    del self._fails[k]
            q = self._fails[key]
            while q and q[0] <= now - window:
                q.popleft()
            if len(q) >= limit:
                return max(q[0] + window - now, 0.0), None
            q.append(now)
            return 0.0, now

    def release(self, client: str, slot: float) -> None:
        """The attempt succeeded: it is not a failure."""
        with self._lock:
            q = self._fails.get(client_key(client))
            if q is not None and slot in q:
                q.remove(slot)
