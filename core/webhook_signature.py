"""Signing and verifying webhook bodies (pure functions, standard library only).

Every POST the delivery worker makes carries a Stripe-style header

    Workbench-Signature: t=1767225600,v1=5f2b...e1

where `t` is the Unix time of signing and `v1` the hex HMAC-SHA256, keyed with the endpoint's
secret, of the bytes `f"{t}.".encode() + body` (the raw request body, not re-serialised JSON).
A receiver checks it with `verify_signature(secret, header, body)`: the timestamp must be within
`tolerance` seconds of its clock (a replayed capture is refused) and one of the `v1` values must
match in constant time. The receiver drops duplicates by the `Idempotency-Key` header (also in
the body as `idempotency_key`): delivery is at least once.

This module imports nothing from the workbench, so a receiver can copy it as it is.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional, Union

SIGNATURE_HEADER = "Workbench-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE = 300

Secret = Union[str, bytes]


def _key(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def compute_signature(secret: Secret, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `b"<timestamp>." + body` keyed with `secret`."""
    return hmac.new(_key(secret), str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: Secret, body: bytes, timestamp: Optional[int] = None) -> str:
    """The `Workbench-Signature` header value for `body`, signed now (or at `timestamp`)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={compute_signature(secret, ts, body)}"


def parse_signature_header(header: str) -> tuple[Optional[int], list[str]]:
    """(timestamp, [v1 signatures]) from a header value; (None, []) parts where malformed."""
    ts: Optional[int] = None
    sigs: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                ts = int(value)
            except ValueError:
                return None, []
        elif key == "v1" and value:
            sigs.append(value.strip())
    return ts, sigs


def verify_signature(secret: Secret, header: str, body: bytes, tolerance: int = DEFAULT_TOLERANCE,
                     now: Optional[float] = None) -> bool:
    """True when `header` (the `Workbench-Signature` value) signs exactly `body` with `secret`
    and its timestamp is within `tolerance` seconds of `now` (default: the current time).

    False for a changed body, a wrong secret, a stale or future timestamp, or a malformed
    header, and always for an empty `secret` (a receiver whose secret variable is unset would
    otherwise accept anyone's header signed with the empty key). `body` must be the raw bytes
    received. Several `v1=` entries are accepted (any one matching is enough), so a sender can
    sign with an old and a new secret while rotating.
    """
    if not isinstance(header, str) or not _key(secret):
        return False
    ts, sigs = parse_signature_header(header)
    if ts is None or not sigs:
        return False
    current = time.time() if now is None else now
    try:
        if tolerance is not None and abs(current - ts) > tolerance:
            return False
    except OverflowError:  # a timestamp of hundreds of digits
        return False
    expected = compute_signature(secret, ts, body).encode("ascii")
    # Compared as bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
    # receiver's framework may hand over a header decoded as Latin-1.
    return any(hmac.compare_digest(expected, s.encode("utf-8", "surrogatepass")) for s in sigs)
