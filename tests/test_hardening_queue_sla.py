"""Hardening of SLA due times and tiers: an item cased after it arrived got a whole fresh SLA from
the build (a P1 scam ingested 3 hours before its case was built was due 7 hours after it arrived,
not 4, and showed 0% of its SLA used); a case claimed while a promotion's rescore ran kept the
old model's tier and due time (a spam case read as a scam by the new model went back to its
queue due in three days, and the SLA sweep never escalated it); and a time-zone-aware `now`
given to `build_cases` or `rescore_open_cases` was written as its zone's wall clock on SQLite
(the store keeps naive UTC), so a rescored case's `updated_at` was hours off."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.schema import Case
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.escalation import sweep
from labeling.priority import ARRIVED_AT, score_features, sla_start
from labeling.rescore import rescore_open_cases
from test_promotion_gate import MODELS
from test_queue_support import T0, add_scored, case_ids, case_row, quiet, scores_for
from test_hardening_rescore_escalated import _promote  # a new champion the open cases do not carry yet

CHAMP = "test-model-2"
AT = T0 + dt.timedelta(hours=1)         # a claim
LATER = AT + dt.timedelta(minutes=10)   # the promotion and its rescore
EST = dt.timezone(dt.timedelta(hours=-5))


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


def _rescore(store, taxonomy, cfg, now=LATER):
    out = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=cfg, actor="eng", progress=False,
                             now=now)
    assert out["champion"] == CHAMP and out["scored"] == 0 and out["stale_left"] == 0, out
    return out


# -- the SLA is owed from the item's arrival ---------------------------------------------------------
def test_an_item_cased_hours_after_it_arrived_is_due_from_its_arrival(any_store, taxonomy, cfg):
    """Ingested at T0, cased at T0 + 3h: a P1 (240 minutes) is due at T0 + 4h, with 75% of its
    SLA used; the build made it due at T0 + 7h with 0% used."""
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])  # ingested_at = T0
    build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=3), progress=False)
    row = case_row(any_store, case_ids(any_store)["s1"])
    assert (row["severity"], row["due_at"]) == ("P1", T0 + dt.timedelta(minutes=240))
    assert row["created_at"] == T0 + dt.timedelta(hours=3)  # when the case was built stays honest
    assert "75% of P1 SLA used" in row["priority_reason"], row["priority_reason"]
    assert row["meta"]["features"][ARRIVED_AT] == T0.isoformat()
    # with 60 of 240 minutes left, the SLA sweep escalates it at once
    assert sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=3, minutes=1), progress=False)["sla_escalated"] == 1


def test_an_item_cased_when_it_arrives_keeps_its_whole_sla(any_store, taxonomy, cfg):
    """The usual case (scored and cased as it arrives) is unchanged: due a whole SLA after the build."""
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    row = case_row(any_store, case_ids(any_store)["s1"])
    assert row["due_at"] == T0 + dt.timedelta(minutes=240) and ARRIVED_AT not in row["meta"]["features"]


def test_the_sla_clock_starts_at_arrival_an_escalation_restarts_it(taxonomy, cfg):
    created, due = T0 + dt.timedelta(hours=3), T0 + dt.timedelta(hours=4)
    feats = {ARRIVED_AT: T0.isoformat()}
    assert sla_start(feats, created, due) == T0
    assert sla_start({ARRIVED_AT: "not a time"}, created, due) == created
    assert sla_start({ARRIVED_AT: (created + dt.timedelta(hours=1)).isoformat()}, created, None) == created
    escalated = created + dt.timedelta(minutes=5)
    assert sla_start({**feats, "escalated_at": escalated.isoformat()}, created, due) == escalated
    used = score_features(taxonomy, {"risk": 0.2, "severity": "P1", **feats}, cfg, created, due, created)[2]
    assert used["urgency"] > 0  # was 0: 3 of 4 hours gone, counted from the creation


# -- a case claimed during a rescore follows the new model's tier ---------------------------------------
def test_a_case_claimed_during_a_rescore_takes_the_new_tier_and_due_time(any_store, taxonomy, cfg):
    """Spam (P3, 3 days) read as a scam (P1, 4 hours) by the new champion while ann holds it: it kept
    P3 and its 3-day due time, went back to the spam queue ranked as P3, and the SLA sweep (P0, P1)
    never escalated it; now it is P1 due at T0 + 4h, in ann's hands and her queue until then."""
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["s1"]
    claim_case(any_store, case_id, "ann", cfg, now=AT)
    _promote(any_store, taxonomy, {"s1": scores_for(taxonomy, "scam", 0.9)})
    _rescore(any_store, taxonomy, cfg)
    row = case_row(any_store, case_id)
    assert (row["state"], row["claimed_by"], row["queue"], row["predicted_label"]) == ("claimed", "ann", "spam", "scam")
    assert (row["severity"], row["due_at"]) == ("P1", T0 + dt.timedelta(minutes=240))
    assert row["meta"]["features"]["severity"] == "P1"
    out = sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=3, minutes=30), progress=False)  # lease lapsed
    assert out["sla_escalated"] == 1, out
    assert case_row(any_store, case_id)["queue"] == cfg.escalation_queue


def test_a_claimed_case_whose_tier_is_unchanged_keeps_its_due_time(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.6}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["s1"]
    claim_case(any_store, case_id, "ann", cfg, now=AT)
    before = case_row(any_store, case_id)
    _promote(any_store, taxonomy, {"s1": scores_for(taxonomy, "scam", 0.95)})
    _rescore(any_store, taxonomy, cfg)
    row = case_row(any_store, case_id)
    assert (row["severity"], row["due_at"], row["priority"]) == (before["severity"], before["due_at"], before["priority"])


# -- an aware `now` is stored as naive UTC -------------------------------------------------------------
def test_an_aware_now_given_to_a_rescore_is_stored_as_utc(any_store, taxonomy, cfg):
    """`now` = 10:10 at UTC-5 (15:10 UTC... here LATER): the re-planned case's `updated_at` was
    written as the zone's wall clock on SQLite, five hours before the rescore."""
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    _promote(any_store, taxonomy, {"s1": scores_for(taxonomy, "scam", 0.9)})
    out = _rescore(any_store, taxonomy, cfg, now=LATER.replace(tzinfo=dt.timezone.utc).astimezone(EST))
    assert out["replanned"] == 1
    row = case_row(any_store, case_ids(any_store)["s1"])
    assert (row["updated_at"], row["severity"], row["due_at"]) == (LATER, "P1", T0 + dt.timedelta(minutes=240))


def test_an_aware_now_counts_campaign_growth_in_utc(any_store, taxonomy, cfg):
    """The growth window (24 h before `now`) was compared as the zone's wall clock on SQLite: a member
    added 26 hours before the build counted as new at UTC-5."""
    from test_queue_support import add_campaign

    wave = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9} for i in range(3)])
    add_campaign(any_store, wave, added_at=T0 - dt.timedelta(hours=2))
    now = (T0 + dt.timedelta(hours=24)).replace(tzinfo=dt.timezone.utc).astimezone(EST)
    build_cases(any_store, taxonomy, cfg, now=now, progress=False)
    C = Case.__table__
    with any_store.read() as conn:
        meta = conn.execute(select(C.c.meta).where(C.c.campaign_id.is_not(None))).scalar_one()
    assert meta["features"]["campaign_growth"] == 0.0


# -- a queue removed from queues.yaml while cases wait in it --------------------------------------------
def test_cases_waiting_in_a_removed_queue_are_rerouted_by_the_next_build(any_store, taxonomy, cfg):
    """The spam queue and its route taken out of queues.yaml: its waiting case stayed in `spam`, which
    no claim could name (`next_case`: unknown queue) and the start queue passed over, with no word
    from the build. Now the next build re-plans it into the queue its routes give, and says so."""
    from labeling.claims import next_case

    add_scored(any_store, taxonomy, [{"id": "s1", "label": "spam", "p": 0.9}, {"id": "x1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    ids = case_ids(any_store)
    before = case_row(any_store, ids["s1"])
    assert before["queue"] == "spam"
    smaller = cfg.model_copy(update={"queues": {q: d for q, d in cfg.queues.items() if q != "spam"},
                                     "routes": [r for r in cfg.routes if r.queue != "spam"]})
    out = build_cases(any_store, taxonomy, smaller, now=AT, progress=False)
    row = case_row(any_store, ids["s1"])
    assert (row["queue"], row["state"], row["severity"], row["due_at"]) == (
        smaller.default_queue, "open", before["severity"], before["due_at"])
    assert (out.get("rerouted"), out["rescored"]) == (1, 1), out
    assert case_row(any_store, ids["x1"])["updated_at"] == T0  # a case in a queue still there is left alone
    assert next_case(any_store, "ann", smaller.default_queue, smaller, now=AT)["id"] == ids["s1"]
    assert build_cases(any_store, taxonomy, smaller, now=LATER, progress=False).get("rerouted", 0) == 0


# -- review.yaml against queues.yaml -----------------------------------------------------------------
@pytest.mark.parametrize("old,new,field,why", [
    ("lease_warning_seconds: 120", "lease_warning_seconds: 900", "lease_warning_seconds", "every claim starts warned"),
    ("break_queue: low-risk", "break_queue: appeals", "break_queue", "appeals queue, a lead's"),
    ("break_queue: low-risk", "break_queue: label-review", "break_queue", "label re-review queue, a lead's"),
])
def test_review_timers_and_break_queue_that_clash_with_the_queues_are_refused(tmp_path, taxonomy, queue_config,
                                                                               old, new, field, why):
    """A lease warning as long as the lease (900 s) warned from the claim on, and a break queue of
    the appeals or re-review queue sent an analyst at their exposure budget to a queue only a
    lead works (the screen offered it, `start_queue` never would): both loaded silently."""
    import shutil

    from core.config import ConfigError, config_dir
    from labeling.review_config import load_review_settings

    shutil.copytree(config_dir(), tmp_path / "cfg")
    path = tmp_path / "cfg" / "review.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_review_settings(tmp_path / "cfg", taxonomy=taxonomy, queues=queue_config)
    msg = str(err.value)
    assert "\n" not in msg and "review.yaml" in msg and field in msg and why in msg, msg


@pytest.mark.parametrize("field", ["campaign_size_ref", "reports_ref"])
def test_a_priority_reference_past_any_count_is_refused_when_read(tmp_path, taxonomy, field):
    """A 400-digit reference passed validation, then `math.log1p` raised OverflowError on every
    build and sweep instead of a config error naming the field."""
    import shutil

    from core.config import ConfigError, config_dir
    from labeling.queue_config import load_queue_config

    cfg = tmp_path / "configs"
    shutil.copytree(config_dir(), cfg)
    text = (cfg / "queues.yaml").read_text(encoding="utf-8")
    assert f"  {field}:" in text
    import re as _re
    (cfg / "queues.yaml").write_text(_re.sub(rf"(\n\s*{field}:)\s*\d+", rf"\g<1> {'9' * 400}", text),
                                     encoding="utf-8")
    with pytest.raises(ConfigError, match=field) as err:
        load_queue_config(cfg, taxonomy=taxonomy)
    assert "\n" not in str(err.value)
