"""Hostile input to the linear estimators (`tfidf_lr`, `nblr`, `hybrid`) and their training helpers:
texts that are not a list of strings, columns of different lengths, embeddings of the wrong shape
or with NaN rows, folds whose fitting rows hold one label, n-gram ranges and smoothing values
that pass validation and then exhaust memory or break the head. Data stays tiny (CPU only)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from models.base import ModelError
from models.kinds import make_classifier
from models.nblr import nb_log_count_ratio
from models.training import data_fingerprint, grouped_fold_count, grouped_holdout, stratified_split, target_matrix
from test_models_fixtures import hash_vectors, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]
FAST = {"min_df": 1}


def _model(kind: str, **params):
    extra = {} if kind == "tfidf_lr" else {"calibration_folds": 2, "char_ngrams": None}
    return make_classifier(kind, LABELS, **{**FAST, **extra, **params})


def _fitted(kind: str):
    texts, ys = toy_corpus(3, seed=1)
    emb = hash_vectors(texts) if kind == "hybrid" else None
    return _model(kind).fit(texts, ys, embeddings=emb)


# -- texts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tfidf_lr", "nblr"])
def test_one_string_is_refused_not_scored_character_by_character(kind):
    model = _fitted(kind)
    with pytest.raises(ModelError, match=f"^{kind}: texts must be a list of strings, not one str$"):
        model.predict_proba("buy now cheap offer")
    with pytest.raises(ModelError, match="not one str"):
        _model(kind).fit("abcde", list("abcde"))


@pytest.mark.parametrize("bad", [None, float("nan"), b"\xff\xfe", 7])
@pytest.mark.parametrize("kind", ["tfidf_lr", "nblr", "hybrid"])
def test_a_text_that_is_not_a_string_is_one_model_error_line_naming_its_row(kind, bad):
    model = _fitted(kind)
    emb = hash_vectors(["a", "b"]) if kind == "hybrid" else None
    with pytest.raises(ModelError, match=rf"^{kind}: text 1 is a {type(bad).__name__}, not a string$"):
        model.predict_proba(["fine text", bad], embeddings=emb)
    texts, ys = toy_corpus(3, seed=2)
    texts[4] = bad
    with pytest.raises(ModelError, match=rf"^{kind}: text 4 is a {type(bad).__name__}, not a string$"):
        _model(kind).fit(texts, ys, embeddings=hash_vectors([str(t) for t in texts]) if kind == "hybrid" else None)


@pytest.mark.parametrize("kind", ["tfidf_lr", "nblr"])
def test_texts_and_labels_of_different_lengths_are_named(kind):
    texts, ys = toy_corpus(3, seed=1)
    with pytest.raises(ModelError, match=f"^{kind}: got 12 labels for 15 texts$"):
        _model(kind).fit(texts, ys[:-3])
    with pytest.raises(ModelError, match=f"^{kind}: got 15 labels for 12 texts$"):
        _model(kind).fit(texts[:-3], ys)


def test_texts_given_as_a_generator_are_calibrated_like_a_list():
    texts, ys = toy_corpus(4, seed=1)
    listed = _model("nblr").fit(texts, ys)
    streamed = _model("nblr").fit((t for t in texts), ys)
    assert streamed.fit_info.get("calibration_folds") == listed.fit_info["calibration_folds"] == 2
    np.testing.assert_array_equal(streamed.predict_proba(texts), listed.predict_proba(texts))


# -- embeddings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("emb, shape", [(np.zeros(16), r"\(16,\)"), (np.zeros((2, 1, 16)), r"\(2, 1, 16\)"),
                                        ([["x"] * 16] * 2, r"\(2, 16\) of <U1")])
def test_embeddings_of_another_shape_or_type_are_one_model_error_line(emb, shape):
    model = _fitted("hybrid")
    with pytest.raises(ModelError, match=rf"^hybrid: embeddings must be an \(2, dim\) array of numbers, "
                                         rf"one row per text; got shape {shape}"):
        model.predict_proba(["one", "two"], embeddings=emb)


def test_a_one_dimensional_embedding_at_fit_is_one_model_error_line():
    texts, ys = toy_corpus(4, seed=1)
    with pytest.raises(ModelError, match=r"^hybrid: embeddings must be an \(20, dim\) array"):
        _model("hybrid").fit(texts, ys, embeddings=np.zeros(len(texts)))


def test_a_nan_embedding_at_fit_names_its_row():
    texts, ys = toy_corpus(3, seed=1)
    emb = hash_vectors(texts)
    emb[6, 3] = np.nan
    with pytest.raises(ModelError, match=r"^hybrid: embedding row 6 holds NaN or infinite values \(1 row"):
        _model("hybrid").fit(texts, ys, embeddings=emb)


def test_a_non_finite_embedding_at_predict_spoils_its_own_row_only():
    model = _fitted("hybrid")
    texts = ["claim your prize now", "lunch meeting tomorrow", "subscribe for a discount"]
    emb = hash_vectors(texts)
    clean = model.predict_proba(texts, embeddings=emb)
    emb[1, 0] = np.inf
    proba = model.predict_proba(texts, embeddings=emb)
    assert np.isnan(proba[1]).all()
    np.testing.assert_array_equal(proba[[0, 2]], clean[[0, 2]])
    emb[:, 0] = np.nan
    with pytest.raises(ModelError, match="^hybrid: every embedding row holds NaN or infinite values$"):
        model.predict_proba(texts, embeddings=emb)


# -- calibration folds --------------------------------------------------------------------------
@pytest.mark.parametrize("kind, params, texts, ys", [
    ("nblr", {}, ["omega beta", "beta gamma", "beta gamma", "delta beta"], ["spam", "benign", "spam", "benign"]),
    ("hybrid", {"embedding_weight": 0.0, "head": "ovr"}, ["delta gamma", "omega beta", "omega delta", "omega delta"],
     ["benign", "spam", "benign", "spam"]),
])
def test_copies_of_a_text_under_two_labels_do_not_stop_the_fit(kind, params, texts, ys):
    """Each label has two distinct texts, so two calibration folds are asked for; the copies under
    both labels leave one fold's fitting rows a single label. The model is fitted uncalibrated,
    as with under two folds, instead of failing."""
    model = _model(kind, **params).fit(texts, ys)
    proba = model.predict_proba(texts + ["unseen words"])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)
    assert "calibration_folds" not in model.fit_info and model.temperature == 1.0


# -- parameters that pass validation and then fail ----------------------------------------------
@pytest.mark.parametrize("param", ["word_ngrams", "char_ngrams"])
def test_an_ngram_range_past_the_bound_is_refused_naming_it(param):
    with pytest.raises(ModelError, match=rf"^nblr: parameter '{param}' must be a pair of ints \[lo, hi\] with "
                                         r"1 <= lo <= hi <= 20 or null, got \[1, 100000\]$"):
        make_classifier("nblr", LABELS, **{param: [1, 100000]})
    make_classifier("nblr", LABELS, **{param: [1, 20]})


@pytest.mark.parametrize("alpha", [5e-324, 1e308])
def test_nb_ratios_stay_finite_for_any_positive_alpha(alpha):
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]]))
    r = nb_log_count_ratio(X, np.array([True, False, False]), np.ones(3), alpha)
    assert np.isfinite(r).all()
    texts, ys = toy_corpus(3, seed=1)
    proba = _model("nblr", alpha=alpha).fit(texts, ys).predict_proba(texts[:3])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)


def test_nb_ratios_are_unchanged_for_ordinary_alpha():
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]]))
    pos, w = np.array([True, False, True]), np.array([1.0, 2.0, 0.5])
    p, q = 1.0 + X.T @ (w * pos), 1.0 + X.T @ (w * ~pos)
    np.testing.assert_allclose(nb_log_count_ratio(X, pos, w, 1.0), np.log((p / p.sum()) / (q / q.sum())), rtol=1e-6)


# -- training helpers: parallel columns ---------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: stratified_split([f"i{k}" for k in range(10)], ["a", "b"] * 3, 0.3, 0),
    lambda: grouped_holdout([f"text {k}" for k in range(10)], ["a", "b"] * 3, 0.3, 0),
    lambda: grouped_fold_count(["x", "y", "z"], [0, 1, 0, 1, 1, 1], 5),
    lambda: data_fingerprint([f"i{k}" for k in range(10)], ["t"] * 3, ["a"] * 3),
    lambda: target_matrix([None] * 2, ["a"] * 3, ["a", "b"]),
])
def test_parallel_columns_of_different_lengths_are_refused_not_truncated(call):
    with pytest.raises(ValueError, match="^parallel columns differ in length: "):
        call()


def test_a_label_outside_the_labels_without_votes_is_named():
    with pytest.raises(ValueError, match=r"^row 1: label 'zz' is not among the labels \['a', 'b'\]$"):
        target_matrix([None, None], ["a", "zz"], ["a", "b"])


def test_an_embedding_weight_that_overflows_is_named():
    texts, ys = toy_corpus(3, seed=1)
    with pytest.raises(ModelError, match=r"^hybrid: embedding_weight=1e\+39 times the embeddings overflows float32"):
        _model("hybrid", embedding_weight=1e39).fit(texts, ys, embeddings=hash_vectors(texts))


# -- model folders ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pytorch_model.bin", "0_Transformer/pytorch_model.bin", "2_Dense/model.PT"])
def test_a_sentence_folder_with_pickled_weights_is_refused_unread(tmp_path, name):
    """With no model.safetensors, sentence-transformers reads pytorch_model.bin by unpickling it,
    past the dtype rule (integer weights gave zero vectors): a saved model is safetensors only."""
    import json
    import pickle

    from models.model_folder import check_sentence_folder

    folder = tmp_path / "st"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                      "type": "sentence_transformers.models.Transformer"}]))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / name).write_bytes(pickle.dumps({"embeddings.word_embeddings.weight": [[0, 1], [2, 3]]}))
    with pytest.raises(ModelError, match=rf"^{re.escape(str(folder))}: {name} is a pickle \(read by unpickling it\): "
                                         "weights are safetensors only, refused$"):
        check_sentence_folder(folder)


@pytest.mark.parametrize("kind", ["tfidf_lr", "nblr"])
def test_a_failed_refit_leaves_an_unfitted_model_not_a_half_replaced_one(kind, tmp_path):
    model = _fitted(kind)
    with pytest.raises(ModelError, match="no word n-gram vocabulary"):
        model.fit(["", ""], ["spam", "scam"])
    assert not model.is_fitted
    with pytest.raises(ModelError, match=f"^this {kind} model has not been fitted$"):
        model.predict_proba(["claim your prize"])
    with pytest.raises(ModelError, match="not been fitted"):
        model.save(tmp_path / "never-written")
    assert not (tmp_path / "never-written").exists()
