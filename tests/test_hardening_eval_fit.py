"""Hardening of the training-side tuning folds and the drift statistics: a source-labelled copy of a
held-out human label trained on in every fold, folds that leave one label to train on, a rate test
that claimed significance on six decisions, counts outside their totals, an empty embedding window
and a predicted label that is not a string."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import drift_stats as ds
from evaluation.weight_tuning import cv_head, cv_human_weight
from labeling.training_data import LearningData
from models.base import ModelError
from models.training import TrainingSet


def _ld(rows: list[tuple[str, str, str, str]]) -> LearningData:
    """(text, label, origin, group) rows, all on the train side, weight 1."""
    ids = [f"i{k:03d}" for k in range(len(rows))]
    texts, labels, origin, groups = (list(c) for c in zip(*rows))
    return LearningData(TrainingSet(ids, texts, labels, origin), np.array(["train"] * len(ids), dtype=object),
                        groups, np.ones(len(ids)), [None] * len(ids))


class _Recorder:
    """A classifier that remembers the texts it was fitted on and the texts it predicted."""

    made: list = []

    def __init__(self, labels, **params):
        self.labels, self.fit_texts, self.predicted = list(labels), [], []
        _Recorder.made.append(self)

    def fit(self, texts, labels, embeddings=None, **kw):
        if len(set(labels)) < 2:
            raise ModelError("training data needs at least two different labels")
        self.fit_texts = list(texts)
        return self

    def predict(self, texts, embeddings=None):
        self.predicted += list(texts)
        return [t.split()[0] for t in texts]


def test_weight_folds_leave_out_source_copies_of_the_held_groups(monkeypatch):
    """A campaign's source-labelled members sat in every fold's training side, next to the held-out
    human labels of the same campaign: the fold was graded on a campaign it had learnt (each of the 6
    fold models trained on a member of every held group)."""
    import models.kinds

    monkeypatch.setattr(models.kinds, "make_classifier", lambda kind, labels, **p: _Recorder(labels, **p))
    rows = []
    for g in range(6):
        lab = "spam" if g % 2 else "benign"
        rows += [(f"{lab} human {g}", lab, "decision", f"campaign:{g}"),
                 (f"{lab} source {g}", lab, "source", f"campaign:{g}")]
    rows += [("spam other", "spam", "source", "text:a"), ("benign other", "benign", "source", "text:b")]
    ld = _ld(rows)
    group_of = dict(zip(ld.data.texts, ld.groups))
    _Recorder.made = []
    out = cv_human_weight(ld, ["benign", "spam"], "spy", {}, [1.0, 3.0], 3, 0, 1.0, 20.0)
    assert out["folds"] == 3 and set(out["scores"]) == {1.0, 3.0}
    assert len(_Recorder.made) == 6
    for m in _Recorder.made:
        held = {group_of[t] for t in m.predicted}
        assert held and not held & {group_of[t] for t in m.fit_texts}
        assert {"spam other", "benign other"} <= set(m.fit_texts)  # the other groups' sources stay


def test_a_weight_fold_that_leaves_one_label_is_left_out():
    """Human labels only, three groups, one of them the only benign one: holding it out left a
    training side of spam alone, and the real model's ModelError ended the tuning."""
    rows = [(f"cheap pills buy now {k}", "spam", "decision", "campaign:a") for k in range(4)]
    rows += [(f"hello friend how are you {k}", "benign", "decision", "campaign:b") for k in range(4)]
    rows += [(f"cheap watches buy today {k}", "spam", "decision", "campaign:c") for k in range(4)]
    out = cv_human_weight(_ld(rows), ["benign", "spam"], "tfidf_lr", {"min_df": 1}, [1.0, 10.0], 3, 0, 1.0, 20.0)
    assert out["folds"] == 2 and set(out["scores"]) == {1.0, 10.0}
    two = cv_human_weight(_ld(rows[:8]), ["benign", "spam"], "tfidf_lr", {"min_df": 1}, [1.0], 3, 0, 1.0, 20.0)
    assert two["folds"] == 0 and two["chosen"] == 1.0 and "two labels" in two["reason"]


def test_a_head_fold_that_leaves_one_label_keeps_the_current_head():
    """The train side's only benign campaign held out left hate alone: ModelError mid-tuning."""
    rows = [(f"i hate you all {k}", "hate", "decision", "campaign:a") for k in range(6)]
    rows += [(f"hello friend how are you {k}", "benign", "source", "campaign:b") for k in range(4)]
    rows += [(f"we hate them {k}", "hate", "decision", "campaign:c") for k in range(3)]
    params = {"min_df": 1, "embedding_weight": 0.0, "calibration_folds": 2, "head": "ovr"}
    out = cv_head(_ld(rows), ["benign", "hate"], "hybrid", params, 3, 0, ["hate"])
    assert out["chosen"] == "ovr" and out["scores"] == {} and out["folds"] == 0 and "one label" in out["reason"]


def test_the_rate_test_does_not_claim_significance_on_six_decisions():
    """0 of 3 overrides against 3 of 3 read p 0.014 (normal approximation); Fisher's exact p is 0.1."""
    r = ds.two_proportion_test(0, 3, 3, 3)
    assert r["exact"] and r["pvalue"] == pytest.approx(0.1) and r["difference"] == 1.0
    assert ds.two_proportion_test(0, 3, 3, 3, "increase")["pvalue"] == pytest.approx(0.05)
    big = ds.two_proportion_test(10, 100, 20, 100)  # expected counts of 15: the z-test, as before
    assert not big["exact"] and big["pvalue"] == pytest.approx(0.0477, abs=1e-3)


@pytest.mark.parametrize("counts", [(5, 3, 1, 3), (0, 3, -1, 3), (1, 10, 11, 10)])
def test_a_count_outside_its_total_is_one_value_error(counts):
    """5 overrides of 3 decisions raised 'math domain error' (a negative variance)."""
    with pytest.raises(ValueError, match=r"^two_proportion_test: (reference|current) count -?\d+ is not within"):
        ds.two_proportion_test(*counts)


def test_an_empty_embedding_window_measures_nothing():
    """`[]` raised 'cannot reshape array of size 0' and an empty window against a 4-wide one a
    size mismatch: neither window has anything to tell apart."""
    for ref, cur in (([], []), ([], np.ones((5, 4))), (np.zeros((0, 4)), np.ones((5, 4)))):
        r = ds.domain_classifier_auc(ref, cur)
        assert np.isnan(r["auc"]) and r["n_reference"] == 0 and r["folds"] == 0


def test_a_predicted_label_that_is_not_a_string_counts_in_the_shares():
    """None was listed as the label 'None' with a share of 0 while the other shares left it out
    (two of four items read as 'a 0.5, b 0.5')."""
    r = ds.label_mix_shift(["a", None, "b", None], ["a", "a"], ["a", "b"])
    assert r["ref_shares"] == {"a": 0.25, "b": 0.25, "None": 0.5}
    assert sum(r["cur_shares"].values()) == pytest.approx(1.0)
