"""Signed-in browser sessions, kept in the store (`web_sessions`).

Why in the store and not in the web server's memory (Gradio keeps `app.tokens` in a dict):

- a session must end *at once* when its user is disabled, their password is changed or an
  admin revokes it, and those commands run in another process (`workbench users disable`);
  every request re-reads the session row joined with its user, so nothing is cached;
- sessions survive a restart of `workbench serve` and are shared by several `serve` processes
  over one PostgreSQL store (a restart no longer signs everyone out, a load balancer may send
  each request anywhere);
- who was signed in from where and when, and why each session ended, is on record.

Only the SHA-256 of the cookie value is stored (the cookie holds 128 random bits, so a fast hash
is enough, as for API tokens). A session ends on logout, after `idle_timeout` without activity,
`absolute` after it began, when its user is disabled or their password changes, or when revoked;
an ended session never comes back. `last_seen_at` is written at most every `touch_every` (a
fraction of the idle timeout), not on every request.

Starting and ending sessions are audit events (`session.start`, `session.end`).

A sign-in proves the password first and starts its session a moment later: a reset in between
(it ends every live session, and this one was not live yet) must not leave a session opened with
the old password, so the sign-in passes the `password_stamp` it read before the check and the
session starts only while the account still has that password (the account's row locked, so a
reset running at the same time either sees the new session or is seen by it). The absolute
timeout is applied when a session is read too (`absolute`), so a lowered one in the config bounds
the sessions already live, not just the next ones.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import func, insert, select, update

from . import audit
from .hooks import check_permission
from .principals import Actor, InvalidName, Principal, check_name
from .schema import User, WebSession, utcnow

U = User.__table__
S = WebSession.__table__
END_REASONS = ("logout", "idle", "expired", "disabled", "password", "revoked")


class SessionError(ValueError):
    """A refused session operation; one line."""


@dataclass(frozen=True)
class SessionInfo:
    """A live session: its id, the user's Principal, and its timing."""

    id: int
    principal: Principal
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


def _utc(now: Optional[dt.datetime]) -> dt.datetime:
    """`now` as the store keeps times (naive UTC): an aware time from a caller is converted, not
    compared with a naive one (a TypeError on every check) nor stored with its offset dropped."""
    if now is None:
        return utcnow()
    return now.astimezone(dt.timezone.utc).replace(tzinfo=None) if now.tzinfo is not None else now


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _stamp(password_hash: Optional[str]) -> Optional[str]:
    return None if password_hash is None else hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


def _named(name: object) -> bool:
    """Whether `name` could be an account's (every account passed `check_name`)."""
    try:
        check_name(name)
        return True
    except InvalidName:
        return False


def password_stamp(store: Any, name: object) -> Optional[str]:
    """A fingerprint of user `name`'s password as it is now (None: no such account or no
    password). Read before checking a sign-in's password and handed to `start_session`, so a
    reset between the check and the session's start is noticed (the hash itself never leaves)."""
    try:
        check_name(name)  # a NUL or an odd name names no account (PostgreSQL refuses a NUL)
    except InvalidName:
        return None
    with store.read() as conn:
        return _stamp(conn.execute(select(U.c.password_hash).where(U.c.name == name)).scalar())


def start_session(store: Any, token: str, name: str, *, absolute: dt.timedelta, client: Optional[str] = None,
                  now: Optional[dt.datetime] = None, stamp: Optional[str] = None) -> int:
    """Record a session for user `name` (who has just proven their password), keyed by the hash of
    its cookie value. Audited. SessionError for an unknown or disabled user, and with `stamp`
    (`password_stamp` read before the password was checked) when the password changed since."""
    now = _utc(now)
    with store.begin() as conn:
        # locked: a password reset at the same time waits, then ends this session too (or this waits
        # for the reset and sees the new password)
        user = conn.execute(select(U.c.id, U.c.disabled, U.c.password_hash).where(U.c.name == name)
                            .with_for_update()).first()
        if user is None or user.disabled:
            raise SessionError(f"user {name!r} cannot sign in")
        if stamp is not None and _stamp(user.password_hash) != stamp:
            raise SessionError(f"the password of {name!r} changed while signing in: sign in with the new one")
        sid = int(conn.execute(insert(S).values(
            token_hash=session_hash(token), user_id=user.id, client=(client or None) and client[:64],
            created_at=now, last_seen_at=now, expires_at=now + absolute).returning(S.c.id)).scalar_one())
        audit.record(conn, name, "session.start", "web_session", sid, {"client": client})
    return sid


def _end(conn: Any, sid: int, name: str, reason: str, now: dt.datetime, actor: Actor | None = None) -> None:
    """End one session, audited once (two requests finding it idle at the same time end it once)."""
    done = conn.execute(update(S).where(S.c.id == sid, S.c.ended_at.is_(None))
                        .values(ended_at=now, end_reason=reason)).rowcount
    if done:
        audit.record(conn, actor if actor is not None else name, "session.end", "web_session", sid,
                     {"user": name, "reason": reason})


def session_user(store: Any, token: Optional[str], *, idle: dt.timedelta, touch: bool = False,
                 now: Optional[dt.datetime] = None, absolute: Optional[dt.timedelta] = None) -> Optional[SessionInfo]:
    """The live session of a cookie value, or None (no such session, ended, idle or past its
    absolute expiry, or its user disabled). A session found dead here is ended on record (its
    reason says why). `touch`: this request counts as activity (refresh `last_seen_at`, at most
    every `idle / 10`, capped at a minute). `absolute`: the configured absolute timeout now; a
    session started under a longer one ends that long after it began (a lowered timeout bounds
    the sessions already live at their next use)."""
    if not isinstance(token, str) or not token:
        return None
    now = _utc(now)
    with store.read() as conn:
        row = conn.execute(select(S.c.id, S.c.created_at, S.c.last_seen_at, S.c.expires_at, S.c.ended_at,
                                  U.c.name, U.c.role, U.c.disabled)
                           .join(U, U.c.id == S.c.user_id).where(S.c.token_hash == session_hash(token))).first()
    if row is None or row.ended_at is not None:
        return None
    expires = row.expires_at if absolute is None else min(row.expires_at, row.created_at + absolute)
    reason = ("disabled" if row.disabled else "expired" if expires <= now
              else "idle" if now - row.last_seen_at > idle else None)
    if reason is not None:
        with store.begin() as conn:
            _end(conn, row.id, row.name, reason, now)
        return None
    last_seen = row.last_seen_at
    if touch and now - last_seen >= min(idle / 10, dt.timedelta(minutes=1)):
        with store.begin() as conn:
            conn.execute(update(S).where(S.c.id == row.id).values(last_seen_at=now))
        last_seen = now
    return SessionInfo(row.id, Principal(row.name, row.role, "user"), row.created_at, last_seen, expires)


def end_session(store: Any, token: Optional[str], reason: str = "logout", now: Optional[dt.datetime] = None) -> bool:
    """End the session of a cookie value (logout). Audited; False when there was no live one."""
    if not isinstance(token, str) or not token:
        return False
    now = _utc(now)
    with store.begin() as conn:
        row = conn.execute(select(S.c.id, S.c.ended_at, U.c.name).join(U, U.c.id == S.c.user_id)
                           .where(S.c.token_hash == session_hash(token))).first()
        if row is None or row.ended_at is not None:
            return False
        _end(conn, row.id, row.name, reason, now)
    return True


def end_user_sessions(conn: Any, user_id: int, name: str, reason: str, actor: Actor,
                      now: Optional[dt.datetime] = None) -> int:
    """End every live session of a user inside the caller's transaction (disable, new password,
    revoke); each one audited. Returns how many ended."""
    now = _utc(now)
    live = conn.execute(select(S.c.id).where(S.c.user_id == user_id, S.c.ended_at.is_(None))).scalars().all()
    for sid in live:
        _end(conn, sid, name, reason, now, actor)
    return len(live)


def acting_changed(conn: Any, actor: Actor) -> Optional[str]:
    """Lock every enabled account's row (in id order, so account changes run one at a time without
    deadlocks), then say why an account's principal may not manage accounts when its row changed
    since it was read (its role, or disabled); None when it may (or is no account's: a script's).
    Here, not in `accounts`, so signing users out (this module) checks it too without a cycle."""
    conn.execute(select(U.c.id).where(U.c.disabled.is_(False)).order_by(U.c.id).with_for_update())
    if not isinstance(actor, Principal) or actor.kind != "user" or not _named(actor.name):
        return None
    row = conn.execute(select(U.c.role, U.c.disabled).where(U.c.name == actor.name)).first()
    if row is None or not (row.disabled or row.role != actor.role):
        return None
    now = "disabled" if row.disabled else f"now {row.role}"
    return f"{actor.name} ({actor.role}) may not manage accounts: the account changed meanwhile ({now})"


def revoke_sessions(store: Any, name: str, *, actor: Actor, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Sign a user out everywhere (needs `users`): every live session ends at once. Audited."""
    from .permissions import check_grant

    check_permission(actor, "users", f"user {name}")
    with store.begin() as conn:
        if (problem := acting_changed(conn, actor)) is not None:  # as every account change
            raise SessionError(problem)
        user = conn.execute(select(U.c.id, U.c.role).where(U.c.name == name)).first() if _named(name) else None
        if user is None:
            raise SessionError(f"no user {str(name)[:40]!r} (see `workbench users list`)")
        check_grant(actor, user.role, what=f"sign out user {name} ({user.role})")  # as disabling it would be
        ended = end_user_sessions(conn, user.id, name, "revoked", actor, now)
    return {"user": name, "ended": ended}


def list_sessions(store: Any, name: Optional[str] = None, live_only: bool = True) -> list[dict[str, Any]]:
    """Sessions, newest first (never the cookie or its hash); none for a name no account can have
    (a NUL, undecodable bytes), instead of a traceback from the store."""
    if name is not None and not _named(name):
        return []
    q = (select(S.c.id, U.c.name.label("user"), S.c.client, S.c.created_at, S.c.last_seen_at, S.c.expires_at,
                S.c.ended_at, S.c.end_reason).join(U, U.c.id == S.c.user_id).order_by(S.c.id.desc()))
    if name is not None:
        q = q.where(U.c.name == name)
    if live_only:
        q = q.where(S.c.ended_at.is_(None))
    with store.read() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def live_count(store: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(S).where(S.c.ended_at.is_(None))).scalar_one())


# -- sign-in sources -------------------------------------------------------------------------
FAMILIAR_FOR = dt.timedelta(days=90)  # a client an account signed in from this recently is familiar to it
SOURCE_MAX_FAILED = 5  # failed sign-ins of one account from one client, then that client is locked out of it
SOURCE_LOCKOUT = dt.timedelta(minutes=15)  # the first such lock; each next one of the same pair doubles
SOURCE_LOCKOUT_CAP = dt.timedelta(hours=24)
MAX_SOURCES = 10_000  # (account, client) pairs remembered at once
# The address of the sign-in being checked, set by the web login (`workbench.ui.session`): a
# password check without one (a direct call) counts as an unfamiliar client's.
SIGN_IN_CLIENT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("workbench_sign_in_client",
                                                                               default=None)


def client_key(client: str) -> str:
    """The key a client's sign-ins count under: its address, except that an IPv6 client is its /64
    (one subscriber or host holds a whole /64, so per address each new one brought a fresh
    allowance) and an IPv4-mapped IPv6 address is its IPv4 address; anything else as given."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def familiar_client(conn: Any, user_id: int, key: str, now: dt.datetime) -> bool:
    """Whether user `user_id` started a web session from client `key` (`client_key`) within
    FAMILIAR_FOR: only someone who knew the password could have, so guesses from elsewhere do not
    lock it out from there (the account-wide lock in `core.accounts` applies to unfamiliar clients)."""
    rows = conn.execute(select(S.c.client).where(S.c.user_id == user_id, S.c.client.is_not(None),
                                                 S.c.created_at >= now - FAMILIAR_FOR)
                        .order_by(S.c.id.desc()).limit(200)).scalars().all()
    return any(client_key(c) == key for c in rows)


class SourceLimiter:
    """Failed sign-ins per (account name, client key), in this process: after SOURCE_MAX_FAILED
    the client is locked out of that account (SOURCE_LOCKOUT, doubling with each lock of the same
    pair up to the cap), whoever else signs in to it from elsewhere. An attempt takes its slot
    before the password is checked (`take`), so concurrent guesses share the limit; a success
    forgets the pair. Pairs quiet past their lock and beyond MAX_SOURCES (least recent) are forgotten."""

    def __init__(self, max_pairs: int = MAX_SOURCES) -> None:
        import collections
        import threading

        self._pairs: "collections.OrderedDict[tuple[str, str], list[Any]]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_pairs = max(1, max_pairs)

    def take(self, name: str, key: str, now: dt.datetime) -> Optional[dt.datetime]:
        """None: the attempt may be checked (its slot counts as a failure until `settle`); else
        the time the pair's lock ends (or `now` while the limit is held by attempts in flight)."""
        with self._lock:
            entry = self._pairs.get((name, key))
            if entry is None:
                entry = self._pairs[(name, key)] = [0, 0, None]  # in flight + failures, locks so far, until
                while len(self._pairs) > self.max_pairs:
                    self._pairs.popitem(last=False)
            self._pairs.move_to_end((name, key))
            if entry[2] is not None and now < entry[2]:
                return entry[2]
            if entry[0] >= SOURCE_MAX_FAILED:
                return now
            entry[0] += 1
            return None

    def release(self, name: str, key: str) -> None:
        """The attempt was never checked (an error on the way): its slot is given back."""
        with self._lock:
            entry = self._pairs.get((name, key))
            if entry is not None and entry[0] > 0:
                entry[0] -= 1

    def settle(self, name: str, key: str, ok: bool, now: dt.datetime) -> Optional[dt.datetime]:
        """The attempt's outcome: a success forgets the pair; a failure that reaches the limit locks
        it and returns until when (for the audit record)."""
        with self._lock:
            entry = self._pairs.get((name, key))
            if entry is None:
                return None
            if ok:
                del self._pairs[(name, key)]
                return None
            if entry[0] < SOURCE_MAX_FAILED:
                return None
            entry[0], entry[1] = 0, entry[1] + 1
            entry[2] = now + min(SOURCE_LOCKOUT * 2 ** min(entry[1] - 1, 20), SOURCE_LOCKOUT_CAP)
            return entry[2]
