"""Hardening of the classifiers' calibration, blending, held-out splits and ensemble settings."""
from __future__ import annotations

import numpy as np
import pytest

from models.base import ModelError
from models.calibration import fit_temperature_bias
from models.config import ModelsConfig
from models.ensemble import fit_blend
from models.kinds import make_classifier
from models.metrics import softmax
from models.training import grouped_fold_count, grouped_folds, grouped_holdout
from core.text import text_hash
from test_models_fixtures import toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]
FAST = [{"kind": "tfidf_lr", "params": {"min_df": 1}}, {"kind": "nblr", "params": {"min_df": 1}}]


def test_a_separable_held_out_set_keeps_the_temperature_finite():
    # Held-out logits that separate the labels perfectly: the one-hot likelihood is best at T -> 0
    # (the fit reached T = 0.001 on a clean toy set, and every text scored 1.0).
    y = np.repeat(np.arange(3), 10)
    logits = np.eye(3)[y] * 4.0
    t, _ = fit_temperature_bias(logits, y, np.arange(3), 3)
    top = softmax(logits / t).max(axis=1)
    assert t > 0.5 and np.all(top < 0.99)


def test_a_small_clean_training_set_does_not_make_an_unseen_text_certain():
    texts, ys = toy_corpus(16)
    model = make_classifier("nblr", LABELS, min_df=1).fit(texts, ys)
    unseen = model.predict_proba(["😀😀", "zzz", "qwerty asdf"])
    assert model.temperature > 0.05
    assert unseen.max() < 0.9  # was hate 0.967 for the emoji and scam 1.000 for "zzz"
    seen = model.predict_proba(texts[:5])
    assert np.all(seen.max(axis=1) > 0.9) and np.all(seen.max(axis=1) < 1 - 1e-6)


def test_a_separable_blend_slice_does_not_make_the_ensemble_certain():
    n, k = 12, 3
    y = np.arange(n) % k
    sure = np.full((n, k), 0.01)
    sure[np.arange(n), y] = 0.98
    w, b = fit_blend(np.log(sure)[None], y, np.arange(k), k)
    blended = softmax(w[0] * np.log(sure) + b)
    assert blended.max() < 0.99  # unbounded weight: 1 - 1e-8 before


def test_an_ensemble_of_fast_members_on_a_small_set_is_not_certain():
    texts, ys = toy_corpus(16)
    model = make_classifier("ensemble", LABELS, members=FAST, decision_bootstrap=3).fit(texts, ys)
    proba = model.predict_proba(["lunch meeting", texts[0], "😀😀"])
    assert np.all(proba.max(axis=1) < 0.999)  # 1 - 4e-9 for a training text before
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _case_and_spacing_twins() -> tuple[list[str], list[int]]:
    texts, y = [], []
    for i in range(10):
        for v in (f"Claim your prize {i} now", f"CLAIM YOUR PRIZE {i} NOW", f"claim  your prize {i} now"):
            texts.append(v)
            y.append(1)
        for v in (f"lunch at {i} tomorrow", f"Lunch at {i} tomorrow", f"LUNCH  AT {i} TOMORROW"):
            texts.append(v)
            y.append(0)
    return texts, y


def test_held_out_rows_never_share_a_text_hash_with_the_fitting_rows():
    texts, y = _case_and_spacing_twins()
    assert grouped_fold_count(texts, y, 15) == 10  # ten distinct texts per label, not thirty
    for fit, held in grouped_folds(texts, y, 5, 0):
        assert not {text_hash(texts[i]) for i in fit} & {text_hash(texts[i]) for i in held}
    fit, held = grouped_holdout(texts, [str(v) for v in y], 0.3, 0)
    assert not {text_hash(texts[i]) for i in fit} & {text_hash(texts[i]) for i in held}


def test_too_many_blend_folds_is_one_model_error_line_naming_the_parameter():
    texts, ys = ["a b c", "d e f", "g h i", "j k l"] * 3, ["benign", "benign", "spam", "spam"] * 3
    with pytest.raises(ModelError, match="blend_folds=5 cannot split"):
        make_classifier("ensemble", LABELS, members=FAST, blend_folds=5, decision_bootstrap=2).fit(texts, ys)
    texts = [f"lunch {w} today" for w in "abcdefgh"] + ["buy cheap pills"] * 3
    ys = ["benign"] * 8 + ["spam"] * 3
    with pytest.raises(ModelError, match="blend_folds=2: fold 0 leaves the members one label"):
        make_classifier("ensemble", LABELS, members=FAST, blend_folds=2, decision_bootstrap=2).fit(texts, ys)


@pytest.mark.parametrize("params", [5, "abc", [1, 2], ["ab"]])
def test_member_params_that_are_not_a_mapping_are_a_config_error(params):
    with pytest.raises(ValueError, match=r"members\[0\]: .*params must be a mapping"):
        ModelsConfig(kinds={"ensemble": {"members": [{"kind": "tfidf_lr", "params": params}]}})


@pytest.mark.parametrize("members", [5, "tfidf_lr", []])
def test_members_that_are_not_a_list_are_a_config_error(members):
    # `members: 5` in models.yaml was a TypeError traceback naming neither file nor field
    with pytest.raises(ValueError, match=r"ensemble\.members: must be a non-empty list"):
        ModelsConfig(kinds={"ensemble": {"members": members}})
