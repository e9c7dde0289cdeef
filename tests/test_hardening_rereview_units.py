"""A blind QA re-review draw is over judgements, not items.

`draw_rereviews` drew uniformly over decided items, so one campaign decision (ann decided a
300-member campaign in one action: 300 `bulk` rows) beside ann's 20 single decisions filled a
draw of 10 with copies of that one judgement: with seed 1 it took 9 of the 10 places (the 20
single judgements 1), and over 40 seeded draws of 1 it was taken 38 times. A campaign decision is
now one unit, re-reviewed through one member, and the case's meta says how many members it
covers: the same draw takes it once (1 of 10 with seed 1), the other 9 places go to single
decisions, and 40 draws of 1 take it twice (one judgement of 21).
"""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case
from labeling import decisions as DEC
from labeling.cases import build_cases, campaign_case
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from test_queue_support import T0, add_campaign, add_scored
from workbench.cli import cli

C = Case.__table__
MEMBERS, SINGLES = 300, 20


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                  "calibration_sets": []})


def _bulk_and_singles(store, taxonomy, cfg) -> tuple[int, int]:
    """ann decides a 300-member campaign in one action and 20 items one by one; (campaign, its case)."""
    add_scored(store, taxonomy, [{"id": f"m{i:03d}", "label": "scam", "p": 0.8} for i in range(MEMBERS)]
               + [{"id": f"s{i:02d}", "label": "scam", "p": 0.9} for i in range(SINGLES)])
    cid = add_campaign(store, [f"m{i:03d}" for i in range(MEMBERS)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    camp = campaign_case(store, cid)
    DEC.decide(store, taxonomy, camp, "ann", "scam", rationale="one prize scam", now=T0, config=cfg)
    with store.read() as conn:
        cases = dict(conn.execute(select(C.c.item_id, C.c.id).where(
            C.c.campaign_id.is_(None), C.c.item_id.like("s%"))).all())
    for i in range(SINGLES):
        DEC.decide(store, taxonomy, cases[f"s{i:02d}"], "ann", "scam", rationale="first look", now=T0, config=cfg)
    return cid, camp


def _drawn(store, out) -> list[tuple[str, dict]]:
    with store.read() as conn:
        return [(r.item_id, r.meta["rereview"]) for r in conn.execute(
            select(C.c.item_id, C.c.meta).where(C.c.id.in_(out["case_ids"])).order_by(C.c.id))]


def test_a_campaign_decision_is_one_unit_of_the_draw(any_store, taxonomy, cfg):
    cid, camp = _bulk_and_singles(any_store, taxonomy, cfg)
    out = draw_rereviews(any_store, cfg, "lena", 10, analyst="ann", seed=1)
    drawn = _drawn(any_store, out)
    bulk = [m for i, m in drawn if i.startswith("m")]
    # the figure: the campaign decision's share of the draw (9 of 10 with this seed, over items)
    assert (len(drawn), len(bulk)) == (10, 1), [i for i, _ in drawn]
    assert out["candidates"] == SINGLES + 1  # 21 judgements, not 320 items
    assert bulk[0]["unit"] == {"kind": "campaign decision", "members": MEMBERS, "campaign_id": cid,
                               "campaign_case_id": camp}
    assert all(m["unit"] == {"kind": "single decision", "members": 1} for i, m in drawn if i.startswith("s"))
    [said] = out["campaign_decisions"]
    assert (said["members"], said["campaign_id"], said["item_id"]) == (MEMBERS, cid, next(
        i for i, _ in drawn if i.startswith("m")))


def test_each_judgement_has_the_same_chance(any_store, taxonomy, cfg):
    """40 draws of 1 (seeds 0..39, each case removed again): over items the campaign decision was
    taken 38 times (300/320 of the items), as one judgement of 21 it is taken twice."""
    from sqlalchemy import delete

    _bulk_and_singles(any_store, taxonomy, cfg)
    taken = 0
    for seed in range(40):
        out = draw_rereviews(any_store, cfg, "lena", 1, seed=seed)
        taken += _drawn(any_store, out)[0][0].startswith("m")
        with any_store.begin() as conn:
            conn.execute(delete(C).where(C.c.id.in_(out["case_ids"])))
    assert taken <= 4, taken  # 2 with these seeds; 38 over items


def test_a_campaign_decision_waiting_for_re_review_is_not_drawn_again(any_store, taxonomy, cfg):
    """A draw of everything queued one member of it; the next drew the other 299 members, 299 more
    re-reviews of the judgement already waiting for one."""
    _bulk_and_singles(any_store, taxonomy, cfg)
    first = draw_rereviews(any_store, cfg, "lena", 500, seed=1)
    assert (first["drawn"], first["candidates"]) == (SINGLES + 1, SINGLES + 1)
    assert sum(i.startswith("m") for i, _ in _drawn(any_store, first)) == 1
    again = draw_rereviews(any_store, cfg, "lena", 500, seed=2)
    assert (again["drawn"], again["candidates"]) == (0, 0)


def test_a_correction_of_one_member_is_a_judgement_of_its_own(any_store, taxonomy, cfg):
    """Lena corrected one member of ann's campaign decision: that is lena's judgement, the other
    299 still ann's one."""
    _bulk_and_singles(any_store, taxonomy, cfg)
    with any_store.read() as conn:
        first = conn.execute(select(DEC.D.c.id).where(DEC.D.c.item_id == "m005")).scalar_one()
    DEC.correct(any_store, taxonomy, first, "lena", "spam", "an advert, not a scam", now=T0 + dt.timedelta(hours=1))
    ann = draw_rereviews(any_store, cfg, "lee", 50, analyst="ann", seed=3)
    assert ann["candidates"] == SINGLES + 1 and ann["campaign_decisions"][0]["members"] == MEMBERS - 1
    lena = draw_rereviews(any_store, cfg, "lee", 50, analyst="lena", seed=3)
    assert (lena["candidates"], lena["drawn"]) == (1, 1)
    assert _drawn(any_store, lena) == [("m005", {"drawn": 1, "candidates": 1, "analyst": "lena",
                                                  "unit": {"kind": "single decision", "members": 1}})]


def test_the_cli_says_which_case_re_reviews_a_campaign_decision(any_store, taxonomy, cfg):
    cid, camp = _bulk_and_singles(any_store, taxonomy, cfg)
    base = ["--data-dir", str(any_store.data_dir)] + ([] if any_store.is_sqlite else ["--db", any_store.url])
    res = CliRunner().invoke(cli, [*base, "rereview", "--n", "30", "--seed", "4", "--as", "lena"],
                             env={"WORKBENCH_TOKEN": None})
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith(f"{SINGLES + 1} of {SINGLES + 1} decisions queued for blind re-review"), lines
    assert len(lines) == 2 and f"of campaign {cid}'s decision of {MEMBERS} members (case {camp})" in lines[1], lines


def test_an_aware_now_is_stored_as_utc(any_store, taxonomy, cfg):
    """A draw given an aware time (UTC+05:00) stored its wall-clock time on SQLite: the case was
    created 5 hours off in the store's naive-UTC times."""
    _bulk_and_singles(any_store, taxonomy, cfg)
    at = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    out = draw_rereviews(any_store, cfg, "lena", 2, seed=5, now=at)
    with any_store.read() as conn:
        times = set(conn.execute(select(C.c.created_at).where(C.c.id.in_(out["case_ids"]))).scalars())
    assert times == {dt.datetime(2026, 11, 25, 9, 0)}


def test_an_item_under_appeal_is_not_drawn(any_store, taxonomy, cfg):
    """An appeal waits on s00's decision and on one member of the campaign decision: the draw queued
    s00 (21 of 21), and the lead's blind answer would supersede a decision only the appeal may
    settle (as a campaign decision leaves a member under appeal alone)."""
    from labeling.appeals import appeal

    _bulk_and_singles(any_store, taxonomy, cfg)
    for item in ("s00", "m000"):
        appeal(any_store, item, "author", "it was a real prize", taxonomy, now=T0, config=cfg)
    out = draw_rereviews(any_store, cfg, "lena", 500, seed=1)
    drawn = [i for i, _ in _drawn(any_store, out)]
    assert (out["candidates"], out["drawn"]) == (SINGLES, SINGLES) and "s00" not in drawn, drawn
    assert "m000" not in drawn and any(i.startswith("m") for i in drawn), drawn  # another member stands for it
