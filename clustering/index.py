"""A faiss vector index with an id mapping, persisted in the data directory.

Exact `IndexFlatIP` search while the collection is small; past `hnsw_min_size` vectors the
index is rebuilt as `IndexHNSWFlat` (inner product), automatically. Which kind is in use, when
it switched and with which parameters is recorded in a small JSON file beside the index, so an
operator can see why search results are (slightly) approximate. Vectors are expected to be
L2-normalised, so inner product is cosine similarity.

Each position holds one vector and one key (for campaigns: a distinct normalised text, whose
items share the vector). Positions are append-only; `add` never reorders them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from workbench.schema import utcnow

INDEX_FILE = "index.faiss"
META_FILE = "index.json"
KEYS_FILE = "index_keys.json"
FORMAT = 1


class IndexError_(RuntimeError):
    """The persisted index is missing, damaged or does not fit the data it is used with."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class VectorIndex:
    """Cosine search over L2-normalised vectors: flat while small, HNSW past a size."""

    def __init__(self, dim: int, hnsw_min_size: int = 50_000, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128, model_id: str | None = None,
                 range_k: int = 100) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.hnsw_min_size = hnsw_min_size
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.model_id = model_id
        self.range_k = range_k
        self.keys: list[str] = []
        self._pos: dict[str, int] = {}
        self.kind = "flat"
        self.switched_at_size: int | None = None
        self.built_at = utcnow().isoformat(timespec="seconds")
        self._index = self._new_flat()

    # -- construction -------------------------------------------------------------------
    def _new_flat(self) -> Any:
        import faiss

        return faiss.IndexFlatIP(self.dim)

    def _new_hnsw(self) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Append vectors under new keys; returns their positions. Switches to HNSW past the size."""
        vectors = self._check(vectors)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        dup = [k for k in keys if k in self._pos]
        if dup or len(set(keys)) != len(keys):
            raise ValueError(f"keys already indexed or repeated, e.g. {(dup or list(keys))[:3]}")
        start = len(self.keys)
        if self.kind == "flat" and start + len(keys) >= self.hnsw_min_size:
            old = self.reconstruct_all()
            self._index = self._new_hnsw()
            if len(old):
                self._index.add(old)
            self.kind = "hnsw"
            self.switched_at_size = start + len(keys)
        if len(vectors):
            self._index.add(vectors)
        for i, k in enumerate(keys):
            self._pos[k] = start + i
        self.keys.extend(keys)
        return np.arange(start, start + len(keys))

    # -- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._pos

    def position(self, key: str) -> int:
        return self._pos[key]

    def reconstruct(self, positions: Iterable[int]) -> np.ndarray:
        pos = list(positions)
        out = np.empty((len(pos), self.dim), dtype=np.float32)
        for row, p in enumerate(pos):
            out[row] = self._index.reconstruct(int(p))
        return out

    def reconstruct_all(self) -> np.ndarray:
        if not len(self.keys):
            return np.empty((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, len(self.keys))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions) of the k nearest per query; missing neighbours are -1."""
        vectors = self._check(vectors)
        k = max(1, min(k, len(self.keys))) if self.keys else 1
        if not self.keys:
            return (np.full((len(vectors), 1), -np.inf, dtype=np.float32),
                    np.full((len(vectors), 1), -1, dtype=np.int64))
        return self._index.search(vectors, k)

    def range_search(self, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query row, position, similarity) triples with similarity >= threshold.

        Exact on the flat index. On HNSW it is the `range_k` nearest neighbours filtered by the
        threshold: faiss's own HNSW range search aborts the process on large result sets
        (faiss 1.15, multi-threaded), and a k-NN graph keeps near-duplicate groups connected.
        """
        vectors = self._check(vectors)
        if not self.keys or not len(vectors):
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float32)
        if self.kind == "hnsw":
            sims, pos = self.search(vectors, self.range_k)
            keep = (pos >= 0) & (sims >= threshold)
            rows = np.nonzero(keep)[0].astype(np.int64)
            return rows, pos[keep].astype(np.int64), sims[keep].astype(np.float32)
        lims, sims, pos = self._index.range_search(vectors, float(threshold))
        rows = np.repeat(np.arange(len(vectors), dtype=np.int64), np.diff(lims.astype(np.int64)))
        return rows, pos.astype(np.int64), sims.astype(np.float32)

    # -- persistence --------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "kind": self.kind, "dim": self.dim, "size": len(self.keys),
            "metric": "inner_product (cosine on L2-normalised vectors)",
            "hnsw_min_size": self.hnsw_min_size, "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction, "ef_search": self.ef_search,
            "switched_at_size": self.switched_at_size, "model_id": self.model_id, "range_k": self.range_k,
            "built_at": self.built_at, "saved_at": utcnow().isoformat(timespec="seconds"),
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write index, keys and meta; each file is replaced atomically, the meta last."""
        import faiss

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (INDEX_FILE + ".tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, d / INDEX_FILE)
        _atomic_write(d / KEYS_FILE, json.dumps(self.keys).encode("utf-8"))
        _atomic_write(d / META_FILE, json.dumps(self.meta(), indent=2).encode("utf-8"))

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        d = Path(directory)
        return all((d / f).exists() for f in (INDEX_FILE, KEYS_FILE, META_FILE))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> "VectorIndex":
        import faiss

        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
            keys = json.loads((d / KEYS_FILE).read_text(encoding="utf-8"))
            if not (d / INDEX_FILE).exists():
                raise FileNotFoundError(2, "missing", str(d / INDEX_FILE))
        except FileNotFoundError as exc:
            raise IndexError_(f"{exc.filename}: index file missing; run `workbench cluster --rebuild`") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise IndexError_(f"{d}: index metadata unreadable ({exc}); run `workbench cluster --rebuild`") from None
        if meta.get("format") != FORMAT:
            raise IndexError_(f"{d / META_FILE}: format {meta.get('format')!r}, expected {FORMAT}")
        self = cls(meta["dim"], meta["hnsw_min_size"], meta["hnsw_m"], meta["ef_construction"],
                   meta["ef_search"], meta.get("model_id"), meta.get("range_k", 100))
        try:
            self._index = faiss.read_index(str(d / INDEX_FILE))
        except RuntimeError as exc:
            raise IndexError_(f"{d / INDEX_FILE}: unreadable faiss index ({str(exc).splitlines()[0]}); "
                              "run `workbench cluster --rebuild`") from None
        if self._index.ntotal != len(keys):
            raise IndexError_(f"{d}: index holds {self._index.ntotal} vectors but {len(keys)} keys; "
                              "run `workbench cluster --rebuild`")
        self.kind = meta["kind"]
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.ef_search
        self.switched_at_size = meta.get("switched_at_size")
        self.built_at = meta.get("built_at", self.built_at)
        self.keys = list(keys)
        self._pos = {k: i for i, k in enumerate(self.keys)}
        return self
