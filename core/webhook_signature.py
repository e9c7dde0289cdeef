"""Signing and verifying webhook bodies (pure functions, standard library only).

Every POST the delivery worker makes carries two signature headers, signed at the same time:

    Workbench-Signature-V2: t=1767225600,v2=9c41...07
    Workbench-Signature: t=1767225600,v1=5f2b...e1        (legacy, while receivers move to v2)

`t` is the Unix time of signing. `v2` is the hex HMAC-SHA256, keyed with the endpoint's secret,
of `f"{t}.{idempotency_key}\n".encode() + body`: the timestamp, the `Idempotency-Key` header and
the raw body (not re-serialised JSON), so none of the three can be changed alone. The key is
ended by a line feed, which no HTTP header value can hold, so the bytes name one (key, body)
split only. `v1` signs `f"{t}.".encode() + body` only: a replayed capture with a fresh
`Idempotency-Key` header still verifies under v1, so a v1 receiver must deduplicate on the
signed body's `idempotency_key`, never on the header.

A receiver checks v2 with `verify(secret, headers["Workbench-Signature-V2"],
headers["Idempotency-Key"], body, tolerance=300)`: the timestamp within `tolerance` seconds of its
clock, one `v2` value matching in constant time, and the body's `idempotency_key` equal to the
header's. Then it may drop duplicates by the header: delivery is at least once. Old receivers'
`verify_signature` (v1) keeps working unchanged.

This module imports nothing from the workbench, so a receiver can copy it as it is.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from typing import Optional, Union

SIGNATURE_HEADER = "Workbench-Signature"  # v1: timestamp and body (legacy)
SIGNATURE_V2_HEADER = "Workbench-Signature-V2"  # v2: timestamp, idempotency key and body
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
    return _parse(header or "", "v1")


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
    if tolerance is not None and not _within(current, ts, tolerance):
        return False
    expected = compute_signature(secret, ts, body).encode("ascii")
    # Compared as bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
    # receiver's framework may hand over a header decoded as Latin-1.
    return any(hmac.compare_digest(expected, s.encode("utf-8", "surrogatepass")) for s in sigs)


# -- v2: the timestamp, the idempotency key and the body ------------------------------------------
def _checked_key(key: str) -> bytes:
    """The key as signed; one that could not travel as a header value (or is empty) is refused:
    its line feed would make the signed bytes ambiguous."""
    if not isinstance(key, str) or not key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ValueError(f"idempotency key {key!r} must be a non-empty header value without control characters")
    return key.encode("utf-8")


def compute_signature_v2(secret: Secret, timestamp: int, key: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `b"<timestamp>.<key>\\n" + body` keyed with `secret`."""
    msg = str(int(timestamp)).encode("ascii") + b"." + _checked_key(key) + b"\n" + body
    return hmac.new(_key(secret), msg, hashlib.sha256).hexdigest()


def signature_headers(secret: Secret, body: bytes, key: str, timestamp: Optional[int] = None,
                      legacy: bool = True) -> dict[str, str]:
    """The signature and idempotency headers of one POST, signed now (or at `timestamp`): v2 always,
    the legacy v1 header too while `legacy` (receivers not on `verify` yet read only that one)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    headers = {SIGNATURE_V2_HEADER: f"t={ts},v2={compute_signature_v2(secret, ts, key, body)}",
               IDEMPOTENCY_HEADER: key}
    if legacy:
        headers[SIGNATURE_HEADER] = f"t={ts},v1={compute_signature(secret, ts, body)}"
    return headers


def _parse(header: str, scheme: str) -> tuple[Optional[int], list[str]]:
    ts: Optional[int] = None
    sigs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                ts = int(value)
            except ValueError:
                return None, []
        elif name == scheme and value:
            sigs.append(value.strip())
    return ts, sigs


def _within(now: float, ts: int, tolerance: float) -> bool:
    """Whether `ts` is within `tolerance` seconds of `now`. Asked as "within", never as "too far":
    every comparison with NaN is false, so a NaN `now` or tolerance (a receiver's clock or config
    gone wrong) would otherwise pass every timestamp and turn replay protection off."""
    try:
        return abs(now - ts) <= tolerance
    except OverflowError:  # a timestamp of hundreds of digits
        return False


def _body_key(body: bytes) -> Optional[str]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    key = doc.get("idempotency_key") if isinstance(doc, dict) else None
    return key if isinstance(key, str) else None


def verify(secret: Secret, header: str, idempotency_key: str, body: bytes, tolerance: float = DEFAULT_TOLERANCE,
           now: Optional[float] = None) -> bool:
    """True when `header` (the `Workbench-Signature-V2` value) signs exactly this timestamp,
    `idempotency_key` (the `Idempotency-Key` header as received) and `body` (the raw bytes) with
    `secret`, the timestamp is within `tolerance` seconds of `now`, and the body's own
    `idempotency_key` is the header's. So a receiver may deduplicate on the header: a replay
    with a fresh key, a re-stamped time or a changed body fails.

    False for any of those, a wrong or empty secret, or a malformed header; never falls back to
    v1 (an attacker would strip the v2 header). Several `v2=` entries are accepted (rotation).
    `tolerance` must be a finite number of seconds above 0: replay protection cannot be off.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or \
            not math.isfinite(tolerance) or tolerance <= 0:
        raise ValueError(f"tolerance must be a finite number of seconds above 0, got {tolerance!r}")
    if not isinstance(header, str) or not isinstance(body, (bytes, bytearray)) or not _key(secret):
        return False
    ts, sigs = _parse(header, "v2")
    if ts is None or not sigs:
        return False
    if not _within(time.time() if now is None else now, ts, tolerance):
        return False
    try:
        expected = compute_signature_v2(secret, ts, idempotency_key, bytes(body)).encode("ascii")
    except ValueError:  # no key, or one no header could carry
        return False
    if not any(hmac.compare_digest(expected, s.encode("utf-8", "surrogatepass")) for s in sigs):
        return False
    return _body_key(bytes(body)) == idempotency_key
