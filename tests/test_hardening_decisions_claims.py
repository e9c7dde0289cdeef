"""Hardening of the analyst's core actions: claim, decide, bulk-decide, correct, exposure.

Each test reproduces a defect found in an audit:
- a rationale of zero-width characters met "a rationale is required" (override, correction);
- a calibration copy opened by id (or decided unclaimed) left its sibling copy to be served by
  `n`, a case its analyst could not decide ("already answered");
- an aware `now` in another zone was stored as wall-clock time (a lease hours too long), crashed
  `decide`, and let `exposure` miss a severe reveal;
- a member whose calibration copy another analyst held was left out of its campaign decision;
- a rescore between showing a case and saving its decision judged the decision against a model
  answer the analyst never saw (a plain confirm refused as an override).
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from core.config import config_dir
from core.schema import Case, Decision, Prediction
from labeling import decisions as DEC
from labeling.cases import build_cases, list_cases
from labeling.claims import claim_case, next_case
from labeling.errors import DecisionError
from labeling.queue_config import CalibrationSet, load_queue_config
from labeling.wellbeing import exposure, record_reveal
from test_queue_support import T0, add_campaign, add_scored, scores_for

C, D, P = Case.__table__, Decision.__table__, Prediction.__table__
LATER = T0 + dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "calibration_sets": []})


@pytest.fixture(scope="module")
def cal_cfg(cfg):
    return cfg.model_copy(update={"calibration_sets": [CalibrationSet(name="c1", share=1.0, reviewers=2)]})


def _one_case(store, taxonomy, cfg, item="it1"):
    add_scored(store, taxonomy, [{"id": item, "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return next(c for c in list_cases(store) if c["item_id"] == item)


def _decisions(store):
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(D)).scalar()


@pytest.mark.parametrize("blank", ["\u200b", " \u200b\u2060 ", "\ufeff\u200d"])
def test_a_rationale_of_invisible_characters_is_no_rationale(any_store, taxonomy, cfg, blank):
    case = _one_case(any_store, taxonomy, cfg)
    with pytest.raises(DecisionError, match="rationale is required to override"):
        DEC.decide(any_store, taxonomy, case["id"], "ann", "spam", "remove", rationale=blank, config=cfg, now=T0)
    out = DEC.decide(any_store, taxonomy, case["id"], "ann", "scam", config=cfg, now=T0)
    with pytest.raises(DecisionError, match="a correction needs a rationale"):
        DEC.correct(any_store, taxonomy, out["decision_ids"][0], "ann", "spam", blank, action="remove", now=LATER)
    assert _decisions(any_store) == 1


def test_a_calibration_copy_opened_by_id_keeps_its_sibling_from_that_analyst(any_store, taxonomy, cal_cfg):
    _one_case(any_store, taxonomy, cal_cfg)
    with any_store.read() as conn:
        copies = conn.execute(select(C.c.id).where(C.c.calibration_set == "c1").order_by(C.c.id)).scalars().all()
    assert len(copies) == 2
    claim_case(any_store, copies[0], "ann", cal_cfg, now=T0)
    DEC.decide(any_store, taxonomy, copies[0], "ann", "scam", config=cal_cfg, now=LATER)
    # `n` must not serve the sibling: ann cannot answer the same item twice in one set
    assert next_case(any_store, "ann", cal_cfg.calibration_queue, config=cal_cfg, now=LATER) is None
    assert next_case(any_store, "bob", cal_cfg.calibration_queue, config=cal_cfg, now=LATER)["id"] == copies[1]


def test_a_calibration_copy_decided_unclaimed_keeps_its_sibling_from_that_analyst(any_store, taxonomy, cal_cfg):
    _one_case(any_store, taxonomy, cal_cfg)
    with any_store.read() as conn:
        copies = conn.execute(select(C.c.id).where(C.c.calibration_set == "c1").order_by(C.c.id)).scalars().all()
    DEC.decide(any_store, taxonomy, copies[1], "ann", "scam", config=cal_cfg, now=T0)  # the CLI: no claim first
    assert next_case(any_store, "ann", cal_cfg.calibration_queue, config=cal_cfg, now=LATER) is None


def test_times_in_another_zone_are_converted_not_read_as_utc(any_store, taxonomy, cfg):
    case = _one_case(any_store, taxonomy, cfg)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    aware = T0.replace(tzinfo=dt.timezone.utc).astimezone(plus2)  # 10:00+02:00 is 08:00 UTC
    next_case(any_store, "ann", case["queue"], config=cfg, now=aware, detail=False)
    with any_store.read() as conn:
        lease = conn.execute(select(C.c.lease_expires_at).where(C.c.id == case["id"])).scalar()
    assert lease.replace(tzinfo=None) == T0 + dt.timedelta(seconds=cfg.lease_seconds)
    out = DEC.decide(any_store, taxonomy, case["id"], "ann", "scam", config=cfg,
                     now=LATER.replace(tzinfo=dt.timezone.utc).astimezone(plus2))
    assert out["state"] == "decided" and out["resolved_at"] == LATER.isoformat()


def test_exposure_in_another_zone_counts_the_shifts_reveals(sqlite_store, review_settings):
    """SQLite keeps an aware time's wall clock (PostgreSQL converts it): only SQLite showed this."""
    tokyo = dt.timezone(dt.timedelta(hours=9))
    with sqlite_store.begin() as conn:
        record_reveal(conn, "ann", 1, "it1", review_settings.severe_tiers[0], T0)
        record_reveal(conn, "ann", 2, "it2", review_settings.severe_tiers[0],
                      T0.replace(tzinfo=dt.timezone.utc).astimezone(tokyo))  # the same instant, stored as 08:00
    an_hour_later = (T0 + dt.timedelta(hours=1)).replace(tzinfo=dt.timezone.utc).astimezone(tokyo)
    assert exposure(sqlite_store, "ann", review_settings, now=an_hour_later)["severe"] == 2
    shift_over = T0 + dt.timedelta(hours=review_settings.shift_hours, minutes=1)
    assert exposure(sqlite_store, "ann", review_settings, now=shift_over)["severe"] == 0


def test_a_member_whose_calibration_copy_another_holds_is_decided_with_its_campaign(any_store, taxonomy, cal_cfg):
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"win a prize {i}"}
                                           for i in range(3)])
    build_cases(any_store, taxonomy, cal_cfg, now=T0, progress=False)
    add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, cal_cfg, now=T0, progress=False)
    with any_store.read() as conn:
        copy = conn.execute(select(C.c.id).where(C.c.item_id == "m0", C.c.calibration_set == "c1")
                            .order_by(C.c.id).limit(1)).scalar()
        camp = conn.execute(select(C.c.id).where(C.c.campaign_id.is_not(None))).scalar()
    claim_case(any_store, copy, "bob", cal_cfg, now=T0)
    preview = DEC.bulk_preview(any_store, camp, "alice", now=T0, config=cal_cfg)
    assert preview["held_by_others"] == {} and preview["will_decide"] == 3
    out = DEC.decide(any_store, taxonomy, camp, "alice", "scam", config=cal_cfg, now=LATER)
    assert out["bulk"]["skipped_held"] == [] and len(out["decision_ids"]) == 3
    with any_store.read() as conn:
        state = conn.execute(select(C.c.state, C.c.claimed_by).where(C.c.id == copy)).one()
    assert tuple(state) == ("claimed", "bob")  # bob's calibration copy is still his to answer


def test_a_rescore_since_the_case_was_shown_refuses_the_decision(any_store, taxonomy, cfg):
    case = _one_case(any_store, taxonomy, cfg)
    shown = next_case(any_store, "ann", case["queue"], config=cfg, now=T0, detail=False)
    seen = {"model_version": "test-model-1", "label": "scam", "score": 0.9}  # the packet's `prediction`
    with any_store.begin() as conn:  # the model rescored the item while ann read it
        conn.execute(update(P).where(P.c.item_id == "it1").values(
            label="spam", score=0.8, scores=scores_for(taxonomy, "spam", 0.8)))
    with pytest.raises(DecisionError, match=r"rescored since it was shown: the model now suggests spam.*not scam"):
        DEC.decide(any_store, taxonomy, shown["id"], "ann", "scam", config=cfg, now=LATER, holder_only=True,
                   seen=seen)
    assert _decisions(any_store) == 0
    fresh = {"model_version": "test-model-1", "label": "spam"}  # reloaded: judged against what it shows now
    out = DEC.decide(any_store, taxonomy, shown["id"], "ann", "spam", "remove", config=cfg, now=LATER,
                     holder_only=True, seen=fresh)
    assert out["is_override"] is False


def test_a_blind_case_shows_no_similar_decisions(any_store, taxonomy, make_scored, queue_config, review_settings,
                                                 campaign_settings):
    """A QA-audit draw is reviewed blind: the decided copy of its very text (similarity 1.0) listed
    under similar decisions was the answer, label, reviewer and rationale."""
    from labeling.packets import review_packet

    spam = scores_for(taxonomy, "spam", 0.9)
    make_scored(any_store, [{"id": "1", "text": "Cheap pills!"}, {"id": "2", "text": "cheap   PILLS!"}],
                {"1": spam, "2": spam})
    with any_store.read() as conn:
        cases = dict(conn.execute(select(Case.item_id, Case.id)).all())
    DEC.decide(any_store, taxonomy, cases["reports:1"], "bob", "spam", action="remove", config=queue_config)
    seen = review_packet(any_store, taxonomy, cases["reports:2"], review_settings, campaign_settings)
    assert [d["item_id"] for d in seen["similar_decisions"]] == ["reports:1"]  # an ordinary case: the hint stays
    with any_store.begin() as conn:
        conn.execute(update(Case).where(Case.id == cases["reports:2"]).values(is_audit=True))
    blind = review_packet(any_store, taxonomy, cases["reports:2"], review_settings, campaign_settings)
    assert blind["similar_decisions"] == [] and blind["decisions"] == []
