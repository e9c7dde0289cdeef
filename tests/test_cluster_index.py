"""The faiss wrapper: exact while small, HNSW past the configured size, survives a restart."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clustering.index import META_FILE, IndexError_, VectorIndex


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_search_finds_itself_first():
    x = _unit(50)
    ix = VectorIndex(16, hnsw_min_size=1000)
    pos = ix.add([f"k{i}" for i in range(50)], x)
    assert pos.tolist() == list(range(50)) and ix.kind == "flat"
    sims, nn = ix.search(x[:5], 3)
    assert nn[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)


def test_range_search_is_exact_on_flat():
    x = _unit(40, seed=1)
    ix = VectorIndex(16)
    ix.add([str(i) for i in range(40)], x)
    rows, pos, sims = ix.range_search(x[:3], 0.3)
    full = x[:3] @ x.T
    expect = {(r, c) for r, c in zip(*np.nonzero(full >= 0.3))}
    assert set(zip(rows.tolist(), pos.tolist())) == expect
    assert np.allclose(sims, full[rows, pos], atol=1e-5)


def test_switches_to_hnsw_past_the_size_and_records_it(tmp_path):
    x = _unit(300, seed=2)
    ix = VectorIndex(16, hnsw_min_size=200, hnsw_m=16, ef_search=64)
    ix.add([str(i) for i in range(150)], x[:150])
    assert ix.kind == "flat"
    ix.add([str(i) for i in range(150, 300)], x[150:])
    assert ix.kind == "hnsw" and ix.switched_at_size == 300
    sims, nn = ix.search(x[:20], 1)
    assert (nn[:, 0] == np.arange(20)).mean() >= 0.95  # approximate, but self is found
    rows, pos, sims = ix.range_search(x[:20], 0.999)  # k-NN filtered by the threshold on HNSW
    assert (sims >= 0.999).all() and set(zip(rows.tolist(), pos.tolist())) >= {(i, i) for i in range(18)}
    ix.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["kind"] == "hnsw" and meta["switched_at_size"] == 300 and meta["size"] == 300


def test_index_survives_a_restart(tmp_path):
    x = _unit(60, seed=3)
    ix = VectorIndex(16, model_id="m1")
    ix.add([f"k{i}" for i in range(50)], x[:50])
    before = ix.search(x[:5], 4)
    ix.save(tmp_path)
    again = VectorIndex.load(tmp_path)
    assert again.keys == ix.keys and again.model_id == "m1" and again.kind == "flat"
    after = again.search(x[:5], 4)
    assert np.array_equal(before[1], after[1])
    again.add([f"k{i}" for i in range(50, 60)], x[50:])  # still growable after loading
    assert again.search(x[55:56], 1)[1][0, 0] == again.position("k55")


def test_bad_input_is_refused(tmp_path):
    ix = VectorIndex(8)
    ix.add(["a"], _unit(1, 8))
    with pytest.raises(ValueError, match="already indexed"):
        ix.add(["a"], _unit(1, 8))
    with pytest.raises(ValueError, match="shape"):
        ix.add(["b"], _unit(1, 9))
    with pytest.raises(IndexError_, match="missing"):
        VectorIndex.load(tmp_path / "nothing")


def test_empty_index_answers_queries():
    ix = VectorIndex(8)
    sims, nn = ix.search(_unit(2, 8), 5)
    assert (nn == -1).all()
    rows, pos, sims = ix.range_search(_unit(2, 8), 0.5)
    assert len(rows) == 0


def test_damaged_index_file_is_reported(tmp_path):
    ix = VectorIndex(8)
    ix.add(["a", "b"], _unit(2, 8))
    ix.save(tmp_path)
    (tmp_path / "index.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexError_, match="rebuild"):
        VectorIndex.load(tmp_path)


def test_delta_tier_compaction_and_mmapped_base(tmp_path):
    x = _unit(120, seed=5)
    ix = VectorIndex(16, hnsw_min_size=10**6, delta_max=30)
    ix.add([str(i) for i in range(50)], x[:50])  # >= delta_max: compacted into the base
    assert ix.delta_size == 0 and ix.compactions == 1
    ix.save(tmp_path)
    base_mtime = (tmp_path / "index.faiss").stat().st_mtime_ns
    loaded = VectorIndex.load(tmp_path)  # base memory-mapped
    loaded.add([str(i) for i in range(50, 70)], x[50:70])  # stays in the delta
    loaded.save(tmp_path)
    assert (tmp_path / "index.faiss").stat().st_mtime_ns == base_mtime  # base not rewritten
    again = VectorIndex.load(tmp_path)
    assert again.delta_size == 20 and len(again) == 70
    again.add([str(i) for i in range(70, 120)], x[70:])  # compacts a memory-mapped base
    assert again.delta_size == 0 and again.compactions == 2
    exact = VectorIndex(16)
    exact.add([str(i) for i in range(120)], x)
    for index in (again, exact):
        sims, nn = index.search(x[::7], 5)
        assert nn[:, 0].tolist() == list(range(0, 120, 7))
    assert np.array_equal(again.search(x[::7], 5)[1], exact.search(x[::7], 5)[1])
    r1 = again.range_search(x[:30], 0.2)
    r2 = exact.range_search(x[:30], 0.2)
    assert set(zip(r1[0].tolist(), r1[1].tolist())) == set(zip(r2[0].tolist(), r2[1].tolist()))
