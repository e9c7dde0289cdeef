"""The contract every registered model kind honours, checked for each of `kind_names()`:

fit on a tiny, imbalanced toy corpus (one label never seen); predict_proba of shape (n, labels)
with finite rows in [0, 1] summing to 1; predict returning known labels; save -> load_classifier
giving the same probabilities; get_params -> make_classifier building the same model; every
parameter validated (a bad value is a ModelError naming the kind, the parameter and the value,
at make_classifier and again at fit); and calibration: on the training data each label's mean
predicted probability is near its frequency. Plus: saved artifacts are data, never pickles.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from models.base import ModelError
from models.kinds import kind_class, kind_names, load_classifier, make_classifier
from test_models_fixtures import hash_vectors, tiny_params, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]
# Imbalanced on purpose: a calibrator that ignores the label frequencies (a uniform or flattened
# output, a bias of the wrong sign) misses them by more than the tolerance. No 'hate' at all.
TRAIN_COUNTS = {"benign": 22, "spam": 14, "scam": 10, "harassment": 8}
CALIBRATION_TOLERANCE = 0.08
ALL_KINDS = kind_names()


def _train_data() -> tuple[list[str], list[str], np.ndarray]:
    texts, ys = toy_corpus(max(TRAIN_COUNTS.values()), seed=1)
    keep, seen = [], dict.fromkeys(TRAIN_COUNTS, 0)
    for i, y in enumerate(ys):
        if y in seen and seen[y] < TRAIN_COUNTS[y]:
            seen[y] += 1
            keep.append(i)
    texts, ys = [texts[i] for i in keep], [ys[i] for i in keep]
    return texts, ys, hash_vectors(texts)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fitted model per kind, shared by the contract checks (fitting is what costs)."""
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            folder = tmp_path_factory.mktemp(f"contract-{kind}")
            texts, ys, emb = _train_data()
            model = make_classifier(kind, LABELS, **tiny_params(kind, folder))
            assert not model.is_fitted
            assert model.fit(texts, ys, embeddings=emb) is model and model.is_fitted
            cache[kind] = (model, texts, ys, emb, folder)
        return cache[kind]

    return get


def test_every_kind_is_registered_and_importing_the_registry_stays_light():
    assert {"hybrid", "nblr", "tfidf_lr", "minilm_lr", "transformer", "ensemble"} <= set(ALL_KINDS)
    import subprocess
    import sys

    code = ("import sys, models.kinds; heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', "
            "'sklearn', 'scipy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_fit_predict_proba_predict(kind, fitted):
    model, *_ = fitted(kind)
    test_texts, test_y = toy_corpus(6, seed=99, labels=("benign", "spam", "scam", "harassment"))
    test_emb = hash_vectors(test_texts)
    proba = model.predict_proba(test_texts, embeddings=test_emb)
    assert proba.shape == (len(test_texts), len(LABELS))
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    preds = model.predict(test_texts, embeddings=test_emb)
    assert len(preds) == len(test_texts) and set(preds) <= set(LABELS)
    unc = model.uncertainty(proba)
    assert unc.shape == (len(test_texts),) and ((unc >= 0) & (unc <= 1)).all()
    if kind != "transformer":  # the blend, like the linear kinds, gives unseen labels probability 0
        assert np.allclose(proba[:, LABELS.index("hate")], 0.0)
    if kind != "minilm_lr":  # random stand-in embeddings carry no signal for the embedding-only kind
        acc = np.mean([p == y for p, y in zip(preds, test_y)])
        assert acc >= 0.6, f"{kind} learned nothing: accuracy {acc:.2f}"
    assert model.predict_proba([], embeddings=np.zeros((0, 16), dtype=np.float32)).shape == (0, len(LABELS))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_and_load_give_the_same_probabilities(kind, fitted):
    model, texts, ys, emb, folder = fitted(kind)
    test_texts, _ = toy_corpus(4, seed=7)
    test_emb = hash_vectors(test_texts)
    proba = model.predict_proba(test_texts, embeddings=test_emb)
    saved = model.save(folder / "saved")
    again = load_classifier(saved)
    assert type(again) is type(model) and again.kind == kind and again.is_fitted
    assert again.labels == LABELS and again.get_params() == model.get_params()
    np.testing.assert_allclose(again.predict_proba(test_texts, embeddings=test_emb), proba, atol=1e-6)
    assert again.predict(test_texts, embeddings=test_emb) == model.predict(test_texts, embeddings=test_emb)
    # The artifact is data: no file in it is a pickle (protocol 2+ starts with 0x80), none is named like one.
    for path in saved.rglob("*"):
        if path.is_file():
            assert path.suffix not in (".pkl", ".pickle", ".joblib"), path
            if path.suffix != ".safetensors":  # (its header length may start with any byte)
                assert not path.read_bytes()[:1] == b"\x80", f"{path} looks like a pickle"
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as npz:
                    for name in npz.files:
                        assert npz[name].dtype != object
    assert not list(saved.rglob("*.bin")) and not list(saved.rglob("*.pt"))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_get_params_round_trip(kind, fitted):
    model, *_ = fitted(kind)
    params = model.get_params()
    assert set(params) == set(kind_class(kind).param_names()) - {"labels"}
    twin = make_classifier(kind, LABELS, **params)
    assert type(twin) is type(model) and not twin.is_fitted and twin.get_params() == params
    # The defaults build too, and describe every parameter.
    defaults = kind_class(kind).default_params()
    assert set(defaults) == set(params)
    assert make_classifier(kind, LABELS, **defaults).get_params() == defaults


def _bad_value(kind: str, name: str):
    """A value every parameter's constraints reject: a string where one is not allowed, else -1."""
    cls = kind_class(kind)
    for candidate in ("not-a-valid-value", -1, []):
        probe = cls(labels=LABELS, **{name: candidate})
        try:
            probe._validate_params()
        except ModelError:
            return candidate
    raise AssertionError(f"{kind}.{name}: no invalid value found (is it validated at all?)")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_parameter_is_validated_and_a_bad_value_is_named(kind):
    names = [n for n in kind_class(kind).param_names() if n != "labels"]
    assert names and set(names) <= set(kind_class(kind)._parameter_constraints), \
        f"{kind}: parameters without constraints: {set(names) - set(kind_class(kind)._parameter_constraints)}"
    for name in names:
        bad = _bad_value(kind, name)
        with pytest.raises(ModelError) as err:
            make_classifier(kind, LABELS, **{name: bad})
        msg = str(err.value)
        assert msg.startswith(f"{kind}") and repr(bad) in msg
        if not (kind == "ensemble" and name == "members" and bad == []):
            assert f"parameter {name!r}" in msg, msg
    # A constructor only stores: validation is not skipped at fit when a parameter was changed later.
    model = make_classifier(kind, LABELS, **{names[-1]: kind_class(kind).default_params()[names[-1]]})
    setattr(model, names[-1], _bad_value(kind, names[-1]))
    texts, ys = toy_corpus(3, seed=2)
    with pytest.raises(ModelError, match=f"parameter {names[-1]!r}"):
        model.fit(texts, ys, embeddings=hash_vectors(texts))
    assert not model.is_fitted


def test_validation_messages_read_well():
    with pytest.raises(ModelError, match=r"^hybrid: parameter 'C' must be a float > 0, got 'abc'$"):
        make_classifier("hybrid", LABELS, C="abc")
    with pytest.raises(ModelError, match=r"^hybrid: parameter 'max_iter' must be an int >= 1, got 2.5$"):
        make_classifier("hybrid", LABELS, max_iter=2.5)
    with pytest.raises(ModelError, match=r"parameter 'soft_labels' must be a bool, got 1"):
        make_classifier("nblr", LABELS, soft_labels=1)
    with pytest.raises(ModelError, match=r"parameter 'word_ngrams' must be a pair of ints"):
        make_classifier("tfidf_lr", LABELS, word_ngrams=[3, 1])
    with pytest.raises(ModelError,
                       match=r"^transformer: parameter 'calibration_fraction' must be a float in \[0, 0.5\)"):
        make_classifier("transformer", LABELS, calibration_fraction=0.5)
    with pytest.raises(ModelError, match=r"^ensemble member 0: hybrid: parameter 'C'"):
        make_classifier("ensemble", LABELS, members=[{"kind": "hybrid", "params": {"C": 0}}])
    with pytest.raises(ModelError, match="two or more distinct labels"):
        make_classifier("hybrid", ["benign"])
    # numpy numbers are numbers; bools are not
    assert make_classifier("hybrid", LABELS, C=np.float32(2), max_iter=np.int64(10)).get_params()["C"] == 2.0
    with pytest.raises(ModelError, match="'C'"):
        make_classifier("hybrid", LABELS, C=True)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_probabilities_are_calibrated_on_the_training_data(kind, fitted):
    model, texts, ys, emb, _ = fitted(kind)
    proba = model.predict_proba(texts, embeddings=emb)
    freq = np.array([ys.count(lab) / len(ys) for lab in LABELS])
    mean = proba.mean(axis=0)
    assert np.abs(mean - freq).max() <= CALIBRATION_TOLERANCE, \
        f"{kind}: mean probability {np.round(mean, 3)} vs label frequency {np.round(freq, 3)}"
    # ... and a broken calibrator would fail that: a flattened output misses the frequencies.
    flat = np.where(proba > 0, 1.0, 0.0)
    flat /= flat.sum(axis=1, keepdims=True)
    assert np.abs(flat.mean(axis=0) - freq).max() > CALIBRATION_TOLERANCE


# -- artifacts are data, never code ------------------------------------------------------------
class _Boom:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_linear_pkl_is_never_unpickled(fitted, tmp_path):
    model, *_ = fitted("hybrid")
    saved = model.save(tmp_path / "hybrid")
    assert {p.name for p in saved.iterdir()} == {"model.json", "linear.npz", "linear.json"}
    marker = tmp_path / "code-ran"
    (saved / "linear.pkl").write_bytes(pickle.dumps(_Boom(str(marker))))
    # Beside the data files, the pickle is ignored ...
    again = load_classifier(saved)
    np.testing.assert_allclose(again.predict_proba(["cash prize now"], embeddings=hash_vectors(["cash prize now"])),
                               model.predict_proba(["cash prize now"], embeddings=hash_vectors(["cash prize now"])))
    # ... and in their place (a folder saved by an earlier version) it is refused, unread.
    (saved / "linear.npz").unlink()
    (saved / "linear.json").unlink()
    with pytest.raises(ModelError, match="linear.json and linear.npz is missing.*pickled linear.pkl.*not loaded"):
        load_classifier(saved)
    assert not marker.exists()


def test_a_folder_without_the_state_files_is_refused(fitted, tmp_path):
    model, *_ = fitted("nblr")
    saved = model.save(tmp_path / "nblr")
    (saved / "linear.npz").unlink()
    with pytest.raises(ModelError, match="linear.npz is missing"):
        load_classifier(saved)
    model, *_ = fitted("transformer")
    saved = model.save(tmp_path / "transformer")
    (saved / "calibration.json").unlink()
    with pytest.raises(ModelError, match="calibration.json is missing"):
        load_classifier(saved)


def test_a_transformer_checkpoint_is_data_never_unpickled(tmp_path):
    import json

    from safetensors import safe_open

    params = {**tiny_params("transformer", tmp_path), "max_steps": 1, "calibration_fraction": 0.0}
    ckpt = tmp_path / "ckpt" / "checkpoint.safetensors"
    ckpt.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    ckpt.write_bytes(pickle.dumps({"fingerprint": "x", "evil": _Boom(str(marker))}))
    (ckpt.parent / "checkpoint.pt").write_bytes(pickle.dumps({"fingerprint": "x", "evil": _Boom(str(marker))}))
    texts, ys = toy_corpus(3, seed=2)
    with pytest.raises(ModelError, match="unreadable checkpoint"):
        make_classifier("transformer", LABELS, **params).fit(texts, ys)
    assert not marker.exists()
    ckpt.unlink()
    model = make_classifier("transformer", LABELS, **params).fit(texts, ys)  # writes a safetensors checkpoint
    with safe_open(str(ckpt), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
    assert state["step"] == 1 and isinstance(state["fingerprint"], str)
    again = make_classifier("transformer", LABELS, **{**params, "max_steps": 2}).fit(texts, ys)
    assert again.fit_info["resumed_from"] == 1 and model.fit_info["resumed_from"] is None
    assert not marker.exists()  # the old pickle checkpoint.pt beside it was never read
