"""Hardening of what a campaign case's page view asks of the store: the bulk preview.

The defect: every review packet of a campaign case (and the Campaigns tab, `workbench cases
preview`) showed `decisions.bulk_preview`, which plans the campaign decision over every member in
Python: a scam wave of 100,000 members read 100,000 members, their decisions and their cases on
each page view. `decisions.bulk_counts` counts the same in the store. Shown here: what it asks
(statements and values bound) is the same for 20 members as for 2,000, and its counts are the
full plan's (`bulk_preview`, and what `decide` then does) on a campaign mixing decided, appealed,
held-by-another, superseded and undecided members, on both stores.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, update

from core.schema import Campaign, Case, Decision
from labeling import decisions as DEC
from labeling.appeals import appeal, resolve_appeal
from labeling.bulk_counts import appeal_case
from labeling.cases import build_cases

from test_queue_support import T0, add_campaign, add_scored, case_ids, quiet
from test_queue_support import asked as _asked

C, D = Case.__table__, Decision.__table__
LIVE, LAPSED = T0 + dt.timedelta(hours=1), T0 - dt.timedelta(minutes=1)


def _counted(full):
    """The full plan (`bulk_preview`) as counts: the shape `bulk_counts` answers in."""
    return dict(full, held_by_others=len(full["held_by_others"]), skipped_appeal=len(full["skipped_appeal"]),
                skipped_decided=len(full["skipped_decided"]))


def _case(store, item_id, **values):
    """A case of `item_id` written directly (a hold, an appeal in some shape)."""
    row = dict(item_id=item_id, queue="fraud", state="open", created_at=T0, updated_at=T0, meta={})
    with store.begin() as conn:
        return conn.execute(insert(C).values(**dict(row, **values)).returning(C.c.id)).scalar_one()


def _decision(store, item_id, kind="review", label="scam", supersedes=None):
    with store.begin() as conn:
        return conn.execute(insert(D).values(
            item_id=item_id, reviewer="ann", kind=kind, label=label, action="no_action", taxonomy_version="t",
            supersedes_id=supersedes, created_at=T0).returning(D.c.id)).scalar_one()


def _hold(store, case_id, who, until):
    with store.begin() as conn:
        conn.execute(update(C).where(C.c.id == case_id).values(state="claimed", claimed_by=who,
                                                               lease_expires_at=until))


def _campaign_case(store, taxonomy, cfg, ids):
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ids])
    cid = add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return cid, case_ids(store, lambda c: f"camp{c}")


def test_a_campaign_cases_counts_ask_the_same_of_the_store_for_20_and_2000_members(any_store, taxonomy,
                                                                                   queue_config):
    s, cfg, asked = any_store, quiet(queue_config), {}
    for n in (20, 2000):
        ids = [f"b{n}-{i:05d}" for i in range(n)]
        cid, cases = _campaign_case(s, taxonomy, cfg, ids)
        _decision(s, ids[0])
        _decision(s, ids[1], label="spam", supersedes=_decision(s, ids[1]))
        _hold(s, cases[ids[2]], "bob", LIVE)
        _case(s, ids[3], queue=cfg.appeals_queue, meta={"appeal": {"decision_id": 1}})
        with s.begin() as conn:  # a larger wave: more of each kind
            conn.execute(insert(D), [dict(item_id=m, reviewer="ann", kind="review", label="spam", action="remove",
                                          taxonomy_version="t", created_at=T0) for m in ids[4:n // 4]])
        case_id = cases[f"camp{cid}"]
        with _asked(s) as seen:
            got = DEC.bulk_counts(s, case_id, "lead", now=T0, config=cfg)
        asked[n] = tuple(seen)
        assert got == _counted(DEC.bulk_preview(s, case_id, "lead", now=T0, config=cfg))
        assert (got["members"], got["held_by_others"], got["skipped_appeal"]) == (n, 1, 1)
        assert got["already_decided"] == n // 4 - 2 and got["will_decide"] == n - 2
    assert asked[20] == asked[2000], asked


def test_the_counts_are_the_plans_on_a_mixed_campaign(any_store, taxonomy, queue_config):
    s, cfg = any_store, quiet(queue_config)
    ids = [f"m{i:02d}" for i in range(20)]
    cid, cases = _campaign_case(s, taxonomy, cfg, ids)
    case_id = cases[f"camp{cid}"]
    for m in ids[:6] + ids[15:16]:  # decided on their own cases
        DEC.decide(s, taxonomy, cases[m], "ann", "scam", now=T0, config=cfg)
    first = select(D.c.id).where(D.c.item_id == "m01")
    with s.read() as conn:
        d1 = conn.execute(first).scalar_one()
    DEC.correct(s, taxonomy, d1, "lead", "spam", "an advert, not a scam", action="remove", now=T0)  # superseded
    pending = appeal(s, "m02", "user1", "not a scam", taxonomy, now=T0, config=cfg)  # an appeal waits
    upheld = appeal(s, "m03", "user2", "a real shop", taxonomy, now=T0, config=cfg)
    resolve_appeal(s, taxonomy, upheld["id"], "carol", "reverse", "verified merchant", now=T0, config=cfg)
    _case(s, "m04", state="claimed", claimed_by="bob", lease_expires_at=LIVE)  # decided, held: held, not decided
    _hold(s, pending["id"], "bob", LIVE)  # appealed and held: counted once, as appealed
    _hold(s, cases["m06"], "bob", LIVE)  # held by another
    _hold(s, cases["m07"], "bob", LAPSED)  # a lapsed lease holds nothing
    _hold(s, cases["m08"], "lead", LIVE)  # the one deciding holds it
    _case(s, "m09", state="claimed", claimed_by="bob", lease_expires_at=LIVE, calibration_set="c1")  # no hold
    _case(s, "m10", meta={"appeal": {}})  # an empty appeal packet is none (Python reads {} as false)
    _case(s, "m11", queue=cfg.escalation_queue, state="escalated", meta={"escalated_from": cfg.appeals_queue})
    _case(s, "m12", queue=cfg.appeals_queue)  # in the appeals queue: an appeal where the config is known
    _case(s, "m13", state="decided", meta={"appeal": {"decision_id": 1}})  # a settled appeal case waits no more
    _decision(s, "m14", kind="undo", supersedes=_decision(s, "m14"))  # undone: undecided
    _decision(s, "m16", kind="calibration", label="spam")  # a calibration answer is no label of record
    for config in (None, cfg):
        for existing in (None, "supersede", "skip"):
            for who in ("lead", "bob"):
                full = DEC.bulk_preview(s, case_id, who, now=T0, existing=existing, config=config)
                got = DEC.bulk_counts(s, case_id, who, now=T0, existing=existing, config=config)
                assert got == _counted(full), (config is not None, existing, who)
    got = DEC.bulk_counts(s, case_id, "lead", now=T0, config=cfg)
    assert (got["members"], got["skipped_appeal"], got["held_by_others"]) == (20, 4, 2)  # m02 m03 m11 m12; m04 m06
    assert (got["already_decided"], got["already_decided_labels"]) == (4, {"scam": 3, "spam": 1})  # m00 m01 m05 m15
    assert got["will_decide"] == 14 and got["existing"] == "supersede"
    skip = DEC.bulk_counts(s, case_id, "lead", now=T0, existing="skip", config=cfg)
    assert (skip["skipped_decided"], skip["already_decided"], skip["will_decide"]) == (4, 0, 10)
    out = DEC.decide(s, taxonomy, case_id, "lead", "scam", now=T0, config=cfg)  # and the decision does so
    assert len(out["decision_ids"]) == got["will_decide"] and out["bulk"]["superseded"] == got["already_decided"]
    assert (len(out["bulk"]["skipped_appeal"]), len(out["bulk"]["skipped_held"])) == (4, 2)


APPEALS = [{"appeal": v} for v in ({}, [], "", 0, 0.0, False, None, {"decision_id": 3}, [1], "yes", 2, 0.5, True)] + [
    {"escalated_from": "appeals"}, {"escalated_from": "fraud"}, {"escalated_from": 7}, {}, {"other": 1}]


def test_the_appeal_rule_in_sql_is_the_plans(any_store, taxonomy, queue_config):
    """`bulk_counts.appeal_case` against the plan's test, `(meta or {}).get("appeal") or
    _is_appeal(case, config)`, over appeal packets Python reads as false ({} [] "" 0 false null)."""
    s, cfg = any_store, quiet(queue_config).model_copy(update={"appeals_queue": "appeals"})
    add_scored(s, taxonomy, [{"id": "x", "label": "scam", "p": 0.9}])
    for meta in APPEALS:
        for queue in ("fraud", "appeals"):
            _case(s, "x", queue=queue, meta=meta)
    _case(s, "x", meta=None)
    with s.read() as conn:
        rows = conn.execute(select(C.c.id, C.c.queue, C.c.meta, C.c.is_audit, C.c.calibration_set)).mappings().all()
        for config in (None, cfg):
            want = {r["id"] for r in rows if (r["meta"] or {}).get("appeal")
                    or (config is not None and DEC._is_appeal(r, config))}
            got = set(conn.execute(select(C.c.id).where(appeal_case(config, conn.dialect.name))).scalars())
            assert got == want and 0 < len(want) < len(rows), config


def test_counts_refuse_as_the_plan_does(sqlite_store, taxonomy, queue_config):
    s, cfg = sqlite_store, quiet(queue_config)
    cid, cases = _campaign_case(s, taxonomy, cfg, ["e0", "e1"])
    with pytest.raises(DEC.DecisionError, match="existing must be one of"):
        DEC.bulk_counts(s, cases[f"camp{cid}"], "lead", existing="all")
    with pytest.raises(DEC.DecisionError, match="no case 999999"):
        DEC.bulk_counts(s, 999999, "lead")
    one = DEC.bulk_counts(s, cases["e0"], "lead", now=T0)
    assert (one["members"], one["will_decide"], one["held_by_others"]) == (1, 1, 0)
    with s.begin() as conn:  # merged into another campaign: refused in the plan's words
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(status="merged"))
    for ask in (DEC.bulk_preview, DEC.bulk_counts):
        with pytest.raises(DEC.DecisionError, match=f"campaign {cid} of case {cases[f'camp{cid}']} is merged"):
            ask(s, cases[f"camp{cid}"], "lead", now=T0)


def test_a_campaign_cases_review_packet_asks_the_same_of_the_store_for_20_and_2000_members(
        any_store, taxonomy, queue_config, review_settings, campaign_settings, monkeypatch):
    """The packet's campaign line planned every member (`bulk_preview`): 2,000 members asked more
    (SQLite: 36 statements binding 6,139 values, against 30 and 177 for 20)."""
    from labeling import packets

    evidence = packets.term_evidence  # capped by design (`explore.TERM_MEMBERS`, 5,000): capped below both here
    monkeypatch.setattr(packets, "term_evidence", lambda conn, cid, exclude=(): evidence(conn, cid, exclude, 10))
    s, cfg, asked = any_store, quiet(queue_config), {}
    for n in (20, 2000):
        ids = [f"p{n}-{i:05d}" for i in range(n)]
        cid, cases = _campaign_case(s, taxonomy, cfg, ids)
        _decision(s, ids[0])
        _hold(s, cases[ids[1]], "bob", LIVE)
        with _asked(s) as seen:
            packet = packets.review_packet(s, taxonomy, cases[f"camp{cid}"], review_settings, campaign_settings,
                                           now=T0)
        asked[n] = tuple(seen)
        line = packet["campaign_case"]
        assert (line["members"], line["already_decided"], line["held_by_others"], line["will_decide"]) == (n, 1, 1,
                                                                                                         n - 1)
    assert asked[20] == asked[2000], asked
