"""Embeddings against what they are computed and cached from.

The cache key of a model folder was its files' names, sizes and modification times: weights
swapped in at the same size and time kept the key, and the old vectors were served as the new
model's (wrong campaigns, wrong scores); the bundled folder kept its bare key whatever its files
held. A folder naming code (`auto_map`, a `.py` file, a foreign module class) was loaded. A
version trained on one embedding folder scored with whatever that folder (or
$WORKBENCH_EMBEDDING_MODEL) held later. A `model.onnx` planted in the ONNX cache was run. A
cached row cut short, of float64 bytes or another size was a ValueError traceback, a NaN row was
used as it was; an encoder giving NaN vectors had them cached.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select

from core.schema import Embedding
from core.text import text_hash
from models import model_folder
from models.base import ModelError
from models.config import load_models_config
from models.embeddings import DEFAULT_MODEL_ID, Embedder, EmbeddingCache, embed_texts, model_id_for
from models.kinds import load_classifier, make_classifier
from test_models_fixtures import add_items, build_tiny_sentence_model, toy_corpus

TEXTS = ["win a cash prize now", "see you at lunch tomorrow"]
MODELS = load_models_config()


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    return build_tiny_sentence_model(tmp_path_factory.mktemp("tiny_st"))


@pytest.fixture
def tiny(tiny_source, tmp_path) -> Path:
    """A private copy of the tiny sentence model (tests change its files)."""
    return Path(shutil.copytree(tiny_source, tmp_path / "tiny-st"))


def _swap_weights(folder: Path, same_inode: bool = True) -> None:
    """Other weights of the same size, written with the old modification time (a model retrained
    and copied over, or a planted file)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = folder / "model.safetensors"
    before = path.stat()
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: (v[::-1].copy() if v.ndim == 2 else v) for k, v in tensors.items()}
    tmp = folder / "swap.tmp"
    save_file(tensors, str(tmp), metadata=meta)
    if same_inode:
        path.write_bytes(tmp.read_bytes())
        tmp.unlink()
    else:
        os.replace(tmp, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns


# -- 1. the cache key hashes contents ---------------------------------------------------------
def test_weights_swapped_at_the_same_size_and_time_get_a_new_key_and_fresh_vectors(tiny, sqlite_store):
    first = Embedder(str(tiny))
    old = embed_texts(TEXTS, first, EmbeddingCache(sqlite_store, first.model_id), show_progress=False)
    _swap_weights(tiny)
    second = Embedder(str(tiny))
    assert second.model_id != first.model_id and second.model_id.startswith("tiny-st-")
    got = embed_texts(TEXTS, second, EmbeddingCache(sqlite_store, second.model_id), show_progress=False)
    np.testing.assert_allclose(got, second.encode(TEXTS), atol=1e-6)
    assert not np.allclose(got, old, atol=1e-3)


def test_a_folder_changed_after_its_key_was_taken_is_refused_at_load(tiny, sqlite_store):
    """A long-lived embedder (a server's) keyed before the swap would cache the new model's vectors
    under the old model's key."""
    emb = Embedder(str(tiny))
    _swap_weights(tiny)
    with pytest.raises(ModelError, match=f"changed since its cache key {emb.model_id} was taken: refused"):
        embed_texts(TEXTS, emb, EmbeddingCache(sqlite_store, emb.model_id), show_progress=False)
    assert EmbeddingCache(sqlite_store, emb.model_id).get([text_hash(t) for t in TEXTS]) == {}


def test_the_bundled_folder_keeps_its_bare_key_only_with_the_shipped_files(tmp_path, monkeypatch):
    from models import embeddings

    shipped = Path(embeddings.bundled_model_path())
    copy = tmp_path / "bundled" / "model"

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(shipped, copy, copy_function=link_or_copy)
    monkeypatch.setattr(embeddings, "bundled_model_path", lambda: str(copy))
    assert model_id_for(str(copy)) == DEFAULT_MODEL_ID
    cfg = copy / "1_Pooling" / "config.json"
    doc = json.loads(cfg.read_text())
    (copy / "new.json").write_text(json.dumps({**doc, "pooling_mode_cls_token": True}))
    os.replace(copy / "new.json", cfg)  # a new file: the shipped one (maybe a hard link) is untouched
    changed = model_id_for(str(copy))
    assert changed != DEFAULT_MODEL_ID and changed.startswith("bundled-")


def test_a_settled_folder_is_hashed_once_per_process_and_a_file_renamed_in_is_seen(tiny, monkeypatch):
    calls = []
    real = model_folder._hash_files
    monkeypatch.setattr(model_folder, "_hash_files", lambda files: calls.append(1) or real(files))
    # files older than the racy window: remembered by (size, mtime, ctime, inode, device)
    monkeypatch.setattr(model_folder, "_now_ns", lambda: 10**30)
    first = model_folder.content_digest(tiny)
    assert model_folder.content_digest(tiny) == first and len(calls) == 1
    _swap_weights(tiny, same_inode=False)  # same size and mtime, a new inode
    assert model_folder.content_digest(tiny) != first and len(calls) == 2


def test_a_file_changed_within_the_racy_window_is_hashed_again(tiny):
    """Two writes in one tick of the kernel's coarse clock share a ctime: such files are never
    remembered, so a swap right after a digest is still seen."""
    first = model_folder.content_digest(tiny)
    _swap_weights(tiny)
    assert model_folder.content_digest(tiny) != first


# -- 2. no code from a model folder -----------------------------------------------------------
@pytest.mark.parametrize("plant,says", [
    ("auto_map", r"names code to run \(auto_map\): refused"),
    ("py", "custom.py is code"),
    ("module", "is not a sentence-transformers class: refused"),
    ("outside", "leads outside"),
])
def test_a_folder_naming_code_is_refused_before_it_is_loaded(tiny, monkeypatch, plant, says):
    import sentence_transformers

    def never(*a, **k):
        raise AssertionError("SentenceTransformer was called")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", never)
    if plant == "auto_map":
        cfg = json.loads((tiny / "config.json").read_text())
        (tiny / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "custom.Evil"}}))
    elif plant == "py":
        (tiny / "custom.py").write_text("raise SystemExit('ran')\n")
    else:
        modules = json.loads((tiny / "modules.json").read_text())
        modules[1] = {**modules[1], "type": "subprocess.Popen"} if plant == "module" else {**modules[1], "path": "../x"}
        (tiny / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match=says) as exc:
        Embedder(str(tiny)).encode(TEXTS)
    assert "\n" not in str(exc.value)


def test_sentence_transformers_is_told_not_to_trust_remote_code(tiny, monkeypatch):
    import sentence_transformers

    seen = {}
    real = sentence_transformers.SentenceTransformer

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    Embedder(str(tiny)).encode(TEXTS)
    assert seen.get("trust_remote_code") is False


# -- 3. a version scores only with the embedding model it was trained on ----------------------
def _trained_hybrid(tmp_path, labels, texts, ys, embedding_model=None):
    from models.embedding_pin import record_embedding_pin

    model = make_classifier("hybrid", labels, min_df=1, calibration_folds=2, embedding_model=embedding_model)
    model.fit(texts, ys)
    record_embedding_pin(model)
    return load_classifier(model.save(tmp_path / "saved"))  # as the registry loads it: a fresh embedder


def test_a_version_is_refused_when_its_embedding_folder_changed(tiny, sqlite_store, taxonomy, tmp_path):
    from models.scoring import score_items

    texts, ys = toy_corpus(6)
    add_items(sqlite_store, texts, ys)
    model = _trained_hybrid(tmp_path, taxonomy.labels, texts, ys, embedding_model=str(tiny))
    assert model.fit_info["embedding"]["model_id"].startswith("tiny-st-")
    _swap_weights(tiny)
    model = load_classifier(tmp_path / "saved")
    with pytest.raises(ModelError, match="was trained on embeddings of tiny-st-.*sha256 differ.*retrain") as exc:
        score_items(sqlite_store, taxonomy, config=MODELS, model=model, model_version="v1", show_progress=False)
    assert "\n" not in str(exc.value)


def test_a_version_is_refused_when_the_environment_points_at_another_folder(tiny, sqlite_store, taxonomy, tmp_path,
                                                                             monkeypatch):
    from models.scoring import score_items

    texts, ys = toy_corpus(6)
    add_items(sqlite_store, texts, ys)
    monkeypatch.setenv("WORKBENCH_EMBEDDING_MODEL", str(tiny))
    model = _trained_hybrid(tmp_path, taxonomy.labels, texts, ys)
    scored = score_items(sqlite_store, taxonomy, config=MODELS, model=model, model_version="v1", show_progress=False)
    assert scored.scored == len(texts)
    _swap_weights(tiny)
    other = Path(shutil.copytree(tiny, tmp_path / "elsewhere" / "tiny-st"))
    monkeypatch.setenv("WORKBENCH_EMBEDDING_MODEL", str(other))
    with pytest.raises(ModelError, match="was trained on embeddings of"):
        score_items(sqlite_store, taxonomy, config=MODELS, model=load_classifier(tmp_path / "saved"),
                    model_version="v2", show_progress=False)


def test_a_registered_version_records_its_embedding_model(tiny, sqlite_store, taxonomy, monkeypatch):
    from models.registry import load_model_version, train_model

    texts, ys = toy_corpus(6)
    add_items(sqlite_store, texts, ys)
    monkeypatch.setenv("WORKBENCH_EMBEDDING_MODEL", str(tiny))
    row = train_model(sqlite_store, taxonomy, config=MODELS, kind="hybrid", params={"min_df": 1, "calibration_folds": 2},
                      show_progress=False)
    _swap_weights(tiny)
    with pytest.raises(ModelError, match="was trained on embeddings of"):
        load_model_version(sqlite_store, row["id"])


# -- 4. the ONNX export cache -----------------------------------------------------------------
def test_a_planted_or_cut_short_onnx_graph_is_exported_again_never_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ONNX_CACHE", str(tmp_path / "onnx"))
    ref = Embedder(str(tiny), runtime="onnx").encode(TEXTS)
    (graph,) = (tmp_path / "onnx").glob("*/model.onnx")
    assert graph.with_name("model.onnx.json").is_file()
    other = Path(shutil.copytree(tiny, tmp_path / "other" / "tiny-st"))
    _swap_weights(other)
    Embedder(str(other), runtime="onnx").encode(TEXTS)
    (planted,) = [p for p in (tmp_path / "onnx").glob("*/model.onnx") if p != graph]
    for attack in (planted.read_bytes(), graph.read_bytes()[:1000]):
        graph.write_bytes(attack)
        got = Embedder(str(tiny), runtime="onnx").encode(TEXTS)
        np.testing.assert_allclose(got, ref, atol=1e-5)
    graph.with_name("model.onnx.json").unlink()  # a graph without its sidecar: exported again
    graph.write_bytes(planted.read_bytes())
    np.testing.assert_allclose(Embedder(str(tiny), runtime="onnx").encode(TEXTS), ref, atol=1e-5)


# -- the cache table -------------------------------------------------------------------------
class UnitEmbedder:
    model_id = "unit-test"
    dim = 8

    def __init__(self, poison: bool = False) -> None:
        self.seen: list[str] = []
        self.poison = poison

    def encode(self, texts, show_progress=False):
        self.seen.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(int(text_hash(t)[:8], 16)).normal(size=self.dim)
            out[i] = v / np.linalg.norm(v)
        if self.poison:
            out[-1, 0] = np.nan
        return out


@pytest.mark.parametrize("bad", ["cut_short", "float64", "other_size", "nan", "inf", "dim_lies"])
def test_a_bad_cached_row_is_encoded_again_and_replaced(any_store, bad):
    emb = UnitEmbedder()
    good = emb.encode(TEXTS)
    h = text_hash(TEXTS[0])
    blob, dim = {"cut_short": (good[0].tobytes()[:-3], 8), "float64": (good[0].astype(np.float64).tobytes(), 8),
                 "other_size": (good[0][:4].tobytes(), 4), "nan": (np.full(8, np.nan, np.float32).tobytes(), 8),
                 "inf": (np.full(8, np.inf, np.float32).tobytes(), 8), "dim_lies": (good[0][:4].tobytes(), 8)}[bad]
    with any_store.begin() as conn:
        conn.execute(insert(Embedding.__table__).values(model=emb.model_id, text_hash=h, dim=dim, vector=blob))
    emb.seen.clear()
    cache = EmbeddingCache(any_store, emb.model_id)
    got = embed_texts(TEXTS, emb, cache, show_progress=False)
    np.testing.assert_allclose(got, good)
    assert emb.seen == TEXTS and cache.rejected == 1
    with any_store.read() as conn:
        stored = conn.execute(select(Embedding.vector).where(Embedding.model == emb.model_id,
                                                              Embedding.text_hash == h)).scalar()
    np.testing.assert_array_equal(np.frombuffer(stored, dtype=np.float32), good[0])  # replaced
    emb.seen.clear()
    embed_texts(TEXTS, emb, EmbeddingCache(any_store, emb.model_id), show_progress=False)
    assert emb.seen == []


def test_a_cache_of_another_vector_size_is_never_served(sqlite_store):
    """Rows of a 4-float model under this model's key (all of them, so no majority gives them away)."""
    emb = UnitEmbedder()
    rows = [{"model": emb.model_id, "text_hash": text_hash(t), "dim": 4, "vector": np.full(4, 0.5, np.float32).tobytes()}
            for t in TEXTS]
    with sqlite_store.begin() as conn:
        conn.execute(insert(Embedding.__table__), rows)
    got = embed_texts(TEXTS, emb, EmbeddingCache(sqlite_store, emb.model_id), show_progress=False)
    assert got.shape == (2, 8) and emb.seen == TEXTS


def test_an_encoder_giving_nan_vectors_is_one_line_and_nothing_is_cached(sqlite_store):
    with pytest.raises(ModelError, match="1 vector.s. with NaN or infinite values.*nothing cached") as exc:
        embed_texts(TEXTS, UnitEmbedder(poison=True), EmbeddingCache(sqlite_store, "unit-test"), show_progress=False)
    assert "\n" not in str(exc.value)
    assert EmbeddingCache(sqlite_store, "unit-test").get([text_hash(t) for t in TEXTS]) == {}
