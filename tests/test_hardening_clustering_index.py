"""The campaign index on disk and the embedding cache, against the data they are used with.

A graph saved beside another database (a new or restored one, re-ingested with the same item
ids) was trusted as "everything clustered": the database never got its campaigns. A model
folder retrained in place kept its cache key, so old vectors were served as the new model's. A
change of `min_campaign_size` or `top_terms` was ignored by every later run. An index file of
another kind or metric was loaded (and crashed, or ranked by distance).
"""
from __future__ import annotations

import json
import os
import shutil

import faiss
import numpy as np
import pytest
from sqlalchemy import select

from clustering import service
from clustering.index import META_FILE, IndexError_, VectorIndex
from core.schema import Campaign
from core.store import open_store
from models.embeddings import Embedder, model_id_for
from test_campaigns import HashingEmbedder, add_items, corpus, partition, settings


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_graph_saved_beside_another_database_is_not_trusted(any_store, tmp_path):
    other = open_store(tmp_path / "other")
    try:
        add_items(other, corpus())
        service.cluster(other, settings(), embedder=HashingEmbedder(), show_progress=False)
        assert len(partition(other)) == 3
    finally:
        other.dispose()
    # The same items in a fresh database, beside the data dir's graph of the other one.
    add_items(any_store, corpus())
    shutil.copytree(tmp_path / "other" / service.CAMPAIGN_DIR, service.graph_dir(any_store), dirs_exist_ok=True)
    s = service.cluster(any_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "does not record the run" in s["reason"]
    assert {frozenset(p) for p in partition(any_store)} == {
        frozenset({"a0", "a1", "a2", "a3"}), frozenset({"b0", "b1", "b2"}), frozenset({"e0", "e1"})}
    again = service.cluster(any_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert again["mode"] == "incremental"  # its own run is recorded: attach as before


def test_a_model_folder_replaced_in_place_gets_a_new_cache_key(tmp_path):
    folder = tmp_path / "encoder"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 8}')
    weights = folder / "model.safetensors"
    weights.write_bytes(b"v1-weights")
    first = model_id_for(str(folder))
    assert first == model_id_for(str(folder)) and first.startswith("encoder-")  # stable while unchanged
    weights.write_bytes(b"v2-weights")  # retrained and saved over the old one
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    second = model_id_for(str(folder))
    assert second != first and Embedder(str(folder)).model_id == second
    (folder / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 8, "pooling_mode_cls_token": true}')
    os.utime(folder / "1_Pooling" / "config.json", ns=(0, 10**9))
    assert model_id_for(str(folder)) != second  # a module's config counts too


def test_min_campaign_size_and_top_terms_changes_are_applied(any_store):
    add_items(any_store, corpus())
    service.cluster(any_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert sorted(len(p) for p in partition(any_store)) == [2, 3, 4]
    s = service.cluster(any_store, settings(min_campaign_size=3), embedder=HashingEmbedder(), show_progress=False)
    assert "min_campaign_size" in s["reason"] and s["campaigns_merged"] == 1
    assert sorted(len(p) for p in partition(any_store)) == [3, 4]
    service.cluster(any_store, settings(min_campaign_size=3, top_terms=2), embedder=HashingEmbedder(),
                    show_progress=False)
    with any_store.read() as conn:
        terms = conn.execute(select(Campaign.top_terms).where(Campaign.status == "active")).scalars().all()
    assert len(terms) == 2 and all(0 < len(t) <= 2 for t in terms)
    back = service.cluster(any_store, settings(top_terms=2), embedder=HashingEmbedder(), show_progress=False)
    assert back["campaigns_created"] == 1 and sorted(len(p) for p in partition(any_store)) == [2, 3, 4]


def test_an_index_file_of_another_kind_or_metric_is_refused(tmp_path):
    x = _unit(100)
    ix = VectorIndex(16, delta_max=50)
    ix.add([str(i) for i in range(100)], x)
    ix.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "kind": "hnsw"}))
    with pytest.raises(IndexError_, match="IndexFlatIP index .*index.json says hnsw"):
        VectorIndex.load(tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    l2 = faiss.IndexFlatL2(16)
    l2.add(x)
    faiss.write_index(l2, str(tmp_path / "index.faiss"))
    with pytest.raises(IndexError_, match="IndexFlatL2 index .*inner product; run `workbench cluster --rebuild`"):
        VectorIndex.load(tmp_path)


def test_cluster_rebuilds_over_an_index_file_of_another_metric(sqlite_store):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    d = service.graph_dir(sqlite_store)
    ix = VectorIndex.load(d, mmap=False)
    ix.compact()
    ix.save(d)  # the base now holds the vectors
    l2 = faiss.IndexFlatL2(ix.dim)
    l2.add(ix.reconstruct_all())
    faiss.write_index(l2, str(d / "index.faiss"))
    before = partition(sqlite_store)
    s = service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "IndexFlatL2" in s["reason"] and partition(sqlite_store) == before


def test_a_member_dated_decades_off_does_not_blow_up_the_timeline():
    import datetime as dt

    from clustering import facts

    t = dt.datetime(2026, 1, 1, 8)
    series = facts.timeline([dt.datetime(1970, 1, 1), t, t + dt.timedelta(days=1)], "D")  # epoch 0: a bad time
    assert [(s.year, n, c) for s, n, c in series] == [(1970, 1, 1), (2026, 1, 2), (2026, 1, 3)]
    filled = facts.timeline([t, t + dt.timedelta(days=30)], "D")  # a normal span is still gap-filled
    assert len(filled) == 31 and filled[-1][2] == 2
