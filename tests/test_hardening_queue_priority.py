"""Hardening of queue priority, routing features and queues.yaml: feed counts that kept an item out
of review or stopped every build, features that made a priority NaN (frozen by the sweep), and
queue settings that validated but confused people, overflowed or wrote rows without end."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from core.config import ConfigError, config_dir
from core.schema import Case
from labeling.cases import build_cases
from labeling.escalation import sweep
from labeling.priority import PriorityError, score_features, sla_start
from labeling.queue_config import QUEUES_FILE, load_queue_config

from test_queue_support import T0, add_scored


def _cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


# -- counts an ingested row carries ------------------------------------------------------------------
@pytest.mark.parametrize("reports", [-1, 10**400], ids=["negative", "400 digits"])
def test_a_hostile_reports_count_neither_keeps_an_item_out_of_review_nor_stops_the_build(
        any_store, taxonomy, queue_config, reports):
    """`reports: -1` in an item's metadata: its scam was refused a case ('feature reports is -1; no
    case built', never queued); a 400-digit count: OverflowError, no case built for any item."""
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "meta": {"reports": reports}},
                                     {"id": "b", "label": "scam", "p": 0.9}])
    out = build_cases(any_store, taxonomy, _cfg(queue_config), now=T0, progress=False)
    assert (out["cases"], out["skipped"], out["by_queue"]) == (2, 0, {"fraud": 2})
    C = Case.__table__
    with any_store.read() as conn:
        feats = conn.execute(select(C.c.meta).where(C.c.item_id == "a")).scalar_one()["features"]
    assert feats["reports"] == (0 if reports < 0 else 10**9)


# -- features no priority was computed from ---------------------------------------------------------
def test_a_feature_stored_as_null_is_missing_and_the_sweep_refreshes_the_case(any_store, taxonomy, queue_config):
    """`risk: null` in a case's features became NaN in `np.asarray(None, dtype=float)`: the priority
    was NaN, which the sweep never wrote (no difference from NaN exceeds the epsilon): the case kept
    its creation priority for good while the other two were refreshed."""
    cfg = _cfg(queue_config)
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(3)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    C = Case.__table__
    with any_store.begin() as conn:
        r = conn.execute(select(C.c.id, C.c.meta).where(C.c.item_id == "s2")).one()
        conn.execute(update(C).where(C.c.id == r.id).values(
            meta=dict(r.meta, features=dict(r.meta["features"], uncertainty=None))))
    assert sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=60), progress=False)["reprioritised"] == 3
    with any_store.read() as conn:
        prios = dict(conn.execute(select(C.c.item_id, C.c.priority)).all())
    assert prios["s2"] < prios["s0"] == prios["s1"]  # refreshed, less only the uncertainty term


@pytest.mark.parametrize("change", [
    {"risk": None}, {"campaign_size": None}, {"score": None},
    {"learning": {"priority": float("nan"), "why": "x"}}, {"seed": {"priority": float("inf"), "why": "x"}},
    {"seed": {"priority": True, "why": "x"}}, {"seed": {"priority": 10**400, "why": "x"}},
])
def test_no_stored_feature_or_pin_makes_a_priority_that_is_not_a_number(taxonomy, queue_config, change):
    """Each gave NaN, infinity, 1.0 from a bool, or a TypeError / OverflowError in the sweep."""
    feats = {"risk": 0.5, "uncertainty": 0.1, "campaign_size": 0, "reports": 0, "severity": "P1",
             "label": "scam", "score": 0.9, "escalation": None}
    due = T0 + dt.timedelta(hours=4)
    plain = score_features(taxonomy, feats, queue_config, T0, due, T0)[0]
    p, why, _ = score_features(taxonomy, {**feats, **change}, queue_config, T0, due, T0)
    assert 0.0 <= p <= plain and "nan" not in why and not why.startswith(("seed", "learning"))


@pytest.mark.parametrize("name", ["reports", "campaign_size"])
def test_a_count_past_a_float_is_a_priority_error_not_an_overflow(taxonomy, queue_config, name):
    with pytest.raises(PriorityError, match=f"feature {name} is over 1,000,000,000"):
        score_features(taxonomy, {"risk": 0.5, name: 10**400}, queue_config, T0, None, T0)


def test_an_escalation_time_past_the_calendar_is_the_creation_clock():
    """'9999-12-31T23:59:59-05:00' in hand-edited meta overflowed converting to UTC: the sweep died."""
    assert sla_start({"escalated_at": "9999-12-31T23:59:59-05:00"}, T0, T0 + dt.timedelta(hours=4)) == T0


# -- queues.yaml ---------------------------------------------------------------------------------------
def _write(tmp_path, old: str, new: str):
    src = (config_dir() / QUEUES_FILE).read_text()
    assert old in src
    path = tmp_path / QUEUES_FILE
    path.write_text(src.replace(old, new, 1))
    return path


CAL = "  - {name: weekly-agreement, share: 0.01, reviewers: 3}"
STRATA = "seed: 20261125"


@pytest.mark.parametrize("old, new, problem", [
    ("  general:", '  General: "x"\n  general:', "queues: 'general' and 'General' differ only in case"),
    ("  general:", '  "general ": "x"\n  general:', r"queues: 'general ' is blank or padded"),
    ("  general:", '  "gen\\u200beral": "x"\n  general:', "queues: 'gen\\\\u200beral' holds the character U\\+200B"),
    (CAL, CAL + "\n  - {name: Weekly-Agreement, share: 0.01, reviewers: 3}", "calibration_sets: .* differ only in case"),
    (CAL, CAL.replace("reviewers: 3", "reviewers: 1000000"), "calibration_sets.0.reviewers': Input should be less"),
    (STRATA, "qa_strata:\n  - {policy: [], share: 0.5}\n" + STRATA, "qa_strata.0.policy"),
    ("risk: 1.0,", "risk: 1e308,", "priority.weights.risk': Input should be less than or equal to 1000"),
    ("growth_window_hours: 24", "growth_window_hours: 1e300", "priority.growth_window_hours': Input should be less"),
    ("  general:", "  " + "q" * 101 + ': "x"\n  general:', "queues: 'qqq.*is 101 characters, over 100"),
    ('version: "2026.11.1"', "version: 1.10", "write the version in quotes"),
])
def test_queue_settings_that_validated_but_misled_or_overflowed_are_refused(tmp_path, taxonomy, old, new, problem):
    """A second queue `General` loaded beside `general` (a route there filled a queue nobody
    drained); `reviewers: 1000000` wrote a million rows per drawn case; a QA band after one that
    covers it never set a share (`test_a_qa_band_an_earlier_one_covers_is_refused`); weights of 1e308 summed to an infinite priority; a growth window
    of 1e300 hours overflowed and stopped every build."""
    with pytest.raises(ConfigError, match=problem):
        load_queue_config(_write(tmp_path, old, new), taxonomy=taxonomy)


def test_a_qa_band_an_earlier_one_covers_is_refused(tmp_path, taxonomy):
    """Listed after `{policy: [hate, scam]}`, a band auditing confident hate at 0.9 loaded and never
    matched: those cases were audited at 0.3, not the 0.9 the lead wrote."""
    wide, narrow = "  - {policy: [hate, scam], share: 0.3}\n", "  - {policy: [hate], min_score: 0.8, share: 0.9}\n"
    with pytest.raises(ConfigError, match=r"qa_strata.1: never matches: qa_strata.0 takes every case it would"):
        load_queue_config(_write(tmp_path, STRATA, "qa_strata:\n" + wide + narrow + STRATA), taxonomy=taxonomy)
    path = _write(tmp_path, STRATA, "qa_strata:\n" + narrow + wide + STRATA)  # first instead, it is reachable
    assert [b.share for b in load_queue_config(path, taxonomy=taxonomy).qa_strata] == [0.9, 0.3]
