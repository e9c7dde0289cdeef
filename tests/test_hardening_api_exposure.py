"""What the HTTP API and the CLI's `--json` expose, attacked as a hostile source or a careless reader:

1. Revealing an item without a case through `GET /api/v1/items/{id}?reveal=true` was audited and
   never counted toward the reader's exposure: 30 severe texts read that way left it at 0, so the
   budget was bypassed. Every door (API, Review screen, `cases show --reveal`) now counts a reveal
   once per reader, through `wellbeing.record_reveal`.
2. `--json` output passed C1 controls (a CSI clears the screen), DEL, bidi overrides and isolates,
   line separators and tag characters raw to the terminal (`ensure_ascii=False` escapes only C0).
3. An item's metadata (extra source columns, free text such as a reporter's comment quoting the
   text) went out unmasked in the API's item view while its text was masked.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

import labeling.packets as packets  # noqa: E402
from core.accounts import add_user, create_token  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.json_text import inert_json  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.principals import Principal  # noqa: E402
from core.schema import AuditEvent  # noqa: E402
from core.store import open_store  # noqa: E402
from labeling.cases import build_cases  # noqa: E402
from labeling.masking import mask_text  # noqa: E402
from labeling.packets import reveal_text, show_case  # noqa: E402
from labeling.wellbeing import exposure  # noqa: E402
from test_models_fixtures import add_items  # noqa: E402
from test_queue_support import add_scored, case_ids, quiet  # noqa: E402
from test_web_session import served as served_fixture  # noqa: E402 (the fixture)
from workbench.api import create_app, item_view  # noqa: E402
from workbench.cli import cli  # noqa: E402
from workbench.context import AppContext  # noqa: E402

HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
BENIGN = {"benign": 0.97, "spam": 0.01, "scam": 0.01, "hate": 0.005, "harassment": 0.005}
ANN = Principal("ann", "analyst")
served = served_fixture  # the real server's fixture, under the name the test asks for


@pytest.fixture
def api(any_store):
    """The API over SQLite and PostgreSQL, with an admin first, an analyst (ann) and a viewer (vic)."""
    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("ann", "analyst"), ("vic", "viewer")):
        add_user(any_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = {"Authorization": f"Bearer {create_token(any_store, name, actor='setup')['token']}"}
    ctx = AppContext(store=any_store)
    client = TestClient(create_app(ctx))
    client.tokens, client.ctx = tokens, ctx
    return client


def _reveal_events(store, item_id):
    with store.read() as conn:
        return conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "text.reveal",
                                                             AuditEvent.entity_id == item_id)).scalars().all()


# -- 1. every reveal counts, a case-less item's too --------------------------------------------------
def test_an_api_reveal_of_an_item_without_a_case_counts_toward_exposure(api, any_store, queue_config):
    """Every door counts a reveal once per reader: the API (a case-less item's too), the Review
    screen's Reveal (`reveal_text`) and `cases show --reveal` (`show_case(reveal_by=...)`)."""
    ctx = api.ctx
    add_scored(any_store, ctx.taxonomy(), [{"id": i, "label": "hate", "scores": HATE, "text": f"vile {i}"}
                                           for i in ("screen", "cli")])
    build_cases(any_store, ctx.taxonomy(), quiet(queue_config), progress=False)
    cases = case_ids(any_store)
    reveal_text(any_store, cases["screen"], ANN, taxonomy=ctx.taxonomy(), settings=ctx.review())
    show_case(any_store, cases["cli"], ctx.review(), reveal_by=ANN, taxonomy=ctx.taxonomy())
    add_scored(any_store, ctx.taxonomy(), [{"id": f"v{i}", "label": "hate", "scores": HATE, "text": f"vile {i}"}
                                           for i in range(3)]
               + [{"id": "fine", "label": "benign", "scores": BENIGN, "text": "see you at lunch"}])  # no cases
    for item_id in ("v0", "v1", "v2", "v2", "fine", "screen", "cli"):  # a second read counts once
        r = api.get(f"/api/v1/items/{item_id}?reveal=true", headers=api.tokens["ann"])
        assert r.status_code == 200 and r.json()["masked"] is False, r.text
    seen = exposure(any_store, ANN, ctx.review())
    assert (seen["severe"], seen["revealed"]) == (5, 6)  # hate is P1 (severe); a benign item counts, not as severe
    assert len(_reveal_events(any_store, "v2")) == 2  # each access audited, counted once


def test_an_unscored_item_without_a_case_counts_as_severe(any_store, roles, review_settings):
    ids = add_items(any_store, ["nothing known about this one"], [None])
    ctx = AppContext(store=any_store)
    assert item_view(ctx, ids[0], ANN, reveal=True)["text"] == "nothing known about this one"
    assert exposure(any_store, ANN, review_settings)["severe"] == 1  # unknown content: as masking treats it


# -- 3. metadata is masked with the text -----------------------------------------------------------
META = {"report_text": "reporter says he called me vermin", "reports": 3, "flagged": True,
        "thread": [{"quote": "vermin, all of them"}, 7]}


def test_an_items_metadata_is_masked_with_its_text_until_revealed(api, any_store):
    ctx = api.ctx
    add_scored(any_store, ctx.taxonomy(), [
        {"id": "x", "label": "hate", "scores": HATE, "text": "you vermin people", "meta": META},
        {"id": "ok", "label": "spam", "scores": SPAM, "text": "win a prize", "meta": {"report_text": "spam again"}}])
    shown = api.get("/api/v1/items/x", headers=api.tokens["vic"]).json()
    assert shown["masked"] is True and shown["text"] == mask_text("you vermin people")
    assert shown["metadata"] == {"report_text": mask_text(META["report_text"]), "reports": 3, "flagged": True,
                                 "thread": [{"quote": mask_text("vermin, all of them")}, 7]}
    assert "vermin" not in json.dumps(shown)
    revealed = api.get("/api/v1/items/x?reveal=true", headers=api.tokens["ann"]).json()
    assert revealed["masked"] is False and revealed["metadata"] == META
    plain = api.get("/api/v1/items/ok", headers=api.tokens["vic"]).json()  # not sensitive: as stored
    assert plain["masked"] is False and plain["metadata"] == {"report_text": "spam again"}


def test_over_real_http_a_caseless_reveal_counts_and_metadata_stays_masked(served, sqlite_store):
    srv = served()
    add_scored(sqlite_store, srv.ctx.taxonomy(), [{"id": "x", "label": "hate", "scores": HATE,
                                                   "text": "you vermin people", "meta": META}])
    token = {"Authorization": f"Bearer {create_token(sqlite_store, 'ann', actor='setup')['token']}"}
    status, _, body = srv.req("GET", "/api/v1/items/x", headers=token)
    assert status == 200 and b"vermin" not in body, body
    status, _, body = srv.req("GET", "/api/v1/items/x?reveal=true", headers=token)
    assert status == 200 and json.loads(body)["metadata"] == META
    assert exposure(sqlite_store, Principal("ann", "analyst"), srv.ctx.review())["severe"] == 1


# -- 2. --json output escapes what a terminal would obey -------------------------------------------
HOSTILE = ("Grüße café 東京 \u009b2J \u202eevil\u202c \u2066x\u2069 \u2028 \u2029 \x7f "
           "tag\U000e0041\U000e007f \x1b[31m end")


def test_json_output_escapes_c1_bidi_separators_del_and_tags(tmp_path, taxonomy, queue_config):
    store = open_store(tmp_path / "data")
    add_scored(store, taxonomy, [{"id": "x", "label": "spam", "scores": SPAM, "text": HOSTILE}])
    build_cases(store, taxonomy, quiet(queue_config), progress=False)
    case = case_ids(store)["x"]
    store.dispose()
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "cases", "show", str(case), "--json"])
    assert res.exit_code == 0, res.output
    out = res.stdout.rstrip("\n")
    assert out.isprintable(), [hex(ord(c)) for c in out if not c.isprintable()]
    assert "\\u009b" in out and "\\u202e" in out and "\\udb40\\udc41" in out  # a tag: a surrogate pair
    assert "Grüße café 東京" in out  # letters of any script stay readable
    assert json.loads(out)["item"]["text"] == HOSTILE  # valid JSON, the same data


def test_one_rule_for_cli_json_and_filed_packets():
    data = {"text": HOSTILE, "n": [1, 2.5, None], "lone": "a\ud800b"}
    assert packets.inert_json(data) == inert_json(data, indent=2)
    assert json.loads(inert_json(data)) == data


def test_a_masked_packet_masks_the_items_metadata_with_its_text():
    """The review and escalation packets (`labeling.masking.mask_packet`) showed
    `metadata.report_text` raw beside the masked text; now masked with it until revealed."""
    from labeling.masking import mask_packet

    packet = {"masked": True, "item": {"id": "x", "text": "you vermin people", "metadata": META}}
    hidden = mask_packet(packet, revealed=False)
    assert "vermin" not in json.dumps(hidden) and hidden["item"]["metadata"]["reports"] == 3
    assert mask_packet(packet, revealed=True)["item"]["metadata"] == META
