"""Sign-in lockout and masking, hardened:

1. Failed sign-ins locked the account for everyone: anyone who knew an analyst's name could keep
   them out with five wrong passwords every 15 minutes. Now failures lock out their source (the
   (account, client address) pair), the account-wide lock applies to unfamiliar clients only (the
   owner still signs in from an address they used before), and it grows with each failure past
   the limit, so guessing from any number of addresses stays bounded. Every lock is audited with
   the client it came from.
2. A masked word spelled out letter by letter ("f u c k", "f.u.c.k", "f-u-c-k") was shown as written:
   each letter was a "word" of one. It is masked now, with the text's length and separators kept,
   while initials ("J. R. R.") and runs of the alphabet ("a b c") stay as written.
"""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import select

from core import accounts
from core.accounts import add_user, list_users, verify_password
from core.config import config_dir
from core.permissions import load_roles
from core.principals import Principal
from core.schema import AuditEvent, utcnow
from core.web_sessions import SOURCE_LOCKOUT, SOURCE_MAX_FAILED, start_session

ROLES = load_roles(config_dir())
ANN = Principal("ann", "analyst", "user")
DAY = dt.timedelta(hours=12)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """argon2id at its smallest cost: the same code paths, without seconds of hashing per test."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    monkeypatch.setattr(accounts, "_DUMMY", [])


def _users(store) -> None:
    add_user(store, "boss", "admin", actor="setup", roles=ROLES, password="boss-pass-123")
    add_user(store, "ann", "analyst", actor="setup", roles=ROLES, password="ann-pass-123")


def _signed_in_from(store, client: str, now: dt.datetime) -> None:
    """ann signs in from `client` (its password checked, its session started there)."""
    assert verify_password(store, "ann", "ann-pass-123", now=now, client=client) == ANN
    start_session(store, secrets.token_urlsafe(16), "ann", absolute=DAY, client=client, now=now)


def _events(store, action: str) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == action)
                                              .order_by(AuditEvent.id)).mappings()]


def _ann(store) -> dict:
    return next(u for u in list_users(store) if u["name"] == "ann")


# -- 1. lockout --------------------------------------------------------------------------------------
def test_guesses_from_many_addresses_do_not_lock_the_owner_out_of_a_familiar_one(any_store):
    _users(any_store)
    t0 = utcnow()
    _signed_in_from(any_store, "192.0.2.10", t0 - dt.timedelta(days=3))
    for i in range(40):  # an attacker who knows the name, from 40 addresses
        assert verify_password(any_store, "ann", f"guess-{i:04d}", now=t0 + dt.timedelta(seconds=i),
                               client=f"203.0.113.{i + 1}") is None
    later = t0 + dt.timedelta(minutes=1)
    assert _ann(any_store)["locked_until"] > later  # locked, for unfamiliar clients
    assert verify_password(any_store, "ann", "ann-pass-123", now=later, client="198.51.100.9") is None
    assert verify_password(any_store, "ann", "ann-pass-123", now=later) is None  # no client: unfamiliar
    # the owner, from the address they signed in from before: in, during the attack
    assert verify_password(any_store, "ann", "ann-pass-123", now=later, client="192.0.2.10") == ANN
    assert _ann(any_store)["locked_until"] > later  # and the attack stays locked out
    locks = _events(any_store, "user.locked")
    assert [e["entity_id"] for e in locks] == ["ann"] and locks[0]["payload"]["client"] == "203.0.113.5"


def test_guessing_from_one_address_locks_that_address_out_of_the_account(any_store):
    _users(any_store)
    t0 = utcnow()
    for client in ("192.0.2.10", "192.0.2.11", "2001:db8:1:2::1"):
        _signed_in_from(any_store, client, t0 - dt.timedelta(days=1))
    for source in ("192.0.2.11", "2001:db8:1:2::1"):  # familiar addresses, wrong passwords
        for i in range(SOURCE_MAX_FAILED):
            assert verify_password(any_store, "ann", f"wrong-{i}", now=t0, client=source) is None
    at = t0 + dt.timedelta(minutes=1)
    # those sources are out, the right password included; the /64 is one source
    assert verify_password(any_store, "ann", "ann-pass-123", now=at, client="192.0.2.11") is None
    assert verify_password(any_store, "ann", "ann-pass-123", now=at, client="2001:db8:1:2:ffff::9") is None
    # the owner elsewhere is not, and the account counted none of it
    assert verify_password(any_store, "ann", "ann-pass-123", now=at, client="192.0.2.10") == ANN
    assert _ann(any_store)["failed_logins"] == 0 and _ann(any_store)["locked_until"] is None
    assert [(e["entity_id"], e["payload"]["client"]) for e in _events(any_store, "login.source_locked")] == [
        ("ann", "192.0.2.11"), ("ann", "2001:db8:1:2::/64")]
    # the lock ends, and the next one of the same source lasts twice as long
    after = t0 + SOURCE_LOCKOUT + dt.timedelta(seconds=1)
    for i in range(SOURCE_MAX_FAILED):
        assert verify_password(any_store, "ann", f"again-{i}", now=after, client="192.0.2.11") is None
    assert verify_password(any_store, "ann", "ann-pass-123", now=after + SOURCE_LOCKOUT, client="192.0.2.11") is None
    assert verify_password(any_store, "ann", "ann-pass-123", now=after + 2 * SOURCE_LOCKOUT,
                           client="192.0.2.11") == ANN


def test_guessing_across_many_addresses_is_bounded(any_store, monkeypatch):
    _users(any_store)
    real = accounts._hasher()
    checked: list[str] = []

    class Counting:
        def verify(self, hashed: str, password: str) -> bool:
            if hashed != accounts._dummy_hash():
                checked.append(password)  # against ann's real hash
            return real.verify(hashed, password)

    monkeypatch.setattr(accounts, "_hasher", lambda: Counting())
    accounts._DUMMY.append(real.hash("dummy-password"))
    t0, n = utcnow(), 0
    for step in range(6 * 24):  # a day: every 10 minutes, two guesses from addresses never seen
        for _ in range(2):
            n += 1
            now = t0 + dt.timedelta(minutes=10 * step, seconds=n % 7)
            assert verify_password(any_store, "ann", f"guess-{n}", now=now,
                                   client=f"10.{n // 250}.{n % 250}.1") is None
    assert len(checked) <= 14, len(checked)  # was 5 every 15 minutes: 480 a day
    # the attack stops: the owner, from a new address, is in once the lock ends
    until = _ann(any_store)["locked_until"]
    assert verify_password(any_store, "ann", "ann-pass-123", now=until, client="198.51.100.77") == ANN
    assert _ann(any_store)["failed_logins"] == 0
    assert len(_events(any_store, "user.locked")) >= 5  # each lock on record


def test_the_web_login_locks_out_the_guessing_address_not_the_owner(sqlite_store, tmp_path):
    from starlette.testclient import TestClient

    from test_web_session import Server, _configs

    _users(sqlite_store)
    srv = Server(sqlite_store, _configs(tmp_path, "{}\n"))
    try:
        def login(address: str, password: str) -> int:
            client = TestClient(srv.blocks.app, client=(address, 5000), base_url=srv.origin)
            return client.post("/login", data={"username": "ann", "password": password},
                               headers={"Origin": srv.origin}).status_code

        assert login("192.0.2.10", "ann-pass-123") == 200  # the owner, from their office
        for i in range(SOURCE_MAX_FAILED + 2):
            assert login("198.51.100.7", f"wrong-{i}") == 400
        assert login("198.51.100.7", "ann-pass-123") == 400  # the guessing address is out
        assert login("192.0.2.10", "ann-pass-123") == 200  # the owner is not
        assert [e["payload"]["client"] for e in _events(sqlite_store, "login.source_locked")] == ["198.51.100.7"]
    finally:
        srv.close()


# -- 2. masking ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelled,masked", [
    ("you f u c k", "y•• f • • •"),
    ("f.u.c.k off", "f.•.•.• o••"),
    ("f-u-c-k", "f-•-•-•"),
    ("f - u - c - k", "f - • - • - •"),
    ("f_u_c_k", "f_•_•_•"),
    ("f u.c-k", "f •.•-•"),
    ("F.U.C.K", "F.•.•.•"),
    ("F. U. C. K.", "F. •. •. •."),
    ("ｆ　ｕ　ｃ　ｋ", "ｆ　•　•　•"),
    ("f a g", "f • •"),
    ("f\nu\nc\nk", "f\n•\n•\n•"),
    ("f&nbsp;u&nbsp;c&nbsp;k", "f\xa0•\xa0•\xa0•"),
    ("ⓕ ⓤ ⓒ ⓚ", "ⓕ • • •"),
])
def test_a_word_spelled_out_is_masked_in_place(spelled, masked):
    from labeling.masking import mask_text

    assert mask_text(spelled) == masked
    assert len(mask_text(spelled)) == len(spelled.replace("&nbsp;", " "))  # offsets hold


@pytest.mark.parametrize("text,masked", [
    ("see a b c", "s•• a b c"),
    ("x, y, z", "x, y, z"),
    ("by J. R. R. Tolkien", "b• J. R. R. T••••••"),
    ("J.R.R. Tolkien", "J.R.R. T••••••"),
    ("the U.S.A. team", "t•• U.S.A. t•••"),
    ("plan b or c", "p••• b o• c"),
    ("e-mail me", "e-m••• m•"),
])
def test_separated_letters_that_spell_no_word_are_left_as_written(text, masked):
    from labeling.masking import mask_text

    assert mask_text(text) == masked


def test_a_reveal_shows_the_spelled_out_text_as_written():
    from labeling.masking import mask_packet

    packet = {"masked": True, "item": {"text": "you f.u.c.k and f u c k", "metadata": {"note": "s h i t"}}}
    hidden = mask_packet(packet, revealed=False)
    assert hidden["item"]["text"] == "y•• f.•.•.• a•• f • • •"
    assert hidden["item"]["metadata"] == {"note": "s • • •"}
    shown = mask_packet(packet, revealed=True)
    assert shown["item"] == packet["item"] and shown["revealed"] is True
