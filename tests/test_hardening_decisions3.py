"""Hardening of decisions, undo, escalation and claims (third audit).

Each test reproduces a defect found in the audit:
1. the label of record preferred the later `created_at`, the writing server's clock: a decision
   written after another by a server whose clock is a few minutes behind lost to the older one;
   an undo compared the same clocks to decide whether to restore, so it re-asserted an older
   decision over a newer one. The store's order (the decision's id) decides now, in one place
   (`core.labels.record_key`);
2. a label, action, severity, policy reference or rationale that is not text (a list, a number)
   failed deep inside `decide`/`correct` as a TypeError or AttributeError, and an escalation's
   reason or severity likewise, instead of a one-line refusal;
3. a skip's reason skipped the free-text rule: a NUL byte crashed PostgreSQL's insert, an escape
   sequence or 100,000 characters were stored and written to the audit log;
4. an undo at an aware time (another zone) crashed comparing it with the stored naive UTC times.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from core.labels import current_labels
from core.schema import Case, CaseSkip, Decision
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case, skip
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate
from labeling.undo import undo_last
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet

C, D, SK = Case.__table__, Decision.__table__, CaseSkip.__table__
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


def _count(store, table=D):
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _newer_from_a_slow_clock(store, taxonomy, cfg):
    """A lead decides a campaign (server A); then bob decides member m0's own case, which he held
    through the decision (the state `test_case_races` shows a PostgreSQL race leaves), on server
    B, whose clock is 5 minutes behind. Returns (the bulk decision of m0, bob's decision)."""
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ("m0", "m1")])
    add_campaign(store, ["m0", "m1"])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    cases = case_ids(store)
    DEC.decide(store, taxonomy, cases["campaign"], "lead", "scam", "block_sender", now=T0, config=cfg)
    bulk = current_labels(store, ["m0"])["m0"]["id"]
    with store.begin() as conn:  # m0's own case stayed bob's
        conn.execute(update(C).where(C.c.id == cases["m0"]).values(
            state="claimed", claimed_by="bob", lease_expires_at=T0 + 30 * MIN, resolved_at=None))
    out = DEC.decide(store, taxonomy, cases["m0"], "bob", "spam", rationale="a plain ad, no fraud",
                     now=T0 - 5 * MIN, config=cfg)
    return bulk, out["decision_ids"][0]


def test_the_label_of_record_follows_the_store_order_not_the_servers_clock(any_store, taxonomy, cfg):
    bulk, bobs = _newer_from_a_slow_clock(any_store, taxonomy, cfg)
    assert bobs > bulk
    got = current_labels(any_store, ["m0"])["m0"]
    assert (got["id"], got["label"], got["reviewer"]) == (bobs, "spam", "bob")  # was the older bulk decision


def test_an_undo_restores_no_decision_older_than_the_label_of_record(any_store, taxonomy, cfg):
    """The lead corrects the campaign decision, then takes the correction back (`u`): what stood
    before it (bob's newer decision on m0) stays the label of record; the undo re-asserted the
    older campaign decision because its clock read later."""
    bulk, bobs = _newer_from_a_slow_clock(any_store, taxonomy, cfg)
    DEC.correct(any_store, taxonomy, bulk, "lead", "spam", "not a scam after all", action="remove", now=T0 + MIN)
    out = undo_last(any_store, "lead", cfg, 60, now=T0 + MIN + dt.timedelta(seconds=10))
    assert out["restored"] == {}
    assert current_labels(any_store, ["m0"])["m0"]["id"] == bobs


@pytest.mark.parametrize("field", ["label", "action", "severity", "policy_ref", "rationale"])
@pytest.mark.parametrize("value", [["scam"], {"x": 1}, 5])
def test_a_decision_field_that_is_not_text_is_refused_in_one_line(sqlite_store, taxonomy, cfg, field, value):
    add_scored(sqlite_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.8}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cid = case_ids(sqlite_store)["x"]
    given = dict(label="scam", action=None, severity=None, policy_ref=None, rationale="looks fine")
    given[field] = value
    with pytest.raises(DecisionError, match=rf"^{field} must be text, not {type(value).__name__}$"):
        DEC.decide(sqlite_store, taxonomy, cid, "ann", now=T0, config=cfg, **given)
    if field == "rationale":
        first = DEC.decide(sqlite_store, taxonomy, cid, "ann", "scam", now=T0, config=cfg)["decision_ids"][0]
        with pytest.raises(DecisionError, match=rf"^rationale must be text, not {type(value).__name__}$"):
            DEC.correct(sqlite_store, taxonomy, first, "ann", "spam", value, action="remove", now=T0)
        assert _count(sqlite_store) == 1
    else:
        assert _count(sqlite_store) == 0 and case_row(sqlite_store, cid)["state"] == "open"


@pytest.mark.parametrize("field", ["reason", "severity"])
def test_an_escalation_field_that_is_not_text_is_refused_in_one_line(sqlite_store, taxonomy, cfg, field):
    add_scored(sqlite_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.8}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    cid = case_ids(sqlite_store)["x"]
    given = {"reason": "credible threat", "severity": None, field: ["P0"]}
    with pytest.raises(QueueError, match="must be text, not list$"):
        escalate(sqlite_store, taxonomy, cid, "ann", given["reason"], cfg, severity=given["severity"], now=T0)
    assert case_row(sqlite_store, cid)["state"] == "open"


@pytest.mark.parametrize("reason, why", [("no\x00idea", "control character"), ("\x1b[2Jgone", "control character"),
                                         ("x" * 100_000, "at most 5,000 characters"), (["x"], "must be text")])
def test_a_skip_reason_follows_the_free_text_rule(any_store, taxonomy, cfg, reason, why):
    add_scored(any_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.8}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    held = next_case(any_store, "ann", "fraud", now=T0, config=cfg, detail=False)
    with pytest.raises(QueueError, match=why) as err:
        skip(any_store, held["id"], "ann", cfg, reason=reason, now=T0)
    assert "\n" not in str(err.value) and _count(any_store, SK) == 0
    row = case_row(any_store, held["id"])
    assert (row["state"], row["claimed_by"]) == ("claimed", "ann")  # nothing changed
    skip(any_store, held["id"], "ann", cfg, reason="  not my language\t", now=T0)
    assert _count(any_store, SK) == 1


def test_an_undo_at_an_aware_time_is_converted_to_utc(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.8}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    cid = case_ids(any_store)["x"]
    DEC.decide(any_store, taxonomy, cid, "ann", "scam", now=T0, config=cfg)
    new_york = dt.timezone(dt.timedelta(hours=-5))
    at = (T0 + dt.timedelta(seconds=10)).replace(tzinfo=dt.timezone.utc).astimezone(new_york)
    out = undo_last(any_store, "ann", cfg, 60, now=at)  # it crashed: naive and aware times compared
    row = case_row(any_store, cid)
    assert (row["state"], row["claimed_by"]) == ("claimed", "ann")
    assert out["lease_expires_at"] == row["lease_expires_at"] == T0 + dt.timedelta(seconds=10 + cfg.lease_seconds)
    with any_store.read() as conn:
        assert conn.execute(select(D.c.created_at).where(D.c.kind == "undo")).scalar() == T0 + dt.timedelta(seconds=10)
