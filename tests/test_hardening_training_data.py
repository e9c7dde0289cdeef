"""Training data without leakage, hardened (issue 18): a wave's template variants outside any
campaign share a side; a campaign's follow-up bulk decisions count each text once; the export's
split is the side training uses; a corrected calibration copy stays its owner's vote; weights
refuse infinite settings and an undo's restored decision keeps its age."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import datasets
import pytest
from sqlalchemy import insert

from clustering.normalize import normalize_template
from core.schema import Case, CampaignMember, utcnow
from labeling.export import export_labels
from labeling.training_data import EXCLUDED, calibration_labels, human_weights, learning_data, text_group
from models.config import LearningSettings
from test_models_fixtures import add_items, toy_corpus
from test_training_data import _campaign, _decide

SETTINGS = LearningSettings()
ENGINEER = "eng"


def _case(store, case_id: int, campaign_id: int) -> None:
    with store.begin() as conn:
        conn.execute(insert(Case.__table__).values(id=case_id, campaign_id=campaign_id, queue="fraud", state="decided",
                                                   priority=0.0, created_at=utcnow(), updated_at=utcnow()))


def test_template_variants_of_an_unclustered_wave_never_sit_on_both_sides(any_store, taxonomy):
    """A wave that arrives after the last `workbench cluster` is in no campaign; its copies differ
    in the prize and callback number. Keyed by exact text, each variant drew a side of its own."""
    texts = [f"WINNER! claim your prize of {100 + i} pounds, call 0906{i:07d} now" for i in range(40)]
    texts += [f"ＷＩＮＮＥＲ!  Claim your\u200b prize of {500 + i} pounds, call 0906{i:07d} NOW" for i in range(5)]
    ids = add_items(any_store, texts, [None] * len(texts), prefix="wave")
    for i in ids:
        _decide(any_store, i, "scam")
    ld = learning_data(any_store, taxonomy, SETTINGS, ENGINEER)
    sides: dict[str, set[str]] = defaultdict(set)
    for text, side in zip(ld.data.texts, ld.split):
        sides[normalize_template(text)].add(side)
    assert len(ld.data) == 45 and len(sides) == 1 and len(next(iter(sides.values()))) == 1, dict(sides)
    # A text of variable parts only says nothing about the message: grouped by its exact text.
    assert text_group("12345") != text_group("99999") and text_group("OK") == text_group("ok")


def test_a_campaigns_follow_up_bulk_decisions_count_each_text_once(any_store, taxonomy):
    """Members that joined after a campaign decision get a case (and a bulk decision) of their own;
    keyed by case, every follow-up counted the wave's templates again."""
    texts = [f"WINNER! claim your prize of {100 + i} pounds, call 0906{i:07d} now" for i in range(20)]
    texts += [f"urgent: your account {i} is locked, verify at www.bank-{i}.example.com" for i in range(20)]
    ids = add_items(any_store, texts, [None] * len(texts), prefix="wave")
    _campaign(any_store, 7, ids)
    _case(any_store, 100, 7)
    _case(any_store, 101, 7)
    for i in ids[::2]:
        _decide(any_store, i, "scam", kind="bulk", case_id=100, campaign_id=7)
    for i in ids[1::2]:  # the members that joined since, decided on the follow-up case
        _decide(any_store, i, "scam", kind="bulk", case_id=101, campaign_id=7)
    ld = learning_data(any_store, taxonomy, SETTINGS, ENGINEER)
    assert len(ld.data) == 2 and ld.stats["bulk_kept"] == 2
    assert ld.data.dropped["bulk copies (a campaign decision counts once per text)"] == 38


def test_the_export_split_is_the_side_training_uses(any_store, taxonomy, tmp_path):
    """The export worked its sides out from its own rows: a human-only (or one-source) export
    could not see the trained members of a straddling campaign and said `test` for an item
    training leaves out; a bulk decision's copy of a text, which training leaves out, got a side."""
    texts, _ = toy_corpus(12)
    ids = add_items(any_store, texts, ["spam"] * len(texts))
    for c in range(30):
        _campaign(any_store, c + 1, ids[c * 2:(c + 1) * 2])
    side = dict(zip(*(lambda ld: (ld.data.ids, ld.split))(learning_data(any_store, taxonomy, SETTINGS, ENGINEER))))
    a = next(c for c in range(30) if side[ids[c * 2]] == "train")
    b = next(c for c in range(30) if side[ids[c * 2]] == "test")
    CM = CampaignMember.__table__
    with any_store.begin() as conn:  # a later clustering run merges campaign b into campaign a
        conn.execute(CM.update().where(CM.c.campaign_id == b + 1).values(campaign_id=a + 1))
    _decide(any_store, ids[b * 2], "spam")  # a human label on a stored-test member of the straddling campaign
    wave = add_items(any_store, [f"WINNER! claim your prize of {100 + i} pounds, call 0906{i:07d} now"
                                 for i in range(3)], [None] * 3, source="live", prefix="wave")
    _campaign(any_store, 99, wave)
    _case(any_store, 500, 99)
    for i in wave:
        _decide(any_store, i, "spam", kind="bulk", case_id=500, campaign_id=99)

    ld = learning_data(any_store, taxonomy, SETTINGS, ENGINEER)
    training = dict(zip(ld.data.ids, ld.split))
    assert training[ids[b * 2]] == EXCLUDED
    export_labels(any_store, taxonomy, tmp_path / "human", actor=ENGINEER, splits=SETTINGS)
    human = dict((lambda ds: zip(ds["id"], ds["split"]))(datasets.load_from_disk(str(tmp_path / "human" / "dataset"))))
    assert human[ids[b * 2]] == EXCLUDED
    assert [human[i] for i in wave] == [training[wave[0]], EXCLUDED, EXCLUDED]
    export_labels(any_store, taxonomy, tmp_path / "toy", include_source_labels=True, source="toy", actor=ENGINEER,
                  splits=SETTINGS)
    toy = datasets.load_from_disk(str(tmp_path / "toy" / "dataset"))
    assert dict(zip(toy["id"], toy["split"])) == {i: training[i] for i in ids}


def test_a_corrected_calibration_copy_stays_its_owners_vote(any_store, taxonomy):
    """A lead correcting bob's copy changes bob's vote; counted as the lead's, it replaced her
    own copy and left the item a tie (no label)."""
    item = add_items(any_store, ["a calibrated text"], [None], prefix="cal")[0]
    _decide(any_store, item, "spam", kind="calibration", reviewer="ann")
    bob = _decide(any_store, item, "spam", kind="calibration", reviewer="bob")
    _decide(any_store, item, "scam", kind="calibration", reviewer="lea")
    _decide(any_store, item, "scam", kind="calibration", reviewer="lea", supersedes=bob)
    with any_store.read() as conn:
        out, ties = calibration_labels(conn, "majority")
    assert ties == 0 and out[item]["label"] == "scam" and out[item]["reviewers"] == ["ann", "bob", "lea"]


def test_infinite_weight_settings_are_refused_by_name():
    """`.inf` passes the config's bounds: an infinite boost made every weight NaN, which the cap
    hid as max_weight (old and fresh decisions alike); an infinite human_weight made them inf."""
    now = dt.datetime(2026, 12, 1)
    when = [now, now - dt.timedelta(days=300), now + dt.timedelta(days=3650), None]
    for name in ("recency_boost", "human_weight"):
        with pytest.raises(ValueError, match=f"learning.{name}: must be a finite number"):
            human_weights(when, ["a"] * 4, now, SETTINGS.model_copy(update={name: float("inf")}))
    w = human_weights(when, ["a"] * 4, now, SETTINGS)  # a future timestamp weighs as a fresh one, no more
    assert w[0] == w[2] == w[3] > w[1] > 0


def test_a_decision_an_undo_restored_weighs_as_old_as_the_original(any_store, taxonomy):
    """An undo re-asserts the decision the undone correction superseded as a copy written now;
    weighed by that row's time, a 200-day-old judgement counted as a fresh one."""
    now = utcnow()
    ids = add_items(any_store, ["an old decided text", "another old decided text"], [None, None], prefix="u")
    first = _decide(any_store, ids[0], "spam", at=now - dt.timedelta(days=200))
    fix = _decide(any_store, ids[0], "scam", supersedes=first, at=now - dt.timedelta(seconds=30))
    undo = _decide(any_store, ids[0], "scam", kind="undo", supersedes=fix, at=now - dt.timedelta(seconds=10))
    _decide(any_store, ids[0], "spam", supersedes=undo, at=now - dt.timedelta(seconds=10))  # the restoring copy
    _decide(any_store, ids[1], "spam", at=now - dt.timedelta(days=200))  # the same judgement, never touched
    ld = learning_data(any_store, taxonomy, SETTINGS, ENGINEER, now=now)
    got = dict(zip(ld.data.ids, ld.weights))
    assert ld.data.labels == ["spam", "spam"] and got[ids[0]] == pytest.approx(got[ids[1]]) and got[ids[0]] < 20
