"""Undo brings back the label of record from before the undone decision, and leaves the audit
chain verifiable; a campaign undo holds its members' decision locks (PostgreSQL); a reveal sent
twice at once stores one (PostgreSQL); an id too long for the database is a one-line usage error."""
from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from core import audit
from core.labels import current_labels
from core.schema import AuditEvent, Case, Decision, Reveal, utcnow
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.packets import reveal_text
from labeling.undo import undo_last
from labeling.wellbeing import record_reveal
from workbench.cli import cli

from test_queue_support import add_campaign, add_scored


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _labels(store):
    return {k: (v["reviewer"], v["label"]) for k, v in current_labels(store).items()}


def _case(store, case_id):
    with store.read() as conn:
        return tuple(conn.execute(select(Case.state, Case.claimed_by).where(Case.id == case_id)).one())


def _verify(store):
    with store.read() as conn:
        return audit.verify(conn)


def _campaign_with_one_decided_member(store, taxonomy, cfg):
    """Members m0-m2 of one campaign; ann decided m0 (scam); the lead decides the campaign (spam)."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ("m0", "m1", "m2")])
    add_campaign(store, ["m0", "m1", "m2"])
    build_cases(store, taxonomy, cfg, progress=False)
    own = next_case(store, "ann", "fraud", config=cfg)
    DEC.decide(store, taxonomy, own["id"], "ann", "scam", config=cfg)
    camp = next_case(store, "lead", "campaigns", config=cfg)
    out = DEC.decide(store, taxonomy, camp["id"], "lead", "spam", "remove", rationale="advert wave", config=cfg)
    return own, camp, out


def test_audit_verifies_after_a_single_and_a_campaign_undo(any_store, taxonomy, cfg):
    own, camp, _ = _campaign_with_one_decided_member(any_store, taxonomy, cfg)
    undo_last(any_store, "lead", cfg, 120)
    result = _verify(any_store)
    assert result.ok, result.problems
    add_scored(any_store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, progress=False)
    case = next_case(any_store, "bob", "fraud", config=cfg)
    DEC.decide(any_store, taxonomy, case["id"], "bob", "scam", config=cfg)
    undo_last(any_store, "bob", cfg, 120)
    result = _verify(any_store)
    assert result.ok, result.problems
    assert result.decisions == 10  # ann 1, bulk 3, their undo 3, ann's restored 1, bob 1, its undo 1


def test_undo_of_a_campaign_decision_restores_a_members_earlier_decision(any_store, taxonomy, cfg):
    own, camp, out = _campaign_with_one_decided_member(any_store, taxonomy, cfg)
    assert _labels(any_store) == {m: ("lead", "spam") for m in ("m0", "m1", "m2")}
    undone = undo_last(any_store, "lead", cfg, 120)
    assert _labels(any_store) == {"m0": ("ann", "scam")}  # what training and export read
    assert len(undone["restored"]) == 1 and _case(any_store, own["id"]) == ("decided", "ann")
    assert _case(any_store, camp["id"]) == ("claimed", "lead")  # decided by nobody before: back to the lead
    assert sorted(undone["reopened_member_cases"]) == sorted(out["closed_member_cases"])
    with pytest.raises(DecisionError, match="nothing to undo"):  # the restoring row is no decision of theirs
        undo_last(any_store, "lead", cfg, 120)
    with pytest.raises(DecisionError, match="nothing to undo"):
        undo_last(any_store, "ann", cfg, 120)


def test_undo_of_a_correction_restores_the_corrected_decision(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, progress=False)
    case = next_case(any_store, "bob", "fraud", config=cfg)
    first = DEC.decide(any_store, taxonomy, case["id"], "bob", "scam", config=cfg)["decision_ids"][0]
    DEC.correct(any_store, taxonomy, first, "lead", "spam", "typo fix", action="remove")
    assert _labels(any_store) == {"it1": ("lead", "spam")}
    undone = undo_last(any_store, "lead", cfg, 120)
    assert _labels(any_store) == {"it1": ("bob", "scam")}
    assert _case(any_store, case["id"]) == ("decided", "bob") and undone["lease_expires_at"] is None
    restored = undone["restored"][first]
    fixed = DEC.correct(any_store, taxonomy, restored, "lead", "benign", "on second thought")  # an ordinary row
    assert fixed["supersedes_id"] == restored and _labels(any_store) == {"it1": ("lead", "benign")}
    assert _verify(any_store).ok


@pytest.mark.postgres
def test_campaign_undo_waits_for_an_appeal_on_a_member(pg_store, taxonomy, cfg, monkeypatch):
    """An appeal's outcome on a member (superseding its campaign decision), uncommitted while the
    lead undoes the campaign decision: the undo waits for it and leaves that member's row alone,
    so no decision is superseded twice (a fork)."""
    _, camp, out = _campaign_with_one_decided_member(pg_store, taxonomy, cfg)
    target = out["decision_ids"][1]
    with pg_store.read() as conn:
        item = conn.execute(select(Decision.item_id).where(Decision.id == target)).scalar()
    appeal_case = APP.appeal(pg_store, item, "user-1", "this was my bank", taxonomy, config=cfg)["id"]
    inserted, original = threading.Event(), APP._insert_decision

    def insert_then_hold(*args, **kwargs):
        new_id = original(*args, **kwargs)
        inserted.set()
        time.sleep(1.0)  # the appeal's transaction stays open meanwhile
        return new_id

    monkeypatch.setattr(APP, "_insert_decision", insert_then_hold)
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(_catch(lambda: APP.resolve_appeal(
        pg_store, taxonomy, appeal_case, "lead2", "reverse", "a bank notice", config=cfg))))
    worker.start()
    assert inserted.wait(10)
    undone = undo_last(pg_store, "lead", cfg, 120)
    worker.join(30)
    assert isinstance(got[0], dict) and target not in undone["undone"]
    with pg_store.read() as conn:
        forks = conn.execute(select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
                             .group_by(Decision.supersedes_id).having(func.count() > 1)).scalars().all()
    assert forks == [] and _labels(pg_store)[item] == ("lead2", "benign")


@pytest.mark.postgres
def test_a_reveal_sent_twice_at_once_stores_one(pg_store, taxonomy, cfg, review_settings):
    add_scored(pg_store, taxonomy, [{"id": "it1", "label": "hate", "p": 0.9, "text": "some hateful text"}])
    build_cases(pg_store, taxonomy, cfg, progress=False)
    with pg_store.read() as conn:
        case_id = conn.execute(select(Case.id)).scalar()
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(_catch(lambda: reveal_text(
        pg_store, case_id, "ann", taxonomy=taxonomy, settings=review_settings))))
    with pg_store.begin() as conn:  # the first reveal, not yet committed when the second arrives
        assert record_reveal(conn, "ann", case_id, "it1", None, utcnow())
        worker.start()
        time.sleep(0.7)
    worker.join(30)
    assert got == ["some hateful text"]
    with pg_store.read() as conn:
        assert conn.execute(select(func.count()).select_from(Reveal)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == "text.reveal")).scalar() == 1


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the test compares it
        return exc


@pytest.mark.parametrize("args", [
    ("decide", "99999999999999999999", "--label", "spam", "--as", "ann"),
    ("cases", "show", "99999999999999999999"),
    ("cases", "preview", "99999999999999999999", "--as", "ann"),
    ("correct", "99999999999999999999", "--label", "spam", "--rationale", "x", "--as", "ann"),
    ("release", "99999999999999999999", "--as", "ann"),
    ("escalate", "99999999999999999999", "--reason", "x", "--as", "ann"),
    ("appeals", "resolve", "99999999999999999999", "--outcome", "confirm", "--rationale", "x", "--as", "ann"),
    ("campaigns", "show", "99999999999999999999"),
    ("campaigns", "timeline", "99999999999999999999"),
    ("label-errors", "resolve", "99999999999999999999", "--label", "spam", "--rationale", "x", "--as", "ann"),
    ("items", "--campaign", "99999999999999999999"),
    ("webhooks", "show", "99999999999999999999"),
    ("webhooks", "retry", "99999999999999999999"),
])
def test_an_id_too_long_for_the_database_is_a_usage_error(tmp_path, args):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args])
    assert res.exit_code == 2 and "99999999999999999999 is not in the range" in res.output, res.output
    assert ("_ID" in res.output or "--campaign" in res.output) and "Traceback" not in res.output
