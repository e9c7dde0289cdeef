"""Embedding cache and dedupe: copies encode once, hits come from the store, order is kept."""
from __future__ import annotations

import numpy as np
import pytest

from models.embeddings import Embedder, EmbeddingCache, default_model_path, embed_texts, model_id_for
from test_models_fixtures import tiny_st_path  # noqa: F401 - fixture
from core.text import text_hash


class CountingEmbedder:
    """A deterministic stand-in for MiniLM that records what it was asked to encode."""

    model_id = "counting-test"
    dim = 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        self.seen.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng(int(text_hash(t)[:8], 16))
            v = rng.normal(size=self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def test_duplicates_encode_once_and_keep_order(any_store):
    emb = CountingEmbedder()
    cache = EmbeddingCache(any_store, emb.model_id)
    texts = ["WIN a prize now", "hello there", "win  a PRIZE now", "hello there", "third"]
    vecs = embed_texts(texts, emb, cache, show_progress=False)
    assert vecs.shape == (5, 8) and vecs.dtype == np.float32
    # Case and spacing variants share the light-normalised hash, so they encode once.
    assert len(emb.seen) == 3
    np.testing.assert_array_equal(vecs[0], vecs[2])
    np.testing.assert_array_equal(vecs[1], vecs[3])
    assert not np.allclose(vecs[0], vecs[4])


def test_second_call_is_served_from_the_cache(any_store):
    emb = CountingEmbedder()
    cache = EmbeddingCache(any_store, emb.model_id)
    first = embed_texts(["a", "b", "c"], emb, cache, show_progress=False)
    emb.seen.clear()
    again = embed_texts(["c", "new", "a"], emb, cache, show_progress=False)
    assert emb.seen == ["new"]
    np.testing.assert_array_equal(again[0], first[2])
    np.testing.assert_array_equal(again[2], first[0])
    got = cache.get([text_hash("a"), text_hash("missing")])
    assert set(got) == {text_hash("a")}
    assert got[text_hash("a")].dtype == np.float32


def test_cache_is_per_model_and_put_is_idempotent(sqlite_store):
    a = EmbeddingCache(sqlite_store, "model-a")
    b = EmbeddingCache(sqlite_store, "model-b")
    v = np.arange(4, dtype=np.float32)
    a.put({"h1": v})
    a.put({"h1": v + 1})  # an existing vector is never overwritten
    np.testing.assert_array_equal(a.get(["h1"])["h1"], v)
    assert b.get(["h1"]) == {}


def test_chunked_misses_are_stored_as_they_go(sqlite_store):
    emb = CountingEmbedder()
    cache = EmbeddingCache(sqlite_store, emb.model_id)
    texts = [f"text {i}" for i in range(25)]
    embed_texts(texts, emb, cache, show_progress=False, chunk_size=10)
    assert len(cache.get([text_hash(t) for t in texts])) == 25


def test_hashes_must_match_texts():
    with pytest.raises(ValueError, match="2 hashes for 1 texts"):
        embed_texts(["x"], CountingEmbedder(), hashes=["a", "b"], show_progress=False)


def test_model_ids(monkeypatch, tmp_path):
    assert model_id_for(default_model_path()) == "all-MiniLM-L6-v2"
    assert model_id_for("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    monkeypatch.setenv("WORKBENCH_EMBEDDING_MODEL", str(tmp_path))
    assert default_model_path() == str(tmp_path)
    assert Embedder(runtime="onnx-int8").model_id.endswith("@onnx-int8")
    with pytest.raises(ValueError, match="unknown embedding runtime"):
        Embedder(runtime="tpu")


def test_bundled_dim_without_loading():
    emb = Embedder()
    assert emb.dim == 384
    assert emb._model is None


@pytest.mark.slow
def test_real_minilm_vectors_are_unit_length_and_semantic():
    emb = Embedder()
    vecs = emb.encode(["free prize, call now", "you have won a cash prize", "see you at lunch"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]


def test_onnx_runtime_reproduces_torch_vectors(tiny_st_path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ONNX_CACHE", str(tmp_path / "onnx"))
    texts = ["hello there", "WIN a prize now, call 0900", "a much longer message " * 20, "x"]
    ref = Embedder(tiny_st_path, max_seq_length=64).encode(texts)
    fp32 = Embedder(tiny_st_path, max_seq_length=64, runtime="onnx")
    got = fp32.encode(texts)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.min(np.sum(got * ref, axis=1)) > 0.9999
    int8 = Embedder(tiny_st_path, max_seq_length=64, runtime="onnx-int8")
    q = int8.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(q * ref, axis=1)) > 0.9
    base = model_id_for(tiny_st_path)  # the folder's name and a digest of its path; 64 is not the default length
    assert fp32.model_id == f"{base}@seq64@onnx" and int8.model_id == f"{base}@seq64@onnx-int8"
    assert len(list((tmp_path / "onnx").glob("*/model*.onnx"))) == 2  # exported once, reused after
