"""The gate's `pooled` set (`evaluation.cross_fit`, issue 18): on a young surface the test split
alone is too small to show a real improvement; the train-side human labels the champion never
learnt from join it, scored by the challenger out of fold. Which labels count as unseen, that no
fold model saw what it scores, that the gate then has evidence where it had none, and that an
equal challenger is still refused."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert

from core.schema import Decision, utcnow
from evaluation.promotion import retrain_and_gate
from labeling.training_data import LearningData, learning_data
from models.registry import get_model, train_model
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus
from test_promotion_gate import FAST, MODELS

POOLED = MODELS.model_copy(update={"promotion": MODELS.promotion.model_copy(update={"sets": ["pooled", "qa_audit"]})})
SPLIT = MODELS.model_copy(update={"promotion": MODELS.promotion.model_copy(update={"sets": ["test_split", "qa_audit"]})})


def _decide(store, ids, labels):
    with store.begin() as conn:
        for i, lab in zip(ids, labels):
            conn.execute(insert(Decision.__table__).values(item_id=i, label=lab, action="remove", kind="review",
                                                           reviewer="ann", taxonomy_version="t", created_at=utcnow()))


def _champion_from_store(store, taxonomy, record: bool = True) -> str:
    """A champion trained as `models train` trains one: on the store's train side, its data recorded."""
    ld = learning_data(store, taxonomy, MODELS.learning, "eng")
    train, val = ld.fit_sets(MODELS.training.seed)
    return train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=train, validation=val,
                       train_side_only=True, decisions_through=ld.stats["decisions_through"] if record else None,
                       promote_if="always", show_progress=False)["id"]


@pytest.fixture
def young_surface(any_store, taxonomy):
    """A champion that learnt every label wrong from source labels (rotated), then 80 human
    decisions with the true labels on a new surface: too few on the test side for the gate."""
    store = any_store
    texts, ys = toy_corpus(30, seed=4)
    labels = sorted(set(ys))
    rotated = [labels[(labels.index(y) + 1) % len(labels)] for y in ys]
    add_items(store, texts, rotated, source="old")
    new_texts, new_ys = toy_corpus(16, seed=9)
    new_ids = add_items(store, new_texts, [None] * len(new_texts), source="new", prefix="new")
    return store, new_ids, new_texts, new_ys


def test_unseen_labels_are_whole_groups_first_decided_after_the_champions_data():
    """Train-side human labels only; a group with a member decided by then, or with a source
    label, is seen; unknown first decisions (an old LearningData) give none."""
    ids = [f"i{k}" for k in range(7)]
    origin = ["decision", "decision", "decision", "decision", "source", "decision", "decision"]
    data = TrainingSet(ids, ["t"] * 7, ["spam"] * 7, origin)
    split = np.array(["train", "train", "train", "test", "train", "train", "excluded"], dtype=object)
    groups = ["g1", "g2", "g2", "g3", "g4", "g4", "g5"]
    first = [5, 3, 9, 8, None, 7, 9]   # g2 has a member decided at 3; g4 a source label
    ld = LearningData(data, split, groups, np.ones(7), [None] * 7, {}, first)
    assert ld.unseen_after(4).tolist() == [0]          # i0; i3 is test side, i6 excluded
    assert ld.unseen_after(2).tolist() == [0, 1, 2]    # g2 wholly after 2
    assert ld.unseen_after(9).tolist() == []
    assert LearningData(data, split, groups, np.ones(7), [None] * 7).unseen_after(0).tolist() == []


def test_pooled_gives_the_gate_evidence_the_test_split_alone_lacks(young_surface, taxonomy, tmp_path):
    store, new_ids, _, new_ys = young_surface
    champ = _champion_from_store(store, taxonomy)
    _decide(store, new_ids, new_ys)
    split_only = retrain_and_gate(store, taxonomy, models_config=SPLIT, queue_config=None, actor="eng",
                                  rescore="none", report_dir=str(tmp_path / "a"), show_progress=False)
    n_test = split_only["comparisons"]["test_split"]["n"]
    assert n_test < SPLIT.promotion.min_items and not split_only["promoted"]   # no qualifying set
    out = retrain_and_gate(store, taxonomy, models_config=POOLED, queue_config=None, actor="eng",
                           rescore="none", report_dir=str(tmp_path / "b"), show_progress=False)
    pooled, note = out["comparisons"]["pooled"], out["pooled"]
    human_train = out["data"]["human_by_split"]["train"]
    assert note["items"] == human_train > 0 and note["folds"] == POOLED.promotion.cross_fit_folds
    assert pooled["n"] == n_test + human_train >= POOLED.promotion.min_items
    assert out["champion"] == champ and out["promoted"], out["gate"]["reason"]
    assert out["gate"]["sets"]["pooled"]["gating"] and out["gate"]["sets"]["pooled"]["lower"] > 0
    md = (tmp_path / "b" / "comparison.md").read_text()
    assert "### pooled" in md and "scored out of fold by" in md
    # The champion is now the promoted challenger, trained on every one of those labels: nothing
    # is newer than its data, so the next retrain (an equal challenger) has the test split alone.
    again = retrain_and_gate(store, taxonomy, models_config=POOLED, queue_config=None, actor="eng",
                             rescore="none", report_dir=str(tmp_path / "c"), show_progress=False)
    assert again["pooled"]["items"] == 0 and "newer than the champion" in again["pooled"]["note"]
    assert again["comparisons"]["pooled"]["n"] == n_test and not again["promoted"]


def test_no_fold_model_scores_what_it_learnt_from(young_surface, taxonomy, monkeypatch):
    """Each fold model is fitted without its fold's groups and scores only them; every unseen
    label is scored once."""
    import models.kinds

    store, new_ids, new_texts, new_ys = young_surface
    _champion_from_store(store, taxonomy)
    _decide(store, new_ids, new_ys)
    fits, real = [], models.kinds.make_classifier

    def spying(kind, labels, **params):
        model = real(kind, labels, **params)
        fit, predict = model.fit, model.predict_proba

        def fit_spy(texts, labels, **kw):
            fits.append({"fit": set(texts)})
            return fit(texts, labels, **kw)

        def predict_spy(texts, emb=None):
            fits[-1]["scored"] = set(texts)
            return predict(texts, emb)

        model.fit, model.predict_proba = fit_spy, predict_spy
        return model

    monkeypatch.setattr(models.kinds, "make_classifier", spying)
    out = retrain_and_gate(store, taxonomy, models_config=POOLED, queue_config=None, actor="eng",
                           rescore="none", promote=False, show_progress=False)
    folds = [f for f in fits if "scored" in f]
    assert len(folds) == POOLED.promotion.cross_fit_folds
    scored = [t for f in folds for t in f["scored"]]
    assert len(scored) == len(set(scored)) and all(not (f["scored"] & f["fit"]) for f in folds)
    assert out["pooled"]["items"] == sum(len(f["scored"]) for f in folds)


def test_a_champion_whose_data_is_not_recorded_is_compared_on_the_test_split_alone(young_surface, taxonomy):
    store, new_ids, _, new_ys = young_surface
    champ = _champion_from_store(store, taxonomy, record=False)
    assert get_model(store, champ)["metrics"]["decisions_through"] is None
    _decide(store, new_ids, new_ys)
    out = retrain_and_gate(store, taxonomy, models_config=POOLED, queue_config=None, actor="eng",
                           rescore="none", promote=False, show_progress=False)
    assert out["pooled"]["items"] == 0 and "not recorded" in out["pooled"]["note"]
    assert out["comparisons"]["pooled"]["n"] == out["data"]["human_by_split"]["test"]


def test_labels_decided_before_the_champion_are_not_unseen_nor_their_copies(young_surface, taxonomy):
    """20 labels decided before the champion trained (it learnt them), then a copy of one of
    their texts and the rest decided after: the copy's group is seen, so it stays out."""
    store, new_ids, new_texts, new_ys = young_surface
    _decide(store, new_ids[:20], new_ys[:20])
    _champion_from_store(store, taxonomy)
    copy = add_items(store, [new_texts[0]], [None], source="new", prefix="copy")
    _decide(store, new_ids[20:] + copy, new_ys[20:] + [new_ys[0]])
    ld = learning_data(store, taxonomy, MODELS.learning, "eng")
    champ = get_model(store, _champ_id(store))
    unseen = {ld.data.ids[i] for i in ld.unseen_after(champ["metrics"]["decisions_through"])}
    assert unseen and not unseen & set(new_ids[:20] + copy)
    train_side_after = {ld.data.ids[i] for i in np.flatnonzero(ld.split == "train")} & set(new_ids[20:])
    assert unseen == train_side_after


def _champ_id(store) -> str:
    from core.predictions import champion_version

    with store.read() as conn:
        return champion_version(conn)


def test_pooled_needs_two_folds_or_more():
    from pydantic import ValidationError

    from models.config import PromotionSettings

    with pytest.raises(ValidationError, match="cross_fit_folds"):
        PromotionSettings(sets=["pooled"], cross_fit_folds=1)
    with pytest.raises(ValidationError, match="sets"):
        PromotionSettings(sets=["pooled", "held_out"])
