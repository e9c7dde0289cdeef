"""Hardening of the evaluation's array functions, plots and tuning folds (round 3): scores that
are not numbers in the AUCs and plots, estimates without bounds, the confidence printed on a
plot, the weight-tuning folds trained as the product trains, a hand-edited champion record and a
model whose probabilities have the wrong shape."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation import plots, render
from evaluation import slices as sl
from evaluation.config import EvaluationConfig
from evaluation.cross_fit import unseen_by
from evaluation.scoring import aligned_proba
from evaluation.weight_tuning import cv_head, cv_human_weight
from labeling.training_data import LearningData
from models.base import ModelError
from models.training import TrainingSet

NAN, INF = math.nan, math.inf


def test_a_nan_score_is_left_out_of_the_auc_not_a_nan_auc():
    """`rankdata` gives every rank NaN when one score is NaN: the AUC read "nan" with an interval of
    [0, 1] that looked like a measurement. The item is left out and the counts say so."""
    y, s = [1, 0, 1, 0, 1], [0.9, 0.2, NAN, 0.1, 0.8]
    assert sl.auc(y, s) == 1.0 == sl.auc([1, 0, 1, 0], [0.9, 0.2, 0.8, 0.1])
    e = sl.auc_estimate(y, s)
    assert e["estimate"] == 1.0 and (e["n_pos"], e["n_neg"], e["n"]) == (2, 2, 4) and e["lo"] < 1.0
    assert sl.auc([1, 0], [NAN, 0.3]) is None and sl.auc_estimate([1, 0], [NAN, 0.3])["estimate"] is None
    assert sl.auc([1, 0], [INF, 0.3]) == 1.0  # an infinite score still ranks
    b = sl.bias_aucs(y, s, [True, True, True, False, False])
    assert b["subgroup_auc"]["estimate"] == 1.0 and b["subgroup_auc"]["n"] == 2
    with pytest.raises(ValueError, match="^labels and scores: 2 and 1 given"):
        sl.auc([1, 0], [0.4])


def test_a_flood_of_distinct_languages_is_not_a_flood_of_slices():
    """The language comes from ingested metadata: 8,000 items with 8,000 distinct languages made
    8,000 slices, each a mask of every row (quadratic) and a row of the report's tables."""
    rows = [{"language": "en" if i % 2 else f"x{i}", "source": "sms", "text": ""} for i in range(300)]
    rows += [{"language": "fr", "source": "sms", "text": ""}] * 3 + [{"language": None, "source": "sms", "text": ""}]
    m = sl.slice_masks(rows, EvaluationConfig(version="t", slices=["language", "source"]))
    lang = [k for k in m if k.startswith("language=")]
    assert len(lang) == 51 and {"language=en", "language=fr"} <= set(lang)
    other = m["language=(other: 102 values)"]  # 152 distinct values, the 50 most frequent kept
    assert other.sum() == 102 and not other[-1] and m["source=sms"].all()
    covered = np.sum([m[k] for k in lang], axis=0)
    assert covered[:-1].tolist() == [1] * 303 and covered[-1] == 0  # each row once, the one without none


def _grab(monkeypatch) -> list:
    """Every figure the plots would render, instead of its PNG."""
    figs: list = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"png")
    return figs


def test_the_reliability_diagram_leaves_out_rows_that_are_not_scores(monkeypatch):
    """A NaN row fell into the top confidence bin (np.digitize puts NaN last) and counted in n."""
    figs = _grab(monkeypatch)
    good = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]])
    assert plots.reliability_png(np.vstack([good, [[NAN, NAN], [INF, 0.0]]]), np.array([1, 0, 0, 1, 0])) == b"png"
    counts = [p.get_height() for p in figs[0].axes[1].patches]
    assert sum(counts) == 3 and "(n=3," in figs[0].axes[0].get_title()
    assert plots.reliability_png(np.full((2, 2), NAN), np.array([0, 1])) is None  # nothing left to draw


def test_the_plots_print_the_confidence_configured(monkeypatch):
    """`int(conf * 100)`: 0.58 * 100 is 57.99999999999999, so a 58% interval was labelled 57%."""
    figs = _grab(monkeypatch)
    plots.reliability_png(np.array([[0.2, 0.8]]), np.array([1]), conf=0.58)
    assert "58% Wilson bars" in figs[0].axes[0].get_title()
    assert [render.percent(c) for c in (0.9, 0.58, 0.29, 0.995)] == ["90%", "58%", "29%", "99.5%"]


def test_the_score_split_leaves_out_scores_that_are_not_numbers(monkeypatch):
    """A NaN or infinite score counted in its group's n and shrank every bar's share."""
    figs = _grab(monkeypatch)
    plots.score_split_png([0.2, NAN, 0.9, INF], [0.5, -INF])
    ax = figs[0].axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["confirmed (n=2)", "overridden (n=1)"]
    assert sum(p.get_height() for p in ax.patches) == pytest.approx(2.0)  # each group's shares sum to 1
    assert plots.score_split_png([NAN], [INF]) is None


def test_an_estimate_without_bounds_is_drawn_without_a_bar():
    """A point whose bounds are None raised TypeError (estimate - None) and took the report with it;
    a NaN or infinite point was drawn off the chart."""
    per = {"spam": {"precision": {"estimate": 0.5, "lo": None, "hi": None, "n": 3},
                    "recall": {"estimate": 0.7, "lo": NAN, "hi": 0.9, "n": 3}}}
    assert plots.estimates_png(per)[:4] == b"\x89PNG"
    assert plots.estimates_png({"spam": {"f1": {"estimate": NAN, "lo": 0.0, "hi": 1.0, "n": 3},
                                         "recall": {"estimate": INF, "lo": 0.0, "hi": 1.0, "n": 3}}}) is None


class _Spy:
    """A classifier that records how it was made and fitted, and predicts each text's own label."""

    made: list = []

    def __init__(self, labels, **params):
        self.labels, self.params, self.fitted = list(labels), params, None
        _Spy.made.append(self)

    def fit(self, texts, labels, embeddings=None, **kw):
        self.fitted = kw
        return self

    def predict(self, texts, embeddings=None):
        return [t.split()[0] for t in texts]

    def predict_proba(self, texts, embeddings=None):
        return np.array([[float(t.split()[0] == lab) for lab in self.labels] for t in texts])


def _voted() -> LearningData:
    """Six train-side items in six groups; the source ones carry their annotators' vote shares."""
    ids = [f"i{k}" for k in range(6)]
    labels = ["spam", "benign", "spam", "benign", "spam", "benign"]
    shares = [{"spam": 0.7, "benign": 0.3}, {"benign": 1.0}, None, None, {"spam": 0.6, "benign": 0.4}, None]
    data = TrainingSet(ids, [f"{lab} text {k}" for k, lab in enumerate(labels)], labels,
                       ["source", "source", "decision", "decision", "decision", "decision"], shares=shares)
    return LearningData(data, np.array(["train"] * 6, dtype=object), [f"g{k}" for k in range(6)], np.ones(6),
                        [None] * 6)


def test_tuning_folds_train_as_the_product_does(monkeypatch):
    """The folds fitted on hard labels while `train_model` fits on the vote shares as soft targets
    (a `soft_labels` kind was tuned on data it never trains on), and handed the run's own
    `checkpoint_dir` to every fold model, which resumed from or wrote over that run's checkpoint."""
    import models.kinds

    monkeypatch.setattr(models.kinds, "make_classifier", lambda kind, labels, **p: _Spy(labels, **p))
    _Spy.made = []
    params = {"checkpoint_dir": "/tmp/run-checkpoint"}
    cv_human_weight(_voted(), ["benign", "spam"], "spy", params, [1.0], 2, 0, 1.0, 20.0)
    cv_head(_voted(), ["benign", "spam"], "spy", params, 2, 0, ["spam"])
    assert _Spy.made and all("checkpoint_dir" not in m.params for m in _Spy.made)
    targets = [m.fitted.get("targets") for m in _Spy.made]
    assert all(t is not None and t.shape[1] == 2 for t in targets)
    assert any(np.allclose(row, [0.3, 0.7]) for t in targets for row in t)  # benign, spam: the votes


@pytest.mark.parametrize("through", ["abc", NAN, True, [1], 7.5])
def test_a_hand_edited_decisions_through_adds_no_unseen_labels(through):
    """A registry row's `decisions_through` that is not a decision id raised ValueError (int("abc"),
    int(nan)) after the challenger was trained, or (true) read as decision 1: every later label
    'unseen'. It now counts as not recorded: the test split alone, and the note says why."""
    ld = _voted()
    ld.first_decision = [None, None, 5, 6, 7, 8]
    idx, why = unseen_by({"id": "v1", "metrics": {"train_side_only": True, "decisions_through": through}}, ld)
    assert len(idx) == 0 and why.startswith("v1's recorded decisions_through") and "test split alone" in why
    assert len(unseen_by({"id": "v1", "metrics": {"train_side_only": True, "decisions_through": 6}}, ld)[0]) == 2


def test_probabilities_of_the_wrong_shape_are_one_model_error():
    """An artifact returning a column more than its labels: the extra column's arg-max indexed past
    the model's label list (IndexError mid-gate); a column fewer, the same from the other side."""
    model = _Spy(["benign", "spam"])
    model.predict_from_proba = lambda p: np.argmax(p, axis=1)
    for bad in (np.array([[0.1, 0.2, 0.7]]), np.array([[1.0]]), np.array([0.2, 0.8])):
        with pytest.raises(ModelError, match=r"^_Spy: probabilities of shape .* for 2 labels \(benign, spam\)$"):
            aligned_proba(model, bad, ["benign", "spam", "scam"])
    proba, pred = aligned_proba(model, np.array([[0.3, 0.7]]), ["benign", "spam", "scam"])
    assert proba.tolist() == [[0.3, 0.7, 0.0]] and pred.tolist() == [1]
