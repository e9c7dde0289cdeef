"""The learning loop audited with adversarial but realistic sequences (issue 18): a campaign mate
that left the data (an undo) still holds its group's side, keeps a test mate out while it
straddles and keeps the group seen by the champion; one bulk click on a wave counts once per text
toward an automatic retrain; a NaN / inf / negative weight grid is refused by name; two leads'
calibration copies resolve by store order; an appealed QA-audit decision stays in the QA sample."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import insert, select

from core.schema import Decision, LearningSplit, utcnow
from evaluation.promotion import retrain_due
from labeling.training_data import EXCLUDED, learning_data, proposed_side
from models.config import LearningSettings
from models.training import TrainingSet
from test_models_fixtures import add_items
from test_hardening_retrain import _scored_cases
from test_promotion_gate import MODELS
from test_training_data import _campaign, _decide

SETTINGS = LearningSettings()
ENGINEER = "eng"


def _undo(store, decision_id: int, item_id: str) -> None:
    with store.begin() as conn:
        conn.execute(insert(Decision.__table__).values(
            item_id=item_id, label="spam", action="none", kind="undo", reviewer="ann",
            supersedes_id=decision_id, taxonomy_version="t"))


def _sides(store) -> dict[str, str]:
    with store.read() as conn:
        return dict(conn.execute(select(LearningSplit.item_id, LearningSplit.split)).all())


def _fillers(store) -> None:
    """Source-labelled spam of unrelated texts, so the label has train-side examples either way."""
    words = ["apple", "river", "stone", "cloud", "maple", "tiger", "piano", "lemon", "ocean", "comet",
             "amber", "cedar", "delta", "ember", "fjord", "grove"]
    add_items(store, [f"an unrelated note about the {w} and its {w}s" for w in words], ["spam"] * len(words),
              prefix="fill")


def _campaign_on(side: str, start: int = 1) -> int:
    return next(c for c in range(start, start + 500) if proposed_side(f"campaign:{c}", SETTINGS.split_salt,
                                                                      SETTINGS.test_fraction) == side)


def test_a_campaign_mate_taken_out_by_an_undo_still_holds_the_side_a_champion_trained_it_on(any_store, taxonomy):
    """X is trained on (text group), then clustered with Y; X's decision is undone; Y is decided.
    Y's group (the campaign) had no stored side among the labelled items, so it drew one from the
    campaign key's hash: the test side, while a champion trained on X, Y's near-copy."""
    store = any_store
    _fillers(store)
    x, y = add_items(store, ["grab your free crypto bonus now at our lucky site",
                             "grab your free crypto bonus today at the lucky site"], [None, None], prefix="wave")
    dx = _decide(store, x, "spam")
    first = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    side_x = dict(zip(first.data.ids, first.split))[x]
    other = "test" if side_x == "train" else "train"
    cid = _campaign_on(other)
    _campaign(store, cid, [x, y])  # a clustering run joins them
    _undo(store, dx, x)
    _decide(store, y, "spam")
    after = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    got = dict(zip(after.data.ids, after.split))
    assert x not in got
    assert _sides(store)[y] == side_x  # Y takes the side its campaign mate is stored on
    assert got[y] == side_x


def test_a_test_member_whose_trained_mate_left_the_data_stays_excluded(any_store, taxonomy):
    """Y sits on the test side in campaign C; X, trained on as a text of its own, joins C (Y is
    excluded while C straddles); X's decision is undone: C still straddles (a champion trained on
    X), so Y stays out of the test split."""
    store = any_store
    _fillers(store)
    x, y = add_items(store, ["grab your free crypto bonus now at our lucky site",
                             "claim the lucky crypto gift before midnight tonight"], [None, None], prefix="wave")
    dx = _decide(store, x, "spam")
    side_x = dict(zip(*[(ld := learning_data(store, taxonomy, SETTINGS, ENGINEER)).data.ids, ld.split]))[x]
    other = "test" if side_x == "train" else "train"
    cid = _campaign_on(other)
    _campaign(store, cid, [y])
    _decide(store, y, "spam")
    assert dict(zip(*[(ld := learning_data(store, taxonomy, SETTINGS, ENGINEER)).data.ids, ld.split]))[y] == other
    _campaign(store, cid, [x])  # a later clustering run adds X to C
    both = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    assert EXCLUDED in set(both.split)
    _undo(store, dx, x)
    after = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    got = dict(zip(after.data.ids, after.split))
    assert x not in got
    assert got[y] == (EXCLUDED if other == "test" else "train")
    assert {k: v for k, v in _sides(store).items() if k in (x, y)} == {x: side_x, y: other}  # nothing moves


def test_one_bulk_click_on_a_wave_counts_once_per_text_toward_an_automatic_retrain(any_store, taxonomy, queue_config):
    """A campaign decision writes one row per member: a 12-member wave of 2 templates (which
    training learns as 2 examples) made a retrain due at 6 new decisions by itself."""
    store = any_store
    _scored_cases(store, taxonomy, queue_config)
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(update={
        "enabled": True, "after_decisions": 6, "override_rate_alarm": None})})
    texts = [f"WINNER! claim your prize of {100 + i} pounds, call 0906{i:07d} now" for i in range(6)]
    texts += [f"Your parcel {i} is held: pay the fee at www.parcel-{i}.example.com" for i in range(5)]
    texts += ["your parcel 7 is HELD:   pay the fee at www.parcel-7.example.com"]  # case and spacing only
    wave = add_items(store, texts, [None] * len(texts), prefix="wave")
    for i in wave:
        _decide(store, i, "spam", kind="bulk", campaign_id=77)
    _decide(store, add_items(store, ["a lone reviewed text"], [None], prefix="one")[0], "spam")
    due = retrain_due(store, on)
    assert due["new_decisions"] == 3 and due["due"] is False, due


@pytest.mark.parametrize("grid", [[float("nan")], [1.0, float("inf")], [3.0, -1.0]])
def test_a_weight_grid_of_nan_inf_or_negative_is_refused_naming_the_setting(grid):
    """`learning.weight_grid: [.nan]` passes the config check (NaN <= 0 is false): the first fold
    then failed with "weights must be finite and non-negative", naming no setting; inf tuned the cap."""
    from evaluation.weight_tuning import cv_human_weight
    from labeling.training_data import LearningData

    texts = [f"{w} message number {w}" for w in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")]
    ys = ["spam", "benign"] * 3
    ids = [f"x{i}" for i in range(len(texts))]
    ld = LearningData(TrainingSet(ids, texts, ys, ["decision"] * len(ids)),
                      np.array(["train"] * len(ids), dtype=object), [f"text:{i}" for i in ids], np.ones(len(ids)),
                      [None] * len(ids))
    with pytest.raises(ValueError, match=r"^models.yaml learning.weight_grid: give finite positive weights"):
        cv_human_weight(ld, ["benign", "spam"], "tfidf_lr", {"min_df": 1}, grid, 3, 13, base_weight=1.0,
                        max_weight=20.0)


def test_two_leads_calibration_copies_resolve_by_store_order_not_the_writing_clock(any_store, taxonomy):
    """Rule `lead`: the latest lead copy wins. "Latest" is the store's order (`core.labels`); a
    copy written second by a server whose clock is 10 minutes behind lost to the earlier one."""
    from core.schema import User

    store = any_store
    _fillers(store)
    item = add_items(store, ["is this a scam or just spam, two leads disagree"], [None], prefix="cal")[0]
    _decide(store, item, "benign", kind="calibration", reviewer="ann")
    _decide(store, item, "scam", kind="calibration", reviewer="lea")
    _decide(store, item, "spam", kind="calibration", reviewer="leo", at=utcnow() - dt.timedelta(minutes=10))
    with store.begin() as conn:
        conn.execute(insert(User.__table__), [{"name": "lea", "role": "lead"}, {"name": "leo", "role": "lead"}])
    ld = learning_data(store, taxonomy, SETTINGS.model_copy(update={"calibration_rule": "lead"}), ENGINEER)
    assert dict(zip(ld.data.ids, ld.data.labels))[item] == "spam"


def test_an_appealed_qa_audit_decision_stays_in_the_uniform_qa_sample(any_store, taxonomy):
    """The gate's `qa_audit` set is the uniform QA-audit sample. An appeal's outcome is a decision
    of kind `appeal` superseding the audited one: the item (reversed or confirmed) dropped out of
    the sample, which then under-counted exactly the decisions users contested."""
    store = any_store
    _fillers(store)
    cid = _campaign_on("test")
    items = add_items(store, ["your account is locked, verify now at the secure page",
                              "free tickets for everyone who shares this post today"], [None, None], prefix="qa")
    _campaign(store, cid, [items[0]])
    _campaign(store, _campaign_on("test", cid + 1), [items[1]])
    first = _decide(store, items[0], "scam", kind="qa_audit")
    _decide(store, items[0], "spam", kind="appeal", supersedes=first)   # reversed on appeal
    other = _decide(store, items[1], "spam", kind="qa_audit")
    _decide(store, items[1], "spam", kind="appeal", supersedes=other)   # confirmed on appeal
    ld = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    qa, _ = ld.test_set("qa_audit")
    assert dict(zip(qa.ids, qa.labels)) == {items[0]: "spam", items[1]: "spam"}


def test_a_group_whose_trained_mate_was_undone_is_not_unseen_by_the_champion(any_store, taxonomy):
    """The gate's `pooled` set holds out the train-side groups first decided after the champion's
    data. X (decided before it, trained on) and Y share a campaign; X's decision is undone, Y is
    decided: Y's group read as one the champion never saw, and the champion was scored on Y as
    held out although it learnt its campaign from X."""
    store = any_store
    _fillers(store)
    x, y = add_items(store, ["grab your free crypto bonus now at our lucky site",
                             "grab your free crypto bonus today at the lucky site"], [None, None], prefix="wave")
    dx = _decide(store, x, "spam")
    champ = learning_data(store, taxonomy, SETTINGS, ENGINEER)   # the champion's data
    assert dict(zip(champ.data.ids, champ.split))[x] == "train"
    through = champ.stats["decisions_through"]
    _campaign(store, _campaign_on("train"), [x, y])
    _undo(store, dx, x)
    _decide(store, y, "spam")
    later = learning_data(store, taxonomy, SETTINGS, ENGINEER)
    assert dict(zip(later.data.ids, later.split))[y] == "train"
    assert [later.data.ids[i] for i in later.unseen_after(through)] == []


def test_a_queue_taken_out_of_the_learning_share_is_unpinned_by_the_next_pass(any_store, taxonomy):
    """Taking a queue's line out of `learning.queues` (rather than setting it to 0) left its
    pinned cases pinned for good: still explained as `learning:` and at a frozen priority that the
    sweep keeps (`priority.pinned`), so their SLA urgency never rose."""
    from core.config import config_dir
    from labeling.cases import build_cases
    from labeling.learning import apply_learning_share
    from labeling.queue_config import LearningShare, load_queue_config
    from test_hardening_learning_share import _pinned, _scores
    from test_queue_support import T0, add_scored

    store = any_store
    base = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})
    other = next(q for q in base.queues if q != "general")
    on = base.model_copy(update={"learning": LearningShare(queues={"general": 0.2, other: 0.2}, horizon=50)})
    add_scored(store, taxonomy, [{"id": f"u{i:03d}", "label": "benign", "text": f"uncertain text {i}",
                                  "scores": _scores(round(0.55 + 0.001 * i, 4))} for i in range(30)])
    build_cases(store, taxonomy, on, now=T0, progress=False)
    assert apply_learning_share(store, taxonomy, on, "ops", now=T0)["general"]["learning"] == 6
    off = base.model_copy(update={"learning": LearningShare(queues={other: 0.2}, horizon=50)})
    out = apply_learning_share(store, taxonomy, off, "ops", now=T0)
    assert _pinned(store) == [] and out["general"]["unpinned"] == 6


def test_the_sweep_unpins_a_queue_whose_line_was_the_last_one_removed(sqlite_store, taxonomy):
    """With the last queue taken out of `learning.queues` the sweeper ran no learning pass at all
    (its guard read the empty config), so the queue's pinned cases stayed pinned for good."""
    from core.config import config_dir
    from labeling.cases import build_cases
    from labeling.learning import apply_learning_share
    from labeling.queue_config import LearningShare, load_queue_config
    from test_hardening_learning_share import _pinned, _scores
    from test_queue_support import T0, add_scored
    from workbench.context import AppContext
    from workbench.learning import sweep_once

    base = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})
    on = base.model_copy(update={"learning": LearningShare(queues={"general": 0.2}, horizon=50)})
    add_scored(sqlite_store, taxonomy, [{"id": f"u{i:03d}", "label": "benign", "text": f"uncertain text {i}",
                                         "scores": _scores(round(0.55 + 0.001 * i, 4))} for i in range(30)])
    build_cases(sqlite_store, taxonomy, on, now=T0, progress=False)
    assert apply_learning_share(sqlite_store, taxonomy, on, "ops", now=T0)["general"]["learning"] == 6
    app = AppContext(store=sqlite_store)
    app._configs["queues"] = base.model_copy(update={"learning": LearningShare(queues={}, horizon=50)})
    out = sweep_once(app)
    assert out["learning"]["general"]["unpinned"] == 6 and _pinned(sqlite_store) == []
    assert "learning" not in sweep_once(app)  # nothing left pinned: no pass
