"""Refusals outside the HTTP API were not audited (found in review): the API records every 403 as
`permission.denied`, but a signed-in account refused in a web UI tab (`tab_access.check_reader`
and the callbacks that show a PermissionDenied) or a token refused by a command (`cli.common.
user_errors`) left nothing in the log. All three surfaces now record through one function
(`workbench.refusals.audit_refusal`), under one per-principal budget per application context.
"""
from __future__ import annotations

import types

import pytest

pytest.importorskip("gradio")
from click.testing import CliRunner  # noqa: E402
from sqlalchemy import select  # noqa: E402

from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.hooks import hookimpl, pm  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.schema import AuditEvent  # noqa: E402
from workbench.context import AppContext  # noqa: E402
from workbench.refusals import ACTION  # noqa: E402

from test_ui_tabs_fixes import _blocks_fns  # noqa: E402


class _NoCampaignsForViewers:
    """A plugin refusing a viewer the campaign list (as a site's policy may): the UI's refusal."""

    @hookimpl
    def permission_allowed(self, actor, action, resource):
        return False if getattr(actor, "role", None) == "viewer" and resource == "campaigns" else None


@pytest.fixture
def no_campaigns():
    plugin = _NoCampaignsForViewers()
    pm.register(plugin)
    yield plugin
    pm.unregister(plugin)


def _events(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == ACTION)
                                              .order_by(AuditEvent.id)).mappings()]


def _accounts(store) -> dict[str, str]:
    roles = load_roles(config_dir())
    add_user(store, "root", "admin", actor="setup", roles=roles)
    add_user(store, "vic", "viewer", actor="setup", roles=roles)
    add_user(store, "ben", "engineer", actor="setup", roles=roles)
    return {"vic": create_token(store, "vic", actor="setup")["token"],
            "bot": create_token(store, "ben", actor="setup", scopes=["ingest"])["token"]}


def _signed_in(name: str):
    return types.SimpleNamespace(username=name, cookies={})


def _campaign_table(app):
    from workbench.ui.campaigns import build_campaigns_tab

    return _blocks_fns(lambda who, tab: build_campaigns_tab(app, tab, who))["campaign_table"][0]


def test_a_ui_callback_refused_for_a_viewer_writes_one_event(any_store, no_campaigns):
    _accounts(any_store)
    table = _campaign_table(AppContext(store=any_store))
    rows = table("", _signed_in("vic"))
    assert "may not read campaigns" in rows[0][3]  # the answer is the same one line
    events = _events(any_store)
    assert len(events) == 1, events  # was 0: the UI's refusals were not audited
    ev = events[0]
    assert (ev["actor"], ev["entity_type"], ev["entity_id"]) == ("vic", "ui", "read campaigns")
    assert "may not read campaigns" in ev["payload"]["detail"] and ev["payload"]["surface"] == "ui"
    assert table("", _signed_in("root")) is not None and len(_events(any_store)) == 1  # allowed: nothing


def test_a_ui_refusal_caught_by_a_callback_is_recorded_for_the_signed_in_principal_only(sqlite_store):
    from core.hooks import PermissionDenied
    from workbench.ui.tab_access import refused

    app = AppContext(store=sqlite_store)
    refused(app, "vic", _signed_in("vic"), "reveal case 1", PermissionDenied("no accounts yet"))
    assert _events(sqlite_store) == []  # a store without accounts: the box's name is nobody's
    _accounts(sqlite_store)
    refused(app, "", _signed_in("vic"), "reveal case 1", ValueError("not a refusal"))
    refused(app, "", _signed_in("ghost"), "reveal case 1", PermissionDenied("unknown user"))
    refused(app, "", _signed_in("vic"), "reveal case 1", PermissionDenied("vic (viewer) may not reveal"))
    assert [(e["actor"], e["entity_id"]) for e in _events(sqlite_store)] == [("vic", "reveal case 1")]


def _cli(store, token):
    from workbench.cli import cli

    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])
    return lambda *args: CliRunner().invoke(cli, [*base, *args], env={"WORKBENCH_TOKEN": token})


def test_a_cli_command_refused_writes_one_event(any_store):
    tokens = _accounts(any_store)
    res = _cli(any_store, tokens["vic"])("users", "add", "eve", "--role", "viewer")
    assert res.exit_code != 0 and "needs permission 'users'" in res.output and "Traceback" not in res.output
    events = _events(any_store)
    assert len(events) == 1, events  # was 0: a command's refusal was one line and nothing more
    ev = events[0]
    assert ev["actor"] == "vic" and ev["entity_type"] == "cli" and ev["entity_id"].endswith("users add")
    assert "needs permission 'users'" in ev["payload"]["detail"] and ev["payload"]["role"] == "viewer"
    res = _cli(any_store, tokens["bot"])("campaigns", "list")  # a token scoped to ingest: `read` refused
    assert res.exit_code != 0
    assert [(e["actor"], e["entity_id"].split()[-2:], e["payload"]["scoped"]) for e in _events(any_store)[1:]] \
        == [("ben", ["campaigns", "list"], True)]
    assert _cli(any_store, tokens["vic"])("campaigns", "list").exit_code == 0 and len(_events(any_store)) == 2


def test_the_budget_applies_across_surfaces(sqlite_store, no_campaigns):
    from fastapi.testclient import TestClient

    from workbench.api import create_app
    from workbench.refusals import PER_MINUTE

    tokens = _accounts(sqlite_store)
    app = AppContext(store=sqlite_store)  # one server: the API and the UI on one context
    client = TestClient(create_app(app), raise_server_exceptions=False)
    table = _campaign_table(app)
    for _ in range(PER_MINUTE - 2):
        r = client.get("/api/v1/items/platform:x?reveal=true", headers={"Authorization": f"Bearer {tokens['vic']}"})
        assert r.status_code == 403
    for _ in range(5):
        assert "may not read campaigns" in table("", _signed_in("vic"))[0][3]
    surfaces = [e["entity_type"] for e in _events(sqlite_store)]
    assert surfaces == ["api"] * (PER_MINUTE - 2) + ["ui"] * 2, surfaces  # the rest of the minute suppressed


def test_a_viewers_appeal_resolution_in_the_appeals_tab_is_audited(sqlite_store):
    """The Appeals tab's Resolve shows a refusal it caught: recorded for the signed-in viewer too."""
    from workbench.ui.appeals import build_appeals_tab

    _accounts(sqlite_store)
    app = AppContext(store=sqlite_store)
    resolve = _blocks_fns(lambda who, tab: build_appeals_tab(app, tab, who))["resolve"][0]
    out = resolve(5, "confirm", "", "", "not theirs", "vic", _signed_in("vic"), None)
    assert out[0].startswith("**Not resolved:**"), out[0]
    events = _events(sqlite_store)
    assert [(e["actor"], e["entity_type"], e["entity_id"]) for e in events] == [("vic", "ui", "resolve_appeal case 5")]
