"""Accounts, tokens and principals (core.accounts, core.principals, roles.yaml), and the command
line's modes: no accounts (the local user as admin) and accounts (a token for every command)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core import accounts
from core.accounts import AccountError, add_user, create_token, principal_for_token, verify_password
from core.config import ConfigError, config_dir
from core.permissions import load_roles
from core.principals import RESERVED_NAMES, InvalidName, Principal, actor_name, check_name
from core.schema import ApiToken, AuditEvent, utcnow

ROLES = load_roles(config_dir())


@pytest.mark.parametrize("name", ["", "   ", " bob", "bob ", "bo b", "bob\n", "-bob", "bob;drop", "é" * 3,
                                  "x" * 101, *RESERVED_NAMES, "System"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidName):
        check_name(name)


def test_principal_and_actor_name():
    p = Principal("ann", "analyst")
    assert actor_name(p) == "ann" == actor_name("ann") == str(p)
    with pytest.raises(ValueError):
        Principal("x", "admin", "robot")


def test_users_and_tokens_are_audited_and_only_hashes_stored(any_store):
    u = add_user(any_store, "ada", "admin", actor="setup", roles=ROLES)
    assert u["first"]
    with pytest.raises(AccountError, match="already exists"):
        add_user(any_store, "ADA", "viewer", actor="setup", roles=ROLES)
    with pytest.raises(AccountError, match="unknown role"):
        add_user(any_store, "bob", "overlord", actor="setup", roles=ROLES)
    with pytest.raises(AccountError, match="reserved"):
        add_user(any_store, "sweeper", "viewer", actor="setup", roles=ROLES)
    add_user(any_store, "bob", "analyst", actor="setup", roles=ROLES, password="correct horse")
    tok = create_token(any_store, "bob", actor="ada", expires_days=30, scopes=["read", "decide"])
    assert tok["token"].startswith("wbt_")
    who = principal_for_token(any_store, tok["token"])
    assert (who.name, who.role, who.kind, who.scopes) == ("bob", "analyst", "user", ("decide", "read"))
    with any_store.read() as conn:
        stored = conn.execute(select(ApiToken.token_hash, ApiToken.prefix)).all()
        events = conn.execute(select(AuditEvent.action, AuditEvent.payload)).all()
    assert tok["token"] not in json.dumps([list(r) for r in stored]) + json.dumps([e.payload for e in events])
    assert stored[0].token_hash == accounts.token_hash(tok["token"])
    assert [e.action for e in events if e.action.startswith(("user.", "token."))] == \
        ["user.add", "user.add", "token.create"]
    accounts.set_role(any_store, "bob", "lead", actor="ada", roles=ROLES)
    assert principal_for_token(any_store, tok["token"]).role == "lead"
    assert [r["name"] for r in accounts.list_users(any_store)] == ["ada", "bob"]
    assert "password_hash" not in accounts.list_users(any_store)[0]


def test_the_last_account_manager_is_neither_demoted_nor_disabled(any_store):
    add_user(any_store, "ada", "admin", actor="setup", roles=ROLES)
    add_user(any_store, "bob", "analyst", actor="setup", roles=ROLES)
    for change in (lambda: accounts.set_role(any_store, "ada", "viewer", actor="ada", roles=ROLES),
                   lambda: accounts.disable_user(any_store, "ada", actor="ada", roles=ROLES)):
        with pytest.raises(AccountError, match="ada is the last enabled account allowed to manage accounts"):
            change()
    assert [(u["name"], u["role"], u["disabled"]) for u in accounts.list_users(any_store)] == \
        [("ada", "admin", False), ("bob", "analyst", False)]
    accounts.disable_user(any_store, "bob", actor="ada", roles=ROLES)  # others: as before
    accounts.set_role(any_store, "bob", "admin", actor="ada", roles=ROLES)
    accounts.enable_user(any_store, "bob", actor="ada")
    accounts.set_role(any_store, "ada", "viewer", actor="bob", roles=ROLES)  # bob manages accounts now
    with pytest.raises(AccountError, match="bob is the last"):
        accounts.disable_user(any_store, "bob", actor="bob", roles=ROLES)


def test_a_password_hash_never_reaches_the_audit_log(any_store):
    add_user(any_store, "ada", "admin", actor="setup", roles=ROLES, password="first-pass-1")
    accounts.set_password(any_store, "ada", "second-pass-2", actor="ada")
    accounts.set_password(any_store, "ada", "third-pass-3", actor="ada")
    with any_store.read() as conn:
        events = conn.execute(select(AuditEvent.action, AuditEvent.payload)
                              .where(AuditEvent.action == "user.set_password")).all()
    assert len(events) == 2 and "argon2" not in json.dumps([e.payload for e in events])
    assert events[0].payload["was"]["password"] is True


def test_the_first_account_must_be_an_admin(sqlite_store):
    with pytest.raises(AccountError, match="first account"):
        add_user(sqlite_store, "bob", "analyst", actor="setup", roles=ROLES)


def test_a_disabled_users_token_stops_working_at_once(any_store):
    add_user(any_store, "ada", "admin", actor="setup", roles=ROLES)
    add_user(any_store, "bob", "analyst", actor="setup", roles=ROLES)
    tok = create_token(any_store, "bob", actor="ada")["token"]
    assert principal_for_token(any_store, tok).name == "bob"
    accounts.disable_user(any_store, "bob", actor=Principal("ada", "admin"), roles=ROLES)
    with pytest.raises(AccountError, match="user bob is disabled"):
        principal_for_token(any_store, tok)
    accounts.enable_user(any_store, "bob", actor="ada")
    with pytest.raises(AccountError, match="was revoked"):  # disabling revoked it for good
        principal_for_token(any_store, tok)


def test_unknown_expired_and_revoked_tokens(sqlite_store):
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=ROLES)
    t0 = utcnow()
    tok = create_token(sqlite_store, "ada", actor="setup", expires_days=1, now=t0)
    with pytest.raises(AccountError, match="unknown token"):
        principal_for_token(sqlite_store, "wbt_nope")
    with pytest.raises(AccountError, match="expired"):
        principal_for_token(sqlite_store, tok["token"], now=t0 + dt.timedelta(days=2))
    accounts.revoke_token(sqlite_store, tok["id"], actor="ada")
    with pytest.raises(AccountError, match="revoked"):
        principal_for_token(sqlite_store, tok["token"])
    with pytest.raises(AccountError, match="unknown scope"):
        create_token(sqlite_store, "ada", actor="ada", scopes=["fly"])


def test_passwords_verify_and_failed_attempts_lock_the_account(sqlite_store, monkeypatch):
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=ROLES, password="correct horse")
    t0 = utcnow()
    assert verify_password(sqlite_store, "ada", "correct horse", now=t0) == Principal("ada", "admin", "user")
    assert verify_password(sqlite_store, "nobody", "correct horse", now=t0) is None
    calls = []
    real = accounts._hasher

    def counting():
        h = real()
        calls.append(1)
        return h

    monkeypatch.setattr(accounts, "_hasher", counting)
    for _ in range(accounts.MAX_FAILED):
        assert verify_password(sqlite_store, "ada", "wrong", now=t0) is None
    # locked: even the right password is refused until the lockout ends, still with one argon2 check
    calls.clear()
    assert verify_password(sqlite_store, "ada", "correct horse", now=t0 + dt.timedelta(minutes=1)) is None
    assert verify_password(sqlite_store, "nobody", "x", now=t0) is None
    assert len(calls) == 2  # the same work for a locked account and an unknown name
    later = t0 + accounts.LOCKOUT + dt.timedelta(seconds=1)
    assert verify_password(sqlite_store, "ada", "correct horse", now=later).name == "ada"
    with sqlite_store.read() as conn:
        assert conn.execute(select(AuditEvent.action).where(AuditEvent.action == "user.locked")).scalar()
    add_user(sqlite_store, "root", "admin", actor="setup", roles=ROLES)
    accounts.disable_user(sqlite_store, "ada", actor="setup", roles=ROLES)
    assert verify_password(sqlite_store, "ada", "correct horse", now=later) is None


def test_roles_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "roles.yaml"
    bad.write_text("roles:\n  admin: {allow: ['*']}\n  analyst: {allow: [decide, fly]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"roles.yaml: field 'roles.analyst.allow': .*unknown action.*'fly'"):
        load_roles(bad)
    bad.write_text("roles:\n  admin: {allow: ['*']}\n  lead: {inherits: [boss]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"field 'roles.lead.inherits.0': unknown role 'boss'"):
        load_roles(bad)
    bad.write_text("roles:\n  lead: {allow: [decide]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"field 'roles.admin'"):
        load_roles(bad)
    assert ROLES.allows("lead", "claim") and not ROLES.allows("engineer", "decide") and ROLES.allows("admin", "x")


# -- the command line ---------------------------------------------------------------------------
def _cli(tmp_path, *args, token=None, stdin=None):
    from workbench.cli import cli

    env = {"WORKBENCH_TOKEN": token} if token else {}
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], env=env, input=stdin)


def _store(tmp_path):
    from core.store import open_store

    return open_store(tmp_path / "data")


def test_no_accounts_local_user_is_admin_and_as_still_names_the_actor(tmp_path):
    from workbench.context import AppContext

    app = AppContext(tmp_path / "data")
    who = app.principal()
    assert who.kind == "local" and who.role == "admin"
    assert app.principal("ann") == Principal("ann", "admin", "local")
    with pytest.raises(InvalidName, match="reserved"):
        app.principal("system")
    res = _cli(tmp_path, "next", "--queue", "fraud", "--as", "cli")
    assert res.exit_code != 0 and "reserved" in res.output and len(res.output.strip().splitlines()) == 1
    app.close()


def test_first_account_then_every_command_needs_a_token(tmp_path):
    res = _cli(tmp_path, "users", "add", "ada", "--role", "admin", "--json")
    assert res.exit_code == 0, res.output
    ada = json.loads(res.output)["token"]["token"]
    # users present: no token -> one line naming WORKBENCH_TOKEN, for reads too
    for args in (["status"], ["decide", "1", "--label", "scam", "--as", "ann"], ["cases", "list"]):
        res = _cli(tmp_path, *args)
        assert res.exit_code != 0 and "WORKBENCH_TOKEN" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert _cli(tmp_path, "status", token=ada).exit_code == 0
    res = _cli(tmp_path, "users", "add", "bob", "--role", "analyst", "--password-stdin", token=ada,
               stdin="correct horse\n")
    assert res.exit_code == 0, res.output
    bob = json.loads(_cli(tmp_path, "tokens", "create", "bob", "--json", token=ada).output)["token"]
    viewer = _cli(tmp_path, "users", "add", "vic", "--role", "viewer", token=bob)
    assert viewer.exit_code != 0 and "needs permission 'users'" in viewer.output
    assert _cli(tmp_path, "users", "add", "vic", "--role", "viewer", token=ada).exit_code == 0
    vic = json.loads(_cli(tmp_path, "tokens", "create", "vic", "--json", token=ada).output)["token"]
    for args in (["status"], ["cases", "list"], ["queues"], ["audit", "verify"], ["campaigns", "list"]):
        assert _cli(tmp_path, *args, token=vic).exit_code == 0, args  # reads are open to a viewer
    res = _cli(tmp_path, "cases", "build", token=vic)
    assert res.exit_code != 0 and "vic (viewer) may not build_cases" in res.output
    # --as must be absent or the token's own user
    res = _cli(tmp_path, "next", "--queue", "fraud", "--as", "ada", token=bob)
    assert res.exit_code != 0 and "does not match the token's user bob" in res.output
    assert _cli(tmp_path, "next", "--queue", "fraud", "--as", "bob", token=bob).exit_code == 3  # empty queue
    assert _cli(tmp_path, "status", token="wbt_forged").exit_code != 0
    listed = json.loads(_cli(tmp_path, "tokens", "list", "--json", token=ada).output)
    assert {t["user"] for t in listed} == {"ada", "bob", "vic"} and all("token" not in t for t in listed)
    store = _store(tmp_path)
    assert verify_password(store, "bob", "correct horse").role == "analyst"
    store.dispose()
    # disabling bob stops his token at once
    assert _cli(tmp_path, "users", "disable", "bob", token=ada).exit_code == 0
    res = _cli(tmp_path, "status", token=bob)
    assert res.exit_code != 0 and "disabled" in res.output


def test_decide_without_a_token_is_refused_and_an_analyst_may_not_promote(tmp_path):
    from sqlalchemy import insert

    from core.schema import ModelVersion

    ada = json.loads(_cli(tmp_path, "users", "add", "ada", "--role", "admin", "--json").output)["token"]["token"]
    _cli(tmp_path, "users", "add", "ann", "--role", "analyst", token=ada)
    ann = json.loads(_cli(tmp_path, "tokens", "create", "ann", "--json", token=ada).output)["token"]
    from models.registry import artifact_digest, artifact_dir

    store = _store(tmp_path)
    folder = artifact_dir(store, "m1")   # `promote` verifies a version's files first: a stand-in artifact
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    with store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(id="m1", kind="tfidf_lr", artifact_path="models/m1",
                                                           artifact_sha256=artifact_digest(folder),
                                                           role="challenger", labels=["benign", "spam"]))
    store.dispose()
    res = _cli(tmp_path, "decide", "1", "--label", "scam")
    assert res.exit_code != 0 and "WORKBENCH_TOKEN" in res.output
    res = _cli(tmp_path, "models", "promote", "m1", token=ann)
    assert res.exit_code != 0 and "ann (analyst) may not promote" in res.output
    assert "needs permission 'promote'" in res.output and len(res.output.strip().splitlines()) == 1
    res = _cli(tmp_path, "models", "promote", "m1", "--json", token=ada)
    assert res.exit_code == 0, res.output
    store = _store(tmp_path)
    from models.registry import get_model

    assert get_model(store, "m1")["promoted_by"] == "ada"
    store.dispose()


def test_serve_refuses_a_public_host_without_accounts():
    import click

    from workbench.cli.serve import check_serve_host, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("example.org")
    with pytest.raises(click.ClickException, match="no accounts"):
        check_serve_host("0.0.0.0", has_users=False)
    check_serve_host("127.0.0.1", has_users=False)
    check_serve_host("0.0.0.0", has_users=True)
