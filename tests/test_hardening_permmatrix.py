"""The HTTP API's permission matrix, red-teamed with valid low-privilege accounts (found in review):

- a `permission_allowed` plugin that answered a non-bool (0, "no", "False", [], 1) let every
  request through: `check_permission` only refused on `is False`;
- a plugin that raised was a 500 ("Internal Server Error"), not a one-line refusal;
- a plugin registered `tryfirst` after the role policy and answering True overrode the roles'
  refusal (pluggy's `firstresult`): a viewer revealed masked text;
- `GET /items/{id}/appeals` answered 405 to a client with no token (no route may answer before
  the token is checked), and `POST .../appeals` told a token without `appeal` whether an item
  exists (404) before refusing it (403);
- no 403 was audited: a token probing routes it may not use left nothing in the log.

Every route x principal cell is one row of `MATRIX`; the test lists every wrong cell at once.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core.accounts import add_user, create_token, disable_user, revoke_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.hooks import PermissionDenied, check_permission, hookimpl, pm  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.principals import Principal  # noqa: E402
from core.schema import AuditEvent, Case  # noqa: E402
from workbench.api import create_app  # noqa: E402
from workbench.refusals import ACTION as DENIED  # noqa: E402
from workbench.context import AppContext  # noqa: E402

ITEM = "platform:p1"
BATCH = {"source": "platform", "items": [{"id": "p1", "text": "hello there friend"}]}
# principal -> (account role, token scopes, how the token is spoiled)
PRINCIPALS = {
    "admin": ("admin", None, None), "viewer": ("viewer", None, None), "analyst": ("analyst", None, None),
    "lead": ("lead", None, None), "engineer": ("engineer", None, None),
    "platform": ("engineer", ["ingest", "read"], None),  # the platform's own token
    "readonly": ("analyst", ["read"], None),  # an analyst's read-only token
    "revoked": ("analyst", None, "revoke"), "disabled": ("analyst", None, "disable"),
    "expired": ("analyst", None, "expire"),
}
ALL = tuple(PRINCIPALS) + ("anonymous", "garbage")
NOBODY = ("revoked", "disabled", "expired", "anonymous", "garbage")  # 401 everywhere
READ = ("admin", "viewer", "analyst", "lead", "engineer", "platform", "readonly")
REVEAL = ("admin", "analyst", "lead")
APPEAL = ("admin", "analyst", "lead")
INGEST = ("admin", "engineer", "platform")

# (method, path, body, the principals allowed, status when allowed)
ROUTES = [
    ("POST", "/items?score=false", BATCH, INGEST, 200),
    ("GET", f"/items/{ITEM}", None, READ, 200),
    ("GET", f"/items/{ITEM}?reveal=true", None, REVEAL, 200),
    ("GET", "/items/platform:nope", None, READ, 404),
    ("GET", "/items/platform:nope?reveal=true", None, REVEAL, 404),  # 403 first: no existence oracle
    ("POST", f"/items/{ITEM}/appeals", {"reason": "it was my bank"}, APPEAL, 400),  # no decision to appeal
    ("POST", "/items/platform:nope/appeals", {"reason": "x"}, APPEAL, 404),  # 403 first: no existence oracle
    ("GET", f"/items/{ITEM}/appeals", None, tuple(p for p in ALL if p not in NOBODY), 405),
    ("GET", "/decisions?after=0&limit=5", None, READ, 200),
    ("GET", "/jobs/rescore", None, READ, 200),
    ("GET", "/jobs/retrain", None, READ, 200),
]
MATRIX = [(m, path, body, who, (ok if who in allowed else 401 if who in NOBODY else 403))
          for m, path, body, allowed, ok in ROUTES for who in ALL]


def _api(store) -> TestClient:
    """A TestClient as a client sees the server (an exception is its 500, not a raise here),
    with one token per principal and the item `ITEM` stored."""
    roles = load_roles(config_dir())
    add_user(store, "root", "admin", actor="setup", roles=roles)
    tokens = {"garbage": "wbt_not-a-token"}
    for who, (role, scopes, spoil) in PRINCIPALS.items():
        add_user(store, who, role, actor="setup", roles=roles)
        past = dt.datetime(2020, 1, 1) if spoil == "expire" else None
        made = create_token(store, who, actor="setup", scopes=scopes, now=past,
                            expires_days=1 if spoil == "expire" else None)
        tokens[who] = made["token"]
        if spoil == "revoke":
            revoke_token(store, made["id"], actor="setup", roles=roles)
        if spoil == "disable":
            disable_user(store, who, actor="setup", roles=roles)
    client = TestClient(create_app(AppContext(store=store)), raise_server_exceptions=False)
    client.tokens = tokens
    assert client.post("/api/v1/items?score=false", json=BATCH, headers=_auth(client, "engineer")).status_code == 200
    return client


def _auth(client: TestClient, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[who]}"} if who in client.tokens else {}


def _call(client: TestClient, method: str, path: str, body, who: str):
    return client.request(method, "/api/v1" + path, json=body, headers=_auth(client, who))


def _denials(store, who: str) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == DENIED, AuditEvent.actor == who)).scalar_one()


def test_every_route_and_principal_answers_its_cell_and_every_403_is_audited(any_store, monkeypatch):
    from workbench import refusals

    every = refusals.RefusalBudget(per_minute=10_000)  # every cell counted
    monkeypatch.setattr(refusals, "budget_for", lambda app: every)
    client = _api(any_store)
    wrong = []
    for method, path, body, who, want in MATRIX:
        before = _denials(any_store, who)
        r = _call(client, method, path, body, who)
        detail = r.json().get("detail", "") if r.headers.get("content-type", "").startswith("application/json") else ""
        if r.status_code != want:
            wrong.append(f"{method} {path} as {who}: {r.status_code} (want {want}) {str(detail)[:80]}")
        elif want in (401, 403, 404) and (not isinstance(detail, str) or "\n" in detail or not detail):
            wrong.append(f"{method} {path} as {who}: {want} without a one-line detail: {detail!r}")
        elif (_denials(any_store, who) - before) != (1 if want == 403 else 0):
            wrong.append(f"{method} {path} as {who}: {want} audited {_denials(any_store, who) - before} times")
    assert not wrong, f"{len(wrong)} wrong cells:\n" + "\n".join(wrong)


def test_a_refusal_event_names_route_and_permission_on_one_line(sqlite_store):
    client = _api(sqlite_store)
    assert _call(client, "GET", f"/items/{ITEM}%00\u202e?reveal=true", None, "viewer").status_code == 403
    with sqlite_store.read() as conn:
        ev = conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == DENIED)).mappings().one()
    assert ev["actor"] == "viewer" and ev["entity_type"] == "api" and ev["entity_id"].startswith("GET ")
    assert "\x00" not in ev["entity_id"] and "needs permission 'reveal'" in ev["payload"]["detail"]
    assert ev["payload"]["role"] == "viewer" and "\n" not in ev["payload"]["detail"]


class _Answer:
    """A `permission_allowed` plugin answering `value` (raising it when it is an exception)."""

    def __init__(self, value) -> None:
        self.value = value

    @hookimpl
    def permission_allowed(self, actor, action, resource):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


class _GrantFirst:
    """A plugin asked before the role policy (tryfirst, registered later) that allows everything."""

    @hookimpl(tryfirst=True)
    def permission_allowed(self, actor, action, resource):
        return True


@pytest.fixture
def plugin():
    made = []

    def register(p):
        pm.register(p)
        made.append(p)
        return p

    yield register
    for p in made:
        if pm.is_registered(p):
            pm.unregister(p)


HOOK_ANSWERS = [  # (the plugin's answer, the viewer's GET of an item: status)
    (None, 200), (True, 200), (False, 403), (0, 403), (1, 403), ("no", 403), ("False", 403), ([], 403),
    (RuntimeError("db at postgres://user:pw@10.0.0.1 down\nTraceback (most recent call last)"), 403),
    (KeyError("actor"), 403),
]


def test_a_plugin_answering_anything_but_a_bool_or_raising_fails_closed(sqlite_store, plugin):
    client = _api(sqlite_store)
    wrong = []
    for value, want in HOOK_ANSWERS:
        p = plugin(_Answer(value))
        try:
            r = _call(client, "GET", f"/items/{ITEM}", None, "viewer")
        finally:
            pm.unregister(p)
        detail = str(r.json().get("detail", "")) if r.headers.get("content-type", "").startswith("application/json") else r.text
        if r.status_code != want:
            wrong.append(f"plugin answering {value!r}: {r.status_code} (want {want}) {detail[:80]}")
        elif want == 403 and ("\n" in detail or "Traceback" in detail or "postgres://" in detail
                              or not detail.startswith("viewer (viewer) may not read")):
            wrong.append(f"plugin answering {value!r}: detail {detail[:120]!r}")
    assert not wrong, "\n".join(wrong)


def test_a_plugin_allowing_first_never_overrides_the_roles_refusal(sqlite_store, plugin):
    client = _api(sqlite_store)
    plugin(_GrantFirst())
    r = _call(client, "GET", f"/items/{ITEM}?reveal=true", None, "viewer")
    assert r.status_code == 403 and "needs permission 'reveal'" in r.json()["detail"]
    assert _call(client, "POST", "/items?score=true", BATCH, "analyst").status_code == 403
    with pytest.raises(PermissionDenied, match="needs permission 'users'"):
        check_permission(Principal("ann", "analyst", "user"), "users", "accounts")


def test_a_wrapper_observes_and_a_raising_plugin_is_a_one_line_refusal_in_process(plugin, roles):
    seen = []

    class Watch:
        @hookimpl(wrapper=True)
        def permission_allowed(self, actor, action, resource):
            seen.append(action)
            return (yield)

    plugin(Watch())
    check_permission(Principal("ann", "analyst", "user"), "decide", "case 1")  # a wrapper decides nothing
    plugin(_Answer(ValueError("secret internals\nmore")))
    with pytest.raises(PermissionDenied) as err:
        check_permission("a trusted caller", "decide", "case 1")
    assert "\n" not in str(err.value) and "secret internals" not in str(err.value)
    assert "_Answer failed (ValueError)" in str(err.value)


def test_an_appeal_naming_another_items_decision_files_nothing(sqlite_store):
    from test_api import _decide

    client = _api(sqlite_store)
    client.post("/api/v1/items?score=false", json={"source": "platform", "items": [{"id": "p2", "text": "a prize"}]},
                headers=_auth(client, "engineer"))
    ctx = AppContext(store=sqlite_store)
    mine, theirs = _decide(ctx, ITEM), _decide(ctx, "platform:p2")
    with sqlite_store.read() as conn:
        cases = conn.execute(select(func.count()).select_from(Case)).scalar_one()
    assert mine["id"] != theirs["id"]
    r = _call(client, "POST", f"/items/{ITEM}/appeals", {"reason": "x", "decision_id": theirs["id"]}, "analyst")
    assert r.status_code == 400 and "is not item" in r.json()["detail"]
    with sqlite_store.read() as conn:
        assert conn.execute(select(func.count()).select_from(Case)).scalar_one() == cases


HOSTILE = [  # (method, path, body or raw bytes, status): as an analyst, who may read, reveal, appeal
    ("GET", "/decisions?after=-1", None, 422), ("GET", f"/decisions?after={2**64}", None, 422),
    ("GET", "/decisions?after=%D9%A1", None, 422), ("GET", "/decisions?limit=%EF%BC%91", None, 422),
    ("GET", "/decisions?limit=0", None, 422), ("GET", "/items/-1", None, 404), ("GET", "/items/%D9%A1%D9%A2", None, 404),
    ("GET", "/items/%00", None, 404), ("GET", "/items/" + "9" * 5000, None, 404),
    ("GET", f"/items/{ITEM}?reveal=%D9%A1", None, 422),
    ("GET", "/items/a%0Ab" + "9" * 5000, None, 404),
    ("POST", f"/items/{ITEM}/appeals", {"reason": "x", "decision_id": -1}, 422),
    ("POST", f"/items/{ITEM}/appeals", {"reason": "x", "decision_id": "\u0661"}, 422),
    ("POST", f"/items/{ITEM}/appeals", {"reason": "x", "decision_id": 2**70}, 400),
    ("POST", f"/items/{ITEM}/appeals", b'{"reason": "x", "decision_id": ' + b"9" * 5000 + b"}", 400),
    ("POST", f"/items/{ITEM}/appeals", b"[" * 100_000, 400),
    ("POST", f"/items/{ITEM}/appeals", b'{"reason": "x", "reason": "y"}', 422),
    ("POST", f"/items/{ITEM}/appeals", [1], 422), ("POST", f"/items/{ITEM}/appeals", {"reason": 5}, 422),
]


def test_a_refusal_naming_a_hostile_item_id_is_one_short_line(sqlite_store):
    client = _api(sqlite_store)
    r = _call(client, "GET", "/items/a%1B[2J%E2%80%AE" + "9" * 5000 + "?reveal=true", None, "viewer")
    detail = r.json()["detail"]
    assert r.status_code == 403, detail[:200]
    assert "\n" not in detail and "\x1b" not in detail and len(detail) < 400
    assert detail.endswith("needs permission 'reveal' (configs/roles.yaml)")


def test_malformed_bodies_and_path_params_are_one_line_client_errors(sqlite_store):
    client = _api(sqlite_store)
    wrong = []
    for method, path, body, want in HOSTILE:
        kw = {"content": body, "headers": {**_auth(client, "analyst"), "content-type": "application/json"}} \
            if isinstance(body, bytes) else {"json": body, "headers": _auth(client, "analyst")}
        r = client.request(method, "/api/v1" + path, **kw)
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else r.text
        if r.status_code != want or not isinstance(detail, str) or "\n" in detail or len(detail) > 600:
            wrong.append(f"{method} {path[:60]} {str(body)[:40]}: {r.status_code} (want {want}) {str(detail)[:80]!r}")
    assert not wrong, "\n".join(wrong)


def test_an_oversize_body_is_a_413_and_a_small_anonymous_one_a_401(sqlite_store, monkeypatch):
    import workbench.api as API

    monkeypatch.setattr(API, "MAX_BODY_BYTES", 2000)
    client = _api(sqlite_store)
    big = json.dumps({"source": "platform", "items": [{"id": i, "text": "x" * 50} for i in range(100)]})
    assert client.post("/api/v1/items", json=BATCH).status_code == 401
    r = client.post("/api/v1/items", content=big, headers={**_auth(client, "viewer"), "content-type": "application/json"})
    assert r.status_code == 413 and "MAX_BODY_BYTES" in r.json()["detail"]


def test_one_principals_refusals_are_recorded_at_most_per_minute_the_rest_counted(sqlite_store, monkeypatch):
    """A token looping over refused routes grew the audit log (and queued on its chain lock) without
    bound: at most PER_MINUTE of one principal's a minute, the next recorded says how many were left out."""
    from workbench import refusals

    clock = [0.0]
    budget = refusals.RefusalBudget(per_minute=3, clock=lambda: clock[0])
    monkeypatch.setattr(refusals, "budget_for", lambda app: budget)
    client = _api(sqlite_store)
    for _ in range(8):
        assert _call(client, "GET", f"/items/{ITEM}?reveal=true", None, "viewer").status_code == 403
    assert _denials(sqlite_store, "viewer") == 3  # was 8: one event per refusal, however many
    clock[0] = 61.0
    assert _call(client, "GET", f"/items/{ITEM}?reveal=true", None, "viewer").status_code == 403
    with sqlite_store.read() as conn:
        last = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == DENIED)
                            .order_by(AuditEvent.id.desc())).scalars().first()
    assert _denials(sqlite_store, "viewer") == 4 and last["suppressed"] == 5
