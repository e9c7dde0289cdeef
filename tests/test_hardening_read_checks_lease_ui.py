"""Read checks in the core, and a lease clock that does not trust the browser's clock.

`list_notes` and `list_quarantine` left the `read` permission to their command-line callers: a
new caller (the HTTP API, the UI, a plugin) that forgot `require_read` listed notes and quarantined
rows to a token scoped to `ingest` only. They now take the principal and check it themselves.

The Review screen's lease clock sent the hold's absolute end and the page counted down against
its own clock: a laptop 5 minutes fast showed a live hold as lapsed, one 5 minutes slow a lapsed
hold as live for 5 more minutes. The server now sends the seconds left (`data-left`) and the page
counts down from when it received them.
"""
from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from core.accounts import add_user, create_token, principal_for_token
from core.hooks import PermissionDenied
from core.quarantine import list_quarantine
from core.schema import utcnow
from labeling.notes import add_note, list_notes
from workbench.ui.assets import SHORTCUTS_JS
from workbench.ui.render import lease_html

from test_queue_support import add_scored


def _principals(store, roles):
    """(a token scoped to `ingest` only, a viewer): the first reads nothing, the second may read."""
    add_user(store, "ada", "admin", actor="setup", roles=roles)  # the first account manages accounts
    add_user(store, "eng", "engineer", actor="setup", roles=roles)
    add_user(store, "vic", "viewer", actor="setup", roles=roles)
    ingest_only = principal_for_token(store, create_token(store, "eng", actor="setup", scopes=["ingest"])["token"])
    viewer = principal_for_token(store, create_token(store, "vic", actor="setup")["token"])
    return ingest_only, viewer


def test_list_notes_checks_read_in_the_core(any_store, taxonomy, roles):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    add_note(any_store, "item", "a", "same lure as last week", "ann")
    ingest_only, viewer = _principals(any_store, roles)
    with pytest.raises(PermissionDenied, match=r"^eng \(engineer\) may not read item a: needs permission 'read'"):
        list_notes(any_store, "item", "a", principal=ingest_only)
    with pytest.raises(PermissionDenied, match="needs permission 'read'"):  # refused before the lookup: no "no item"
        list_notes(any_store, "item", "no-such-item", principal=ingest_only)
    assert [n["body"] for n in list_notes(any_store, "item", "a", principal=viewer)["notes"]] == ["same lure as last week"]
    with pytest.raises(TypeError):  # no principal: no listing (never silently allowed)
        list_notes(any_store, "item", "a")


def test_list_quarantine_checks_read_in_the_core(any_store, roles):
    any_store.quarantine_path.write_text('{"file": "a.csv", "line": 2, "field": "text", "reason": "missing text", '
                                         '"quarantined_at": "2000-01-01T00:00:00", "row": {"text": "x"}}\n',
                                         encoding="utf-8")
    ingest_only, viewer = _principals(any_store, roles)
    with pytest.raises(PermissionDenied, match=r"^eng \(engineer\) may not read quarantine: needs permission 'read'"):
        list_quarantine(any_store, 30, principal=ingest_only)
    assert list_quarantine(any_store, 30, principal=viewer)["records"] == 1
    with pytest.raises(TypeError):
        list_quarantine(any_store, 30)


class _Settings:
    lease_warning_seconds = 120


NOW = dt.datetime(2026, 12, 7, 9, 0, 0)


def _packet(expires):
    return {"case": {"id": 7, "lease_expires_at": expires}}


def _attr(html, name):
    m = re.search(rf"{name}='([^']*)'", html)
    assert m, (name, html)
    return m.group(1)


def test_lease_html_sends_the_seconds_left_as_the_server_sees_them():
    live = lease_html(_packet(NOW + dt.timedelta(minutes=5)), _Settings(), now=NOW)
    assert float(_attr(live, "data-left")) == 300.0
    end = NOW + dt.timedelta(minutes=5)
    assert int(_attr(live, "data-expires")) == int(end.replace(tzinfo=dt.timezone.utc).timestamp()) * 1000  # kept
    assert _attr(live, "data-warn") == "120" and _attr(live, "data-case") == "7"
    iso = lease_html(_packet((NOW + dt.timedelta(seconds=90.5)).isoformat()), _Settings(), now=NOW)
    assert float(_attr(iso, "data-left")) == 90.5
    aware = lease_html(_packet("2026-12-07T10:01:00+01:00"), _Settings(), now=NOW)  # 09:01 UTC
    assert float(_attr(aware, "data-left")) == 60.0
    lapsed = lease_html(_packet(NOW - dt.timedelta(seconds=30)), _Settings(), now=NOW)
    assert float(_attr(lapsed, "data-left")) == 0.0
    assert _attr(lease_html(None, _Settings()), "data-left") == ""


def _page(browser_page, skew_ms, lease):
    """A page with the Review tab's script and `lease`, on a computer whose clock is `skew_ms` off."""
    skew = f"<script>(() => {{ const real = Date.now; Date.now = () => real() + ({skew_ms}); }})();</script>"
    browser_page.set_content(f"<html><body>{skew}{lease}{SHORTCUTS_JS}</body></html>")
    off = browser_page.evaluate("() => Date.now() - (performance.timeOrigin + performance.now())")
    assert abs(off - skew_ms) < 60_000  # the page's clock is off by the skew
    browser_page.wait_for_selector("#wb-lease .wb-clock", timeout=10000)
    return browser_page


def test_a_fast_browser_clock_shows_a_live_hold_as_live(browser_page):
    lease = lease_html(_packet(utcnow() + dt.timedelta(minutes=5)), _Settings())
    page = _page(browser_page, 5 * 60 * 1000, lease)  # 5 minutes fast: the old clock said "lapsed"
    assert page.get_attribute("#wb-lease", "class") == "wb-lease"
    assert re.search(r": (4:[45]\d|5:00) left", page.inner_text("#wb-lease")), page.inner_text("#wb-lease")
    # A renewal's new numbers restart the count from when they arrived.
    page.evaluate("() => { const el = document.getElementById('wb-lease');"
                  " el.setAttribute('data-expires', String(Number(el.getAttribute('data-expires')) + 1));"
                  " el.setAttribute('data-left', '200'); }")
    page.wait_for_function("() => /: 3:[12]\\d left/.test(document.getElementById('wb-lease').innerText)",
                           timeout=10000)


def test_a_slow_browser_clock_shows_a_lapsed_hold_as_lapsed(browser_page):
    lease = lease_html(_packet(utcnow() + dt.timedelta(seconds=2)), _Settings())
    page = _page(browser_page, -5 * 60 * 1000, lease)  # 5 minutes slow: the old clock said "5:02 left"
    page.wait_for_selector("#wb-lease.wb-lost", timeout=15000)
    assert "the hold lapsed" in page.inner_text("#wb-lease")


def test_a_quarantine_that_cannot_be_opened_does_not_keep_its_lock(tmp_path):
    """A quarantine the writer cannot open (here a folder in its place; a full disk or a read-only
    mount alike) raised out of `__enter__` with the shared lock still held: `__exit__` never runs,
    so a purge in the same process (the UI server) waited and said "an ingest is writing" for as
    long as the failed writer was not yet collected."""
    import fcntl

    from core.quarantine import QuarantineWriter

    path = tmp_path / "quarantine.jsonl"
    path.mkdir()
    writer = QuarantineWriter(path)
    with pytest.raises(IsADirectoryError) as failed:
        writer.__enter__()
    fd = os.open(f"{path}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the failed writer holds it
    finally:
        os.close(fd)
    assert failed.value is not None and writer is not None  # both still referenced: no collection freed it
