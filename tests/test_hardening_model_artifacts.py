"""Model artifacts are hostile input: a saved version's numbers, shapes, links, configs and
tokenizer files are checked when they are read, so a crafted or damaged folder is one ModelError
line, never code run, a traceback deep in numpy or transformers, or silently wrong scores; what
a model hands to scoring is always a distribution; the registry loads exactly the bytes it
verified and of the kind and labels it registered; version names cannot reach the database or
the file system as anything but a name; the ONNX export is keyed by every file's contents."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from core.schema import ModelVersion
from models import registry
from models.base import ModelError
from models.config import load_models_config
from models.kinds import load_classifier, make_classifier
from models.registry import RegistryError, artifact_digest, get_model, load_model_version, promote, retire, train_model
from test_models_fixtures import add_items, hash_vectors, tiny_params, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]
TEXTS = ["cash prize now claim", "lunch with family", "you idiot loser"]
MODELS = load_models_config()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small fitted, saved model per kind (a fresh copy per test comes from `fresh`)."""
    root = tmp_path_factory.mktemp("artifacts")
    texts, ys = toy_corpus(8)
    emb = hash_vectors(texts)
    for kind in ("tfidf_lr", "hybrid", "nblr", "transformer"):
        params = tiny_params(kind, root / "tmp")
        if kind == "transformer":
            params["max_steps"] = 5
        make_classifier(kind, LABELS, **params).fit(texts, ys, embeddings=emb).save(root / kind)
    make_classifier("ensemble", LABELS, members=[{"kind": "tfidf_lr", "params": {"min_df": 1}},
                                                 {"kind": "nblr", "params": {"min_df": 1, "calibration_folds": 2}}],
                    blend_fraction=0.25).fit(texts, ys).save(root / "ensemble")
    return root


@pytest.fixture
def fresh(saved, tmp_path):
    def copy(kind: str) -> Path:
        return Path(shutil.copytree(saved / kind, tmp_path / kind))
    return copy


def _npz(folder: Path, edit) -> None:
    with np.load(folder / "linear.npz") as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(folder / "linear.npz", **arrays)


def _json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _refused(folder: Path, *says: str) -> str:
    with pytest.raises(ModelError) as exc:
        model = load_classifier(folder)
        model.predict_proba(TEXTS, embeddings=hash_vectors(TEXTS))
    msg = str(exc.value)
    assert "\n" not in msg and all(s in msg for s in says), msg
    return msg


# -- numbers: NaN / inf weights, bad temperatures, wrong dtypes and shapes ----------------------
@pytest.mark.parametrize("kind,array,says", [
    ("tfidf_lr", "head_coef", "head_coef holds"),        # one label's row NaN: it silently got probability 0
    ("tfidf_lr", "head_intercept", "head_intercept holds"),
    ("tfidf_lr", "word_idf", "word_idf holds"),
    ("hybrid", "bias", "bias holds"),                   # every score NaN
    ("nblr", "head_ratios", "head_ratios holds"),       # one label certain, the rest 0
])
def test_nan_or_infinite_saved_weights_are_refused_when_read(fresh, kind, array, says):
    folder = fresh(kind)
    _npz(folder, lambda a: a[array].__setitem__((0,) * a[array].ndim, np.inf if "intercept" in array else np.nan))
    _refused(folder, "linear.npz", says, "NaN or infinite")


@pytest.mark.parametrize("edit,says", [
    (lambda a: a.__setitem__("head_coef", a["head_coef"].astype(str)), "not real numbers"),
    (lambda a: a.__setitem__("word_idf", a["word_idf"].astype(complex)), "not real numbers"),
    (lambda a: a.__setitem__("word_idf", a["word_idf"][:-5]), "idf has shape"),
    (lambda a: a.__setitem__("head_coef", a["head_coef"][:, :-5]), "the saved head reads"),
])
def test_saved_arrays_of_another_type_or_shape_are_one_line_naming_them(fresh, edit, says):
    folder = fresh("tfidf_lr")
    _npz(folder, edit)
    _refused(folder, says)


def test_a_vocabulary_that_repeats_an_ngram_is_refused(fresh):
    folder = fresh("tfidf_lr")
    _json(folder / "linear.json", lambda j: j["vocabularies"]["word"].__setitem__(1, j["vocabularies"]["word"][0]))
    _refused(folder, "repeats an n-gram")


@pytest.mark.parametrize("kind,file", [("hybrid", "linear.json"), ("transformer", "calibration.json")])
@pytest.mark.parametrize("value", [0, -1.0, "NaN"])
def test_a_temperature_that_is_not_a_positive_number_is_refused(fresh, kind, file, value):
    folder = fresh(kind)
    text = (folder / file).read_text()
    doc = json.loads(text)
    doc["temperature"] = 12345.0
    (folder / file).write_text(json.dumps(doc).replace("12345.0", str(value)))  # NaN as json.dumps writes it
    _refused(folder, file, "temperature must be a finite number > 0")


@pytest.mark.parametrize("weights,says", [([1, 1, 1, 1, "NaN"], "NaN or infinite"), ([3], "shape (1,)"),
                                          ([-1, 1, 1, 1, 1], "must all be > 0"), (["a", 1, 1, 1, 1], "not real")])
def test_decision_weights_must_be_one_positive_number_per_label(fresh, weights, says):
    folder = fresh("hybrid")
    meta = json.loads((folder / "model.json").read_text())
    meta["decision_weights"] = "@"
    (folder / "model.json").write_text(json.dumps(meta).replace('"@"', json.dumps(weights).replace('"NaN"', "NaN")))
    _refused(folder, "model.json decision_weights", says)


@pytest.mark.parametrize("key,value,says", [
    ("weights", [float("nan"), 1.0], "NaN or infinite"),   # every score NaN
    ("weights", [1.0], "weights have shape"),              # silently dropped the second member
    ("weights", [1.0, -1.0], "must be >= 0"),
    ("present", [0, 0, 1], "distinct label indices"),      # one label's score on two columns
    ("bias", [0.1, 0.2], "bias has shape"),
    ("member_sets", 0, "member_sets must be"),
])
def test_a_crafted_ensemble_blend_is_refused(fresh, key, value, says):
    folder = fresh("ensemble")
    _json(folder / "blend.json", lambda j: j.__setitem__(key, value))
    _refused(folder, "blend.json", says)


def test_scores_that_are_not_distributions_never_leave_a_model(fresh):
    model = load_classifier(fresh("tfidf_lr"))
    model.temperature = 0.0  # what a damaged model could compute: NaN rows
    with pytest.raises(ModelError, match="not probabilities.*nothing scored") as exc:
        model.predict_proba(TEXTS)
    assert "\n" not in str(exc.value)


def test_one_text_whose_scores_are_not_a_distribution_is_a_nan_row_not_the_batch(fresh):
    """A model whose every row is broken is refused (above); one row alone (an overflow on one
    hostile text) becomes a NaN row, which scoring leaves unwritten and names, so the batch goes on."""
    model = load_classifier(fresh("tfidf_lr"))
    k = len(model.labels)
    good = np.full(k, 1.0 / k)
    out = model._checked_proba(np.stack([good, np.full(k, np.nan), np.full(k, 0.9)]), 3)
    assert np.allclose(out[0], good) and np.isnan(out[1]).all() and np.isnan(out[2]).all()


def test_embeddings_of_another_size_are_one_model_error_line(fresh):
    model = load_classifier(fresh("hybrid"))
    with pytest.raises(ModelError, match="the head reads .* features, these texts give"):
        model.predict_proba(TEXTS, embeddings=hash_vectors(TEXTS, dim=8))


@pytest.mark.parametrize("target", ["elsewhere", "/etc/passwd"])
def test_a_link_inside_a_model_folder_is_refused_before_reading(fresh, tmp_path, target):
    folder = fresh("tfidf_lr")
    if target == "elsewhere":
        shutil.move(folder / "linear.npz", tmp_path / "elsewhere.npz")
        target = str(tmp_path / "elsewhere.npz")
    else:
        (folder / "linear.json").unlink()
    name = "linear.npz" if target.endswith(".npz") else "linear.json"
    (folder / name).symlink_to(target)
    _refused(folder, name, "link")


# -- transformer folders: remote code, weights, tokenizers -----------------------------------
def _safetensors(folder: Path, edit) -> None:
    from safetensors.numpy import load_file, save_file

    path = folder / "hf" / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _key(tensors: dict, part: str) -> str:
    return next(k for k in tensors if part in k)


@pytest.mark.parametrize("where", ["config", "config_unknown_type", "tokenizer"])
def test_a_transformer_folder_naming_code_is_refused_and_nothing_runs(fresh, tmp_path, where):
    folder = fresh("transformer")
    marker = tmp_path / "code-ran"
    code = f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import BertConfig\nclass Evil(BertConfig):\n    pass\n"
    (folder / "hf" / "evil.py").write_text(code)
    if where == "tokenizer":
        _json(folder / "hf" / "tokenizer_config.json", lambda j: j.update(auto_map={"AutoTokenizer": ["evil.Evil", None]}))
    else:
        _json(folder / "hf" / "config.json", lambda j: j.update(
            auto_map={"AutoConfig": "evil.Evil", "AutoModelForSequenceClassification": "evil.Evil"},
            **({"model_type": "evil"} if where == "config_unknown_type" else {})))
    _refused(folder, "refused")
    assert not marker.exists()
    (folder / "hf" / "evil.py").unlink()  # the auto_map alone is refused too
    if where != "tokenizer":
        _refused(folder, "config.json", "auto_map")


@pytest.mark.parametrize("edit,says", [
    (lambda t: [t.pop(k) for k in [k for k in t if "classifier" in k]], "missing or of the wrong shape"),
    (lambda t: t[_key(t, "classifier.weight")].__setitem__((1, 0), np.nan), "NaN or infinite"),
    (lambda t: t.__setitem__(_key(t, "classifier.weight"), np.zeros((5, 32), np.int32)), "not floating-point"),
    (lambda t: t.__setitem__(_key(t, "classifier.weight"), np.zeros((3, 32), np.float32)), "cannot be loaded"),
])
def test_transformer_weights_that_would_score_wrongly_are_refused(fresh, edit, says):
    # Missing classifier weights were filled in at random (every text 'hate'), an int tensor read
    # as zeros, a NaN weight gave its label probability 0: all loaded and scored before.
    folder = fresh("transformer")
    _safetensors(folder, edit)
    _refused(folder, says)


def test_a_transformer_whose_config_orders_the_labels_otherwise_is_refused(fresh):
    folder = fresh("transformer")
    _json(folder / "hf" / "config.json",
          lambda j: j.update(id2label={str(i): v for i, v in enumerate(reversed(list(j["id2label"].values())))}))
    _refused(folder, "config.json labels")


@pytest.mark.parametrize("content", ["{not json", '{"model": 3}'])
def test_a_malformed_tokenizer_is_one_model_error_line(fresh, content):
    folder = fresh("transformer")
    (folder / "hf" / "tokenizer.json").write_text(content)
    _refused(folder, "tokenizer.json" if content.startswith("{not") else "cannot be loaded")


def test_an_oversized_tokenizer_file_is_refused_unread(fresh, monkeypatch):
    from models import model_folder

    folder = fresh("transformer")
    size = (folder / "hf" / "tokenizer.json").stat().st_size
    monkeypatch.setattr(model_folder, "MAX_HF_FILE_BYTES", size - 1)
    _refused(folder, "tokenizer.json has", "refused")


# -- the registry: what is loaded is what was verified, and what was registered ----------------
@pytest.fixture
def trained(sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    row = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1}, show_progress=False)
    return sqlite_store, row


def test_a_file_swapped_in_after_the_digest_check_is_never_loaded(trained, monkeypatch):
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    before = load_model_version(store, row["id"])[0].predict_proba(TEXTS)
    real = registry.artifact_digest

    def digest_then_swap(*args, **kwargs):  # the check passes, then the weights change (TOCTOU)
        out = real(*args, **kwargs)
        _npz(folder, lambda a: a.__setitem__("head_coef", -a["head_coef"]))
        return out

    monkeypatch.setattr(registry, "artifact_digest", digest_then_swap)
    model, _ = load_model_version(store, row["id"])
    np.testing.assert_allclose(model.predict_proba(TEXTS), before)


def test_a_version_whose_files_disagree_with_its_row_is_refused(trained):
    # A version registered (or imported) with a digest over a model.json whose labels are in
    # another order: every score would land on the wrong policy.
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    _json(folder / "model.json", lambda j: j.update(labels=list(reversed(j["labels"]))))
    with store.begin() as conn:
        conn.execute(update(ModelVersion.__table__).where(ModelVersion.id == row["id"])
                     .values(artifact_sha256=artifact_digest(folder)))
    with pytest.raises(RegistryError, match="the registry says a tfidf_lr over") as exc:
        load_model_version(store, row["id"])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", ["a\x00b", "x" * 5000, "../../etc", "a/b", "..", "tab\there"])
def test_a_version_name_that_is_no_name_is_one_registry_error_line(any_store, name):
    # A NUL was a psycopg DataError traceback on PostgreSQL; a 5,000-character name came back whole.
    for call in (lambda: get_model(any_store, name), lambda: promote(any_store, name),
                 lambda: retire(any_store, name)):
        with pytest.raises(RegistryError, match="not a model version name") as exc:
            call()
        msg = str(exc.value)
        assert "\n" not in msg and len(msg) < 200 and "\x00" not in msg


# -- ONNX export cache: keyed by every file's contents ---------------------------------------
def test_the_onnx_cache_key_changes_with_any_file_even_at_the_same_size_and_time(tmp_path):
    from models.onnx_runtime import _weights_digest

    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"A" * 64)
    (folder / "tokenizer.json").write_text('{"v": 1}')
    (folder / "1_Pooling" / "config.json").write_text('{"mean": true}')
    seen = {_weights_digest(str(folder))}
    for rel, data in (("tokenizer.json", b'{"v": 2}'), ("1_Pooling/config.json", b'{"mean": false}'),
                      ("model.safetensors", b"B" * 64)):
        st = (folder / rel).stat()
        (folder / rel).write_bytes(data)
        os.utime(folder / rel, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time: swapped in place
        seen.add(_weights_digest(str(folder)))
    assert len(seen) == 4


@pytest.mark.parametrize("modules,says", [('[{"type": "sentence_transformers.models.Transformer", "path": "../other"}]',
                                           "leads outside"), ("{not json", "unreadable"), ('[1, 2]', "not a list")])
def test_a_crafted_modules_json_is_one_model_error_line(tmp_path, modules, says):
    from models.onnx_runtime import _transformer_folder

    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "modules.json").write_text(modules)
    with pytest.raises(ModelError, match=says) as exc:
        _transformer_folder(str(folder))
    assert "\n" not in str(exc.value)
