"""A trend analyst's view of campaigns (`clustering.explore`, `campaigns show|timeline`, the
Campaigns tab), attacked with real scam-wave shapes.

The tab's Apply, pressed with a campaign id typed in the box before any Show (the page state
starts empty), decided every member with no preview read; each list, page and timeline read a
wave's members, decisions and predictions by lists of ids, one statement per 500 members (600
for a wave of 100,000, on every click); the CLI printed stored UTC times bare, read as local.
"""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, update

from clustering import explore, facts
from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.schema import Decision, Item, ModelVersion, Prediction
from workbench.cli import cli

from test_campaign_bulk_integrity import _App, _camp
from test_queue_support import T0, add_campaign, add_scored, asked, scores_for
from test_ui_tabs_fixes import _campaigns, _decisions


def _dated(store, taxonomy, name, times):
    ids = [f"{name}{i:05d}" for i in range(len(times))]
    add_scored(store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in ids])
    with store.begin() as conn:
        for i, t in zip(ids, times):
            conn.execute(update(Item.__table__).where(Item.__table__.c.id == i).values(created_at=t))
    return add_campaign(store, ids)


# --- the Campaigns tab's Apply needs a preview read ------------------------------------------------

def test_apply_before_any_show_is_refused_and_decides_nothing(sqlite_store, taxonomy, queue_config):
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    fns = _campaigns(_App(sqlite_store, taxonomy, cfg))
    apply = ("lead", "scam", "block_sender", "", False, None)
    said = fns["act_on_campaign"][0](cid, *apply, {})  # the tab's state as it starts: nothing shown
    assert said == (f"Warning: Not saved: campaign {cid} is not shown: press Show and read what applying "
                    "would do before applying.")
    assert _decisions(sqlite_store) == 0  # was: all 3 decided, unread
    shown = fns["first"][0](cid, "lead", None)
    assert "labels 3 of 3 members" in shown[0]
    assert fns["act_on_campaign"][0](cid, *apply, shown[-1]).startswith("Saved: scam / block_sender applied to 3")


# --- a wave's facts, pages and timeline in a bounded number of statements ---------------------------

def test_a_wave_of_1200_members_asks_the_store_as_often_as_one_of_20(any_store, taxonomy):
    day = dt.datetime(2026, 11, 25, 23, 0)  # across a UTC midnight, several members per instant
    small = _dated(any_store, taxonomy, "s", [day + dt.timedelta(minutes=7 * i) for i in range(20)])
    big_times = [day + dt.timedelta(minutes=i // 3) for i in range(1200)]
    big = _dated(any_store, taxonomy, "b", big_times)
    counts: dict[str, list[int]] = {"timeline": [], "detail": [], "list": []}
    for cid, offset in ((small, 1), (big, 0)):  # the list, biggest first: one campaign a page
        for what, read in (("timeline", lambda: explore.campaign_timeline(any_store, cid, freq="h")),
                           ("detail", lambda: explore.campaign_detail(any_store, cid, members_limit=5,
                                                                      taxonomy=taxonomy, now=T0)),
                           ("list", lambda: explore.list_campaigns(any_store, limit=1, offset=offset,
                                                                   taxonomy=taxonomy, now=T0))):
            with asked(any_store) as seen:
                got = read()
            counts[what].append(seen[0])
            if what == "list":
                assert got[0]["id"] == cid
    assert counts["timeline"][0] == counts["timeline"][1]  # was 4 and 6
    assert counts["detail"][0] == counts["detail"][1]  # was 18 and 22
    assert counts["list"][0] == counts["list"][1]
    # the same buckets as one time per member gave: UTC hours, midnight between two of them
    got = explore.campaign_timeline(any_store, big, freq="h")["buckets"]
    assert [(b["start"], b["new"], b["size"]) for b in got] == facts.timeline(big_times, "h")
    assert [b["new"] for b in got] == [180, 180, 180, 180, 180, 180, 120]
    assert got[1]["start"] == dt.datetime(2026, 11, 26, 0, 0)
    days = explore.campaign_timeline(any_store, big, freq="D")["buckets"]
    assert [(b["start"].day, b["new"]) for b in days] == [(25, 180), (26, 1020)]
    d = explore.campaign_detail(any_store, big, members_limit=0, taxonomy=taxonomy, with_links=True,
                                now=day + dt.timedelta(hours=6, minutes=30))
    assert len(d["members"]) == len(d["member_links"]) == 1200 and d["members"][0]["linked_by"] == "test"
    # now 05:30: the minutes 04:30-05:30 (61 of them, 3 members each); those dated after now not yet
    assert (d["growth"]["last_hour"], d["growth"]["last_day"]) == (61 * 3, 391 * 3)


def test_the_joined_reads_keep_the_label_and_the_prediction_of_record(any_store, taxonomy):
    """The facts now read decisions and predictions joined to the campaign; they must name the same
    label of record (a superseding decision, else the latest) and prediction of record (the
    champion's over a newer challenger's) as `core.labels` and `core.predictions` do by id."""
    ids = add_scored(any_store, taxonomy, [{"id": f"r{i}", "label": "spam", "p": 0.9} for i in range(4)])
    cid = add_campaign(any_store, ids)
    dec = {"reviewer": "lead", "kind": "review", "action": "remove", "taxonomy_version": taxonomy.version,
           "created_at": T0}
    with any_store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__), [
            {"id": "test-model-1", "kind": "tfidf", "artifact_path": "x", "labels": taxonomy.labels,
             "role": "champion", "promoted_at": T0},
            {"id": "newer", "kind": "tfidf", "artifact_path": "y", "labels": taxonomy.labels, "role": "challenger",
             "promoted_at": None}])
        conn.execute(insert(Prediction.__table__), [  # newer, never promoted: not of record
            {"item_id": i, "model_version": "newer", "label": "benign", "score": 0.99,
             "scores": scores_for(taxonomy, "benign", 0.99), "uncertainty": 0.01,
             "taxonomy_version": taxonomy.version, "created_at": T0} for i in ids[:2]])
        first = conn.execute(insert(Decision.__table__).values(item_id="r0", label="spam", **dec)
                             .returning(Decision.__table__.c.id)).scalar_one()
        conn.execute(insert(Decision.__table__).values(item_id="r0", label="scam", supersedes_id=first, **dec))
        conn.execute(insert(Decision.__table__).values(item_id="r1", label="benign", **dec))
        conn.execute(insert(Decision.__table__).values(item_id="r1", label="hate", **dec))
    d = explore.campaign_detail(any_store, cid, taxonomy=taxonomy, now=T0)
    with any_store.read() as conn:
        labels = {k: v["label"] for k, v in current_decisions(conn, ids).items()}
        preds = predictions_of_record(conn, ids)
    assert labels == {"r0": "scam", "r1": "hate"} and {p["model_version"] for p in preds.values()} == {"test-model-1"}
    assert d["label_mix"] == facts.label_mix(labels.values()) and d["decided"] == 2
    assert d["mean_scores"] == facts.mean_scores(p["scores"] for p in preds.values())
    assert d["scored"] == 4 and {m["item_id"]: m["decided_label"] for m in d["members"]} == {**labels, "r2": None,
                                                                                           "r3": None}
    assert explore.list_campaigns(any_store, taxonomy=taxonomy, now=T0)[0]["label_mix"] == d["label_mix"]


# --- the CLI says its times are UTC ------------------------------------------------------------------

def test_the_cli_names_utc_on_a_campaigns_times(sqlite_store, taxonomy, tmp_path):
    cid = _dated(sqlite_store, taxonomy, "u", [dt.datetime(2026, 11, 25, 23, 30), dt.datetime(2026, 11, 26, 0, 10)])
    base = ["--data-dir", str(sqlite_store.data_dir)]
    res = CliRunner().invoke(cli, [*base, "campaigns", "timeline", str(cid), "--png", str(tmp_path / "t.png")])
    assert res.exit_code == 0, res.output
    assert "2026-11-25 23:00 UTC  +1" in res.output and "2026-11-26 00:00 UTC  +1" in res.output
    res = CliRunner().invoke(cli, [*base, "campaigns", "show", str(cid)])
    assert res.exit_code == 0, res.output
    assert "first seen 2026-11-25 08:00 UTC, last seen 2026-11-25 08:00 UTC" in res.output  # as add_campaign stored


@pytest.mark.parametrize("t", ["tel: +44(0)20-7946-0018", "+44 (0)20 7946 0018", "0044 (0)20 7946 0018",
                               "call 020 7946 0018"])
def test_a_london_number_after_a_bracketed_trunk_zero_is_the_phone(t):
    """'+44 (0)20 7946 0018' gave no phone at all, so it never linked to '020 7946 0018'."""
    from clustering.normalize import extract_entities

    assert extract_entities(t).phone == ("02079460018",)


@pytest.mark.parametrize("t", ["+44 (0) 12 34 56", "+44 (0)1 2345 6789", "scores +44 (0)12 345 678"])
def test_short_groups_after_a_bracketed_trunk_stay_no_phone(t):
    from clustering.normalize import extract_entities

    assert extract_entities(t).phone == ()
