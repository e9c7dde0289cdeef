"""Identity hardening (round 2): nobody hands out more than they hold, names unique by case under
concurrency, hostile ids / names / expiries as one-line refusals instead of tracebacks."""
from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from core import accounts
from core.accounts import AccountError, add_user, create_token, principal_for_token
from core.hooks import PermissionDenied
from core.principals import Principal


def test_a_scoped_token_cannot_hand_out_more_than_it_holds(any_store, roles):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="correct horse")
    ada = Principal("ada", "admin")
    minter = principal_for_token(any_store, create_token(any_store, "ada", actor=ada, scopes=["tokens"])["token"])
    # a token scoped to `tokens` minted an unscoped admin token (every action) for its own user
    with pytest.raises(PermissionDenied, match="may not create a token for ada"):
        create_token(any_store, "ada", actor=minter)
    with pytest.raises(PermissionDenied, match="may not create a token"):
        create_token(any_store, "ada", actor=minter, scopes=["users"])
    assert create_token(any_store, "ada", actor=minter, scopes=["tokens"])["scopes"] == ["tokens"]  # within
    # a token scoped to `users` added an admin with a password, or reset the admin's password:
    # either way a full admin sign-in in the web UI
    manager = principal_for_token(any_store, create_token(any_store, "ada", actor=ada, scopes=["users"])["token"])
    with pytest.raises(PermissionDenied, match="may not add user eve as admin"):
        add_user(any_store, "eve", "admin", actor=manager, roles=roles, password="eve's password")
    with pytest.raises(PermissionDenied, match=r"may not change user ada \(admin\)"):
        accounts.set_password(any_store, "ada", "taken over", actor=manager)
    assert accounts.verify_password(any_store, "ada", "correct horse").name == "ada"
    assert [u["name"] for u in accounts.list_users(any_store)] == ["ada"]
    # the whole admin still does all of it
    add_user(any_store, "bob", "analyst", actor=ada, roles=roles)
    accounts.set_role(any_store, "bob", "admin", actor=ada, roles=roles)
    assert create_token(any_store, "bob", actor=ada)["scopes"] is None


def test_a_lesser_account_manager_neither_promotes_nor_takes_over_a_stronger_account(any_store, roles):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    add_user(any_store, "bob", "analyst", actor="setup", roles=roles)
    # a token of ada narrowed to what a lead does plus account management
    lead_like = sorted(roles.actions("lead") | roles.actions("analyst") | roles.actions("viewer") | {"users"})
    hr = principal_for_token(any_store, create_token(any_store, "ada", actor="setup", scopes=lead_like)["token"])
    accounts.set_role(any_store, "bob", "lead", actor=hr, roles=roles)  # within what it holds
    for role in ("engineer", "admin"):
        with pytest.raises(PermissionDenied, match=f"may not give bob the role {role}"):
            accounts.set_role(any_store, "bob", role, actor=hr, roles=roles)
    with pytest.raises(PermissionDenied, match=r"may not change user ada \(admin\)"):
        accounts.disable_user(any_store, "ada", actor=hr, roles=roles)
    assert [(u["name"], u["role"], u["disabled"]) for u in accounts.list_users(any_store)] == \
        [("ada", "admin", False), ("bob", "lead", False)]


def test_names_differing_only_in_case_are_not_added_at_once(any_store):
    from core.config import config_dir
    from core.permissions import load_roles

    roles = load_roles(config_dir())
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    for i in range(12):
        barrier = threading.Barrier(2)

        def add(name: str) -> None:
            barrier.wait()
            try:
                add_user(any_store, name, "viewer", actor="ada", roles=roles)
            except AccountError:
                pass  # "already exists": the one expected refusal

        threads = [threading.Thread(target=add, args=(n,)) for n in (f"u{i}x", f"U{i}X")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    names = [u["name"].lower() for u in accounts.list_users(any_store)]
    assert len(names) == len(set(names)) == 13, names  # was 25 on PostgreSQL: 'u0x' and 'U0X' both added


def test_a_name_no_account_can_have_is_no_user_not_a_crash(any_store, roles):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="correct horse")
    for name in ("ada\x00", "a\x00da"):  # PostgreSQL refused the query: a DataError out of the login page
        assert accounts.verify_password(any_store, name, "correct horse") is None
        with pytest.raises(AccountError, match="no user"):
            accounts.principal_for_user(any_store, name)
    assert accounts.list_users(any_store)[0]["failed_logins"] == 0


@pytest.mark.parametrize("token_id", [10 ** 12, 2 ** 31, 10 ** 20])
def test_revoking_an_out_of_range_token_id_is_no_such_token(any_store, token_id):
    from core.config import config_dir
    from core.permissions import load_roles

    add_user(any_store, "ada", "admin", actor="setup", roles=load_roles(config_dir()))
    with pytest.raises(AccountError, match=f"no token {token_id}"):
        accounts.revoke_token(any_store, token_id, actor="ada")


def test_token_expiry_too_far_ahead_is_one_line(tmp_path):
    from workbench.cli import cli

    def run(*args: str, token: str | None = None):
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args],
                                  env={"WORKBENCH_TOKEN": token} if token else {})

    res = run("users", "add", "ada", "--role", "admin", "--json")
    ada = json.loads(res.output)["token"]["token"]
    for days in ("inf", "1e12", "5e6"):  # OverflowError tracebacks before
        res = run("tokens", "create", "ada", "--expires", days, token=ada)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output  # no traceback
        assert "--expires" in res.output and "too far ahead" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    res = run("tokens", "revoke", str(10 ** 20), token=ada)
    assert res.exit_code == 1 and f"no token {10 ** 20}" in res.output, res.output
    assert run("tokens", "create", "ada", "--expires", "30", token=ada).exit_code == 0


def test_a_password_on_stdin_that_is_not_utf8_is_one_line(tmp_path):
    from workbench.cli import cli

    def run(*args: str, token: str | None = None, stdin: bytes | None = None):
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args],
                                  env={"WORKBENCH_TOKEN": token} if token else {}, input=stdin)

    ada = json.loads(run("users", "add", "ada", "--role", "admin", "--json").output)["token"]["token"]
    for args in (("users", "add", "bob", "--role", "analyst", "--password-stdin"), ("users", "set-password", "ada")):
        res = run(*args, token=ada, stdin=b"\xff\xfepassword\n")  # a UnicodeDecodeError traceback before
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        assert res.output.strip() == "Error: the password on stdin is not UTF-8 text"
    assert [u["name"] for u in json.loads(run("users", "list", "--json", token=ada).output)] == ["ada"]
    assert run(*args, token=ada, stdin="pässwörd 1\n".encode()).exit_code == 0
