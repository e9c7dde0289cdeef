"""Who reads which analyst decided (found in review): `GET /api/v1/decisions` and the API's item
view gave every holder of `read` (the enforcement platform's token included) each decision's
reviewer by account name, and the Review tab's context panel showed an analyst which colleague
decided the item and the author's other items. Now a lead (`analyst_quality`), a system principal
and the reviewer themself read the name; everyone else a stable keyed pseudonym
(`labeling.reviewer_names`), the same on every request, that hashing account names cannot undo."""
from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.principals import SYSTEM, Principal  # noqa: E402
from labeling.cases import build_cases  # noqa: E402
from labeling.claims import next_case  # noqa: E402
from labeling.context import case_context  # noqa: E402
from labeling.decisions import decide  # noqa: E402
from labeling.reviewer_names import PREFIX, reviewer_pseudonym  # noqa: E402
from workbench.api import create_app  # noqa: E402
from workbench.context import AppContext  # noqa: E402

import test_context  # noqa: E402
from test_context import _case_of  # noqa: E402
from test_queue_support import add_scored  # noqa: E402

world = test_context.world  # the fixture: ann decided old1, lee corrected it; old1, old2, new by author u9


@pytest.fixture
def feed(any_store, taxonomy, queue_config):
    """Two decisions by bob and one by ann, and an API client with a token per role (plat: the
    platform's token, read and ingest only)."""
    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("lea", "lead"), ("ann", "analyst"), ("vic", "viewer"),
                       ("plat", "engineer"), ("bob", "analyst")):
        add_user(any_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = create_token(any_store, name, actor="setup",
                                    **({"scopes": ["read", "ingest"]} if name == "plat" else {}))["token"]
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(3)])
    build_cases(any_store, taxonomy, cfg, progress=False)
    for who in ("bob", "bob", "ann"):
        case = next_case(any_store, who, "spam", config=cfg)
        decide(any_store, taxonomy, case["id"], who, "spam", config=cfg)
    client = TestClient(create_app(AppContext(store=any_store)))
    return client, tokens, any_store


def _reviewers(client, token):
    r = client.get("/api/v1/decisions", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return [(d["item_id"], d["reviewer"]) for d in r.json()["decisions"]], r.text


def test_the_decision_feed_names_reviewers_to_leads_only(feed):
    client, tokens, store = feed
    named, _ = _reviewers(client, tokens["lea"])
    order = [n for _, n in named]
    assert sorted(order) == ["ann", "bob", "bob"]
    assert _reviewers(client, tokens["ada"])[0] == named
    bob = reviewer_pseudonym(store.audit_key.get(), "bob")
    ann = reviewer_pseudonym(store.audit_key.get(), "ann")
    assert bob.startswith(PREFIX) and bob != ann
    assert hashlib.sha256(b"bob").hexdigest()[:16] not in bob  # keyed, not a bare hash of the name
    for who in ("vic", "plat"):
        seen, raw = _reviewers(client, tokens[who])
        assert [n for _, n in seen] == [{"bob": bob, "ann": ann}[n] for n in order]
        assert '"bob"' not in raw and '"ann"' not in raw
        assert _reviewers(client, tokens[who])[0] == seen  # stable: a platform groups by it
    mine, _ = _reviewers(client, tokens["ann"])  # an analyst reads their own name, not a peer's
    assert [n for _, n in mine] == [{"bob": bob, "ann": "ann"}[n] for n in order]


def test_the_item_view_names_its_reviewer_to_leads_only(feed):
    client, tokens, store = feed
    named, _ = _reviewers(client, tokens["lea"])
    item = next(i for i, n in named if n == "bob")

    def reviewer(who, reveal=""):
        r = client.get(f"/api/v1/items/{item}{reveal}", headers={"Authorization": f"Bearer {tokens[who]}"})
        assert r.status_code == 200, r.text
        return r.json()["decision"]["reviewer"]

    assert reviewer("lea") == "bob" and reviewer("bob") == "bob"
    pseudonym = reviewer_pseudonym(store.audit_key.get(), "bob")
    assert reviewer("vic") == reviewer("plat") == reviewer("ann") == pseudonym
    assert reviewer("ann", "?reveal=true") == pseudonym  # a reveal unmasks the text, not the analyst


def test_the_context_panel_names_peers_to_leads_only(world, taxonomy, review_settings, roles):
    from workbench.ui.context_panel import panel_html

    store, _ = world
    key = store.audit_key.get()
    lee, ann = reviewer_pseudonym(key, "lee"), reviewer_pseudonym(key, "ann")
    old1 = _case_of(store, "old1")
    lead = case_context(store, taxonomy, old1, Principal("lea", "lead"), review_settings)
    assert [h["reviewer"] for h in lead["history"]] == ["ann", "lee"]
    sys = case_context(store, taxonomy, old1, SYSTEM["system"], review_settings)
    assert [h["reviewer"] for h in sys["history"]] == ["ann", "lee"]
    bob = case_context(store, taxonomy, old1, Principal("bob", "analyst"), review_settings)
    assert [h["reviewer"] for h in bob["history"]] == [ann, lee]
    own = case_context(store, taxonomy, old1, Principal("ann", "analyst"), review_settings)
    assert [h["reviewer"] for h in own["history"]] == ["ann", lee]
    # the author's other items: old1's current decision is lee's
    new = _case_of(store, "new")
    peer = case_context(store, taxonomy, new, Principal("bob", "analyst"), review_settings)
    assert {r["item_id"]: r["reviewer"] for r in peer["author"]["recent"]}["old1"] == lee
    assert "by lee" not in panel_html(peer) and f"by {lee}" in panel_html(peer)
    led = case_context(store, taxonomy, new, Principal("lea", "lead"), review_settings)
    assert {r["item_id"]: r["reviewer"] for r in led["author"]["recent"]}["old1"] == "lee"
