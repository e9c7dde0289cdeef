"""Tamper-evident audit log: an append-only hash chain of who did what when.

Each event's hash is SHA-256 over the previous event's hash and the event's own canonical JSON,
so editing any stored field, deleting an event, or re-ordering events breaks every hash after
it. `verify` walks the chain; `head` gives the newest hash, which an operator can keep outside
the database (e.g. in a ticket) to also detect truncation of the newest events.

`record` must run inside the caller's write transaction, so the event commits or rolls back
with the change it describes. On PostgreSQL it takes a transaction-scoped advisory lock; on
SQLite the write transaction is already `BEGIN IMMEDIATE`, so the chain never forks.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import Connection, insert, select, text

from .schema import AuditEvent, utcnow

GENESIS = "0" * 64
_LOCK_KEY = 0x7773_6175  # advisory lock id for the chain on PostgreSQL
_T = AuditEvent.__table__


def _canonical(ts: dt.datetime, actor: str, action: str, entity_type: Optional[str],
               entity_id: Optional[str], payload: Any) -> str:
    return json.dumps(
        {"ts": ts.isoformat(timespec="microseconds"), "actor": actor, "action": action,
         "entity_type": entity_type, "entity_id": entity_id, "payload": payload},
        sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False,
    )


def event_hash(prev_hash: str, ts: dt.datetime, actor: str, action: str,
               entity_type: Optional[str], entity_id: Optional[str], payload: Any) -> str:
    body = _canonical(ts, actor, action, entity_type, entity_id, payload)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def record(conn: Connection, actor: str, action: str, entity_type: Optional[str] = None,
           entity_id: Optional[str | int] = None, payload: Optional[dict[str, Any]] = None) -> str:
    """Append one event in the caller's transaction; returns its hash."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    prev = conn.execute(select(_T.c.hash).order_by(_T.c.id.desc()).limit(1)).scalar() or GENESIS
    ts = utcnow()
    eid = None if entity_id is None else str(entity_id)
    # Round-trip the payload through JSON so the hash covers exactly what the database stores.
    payload = json.loads(json.dumps(payload, default=str)) if payload is not None else None
    digest = event_hash(prev, ts, actor, action, entity_type, eid, payload)
    conn.execute(insert(_T).values(ts=ts, actor=actor, action=action, entity_type=entity_type,
                                   entity_id=eid, payload=payload, prev_hash=prev, hash=digest))
    return digest


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head: str
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "head": self.head, "problems": self.problems}


def verify(conn: Connection, expect_head: Optional[str] = None, max_problems: int = 20) -> VerifyResult:
    """Recompute the chain from the first event; report the first breaks (edits, deletions)."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    expected_id: Optional[int] = None
    rows = conn.execute(select(_T).order_by(_T.c.id)).mappings()
    for row in rows:
        count += 1
        if expected_id is not None and row["id"] != expected_id:
            problems.append(f"event ids jump from {expected_id - 1} to {row['id']}: events deleted")
        expected_id = row["id"] + 1
        if row["prev_hash"] != prev:
            problems.append(f"event {row['id']}: prev_hash does not match the event before it "
                            "(an event was deleted or re-ordered)")
        digest = event_hash(row["prev_hash"], row["ts"], row["actor"], row["action"],
                            row["entity_type"], row["entity_id"], row["payload"])
        if digest != row["hash"]:
            problems.append(f"event {row['id']}: contents do not match its hash (edited: "
                            f"{row['action']} by {row['actor']})")
        prev = row["hash"]
        if len(problems) >= max_problems:
            break
    if expect_head and prev != expect_head and len(problems) < max_problems:
        problems.append(f"head is {prev[:16]}…, expected {expect_head[:16]}…: newest events missing")
    return VerifyResult(ok=not problems, events=count, head=prev, problems=problems)
