"""Analyst quality on degenerate data (kappa with one label only, an item in two calibration sets,
a change an appeal reversed, a campaign decided in one click) and campaign exploration on hostile
times (year 9999, an aware `now`), a merge mid-read and huge campaigns."""
from __future__ import annotations

import datetime as dt
import math
import warnings

import pytest
from sqlalchemy import select, update

from clustering import explore
from core.config import config_dir
from core.principals import Principal
from core.schema import Campaign, CampaignMember, Case, Item
from evaluation import analysts as an
from evaluation.config import load_evaluation_config
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.queue_config import load_queue_config
from test_queue_support import T0, add_campaign, add_scored

LEAD = Principal("lead", "lead")


def ev(i, who, kind, label, item, sup=None, cal=None, case=None, at=0):
    return {"id": i, "reviewer": who, "kind": kind, "label": label, "action": label, "item_id": item,
            "created_at": T0 + dt.timedelta(hours=at), "supersedes_id": sup, "is_override": False,
            "model_label": "spam", "case_id": case or i, "calibration_set": cal}


# --- evaluation.analysts ------------------------------------------------------------------------

def test_kappa_is_undefined_when_both_sides_give_one_label_and_matches_sklearn_otherwise():
    from sklearn.metrics import cohen_kappa_score

    gold = {i: {"label": "spam", "reviewer": "lea"} for i in "ab"}
    same = [ev(1, "ann", "calibration", "spam", "a", cal="w"), ev(2, "ann", "calibration", "spam", "b", cal="w"),
            ev(3, "bob", "calibration", "spam", "a", cal="w"), ev(4, "bob", "calibration", "spam", "b", cal="w")]
    ann = an.analyst_table(same, gold)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score(["spam", "spam"], ["spam", "spam"]))  # undefined for sklearn too
    for key in ("gold_agreement", "peer_agreement"):  # was kappa 1.0, "perfect", where sklearn gives NaN
        assert ann[key]["kappa"] is None and "one label" in ann[key]["kappa_note"]
        assert (ann[key]["estimate"], ann[key]["n"]) == (1.0, 2) and 0.0 <= ann[key]["lo"] <= ann[key]["hi"] <= 1.0
    mixed = {c: {"label": lab, "reviewer": "lea"} for c, lab in zip("abcd", ["spam", "benign", "spam", "spam"])}
    answers = [ev(n, "ann", "calibration", lab, c, cal="w") for n, (c, lab) in
               enumerate(zip("abcd", ["spam", "benign", "benign", "spam"]), 1)]
    got = an.analyst_table(answers, mixed)[0]["gold_agreement"]
    assert got["kappa"] == pytest.approx(cohen_kappa_score(["spam", "benign", "benign", "spam"],
                                                           ["spam", "benign", "spam", "spam"]))
    assert got["kappa"] == pytest.approx(0.5) and got["kappa_note"] is None and (got["k"], got["n"]) == (3, 4)


def test_an_item_in_two_calibration_sets_counts_once_per_analyst():
    # item a drawn into sets w and v, ann and bob answered both: gold 2/2 and peers 2 pairs for one item
    events = [ev(1, "ann", "calibration", "spam", "a", cal="w"), ev(2, "ann", "calibration", "spam", "a", cal="v"),
              ev(3, "bob", "calibration", "benign", "a", cal="w"), ev(4, "bob", "calibration", "benign", "a", cal="v")]
    rows = {r["analyst"]: r for r in an.analyst_table(events, {"a": {"label": "spam", "reviewer": "lea"}})}
    assert (rows["ann"]["gold_agreement"]["k"], rows["ann"]["gold_agreement"]["n"]) == (1, 1)
    assert (rows["bob"]["gold_agreement"]["k"], rows["bob"]["gold_agreement"]["n"]) == (0, 1)
    assert rows["ann"]["peer_agreement"]["n"] == 1 and rows["bob"]["peer_agreement"]["n"] == 1


def test_a_change_an_appeal_reversed_is_no_rework_of_the_original_decider():
    # ann said benign, a lead corrected it to spam, the appeal reversed that back to benign: ann was right
    events = [ev(1, "ann", "review", "benign", "x"), ev(2, "lena", "review", "spam", "x", sup=1, at=1),
              ev(3, "max", "appeal", "benign", "x", sup=2, at=2)]
    assert an.rework_flags(events) == {"ann": [False]}  # was [True]: the corrector's mistake on ann
    assert an.rework_flags(events[:2]) == {"ann": [True]}  # the correction standing: ann's rework
    # a same-label step then a change still reaches the original; an undone change is none
    chain = [ev(1, "ann", "review", "spam", "y"), ev(2, "lena", "review", "spam", "y", sup=1, at=1),
             ev(3, "max", "appeal", "benign", "y", sup=2, at=2)]
    assert an.rework_flags(chain) == {"ann": [True]}
    undone = [ev(1, "ann", "review", "spam", "z"), ev(2, "lena", "review", "benign", "z", sup=1, at=1),
              ev(3, "lena", "undo", "benign", "z", sup=2, at=2), ev(4, "ann", "review", "spam", "z", sup=3, at=2)]
    assert an.rework_flags(undone) == {"ann": [False]}


def test_a_campaign_decided_in_one_click_is_one_decision(any_store, taxonomy, roles):
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "qa_strata": [], "calibration_sets": []})
    members = [f"w{i}" for i in range(20)]
    add_scored(any_store, taxonomy, [{"id": m, "label": "spam", "p": 0.8, "text": f"claim your refund now ref {i}"}
                                     for i, m in enumerate(members)])
    add_campaign(any_store, members)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        camp = conn.execute(select(Case.id).where(Case.campaign_id.is_not(None))).scalar()
    DEC.decide(any_store, taxonomy, camp, LEAD, "scam", rationale="a refund scam", now=T0 + dt.timedelta(hours=1),
               config=cfg)
    lead = an.analyst_quality(any_store, LEAD, load_evaluation_config(config_dir()))["analysts"][0]
    assert lead["analyst"] == "lead"
    assert (lead["decisions"], lead["per_active_day"]) == (1, 1.0)  # was 20 and 20.0 for one click
    assert lead["override_rate"]["n"] == 20  # the report's rule: one per distinct text


# --- clustering.explore -------------------------------------------------------------------------

def _dated(store, taxonomy, name, times):
    ids = [f"{name}{i}" for i in range(len(times))]
    add_scored(store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in ids])
    with store.begin() as conn:
        for i, t in zip(ids, times):
            conn.execute(update(Item.__table__).where(Item.__table__.c.id == i).values(created_at=t))
    return add_campaign(store, ids)


@pytest.mark.parametrize("freq", ["auto", "h", "D"])
@pytest.mark.parametrize("times", [[dt.datetime(9999, 12, 31, 23, 30)],
                                   [dt.datetime(9999, 12, 31, 22, 5), dt.datetime(9999, 12, 31, 23, 59, 59)],
                                   [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59)]])
def test_members_dated_in_year_9999_get_a_timeline_and_a_plot(sqlite_store, taxonomy, tmp_path, freq, times):
    cid = _dated(sqlite_store, taxonomy, "m", times)
    out = explore.campaign_timeline(sqlite_store, cid, freq=freq, png_path=tmp_path / "t.png")
    assert out["buckets"][-1]["size"] == len(times) and sum(b["new"] for b in out["buckets"]) == len(times)
    assert out["buckets"][-1]["start"].year == 9999 and (tmp_path / "t.png").stat().st_size > 0
    with pytest.raises(explore.CampaignError, match="frequency"):
        explore.campaign_timeline(sqlite_store, cid, freq="week")


def test_an_aware_now_is_read_as_utc(sqlite_store, taxonomy):
    cid = _dated(sqlite_store, taxonomy, "n", [T0, T0 - dt.timedelta(hours=5)])
    now = (T0 + dt.timedelta(minutes=30)).replace(tzinfo=dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=2)))
    got = explore.campaign_detail(sqlite_store, cid, now=now)["growth"]  # was a TypeError traceback
    assert (got["last_hour"], got["last_day"]) == (1, 2)
    assert explore.list_campaigns(sqlite_store, now=now)[0]["growth"] == got


def test_a_campaign_merged_mid_read_is_read_at_one_moment(any_store, taxonomy, monkeypatch):
    add_scored(any_store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in ("a1", "a2", "b1", "b2")])
    a, b = add_campaign(any_store, ["a1", "a2"]), add_campaign(any_store, ["b1", "b2"])
    CT, MT = Campaign.__table__, CampaignMember.__table__
    members = explore._member_ids

    def merged_meanwhile(conn, cid):
        if cid == a:  # a re-cluster merges a into b between the campaign's row and its members
            with any_store.begin() as w:
                w.execute(update(MT).where(MT.c.campaign_id == a).values(campaign_id=b))
                w.execute(update(CT).where(CT.c.id == a).values(status="merged", size=0))
                w.execute(update(CT).where(CT.c.id == b).values(size=4))
        return members(conn, cid)

    monkeypatch.setattr(explore, "_member_ids", merged_meanwhile)
    d = explore.campaign_detail(any_store, a, taxonomy=taxonomy)
    assert (d["status"], d["size"], len(d["members"])) == ("active", 2, 2)  # PostgreSQL read 0 members


def test_campaigns_without_a_time_are_listed_last_on_both_stores(any_store, taxonomy):
    add_scored(any_store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in ("a1", "b1", "c1")])
    ids = [add_campaign(any_store, [m]) for m in ("a1", "b1", "c1")]
    with any_store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == ids[1]).values(last_seen=None))
    got = [r["id"] for r in explore.list_campaigns(any_store, sort="last_seen", min_size=1)]
    assert got == [ids[0], ids[2], ids[1]]  # PostgreSQL put the one without a time first


@pytest.mark.postgres
def test_a_campaign_of_more_members_than_a_query_takes_parameters_is_shown_whole(pg_store, taxonomy):
    ids = [f"i{n:06d}" for n in range(65_600)]
    add_scored(pg_store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in ids])
    cid = add_campaign(pg_store, ids)
    d = explore.campaign_detail(pg_store, cid, members_limit=0, taxonomy=taxonomy)  # was an OperationalError
    assert len(d["members"]) == len(ids) and d["members"][0]["linked_by"] == "test"


def test_an_undefined_kappa_reads_n_a_with_its_reason_in_the_report():
    from evaluation import render

    e = {"estimate": 1.0, "lo": 0.3, "hi": 1.0, "n": 2, "kappa": None, "kappa_note": "undefined: one label only on both sides"}
    assert render.kappa(e).endswith(", κ n/a (undefined: one label only on both sides)")
    assert render.kappa(dict(e, kappa=0.5, kappa_note=None)).endswith(", κ 0.50")
