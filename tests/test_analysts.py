"""Analyst quality (evaluation.analysts): each figure against a hand-counted fixture, sorted by
name, and the lead-only view refused to an analyst (CLI, service and UI share the check)."""
import datetime as dt

import pytest
from eval_support import seed_reviews

from core.config import config_dir
from core.hooks import PermissionDenied
from core.principals import Principal
from evaluation import analysts as an
from evaluation.config import load_evaluation_config

T = dt.datetime(2026, 11, 2)


def ev(i, who, kind, label, item, at, supersedes=None, action=None, override=False, model="spam", cal=None):
    return {"id": i, "reviewer": who, "kind": kind, "label": label, "action": action or label, "item_id": item,
            "created_at": T + dt.timedelta(hours=at), "supersedes_id": supersedes, "is_override": override,
            "model_label": model, "case_id": i, "calibration_set": cal}


EVENTS = [
    ev(1, "zoe", "review", "spam", "a", 1),
    ev(2, "zoe", "review", "benign", "b", 2, override=True),
    ev(3, "abe", "review", "spam", "c", 3),
    ev(4, "lea", "qa_audit", "spam", "a", 10),       # re-review of zoe on a: pass
    ev(5, "lea", "qa_audit", "spam", "b", 11),       # re-review of zoe on b: fail
    ev(6, "abe", "qa_audit", "spam", "d", 12),       # a first audit, nobody before: no pair
    ev(7, "lea", "review", "hate", "c", 30, supersedes=3),   # abe's c corrected: rework
    ev(8, "zoe", "review", "spam", "e", 26),
    ev(9, "zoe", "calibration", "spam", "a", 40, cal="w"),
    ev(10, "abe", "calibration", "benign", "a", 41, cal="w"),
    ev(11, "zoe", "calibration", "hate", "c", 42, cal="w"),
    ev(12, "abe", "calibration", "hate", "c", 43, cal="w"),
]
GOLD = {"a": {"label": "spam", "reviewer": "lea"}, "c": {"label": "hate", "reviewer": "lea"}}


def test_each_figure_by_hand():
    assert an.qa_pass_pairs(EVENTS) == [("zoe", True), ("zoe", False)]
    cal = [e for e in EVENTS if e["kind"] == "calibration"]
    assert an.gold_pairs(cal, GOLD) == {"zoe": [("spam", "spam"), ("hate", "hate")],
                                        "abe": [("benign", "spam"), ("hate", "hate")]}
    peers = an.peer_pairs(cal)
    assert sorted(peers["zoe"]) == [("hate", "hate"), ("spam", "benign")]
    assert an.rework_flags(EVENTS) == {"zoe": [False, False, False], "abe": [True, False], "lea": [False, False]}
    rows = an.analyst_table(EVENTS, GOLD, conf=0.9)
    assert [r["analyst"] for r in rows] == ["abe", "lea", "zoe"]  # by name, never by a score
    zoe = rows[2]
    assert zoe["decisions"] == 3 and zoe["active_days"] == 2 and zoe["per_active_day"] == pytest.approx(1.5)
    assert (zoe["qa_pass_rate"]["estimate"], zoe["qa_pass_rate"]["n"]) == (0.5, 2)
    assert zoe["gold_agreement"]["estimate"] == 1.0 and zoe["gold_agreement"]["n"] == 2
    assert zoe["gold_agreement"]["kappa"] == pytest.approx(1.0)
    assert zoe["peer_agreement"]["estimate"] == 0.5 and zoe["peer_agreement"]["n"] == 2
    assert zoe["override_rate"]["estimate"] == pytest.approx(1 / 3) and zoe["override_rate"]["n"] == 3
    assert zoe["rework_rate"]["estimate"] == 0.0
    abe = rows[0]
    assert abe["rework_rate"]["estimate"] == 0.5 and abe["rework_rate"]["n"] == 2
    assert abe["gold_agreement"]["estimate"] == 0.5
    assert abe["qa_pass_rate"]["n"] == 0 and abe["qa_pass_rate"]["estimate"] is None
    for r in rows:
        for key in ("qa_pass_rate", "gold_agreement", "peer_agreement", "override_rate", "rework_rate"):
            assert "n" in r[key] and ("lo" in r[key])


def test_from_the_store_and_lead_only(sqlite_store, make_scored, taxonomy, queue_config, roles):
    plan = seed_reviews(sqlite_store, make_scored, taxonomy, queue_config)
    config = load_evaluation_config(config_dir())
    with pytest.raises(PermissionDenied, match="analyst_quality"):
        an.analyst_quality(sqlite_store, Principal("ann", "analyst"), config)
    with pytest.raises(PermissionDenied):
        an.analyst_quality(sqlite_store, Principal("eve", "engineer"), config)
    out = an.analyst_quality(sqlite_store, Principal("lea", "lead"), config)
    rows = {r["analyst"]: r for r in out["analysts"]}
    assert [r["analyst"] for r in out["analysts"]] == sorted(rows) and out["sorted_by"] == "name"
    ann, bob, cy = rows["ann"], rows["bob"], rows["cy"]
    assert (ann["qa_pass_rate"]["k"], ann["qa_pass_rate"]["n"]) == (4, 6)
    assert bob["qa_pass_rate"]["n"] == 0
    assert (cy["gold_agreement"]["k"], cy["gold_agreement"]["n"]) == (3, 5)
    assert (ann["gold_agreement"]["k"], ann["gold_agreement"]["n"]) == (5, 5)
    assert bob["gold_agreement"]["n"] == 0  # the gold label is bob's own: not counted
    assert (ann["peer_agreement"]["k"], ann["peer_agreement"]["n"]) == (8, 10)
    assert (cy["peer_agreement"]["k"], cy["peer_agreement"]["n"]) == (6, 10)
    n_bob = sum(d["who"] == "bob" for d in plan["decisions"])
    assert (bob["rework_rate"]["k"], bob["rework_rate"]["n"]) == (2, n_bob)
    n_ann = sum(d["who"] == "ann" for d in plan["decisions"])
    over_ann = sum(d["who"] == "ann" and d["label"] != d["model"] for d in plan["decisions"])
    assert (ann["override_rate"]["k"], ann["override_rate"]["n"]) == (over_ann, n_ann)
    assert ann["decisions"] == n_ann
    assert an.analyst_quality(sqlite_store, Principal("ada", "admin"), config, analyst="cy")["analysts"][0]["analyst"] == "cy"
