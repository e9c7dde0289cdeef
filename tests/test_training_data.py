"""Training data without leakage (issue 18): grouped, stable splits; a bulk decision counts once
per text; calibration copies resolve by the configured rule; corrections and appeals supersede."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pytest
from sqlalchemy import insert, select

from core.schema import Campaign, CampaignMember, Case, Decision, Item, LearningSplit, User, utcnow
from labeling.training_data import (EXCLUDED, human_weights, learning_data, proposed_side, resolve_calibration)
from models.config import LearningSettings, load_models_config
from models.training import TrainingSet, replicate_by_weight
from test_models_fixtures import add_items, toy_corpus

SETTINGS = LearningSettings()
ENGINEER = "eng"  # a trusted in-process caller (the role policy abstains on plain strings)


def _campaign(store, cid: int, item_ids: list[str]) -> None:
    with store.begin() as conn:
        if conn.execute(select(Campaign.__table__.c.id).where(Campaign.__table__.c.id == cid)).first() is None:
            conn.execute(insert(Campaign.__table__).values(id=cid, exemplar_item_id=item_ids[0], size=len(item_ids)))
        for i in item_ids:
            conn.execute(insert(CampaignMember.__table__).values(item_id=i, campaign_id=cid))


def _decide(store, item_id: str, label: str, *, kind: str = "review", reviewer: str = "ann", case_id=None,
            campaign_id=None, supersedes=None, at: dt.datetime | None = None) -> int:
    with store.begin() as conn:
        return conn.execute(insert(Decision.__table__).values(
            item_id=item_id, label=label, action="remove", kind=kind, reviewer=reviewer, case_id=case_id,
            campaign_id=campaign_id, supersedes_id=supersedes, taxonomy_version="t",
            created_at=at or utcnow()).returning(Decision.__table__.c.id)).scalar()


def _by_id(ld):
    return {i: (lab, org, s) for i, lab, org, s in zip(ld.data.ids, ld.data.labels, ld.data.origin, ld.split)}


@pytest.fixture
def corpus(any_store):
    """200 toy items in 30 campaigns of 4 (members need not share a label for the split rule), on
    SQLite and on PostgreSQL (the stored sides are written with each dialect's insert-or-ignore)."""
    texts, ys = toy_corpus(40)
    ids = add_items(any_store, texts, ys)
    for c in range(30):
        _campaign(any_store, c + 1, ids[c * 4:(c + 1) * 4])
    return any_store, ids


def _sides_by_group(ld) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for g, s in zip(ld.groups, ld.split):
        if s != EXCLUDED:
            out[g].add(s)
    return out


def test_no_campaign_on_two_sides_and_a_second_run_keeps_every_split(corpus, taxonomy):
    store, ids = corpus
    for i in ids[::3]:
        _decide(store, i, "spam")
    first = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    sides = _sides_by_group(first)
    assert all(len(s) == 1 for s in sides.values())
    camp_sides = {g: s for g, s in sides.items() if g.startswith("campaign:")}
    assert len(camp_sides) == 30 and {"train", "test"} <= set().union(*camp_sides.values())
    assert 0.05 < (first.split == "test").mean() < 0.4
    # Members of one campaign, read back: all on the side stored for them.
    with store.read() as conn:
        stored = dict(conn.execute(select(LearningSplit.item_id, LearningSplit.split)).all())
    assert {stored[i] for i in ids[:4]} == {first.split[first.data.ids.index(ids[0])]}

    second = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    assert second.data.ids == first.data.ids and list(second.split) == list(first.split)

    # A changed salt (or another run of the hash) never moves a stored item.
    moved = learning_data(store, taxonomy, SETTINGS.model_copy(update={"split_salt": "other"}), ENGINEER)
    assert list(moved.split) == list(first.split)


def test_merged_campaigns_keep_sides_and_never_straddle(corpus, taxonomy):
    store, ids = corpus
    first = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    side = dict(zip(first.data.ids, first.split))
    by_camp = {c: side[ids[c * 4]] for c in range(30)}
    a = next(c for c, s in by_camp.items() if s == "train")
    b = next(c for c, s in by_camp.items() if s == "test")
    # A later clustering run merges campaign b into campaign a, and adds a fresh item to it.
    with store.begin() as conn:
        CM = CampaignMember.__table__
        conn.execute(CM.update().where(CM.c.campaign_id == b + 1).values(campaign_id=a + 1))
    new_id = add_items(store, ["brand new member text"], ["spam"], prefix="late")[0]
    _campaign(store, a + 1, [new_id])
    after = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    got = dict(zip(after.data.ids, after.split))
    with store.read() as conn:
        stored = dict(conn.execute(select(LearningSplit.item_id, LearningSplit.split)).all())
    for i in first.data.ids:  # no stored side ever moves
        assert stored[i] == side[i]
    merged = ids[a * 4:(a + 1) * 4] + ids[b * 4:(b + 1) * 4]
    assert {got[i] for i in ids[a * 4:(a + 1) * 4]} == {"train"}
    assert {got[i] for i in ids[b * 4:(b + 1) * 4]} == {EXCLUDED}  # stored test, now with trained members
    assert got[new_id] == "train" and stored[new_id] == "train"
    assert all(len(s) == 1 for s in _sides_by_group(after).values())
    assert len(merged) == 8


def test_a_new_copy_of_a_campaign_text_takes_its_campaigns_side(corpus, taxonomy):
    """A copy that arrives after the last clustering is in no campaign: keyed by its text alone it
    drew a side of its own, and could be tested on while its campaign twin trained."""
    store, ids = corpus
    first = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    side = dict(zip(first.data.ids, first.split))
    with store.read() as conn:
        text_of = dict(conn.execute(select(Item.id, Item.text).where(Item.id.in_(ids[:120]))).all())
    # one unclustered copy of a member of each of 30 campaigns (some land on each side by hash)
    copies = add_items(store, [text_of[ids[c * 4]] for c in range(30)], ["spam"] * 30, source="live", prefix="live")
    for i in copies:
        _decide(store, i, "spam")
    after = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    got, groups = dict(zip(after.data.ids, after.split)), dict(zip(after.data.ids, after.groups))
    for c, copy in enumerate(copies):
        assert groups[copy] == f"campaign:{c + 1}" and got[copy] == side[ids[c * 4]]
    assert all(len(s) == 1 for s in _sides_by_group(after).values())


def test_bulk_decision_counts_once_per_distinct_text(sqlite_store, taxonomy):
    texts = [f"WINNER! claim your prize of {100 + i} pounds, call 0906{i:07d} now" for i in range(20)]
    texts += [f"urgent: your account {i} is locked, verify at www.bank-{i}.example.com" for i in range(10)]
    texts += ["a completely different text with no template twin"]
    ids = add_items(sqlite_store, texts, [None] * len(texts), prefix="wave")
    _campaign(sqlite_store, 7, ids)
    for i in ids:
        _decide(sqlite_store, i, "scam", kind="bulk", case_id=None, campaign_id=7)
    ld = learning_data(sqlite_store, taxonomy, SETTINGS, ENGINEER)
    assert ld.stats["bulk_members"] == 31
    assert len(ld.data) == 3 and set(ld.data.labels) == {"scam"}
    assert ld.data.dropped["bulk copies (a campaign decision counts once per text)"] == 28
    # Decisions by review (not bulk) count per item.
    other = add_items(sqlite_store, texts[:5], [None] * 5, prefix="single")
    for i in other:
        _decide(sqlite_store, i, "scam")
    assert len(learning_data(sqlite_store, taxonomy, SETTINGS, ENGINEER).data) == 8


def test_calibration_copies_resolve_by_rule(sqlite_store, taxonomy):
    ids = add_items(sqlite_store, ["one text", "two text", "three text", "four text"], [None] * 4, prefix="cal")
    for who, lab in (("ann", "spam"), ("bob", "spam"), ("cat", "scam")):
        _decide(sqlite_store, ids[0], lab, kind="calibration", reviewer=who)
    for who, lab in (("ann", "spam"), ("lea", "scam")):  # a tie unless the lead decides it
        _decide(sqlite_store, ids[1], lab, kind="calibration", reviewer=who)
    # ann changes her mind on item 2: her latest copy counts, once.
    _decide(sqlite_store, ids[2], "benign", kind="calibration", reviewer="ann", at=utcnow() - dt.timedelta(hours=1))
    _decide(sqlite_store, ids[2], "hate", kind="calibration", reviewer="ann")
    # Item 3: copies disagree, a lead's decision of record adjudicates.
    _decide(sqlite_store, ids[3], "spam", kind="calibration", reviewer="ann")
    _decide(sqlite_store, ids[3], "scam", kind="calibration", reviewer="bob")
    _decide(sqlite_store, ids[3], "harassment", kind="review", reviewer="lea")
    with sqlite_store.begin() as conn:
        conn.execute(insert(User.__table__).values(name="lea", role="lead"))

    got = _by_id(learning_data(sqlite_store, taxonomy, SETTINGS, ENGINEER))
    assert got[ids[0]][0] == "spam" and got[ids[2]][0] == "hate" and got[ids[3]][0] == "harassment"
    assert ids[1] not in got  # majority: a tie teaches nothing
    lead = _by_id(learning_data(sqlite_store, taxonomy, SETTINGS.model_copy(update={"calibration_rule": "lead"}),
                                ENGINEER))
    assert lead[ids[1]][0] == "scam" and lead[ids[0]][0] == "spam"

    assert resolve_calibration([("a", "x"), ("b", "y"), ("c", "y")], "majority") == "y"
    assert resolve_calibration([("a", "x"), ("b", "y")], "majority") is None
    assert resolve_calibration([("a", "x"), ("b", "y"), ("c", "y")], "lead", leads={"a"}) == "x"
    with pytest.raises(ValueError):
        resolve_calibration([("a", "x")], "coin")


def test_corrections_and_appeal_reversals_supersede(sqlite_store, taxonomy):
    ids = add_items(sqlite_store, ["corrected text", "appealed text"], ["benign", "benign"], prefix="sup")
    first = _decide(sqlite_store, ids[0], "spam")
    _decide(sqlite_store, ids[0], "scam", supersedes=first)
    removed = _decide(sqlite_store, ids[1], "harassment")
    _decide(sqlite_store, ids[1], "benign", kind="appeal", supersedes=removed)
    got = _by_id(learning_data(sqlite_store, taxonomy, SETTINGS, ENGINEER))
    assert got[ids[0]][:2] == ("scam", "decision")
    assert got[ids[1]][:2] == ("benign", "decision")


def test_human_weights_favour_recent_decisions_and_scarce_sources():
    now = dt.datetime(2026, 12, 1)
    s = SETTINGS.model_copy(update={"human_weight": 4.0, "recency_boost": 1.0, "recency_half_life_days": 10,
                                    "scarce_source_decisions": 100, "max_scarcity": 3.0, "max_weight": 20})
    w = human_weights([now, now - dt.timedelta(days=10), now - dt.timedelta(days=1000)], ["a"] * 3, now, s)
    assert w[0] > w[1] > w[2] and w[0] == pytest.approx(4.0 * 3 ** 0 * min(3.0, (100 / 3) ** 0.5))
    many = human_weights([now] * 400 + [now] * 4, ["big"] * 400 + ["new"] * 4, now, s)
    assert many[0] == pytest.approx(4.0) and many[-1] == pytest.approx(12.0)  # capped at max_scarcity
    assert human_weights([now], ["x"], now, s.model_copy(update={"max_weight": 5.0}))[0] == 5.0


def test_replication_follows_weights_and_is_deterministic():
    ids = [f"i{k}" for k in range(2000)]
    data = TrainingSet(ids, ids, ["a", "b"] * 1000, ["source"] * 2000)
    w = np.where(np.arange(2000) < 1000, 1.0, 2.5)
    one, two = replicate_by_weight(data, w, 13), replicate_by_weight(data, w, 13)
    assert one.ids == two.ids
    counts = np.bincount([int(i[1:]) for i in one.ids], minlength=2000)
    assert (counts[:1000] == 1).all() and set(counts[1000:]) == {2, 3}
    assert abs(counts[1000:].mean() - 2.5) < 0.1
    with pytest.raises(ValueError):
        replicate_by_weight(data, w[:5], 13)


def test_proposed_side_is_a_salted_hash():
    keys = [f"campaign:{i}" for i in range(4000)]
    sides = [proposed_side(k, "s1", 0.2) for k in keys]
    assert sides == [proposed_side(k, "s1", 0.2) for k in keys]
    assert 0.17 < sides.count("test") / len(sides) < 0.23
    assert sides != [proposed_side(k, "s2", 0.2) for k in keys]


def test_models_yaml_learning_settings_load():
    cfg = load_models_config()
    assert cfg.learning.test_fraction == pytest.approx(0.2) and cfg.promotion.metric == "macro_f1"
    assert cfg.auto_retrain.enabled is False


def test_export_carries_the_same_stable_split(corpus, taxonomy, tmp_path):
    import datasets

    from labeling.export import export_labels

    store, ids = corpus
    for i in ids[::2]:
        _decide(store, i, "spam")
    export_labels(store, taxonomy, tmp_path / "out", include_source_labels=True, actor=ENGINEER, splits=SETTINGS)
    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    exported = dict(zip(ds["id"], ds["split"]))
    ld = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    assert exported == dict(zip(ld.data.ids, ld.split))
    assert set(exported.values()) == {"train", "test"}


def test_weight_cross_validation_prefers_the_weight_that_lets_humans_overrule_stale_source_labels():
    import random

    from evaluation.weight_tuning import cv_human_weight
    from labeling.training_data import LearningData

    rng = random.Random(0)
    filler = ["the", "a", "you", "we", "is", "now", "today", "this", "and", "my", "so", "it"]
    texts, ys = toy_corpus(20, labels=("benign", "scam", "hate"))
    origin = ["source"] * len(texts)
    # A word the sources labelled benign that, on the new surface, analysts call spam.
    for k in range(80):
        texts.append(" ".join(["zorp"] + rng.sample(filler, 4)))
        ys.append("benign")
        origin.append("source")
    for k in range(30):
        texts.append(" ".join(["zorp"] + rng.sample(filler, 4)) + f" n{k}")
        ys.append("spam")
        origin.append("decision")
    ids = [f"x{i}" for i in range(len(texts))]
    ld = LearningData(TrainingSet(ids, texts, ys, origin), np.array(["train"] * len(ids), dtype=object),
                      [f"text:{i}" for i in ids], np.ones(len(ids)), [None] * len(ids))
    out = cv_human_weight(ld, ["benign", "spam", "scam", "hate", "harassment"], "tfidf_lr", {"min_df": 1},
                          [1.0, 10.0], 3, 13, base_weight=1.0, max_weight=20.0)
    assert out["folds"] == 3 and set(out["scores"]) == {1.0, 10.0}
    assert out["scores"][10.0] > out["scores"][1.0] and out["chosen"] == 10.0


def test_head_cross_validation_scores_both_heads_on_the_policy_and_picks_the_better():
    from evaluation.weight_tuning import HEADS, cv_head
    from labeling.training_data import LearningData

    texts, ys = toy_corpus(25, labels=("benign", "scam", "harassment"))
    origin = ["source"] * len(texts)
    hate, _ = toy_corpus(12, labels=("hate",))
    texts += hate
    ys += ["hate"] * len(hate)
    origin += ["decision"] * len(hate)
    ids = [f"x{i}" for i in range(len(texts))]
    ld = LearningData(TrainingSet(ids, texts, ys, origin), np.array(["train"] * len(ids), dtype=object),
                      [f"text:{i}" for i in ids], np.ones(len(ids)), [None] * len(ids))
    labels = ["benign", "spam", "scam", "hate", "harassment"]
    params = {"min_df": 1, "embedding_weight": 0.0, "calibration_folds": 2}
    out = cv_head(ld, labels, "hybrid", params, 3, 13, ["hate"])
    assert out["folds"] == 3 and set(out["scores"]) == set(HEADS) and out["policies"] == ["hate"]
    assert all(0.5 < a <= 1.0 for a in out["scores"].values())      # both heads learn the toy hate
    best = max(out["scores"].values())
    assert out["chosen"] == next(h for h in HEADS if out["scores"][h] >= best - 1e-9)
    # A policy nobody labelled: nothing to choose on, the current head stays.
    none = cv_head(ld, labels, "hybrid", {**params, "head": "ovr"}, 3, 13, ["spam"])
    assert none["chosen"] == "ovr" and none["scores"] == {} and "no policy" in none["reason"]


def test_a_lead_re_review_is_not_the_uniform_qa_sample(sqlite_store, taxonomy):
    """The gate's `qa_audit` set stands for traffic; a lead's re-review draws decided items."""
    texts, ys = toy_corpus(4)
    ids = add_items(sqlite_store, texts[:2], [None, None])
    for item_id, meta in zip(ids, ({}, {"rereview": True})):
        with sqlite_store.begin() as conn:
            cid = conn.execute(insert(Case.__table__).values(
                item_id=item_id, queue="label-review", state="decided", priority=0.0, is_audit=True, meta=meta,
                created_at=utcnow(), updated_at=utcnow()).returning(Case.__table__.c.id)).scalar_one()
        _decide(sqlite_store, item_id, "spam", kind="qa_audit", case_id=cid)
    ld = learning_data(sqlite_store, taxonomy, SETTINGS, ENGINEER)
    assert dict(zip(ld.data.ids, ld.decision_kind)) == {ids[0]: "qa_audit", ids[1]: "rereview"}
