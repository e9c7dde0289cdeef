"""The Review tab answers every key in one line, whatever the store holds (fourth audit of the
analyst's screen). The tab's callbacks are called directly (no browser), as in
test_hardening_review_screen3:

- a store that failed while the undone case was loaded back, after the undo was saved, was a bare
  "Error" (as if nothing was undone);
- a store that failed at page load (the queue counts) broke the page with a bare "Error";
- `s` or `x` sent twice with the tab's old state answered "Not skipped" / "Not released" and
  cleared the screen, giving the case the first press put on screen back to its queue;
- the queue counts (the page's first line, the counts timer, the "N left" line after a key) were
  shown with no server-side `read` check: on a store with accounts, to a request whose session
  ended;
- `workbench serve --as NAME` was silently ignored on a store with accounts.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core.accounts import add_user
from core.config import config_dir
from core.permissions import load_roles
from core.schema import Case
from test_hardening_cli_ops import _cli, _fake_ui
from test_hardening_review_screen3 import (AHEAD, BUTTONS_ERR, HEADER, PACKET, STATUS, _busy, _claim, _patch_everywhere,
                                           _tab, _text)
from test_review_screen import seed
from test_ui import decisions


@pytest.fixture
def store(any_store, make_scored, taxonomy, queue_config):
    return seed(any_store, make_scored, taxonomy, queue_config)


def _holders(store, *ids) -> dict:
    with store.read() as conn:
        return dict(conn.execute(select(Case.id, Case.claimed_by).where(Case.id.in_(ids))).all())


# -- 1. a store failing after the undo was saved ------------------------------------------------------------

def test_an_undo_whose_case_the_store_fails_to_show_still_says_undone_in_one_line(store, monkeypatch):
    import workbench.ui.review as review

    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    out = fns["confirm"](out[PACKET], None, "alice", "spam", None, None, ahead, str(shown), shown, None)
    assert [d["case_id"] for d in decisions(store)] == [shown]
    monkeypatch.setattr(review, "review_packet", _busy)
    out = fns["undo"](out[PACKET], "alice", "spam", out[AHEAD], str(ahead), ahead, None)
    said = _text(out)
    assert f"Undone: your spam / remove on case {shown}" in said, said[:600]
    assert "the store is busy or unavailable (Exception)" in said and "press n" in said and "secret" not in said
    with store.read() as conn:
        state = conn.execute(select(Case.state, Case.claimed_by).where(Case.id == shown)).one()
    assert tuple(state) == ("claimed", "alice")  # undone: the case is the analyst's again
    monkeypatch.undo()
    again = fns["claim"]("alice", "spam", None, None, None)  # `n` shows it
    assert again[PACKET]["case"]["id"] == shown


# -- 2. a store failing at page load ------------------------------------------------------------------------

def test_a_store_failing_at_page_load_is_one_line(store, monkeypatch):
    fns = _tab(store)
    _patch_everywhere(monkeypatch, "queue_status")
    out = fns["on_load"]("alice", None)
    assert out[0] == "alice" and "the store is busy or unavailable (Exception)" in _text([out[2]])
    assert "secret" not in _text(out)


# -- 3. `s` or `x` sent twice with the tab's old state ------------------------------------------------------

def test_a_skip_sent_twice_keeps_the_next_case_on_screen(store):
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    args = (out[PACKET], "alice", "spam", ahead, str(shown), shown, None)
    first, again = fns["skip_case"](*args), fns["skip_case"](*args)  # the second carries the state from before
    assert first[PACKET]["case"]["id"] == ahead and again[PACKET]["case"]["id"] == ahead, _text(again)[:600]
    assert f"Case {shown} was skipped already (a key sent twice, or another tab)" in _text([again[HEADER]])
    assert "Not skipped" not in _text(again) and _holders(store, ahead)[ahead] == "alice"


def test_a_release_sent_twice_is_no_refusal(store):
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    args = (out[PACKET], "alice", "spam", ahead, str(shown), shown, None)
    first, again = fns["release_case"](*args), fns["release_case"](*args)
    assert first[PACKET] is None and again[PACKET] is None
    assert f"Case {shown} was released already (a key sent twice, or another tab)" in _text(again), _text(again)[:600]
    assert "Not released" not in _text(again) and _text([again[BUTTONS_ERR]]).strip() == ""
    assert _holders(store, shown, ahead) == {shown: None, ahead: None}


def test_a_skip_refused_for_another_reason_still_says_so(store, queue_config):
    from labeling.claims import claim_case, release

    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    release(store, shown, "alice", queue_config)
    claim_case(store, shown, "bob", queue_config)
    said = _text(fns["skip_case"](out[PACKET], "alice", "spam", ahead, str(shown), shown, None))
    assert f"Not skipped: case {shown} is not claimed by alice (it is claimed by bob)" in said, said[:600]


# -- 4. the queue counts need `read` ------------------------------------------------------------------------

def test_queue_counts_are_not_shown_to_a_request_without_a_session(store):
    add_user(store, "boss", "admin", actor="setup", roles=load_roles(config_dir()), password="boss-pass-123")
    fns = _tab(store)
    gone = SimpleNamespace(username=None)  # the session ended while the event waited
    out = fns["claim"]("", "spam", None, "", gone)
    assert "sign in first" in _text([out[STATUS]]) and "left</b>" not in out[STATUS], out[STATUS]
    line, _, choices = fns["refresh_counts"]("alice", "spam", gone)
    assert "sign in first" in _text([line]) and "left</b>" not in line and "left" not in str(choices)
    out = fns["on_load"]("", gone)
    assert "sign in first" in _text([out[2]]) and "left</b>" not in out[2] and "left" not in str(out[1])
    line, _, choices = fns["refresh_counts"]("", "spam", SimpleNamespace(username="boss"))
    assert "left</b>" in line, line


# -- 5. `workbench serve --as` on a store with accounts -----------------------------------------------------

def test_serve_as_on_a_store_with_accounts_is_refused_in_one_line(sqlite_store, monkeypatch):
    served = []
    _fake_ui(monkeypatch, lambda app, **kw: served.append(kw))
    run = _cli(sqlite_store)
    assert run("serve", "--as", "alice").exit_code == 0 and served[0]["analyst"] == "alice"  # no accounts: the name
    add_user(sqlite_store, "boss", "admin", actor="setup", roles=load_roles(config_dir()), password="boss-pass-123")
    res = run("serve", "--as", "alice")
    assert res.exit_code == 2 and len(served) == 1, res.output
    assert "--as" in res.output and "signs in on the page" in res.output
    assert len([line for line in res.output.splitlines() if line.strip() and "Usage" not in line
                and "Try '" not in line]) == 1, res.output
    assert run("serve").exit_code == 0 and served[1]["analyst"] == ""



def test_a_store_failing_on_the_break_button_is_one_line(store, monkeypatch):
    fns = _tab(store)
    _patch_everywhere(monkeypatch, "queue_status")  # the queue list's counts, re-read when the queue switches
    out = fns["to_break"]("alice", None, None, None)
    assert "Switched to a milder queue" in _text(out) and "secret" not in _text(out), _text(out)[:600]
