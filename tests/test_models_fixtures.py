"""Small fixtures for the models tests: a labelled toy corpus, items in a store, a tiny
sentence-transformers model built from a config (random weights, no download, loads in a blink)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from core.schema import Item
from core.text import text_hash

VOCAB = {
    "benign": ["lunch", "meeting", "tomorrow", "thanks", "family", "weekend", "movie", "dinner", "garden", "train"],
    "spam": ["discount", "offer", "subscribe", "sale", "shop", "deal", "newsletter", "promo", "catalogue", "coupon"],
    "scam": ["prize", "winner", "claim", "urgent", "cash", "award", "bank", "verify", "account", "transfer"],
    "hate": ["vermin", "subhuman", "deport", "inferior", "breed", "invaders", "filth", "exterminate", "savages", "purge"],
    "harassment": ["idiot", "loser", "stupid", "ugly", "pathetic", "moron", "clown", "shut", "worthless", "dumb"],
}
FILLER = ["the", "a", "you", "we", "is", "now", "today", "this", "and", "my"]


def toy_corpus(n_per_label: int = 16, seed: int = 0, labels: tuple[str, ...] | None = None) -> tuple[list[str], list[str]]:
    """Texts whose label is readable from their words (3 label words + 3 fillers each)."""
    rng = random.Random(seed)
    texts, ys = [], []
    for lab in labels or tuple(VOCAB):
        for _ in range(n_per_label):
            words = rng.sample(VOCAB[lab], 3) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            texts.append(" ".join(words))
            ys.append(lab)
    return texts, ys


def hash_vectors(texts: list[str], dim: int = 16) -> np.ndarray:
    """Deterministic unit vectors per text, standing in for sentence embeddings."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        v = np.random.default_rng(int(text_hash(t)[:8], 16)).normal(size=dim)
        out[i] = v / np.linalg.norm(v)
    return out


def add_items(store, texts: list[str], labels: list[str | None], source: str = "toy",
              prefix: str = "toy") -> list[str]:
    """Insert items directly (the ingest path has its own tests); returns their ids."""
    ids = [f"{prefix}:{i:05d}" for i in range(len(texts))]
    with store.session() as s:
        for i, t, lab in zip(ids, texts, labels):
            s.add(Item(id=i, source=source, surface="post", text=t, text_hash=text_hash(t),
                       policy_label=lab, source_label=lab, taxonomy_version="test"))
    return ids


def build_tiny_sentence_model(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer, saved as a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from models.embeddings import bundled_model_path

    hf_dir = folder / "hf"
    tok = AutoTokenizer.from_pretrained(bundled_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    word = st_models.Transformer(str(hf_dir), max_seq_length=64)
    st = SentenceTransformer(modules=[word, st_models.Pooling(32), st_models.Normalize()], device="cpu")
    out = folder / "tiny-st"
    st.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_st_path(tmp_path_factory) -> str:
    return str(build_tiny_sentence_model(tmp_path_factory.mktemp("tiny_st")))


@pytest.fixture
def tiny_embedding_model(tiny_st_path, monkeypatch) -> str:
    """Points the default embedding model at the tiny one for the duration of a test."""
    monkeypatch.setenv("WORKBENCH_EMBEDDING_MODEL", tiny_st_path)
    return tiny_st_path


# Wider init and no dropout let a 2-layer model from scratch learn the toy corpus in ~40 steps.
TINY_TRANSFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "intermediate_size": 64, "max_position_embeddings": 128, "initializer_range": 0.1,
                    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def tiny_params(kind: str, tmp_path: Path) -> dict:
    """The smallest settings that still learn the toy corpus, per kind (the contract tests fit every kind)."""
    if kind == "transformer":
        return {"init_config": TINY_TRANSFORMER, "max_steps": 40, "epochs": 50.0, "batch_size": 16,
                "learning_rate": 1e-2, "max_length": 16, "calibration_fraction": 0.2, "checkpoint_dir": str(tmp_path / "ckpt"),
                "torch_threads": 1}
    if kind in ("hybrid", "nblr"):
        return {"calibration_folds": 3, "min_df": 1}
    if kind == "tfidf_lr":
        return {"min_df": 1}
    if kind == "ensemble":
        tiny = {k: v for k, v in tiny_params("transformer", tmp_path).items() if k != "checkpoint_dir"}
        return {"members": [{"kind": "hybrid", "params": tiny_params("hybrid", tmp_path)},
                            {"kind": "transformer", "params": tiny}],
                "blend_fraction": 0.25, "checkpoint_dir": str(tmp_path / "ens-ckpt")}
    return {}
