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


def seed_list(text: str) -> list[int]:
    """`--seeds` of the benchmark scripts (argparse `type`): comma-separated integers, at least one."""
    import argparse

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def emit(report: dict, append: bool) -> None:
    """Print the benchmark's one JSON line; with `append`, add it to benchmarks/measured.jsonl."""
    import json

    line = json.dumps(report)
    print(line)
    if append:
        with open(ROOT / "benchmarks" / "measured.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


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


class TrainingVocabulary:
    """The product's n-gram block refitted on each training set, fast: the `hybrid` kind fits its
    word and char TF-IDF vectorizers on the texts it trains on, so n-grams seen only in unreviewed
    items are unknown to it and the idf comes from the training texts alone.

    Raw n-gram counts of every text are computed once (the kind's own tokenisation: its
    vectorizers' analyzer, preprocessing and n-gram ranges); `features(train_rows, rows)` then
    keeps, per block, the n-grams with document frequency >= `min_df` over `train_rows` (the
    `max_features` most frequent there when more), with idf = ln((1 + n) / (1 + df)) + 1,
    sublinear tf and rows L2-normalised: scikit-learn's TfidfVectorizer fitted on those texts
    (tests: benchmarks' own `check`), at a fraction of a refit's cost."""

    def __init__(self, datasets: list[Dataset], params: dict) -> None:
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import CountVectorizer

        from core.taxonomy import load_taxonomy
        from models.kinds import make_classifier

        keep = {k: params[k] for k in ("word_ngrams", "char_ngrams", "char_analyzer", "preprocess", "min_df",
                                       "max_features") if k in params}
        clf = make_classifier("hybrid", list(load_taxonomy().labels), **{**keep, "embedding_weight": 0.0})
        clf._vectorizers()
        self.vectorizers = [v for v in (clf._word, clf._char) if v is not None]
        texts = [t for d in datasets for t in d.texts]
        shared = set(CountVectorizer().get_params())
        self.counts = []
        for vec in self.vectorizers:
            cv = CountVectorizer(**{**{k: v for k, v in vec.get_params().items() if k in shared},
                                    "min_df": 1, "max_df": 1.0, "max_features": None, "dtype": np.float32})
            log(f"counting {vec.analyzer} n-grams {vec.ngram_range} of {len(texts)} texts")
            self.counts.append(sp.csr_matrix(cv.fit_transform(texts), dtype=np.float32))

    def features(self, train_rows: np.ndarray, rows: np.ndarray) -> "object":
        """(len(rows), n-grams) TF-IDF of `rows` with the vocabulary and idf of `train_rows`."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        blocks = []
        for vec, C in zip(self.vectorizers, self.counts):
            sub = C[train_rows]
            df = np.asarray((sub > 0).sum(axis=0)).ravel()
            keep = np.flatnonzero(df >= vec.min_df)
            if vec.max_features is not None and len(keep) > vec.max_features:
                tf = np.asarray(sub[:, keep].sum(axis=0)).ravel()
                keep = np.sort(keep[np.argsort(-tf, kind="stable")[: vec.max_features]])
            idf = np.log((1.0 + len(train_rows)) / (1.0 + df[keep])) + 1.0
            X = C[rows][:, keep].tocsr()
            X.data = np.log(X.data) + 1.0  # sublinear tf
            X = X @ sp.diags(idf.astype(np.float32))
            blocks.append(normalize(X, norm="l2", copy=False))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def check(self, texts: list[str], train_rows: np.ndarray, rows: np.ndarray) -> float:
        """Largest absolute difference from the kind's own vectorizers fitted on the `train_rows`
        texts (`texts` in the same row order as the counts): ~1e-6 when faithful."""
        import scipy.sparse as sp
        from sklearn.base import clone

        ref = []
        for vec in self.vectorizers:
            v = clone(vec).fit([texts[i] for i in train_rows])
            ref.append(v.transform([texts[i] for i in rows]))
        diff = sp.hstack(ref, format="csr") - self.features(train_rows, rows)
        return float(abs(diff).max()) if diff.nnz else 0.0


if __name__ == "__main__":
    for ds in sys.argv[1:] or ["sms_spam", "davidson"]:
        d = load(ds)
        log(f"{ds}: {len(d.ids)} items, embeddings {d.emb.shape}")
