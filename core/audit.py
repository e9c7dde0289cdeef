"""Tamper-evident audit log: an append-only, keyed hash chain of who did what when.

Each event's hash is HMAC-SHA256, under a key kept outside the database, over the previous
event's hash and the event's own canonical JSON: editing any stored field, deleting an event or
re-ordering events breaks every hash after it, and someone with database access but without the
key cannot recompute the chain. The key is an `AuditKey` (bytes given by the application, or a
file with 0600 rights in the data directory, created on first use); the store puts it on every
connection it opens (`KEY_INFO`), so `record(conn, ...)` needs no extra argument.

Chains written before the key existed (plain SHA-256, chain version 0) stay valid: the first
keyed event after them is a seal (`audit.chain.keyed`) that names how many unkeyed events come
before it, their last hash, and a digest of every decision row that existed then. Unkeyed
events are accepted only before the seal; after it, every event must verify with the key.
Only `core.store.Store.migrate` writes the seal, and only over a chain with no keyed event at all
(the one-time upgrade of a pre-key store). `record` never seals: it refuses to chain onto a head
not signed with this key, so a chain recomputed without the key (or under another key) stays
reported instead of being sealed by the next ordinary write. A missing key file is created only
while the chain holds no keyed event; otherwise the key that signed them is elsewhere.

Decisions are bound to their events: `bind(conn, ids)` gives each decision row's content hash,
which the decision.create / decision.correct / decision.undo / appeal.resolve payloads carry
under "bound". `verify` checks both directions: every decision has an event whose hash matches,
and every bound decision still exists unchanged.

Checkpoints ({head, count, time}, `head`) are kept outside the database (a 0600 JSON-lines file,
optionally posted to a webhook); `verify(checkpoints=...)` checks that the event at position
`count` still has hash `head`, which finds truncation, deletion, re-ordering and recomputation
and never alarms on events appended since.

Secret values (`SECRET_KEYS`) never enter a payload: `record` refuses them. Older versions wrote
some (`user.set_password`'s `was.password_hash`): `redact` removes them, no hash changed, after a
keyed `audit.redact` event records the event, fields, a keyed digest of each value and the hash of
the redacted contents (migration 0011 allows no other UPDATE); `verify` accepts only those.

`record` must run inside the caller's write transaction, so the event commits or rolls back
with the change it describes. On PostgreSQL it takes a transaction-scoped advisory lock; on
SQLite the write transaction is already `BEGIN IMMEDIATE`, so the chain never forks. Event ids
need not be contiguous (PostgreSQL's sequence skips the ids of rolled-back inserts): order comes
from the ids, integrity from `prev_hash`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from sqlalchemy import Connection, Text, cast, func, insert, or_, select, text, update

from . import audit_vacuum, audit_values
from .principals import Actor, actor_name
from .schema import AuditEvent, Decision, utcnow

GENESIS = "0" * 64
ALGORITHM = "hmac-sha256"
KEY_FILE = "audit.key"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
KEY_INFO = "wb_audit_key"  # where the store puts the AuditKey in each connection's `info`
SEAL_ACTION = "audit.chain.keyed"
REDACT_ACTION = "audit.redact"
REDACTED = "[redacted]"
SECRET_KEYS = frozenset({"password", "password_hash", "token", "token_hash", "session_hash", "secret", "api_key",
                         "secret_key", "private_key", "client_secret", "access_token", "refresh_token"})
BINDING_ACTIONS = ("decision.create", "decision.correct", "decision.undo", "appeal.resolve")
_LOCK_KEY = 0x7773_6175  # advisory lock id for the chain on PostgreSQL
_T = AuditEvent.__table__
_D = Decision.__table__
_MIN_KEY_BYTES = 16
_Claims = dict[int, tuple[int, Mapping[str, Any]]]  # event id -> (its newest redaction's id, that payload)


class AuditError(RuntimeError):
    """The audit key or a checkpoint file cannot be used (one-line message)."""


# -- the key ----------------------------------------------------------------------------------
class AuditKey:
    """The chain key: given by the application, or read from (created in) a 0600 key file."""

    def __init__(self, key: bytes | str | None = None, path: str | os.PathLike[str] | None = None) -> None:
        if key is None and path is None:
            raise AuditError("an audit key needs either the key or a key file")
        self.path = Path(path) if path is not None else None
        self._key = _check_key(key.encode("utf-8") if isinstance(key, str) else key, "the given audit key") \
            if key is not None else None
        self.last_keyed_head: Optional[str] = None  # a head this process knows is keyed

    def get(self, conn: Optional[Connection] = None) -> bytes:
        """The key bytes. A missing key file is created, unless `conn`'s chain already holds keyed
        events: the key that signed them lives elsewhere, and a new one would fork the chain."""
        if self._key is None:
            assert self.path is not None
            if conn is not None and not self.path.exists() and _holds_keyed_events(conn):
                raise AuditError(f"no audit key file at {self.path}, but the audit chain already holds events "
                                 "signed with a key: put that key there (mode 0600), or point --audit-key-file "
                                 "(WORKBENCH_AUDIT_KEY_FILE) at it")
            self._key = _load_or_create(self.path)
        return self._key

    @property
    def key_id(self) -> str:
        """A short, non-secret fingerprint of the key (to tell keys apart in reports)."""
        return hmac.new(self.get(), b"workbench audit key id", hashlib.sha256).hexdigest()[:12]


def _check_key(key: bytes, where: str) -> bytes:
    if len(key) < _MIN_KEY_BYTES:
        raise AuditError(f"{where} is too short ({len(key)} bytes; at least {_MIN_KEY_BYTES})")
    return key


def _load_or_create(path: Path) -> bytes:
    """Read the key file (refusing one others can read), or create it with 0600 rights."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic, and never replaces a key another process just made
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        mode = path.stat().st_mode
        raw = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read the audit key file {path}: {exc}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditError(f"the audit key file {path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                         f"chmod 600 {path}")
    try:
        key = bytes.fromhex(raw)
    except ValueError:  # one bad digit would silently be another key: text, "none is keyed with it"
        raise AuditError(f"the audit key file {path} does not hold a key in hex (as written on creation; "
                         "a text secret: write its bytes in hex, the same key)") from None
    return _check_key(key, f"the audit key in {path}")


def connection_key(conn: Connection) -> AuditKey:
    key = conn.info.get(KEY_INFO)
    if key is None:
        raise AuditError("this connection carries no audit key: open it through core.store.Store")
    return key


# -- hashing ----------------------------------------------------------------------------------
def _canonical(ts: dt.datetime, actor: str, action: str, entity_type: Optional[str],
               entity_id: Optional[str], payload: Any) -> str:
    return json.dumps(
        {"ts": ts.isoformat(timespec="microseconds"), "actor": actor, "action": action,
         "entity_type": entity_type, "entity_id": entity_id, "payload": payload},
        sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False,
    )


def event_hash(prev_hash: str, ts: dt.datetime, actor: str, action: str,
               entity_type: Optional[str], entity_id: Optional[str], payload: Any) -> str:
    """The chain-version-0 hash (plain SHA-256): how events before the seal were hashed."""
    body = _canonical(ts, actor, action, entity_type, entity_id, payload)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def keyed_hash(key: bytes, prev_hash: str, ts: dt.datetime, actor: str, action: str,
               entity_type: Optional[str], entity_id: Optional[str], payload: Any) -> str:
    body = _canonical(ts, actor, action, entity_type, entity_id, payload)
    return hmac.digest(key, (prev_hash + body).encode("utf-8"), "sha256").hex()


def _row_keyed_hash(key: bytes, row: Mapping[str, Any]) -> str:
    return keyed_hash(key, row["prev_hash"], row["ts"], row["actor"], row["action"], row["entity_type"],
                      row["entity_id"], row["payload"])


def _is_unkeyed(row: Mapping[str, Any]) -> bool:
    """The event's hash is the chain-version-0 (plain SHA-256) one: written before the key existed."""
    return event_hash(row["prev_hash"], row["ts"], row["actor"], row["action"], row["entity_type"],
                      row["entity_id"], row["payload"]) == row["hash"]


def _holds_keyed_events(conn: Connection) -> bool:
    """Whether any event is not plain SHA-256 (keyed, under any key, or edited); newest first, so a
    keyed chain answers at its first row and only a wholly unkeyed chain is read to the end."""
    rows = conn.execute(select(_T).order_by(_T.c.id.desc()).execution_options(yield_per=10000)).mappings()
    try:
        return any(not _is_unkeyed(row) for row in rows)
    finally:
        rows.close()


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    return value


def decision_digest(row: Mapping[str, Any]) -> str:
    """Canonical SHA-256 of a decision row: every column, by name."""
    body = json.dumps({c.name: _plain(row[c.name]) for c in _D.columns}, sort_keys=True,
                      separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def bind(conn: Connection, ids: Iterable[int]) -> dict[str, str]:
    """{decision id: content hash} of rows just written in this transaction (for the event payload)."""
    ids = sorted({int(i) for i in ids})
    out: dict[str, str] = {}
    for start in range(0, len(ids), 5000):
        for row in conn.execute(select(_D).where(_D.c.id.in_(ids[start:start + 5000]))).mappings():
            out[str(row["id"])] = decision_digest(row)
    return out


# -- writing ----------------------------------------------------------------------------------
def _head_row(conn: Connection) -> Optional[Mapping[str, Any]]:
    return conn.execute(select(_T).order_by(_T.c.id.desc()).limit(1)).mappings().first()


def _insert(conn: Connection, key: bytes, prev: str, actor: str, action: str, entity_type: Optional[str],
            entity_id: Optional[str | int], payload: Optional[dict[str, Any]]) -> str:
    ts = utcnow()  # the hash covers exactly what the database stores and gives back (`audit_values`)
    payload = audit_values.json_safe(payload) if payload is not None else None
    actor, action, entity_type, entity_id = audit_values.event_texts(_T, actor, action, entity_type, entity_id)
    digest = keyed_hash(key, prev, ts, actor, action, entity_type, entity_id, payload)
    conn.execute(insert(_T).values(ts=ts, actor=actor, action=action, entity_type=entity_type,
                                   entity_id=entity_id, payload=payload, prev_hash=prev, hash=digest))
    return digest


def _chain_head(conn: Connection, akey: AuditKey) -> str:
    """The hash to chain onto. Never seals: chaining a keyed event onto a head this key did not sign
    would vouch for whatever came before it (a chain recomputed without the key, or another key's)."""
    head = _head_row(conn)
    if head is None:
        return GENESIS
    if head["hash"] == akey.last_keyed_head or _row_keyed_hash(akey.get(conn), head) == head["hash"]:
        return head["hash"]
    raise AuditError(f"the audit chain's head (event {head['id']}) is not signed with this store's key: "
                     "run `workbench audit verify`")


def _write_seal(conn: Connection, akey: AuditKey, prev: str) -> str:
    legacy = int(conn.execute(select(func.count()).select_from(_T)).scalar_one())
    upto = conn.execute(select(func.max(_D.c.id))).scalar()
    agg = hashlib.sha256()
    if upto is not None:
        for row in conn.execute(select(_D).order_by(_D.c.id)).mappings():
            agg.update(f"{row['id']}:{decision_digest(row)}\n".encode())
    payload = {"algorithm": ALGORITHM, "legacy_events": legacy, "legacy_head": prev,
               "decisions_upto": upto, "decisions_sha256": agg.hexdigest(), "key_id": akey.key_id}
    return _insert(conn, akey.get(conn), prev, "system", SEAL_ACTION, "audit_chain", None, payload)


def record(conn: Connection, actor: "Actor", action: str, entity_type: Optional[str] = None,
           entity_id: Optional[str | int] = None, payload: Optional[dict[str, Any]] = None) -> str:
    """Append one keyed event in the caller's transaction; returns its hash. `actor` is a name or
    a `Principal` (its name is recorded). AuditError when the chain's head is not signed with this
    store's key (tampered, or another key): nothing is written onto it; or when the payload holds
    a secret value (`SECRET_KEYS`): the log is read by many and kept forever."""
    found = _secret_paths(payload)
    if found:
        raise AuditError(f"audit event {action}: payload field {'.'.join(map(str, found[0]))} holds a secret value; "
                         "record whether it is set (true/false), never the value")
    actor = actor_name(actor)
    akey = connection_key(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    prev = _chain_head(conn, akey)
    digest = _insert(conn, akey.get(conn), prev, actor, action, entity_type, entity_id, payload)
    akey.last_keyed_head = digest
    return digest


def seal(conn: Connection) -> Optional[str]:
    """The chain's upkeep after an upgrade (run by `Store.migrate` only, as the owner). Keys a chain
    written before the key existed: writes the seal when the chain has events and none of them is
    keyed; returns its hash, or None. A chain with any keyed event is never sealed again: unkeyed
    events after keyed ones are tampering, for verify. Then `redact`s (as "system") what older
    versions stored, unless the head is not signed with this key (`audit verify` says why)."""
    akey = connection_key(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    head = _head_row(conn)
    sealed = None
    if head is not None and _is_unkeyed(head) and not _holds_keyed_events(conn):
        sealed = _write_seal(conn, akey, head["hash"])
    try:
        redact(conn, "system")
    except AuditError:
        pass  # an unsigned head or an unusable key: refused at the next write, reported by verify
    return sealed


# -- secrets and their redaction ----------------------------------------------------------------
def _secret_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a payload holds a secret: a `SECRET_KEYS` key whose value is not None, a flag, a number
    or REDACTED ("password": true only says one is set)."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        flag = v is None or isinstance(v, (bool, int, float)) or v == REDACTED
        out += [path + (k,)] if isinstance(k, str) and k.lower() in SECRET_KEYS and not flag else \
            _secret_paths(v, path + (k,))
    return out


def _claims(conn: Connection, kb: bytes) -> _Claims:
    """The newest redaction of each event, among those whose keyed hash verifies (a forged one vouches
    for nothing)."""
    out: _Claims = {}
    for row in conn.execute(select(_T).where(_T.c.action == REDACT_ACTION).order_by(_T.c.id)).mappings():
        p = row["payload"]
        if isinstance(p, dict) and isinstance(p.get("event"), int) and _row_keyed_hash(kb, row) == row["hash"]:
            out[p["event"]] = (row["id"], p)
    return out


def _attested(claims: _Claims, row: Mapping[str, Any], current: str) -> Optional[str]:
    """"keyed" or "legacy" (how its hash was made) when the event's contents, keyed hash `current`,
    are exactly what its newest redaction, written after it, recorded; else None."""
    rid, p = claims.get(row["id"], (0, {}))
    ok = rid > row["id"] and p.get("hash") == row["hash"] and p.get("redacted_hash") == current
    return str(p["chain"]) if ok and p.get("chain") in ("keyed", "legacy") else None


def redact(conn: Connection, actor: "Actor", reason: str = "a secret value in an audit payload",
           dry_run: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Remove the secret values (`SECRET_KEYS`) older versions stored in payloads, verifiably. Per
    event, a keyed `audit.redact` event (its ts and actor: when, by whom) first records the event,
    the fields, a keyed digest of each value (proof, with the key, of what was removed), the
    event's hash and that of its redacted contents; then the values become REDACTED in that payload.
    An event whose contents do not verify is left as is ("refused"): redacting would vouch for the
    edit. Returns {"redacted", "refused"}: lists of {event, action, fields}; `dry_run` only lists.
    Needs UPDATE on audit_events (the owner role); AuditError when the head is not signed."""
    actor = actor_name(actor)
    akey = connection_key(conn)
    if conn.dialect.name == "postgresql" and not dry_run:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    body = func.lower(cast(_T.c.payload, Text))  # a cheap pre-filter: only these are parsed
    near = or_(*(body.like(f'%"{k}"%') for k in sorted(SECRET_KEYS)))
    rows = conn.execute(select(_T).where(near).order_by(_T.c.id)).mappings().all()
    out: dict[str, list[dict[str, Any]]] = {"redacted": [], "refused": []}
    claims: Optional[_Claims] = None
    for row in rows:
        paths = _secret_paths(row["payload"])
        if not paths or row["action"] == REDACT_ACTION:
            continue
        kb = akey.get(conn)
        claims = _claims(conn, kb) if claims is None else claims
        current = _row_keyed_hash(kb, row)
        kind = "keyed" if current == row["hash"] else "legacy" if _is_unkeyed(row) else \
            _attested(claims, row, current)
        entry = {"event": row["id"], "action": row["action"], "fields": [".".join(map(str, p)) for p in paths]}
        out["redacted" if kind else "refused"].append(entry)
        if kind is None or dry_run:
            continue
        payload = json.loads(json.dumps(row["payload"]))
        fields = []
        for path in paths:
            parent = payload
            for step in path[:-1]:
                parent = parent[step]
            value = json.dumps(parent[path[-1]], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            fields.append({"path": list(path), "hmac": hmac.digest(
                kb, b"workbench audit redaction\0" + value.encode("utf-8"), "sha256").hex()})
            parent[path[-1]] = REDACTED
        record(conn, actor, REDACT_ACTION, "audit_event", row["id"],
               {"event": row["id"], "action": row["action"], "fields": fields, "hash": row["hash"],
                "redacted_hash": _row_keyed_hash(kb, dict(row, payload=payload)), "chain": kind, "reason": reason})
        conn.execute(update(_T).where(_T.c.id == row["id"]).values(payload=payload))
        audit_vacuum.after_commit(conn)  # PostgreSQL keeps the old row version, secret included
    return out


# -- checkpoints ------------------------------------------------------------------------------
def head(conn: Connection) -> dict[str, Any]:
    """{head, count, time}: the newest hash and the number of events, read in one statement."""
    count_q = select(func.count()).select_from(_T).scalar_subquery()
    row = conn.execute(select(_T.c.hash, _T.c.ts, count_q).order_by(_T.c.id.desc()).limit(1)).first()
    now = utcnow().isoformat(timespec="seconds") + "Z"
    if row is None:
        return {"head": GENESIS, "count": 0, "time": now, "last_event_at": None}
    return {"head": row[0], "count": int(row[2]), "time": now,
            "last_event_at": row[1].isoformat(timespec="seconds") + "Z"}


def append_checkpoint(path: str | os.PathLike[str], checkpoint: Mapping[str, Any]) -> Path:
    """Append {head, count, time} as one JSON line to a 0600 file (created when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({k: checkpoint[k] for k in ("head", "count", "time")}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_checkpoints(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AuditError(f"cannot read the checkpoint file {path}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cp = json.loads(line)
            out.append({"head": str(cp["head"]), "count": int(cp["count"]), "time": str(cp.get("time", "?"))})
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{path}:{n}: not a checkpoint line ({{head, count, time}})") from None
        if out[-1]["count"] < 0:
            raise AuditError(f"{path}:{n}: a checkpoint's count cannot be negative ({out[-1]['count']})")
    return out


def post_checkpoint(url: str, checkpoint: Mapping[str, Any], timeout: float = 5.0) -> int:
    """POST the checkpoint as JSON to a witness; returns the HTTP status. `core.http_post`: within
    `timeout` in all, no redirect followed; the URL is printed without its credentials."""
    from .http_post import http_post, public_url  # urllib, ssl: only for the rare --post

    if not url.startswith(("https://", "http://")):
        raise AuditError(f"--post needs an http(s) URL, not {public_url(url)!r}")
    body = json.dumps({k: checkpoint[k] for k in ("head", "count", "time")}).encode("utf-8")
    status, error = http_post(url, body, {"Content-Type": "application/json", "User-Agent": "workbench-audit"}, timeout)
    if error is not None or status is None:
        raise AuditError(f"could not post the checkpoint to {public_url(url)}: {error}")
    return status


# -- verifying --------------------------------------------------------------------------------
@dataclass
class VerifyResult:
    ok: bool
    events: int
    head: str
    problems: list[str] = field(default_factory=list)
    keyed_events: int = 0
    legacy_events: int = 0
    decisions: int = 0
    checkpoints: int = 0
    redacted_events: int = 0  # events whose secret values were removed, each under a recorded redaction

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Problems(list):  # type: ignore[type-arg]
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.more = limit, 0

    def add(self, msg: str) -> None:
        if len(self) < self.limit:
            self.append(msg)
        else:
            self.more += 1

    def final(self) -> list[str]:
        return list(self) + ([f"… and {self.more} more problems"] if self.more else [])


def _one_snapshot(conn: Connection) -> None:
    """PostgreSQL's READ COMMITTED gives each statement its own moment, so a decision committed
    between the event scan and the decision scan looks unbound; REPEATABLE READ gives one. Only
    possible before the transaction's first query: otherwise open it with `Store.read(snapshot=True)`.
    SQLite's read transaction is one snapshot already."""
    if conn.dialect.name != "postgresql":
        return
    if conn.get_execution_options().get("isolation_level") not in (None, "READ COMMITTED"):
        return
    status = getattr(getattr(conn.connection.dbapi_connection, "info", None), "transaction_status", None)
    if status is not None and int(status) == 0:  # idle: no statement has run in this transaction yet
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def verify(conn: Connection, expect_head: Optional[str] = None,
           checkpoints: Optional[list[Mapping[str, Any]]] = None, key: Optional[AuditKey] = None,
           max_problems: int = 20, check_decisions: bool = True) -> VerifyResult:
    """Recompute the chain and check decisions against their events and checkpoints kept elsewhere.

    `expect_head`: a hash printed earlier by `head`; it must still be in the chain (events
    appended since are fine). `checkpoints`: [{head, count, time}]; the event at position
    `count` must have hash `head`. Position 0 is the genesis (GENESIS, an empty store), which
    every chain starts from. A redacted event verifies by its newest verified redaction. On
    PostgreSQL, an untouched READ COMMITTED transaction is made REPEATABLE READ first, so the scans
    (and a `head` read after) see one moment.
    """
    _one_snapshot(conn)
    kb = (key or connection_key(conn)).get(conn)
    problems = _Problems(max_problems)
    at = {int(cp["count"]): cp for cp in checkpoints or []}
    seen_at: dict[int, str] = {0: GENESIS}
    prev, count, keyed, legacy, redacted = GENESIS, 0, 0, 0, 0
    claims = _claims(conn, kb)
    seal: Optional[Mapping[str, Any]] = None
    bound: dict[int, tuple[str, int]] = {}
    found_head = expect_head is None or expect_head == GENESIS
    rows = conn.execute(select(_T).order_by(_T.c.id).execution_options(yield_per=10000)).mappings()
    for row in rows:
        count += 1
        eid = row["id"]
        # No id-contiguity check: ids of rolled-back inserts are skipped on PostgreSQL; a deleted
        # event breaks the next one's prev_hash, and a cut tail is for checkpoints / expect_head.
        if row["prev_hash"] != prev:
            problems.add(f"event {eid}: prev_hash does not match the event before it "
                         "(events deleted or re-ordered)")
        current = _row_keyed_hash(kb, row)
        redacted_as = None if current == row["hash"] else _attested(claims, row, current)
        redacted += redacted_as is not None
        if redacted_as is None and claims.get(eid, (0, {}))[0] > eid:
            problems.add(f"event {eid}: contents are not what redaction event {claims[eid][0]} left (edited, or the "
                         f"removed values put back: {row['action']} by {row['actor']})")
        elif current == row["hash"] or redacted_as == "keyed":
            if row["action"] == SEAL_ACTION:
                p = row["payload"] or {}
                if keyed or p.get("legacy_events") != legacy or p.get("legacy_head") != row["prev_hash"]:
                    problems.add(f"event {eid}: the chain seal does not match the {legacy} unkeyed events "
                                 "before it (events deleted or added before it)")
                seal = seal or p
            elif legacy and not keyed:
                problems.add(f"event {eid}: the first keyed event after {legacy} unkeyed ones is not the "
                             "chain seal (unkeyed events were inserted)")
            keyed += 1
        elif not keyed and (redacted_as == "legacy" or _is_unkeyed(row)):
            legacy += 1
        else:
            problems.add(f"event {eid}: contents do not match its keyed hash (edited, or the chain was "
                         f"recomputed without the key: {row['action']} by {row['actor']})")
        if row["action"] in BINDING_ACTIONS and isinstance(row["payload"], dict):
            for did, digest in (row["payload"].get("bound") or {}).items():
                bound[int(did)] = (digest, eid)
        if count in at:
            seen_at[count] = row["hash"]
        if not found_head and row["hash"] == expect_head:
            found_head = True
        prev = row["hash"]
    if count and not keyed:
        problems.add(f"none of the {count} events is keyed with this key: the chain was recomputed without "
                     "the key, or this is not the key it was written with")
    for n, cp in sorted(at.items()):
        if n > count:
            problems.add(f"checkpoint of {cp.get('time')} counted {n} events, the chain has {count}: "
                         "events deleted or truncated")
        elif seen_at.get(n) != cp["head"]:
            problems.add(f"event #{n} is not the one checkpointed at {cp.get('time')} (hash "
                         f"{str(seen_at.get(n))[:16]}…, checkpoint {str(cp['head'])[:16]}…): events deleted, "
                         "re-ordered or the chain recomputed")
    if not found_head:
        problems.add(f"expected head {str(expect_head)[:16]}… is not in the chain: events deleted or recomputed")
    decisions = _check_decisions(conn, seal, bound, problems) if check_decisions else 0
    return VerifyResult(ok=not problems, events=count, head=prev, problems=problems.final(),
                        keyed_events=keyed, legacy_events=legacy, decisions=decisions, checkpoints=len(at),
                        redacted_events=redacted)


def _check_decisions(conn: Connection, seal: Optional[Mapping[str, Any]],
                     bound: dict[int, tuple[str, int]], problems: _Problems) -> int:
    """Every decision has an event whose hash matches; every bound decision exists unchanged."""
    upto = seal.get("decisions_upto") if seal else None
    agg = hashlib.sha256()
    n = 0
    for row in conn.execute(select(_D).order_by(_D.c.id).execution_options(yield_per=10000)).mappings():
        n += 1
        did = row["id"]
        digest = decision_digest(row)
        if upto is not None and did <= upto:
            agg.update(f"{did}:{digest}\n".encode())
            continue
        have = bound.pop(did, None)
        if have is None:
            problems.add(f"decision {did} has no audit event binding it (written outside the workbench, "
                         "or its event was removed)")
        elif have[0] != digest:
            problems.add(f"decision {did} differs from what event {have[1]} recorded (edited or replaced)")
    if seal is not None and upto is not None and agg.hexdigest() != seal.get("decisions_sha256"):
        problems.add(f"the decisions up to {upto} that existed when the chain was keyed were changed, "
                     "added or deleted")
    for did, (_, eid) in sorted(bound.items()):
        problems.add(f"decision {did}, bound by event {eid}, is missing (deleted)")
    return n
