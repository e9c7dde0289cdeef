"""Accounts and the Operations KPIs, attacked: the last manager counted an admin nobody can act as
(no token), a principal read before its demotion still managed accounts, and any viewer of the
Operations tab (or `ops_kpis`) saw the decisions of every analyst, a lead's figure."""
from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from core import accounts
from core.accounts import AccountError, add_user, create_token, principal_for_token
from core.principals import Principal
from core.schema import utcnow
from test_queue_support import T0, add_scored, at_once, meeting

LAST = "ada is the last enabled account allowed to manage accounts"


def _token(store, name, **kwargs) -> Principal:
    return principal_for_token(store, create_token(store, name, actor="setup", **kwargs)["token"])


def _state(store) -> list[tuple[str, str, bool]]:
    return [(u["name"], u["role"], u["disabled"]) for u in accounts.list_users(store)]


# --- 1. a manager counts only if someone can manage accounts as it ------------------------------

def test_an_admin_nobody_can_act_as_is_no_manager(any_store, roles):
    add_user(any_store, "ghost", "admin", actor="setup", roles=roles)  # no password, no token
    add_user(any_store, "pam", "admin", actor="setup", roles=roles, password="a fine password")  # web only
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    ada = _token(any_store, "ada")
    # tokens that manage nothing: revoked, expired, scoped without `users`
    accounts.revoke_token(any_store, create_token(any_store, "ghost", actor="setup")["id"], actor="setup")
    create_token(any_store, "ghost", actor="setup", expires_days=1, now=utcnow() - dt.timedelta(days=2))
    create_token(any_store, "pam", actor="setup", scopes=["read", "tokens"])
    for change in (lambda: accounts.disable_user(any_store, "ada", actor=ada, roles=roles),
                   lambda: accounts.set_role(any_store, "ada", "lead", actor=ada, roles=roles)):
        with pytest.raises(AccountError, match=f"{LAST} with a live token allowing 'users'"):
            change()  # was done: only ghost and pam left, and no account or token could be handed out again
    assert _state(any_store) == [("ada", "admin", False), ("ghost", "admin", False), ("pam", "admin", False)]
    create_token(any_store, "pam", actor="setup", scopes=["users", "tokens", "read"])  # now pam can
    assert accounts.disable_user(any_store, "ada", actor=ada, roles=roles)["disabled"] is True


def test_two_managers_demoting_each_other_at_once_leave_one(any_store, roles):
    add_user(any_store, "ghost", "admin", actor="setup", roles=roles)  # no credentials
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    add_user(any_store, "bob", "admin", actor="setup", roles=roles)
    ada, bob = _token(any_store, "ada"), _token(any_store, "bob")
    meet = meeting()

    def demote(actor, name):
        meet()
        return accounts.set_role(any_store, name, "viewer", actor=actor, roles=roles)

    out = at_once(lambda: demote(ada, "bob"), lambda: demote(bob, "ada"), catch=(AccountError,))
    assert sum(isinstance(o, AccountError) for o in out) == 1, out  # was: both demoted, no usable manager
    assert sorted(r for _, r, _ in _state(any_store)) == ["admin", "admin", "viewer"]


def test_a_principal_read_before_its_demotion_manages_no_account(any_store, roles):
    for name in ("ada", "bob", "carol"):
        add_user(any_store, name, "admin", actor="setup", roles=roles)
    ada, bob = _token(any_store, "ada"), _token(any_store, "bob")
    accounts.set_role(any_store, "bob", "viewer", actor=ada, roles=roles)  # while bob's request was in flight
    for change in (lambda: accounts.set_role(any_store, "carol", "viewer", actor=bob, roles=roles),
                   lambda: accounts.disable_user(any_store, "ada", actor=bob, roles=roles),
                   lambda: accounts.set_password(any_store, "carol", "taken over!", actor=bob),
                   lambda: add_user(any_store, "mal", "admin", actor=bob, roles=roles),
                   lambda: create_token(any_store, "carol", actor=bob)):
        with pytest.raises(AccountError, match=r"bob \(admin\) may not manage accounts: .* \(now viewer\)"):
            change()
    assert _state(any_store) == [("ada", "admin", False), ("bob", "viewer", False), ("carol", "admin", False)]
    assert accounts.list_tokens(any_store, "carol") == []


# --- 2. per-analyst figures are a lead's --------------------------------------------------------

@pytest.fixture
def decided(sqlite_store, taxonomy, queue_config):
    from labeling import decisions as DEC
    from labeling.cases import build_cases
    from labeling.claims import next_case

    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(sqlite_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9},
                                        {"id": "s2", "label": "scam", "p": 0.8}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    for who, minutes in (("ann", 10), ("bob", 20)):
        case = next_case(sqlite_store, who, "fraud", now=T0 + dt.timedelta(minutes=minutes), config=cfg)
        DEC.decide(sqlite_store, taxonomy, case["id"], who, "scam", now=T0 + dt.timedelta(minutes=minutes + 5),
                   config=cfg)
    return sqlite_store, cfg


def test_per_analyst_kpis_need_analyst_quality(decided, roles):
    from evaluation.ops import ops_kpis

    store, cfg = decided
    lead = ops_kpis(store, now=T0 + dt.timedelta(hours=1), config=cfg, actor=Principal("lea", "lead"))
    assert lead["resolved_per_analyst"] == {"ann": 1, "bob": 1} and lead["resolved_per_analyst_refused"] is None
    for who in (Principal("ann", "analyst"), Principal("vic", "viewer"), Principal("eve", "engineer"),
                Principal("lea", "lead", scopes=("read",)), None):
        k = ops_kpis(store, now=T0 + dt.timedelta(hours=1), config=cfg, actor=who)
        assert k["resolved_per_analyst"] is None and "analyst_quality" in k["resolved_per_analyst_refused"]
        team = ("decisions", "backlog", "sla", "median_minutes_to_resolution")
        assert {x: k[x] for x in team} == {x: lead[x] for x in team}  # team totals for everyone


class _App:
    def __init__(self, store, cfg, users):
        self._s, self._c, self._u = store, cfg, users

    def store(self):
        return self._s

    def queues(self):
        return self._c

    def has_users(self):
        return self._u

    def roles(self):
        return None


def test_the_operations_tab_shows_per_analyst_figures_to_leads_only(decided, roles):
    from test_ui_tabs_fixes import _blocks_fns
    from workbench.ui.operations import build_operations_tab

    store, cfg = decided
    add_user(store, "ada", "admin", actor="setup", roles=roles)
    add_user(store, "vic", "viewer", actor="setup", roles=roles)
    add_user(store, "lea", "lead", actor="setup", roles=roles)

    def analysts(users: bool, name: str | None):
        kpis = _blocks_fns(lambda who, tab: build_operations_tab(_App(store, cfg, users), tab))["kpis"][0]
        return kpis(SimpleNamespace(username=name))[4]

    assert analysts(True, "vic")["value"] == []  # was: ann 1, bob 1 for any viewer
    assert "leads only" in analysts(True, "vic")["label"]
    assert analysts(True, "lea")["value"] == [["ann", 1], ["bob", 1]]
    assert analysts(False, None)["value"] == [["ann", 1], ["bob", 1]]  # no accounts: the local admin


# --- 3. a password is one someone can type at the sign-in page ---------------------------------

@pytest.mark.parametrize("password", ["secret-pw1\r", "secret\x00pw1", "secret\tpw1", "secret\u200bpw1", " " * 8,
                                      "\ud800" * 8])
def test_a_password_nobody_could_type_is_refused_in_one_line(any_store, roles, password):
    add_user(any_store, "ada", "admin", actor="setup", roles=roles, password="correct horse")
    for change in (lambda: add_user(any_store, "bob", "analyst", actor="ada", roles=roles, password=password),
                   lambda: accounts.set_password(any_store, "ada", password, actor="ada")):
        with pytest.raises(AccountError, match=r"^a password must (not|be) [^\n]*$"):
            change()  # was: stored (a CR, a NUL, ...: no sign-in ever matches it) or a UnicodeEncodeError
    assert accounts.verify_password(any_store, "ada", "correct horse").name == "ada"
    assert [u["name"] for u in accounts.list_users(any_store)] == ["ada"]


def test_a_password_from_a_windows_line_signs_in(sqlite_store, roles, monkeypatch):
    import io
    import sys

    from workbench.cli.accounts import _read_password

    add_user(sqlite_store, "ada", "admin", actor="setup", roles=roles)
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret-pw1\r\n"))  # printf 'secret-pw1\r\n' | ... set-password
    accounts.set_password(sqlite_store, "ada", _read_password(True), actor="ada")
    assert accounts.verify_password(sqlite_store, "ada", "secret-pw1").name == "ada"  # was: None, for ever


def test_a_sign_in_with_a_lone_surrogate_is_a_wrong_password(sqlite_store, roles):
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=roles, password="correct horse")
    assert accounts.verify_password(sqlite_store, "ada", "\ud800 horse") is None  # was: UnicodeEncodeError
    assert accounts.verify_password(sqlite_store, "ada", "correct horse").name == "ada"


def test_label_error_counts_per_analyst_need_analyst_quality(tmp_path):
    """`workbench label-errors counts` showed each analyst's corrected / confirmed counts to any
    token that can read; like the Operations tab's per-analyst figures, they are for leads."""
    from test_accounts import _cli

    ada = json.loads(_cli(tmp_path, "users", "add", "ada", "--role", "admin", "--json").output)["token"]["token"]
    res = _cli(tmp_path, "users", "add", "vic", "--role", "viewer", "--json", token=ada)
    assert res.exit_code == 0, res.output
    res = _cli(tmp_path, "tokens", "create", "vic", "--json", token=ada)
    vic = json.loads(res.stdout)["token"]
    refused = _cli(tmp_path, "label-errors", "counts", "--json", token=vic)
    assert refused.exit_code != 0 and "analyst_quality" in refused.output, refused.output
    assert len(refused.output.strip().splitlines()) == 1
    allowed = _cli(tmp_path, "label-errors", "counts", "--json", token=ada)
    assert allowed.exit_code == 0 and json.loads(allowed.stdout) == {}, allowed.output
