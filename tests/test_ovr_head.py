"""The hybrid's one-vs-rest head (`head: ovr`, models.ovr): each label's binary head is the
balanced binary logistic regression of that label against the rest; its probabilities are the
sigmoids normalised; it saves as data and loads back only into an `ovr` hybrid."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from models.base import ModelError
from models.kinds import load_classifier, make_classifier
from models.ovr import OneVsRestLogistic
from test_models_fixtures import hash_vectors, tiny_params, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]


def test_each_head_is_the_balanced_binary_regression_of_its_label():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    y = np.repeat([0, 1, 3], [80, 30, 10])  # imbalanced; label 2 absent
    X[y == 1, 0] += 2.0
    X[y == 3, 1] += 2.0
    w = rng.uniform(0.5, 3.0, size=len(y))
    head = OneVsRestLogistic(C=2.0).fit(X, y, sample_weight=w)
    assert head.classes_.tolist() == [0, 1, 3]
    for j, c in enumerate(head.classes_):
        pos = (y == c).astype(int)
        mass = np.bincount(pos, weights=w)
        ref = LogisticRegression(C=2.0, max_iter=2000).fit(X, pos, sample_weight=w * (mass.sum() / (2 * mass))[pos])
        np.testing.assert_allclose(head.coef_[j], ref.coef_[0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(head.scores(X)[:, j], ref.decision_function(X), rtol=1e-3, atol=1e-3)
    # The softmax of decision_function is the sigmoids normalised (what the hybrid calibrates).
    z = head.decision_function(X)
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    sig = 1.0 / (1.0 + np.exp(-head.scores(X)))
    np.testing.assert_allclose(soft, sig / sig.sum(axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(head.predict_proba(X), soft, atol=1e-12)


def test_one_label_is_refused():
    with pytest.raises(ModelError, match="at least two labels"):
        OneVsRestLogistic().fit(np.eye(3), np.zeros(3, dtype=int))


def test_an_ovr_hybrid_fits_saves_and_loads(tmp_path):
    texts, ys = toy_corpus(10, seed=1)
    emb = hash_vectors(texts)
    model = make_classifier("hybrid", LABELS, **tiny_params("hybrid", tmp_path), head="ovr").fit(texts, ys, embeddings=emb)
    assert isinstance(model._clf, OneVsRestLogistic)
    test_texts, _ = toy_corpus(4, seed=7)
    test_emb = hash_vectors(test_texts)
    proba = model.predict_proba(test_texts, embeddings=test_emb)
    assert proba.shape == (len(test_texts), len(LABELS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    seen = sorted({LABELS.index(y) for y in ys})
    assert (proba[:, [i for i in range(len(LABELS)) if i not in seen]] == 0).all()  # never-seen labels: 0
    saved = model.save(tmp_path / "saved")
    state = json.loads((saved / "linear.json").read_text())
    assert state["head"] == {"type": "ovr_logistic_regression"}
    again = load_classifier(saved)
    assert again.get_params()["head"] == "ovr"
    np.testing.assert_allclose(again.predict_proba(test_texts, embeddings=test_emb), proba, atol=1e-6)


def test_a_head_of_the_other_type_is_refused_on_load(tmp_path):
    texts, ys = toy_corpus(10, seed=1)
    model = make_classifier("hybrid", LABELS, **tiny_params("hybrid", tmp_path), head="ovr").fit(
        texts, ys, embeddings=hash_vectors(texts))
    saved = model.save(tmp_path / "saved")
    meta_path = next(p for p in saved.iterdir() if p.suffix == ".json" and p.name != "linear.json")
    meta = json.loads(meta_path.read_text())
    params = meta.get("params", {})
    assert params.get("head") == "ovr"
    params["head"] = "multinomial"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot be rebuilt"):
        load_classifier(saved)


def test_a_bad_head_value_is_named():
    with pytest.raises(ModelError, match="head"):
        make_classifier("hybrid", LABELS, head="softmax")
