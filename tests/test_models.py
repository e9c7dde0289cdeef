"""Model kinds: one interface contract, save/load round trip, calibration, training data, splits."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef

from models import metrics as M
from models.base import ModelError
from models.calibration import fit_temperature_bias, tune_decision_weights
from models.ensemble import fit_blend
from models.kinds import load_classifier, make_classifier
from models.training import data_fingerprint, stratified_split, training_examples
from test_models_fixtures import (  # noqa: F401 - fixtures
    TINY_TRANSFORMER,
    add_items,
    hash_vectors,
    tiny_embedding_model,
    tiny_st_path,
    toy_corpus,
)

LABELS = ["benign", "spam", "scam", "hate", "harassment"]


# The interface contract every kind honours (fit, predict_proba, predict, save / load, get_params,
# parameter validation, calibration) is tested for each registered kind in test_model_contract.py.


def test_hybrid_encodes_with_its_own_embedder_when_none_given(tiny_embedding_model, tmp_path):
    texts, ys = toy_corpus(10)
    model = make_classifier("hybrid", LABELS, calibration_folds=2, min_df=1).fit(texts, ys)
    assert model.embedder().model_id.startswith("tiny-st-")  # name + digest of its path
    proba = model.predict_proba(texts[:5])
    assert proba.shape == (5, 5)
    again = load_classifier(model.save(tmp_path / "m"))
    np.testing.assert_allclose(again.predict_proba(texts[:5]), proba, atol=1e-5)


def test_unknown_kind_and_parameter_are_named():
    with pytest.raises(ModelError, match="unknown model kind 'svm'"):
        make_classifier("svm", LABELS)
    with pytest.raises(ModelError, match="no parameter.*gamma"):
        make_classifier("hybrid", LABELS, gamma=1)
    with pytest.raises(ModelError, match="not among the model's labels"):
        make_classifier("tfidf_lr", LABELS).fit(["a b", "c d"], ["benign", "nonsense"])
    with pytest.raises(ModelError, match="two different labels"):
        make_classifier("tfidf_lr", LABELS).fit(["a b", "c d"], ["benign", "benign"])
    with pytest.raises(ModelError, match="not a saved model"):
        load_classifier("/nonexistent/folder")


def test_hybrid_calibration_output_and_fit_info():
    texts, ys = toy_corpus(20, seed=3)
    model = make_classifier("hybrid", LABELS, calibration_folds=4, min_df=1, embedding_weight=0.0)
    model.fit(texts, ys)
    info = model.fit_info
    assert info["calibration_folds"] == 4 and info["temperature"] > 0
    assert len(info["bias"]) == len(LABELS)
    assert model.decision_weights.shape == (len(LABELS),) and model.decision_weights.max() == pytest.approx(1.0)
    # Calibration never makes held-out log loss worse than the raw logits (it is fitted on them).
    assert info["oof_log_loss"] <= info["oof_log_loss_raw"] + 1e-9


# -- transformer ---------------------------------------------------------------------------
def test_tiny_transformer_lowers_its_loss_and_resumes(tmp_path):
    texts, ys = toy_corpus(12, seed=5)
    common = dict(init_config=TINY_TRANSFORMER, batch_size=16, learning_rate=1e-2, max_length=16,
                  calibration_fraction=0.0, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=20, seed=1,
                  torch_threads=1)
    first = make_classifier("transformer", LABELS, max_steps=40, epochs=50, **common).fit(texts, ys)
    info = first.fit_info
    assert info["steps"] == 40 and info["resumed_from"] is None
    assert info["loss_last"] < info["loss_first"] * 0.8, info["loss_curve"]
    # Same data and parameters with a higher step budget: continues from step 40, not from 0.
    longer = make_classifier("transformer", LABELS, max_steps=45, epochs=50, **common).fit(texts, ys)
    assert longer.fit_info["resumed_from"] == 40 and longer.fit_info["steps"] == 45
    # Different data: the checkpoint is not used.
    other = make_classifier("transformer", LABELS, max_steps=3, epochs=50, **common).fit(texts[:-5], ys[:-5])
    assert other.fit_info["resumed_from"] is None
    # Another preprocessing is another model: its checkpoint is not resumed either.
    social = make_classifier("transformer", LABELS, max_steps=3, epochs=50, preprocess="social", **common).fit(texts, ys)
    assert social.fit_info["resumed_from"] is None


def test_transformer_social_preprocessing_reads_past_links_and_mentions():
    with pytest.raises(ModelError, match="preprocess"):
        make_classifier("transformer", LABELS, preprocess="stem")
    model = make_classifier("transformer", LABELS, init_config=TINY_TRANSFORMER, preprocess="social")
    model._build()
    a = model._batch(["RT @alice_1987: you are GREAT &amp; kind http://x.co/abc"])["input_ids"]
    b = model._batch(["RT @bob: you are great & kind https://www.example.org/a/b?c=1"])["input_ids"]
    assert a.tolist() == b.tolist()



def test_length_grouped_batches_cover_each_epoch_pad_less_and_resume():
    from models.transformer import _epoch_order

    rng = np.random.default_rng(3)
    n, bs = 1000, 16
    lengths = rng.integers(4, 64, n)
    grouped, plain = _epoch_order(n, 7, 0, bs, lengths, group=8), _epoch_order(n, 7, 0, bs)
    per_epoch = -(-n // bs)
    g_batches = [next(grouped) for _ in range(2 * per_epoch)]
    p_batches = [next(plain) for _ in range(per_epoch)]
    for epoch in range(2):  # every text once per epoch, whatever the grouping
        seen = np.concatenate(g_batches[epoch * per_epoch:(epoch + 1) * per_epoch])
        assert sorted(seen.tolist()) == list(range(n))
    padded = lambda batches: sum(len(b) * lengths[b].max() for b in batches)  # noqa: E731
    assert padded(g_batches[:per_epoch]) < 0.75 * padded(p_batches)
    # A run resumed at step 70 sees exactly the batches the uninterrupted run saw from there.
    resumed = _epoch_order(n, 7, 70, bs, lengths, group=8)
    for b in g_batches[70:70 + per_epoch]:
        assert next(resumed).tolist() == b.tolist()


def test_transformer_scores_in_length_order_but_returns_input_order(tmp_path):
    texts, ys = toy_corpus(6, seed=2)
    model = make_classifier("transformer", LABELS, init_config=TINY_TRANSFORMER, max_steps=5, batch_size=8,
                            max_length=16, calibration_fraction=0.0, eval_batch_size=4, torch_threads=1)
    model.fit(texts, ys)
    texts = texts[:9] + ["a much longer text " * 6, "hi"]
    together = model.predict_proba(texts)
    one_by_one = np.vstack([model.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_ensemble_cross_fit_blends_every_item_out_of_fold_and_averages_the_fold_models(tmp_path):
    texts, ys = toy_corpus(12, seed=4)
    emb = hash_vectors(texts)
    members = [{"kind": "hybrid", "params": {"calibration_folds": 3, "min_df": 1}},
               {"kind": "tfidf_lr", "params": {"min_df": 1}}]
    model = make_classifier("ensemble", LABELS, members=members, blend_folds=3).fit(texts, ys, embeddings=emb)
    n = len(texts)
    assert model.n_member_sets == 3 and model.fit_info["n_blend"] == n
    assert model.blend_log_proba_.shape == (2, n, len(LABELS)) and len(model.blend_y_) == n
    folds = model.fit_info["members"][0]["folds"]
    assert len(folds) == 3 and sum(n - f["n_train"] for f in folds) == n  # each item held out exactly once
    # Every item's blend input comes from the fold models that did not see it.
    from models.training import grouped_folds
    yi = np.array([LABELS.index(v) for v in ys])
    for f, (_, held) in enumerate(grouped_folds(texts, yi, 3, 0)):
        held_p = model._sets[f][1].predict_proba([texts[i] for i in held])
        np.testing.assert_allclose(model.blend_log_proba_[1, held], np.log(np.clip(held_p, 1e-9, 1)), atol=1e-9)
    # Prediction averages the fold models' log-probabilities before the blend.
    sample = texts[:4]
    logs = [model._member_log_proba(sample, emb[:4], s) for s in model._sets]
    np.testing.assert_allclose(model.member_log_proba(sample, emb[:4]), np.mean(logs, axis=0))
    np.testing.assert_allclose(model.predict_proba(sample, embeddings=emb[:4]), model.blend(np.mean(logs, axis=0)))
    again = load_classifier(model.save(tmp_path / "ens"))
    assert again.n_member_sets == 3
    np.testing.assert_allclose(again.predict_proba(sample, embeddings=emb[:4]),
                               model.predict_proba(sample, embeddings=emb[:4]), atol=1e-9)
    assert make_classifier("ensemble", LABELS, blend_folds=2, checkpoint_dir=str(tmp_path),
                           members=["hybrid", "transformer"])._new_members("-fold1")[1].checkpoint_dir \
        == str(tmp_path / "member-1-transformer-fold1")
    with pytest.raises(ModelError, match="blend_folds"):
        make_classifier("ensemble", LABELS, blend_folds=1)


def test_ensemble_refit_trains_members_on_all_rows_and_keeps_the_blend(tmp_path):
    texts, ys = toy_corpus(12, seed=4)
    emb = hash_vectors(texts)
    hy = {"calibration_folds": 3, "min_df": 1}
    common = dict(members=[{"kind": "hybrid", "params": hy}, {"kind": "tfidf_lr", "params": {"min_df": 1}}],
                  blend_fraction=0.25)
    plain = make_classifier("ensemble", LABELS, **common).fit(texts, ys, embeddings=emb)
    refit = make_classifier("ensemble", LABELS, refit=True, **common).fit(texts, ys, embeddings=emb)
    n = len(texts)
    assert plain.fit_info["members"][0]["n_train"] < n
    assert refit.fit_info["n_refit"] == n and [m["n_train"] for m in refit.fit_info["members"]] == [n, n]
    assert [m["n_train"] for m in refit.fit_info["blend_members"]] == [m["n_train"] for m in plain.fit_info["members"]]
    np.testing.assert_allclose(refit.weights, plain.weights)  # the blend was learned before the refit
    assert refit.predict_proba(texts[:3], embeddings=emb[:3]).shape == (3, len(LABELS))
    assert make_classifier("ensemble", LABELS, refit=True, checkpoint_dir=str(tmp_path),
                           members=["hybrid", "transformer"])._new_members("-refit")[1].checkpoint_dir \
        == str(tmp_path / "member-1-transformer-refit")


# -- pure functions ------------------------------------------------------------------------
def test_nb_ratio_is_positive_for_features_typical_of_the_label_and_weighted():
    import scipy.sparse as sp

    from models.nblr import nb_log_count_ratio

    # feature 0 only in positive rows, feature 1 only in negative rows, feature 2 everywhere
    X = sp.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float32))
    pos = np.array([True, True, False, False])
    r = nb_log_count_ratio(X, pos, np.ones(4))
    assert r[0] > 0 > r[1] and abs(r[2]) < 1e-6
    assert r.dtype == np.float32 and r.shape == (3,)
    # a row of weight 0 counts for nothing: feature 1 then appears in no row at all
    r0 = nb_log_count_ratio(X, pos, np.array([1.0, 1.0, 0.0, 0.0]))
    np.testing.assert_allclose(r0[0], r0[2], atol=1e-6)


def test_nblr_has_one_head_per_label_whose_ratios_favour_that_labels_words():
    from test_models_fixtures import VOCAB

    texts, ys = toy_corpus(20, seed=3)
    model = make_classifier("nblr", LABELS, calibration_folds=3, min_df=1, char_ngrams=None).fit(texts, ys)
    head = model._clf
    assert list(head.classes_) == sorted(LABELS.index(v) for v in set(ys))
    vocab = model._word.vocabulary_
    for c, ratio in zip(head.classes_, head.ratios_):
        own = [ratio[vocab[w]] for w in VOCAB[LABELS[c]] if w in vocab]
        other = [ratio[vocab[w]] for lab, words in VOCAB.items() if lab != LABELS[c] for w in words if w in vocab]
        assert own and min(own) > 0 > max(other)
    assert head.decision_function(model._features(texts[:3], None, fit=False)).shape == (3, len(head.classes_))
    assert not model.needs_embeddings and model.fit_info["calibration_folds"] == 3
    with pytest.raises(ModelError, match="alpha"):
        make_classifier("nblr", LABELS, alpha=0)
    with pytest.raises(ModelError, match="nblr: parameter 'alpha' must be a float > 0, got 'abc'"):
        make_classifier("nblr", LABELS, alpha="abc")
    with pytest.raises(ModelError, match="word_ngrams or char_ngrams"):
        make_classifier("nblr", LABELS, word_ngrams=None, char_ngrams=None)


def test_uncertainty_bounds():
    p = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    np.testing.assert_allclose(M.margin_uncertainty(p), [0.0, 1.0, 1.0, 0.5])
    ent = M.entropy_uncertainty(p)
    assert ent[0] == pytest.approx(0.0, abs=1e-6) and ent[2] == pytest.approx(1.0)
    assert 0 < ent[1] < ent[3] < 1  # (.5,.5,0) spreads over 2 labels, (.7,.2,.1) over 3


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    rng = np.random.default_rng(0)
    n = 20000
    conf = rng.uniform(0.5, 1.0, size=n)
    correct = rng.uniform(size=n) < conf
    proba = np.stack([conf, 1 - conf], axis=1)
    y = np.where(correct, 0, 1)
    assert M.expected_calibration_error(proba, y) < 0.02
    overconfident = np.stack([np.full(n, 0.99), np.full(n, 0.01)], axis=1)
    y_half = rng.integers(0, 2, size=n)
    assert M.expected_calibration_error(overconfident, y_half) == pytest.approx(0.49, abs=0.02)
    bins = M.reliability_bins(proba, y, n_bins=10)
    assert bins["count"].sum() == n and len(bins["edges"]) == 11


def test_classification_summary_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=500)
    pred = np.where(rng.uniform(size=500) < 0.7, y, rng.integers(0, 4, size=500))
    s = M.classification_summary(y, pred, ["a", "b", "c", "d"])
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert s["mcc"] == pytest.approx(matthews_corrcoef(y, pred))
    assert s["per_label"]["b"]["f1"] == pytest.approx(f1_score(y, pred, average=None)[1])


def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(8000, 3))
    true_p = M.softmax(logits / 2.5)
    y = np.array([rng.choice(3, p=row) for row in true_p])
    t, bias = fit_temperature_bias(logits, y, np.arange(3), 3, with_bias=False)
    assert t == pytest.approx(2.5, rel=0.08)
    assert np.all(bias == 0)


def test_decision_weights_raise_macro_f1_on_a_rare_class():
    rng = np.random.default_rng(3)
    n = 3000
    y = (rng.uniform(size=n) < 0.08).astype(int)  # rare class 1
    p1 = np.clip(0.25 * y + rng.uniform(0, 0.45, size=n), 0, 1)  # rare class rarely wins arg-max
    proba = np.stack([1 - p1, p1], axis=1)
    before = M.classification_summary(y, proba.argmax(1), ["a", "b"])["macro_f1"]
    w = tune_decision_weights(proba, y, np.array([0, 1]))
    after = M.classification_summary(y, np.argmax(proba * w, axis=1), ["a", "b"])["macro_f1"]
    assert after > before + 0.02


# -- training data and splits --------------------------------------------------------------
def test_split_is_seeded_stratified_and_stable():
    ids = [f"i{k}" for k in range(1000)]
    labels = ["a"] * 900 + ["b"] * 95 + ["c"] * 5
    tr, ho = stratified_split(ids, labels, 0.2, seed=7)
    assert len(set(tr) & set(ho)) == 0 and len(tr) + len(ho) == 1000
    held = [labels[i] for i in ho]
    assert held.count("a") == 180 and held.count("b") == 19 and held.count("c") == 1
    tr2, ho2 = stratified_split(ids, labels, 0.2, seed=7)
    assert list(ho) == list(ho2)
    assert list(stratified_split(ids, labels, 0.2, seed=8)[1]) != list(ho)
    # Adding items keeps most existing items on their side.
    more_ids, more_labels = ids + [f"j{k}" for k in range(100)], labels + ["a"] * 100
    _, ho3 = stratified_split(more_ids, more_labels, 0.2, seed=7)
    moved = set(ids[i] for i in ho) ^ set(more_ids[i] for i in ho3 if i < 1000)
    assert len(moved) < 40


def test_training_examples_prefer_human_decisions(sqlite_store, taxonomy):
    from core.schema import Decision

    texts, ys = toy_corpus(4, labels=("benign", "spam"))
    ys_with_gap = ys[:-1] + [None]
    ids = add_items(sqlite_store, texts, ys_with_gap)
    add_items(sqlite_store, ["not in the taxonomy"], ["weird_label"], prefix="odd")
    with sqlite_store.session() as s:
        s.add(Decision(item_id=ids[0], reviewer="ana", kind="review", label="scam", action="remove",
                       taxonomy_version=taxonomy.version))
        s.add(Decision(item_id=ids[-1], reviewer="ana", kind="review", label="spam", action="remove",
                       taxonomy_version=taxonomy.version))
    data = training_examples(sqlite_store, taxonomy)
    assert data.ids == sorted(data.ids) and len(data) == 8
    label_of = dict(zip(data.ids, data.labels))
    assert label_of[ids[0]] == "scam" and label_of[ids[-1]] == "spam"
    assert data.origin.count("decision") == 2
    assert data.dropped == {"unknown label weird_label": 1}
    source_only = training_examples(sqlite_store, taxonomy, prefer_decisions=False)
    assert dict(zip(source_only.ids, source_only.labels))[ids[0]] == "benign"
    assert source_only.fingerprint() != data.fingerprint()
    rare = training_examples(sqlite_store, taxonomy, min_examples_per_label=5)
    assert "scam" not in rare.labels and "too few examples of scam" in rare.dropped


def test_fingerprint_ignores_order_but_not_labels():
    a = data_fingerprint(["1", "2"], ["x", "y"], ["benign", "spam"])
    assert a == data_fingerprint(["2", "1"], ["y", "x"], ["spam", "benign"])
    assert a != data_fingerprint(["1", "2"], ["x", "y"], ["benign", "benign"])


def test_social_text_normalises_links_mentions_and_entities():
    from models.preprocessing import social_text

    assert social_text("RT @Bob: WIN &amp; see https://x.co/a?b=1 now") == "rt  @user : win & see  httpurl  now"
    assert social_text("mail me at bob@example.com") == "mail me at bob@example.com"


def test_config_fills_shared_embedding_settings():
    from models.config import load_models_config

    cfg = load_models_config()
    params = cfg.kind_params("hybrid")
    assert params["embedding_runtime"] == cfg.embedding.runtime and params["seed"] == cfg.training.seed
    assert "embedding_runtime" not in cfg.kind_params("tfidf_lr")
    model = make_classifier("hybrid", LABELS, **{**params, "embedding_runtime": "onnx"})
    assert model.embedder().model_id == "all-MiniLM-L6-v2@onnx"


def test_blend_weights_the_informative_member_and_beats_each_alone():
    rng = np.random.default_rng(0)
    n, k = 600, 3
    y = rng.integers(0, k, n)
    good = np.full((n, k), 0.1)
    good[np.arange(n), y] = 0.8
    flip = rng.random(n) < 0.2  # the good member is wrong on a fifth of the items
    good[flip] = np.roll(good[flip], 1, axis=1)
    noise = rng.dirichlet(np.ones(k), n)
    logp = np.log(np.stack([good, noise]))
    w, b = fit_blend(logp, y, np.arange(k), k)
    assert w[0] > 0.5 and w[1] < 0.2 * w[0]
    z = w[0] * logp[0] + w[1] * logp[1] + b
    blended = M.softmax(z)
    nll = lambda p: -np.log(p[np.arange(n), y]).mean()  # noqa: E731
    assert nll(blended) <= nll(good) + 1e-6 and nll(blended) < nll(noise)


def test_per_label_blend_trusts_each_member_on_the_label_it_reads_well(tmp_path):
    rng = np.random.default_rng(1)
    n, k = 1200, 3
    y = rng.integers(0, k, n)

    def member(good_at: int) -> np.ndarray:
        # Sure and right on items of label `good_at`, a coin toss elsewhere.
        p = rng.dirichlet(np.ones(k), n)
        sure = y == good_at
        p[sure] = 0.05
        p[sure, good_at] = 0.9
        return p

    logp = np.log(np.stack([member(0), member(1)]))
    tied_w, tied_b = fit_blend(logp, y, np.arange(k), k)
    w, b = fit_blend(logp, y, np.arange(k), k, per_label=True)
    assert w.shape == (2, k) and tied_w.shape == (2,)
    assert w[0, 0] > w[1, 0] and w[1, 1] > w[0, 1]
    nll = lambda z: -np.log(M.softmax(z)[np.arange(n), y]).mean()  # noqa: E731
    assert nll(np.einsum("jc,jnc->nc", w, logp) + b) < nll(np.tensordot(tied_w, logp, axes=1) + tied_b)
    # The ensemble keeps, uses and saves the (m, k) weights.
    texts, ys = toy_corpus(12, seed=4)
    emb = hash_vectors(texts)
    members = [{"kind": "hybrid", "params": {"calibration_folds": 3, "min_df": 1}},
               {"kind": "tfidf_lr", "params": {"min_df": 1}}]
    model = make_classifier("ensemble", LABELS, members=members, blend_fraction=0.25,
                            blend_weights="per_label").fit(texts, ys, embeddings=emb)
    assert model.weights.shape == (2, len(LABELS))
    again = load_classifier(model.save(tmp_path / "ens"))
    np.testing.assert_allclose(again.predict_proba(texts[:4], embeddings=emb[:4]),
                               model.predict_proba(texts[:4], embeddings=emb[:4]), atol=1e-9)
    with pytest.raises(ModelError, match="blend_weights"):
        make_classifier("ensemble", LABELS, blend_weights="free")


def test_ensemble_members_are_validated_and_checkpoint_per_member(tmp_path):
    with pytest.raises(ModelError, match="unknown model kind"):
        make_classifier("ensemble", LABELS, members=[{"kind": "nope"}])
    with pytest.raises(ModelError, match="cannot contain an ensemble"):
        make_classifier("ensemble", LABELS, members=["ensemble"])
    with pytest.raises(ModelError, match="unknown key"):
        make_classifier("ensemble", LABELS, members=[{"kind": "hybrid", "C": 1}])
    model = make_classifier("ensemble", LABELS, members=["hybrid", "transformer"], checkpoint_dir=str(tmp_path))
    built = model._new_members()
    assert [m.kind for m in built] == ["hybrid", "transformer"]
    assert built[1].checkpoint_dir == str(tmp_path / "member-1-transformer")


def test_bagged_decision_weights_are_steadier_than_one_tuning():
    """On a small held-out set, one tuning swings with the resample; the bagged one much less."""
    rng = np.random.default_rng(3)

    def sample(n):
        y = rng.choice(3, n, p=[0.8, 0.15, 0.05])
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), y] += 1.5
        return M.softmax(logits), y

    single, bagged = [], []
    for _ in range(6):
        proba, y = sample(300)
        single.append(np.log(tune_decision_weights(proba, y, np.arange(3))))
        bagged.append(np.log(tune_decision_weights(proba, y, np.arange(3), bootstrap=15, seed=1)))
    assert np.std(bagged, axis=0).sum() < np.std(single, axis=0).sum()
    w = tune_decision_weights(proba, y, np.arange(3), bootstrap=15, seed=1)
    assert w.max() == pytest.approx(1.0) and (w > 0).all()


# -- soft targets from annotator votes -------------------------------------------------------
def test_vote_shares_follow_the_taxonomy_and_name_a_bad_count(taxonomy):
    meta = {"count": 3, "hate_speech": 1, "offensive_language": 2, "neither": 0}
    assert taxonomy.vote_shares("davidson", meta) == pytest.approx({"hate": 1 / 3, "harassment": 2 / 3})
    hub = {"hate_speech_count": 0, "offensive_language_count": 0, "neither_count": 3}
    assert taxonomy.vote_shares("davidson", hub) == {"benign": 1.0}
    assert taxonomy.vote_shares("davidson", None) is None
    assert taxonomy.vote_shares("davidson", {"hate_speech": 0, "offensive_language": 0, "neither": 0}) is None
    assert taxonomy.vote_shares("sms_spam", meta) is None  # no votes recorded for this source
    with pytest.raises(ValueError, match="offensive_language='many'"):
        taxonomy.vote_shares("davidson", {**meta, "offensive_language": "many"})


def test_votes_must_name_labels_of_their_source(taxonomy):
    from core.taxonomy import Taxonomy

    raw = taxonomy.model_dump()
    raw["sources"]["davidson"]["votes"]["7"] = ["sevens"]
    with pytest.raises(ValueError, match="sources.davidson.votes.7"):
        Taxonomy.model_validate(raw)


def test_target_matrix_uses_votes_where_known_and_one_hot_elsewhere():
    from models.training import target_matrix

    t = target_matrix([{"hate": 1, "harassment": 3}, None, {"unknown": 1.0}], ["harassment", "spam", "benign"], LABELS)
    np.testing.assert_allclose(t[0], [0, 0, 0, 0.25, 0.75])
    np.testing.assert_allclose(t[1], [0, 1, 0, 0, 0])
    np.testing.assert_allclose(t[2], [1, 0, 0, 0, 0])  # nothing usable: the label itself


def test_training_examples_carry_vote_shares_except_where_a_human_decided(sqlite_store, taxonomy):
    from core.schema import Decision, Item
    from core.text import text_hash

    votes = [{"hate_speech": 2, "offensive_language": 1, "neither": 0},
             {"hate_speech": 0, "offensive_language": 3, "neither": 0},
             {"hate_speech": "x", "offensive_language": 3, "neither": 0}]
    labels = ["hate", "harassment", "harassment"]
    with sqlite_store.session() as s:
        for i, (v, lab) in enumerate(zip(votes, labels)):
            s.add(Item(id=f"davidson:{i}", source="davidson", surface="post", text=f"tweet {i}",
                       text_hash=text_hash(f"tweet {i}"), policy_label=lab, source_label=lab,
                       taxonomy_version="test", meta={"count": 3, **v}))
    data = training_examples(sqlite_store, taxonomy)
    assert data.shares[0] == pytest.approx({"hate": 2 / 3, "harassment": 1 / 3})
    assert data.shares[1] == {"harassment": 1.0} and data.shares[2] is None
    assert data.dropped == {"unreadable vote counts (trained on the label alone)": 1}
    t = data.targets(LABELS)
    assert t.shape == (3, len(LABELS)) and t[0, LABELS.index("hate")] == pytest.approx(2 / 3)
    # The votes are part of the data: other votes, another fingerprint.
    before = data.fingerprint()
    with sqlite_store.session() as s:
        s.add(Decision(item_id="davidson:0", reviewer="ana", kind="review", label="harassment", action="remove",
                       taxonomy_version=taxonomy.version))
    decided = training_examples(sqlite_store, taxonomy)
    assert decided.shares[0] is None and decided.labels[0] == "harassment"
    assert decided.fingerprint() != before
    assert data.subset([0]).shares == [data.shares[0]]


def _ambiguous_corpus() -> tuple[list[str], list[str], np.ndarray]:
    """Two phrasings; annotators split 70/30 hate vs harassment on the first, agree on the second."""
    texts = [f"ugly phrase number {i % 5}" for i in range(40)] + [f"calm words here {i % 5}" for i in range(40)]
    ys = ["hate"] * 40 + ["benign"] * 40
    t = np.zeros((80, len(LABELS)))
    t[:40, LABELS.index("hate")], t[:40, LABELS.index("harassment")] = 0.7, 0.3
    t[40:, LABELS.index("benign")] = 1.0
    return texts, ys, t


def test_hybrid_learns_the_vote_share_only_when_asked():
    texts, ys, t = _ambiguous_corpus()
    emb = hash_vectors(texts)
    common = dict(calibration="none", decision_objective=None, min_df=1, class_weight=None, C=100.0)
    hard = make_classifier("hybrid", LABELS, **common).fit(texts, ys, embeddings=emb, targets=t)
    soft = make_classifier("hybrid", LABELS, soft_labels=True, **common).fit(texts, ys, embeddings=emb, targets=t)
    same = make_classifier("hybrid", LABELS, **common).fit(texts, ys, embeddings=emb)
    np.testing.assert_allclose(hard.predict_proba(texts[:1], emb[:1]), same.predict_proba(texts[:1], emb[:1]))
    p_hard, p_soft = hard.predict_proba(texts[:1], emb[:1])[0], soft.predict_proba(texts[:1], emb[:1])[0]
    assert p_hard[LABELS.index("harassment")] == 0.0  # never a hard label
    assert p_soft[LABELS.index("harassment")] == pytest.approx(0.3, abs=0.05)
    assert p_soft[LABELS.index("hate")] == pytest.approx(0.7, abs=0.05)
    assert soft.fit_info["soft_targets"] and not hard.fit_info["soft_targets"]
    with pytest.raises(ModelError, match="shape"):
        make_classifier("hybrid", LABELS, soft_labels=True, **common).fit(texts, ys, embeddings=emb, targets=t[:5])
    bad = t.copy()
    bad[3] = 0.0
    with pytest.raises(ModelError, match="row 3"):
        make_classifier("hybrid", LABELS, soft_labels=True, **common).fit(texts, ys, embeddings=emb, targets=bad)


def test_nblr_learns_from_vote_shares_through_weighted_rows():
    texts, ys, t = _ambiguous_corpus()
    common = dict(calibration="none", decision_objective=None, min_df=1, class_weight=None, C=100.0)
    hard = make_classifier("nblr", LABELS, **common).fit(texts, ys, targets=t)
    soft = make_classifier("nblr", LABELS, soft_labels=True, **common).fit(texts, ys, targets=t)
    p_hard, p_soft = hard.predict_proba(texts[:1])[0], soft.predict_proba(texts[:1])[0]
    h, a = LABELS.index("hate"), LABELS.index("harassment")
    assert p_hard[a] == 0.0  # harassment is never a hard label: no head for it
    assert 0.05 < p_soft[a] < p_soft[h]  # the minority vote gets mass, the majority more
    assert soft.fit_info["soft_targets"]


def test_transformer_trains_on_soft_targets_and_keys_its_checkpoint_on_them(tmp_path):
    texts, ys, t = _ambiguous_corpus()
    common = dict(init_config=TINY_TRANSFORMER, batch_size=16, learning_rate=1e-2, max_length=8, epochs=50,
                  calibration_fraction=0.0, checkpoint_dir=str(tmp_path / "ckpt"), seed=1, torch_threads=1)
    soft = make_classifier("transformer", LABELS, max_steps=60, soft_labels=True, **common).fit(texts, ys, targets=t)
    assert soft.fit_info["soft_targets"] and soft.fit_info["loss_last"] < soft.fit_info["loss_first"]
    p = soft.predict_proba(texts[:1])[0]
    assert 0.1 < p[LABELS.index("harassment")] < 0.5 < p[LABELS.index("hate")]
    again = make_classifier("transformer", LABELS, max_steps=61, soft_labels=True, **common).fit(texts, ys, targets=t)
    assert again.fit_info["resumed_from"] == 60
    t2 = t.copy()
    t2[:40, LABELS.index("hate")], t2[:40, LABELS.index("harassment")] = 0.5, 0.5
    other = make_classifier("transformer", LABELS, max_steps=2, soft_labels=True, **common).fit(texts, ys, targets=t2)
    assert other.fit_info["resumed_from"] is None


def test_ensemble_hands_soft_targets_to_the_members_that_learn_from_them():
    texts, ys, t = _ambiguous_corpus()
    emb = hash_vectors(texts)
    hy = {"calibration_folds": 3, "min_df": 1}
    model = make_classifier("ensemble", LABELS, blend_fraction=0.25,
                            members=[{"kind": "hybrid", "params": {**hy, "soft_labels": True}},
                                     {"kind": "hybrid", "params": hy}])
    model.fit(texts, ys, embeddings=emb, targets=t)
    assert [m["soft_targets"] for m in model.fit_info["members"]] == [True, False]
    with pytest.raises(ModelError, match="shape"):
        model.fit(texts, ys, embeddings=emb, targets=t[:, :2])


def test_load_labelled_reads_vote_shares_and_lists_unreadable_ones(tmp_path, taxonomy):
    from core.sources import load_labelled

    folder = tmp_path / "davidson_hate_offensive"
    folder.mkdir()
    (folder / "labeled_data.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,2,1,0,0,first tweet\n"
        "1,3,0,0,3,2,second tweet\n"
        "2,3,x,3,0,1,third tweet\n")
    df = load_labelled("davidson", shared_dir=tmp_path, taxonomy=taxonomy)
    assert df["policy_label"].tolist() == ["hate", "benign", "harassment"]
    assert df["vote_shares"][0] == pytest.approx({"hate": 2 / 3, "harassment": 1 / 3})
    assert df["vote_shares"][1] == {"benign": 1.0} and df["vote_shares"][2] is None
    [problem] = df.attrs["unreadable_votes"]
    assert "labeled_data.csv line 4" in problem and "hate_speech='x'" in problem
