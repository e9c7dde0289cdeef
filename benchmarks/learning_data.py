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


def hybrid_text_features(datasets: list[Dataset], params: dict) -> "object":
    """The n-gram block of the product's `hybrid` kind (word + char TF-IDF with its preprocessing,
    `models.linear.HybridClassifier._features` with the embedding left out) over the rows of
    `datasets` stacked in order, as a CSR matrix; cached on disk under `CACHE` keyed by the texts
    and the n-gram parameters.

    The vectorizers are fitted on all of these texts without their labels (vocabulary and idf
    only): every text is in the store unlabelled when the model is trained, and refitting the
    vocabulary at each of the ~500 retrains of a benchmark run would not fit a shared 2-core
    machine. The classifier head never sees an unreviewed item's label."""
    import hashlib
    import json

    import scipy.sparse as sp

    from core.taxonomy import load_taxonomy
    from models.kinds import make_classifier

    keep = {k: params[k] for k in ("word_ngrams", "char_ngrams", "char_analyzer", "preprocess", "min_df",
                                   "max_features") if k in params}
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps(keep, sort_keys=True, default=list).encode())
    for d in datasets:
        h.update(d.name.encode())
        for t in d.texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\x1f")
    path = CACHE / f"hybrid-ngrams-{'+'.join(d.name for d in datasets)}-{h.hexdigest()}.npz"
    if path.exists():
        return sp.load_npz(path).tocsr()
    texts = [t for d in datasets for t in d.texts]
    log(f"fitting the hybrid's word/char TF-IDF on {len(texts)} texts ({keep}); cached in {path.name}")
    clf = make_classifier("hybrid", list(load_taxonomy().labels), **{**keep, "embedding_weight": 0.0})
    clf._vectorizers()
    X = sp.csr_matrix(clf._features(texts, None, fit=True), dtype=np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, X)
    return X


if __name__ == "__main__":
    for ds in sys.argv[1:] or ["sms_spam", "davidson"]:
        d = load(ds)
        log(f"{ds}: {len(d.ids)} items, embeddings {d.emb.shape}")
