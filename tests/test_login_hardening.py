"""Sign-in hardening: the password check off the event loop, the per-client throttle and the
per-account lockout under concurrent attempts, and tokens revoked (not suspended) on disable.

Concurrency is forced, not timed: threads or tasks are held inside the check until all of them
have got there, so the assertions hold however fast the machine is (the waits only bound a hang).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import shutil
import threading
import types

import pytest
from sqlalchemy import select, update

from core import accounts
from core.accounts import (AccountError, add_user, create_token, disable_user, enable_user, list_users,
                           principal_for_token, revoke_token, verify_password)
from core.config import config_dir
from core.permissions import load_roles
from core.principals import Principal
from core.schema import AuditEvent, User, utcnow

ROLES = load_roles(config_dir())
HANG = 20  # seconds before a test gives up waiting (only ever reached when it fails)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """argon2id at its smallest cost: the same code paths, without seconds of hashing per test."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    monkeypatch.setattr(accounts, "_DUMMY", [])


def _events(store, action: str) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == action)
                                              .order_by(AuditEvent.id)).mappings()]


def _users(store) -> None:
    add_user(store, "boss", "admin", actor="setup", roles=ROLES, password="boss-pass-123")
    add_user(store, "ann", "analyst", actor="setup", roles=ROLES, password="ann-pass-123")


# -- 1. the web login's check runs in a worker thread -------------------------------------------------
def _login_check(store):
    from workbench.context import AppContext
    from workbench.ui.session import login_check

    return login_check(AppContext(store=store))


def test_login_check_is_a_coroutine_that_leaves_the_event_loop_free(sqlite_store, monkeypatch):
    _users(sqlite_store)
    entered, released = threading.Event(), threading.Event()

    def slow_verify(store, name, password, now=None):
        entered.set()  # only another coroutine on the loop releases it: a blocked loop never does
        if not released.wait(HANG):
            raise AssertionError("the event loop was blocked while the password was checked")
        return Principal(name, "analyst", "user")

    monkeypatch.setattr(accounts, "verify_password", slow_verify)
    check = _login_check(sqlite_store)
    assert inspect.iscoroutinefunction(check)  # what Gradio tests before awaiting it

    async def attempt() -> bool:
        out = check("ann", "ann-pass-123")
        return await out if inspect.isawaitable(out) else out

    async def other_request() -> None:
        while not entered.is_set():
            await asyncio.sleep(0.001)
        released.set()

    async def main() -> list:
        return await asyncio.wait_for(asyncio.gather(attempt(), other_request()), HANG * 2)

    assert asyncio.run(main())[0] is True


def test_login_check_still_checks_the_password(sqlite_store):
    _users(sqlite_store)
    check = _login_check(sqlite_store)

    async def main() -> list:
        return [await check("ann", "ann-pass-123"), await check("ann", "wrong-pass"), await check("nobody", "x")]

    assert asyncio.run(main()) == [True, False, False]


# -- 2. the per-client throttle counts attempts in flight ---------------------------------------------
class FakeGradio:
    """Gradio's `/login` as far as the guard sees it: held at a gate, then 400 (or 200 + cookie)."""

    def __init__(self, arrived) -> None:
        self.gate = asyncio.Event()
        self.entered = 0
        self.arrived = arrived
        self.status = 400
        self.boom = False

    async def __call__(self, scope, receive, send) -> None:
        self.entered += 1
        self.arrived()
        await self.gate.wait()
        if self.boom:
            raise RuntimeError("the login handler failed")
        headers = [(b"set-cookie", b"access-token-unsecure-x=tok123; Path=/")] if self.status == 200 else []
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


def _guarded(tmp_path, store, limit: int):
    from workbench.context import AppContext
    from workbench.ui.web_guard import WebGuard

    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    (configs / "web.yaml").write_text(f"login: {{max_failures_per_client: {limit}, window_seconds: 600}}\n",
                                      encoding="utf-8")
    counts = {"settled": 0}
    done = asyncio.Event()

    def arrived() -> None:
        counts["settled"] += 1
        if counts["settled"] >= counts.get("expect", 1 << 30):
            done.set()

    gradio = FakeGradio(arrived)
    guard = WebGuard(gradio, ctx=AppContext(store=store, config_dir_=configs), port=7860)
    server = types.SimpleNamespace(auth=object(), tokens={}, cookie_id="x")

    async def login() -> tuple[int, dict]:
        scope = {"type": "http", "method": "POST", "path": "/login", "scheme": "http", "app": server,
                 "client": ("192.0.2.7", 5555), "query_string": b"",
                 "headers": [(b"host", b"127.0.0.1:7860"), (b"origin", b"http://127.0.0.1:7860")]}
        got: dict = {}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                got.update(status=message["status"], headers=dict(message["headers"]))
                if message["status"] == 429:
                    arrived()  # refused before reaching Gradio: settled too

        await guard(scope, receive, send)
        return got["status"], got["headers"]

    return gradio, counts, done, login


def test_concurrent_sign_ins_share_the_client_limit(sqlite_store, tmp_path):
    gradio, counts, done, login = _guarded(tmp_path, sqlite_store, limit=3)

    async def main() -> list:
        counts["expect"] = 8
        tasks = [asyncio.ensure_future(login()) for _ in range(8)]
        await asyncio.wait_for(done.wait(), HANG)  # each one is at Gradio's gate or refused
        assert gradio.entered == 3  # only the limit's worth reach the password check
        gradio.gate.set()
        out = await asyncio.gather(*tasks)
        out.append(await login())  # sent afterwards: still refused
        return out

    results = asyncio.run(main())
    assert sorted(s for s, _ in results) == [400] * 3 + [429] * 6
    assert all(int(h[b"retry-after"]) > 0 for s, h in results if s == 429)


def test_a_good_sign_in_gives_its_slot_back_and_an_error_keeps_it(sqlite_store, tmp_path):
    gradio, _, _, login = _guarded(tmp_path, sqlite_store, limit=3)
    gradio.gate.set()

    async def main() -> list:
        out = [(await login())[0]]  # a failure: 1 of 3
        gradio.status = 200
        out += [(await login())[0] for _ in range(3)]  # successes do not count
        gradio.status, gradio.boom = 400, True
        with pytest.raises(RuntimeError):
            await login()  # no response at all: counted (2 of 3)
        gradio.boom = False
        out += [(await login())[0], (await login())[0]]  # 3 of 3, then refused
        return out

    assert asyncio.run(main()) == [400, 200, 200, 200, 400, 429]


# -- 3. the per-account lockout counts attempts before the check -------------------------------------
class GatedHasher:
    """argon2 as in production, but a guess starting with "wrong" waits at the gate inside `verify`."""

    def __init__(self, real, gate: threading.Event, entered: threading.Semaphore, checked: list) -> None:
        self.real, self.gate, self.entered, self.checked = real, gate, entered, checked

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        if hashed != accounts._dummy_hash():
            self.checked.append(password)  # checked against the account's real hash
        if password.startswith("wrong"):
            self.entered.release()
            assert self.gate.wait(HANG)
        return self.real.verify(hashed, password)


def test_concurrent_guesses_share_the_account_lockout(any_store, monkeypatch):
    _users(any_store)
    accounts._dummy_hash()
    gate, entered, checked = threading.Event(), threading.Semaphore(0), []
    real = accounts._hasher()  # the cheap one above
    monkeypatch.setattr(accounts, "_hasher", lambda: GatedHasher(real, gate, entered, checked))
    n = 12
    results: list = [None] * n

    def guess(i: int) -> None:
        results[i] = verify_password(any_store, "ann", f"wrong-{i}")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for _ in range(n):  # every guess is inside its argon2 check, none has finished
            assert entered.acquire(timeout=HANG)
        # the right password, while the wrong guesses are still being checked: refused
        assert verify_password(any_store, "ann", "ann-pass-123") is None
    finally:
        gate.set()
        for t in threads:
            t.join(HANG)
    assert results == [None] * n
    assert len([p for p in checked if p.startswith("wrong")]) == accounts.MAX_FAILED
    assert "ann-pass-123" not in checked
    assert [e["entity_id"] for e in _events(any_store, "user.locked")] == ["ann"]
    with any_store.read() as conn:
        row = conn.execute(select(User.__table__).where(User.__table__.c.name == "ann")).mappings().one()
    assert row["locked_until"] is not None and row["locked_until"] > utcnow()
    later = utcnow() + accounts.LOCKOUT + dt.timedelta(seconds=1)
    assert verify_password(any_store, "ann", "ann-pass-123", now=later) == Principal("ann", "analyst", "user")


def test_a_count_left_at_the_limit_locks_rather_than_refusing_for_ever(any_store):
    _users(any_store)
    with any_store.begin() as conn:  # as if a process died in the middle of the check
        conn.execute(update(User.__table__).where(User.__table__.c.name == "ann")
                     .values(failed_logins=accounts.MAX_FAILED))
    t0 = utcnow()
    assert verify_password(any_store, "ann", "ann-pass-123", now=t0) is None
    assert [e["entity_id"] for e in _events(any_store, "user.locked")] == ["ann"]
    assert verify_password(any_store, "ann", "ann-pass-123", now=t0 + accounts.LOCKOUT).name == "ann"
    assert {u["name"]: u["failed_logins"] for u in list_users(any_store)}["ann"] == 0


# -- 4. disabling an account revokes its tokens ------------------------------------------------------
def test_disable_revokes_tokens_so_enable_does_not_revive_them(any_store):
    _users(any_store)
    live = create_token(any_store, "ann", actor="boss")
    old = create_token(any_store, "ann", actor="boss")
    revoke_token(any_store, old["id"], actor="boss")
    boss = create_token(any_store, "boss", actor="boss")
    out = disable_user(any_store, "ann", actor="boss", roles=ROLES)
    assert out["disabled"] and out["tokens_revoked"] == 1
    enable_user(any_store, "ann", actor="boss")
    with pytest.raises(AccountError, match=f"token {live['id']} of ann was revoked"):
        principal_for_token(any_store, live["token"])
    assert principal_for_token(any_store, boss["token"]).name == "boss"  # others' tokens untouched
    revokes = [e for e in _events(any_store, "token.revoke") if e["payload"].get("reason") == "disabled"]
    assert [(e["entity_id"], e["actor"], e["payload"]["user"]) for e in revokes] == [(str(live["id"]), "boss", "ann")]
    assert {u["name"]: u["tokens"] for u in list_users(any_store)}["ann"] == 0
    assert create_token(any_store, "ann", actor="boss")["token"]  # a new one works as usual
