"""Hardening of cold-start seeding, the uniform samples, the learning share and re-review draws.

An examples path that exists but is no regular file (/dev/zero, a FIFO, a directory) is named as
such, not as missing; seeds take one item per campaign, so a spam wave varied past the near-copy
threshold cannot fill the seeds; a re-review draw of a misspelt analyst is refused with the close
names, not answered "0 of 0 decided items"; the learning share serves its configured fraction
however often it is re-planned (the serve sweeper re-plans every few seconds).
"""
from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from core.config import config_dir
from core.schema import Case
from core.store import open_store
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.claims import next_case
from labeling.errors import QueueError
from labeling.learning import apply_learning_share, plan_queue, served_learning, slot_positions
from labeling.queue_config import LearningShare, load_queue_config
from labeling.rereview import draw_rereviews
from labeling.seeding import nearest_round_robin, read_examples, seed_cases
from test_learning_share import EMB, _fill, _scores, share_config
from test_queue_support import T0, add_campaign, add_scored
from test_seeding import CHAT, SPAM, BagOfWords
from workbench.cli import cli

C = Case.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


# -- the examples file ------------------------------------------------------------------------------
def _not_regular(kind: str, tmp_path) -> str:
    if kind == "device":
        return "/dev/zero"
    p = tmp_path / "examples.txt"
    if kind == "fifo":
        os.mkfifo(p)
    else:
        p.mkdir()
    return str(p)


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_an_examples_path_that_is_no_regular_file_is_named_so(tmp_path, kind):
    """`--examples /dev/zero` said "no such examples file" of a path that exists; a missing file still does."""
    path = _not_regular(kind, tmp_path)
    with pytest.raises(QueueError, match="not a regular file") as err:
        read_examples(path)
    assert str(err.value).startswith(f"{path}: ") and "no such" not in str(err.value)
    with pytest.raises(QueueError, match="no such examples file"):
        read_examples(str(tmp_path / "missing.txt"))


def test_a_path_swapped_after_the_check_is_refused_on_the_open_file(monkeypatch):
    """The check and the open are two steps: a path that passed as a regular file and is a device
    (or a FIFO, whose open blocked) when opened is refused from the open file, never read."""
    import pathlib

    monkeypatch.setattr(pathlib.Path, "is_file", lambda self: True)  # the swap, between check and open
    with pytest.raises(QueueError, match="/dev/zero: not a regular file"):
        read_examples("/dev/zero")


def test_cli_seed_from_dev_zero_is_one_line_saying_not_a_regular_file(tmp_path):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "seed", "--policy", "spam",
                                   "--examples", "/dev/zero"])
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert "/dev/zero: not a regular file" in lines[0], lines[0]


# -- one seed per campaign --------------------------------------------------------------------------
def test_round_robin_keeps_every_group_of_a_row_apart():
    """A row's group may be a tuple of keys (text, campaign): a key taken by any pick blocks the row."""
    sims = np.array([[0.9], [0.8], [0.7], [0.6]])
    groups = [("t0", "camp"), ("t1", "camp"), ("t2", None), ("t0", None)]
    assert [r for r, _, _ in nearest_round_robin(sims, 4, 0.3, groups)] == [0, 2]
    assert [r for r, _, _ in nearest_round_robin(sims, 4, 0.3, ["a", "a", "b", "c"])] == [0, 2, 3]  # plain keys


def test_seeds_take_one_item_of_a_campaign_not_the_whole_wave(any_store, taxonomy, cfg):
    """Ten prize-spam variants of one campaign, each nearer the examples than anything else: with
    near-copies kept (max_similarity 1, or a wave varied past the threshold) every seed was one of
    them. The campaign's own case decides the wave; the seeds go on to other neighbours."""
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "benign", "p": 0.97, "text": t}
                                     for i, t in enumerate(SPAM)]
               + [{"id": f"c{i}", "label": "benign", "p": 0.95, "text": t} for i, t in enumerate(CHAT)])
    other = [f"claim your free cash prize {i} today, text WIN now" for i in range(3)]
    add_scored(any_store, taxonomy, [{"id": f"o{i}", "label": "benign", "p": 0.96, "text": t}
                                     for i, t in enumerate(other)])
    add_campaign(any_store, [f"s{i}" for i in range(10)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    out = seed_cases(any_store, taxonomy, cfg, "eng", policy="spam", embedder=BagOfWords(), now=T0,
                     examples=["you have won a free prize, call now to claim your cash"],
                     neighbours=4, uniform_share=0.0, max_similarity=1.0)
    seeds = [x["item_id"] for x in out["items"] if x["kind"] == "seed"]
    assert sum(i.startswith("s") for i in seeds) == 1, seeds
    assert sum(i.startswith("o") for i in seeds) == 3, seeds


# -- re-review draws --------------------------------------------------------------------------------
def _decided(store, taxonomy, cfg, n: int = 6) -> None:
    """`n` scam items: bob decides the last two, ann the others."""
    add_scored(store, taxonomy, [{"id": f"s{i:02d}", "label": "scam", "p": 0.9} for i in range(n)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        cases = dict(conn.execute(select(C.c.item_id, C.c.id).where(C.c.campaign_id.is_(None))).all())
    for i in range(n):
        decide(store, taxonomy, cases[f"s{i:02d}"], "ann" if i < n - 2 else "bob", "scam", rationale="first look",
               config=cfg)


def _cases(store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(C)).scalar())


def test_a_re_review_draw_of_a_misspelt_analyst_names_the_close_ones(any_store, taxonomy, cfg):
    """It answered "0 of 0 decided items", as if the analyst had decided nothing worth a look."""
    _decided(any_store, taxonomy, cfg)
    before = _cases(any_store)
    with pytest.raises(QueueError, match=r"no decisions by analyst 'anne' \(did you mean 'ann'\?\)"):
        draw_rereviews(any_store, cfg, "lena", 3, analyst="anne")
    with pytest.raises(QueueError, match=r"no decisions by analyst 'zed' \(2 analysts have decisions\)"):
        draw_rereviews(any_store, cfg, "lena", 3, analyst="zed")
    assert _cases(any_store) == before  # nothing queued
    # A real analyst whose decisions all wait for re-review already is an honest 0, not an error.
    assert draw_rereviews(any_store, cfg, "lena", 10, analyst="bob")["drawn"] == 2
    assert draw_rereviews(any_store, cfg, "lena", 10, analyst="bob", seed=3) | {"case_ids": []} == \
        {"queue": cfg.label_errors.queue, "candidates": 0, "drawn": 0, "case_ids": [], "seed": 3}


def test_a_re_review_draw_of_an_analyst_before_any_decision_says_none_is_decided(sqlite_store, cfg):
    with pytest.raises(QueueError, match=r"no decisions by analyst 'ann' \(no item is decided yet\)"):
        draw_rereviews(sqlite_store, cfg, "lena", 3, analyst="ann")


def test_cli_rereview_of_a_misspelt_analyst_is_one_line(tmp_path, taxonomy, cfg):
    data = tmp_path / "data"
    store = open_store(data)
    _decided(store, taxonomy, cfg)
    store.dispose()
    res = CliRunner().invoke(cli, ["--data-dir", str(data), "rereview", "--analyst", "annn", "--n", "2",
                                   "--as", "lena"])
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert "no decisions by analyst 'annn' (did you mean 'ann'?)" in lines[0], lines[0]
    res = CliRunner().invoke(cli, ["--data-dir", str(data), "rereview", "--analyst", "ann", "--n", "2",
                                   "--as", "lena", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["drawn"] == 2, res.output


def _drawn(store, cfg, **kw) -> tuple[set[str], int]:
    out = draw_rereviews(store, cfg, "lena", 10, analyst="ann", **kw)
    with store.read() as conn:
        return set(conn.execute(select(C.c.item_id).where(C.c.id.in_(out["case_ids"]))).scalars()), out["seed"]


def test_a_re_review_draw_is_unpredictable_unless_seeded_and_says_its_seed(tmp_path, taxonomy, cfg):
    """The default seed was 0: the same candidates gave the same draw, so an analyst could work out
    which of their decisions a lead's draw would take. A fixed seed still repeats a draw exactly."""
    stores = [open_store(tmp_path / f"data{k}") for k in range(4)]
    for st in stores:
        _decided(st, taxonomy, cfg, 42)  # 40 of ann's: C(40, 10) draws, one in 847,660,528 alike by chance
    (a, seed_a), (b, _) = _drawn(stores[0], cfg), _drawn(stores[1], cfg)
    assert a != b
    assert _drawn(stores[2], cfg, seed=seed_a) == (a, seed_a)  # the seed said repeats the draw
    assert _drawn(stores[3], cfg, seed=seed_a)[0] == a
    with pytest.raises(QueueError, match="seed of a re-review draw"):
        draw_rereviews(stores[3], cfg, "lena", 1, seed=-1)
    for st in stores:
        st.dispose()


def test_a_prediction_scoring_no_label_of_the_taxonomy_is_no_learning_case(sqlite_store, taxonomy):
    """Scores only for a retired policy made a zero row, whose margin is a perfect tie (1.0): the
    most "uncertain" case of the queue, served first as a learning case."""
    cfg = share_config(taxonomy)
    specs = [{"id": f"m{i}", "label": "benign", "scores": _scores(0.7), "text": f"sure {i}"} for i in range(20)]
    specs += [{"id": "old", "label": "benign", "scores": {"benign": 0.0, "retired_policy": 1.0}, "text": "old"},
              {"id": "unc", "label": "benign", "scores": _scores(0.55), "text": "unsure"}]
    add_scored(sqlite_store, taxonomy, specs)
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    plan = plan_queue(sqlite_store, taxonomy, cfg, "general", T0)
    with sqlite_store.read() as conn:
        items = dict(conn.execute(select(C.c.id, C.c.item_id)).all())
    picked = [items[c] for c, _ in sorted(plan["pin"].items(), key=lambda kv: kv[1]["rank"])]
    assert "old" not in picked and picked[0] == "unc", picked
    assert plan["eligible"] == 21


def test_a_neighbours_count_that_is_not_a_whole_number_is_one_line(sqlite_store, taxonomy, cfg):
    """`int(nan)` was a ValueError out of seed_cases, and 2.7 quietly became 2."""
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "benign", "p": 0.9, "text": t}
                                        for i, t in enumerate(SPAM)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    for bad in (float("nan"), 2.7, True, "8"):
        with pytest.raises(QueueError, match="neighbours must be a positive whole number"):
            seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[0]], embedder=BagOfWords(),
                       neighbours=bad, now=T0)
    assert seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[0]], embedder=BagOfWords(),
                      neighbours=3.0, uniform_share=0.0, max_similarity=1.0, now=T0)["seeded"] == 3


# -- the learning share, re-planned between claims --------------------------------------------------
def _served_with_replans(store, taxonomy, cfg, every: int, claims: int = 40) -> list[int]:
    """Claim positions of the learning cases among `claims` claims, re-planning every `every`
    claims (1: after each, as the serve sweeper does when claims are slower than its period)."""
    _fill(store, taxonomy, cfg)
    served = []
    for k in range(claims):
        now = T0 + dt.timedelta(seconds=k)  # each claim at its own time, within its lease
        if k % every == 0:
            apply_learning_share(store, taxonomy, cfg, "ops", now=now, embedding_model=EMB)
        served.append(next_case(store, "ann", "general", now=now, config=cfg))
    return [i for i, c in enumerate(served) if served_learning(c)]


@pytest.mark.parametrize("every", [1, 5])
def test_a_share_re_planned_between_claims_still_serves_its_fraction(any_store, taxonomy, every):
    """Each plan put the first slot 1 / share claims ahead of *now*: re-planned after every claim no
    learning case was ever claimed (0 of 40 at 25%), every 5 claims one in 5 (8 of 40)."""
    cfg = share_config(taxonomy)
    assert _served_with_replans(any_store, taxonomy, cfg, every) == slot_positions(10, 0.25)


def test_an_uneven_share_re_planned_after_every_claim_keeps_its_spacing(sqlite_store, taxonomy):
    cfg = share_config(taxonomy).model_copy(update={"learning": LearningShare(
        queues={"general": 0.3}, horizon=40, min_uncertainty=0.5, max_similarity=0.95)})
    got = _served_with_replans(sqlite_store, taxonomy, cfg, 1)
    assert got == slot_positions(12, 0.3) and len(got) == 12  # 30% of 40 claims, each 3 or 4 apart
