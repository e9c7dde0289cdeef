"""Analysts' names only to leads, everywhere (found in review, after the decision feed's fix):

1. every webhook (`decision.created`, `.corrected`, `campaign.decided`, `appeal.resolved`) pushed
   each decision's `reviewer` by account name to the enforcement platform; now the outbox stores
   the stable pseudonym (`core.reviewer_pseudonym`, the rule moved down to core);
2. `workbench audit log` needed no permission at all: any token (a viewer's, the platform's) listed
   who decided, revealed, escalated what; now it needs `analyst_quality`, a lead's right;
3. `cases show`, `cases list`, `appeals list`, `next` and `items --json` named peers (`claimed_by`
   of a decided case is its decider, tying a pseudonym to its name through the case id; decisions,
   escalations, appeals); `notes` named each note's author. Now a peer reads the pseudonym, an
   analyst their own name, a lead every name.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.accounts import add_user, create_token
from core.config import config_dir
from core.outbox import event_body
from core.permissions import load_roles
from core.principals import Principal
from core.reviewer_pseudonym import pseudonymous_payload
from core.schema import OutboxEvent
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.notes import add_note, list_notes, recent_notes
from labeling.reviewer_names import name_case_view, reviewer_namer, reviewer_pseudonym
from workbench.cli import cli

from test_queue_support import add_campaign, add_scored

LEA = Principal("lea", "lead")


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _events(store):
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(OutboxEvent.__table__).order_by(OutboxEvent.id)).mappings()]


def test_every_webhook_carries_the_reviewers_pseudonym_never_the_name(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "a1", "label": "scam", "p": 0.9}])
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ("m1", "m2")])
    add_campaign(any_store, ["m1", "m2"])
    build_cases(any_store, taxonomy, cfg, progress=False)
    c = next_case(any_store, "annika", "fraud", config=cfg)
    [d1] = DEC.decide(any_store, taxonomy, c["id"], "annika", "scam", config=cfg)["decision_ids"]
    DEC.correct(any_store, taxonomy, d1, "leandra", "spam", "not a scam", action="label")
    camp = next_case(any_store, "leandra", "campaigns", config=cfg)
    DEC.decide(any_store, taxonomy, camp["id"], "leandra", "scam", config=cfg)
    ap = APP.appeal(any_store, "m2", "owner", "a real raffle", taxonomy, config=cfg)
    APP.resolve_appeal(any_store, taxonomy, ap["id"], "bobbie", "reverse", "licensed", label="spam",
                       action="label", config=cfg)
    events = _events(any_store)
    assert [e["event_type"] for e in events] == ["decision.created", "decision.corrected", "campaign.decided",
                                                 "appeal.resolved"]
    key = any_store.audit_key.get()
    expected = {"decision.created": {"annika"}, "decision.corrected": {"leandra"},
                "campaign.decided": {"leandra"}, "appeal.resolved": {"bobbie"}}
    for e in events:
        got = {d["reviewer"] for d in e["payload"]["decisions"]}
        assert got == {reviewer_pseudonym(key, n) for n in expected[e["event_type"]]}, e["event_type"]
        body = event_body(e).decode("utf-8")  # the signed bytes a receiver gets
        assert not any(n in body for n in ("annika", "leandra", "bobbie")), body
    # stable: the same reviewer reads the same in every event (the platform still groups by it)
    assert events[1]["payload"]["decisions"][0]["reviewer"] == events[2]["payload"]["decisions"][0]["reviewer"]


def test_a_platform_payload_is_pseudonymised_once_and_left_otherwise_as_it_was():
    """What the delivery worker can apply again to an event stored with a name (idempotent)."""
    key = b"k" * 32
    stored = {"case_id": 1, "decisions": [{"id": 1, "reviewer": "ann"}, {"id": 2, "reviewer": "sweeper"}, {"id": 3}]}
    once = pseudonymous_payload(key, stored)
    assert once == {"case_id": 1, "decisions": [{"id": 1, "reviewer": reviewer_pseudonym(key, "ann")},
                                                {"id": 2, "reviewer": "sweeper"}, {"id": 3}]}
    assert pseudonymous_payload(key, once) == once and stored["decisions"][0]["reviewer"] == "ann"
    assert pseudonymous_payload(key, {"outcome": "x"}) == {"outcome": "x"}


@pytest.fixture
def team(any_store, taxonomy, cfg):
    """Accounts (ada: admin, lea: lead, ann and bob: analysts, vic: viewer) with a token each; bob decided s0 and
    holds s1's case; bob left a note on s0; the CLI runs on the same store."""
    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("lea", "lead"), ("ann", "analyst"), ("bob", "analyst"), ("vic", "viewer")):
        add_user(any_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = create_token(any_store, name, actor="setup")["token"]
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9 - i / 10} for i in range(2)])
    build_cases(any_store, taxonomy, cfg, progress=False)
    decided = next_case(any_store, "bob", "spam", config=cfg)
    DEC.decide(any_store, taxonomy, decided["id"], "bob", "spam", config=cfg)
    held = next_case(any_store, "bob", "spam", config=cfg)
    add_note(any_store, "item", decided["item_id"], "same sender as last week", "bob")
    base = ["--data-dir", str(any_store.data_dir)] + ([] if any_store.is_sqlite else ["--db", any_store.url])

    def run(who, *args):
        return CliRunner().invoke(cli, [*base, "--token", tokens[who], *args])

    return run, any_store, decided, held


def test_the_audit_log_is_a_leads_to_read(team):
    run, store, decided, _ = team
    for who in ("vic", "ann"):
        res = run(who, "audit", "log", "--json")
        assert res.exit_code != 0 and "bob" not in res.output, res.output
        assert "analyst_quality" in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = run("lea", "audit", "log", "--limit", "50", "--json")
    assert res.exit_code == 0, res.output
    assert "bob" in {e["actor"] for e in json.loads(res.output)}


def test_cases_and_items_name_a_peer_only_to_a_lead(team):
    run, store, decided, held = team
    bob = reviewer_pseudonym(store.audit_key.get(), "bob")

    def show(who, case_id):
        res = run(who, "cases", "show", str(case_id), "--json")
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    for who, expect in (("lea", "bob"), ("bob", "bob"), ("ann", bob), ("vic", bob)):
        done = show(who, decided["id"])
        assert done["claimed_by"] == expect, who  # a decided case keeps its decider here
        assert {d["reviewer"] for d in done["decisions"]} == {expect}, who
        assert show(who, held["id"])["claimed_by"] == expect, who
        res = run(who, "cases", "list", "--state", "decided", "--json")
        assert res.exit_code == 0, res.output
        assert [r["claimed_by"] for r in json.loads(res.output)] == [expect], who
        res = run(who, "items", "--json")
        assert res.exit_code == 0, res.output
        rows = {r["id"]: r for r in map(json.loads, res.output.splitlines())}
        assert rows[decided["item_id"]]["decision"]["reviewer"] == expect, who
        if expect != "bob":
            assert '"bob"' not in res.output
    # what a command prints back: an appeal filed by ann names the contested decision's reviewer
    res = run("ann", "appeal", decided["item_id"], "--reason", "my bank", "--json")
    assert res.exit_code == 0, res.output
    filed = json.loads(res.output)
    assert filed["meta"]["appeal"]["decision"]["reviewer"] == bob and '"bob"' not in res.output
    assert filed["meta"]["appeal"]["appellant"] == "ann"  # their own name


def test_note_authors_are_named_to_the_author_and_leads(team, roles):
    run, store, decided, _ = team
    bob = reviewer_pseudonym(store.audit_key.get(), "bob")
    item = decided["item_id"]
    for who, expect in ((LEA, "bob"), (Principal("bob", "analyst"), "bob"), (Principal("ann", "analyst"), bob)):
        assert [n["author"] for n in list_notes(store, "item", item, principal=who)["notes"]] == [expect]
    res = run("ann", "notes", "item", item, "--json")
    assert res.exit_code == 0 and '"bob"' not in res.output and bob in res.output, res.output
    with store.read() as conn:  # the Review tab's context panel passes its reader's namer
        notes, _ = recent_notes(conn, "item", item, namer=reviewer_namer(Principal("ann", "analyst"),
                                                                          store.audit_key.get(conn)))
    assert [n["author"] for n in notes] == [bob]


def test_a_case_views_escalations_and_appeal_name_peers_by_the_rule(roles):
    key = b"k" * 32
    namer = reviewer_namer(Principal("ann", "analyst"), key)
    view = {"id": 1, "claimed_by": "bob", "decisions": [{"reviewer": "ann"}, {"reviewer": "cat"}],
            "meta": {"escalated_by": "dan", "escalations": [{"by": "dan", "reason": "x"}, {"by": None}],
                     "item_escalations": [{"by": "eve"}],
                     "appeal": {"appellant": "fay", "resolved_by": "gus", "decision": {"reviewer": "bob"}},
                     "label_error": {"reviewer": "cat", "resolved_by": "ann"}}}
    out = name_case_view(view, namer)
    p = {n: reviewer_pseudonym(key, n) for n in ("bob", "cat", "dan", "eve", "fay", "gus")}
    assert out["claimed_by"] == p["bob"] and [d["reviewer"] for d in out["decisions"]] == ["ann", p["cat"]]
    m = out["meta"]
    assert m["escalated_by"] == p["dan"] and [e["by"] for e in m["escalations"]] == [p["dan"], None]
    assert m["item_escalations"][0]["by"] == p["eve"] and m["escalations"][0]["reason"] == "x"
    assert m["appeal"] == {"appellant": p["fay"], "resolved_by": p["gus"], "decision": {"reviewer": p["bob"]}}
    assert m["label_error"] == {"reviewer": p["cat"], "resolved_by": "ann"}
    assert view["claimed_by"] == "bob"  # the stored view is left as it was
    assert name_case_view(view, reviewer_namer(LEA, key)) == view
    packet_case = {"claimed_by": None, "escalations": [{"by": "dan"}, {"by": "ann"}]}  # a review packet's case
    assert name_case_view(packet_case, namer) == {"claimed_by": None, "escalations": [{"by": p["dan"]}, {"by": "ann"}]}


def test_an_event_stored_with_a_name_before_pseudonyms_goes_out_with_the_pseudonym(any_store, taxonomy, tmp_path):
    """An outbox event written before the outbox stored pseudonyms (or re-driven by retry/replay)
    still names the analyst in its stored payload: the delivery worker sends the pseudonym, and
    the stored row is left as it is."""
    import json as _json
    import random as _random

    from sqlalchemy import select as _select, update as _update

    from core.reviewer_pseudonym import reviewer_pseudonym as _pseudonym
    from core.schema import OutboxEvent as _Outbox
    from labeling.queue_config import load_queue_config as _load_qc
    from core.config import config_dir as _config_dir
    from workbench.webhooks import DeliveryWorker, load_webhooks

    from test_hardening_webhook_replay import ENV, Recorder
    from test_hardening_webhooks2 import _decide
    from webhook_support import write_config

    cfg = _load_qc(_config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    _decide(any_store, taxonomy, cfg, ["old1"])
    with any_store.begin() as conn:  # the row as the outbox stored it before: the real name
        row = conn.execute(_select(_Outbox.event_id, _Outbox.payload)).mappings().one()
        payload = dict(row["payload"])
        payload["decisions"] = [{**d, "reviewer": "ann"} for d in payload["decisions"]]
        conn.execute(_update(_Outbox).where(_Outbox.event_id == row["event_id"]).values(payload=payload))
    send = Recorder()
    folder = write_config(tmp_path / "cfg", "http://receiver.invalid/h")
    assert DeliveryWorker(any_store, load_webhooks(folder, ENV), rng=_random.Random(1), send=send).run(
        once=True)["delivered"] == 1
    [post] = send.posts
    sent = _json.loads(post["body"])["data"]["decisions"]
    assert [d["reviewer"] for d in sent] == [_pseudonym(any_store.audit_key.get(), "ann")]
    assert b"ann" not in post["body"].replace(b"banner", b"")
    with any_store.read() as conn:  # nothing stored is rewritten
        stored = conn.execute(_select(_Outbox.payload)).scalar_one()
    assert [d["reviewer"] for d in stored["decisions"]] == ["ann"]
