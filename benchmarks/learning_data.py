"""Shared data for the learning-loop benchmarks (active_learning, label_errors, new_surface).

Loads a shared dataset with `core.sources.load_labelled` (ids and policy labels as ingest makes
them) and its frozen MiniLM embeddings, computed once and cached on disk under
`workbench-data/bench-learning/` (an `EmbeddingCache` store keyed by text hash plus one `.npz`
per dataset), so every benchmark run after the first reads vectors instead of encoding ~30k texts.

Run it directly to warm the cache: python benchmarks/learning_data.py [sms_spam davidson]
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

CACHE = ROOT / "workbench-data" / "bench-learning"
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Dataset:
    """One shared dataset: ids, texts, policy labels (strings) and unit-length embeddings."""

    name: str
    ids: list[str]
    texts: list[str]
    labels: list[str]
    emb: np.ndarray


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def load(name: str) -> Dataset:
    """The dataset with its embeddings (from the on-disk cache when it matches the texts)."""
    from core.sources import load_labelled
    from core.taxonomy import load_taxonomy
    from core.text import text_hash

    tax = load_taxonomy()
    df = load_labelled(name, taxonomy=tax)
    ids, texts, labels = df["id"].tolist(), df["text"].tolist(), df["policy_label"].tolist()
    hashes = [text_hash(t) for t in texts]
    CACHE.mkdir(parents=True, exist_ok=True)
    npz = CACHE / f"{name}.npz"
    if npz.exists():
        z = np.load(npz, allow_pickle=False)
        if z["hashes"].tolist() == hashes:
            return Dataset(name, ids, texts, labels, z["emb"].astype(np.float32))
    from core.store import open_store
    from models.config import load_models_config
    from models.embeddings import Embedder, EmbeddingCache, embed_texts

    cfg = load_models_config()
    store = open_store(CACHE / "store")
    embedder = Embedder(max_seq_length=cfg.embedding.max_seq_length)
    log(f"[{name}] embedding {len(set(hashes))} distinct texts (cached in {CACHE})")
    emb = embed_texts(texts, embedder, EmbeddingCache(store, embedder.model_id), hashes=hashes, show_progress=True)
    np.savez(npz, hashes=np.array(hashes), emb=emb)
    return Dataset(name, ids, texts, labels, emb)


if __name__ == "__main__":
    for ds in sys.argv[1:] or ["sms_spam", "davidson"]:
        d = load(ds)
        log(f"{ds}: {len(d.ids)} items, embeddings {d.emb.shape}")
