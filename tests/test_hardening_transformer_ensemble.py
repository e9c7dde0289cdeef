"""Hostile input to the `transformer` and `ensemble` kinds: texts that are not a list of strings,
lone surrogates, columns of different lengths, devices and max_length values torch refuses only
mid-fit, a training run that diverges, checkpoints that are pickles, edited or of another model,
checkpoint paths that cannot be written, embeddings of the wrong shape or with NaN rows, and
ensemble members that fail, or return the wrong shape or NaN. Models stay tiny (CPU only)."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from models.base import KINDS, ModelError, PolicyClassifier
from models.kinds import load_classifier, make_classifier
from test_models_fixtures import TINY_TRANSFORMER, hash_vectors, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]


def _tiny(**params):
    base = {"init_config": TINY_TRANSFORMER, "max_steps": 2, "epochs": 10.0, "batch_size": 4, "max_length": 16,
            "calibration_fraction": 0.0, "torch_threads": 1, "device": "cpu"}
    return make_classifier("transformer", LABELS, **{**base, **params})


def _data():
    return toy_corpus(4, seed=3, labels=("benign", "spam"))


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# -- transformer: texts ------------------------------------------------------------------------
def test_transformer_refuses_one_string_and_non_string_rows():
    texts, ys = _data()
    model = _tiny().fit(texts, ys)
    with pytest.raises(ModelError, match="^transformer: texts must be a list of strings, not one str$"):
        model.predict_proba("buy now cheap offer")  # was scored letter by letter: 19 rows
    with pytest.raises(ModelError, match="^transformer: text 1 is a NoneType, not a string$"):
        model.predict_proba(["fine", None])
    with pytest.raises(ModelError, match="not one str"):
        _tiny().fit("ab", ["benign", "spam"])  # was trained on the letters
    with pytest.raises(ModelError, match="text 3 is a float"):
        _tiny().fit(texts[:3] + [float("nan")] + texts[4:], ys)


def test_transformer_names_texts_and_labels_of_different_lengths():
    texts, ys = _data()
    with pytest.raises(ModelError, match=f"^transformer: got {len(ys)} labels for {len(ys) - 2} texts$"):
        _tiny().fit(texts[:-2], ys)  # was an IndexError deep in the batching


def test_transformer_scores_lone_surrogates_control_characters_empty_and_long_texts():
    texts, ys = _data()
    model = _tiny().fit(texts + ["a\ud800b"], ys + ["spam"])  # was a TypeError from the tokenizer
    proba = model.predict_proba(["", "\x00\x1b[31m\u202e", "lone \udfff surrogate", "word " * 5000])
    assert proba.shape == (4, len(LABELS)) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


# -- transformer: parameters torch refused only mid-fit ------------------------------------------
def test_transformer_device_is_validated():
    with pytest.raises(ModelError, match="parameter 'device' must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:<n>', "
                                         "got 'gpu'"):
        make_classifier("transformer", LABELS, device="gpu")
    import torch

    if not torch.cuda.is_available():
        texts, ys = _data()
        with pytest.raises(ModelError, match="device='cuda' but torch sees no CUDA GPU"):
            _tiny(device="cuda").fit(texts, ys)  # was torch's AssertionError


@pytest.mark.parametrize("params, expect", [
    ({"init_config": {"model_type": "no-such-architecture"}}, "init_config (ValueError: Unrecognized model"),
    ({"init_config": {**TINY_TRANSFORMER, "num_attention_heads": 5}}, "init_config (ValueError: The hidden size"),
    ({"init_config": {**TINY_TRANSFORMER, "num_labels": 3}}, "init_config (TypeError: "),
    ({"init_config": None, "base_model": "/nonexistent/model"}, "base_model '/nonexistent/model' (OSError: "),
])
def test_a_bad_init_config_or_base_model_is_one_line(params, expect):
    texts, ys = _data()
    with pytest.raises(ModelError) as err:  # were transformers' own errors, some a page long
        _tiny(**params).fit(texts, ys)
    assert _one_line(err).startswith(f"transformer: cannot build the model from {expect}"), str(err.value)


def test_torch_threads_is_bounded():
    with pytest.raises(ModelError, match=r"parameter 'torch_threads' must be an int in \[1, 1024\] or null"):
        make_classifier("transformer", LABELS, torch_threads=10**12)  # was an overflow inside torch at fit


def test_transformer_max_length_beyond_the_models_positions_is_refused(tmp_path):
    texts, ys = _data()
    with pytest.raises(ModelError, match="max_length=512 exceeds the model's 128 positions"):
        _tiny(max_length=512).fit(["word " * 400] + texts, ["benign"] + ys)  # was a RuntimeError on the long text
    saved = _tiny().fit(texts, ys).save(tmp_path / "m")
    meta = json.loads((saved / "model.json").read_text())
    meta["params"]["max_length"] = 4096
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError) as err:  # a hostile model.json: one long text would stop every batch
        load_classifier(saved)
    assert "max_length=4096 exceeds the model's 128 positions" in _one_line(err)


def test_a_diverging_run_is_refused_and_leaves_no_checkpoint(tmp_path):
    texts, ys = _data()
    ckpt = tmp_path / "ckpt"
    model = _tiny(learning_rate=1e30, max_steps=6, checkpoint_dir=str(ckpt))
    with pytest.raises(ModelError, match=r"training diverged at step \d \(loss nan\); lower learning_rate"):
        model.fit(texts, ys)  # was fitted, then every score NaN
    assert not model.is_fitted and not list(ckpt.glob("checkpoint*"))


def test_a_failed_refit_leaves_an_unfitted_transformer(monkeypatch):
    import models.transformer as transformer

    texts, ys = _data()
    model = _tiny().fit(texts, ys)

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(transformer, "_epoch_order", killed)  # fails after the fresh model is built
    with pytest.raises(RuntimeError, match="killed"):
        model.fit(texts, ys)
    assert not model.is_fitted  # was fitted, scoring with the freshly built random weights
    with pytest.raises(ModelError, match="has not been fitted"):
        model.predict_proba(texts)


def test_transformer_fit_is_deterministic_for_a_seed():
    texts, ys = toy_corpus(4, seed=5, labels=("benign", "spam", "scam"))
    a = _tiny(max_steps=4, calibration_fraction=0.25, seed=7).fit(texts, ys).predict_proba(texts)
    b = _tiny(max_steps=4, calibration_fraction=0.25, seed=7).fit(texts, ys).predict_proba(texts)
    np.testing.assert_array_equal(a, b)


# -- transformer: checkpoints --------------------------------------------------------------------
class _Boom:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_checkpoint_is_safetensors_and_a_pickle_is_never_read(tmp_path):
    texts, ys = _data()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    marker = tmp_path / "code-ran"
    (ckpt / "checkpoint.pt").write_bytes(pickle.dumps({"fingerprint": "x", "evil": _Boom(str(marker))}))
    first = _tiny(checkpoint_dir=str(ckpt)).fit(texts, ys)
    assert not marker.exists() and first.fit_info["resumed_from"] is None
    written = sorted(p.name for p in ckpt.iterdir())
    assert written == ["checkpoint.pt", "checkpoint.safetensors"]  # the old pickle was left alone, unread
    assert (ckpt / "checkpoint.safetensors").read_bytes()[:1] != b"\x80"
    again = _tiny(checkpoint_dir=str(ckpt), max_steps=3).fit(texts, ys)
    assert again.fit_info["resumed_from"] == 2 and again.fit_info["steps"] == 3


class _Killed(Exception):
    pass


def test_a_killed_run_resumes_from_the_safetensors_checkpoint_as_if_never_stopped(tmp_path, monkeypatch):
    import models.transformer as transformer

    texts, ys = _data()
    real = transformer.save_checkpoint

    def save_then_die(path, fingerprint, model, optim, sched, step, total, losses):
        real(path, fingerprint, model, optim, sched, step, total, losses)
        if step == 2:
            raise _Killed

    monkeypatch.setattr(transformer, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        _tiny(max_steps=4, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=1).fit(texts, ys)
    monkeypatch.setattr(transformer, "save_checkpoint", real)
    resumed = _tiny(max_steps=4, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=1).fit(texts, ys)
    assert resumed.fit_info["resumed_from"] == 2  # weights, AdamW moments and the schedule all came back
    plain = _tiny(max_steps=4).fit(texts, ys)
    np.testing.assert_allclose(resumed.predict_proba(texts), plain.predict_proba(texts), atol=1e-6)
    assert resumed.fit_info["loss_curve"] == pytest.approx(plain.fit_info["loss_curve"], abs=1e-6)


def _edit_checkpoint(path, edit) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(state, tensors)
    save_file(tensors, str(path), metadata={"state": json.dumps(state)})


def _first_weight(tensors):
    return next(k for k in tensors if k.startswith("model/"))


def _nan_weight(s, t):
    t[_first_weight(t)][0] = float("nan")


def _optim_tensor(s, t):
    key = next(k for k in t if k.endswith("/exp_avg"))
    t[key] = t[key].flatten()[:3].clone()


def _bad_lr(s, t):
    s["param_groups"][0]["lr"] = "fast"


HOSTILE = {
    "negative step": (lambda s, t: s.update(step=-3, total=3), "step -3"),  # total 3: a killed 3-step run
    "bool step": (lambda s, t: s.update(step=True, total=3), "step True"),
    "losses not a list": (lambda s, t: s.update(losses=5), "loss curve"),
    "NaN loss": (lambda s, t: s.update(losses=[float("nan"), 1.0]), "loss curve"),
    "NaN weight": (_nan_weight, "NaN or infinite"),
    "weight of another shape": (lambda s, t: t.update({_first_weight(t): t[_first_weight(t)][:3].clone()}),
                                "has shape"),
    "weights missing": (lambda s, t: [t.pop(k) for k in list(t) if k.startswith("model/")], "missing or unknown"),
    "optimizer state of another shape": (_optim_tensor, "optimizer tensor"),
    "learning rate not a number": (_bad_lr, "optimizer settings"),
    "schedule junk": (lambda s, t: s.update(sched=5), "learning-rate schedule"),
    "schedule with extra attributes": (lambda s, t: s["sched"].update(optimizer=None), "learning-rate schedule"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_or_mismatched_checkpoint_is_one_line_naming_it(tmp_path, case):
    texts, ys = _data()
    ckpt = tmp_path / "ckpt"
    _tiny(checkpoint_dir=str(ckpt)).fit(texts, ys)
    edit, expect = HOSTILE[case]
    _edit_checkpoint(ckpt / "checkpoint.safetensors", edit)
    model = _tiny(checkpoint_dir=str(ckpt), max_steps=3)
    with pytest.raises(ModelError) as err:  # were RuntimeError, ValueError, TypeError, or NaN weights trained on
        model.fit(texts, ys)
    msg = _one_line(err)
    assert str(ckpt / "checkpoint.safetensors") in msg and expect in msg and "delete it" in msg, msg
    assert not model.is_fitted


def test_checkpoint_paths_are_checked_before_training(tmp_path):
    texts, ys = _data()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ModelError, match="checkpoint_dir is not a folder"):
        _tiny(checkpoint_dir=str(a_file)).fit(texts, ys)  # was FileExistsError after the first steps
    (tmp_path / "ckpt" / "checkpoint.safetensors").mkdir(parents=True)
    with pytest.raises(ModelError, match="the checkpoint is not a plain file"):
        _tiny(checkpoint_dir=str(tmp_path / "ckpt")).fit(texts, ys)  # was IsADirectoryError at the end


# -- ensemble ------------------------------------------------------------------------------------
class _Member(PolicyClassifier):
    """A member kind that fails, or answers with the wrong shape or NaN, as `mode` says."""

    kind = "hostile_member"
    _parameter_constraints = {"mode": [str]}

    def __init__(self, labels, mode: str = "ok") -> None:
        super().__init__(labels)
        self.mode = mode

    def fit(self, texts, y, embeddings=None, show_progress=False, targets=None):
        if self.mode == "fail" or (self.mode == "fail_refit" and len(texts) == 24):  # the refit sees all 24
            raise RuntimeError("out of memory\nsecond line")
        self.is_fitted, self.fit_info = True, {}
        return self

    def predict_proba(self, texts, embeddings=None):
        k = len(self.labels) - 2 if self.mode == "shape" else len(self.labels)
        return np.full((len(texts), k), np.nan if self.mode == "nan" else 1.0 / k)


@pytest.fixture
def hostile_member(monkeypatch):
    monkeypatch.setitem(KINDS, _Member.kind, _Member)


def _ens(*members, **params):
    members = members or ({"kind": "hybrid", "params": {"calibration_folds": 2, "min_df": 1, "char_ngrams": None}},
                          {"kind": "tfidf_lr", "params": {"min_df": 1}})
    return make_classifier("ensemble", LABELS, members=list(members), decision_bootstrap=2, blend_fraction=0.3,
                           **params)


def _ens_data():
    texts, ys = toy_corpus(8, seed=2, labels=("benign", "spam", "scam"))
    return texts, ys, hash_vectors(texts)


def test_ensemble_refuses_one_string_non_string_rows_and_mismatched_lengths():
    texts, ys, emb = _ens_data()
    model = _ens().fit(texts, ys, embeddings=emb)
    with pytest.raises(ModelError, match="^ensemble: texts must be a list of strings, not one str$"):
        model.predict_proba("hello", embeddings=hash_vectors(["hello"]))  # was hybrid's "(5, dim)" complaint
    with pytest.raises(ModelError, match="^ensemble: text 1 is a NoneType, not a string$"):
        model.predict_proba(["a", None], embeddings=hash_vectors(["a", "b"]))
    with pytest.raises(ModelError, match="not one str"):
        _ens().fit("abcdefghijkl", ["benign", "spam"] * 6)
    with pytest.raises(ModelError, match=f"^ensemble: got {len(ys)} labels for {len(ys) - 2} texts$"):
        _ens().fit(texts[:-2], ys, embeddings=emb[:-2])  # was a bare ValueError


def test_ensemble_names_embeddings_of_the_wrong_shape():
    texts, ys, emb = _ens_data()
    with pytest.raises(ModelError, match=rf"^ensemble: embeddings must be an \({len(texts)}, dim\) array"):
        _ens().fit(texts, ys, embeddings=np.vstack([emb, emb[:2]]))  # was silently misaligned
    with pytest.raises(ModelError, match=rf"^ensemble: embeddings must be an \({len(texts)}, dim\) array"):
        _ens().fit(texts, ys, embeddings=emb[:-3])  # was an IndexError
    model = _ens().fit(texts, ys, embeddings=emb)
    with pytest.raises(ModelError, match=r"^ensemble: embeddings must be an \(2, dim\) array"):
        model.predict_proba(texts[:2], embeddings=emb[:3])


def test_ensemble_refuses_nan_embeddings_in_the_blend_slice():
    from models.training import grouped_holdout

    texts, ys, emb = _ens_data()
    yi = [LABELS.index(y) for y in ys]
    _, blend_idx = grouped_holdout(texts, yi, 0.3, 0)
    emb[blend_idx[0]] = np.nan  # only the blend slice: the members fit, then score it NaN
    with pytest.raises(ModelError, match=f"^ensemble: embedding row {blend_idx[0]} holds NaN or infinite values"):
        _ens().fit(texts, ys, embeddings=emb)  # was fitted on a blend learned from NaN


def test_ensemble_member_of_the_wrong_shape_is_named(hostile_member):
    texts, ys, _ = _ens_data()
    with pytest.raises(ModelError, match=r"^ensemble member 1 \(hostile_member\): probabilities of shape \(\d+, 3\), "
                                         r"not \(\d+, 5\)$"):
        _ens("tfidf_lr", {"kind": "hostile_member", "params": {"mode": "shape"}}).fit(texts, ys)


def test_ensemble_member_giving_nan_is_refused_at_fit(hostile_member):
    texts, ys, _ = _ens_data()
    model = _ens({"kind": "tfidf_lr", "params": {"min_df": 1}}, {"kind": "hostile_member", "params": {"mode": "nan"}})
    with pytest.raises(ModelError, match=r"^ensemble member 1 \(hostile_member\) gave no probabilities for training "
                                         r"text \d+"):
        model.fit(texts, ys)  # was fitted with the optimiser's starting weights
    assert not model.is_fitted


def test_ensemble_member_failing_is_named_and_a_failed_refit_leaves_it_unfitted(hostile_member):
    texts, ys, _ = _ens_data()
    model = _ens({"kind": "tfidf_lr", "params": {"min_df": 1}}, {"kind": "hostile_member"}).fit(texts, ys)
    model.members = [{"kind": "tfidf_lr", "params": {"min_df": 1}}, {"kind": "hostile_member", "params": {"mode": "fail"}}]
    with pytest.raises(ModelError) as err:
        model.fit(texts, ys)  # was a bare RuntimeError naming no member
    assert _one_line(err) == "ensemble member 1 (hostile_member) failed to fit: RuntimeError: out of memory"
    model.members[1]["params"]["mode"], model.refit = "fail_refit", True
    with pytest.raises(ModelError, match="failed to fit"):
        model.fit(texts, ys)  # the blend is learned, then the refit fails
    assert not model.is_fitted  # was fitted: the first fit's members under the new blend weights
