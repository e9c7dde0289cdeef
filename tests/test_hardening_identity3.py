"""Identity hardening (round 3): revoking a token left nobody able to manage accounts, a lesser (or
just-demoted) token holder revoked a stronger account's tokens and sessions, a hostile name in a
listing was a traceback, and a sign-in's store writes told a real account from an unknown name."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from core import accounts, web_sessions
from core.accounts import AccountError, add_user, create_token, principal_for_token
from core.hooks import PermissionDenied
from core.principals import Principal

LAST = "last enabled account allowed to manage accounts with a live token"


def _token(store, name, **kwargs) -> tuple[int, Principal]:
    out = create_token(store, name, actor="setup", **kwargs)
    return out["id"], principal_for_token(store, out["token"])


# --- 1. the last usable manager token --------------------------------------------------------------

def test_revoking_the_last_token_anyone_manages_accounts_with_is_refused(any_store, roles):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="a fine password")
    first = create_token(any_store, "ada", actor="setup")
    tid, ada = first["id"], principal_for_token(any_store, first["token"])
    scoped, _ = _token(any_store, "ada", scopes=["read", "tokens"])  # manages no account
    accounts.revoke_token(any_store, scoped, actor=ada, roles=roles)  # not the last manager token: fine
    with pytest.raises(AccountError, match=LAST):
        accounts.revoke_token(any_store, tid, actor=ada, roles=roles)  # was done: nobody could manage accounts again
    assert principal_for_token(any_store, first["token"]).name == "ada"  # still works
    assert [t["revoked_at"] is None for t in accounts.list_tokens(any_store, "ada")] == [True, False]
    spare, _ = _token(any_store, "ada")  # a second one first, then the first may go
    assert accounts.revoke_token(any_store, tid, actor=ada, roles=roles)["changed"] is True
    with pytest.raises(AccountError, match=LAST):
        accounts.revoke_token(any_store, spare, actor="setup", roles=roles)


def test_the_tokens_revoke_command_keeps_the_last_manager_token(tmp_path):
    from workbench.cli import cli

    def run(*args: str, token: str):
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], env={"WORKBENCH_TOKEN": token})

    first = json.loads(CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "users", "add", "ada",
                                                "--role", "admin", "--json"]).output)["token"]
    res = run("tokens", "revoke", str(first["id"]), token=first["token"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert LAST in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert run("tokens", "list", "--json", token=first["token"]).exit_code == 0  # still usable


# --- 2. nobody revokes what is stronger than they hold, nor acts on authority just taken away -------

def test_a_lesser_token_revokes_no_stronger_accounts_token_or_sessions(any_store, roles):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="a fine password")
    add_user(any_store, "bob", "analyst", actor="setup", roles=roles, password="bob's password")
    ada_tid, _ = _token(any_store, "ada")
    bob_tid, _ = _token(any_store, "bob")
    _, minter = _token(any_store, "ada", scopes=["tokens"])
    _, hr = _token(any_store, "ada", scopes=["users", "read"])
    web_sessions.start_session(any_store, "ada-cookie", "ada", absolute=dt.timedelta(hours=1))
    with pytest.raises(PermissionDenied, match="may not revoke token"):
        accounts.revoke_token(any_store, ada_tid, actor=minter, roles=roles)  # was: an admin's token revoked
    with pytest.raises(PermissionDenied, match="may not revoke token"):
        accounts.revoke_token(any_store, bob_tid, actor=minter, roles=roles)  # an analyst holds more than `tokens`
    with pytest.raises(PermissionDenied, match=r"may not sign out user ada \(admin\)"):
        web_sessions.revoke_sessions(any_store, "ada", actor=hr)  # was: the admin signed out everywhere
    assert all(t["revoked_at"] is None for t in accounts.list_tokens(any_store))
    assert len(web_sessions.list_sessions(any_store, "ada")) == 1


def test_a_principal_demoted_meanwhile_revokes_nothing(any_store, roles):
    for name in ("ada", "bob"):
        add_user(any_store, name, "admin", actor="setup", roles=roles, password="a fine password")
    _, ada = _token(any_store, "ada")
    bob_tid, bob = _token(any_store, "bob")
    carol_tid, _ = _token(any_store, "ada")
    web_sessions.start_session(any_store, "ada-cookie", "ada", absolute=dt.timedelta(hours=1))
    accounts.set_role(any_store, "bob", "viewer", actor=ada, roles=roles)  # while bob's request was in flight
    with pytest.raises(AccountError, match=r"bob \(admin\) may not manage accounts: .* \(now viewer\)"):
        accounts.revoke_token(any_store, carol_tid, actor=bob, roles=roles)
    with pytest.raises(web_sessions.SessionError, match=r"bob \(admin\) may not manage accounts: .* \(now viewer\)"):
        web_sessions.revoke_sessions(any_store, "ada", actor=bob)
    assert all(t["revoked_at"] is None for t in accounts.list_tokens(any_store))
    assert len(web_sessions.list_sessions(any_store, "ada")) == 1


# --- 3. a hostile name in a listing or a sign-out is no user, not a traceback ----------------------

@pytest.mark.parametrize("name", ["\udcff", "a\x00b", "b\udcffob"])
def test_a_name_no_account_can_have_lists_nothing(any_store, roles, name):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    create_token(any_store, "ada", actor="setup")
    assert accounts.list_tokens(any_store, name) == []  # UnicodeEncodeError / DataError before
    assert web_sessions.list_sessions(any_store, name) == []
    with pytest.raises(web_sessions.SessionError, match="no user"):
        web_sessions.revoke_sessions(any_store, name, actor="setup")


def test_hostile_names_on_the_command_line_are_one_line(tmp_path):
    from workbench.cli import cli

    def run(*args: str, token: str | None = None):
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args],
                                  env={"WORKBENCH_TOKEN": token} if token else {})

    ada = json.loads(run("users", "add", "ada", "--role", "admin", "--json").output)["token"]["token"]
    for args in (("tokens", "list", "--user", "\udcff"), ("users", "sessions", "b\udcffob"),
                 ("users", "logout", "\udcff")):
        res = run(*args, token=ada)
        assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)  # a traceback
        assert len(res.output.strip().splitlines()) <= 1, res.output
    res = run("users", "logout", "\udcff", token=ada)
    assert res.exit_code == 1 and "no user" in res.output, res.output


# --- 4. a sign-in writes as much for an unknown name as for a real account -----------------------

def test_a_sign_in_writes_the_same_for_an_unknown_name_as_for_an_account(any_store, roles, monkeypatch):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="a fine password")
    add_user(any_store, "off", "analyst", actor="setup", roles=roles, password="a fine password")
    accounts.disable_user(any_store, "off", actor="setup", roles=roles)
    begin = any_store.begin
    opened: list[int] = []

    def counting():
        opened.append(1)
        return begin()

    monkeypatch.setattr(any_store, "begin", counting)

    def writes(name: str) -> int:
        opened.clear()
        assert accounts.verify_password(any_store, name, "wrong password") is None
        return len(opened)

    # a wrong password for ada took one more transaction after argon2 than an unknown name did: a
    # round trip to the store that timing could tell apart, over many tries
    assert writes("nobody") == writes("ada") == writes("off") == writes("Ada")


# --- 5. a token that is no token's text is unknown, not a traceback --------------------------------

@pytest.mark.parametrize("token", ["wbt_\udcff", "\udcffwbt_abc"])
def test_a_token_no_token_could_be_is_unknown(any_store, roles, token):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    with pytest.raises(AccountError, match="unknown token"):
        principal_for_token(any_store, token)  # UnicodeEncodeError before (WORKBENCH_TOKEN with stray bytes)


def test_a_workbench_token_with_stray_bytes_is_one_line(tmp_path):
    from workbench.cli import cli

    data = ["--data-dir", str(tmp_path / "data")]
    assert CliRunner().invoke(cli, [*data, "users", "add", "ada", "--role", "admin"]).exit_code == 0
    res = CliRunner().invoke(cli, [*data, "users", "list"], env={"WORKBENCH_TOKEN": "wbt_\udcff"})
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert "unknown token" in res.output and len(res.output.strip().splitlines()) == 1, res.output


# --- 6. the per-client sign-in throttle stays bounded under many addresses -------------------------

def test_the_sign_in_throttle_remembers_a_bounded_number_of_clients():
    from workbench.ui.web_throttle import Throttle

    throttle = Throttle()
    # one failed sign-in from each of 12,000 /64s of one IPv6 /32 (a hosting provider's block):
    # kept them all before, and past 10,000 every sign-in scanned the whole table under the lock
    for i in range(12_000):
        assert throttle.reserve(f"2001:db8:{i >> 8:x}:{i & 255:x}::1", 20, 900)[1] is not None
    assert len(throttle._fails) <= 10_000
    # a client seen lately is still counted: its limit holds
    for _ in range(3):
        throttle.reserve("192.0.2.7", 3, 900)
    wait, slot = throttle.reserve("192.0.2.7", 3, 900)
    assert slot is None and 0 < wait <= 900


# --- 7. a password typed at a terminal is not echoed -----------------------------------------------

def test_a_password_typed_at_a_terminal_is_asked_without_echo(monkeypatch):
    import io
    import sys

    import click.termui

    from workbench.cli import accounts as cli_accounts

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("shown on screen as typed\n"))
    asked: list[str] = []
    monkeypatch.setattr(click.termui, "hidden_prompt_func", lambda prompt: asked.append(prompt) or "a hidden password")
    assert cli_accounts._read_password(True) == "a hidden password"  # was the echoed line
    assert len(asked) == 2  # asked again to confirm
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped password\n"))  # a pipe still reads the first line
    assert cli_accounts._read_password(True) == "piped password"
