"""A faiss vector index with an id mapping, persisted in the data directory.

Two tiers, as in log-structured stores: a large *base* index and a small exact *delta*
(`IndexFlatIP`) that new vectors go to. When the delta reaches `delta_max` vectors it is
compacted into the base. The base is exact `IndexFlatIP` while the collection is small and is
rebuilt as `IndexHNSWFlat` (inner product) once it passes `hnsw_min_size`, automatically; which
kind is in use, when it switched and with which parameters is recorded in `index.json` beside
the index. Saving rewrites the base only after a compaction; otherwise only the delta and the
new keys are written, and a loaded base is memory-mapped, so an incremental attach reads and
writes megabytes, not the whole index.

Vectors are expected to be L2-normalised, so inner product is cosine similarity. Each position
holds one vector and one key (for campaigns: a distinct normalised text, whose items share the
vector); positions are append-only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.schema import utcnow

from .persist import append_log, atomic_write, read_log

INDEX_FILE = "index.faiss"
DELTA_FILE = "index_delta.npy"
META_FILE = "index.json"
KEYS_FILE = "index_keys.jsonl"
FORMAT = 2
# index.json fields read back as whole numbers (the minimum each may hold) and as text.
_META_INTS = {"dim": 1, "hnsw_min_size": 1, "hnsw_m": 1, "ef_construction": 1, "ef_search": 1, "range_k": 1,
              "delta_max": 1, "base_size": 0}
_META_KINDS = ("flat", "hnsw")


class IndexError_(RuntimeError):
    """The persisted index is missing, damaged or does not fit the data it is used with."""


class VectorIndex:
    """Cosine search over L2-normalised vectors: flat while small, HNSW past a size."""

    def __init__(self, dim: int, hnsw_min_size: int = 60_000, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 96, model_id: str | None = None,
                 range_k: int = 64, delta_max: int = 10_000) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.hnsw_min_size = hnsw_min_size
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.model_id = model_id
        self.range_k = range_k
        self.delta_max = delta_max
        self.keys: list[str] = []
        self._pos: dict[str, int] = {}
        self.kind = "flat"
        self.switched_at_size: int | None = None
        self.compactions = 0
        self.built_at = utcnow().isoformat(timespec="seconds")
        self._base = self._new_flat()
        self._base_n = 0
        self._delta = self._new_flat()
        self._base_saved = False  # the base on disk is this base
        self._base_path: Path | None = None  # set when the base is a read-only memory map
        self._keys_logged: tuple[int, int] | None = None

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
        """Append vectors under new keys (to the delta); returns their positions."""
        vectors = self._check(vectors)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        dup = [k for k in keys if k in self._pos]
        if dup or len(set(keys)) != len(keys):
            raise ValueError(f"keys already indexed or repeated, e.g. {(dup or list(keys))[:3]}")
        start = len(self.keys)
        if len(vectors):
            self._delta.add(vectors)
        for i, k in enumerate(keys):
            self._pos[k] = start + i
        self.keys.extend(keys)
        if self._delta.ntotal >= self.delta_max or (self.kind == "flat" and len(self.keys) >= self.hnsw_min_size):
            self.compact()
        return np.arange(start, start + len(keys))

    def compact(self) -> None:
        """Move the delta into the base (switching the base to HNSW past `hnsw_min_size`)."""
        import faiss

        n_delta = self._delta.ntotal
        if not n_delta:
            return
        fresh = self._delta.reconstruct_n(0, n_delta)
        if self._base_path is not None:  # a memory-mapped base is read-only: load an owned copy
            self._base = faiss.read_index(str(self._base_path))
            self._set_ef()
            self._base_path = None
        total = self._base_n + n_delta
        if self.kind == "flat" and total >= self.hnsw_min_size:
            old = self._base.reconstruct_n(0, self._base_n) if self._base_n else np.empty((0, self.dim), np.float32)
            self._base = self._new_hnsw()
            self._base.add(np.concatenate([old, fresh]))
            self.kind = "hnsw"
            self.switched_at_size = total
        else:
            self._base.add(fresh)
        self._base_n = total
        self._delta = self._new_flat()
        self._base_saved = False
        self.compactions += 1

    def _set_ef(self) -> None:
        if self.kind == "hnsw":
            self._base.hnsw.efSearch = self.ef_search

    # -- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._pos

    @property
    def delta_size(self) -> int:
        return int(self._delta.ntotal)

    def position(self, key: str) -> int:
        return self._pos[key]

    def reconstruct(self, positions: Iterable[int]) -> np.ndarray:
        pos = list(positions)
        out = np.empty((len(pos), self.dim), dtype=np.float32)
        for row, p in enumerate(pos):
            p = int(p)
            out[row] = self._base.reconstruct(p) if p < self._base_n else self._delta.reconstruct(p - self._base_n)
        return out

    def reconstruct_all(self) -> np.ndarray:
        parts = []
        if self._base_n:
            parts.append(self._base.reconstruct_n(0, self._base_n))
        if self._delta.ntotal:
            parts.append(self._delta.reconstruct_n(0, self._delta.ntotal))
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions) of the k nearest per query, best first; missing ones are -1."""
        vectors = self._check(vectors)
        k = max(1, min(k, len(self.keys))) if self.keys else 1
        sims, pos = [], []
        for index, offset, n in ((self._base, 0, self._base_n), (self._delta, self._base_n, self._delta.ntotal)):
            if n:
                s, p = index.search(vectors, min(k, n))
                sims.append(s)
                pos.append(np.where(p >= 0, p + offset, -1))
        if not sims:
            return (np.full((len(vectors), 1), -np.inf, dtype=np.float32),
                    np.full((len(vectors), 1), -1, dtype=np.int64))
        s, p = np.concatenate(sims, axis=1), np.concatenate(pos, axis=1)
        s = np.where(p >= 0, s, -np.inf)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(p, order, axis=1)

    def range_search(self, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query row, position, similarity) triples with similarity >= threshold.

        Exact on flat tiers. On an HNSW base it is the `range_k` nearest neighbours filtered by
        the threshold: faiss's own HNSW range search aborts the process on large result sets
        (faiss 1.15, multi-threaded), and a k-NN graph keeps near-duplicate groups connected.
        """
        vectors = self._check(vectors)
        rows, pos, sims = [], [], []
        if len(vectors):
            for index, offset, n in ((self._base, 0, self._base_n), (self._delta, self._base_n, self._delta.ntotal)):
                if not n:
                    continue
                if index is self._base and self.kind == "hnsw":
                    s, p = index.search(vectors, min(self.range_k, n))
                    keep = (p >= 0) & (s >= threshold)
                    rows.append(np.nonzero(keep)[0].astype(np.int64))
                    pos.append(p[keep].astype(np.int64) + offset)
                    sims.append(s[keep].astype(np.float32))
                else:
                    lims, s, p = index.range_search(vectors, float(threshold))
                    rows.append(np.repeat(np.arange(len(vectors), dtype=np.int64), np.diff(lims.astype(np.int64))))
                    pos.append(p.astype(np.int64) + offset)
                    sims.append(s.astype(np.float32))
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float32)
        return np.concatenate(rows), np.concatenate(pos), np.concatenate(sims)

    # -- persistence --------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "kind": self.kind, "dim": self.dim, "size": len(self.keys),
            "base_size": self._base_n, "delta_size": self.delta_size, "delta_max": self.delta_max,
            "metric": "inner_product (cosine on L2-normalised vectors)",
            "hnsw_min_size": self.hnsw_min_size, "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction, "ef_search": self.ef_search, "range_k": self.range_k,
            "switched_at_size": self.switched_at_size, "compactions": self.compactions,
            "model_id": self.model_id, "built_at": self.built_at,
            "saved_at": utcnow().isoformat(timespec="seconds"), "keys_log": list(self._keys_logged or ()),
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the base (only when it changed), the delta, new keys, then the meta."""
        import faiss

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if not self._base_saved or not (d / INDEX_FILE).exists():
            tmp = d / (INDEX_FILE + ".tmp")
            faiss.write_index(self._base, str(tmp))
            os.replace(tmp, d / INDEX_FILE)
            self._base_saved = True
        tmp_delta = d / ("delta.tmp.npy")
        np.save(tmp_delta, self._delta.reconstruct_n(0, self._delta.ntotal) if self._delta.ntotal
                else np.empty((0, self.dim), dtype=np.float32))
        os.replace(tmp_delta, d / DELTA_FILE)
        self._keys_logged = append_log(d / KEYS_FILE, self.keys, self._keys_logged)
        atomic_write(d / META_FILE, json.dumps(self.meta(), indent=2).encode("utf-8"))

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        d = Path(directory)
        return all((d / f).exists() for f in (INDEX_FILE, DELTA_FILE, KEYS_FILE, META_FILE))

    @classmethod
    def load(cls, directory: str | os.PathLike[str], mmap: bool = True) -> "VectorIndex":
        """Load a saved index; the base is memory-mapped (read-only) unless `mmap=False`."""
        import faiss

        d = Path(directory)
        rebuild = "run `workbench cluster --rebuild`"
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
            _check_meta(d / META_FILE, meta, rebuild)
            keys = read_log(d / KEYS_FILE, *meta["keys_log"])
            delta = np.load(d / DELTA_FILE)
            if not (d / INDEX_FILE).exists():
                raise FileNotFoundError(2, "missing", str(d / INDEX_FILE))
        except FileNotFoundError as exc:
            raise IndexError_(f"{exc.filename}: index file missing; {rebuild}") from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, EOFError, OSError) as exc:
            # an empty or truncated index_delta.npy is an EOFError or ValueError
            raise IndexError_(f"{d}: index metadata unreadable ({exc or type(exc).__name__}); {rebuild}") from None
        if delta.ndim != 2 or delta.shape[1] != meta["dim"] or delta.dtype.kind not in "fiu":
            raise IndexError_(f"{d / DELTA_FILE}: expected vectors of shape (n, {meta['dim']}), got {delta.shape} "
                              f"{delta.dtype}; {rebuild}")
        self = cls(meta["dim"], meta["hnsw_min_size"], meta["hnsw_m"], meta["ef_construction"],
                   meta["ef_search"], meta.get("model_id"), meta["range_k"], meta["delta_max"])
        base = None
        if mmap:
            try:
                base = faiss.read_index(str(d / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC)
                self._base_path = d / INDEX_FILE
            except (RuntimeError, AttributeError):
                base = None
        if base is None:
            try:
                base = faiss.read_index(str(d / INDEX_FILE))
            except RuntimeError as exc:
                raise IndexError_(f"{d / INDEX_FILE}: unreadable faiss index ({str(exc).splitlines()[0]}); "
                                  f"{rebuild}") from None
        if int(base.d) != self.dim:
            raise IndexError_(f"{d / INDEX_FILE}: vectors of dimension {base.d}, index.json says {self.dim}; {rebuild}")
        # Another kind or metric (a file from elsewhere, or left by an interrupted switch) would
        # fail on first use (no `.hnsw`), abort in a flat-style range search, or rank by distance.
        want = faiss.IndexHNSWFlat if meta["kind"] == "hnsw" else faiss.IndexFlat
        if not isinstance(base, want) or base.metric_type != faiss.METRIC_INNER_PRODUCT:
            metric = "inner product" if base.metric_type == faiss.METRIC_INNER_PRODUCT else f"metric {base.metric_type}"
            raise IndexError_(f"{d / INDEX_FILE}: a {type(base).__name__} index ({metric}), index.json says "
                              f"{meta['kind']} over inner product; {rebuild}")
        self._base = base
        self.kind = meta["kind"]
        self._set_ef()
        self._base_n = int(base.ntotal)
        if len(delta):
            self._delta.add(np.ascontiguousarray(delta, dtype=np.float32))
        if self._base_n != meta["base_size"] or self._base_n + len(delta) != len(keys):
            raise IndexError_(f"{d}: index holds {self._base_n}+{len(delta)} vectors but {len(keys)} keys; {rebuild}")
        self._base_saved = True
        self.switched_at_size = meta.get("switched_at_size")
        self.compactions = meta.get("compactions", 0)
        self.built_at = meta.get("built_at", self.built_at)
        self.keys = keys
        self._pos = {k: i for i, k in enumerate(keys)}
        self._keys_logged = tuple(meta["keys_log"])
        return self


def _check_meta(path: Path, meta: Any, rebuild: str) -> None:
    """Refuse an index.json that is not what `save` writes, before any of it is used."""
    if not isinstance(meta, dict):
        raise IndexError_(f"{path}: expected a JSON object, got {type(meta).__name__}; {rebuild}")
    if meta.get("format") != FORMAT:
        raise IndexError_(f"{path}: format {meta.get('format')!r}, expected {FORMAT}; {rebuild}")
    for field, least in _META_INTS.items():
        value = meta.get(field)
        if type(value) is not int or value < least:
            raise IndexError_(f"{path}: field '{field}' is {value!r}, expected a whole number >= {least}; {rebuild}")
    if meta.get("kind") not in _META_KINDS:
        raise IndexError_(f"{path}: field 'kind' is {meta.get('kind')!r}, expected one of {_META_KINDS}; {rebuild}")
    log = meta.get("keys_log")
    if not (isinstance(log, list) and len(log) == 2 and all(type(v) is int and v >= 0 for v in log)):
        raise IndexError_(f"{path}: field 'keys_log' is {log!r}, expected [count, bytes]; {rebuild}")
