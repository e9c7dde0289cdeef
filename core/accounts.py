"""Accounts and tokens: who may sign in, with which role, and the bearer tokens the command line
and the HTTP API present.

- Passwords are hashed with argon2id (argon2-cffi's defaults); only the hash is stored.
- A token is `wbt_` + 43 random URL-safe characters, shown once when created; the store keeps
  its SHA-256 (a token has 256 random bits, so a fast hash is enough) and a short prefix to tell
  tokens apart in listings. A token may expire, be revoked, and carry scopes (action names) that
  narrow its user's role.
- `principal_for_token` reads the user's row every time: disabling a user, changing their role
  or revoking a token takes effect on the next call, with nothing cached.
- `verify_password` takes the same path whatever happens (unknown name, disabled or locked
  account, no password, wrong password): one argon2 verification, against a dummy hash when
  there is no real one, so its timing does not tell whether a name exists.
- Guessing is limited without handing an attacker who knows a name the power to lock its owner
  out (OWASP; "smart lockout"). Each (account, client address) pair has its own limit
  (`web_sessions.SourceLimiter`: after 5 failures that client is locked out of that account,
  the lock doubling each time); the web guard limits each address over all names
  (`web_throttle`). Across addresses the account counts failures in its `users` row (so the
  count holds across processes and restarts), each attempt before its check, in one write:
  after `MAX_FAILED` in a row it locks for `LOCKOUT`, then admits one guess per lock, each
  doubling it up to `LOCKOUT_CAP` (at most 14 guesses in a day from any number of addresses,
  6 a day after). That lock applies to unfamiliar clients only: from an address the account
  signed in from within 90 days (`web_sessions.familiar_client`) the right password still signs
  in during an attack, and a new address gets in once the lock ends. A success from an
  unfamiliar client resets the count (a familiar one's leaves it: the attack goes on). Unknown names have no row and so no
  count: guessing them only costs the attacker argon2's time. Every lock is audited
  (`user.locked`, `login.source_locked`) with the client it came from.

Every change (user added, disabled, role set, token created or revoked, an account locked) is
an audit event. Managing accounts needs the `users` permission, tokens the `tokens` one, and
nobody hands out more than they hold (`core.permissions.check_grant`): a role, or a token, that
allows an action the actor's own role and token scopes do not is refused, and so is a change
to an account whose role does. Names are unique whatever their case ('Bob' is 'bob'). The last
enabled manager, and the last one with a live token allowing `users` (the only way to manage
accounts), is neither disabled nor demoted, and that last live token is not revoked; account
changes (token revocations and sign-outs included) lock the enabled accounts' rows and re-read the
acting account, so a principal demoted or disabled meanwhile changes nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import weakref
from typing import Any, Optional, Sequence

from sqlalchemy import func, insert, or_, select, text, update

from . import audit
from .hooks import check_permission
from .principals import Actor, InvalidName, Principal, actor_name, check_name
from .schema import MAX_ROW_ID, ApiToken, User, utcnow
from .text import invisible_char, lone_surrogate_at
from .web_sessions import SIGN_IN_CLIENT, SOURCE_MAX_FAILED, SourceLimiter, acting_changed, client_key, familiar_client

U = User.__table__
T = ApiToken.__table__
TOKEN_PREFIX = "wbt_"
MAX_FAILED = 5  # failures in a row from unfamiliar clients, then the account locks out unfamiliar clients
LOCKOUT = dt.timedelta(minutes=15)  # the first such lock; each failure past it doubles the next
LOCKOUT_CAP = dt.timedelta(hours=4)
FORGET_AFTER = dt.timedelta(days=1)  # a day past its last lock, an account's count starts over
_SOURCES: "weakref.WeakKeyDictionary[Any, SourceLimiter]" = weakref.WeakKeyDictionary()
_SOURCES_LOCK = threading.Lock()
_DUMMY: list[str] = []  # an argon2 hash of a random password, computed once, for the constant path
LAST_TOKEN_HOLDER = "last enabled account allowed to manage accounts with a live token allowing 'users'"
_NAMES_LOCK = 0x7773_7573  # advisory lock id on PostgreSQL: one account added at a time (names unique by case)


class AccountError(ValueError):
    """A refused account or token operation, or a token that does not authenticate; one line."""


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2 hash of a password someone can type at the sign-in page: at least 8 characters,
    not all blank, and no control or invisible character (a browser drops a line ending from a
    password field, so `secret\\r` read from a Windows line would never sign in) nor a lone surrogate."""
    if not isinstance(password, str) or len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    if not password.strip():
        raise AccountError("a password must not be blank")
    if (at := lone_surrogate_at(password)) is not None:
        raise AccountError(f"a password must be Unicode text: a lone surrogate at character {at}")
    if (ch := invisible_char(password)) is not None:
        raise AccountError(f"a password must not hold a control or invisible character (U+{ord(ch):04X}): "
                           "nobody could type it at the sign-in page")
    return _hasher().hash(password)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check(name: str) -> str:
    try:
        return check_name(name, "user name")
    except InvalidName as exc:
        raise AccountError(str(exc)) from None


def _valid(name: object) -> bool:
    """Whether `name` could be an account's (every account passed `check_name`): anything else, a
    NUL byte included (PostgreSQL refuses it in a query), names no account and never reaches the store."""
    try:
        check_name(name)
        return True
    except InvalidName:
        return False


def _user(conn: Any, name: str, lock: bool = False) -> dict[str, Any]:
    q = select(U).where(U.c.name == name)
    row = conn.execute(q.with_for_update() if lock else q).mappings().first() if _valid(name) else None
    if row is None:
        raise AccountError(f"no user {name!r} (see `workbench users list`)")
    return dict(row)


def has_users(store: Any) -> bool:
    """Whether any account exists (none: the local command line acts as admin)."""
    with store.read() as conn:
        return conn.execute(select(U.c.id).limit(1)).first() is not None


# -- users -----------------------------------------------------------------------------------
def add_user(store: Any, name: str, role: str, *, actor: Actor, roles: Any, password: Optional[str] = None,
             now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Create an account with `role` (a key of roles.yaml) and, optionally, a password. Audited.

    The first account must be an admin: once one exists the command line needs a token, and
    only an admin can hand tokens out."""
    from .permissions import check_grant

    check_permission(actor, "users", f"user {name}")
    _check(name)
    try:
        roles.check_role(role)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    check_grant(actor, role, what=f"add user {name} as {role}")
    hashed = hash_password(password) if password is not None else None
    now = now or utcnow()
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":  # else 'Bob' and 'bob' added at once would both pass the check
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _NAMES_LOCK})
        _acting(conn, actor)
        if conn.execute(select(U.c.id).where(func.lower(U.c.name) == name.lower())).first() is not None:
            raise AccountError(f"user {name!r} already exists")
        first = conn.execute(select(U.c.id).limit(1)).first() is None
        if first and not roles.allows(role, "users"):
            raise AccountError(f"the first account must be able to manage accounts (role admin), not {role!r}: "
                               f"once an account exists, the command line needs a token")
        uid = int(conn.execute(insert(U).values(
            name=name, role=role, password_hash=hashed, disabled=False, failed_logins=0,
            created_at=now, updated_at=now).returning(U.c.id)).scalar_one())
        audit.record(conn, actor, "user.add", "user", name, {"role": role, "password": hashed is not None})
    return {"id": uid, "name": name, "role": role, "disabled": False, "password": hashed is not None, "first": first}


def list_users(store: Any) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(U).order_by(U.c.name)).mappings().all()
        live = dict(conn.execute(select(T.c.user_id, func.count()).where(T.c.revoked_at.is_(None))
                                 .group_by(T.c.user_id)).all())
    return [{"name": r["name"], "role": r["role"], "disabled": r["disabled"], "password": r["password_hash"] is not None,
             "tokens": int(live.get(r["id"], 0)), "failed_logins": r["failed_logins"], "locked_until": r["locked_until"],
             "created_at": r["created_at"]} for r in rows]


def _managers(conn: Any, roles: Any) -> tuple[set[str], set[str]]:
    """(names of the enabled accounts whose role may manage accounts (`users`), those of them
    someone can manage accounts as now), their rows locked.

    Accounts are managed from the command line, which needs a token (neither the web UI nor the
    HTTP API manages accounts), so a manager is usable only with a live token (not revoked, not
    expired) whose scopes allow `users` (`core.permissions.allowed`): a password alone signs in to
    the web UI, where no account or token can be handed out."""
    from .permissions import allowed

    rows = conn.execute(select(U.c.id, U.c.name, U.c.role).where(U.c.disabled.is_(False)).order_by(U.c.id)
                        .with_for_update()).all()
    role = {r.id: r for r in rows if roles.allows(r.role, "users")}
    now = utcnow()
    live = conn.execute(select(T.c.user_id, T.c.scopes).where(
        T.c.user_id.in_(list(role)), T.c.revoked_at.is_(None),
        or_(T.c.expires_at.is_(None), T.c.expires_at > now))).all() if role else []
    usable = {role[t.user_id].name for t in live
              if allowed(roles, Principal(role[t.user_id].name, role[t.user_id].role, "user",
                                          tuple(t.scopes) if t.scopes else None), "users")}
    return {r.name for r in role.values()}, usable


def _acting(conn: Any, actor: Actor) -> None:
    """Lock every enabled account's row, then refuse an account's principal whose row changed since
    it was read (`web_sessions.acting_changed`): a request authorised just before a concurrent
    demotion or disable would otherwise act on authority the account no longer has."""
    problem = acting_changed(conn, actor)
    if problem is not None:
        raise AccountError(problem)


def _change_user(store: Any, name: str, actor: Actor, action: str, values: dict[str, Any],
                 payload: dict[str, Any], end_sessions: Optional[str] = None, roles: Any = None,
                 revoke_tokens: Optional[str] = None) -> dict[str, Any]:
    """Update a user's row, audited; `end_sessions` (a reason) also ends their web sessions,
    `revoke_tokens` (a reason) revokes their live tokens for good.

    With `roles`, a change that would leave no enabled account able to manage accounts, or none
    with a live token to do it with (`_managers`), is refused: nobody could hand out a token or
    a role again short of editing the database.
    The audit record keeps the old values, except a password hash (it is secret; a hash in
    the append-only log could be cracked offline by anyone who reads the log)."""
    from .permissions import check_grant
    from .web_sessions import end_user_sessions

    check_permission(actor, "users", f"user {name}")
    with store.begin() as conn:
        _acting(conn, actor)
        before = _managers(conn, roles) if roles is not None else None
        user = _user(conn, name)
        check_grant(actor, user["role"], what=f"change user {name} ({user['role']})")
        conn.execute(update(U).where(U.c.id == user["id"]).values(updated_at=utcnow(), **values))
        if before is not None:
            after = _managers(conn, roles)
            if before[0] and not after[0]:
                raise AccountError(f"{name} is the last enabled account allowed to manage accounts: "
                                   "give another account such a role first")
            if before[1] and not after[1]:
                raise AccountError(f"{name} is the {LAST_TOKEN_HOLDER}: give another account such a role and "
                                   "a token (`workbench tokens create`) first")
        was = {k: (user[k] is not None if k == "password_hash" else user[k]) for k in values}
        if "password_hash" in was:
            was["password"] = was.pop("password_hash")
        audit.record(conn, actor, action, "user", name, dict(payload, was=was))
        if end_sessions is not None:
            end_user_sessions(conn, user["id"], name, end_sessions, actor)
        revoked = _revoke_user_tokens(conn, user["id"], name, revoke_tokens, actor) if revoke_tokens else None
        user.update(values)
    out = {"name": name, "role": user["role"], "disabled": user["disabled"]}
    return dict(out, tokens_revoked=revoked) if revoked is not None else out


def _revoke_user_tokens(conn: Any, user_id: int, name: str, reason: str, actor: Actor) -> int:
    """Revoke every live token of a user inside the caller's transaction, each audited like
    `revoke_token` (with the reason). Returns how many."""
    now = utcnow()
    live = conn.execute(select(T.c.id, T.c.prefix).where(T.c.user_id == user_id, T.c.revoked_at.is_(None))).all()
    for row in live:
        conn.execute(update(T).where(T.c.id == row.id).values(revoked_at=now))
        audit.record(conn, actor, "token.revoke", "api_token", row.id,
                     {"user": name, "prefix": row.prefix, "reason": reason})
    return len(live)


def disable_user(store: Any, name: str, *, actor: Actor, roles: Any) -> dict[str, Any]:
    """Disable an account: its tokens, password and web sessions stop working at once. Audited.
    Its tokens are revoked, not just suspended, so enabling it again does not revive a token
    that leaked meanwhile. The last enabled account that may manage accounts is not disabled."""
    return _change_user(store, name, actor, "user.disable", {"disabled": True}, {}, end_sessions="disabled",
                        roles=roles, revoke_tokens="disabled")


def enable_user(store: Any, name: str, *, actor: Actor) -> dict[str, Any]:
    return _change_user(store, name, actor, "user.enable", {"disabled": False, "failed_logins": 0,
                                                           "locked_until": None}, {})


def set_role(store: Any, name: str, role: str, *, actor: Actor, roles: Any) -> dict[str, Any]:
    """Give an account another role (effective on its next request). Audited."""
    from .permissions import check_grant

    try:
        roles.check_role(role)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    check_grant(actor, role, what=f"give {name} the role {role}")
    return _change_user(store, name, actor, "user.set_role", {"role": role}, {"role": role}, roles=roles)


def set_password(store: Any, name: str, password: str, *, actor: Actor) -> dict[str, Any]:
    """A new password; every web session signed in with the old one ends. Audited."""
    return _change_user(store, name, actor, "user.set_password",
                        {"password_hash": hash_password(password), "failed_logins": 0, "locked_until": None}, {},
                        end_sessions="password")


# -- passwords -------------------------------------------------------------------------------
def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def verify_password(store: Any, name: str, password: str, now: Optional[dt.datetime] = None,
                    client: Optional[str] = None) -> Optional[Principal]:
    """The user's Principal when `password` is right, the account enabled and neither it nor this
    `client` (an address: `web_sessions.client_key`) locked out of it; else None.

    One argon2 verification on every path (see the module notes). Each attempt takes its slots
    before the check (the client's for this account, the account's for unfamiliar clients), so
    concurrent guesses cannot all pass a stale "not locked" read. `client` defaults to the web
    login's (`web_sessions.SIGN_IN_CLIENT`); without one (a direct call) the attempt counts as an
    unfamiliar client's."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    now = now or utcnow()
    client = client if client is not None else SIGN_IN_CLIENT.get()
    key = client_key(client) if isinstance(client, str) and client else None
    valid = _valid(name)
    sources = source_limiter(store)
    held = sources.take(name, key, now) if valid and key is not None else None
    try:
        user = _take_attempt(store, name, now, key) if valid and held is None else None
        try:
            # text argon2 can encode: a lone surrogate (not UTF-8) is a wrong password, not a traceback
            typed = password if isinstance(password, str) and lone_surrogate_at(password) is None else ""
            ok = _hasher().verify(user["password_hash"] if user is not None else _dummy_hash(), typed)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    except BaseException:
        if valid and held is None and key is not None:
            sources.release(name, key)  # not checked (the store failed): no failure of this client
        raise
    if not valid or held is not None:
        return None  # a name no account can have, or this client is locked out of it: nothing to write
    ok = ok and user is not None
    until = sources.settle(name, key, ok, now) if key is not None else None
    # unknown, disabled, locked, no password, or the account's slots taken (user None): the same
    # second write as a wrong password, on no row (id 0), so no store round trip more or less
    # tells a real account from an unknown name
    with store.begin() as conn:
        uid = user["id"] if user is not None else 0
        if ok:  # re-read so a disable meanwhile wins; a familiar client's success leaves the account's count
            if user["familiar"]:
                row = conn.execute(select(U.c.role).where(U.c.id == uid, U.c.disabled.is_(False))).first()
            else:
                row = conn.execute(update(U).where(U.c.id == uid, U.c.disabled.is_(False))
                                   .values(failed_logins=0, locked_until=None).returning(U.c.role)).first()
            return Principal(user["name"], row.role, "user") if row is not None else None
        row = conn.execute(select(U.c.failed_logins, U.c.locked_until).where(U.c.id == uid)
                           .with_for_update()).first()
        if until is not None:  # the failure that locks this client out of this account (after the row
            # lock: the audit's lock comes second everywhere, as in account changes)
            audit.record(conn, "system", "login.source_locked", "user", name,
                         {"client": key, "failed_logins": SOURCE_MAX_FAILED, "until": until.isoformat()})
        if row is None or user is None or user["familiar"]:
            return None
        if user["beyond"]:  # its lock was set when it took the slot: on record now that it failed
            if row.locked_until is not None and row.locked_until > now:
                _record_lock(conn, user["name"], row.failed_logins, row.locked_until, key)
        elif row.failed_logins >= MAX_FAILED and not (row.locked_until is not None and row.locked_until > now):
            _lock(conn, uid, user["name"], row.failed_logins, now, key)
    return None


def source_limiter(store: Any) -> SourceLimiter:
    """The failures per (account, client) of `store` in this process (one limiter per store, so
    two stores served by one process share no counts)."""
    with _SOURCES_LOCK:
        found = _SOURCES.get(store)
        if found is None:
            found = _SOURCES[store] = SourceLimiter()
        return found


def _lockout(failed: int) -> dt.timedelta:
    """How long unfamiliar clients are locked out after `failed` failures in a row (>= MAX_FAILED):
    LOCKOUT, doubling with each failure beyond, up to LOCKOUT_CAP."""
    return min(LOCKOUT * 2 ** min(max(failed - MAX_FAILED, 0), 20), LOCKOUT_CAP)


def _take_attempt(store: Any, name: str, now: dt.datetime, key: Optional[str]) -> Optional[dict[str, Any]]:
    """Count one sign-in attempt of `name` up front and return its row (with `familiar`: from a
    client it signed in from before, and `beyond`: past the account's MAX_FAILED); None when it may
    not be checked (no such usable account, or locked out for unfamiliar clients).

    A familiar client is not counted here (`source_limiter` limits it). For the others the account counts
    failures and attempts in flight together: the first MAX_FAILED are free, then the account
    locks for LOCKOUT; after that each attempt takes the lock's end, and locks for twice as long
    before its check (so concurrent guesses get one), up to LOCKOUT_CAP: guesses from any number of
    addresses are bounded per day. A success resets the count; so does a day past the last lock.
    A count left at the limit by a crash mid-check, never locked, locks now (never refuses for ever)."""
    with store.begin() as conn:
        row = conn.execute(select(U.c.id, U.c.name, U.c.password_hash, U.c.failed_logins, U.c.locked_until)
                           .where(U.c.name == name, U.c.disabled.is_(False), U.c.password_hash.is_not(None))
                           .with_for_update()).mappings().first()
        # the same reads for an unknown name (on no row, id 0): no round trip more or less tells them apart
        familiar = key is not None and familiar_client(conn, row["id"] if row is not None else 0, key, now)
        if row is None:
            conn.execute(update(U).where(U.c.id == 0).values(failed_logins=U.c.failed_logins))
            return None
        out = dict(row, familiar=familiar, beyond=False)
        if out["familiar"]:
            return out
        failed, until = row["failed_logins"], row["locked_until"]
        if until is not None and now >= until + FORGET_AFTER:
            failed, until = 0, None  # an old attack: start over
        if until is not None and now < until:
            return None
        if failed < MAX_FAILED:
            conn.execute(update(U).where(U.c.id == row["id"]).values(failed_logins=failed + 1, locked_until=until))
            return out
        if until is None:
            _lock(conn, row["id"], row["name"], failed, now, key)
            return None
        conn.execute(update(U).where(U.c.id == row["id"]).values(failed_logins=failed + 1,
                                                                  locked_until=now + _lockout(failed + 1)))
        return dict(out, beyond=True)


def _lock(conn: Any, uid: int, name: str, failed: int, now: dt.datetime, key: Optional[str]) -> None:
    """Lock account `uid` out for unfamiliar clients (`_lockout`); audited."""
    until = now + _lockout(failed)
    conn.execute(update(U).where(U.c.id == uid).values(locked_until=until))
    _record_lock(conn, name, failed, until, key)


def _record_lock(conn: Any, name: str, failed: int, until: dt.datetime, key: Optional[str]) -> None:
    audit.record(conn, "system", "user.locked", "user", name,
                 {"failed_logins": failed, "until": until.isoformat(), "client": key, "scope": "unfamiliar clients"})


# -- tokens ----------------------------------------------------------------------------------
def create_token(store: Any, name: str, *, actor: Actor, expires_days: Optional[float] = None,
                 scopes: Optional[Sequence[str]] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """A new token for user `name`: returned once under "token"; only its hash is stored. Audited."""
    from .permissions import check_grant, check_scopes

    check_permission(actor, "tokens", f"user {name}")
    if expires_days is not None and not expires_days > 0:
        raise AccountError(f"--expires must be a positive number of days, not {expires_days!r}")
    try:
        scope_list = check_scopes(list(scopes or []))
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        expires = now + dt.timedelta(days=expires_days) if expires_days is not None else None
    except (OverflowError, ValueError):  # inf, or past the year 9999
        raise AccountError(f"--expires {expires_days!r} days is too far ahead") from None
    with store.begin() as conn:
        _acting(conn, actor)
        user = _user(conn, name, lock=True)  # a concurrent disable cannot miss the new token
        if user["disabled"]:
            raise AccountError(f"user {name!r} is disabled")
        check_grant(actor, user["role"], scope_list, what=f"create a token for {name} ({user['role']})")
        tid = int(conn.execute(insert(T).values(
            user_id=user["id"], token_hash=token_hash(token), prefix=token[:12], scopes=scope_list,
            created_by=actor_name(actor), created_at=now, expires_at=expires).returning(T.c.id)).scalar_one())
        audit.record(conn, actor, "token.create", "api_token", tid,
                     {"user": name, "prefix": token[:12], "scopes": scope_list,
                      "expires_at": expires.isoformat() if expires else None})
    return {"id": tid, "user": name, "token": token, "prefix": token[:12], "scopes": scope_list, "expires_at": expires}


def list_tokens(store: Any, name: Optional[str] = None) -> list[dict[str, Any]]:
    """Tokens (never the tokens themselves), of user `name` only when given: a name no account
    can have (a NUL, undecodable bytes) has none, instead of a traceback from the store."""
    if name is not None and not _valid(name):
        return []
    q = (select(T.c.id, U.c.name.label("user"), T.c.prefix, T.c.scopes, T.c.created_by, T.c.created_at,
                T.c.expires_at, T.c.revoked_at).join(U, U.c.id == T.c.user_id).order_by(T.c.id))
    if name is not None:
        q = q.where(U.c.name == name)
    with store.read() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def revoke_token(store: Any, token_id: int, *, actor: Actor, roles: Any = None,
                 now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Revoke a token (by the id `tokens list` shows); it stops working at once. Audited.

    As for account changes, the acting principal's row is re-read (`_acting`) and nobody revokes
    a token allowing more than they hold (`check_grant`). With `roles`, the last live token
    anyone can manage accounts with is not revoked (`_managers`): once accounts exist the command
    line needs a token, so nobody could hand out a token or a role again; create another first."""
    from .permissions import check_grant

    check_permission(actor, "tokens", f"token {token_id}")
    now = now or utcnow()
    with store.begin() as conn:
        _acting(conn, actor)
        before = _managers(conn, roles) if roles is not None else None
        row = conn.execute(select(T.c.id, T.c.revoked_at, T.c.prefix, T.c.scopes, U.c.name, U.c.role)
                           .join(U, U.c.id == T.c.user_id)
                           .where(T.c.id == token_id)).first() if 0 < token_id <= MAX_ROW_ID else None
        if row is None:
            raise AccountError(f"no token {token_id} (see `workbench tokens list`)")
        if row.revoked_at is not None:
            return {"id": token_id, "user": row.name, "revoked": True, "changed": False}
        check_grant(actor, row.role, row.scopes, what=f"revoke token {token_id} of {row.name} ({row.role})")
        conn.execute(update(T).where(T.c.id == token_id).values(revoked_at=now))
        if before is not None and before[1] and not _managers(conn, roles)[1]:
            raise AccountError(f"token {token_id} is the last live token of the {LAST_TOKEN_HOLDER}: create "
                               f"another (`workbench tokens create`) before revoking it")
        audit.record(conn, actor, "token.revoke", "api_token", token_id, {"user": row.name, "prefix": row.prefix})
    return {"id": token_id, "user": row.name, "revoked": True, "changed": True}


def principal_for_token(store: Any, token: str, now: Optional[dt.datetime] = None) -> Principal:
    """The Principal a token stands for; AccountError (one line) for an unknown, expired or revoked
    token or a disabled user. Reads the user's row every time (nothing cached)."""
    if not isinstance(token, str) or not token.strip():
        raise AccountError("no token given (set WORKBENCH_TOKEN or pass --token)")
    now = now or utcnow()
    # a token is ASCII (`wbt_` + URL-safe characters): anything else (stray bytes in WORKBENCH_TOKEN,
    # read as lone surrogates that do not encode) is no token, not a traceback
    with store.read() as conn:
        row = conn.execute(select(T.c.id, T.c.scopes, T.c.expires_at, T.c.revoked_at, U.c.name, U.c.role,
                                  U.c.disabled).join(U, U.c.id == T.c.user_id)
                           .where(T.c.token_hash == token_hash(token.strip()))).first() if token.isascii() else None
    if row is None:
        raise AccountError("unknown token (check WORKBENCH_TOKEN or --token)")
    if row.disabled:  # first: disabling revokes the tokens too, and this says why
        raise AccountError(f"user {row.name} is disabled")
    if row.revoked_at is not None:
        raise AccountError(f"token {row.id} of {row.name} was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise AccountError(f"token {row.id} of {row.name} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC")
    return Principal(row.name, row.role, "user", tuple(row.scopes) if row.scopes else None)


def principal_for_user(store: Any, name: str) -> Principal:
    """The Principal of a signed-in user (a web session); AccountError (one line) for an unknown
    or disabled user. Reads the row every time, so disabling a user ends their session at once."""
    with store.read() as conn:
        row = _user(conn, name)
    if row["disabled"]:
        raise AccountError(f"user {row['name']} is disabled")
    return Principal(row["name"], row["role"], "user")
