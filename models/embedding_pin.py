"""The embedding model a version was trained on, recorded with it, and the refusal to score with another.

A kind that reads sentence embeddings names its encoder by a parameter (`embedding_model`, a
folder or None for `$WORKBENCH_EMBEDDING_MODEL` / the bundled MiniLM), and the registry's artifact
digest covers that name, not the folder: weights swapped in the folder, or the variable pointing
elsewhere at scoring time, fed the head vectors it never learned from, and every score was
silently wrong. `record_embedding_pin` stores the encoder's content digest (and truncation and
runtime) in the model's `fit_info` before it is saved, so the artifact digest covers it;
`check_embedding_pin` refuses, in one line, to score with an encoder that differs. Versions saved
before pins were recorded carry none and are not checked.
"""
from __future__ import annotations

from typing import Any, Optional

from .base import ModelError, PolicyClassifier

PIN_KEY = "embedding"


def _reads_embeddings(model: PolicyClassifier) -> bool:
    return bool(getattr(model, "needs_embeddings", model.uses_embeddings)) and hasattr(model, "embedder")


def embedding_pin(embedder: Any) -> dict[str, Any]:
    """What identifies the vectors an embedder gives: its folder's content digest (`Embedder.source_digest`;
    a stand-in without one is known by its `model_id`), truncation and runtime."""
    pin: dict[str, Any] = {"sha256": getattr(embedder, "source_digest", None) or f"id:{embedder.model_id}",
                           "model_id": embedder.model_id}
    for name in ("max_seq_length", "runtime"):
        if getattr(embedder, name, None) is not None:
            pin[name] = getattr(embedder, name)
    return pin


def record_embedding_pin(model: PolicyClassifier) -> None:
    """Record the pin of the embedder `model` reads in its `fit_info` (saved in model.json); for a
    kind without sentence embeddings, nothing. Call after `fit`, before `save`."""
    if _reads_embeddings(model):
        model.fit_info = {**(model.fit_info or {}), PIN_KEY: embedding_pin(model.embedder())}


def check_embedding_pin(model: PolicyClassifier, version: str, embedder: Optional[Any] = None) -> None:
    """ModelError (one line) when `model` records a pin and `embedder` (default: the model's own)
    would give other vectors: another folder content, truncation or runtime."""
    recorded = (model.fit_info or {}).get(PIN_KEY) if isinstance(model.fit_info, dict) else None
    if not recorded or not _reads_embeddings(model):
        return
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        raise ModelError(f"model {version}: its recorded embedding model {str(recorded)[:80]!r} is unreadable: "
                         "refused; retrain it")
    current = embedding_pin(embedder if embedder is not None else model.embedder())
    differ = [k for k in ("sha256", "max_seq_length", "runtime") if k in recorded and recorded[k] != current.get(k)]
    if differ:
        raise ModelError(f"model {version} was trained on embeddings of {recorded.get('model_id')} "
                         f"(sha256 {recorded['sha256'][:12]}), the embedding model now is {current['model_id']} "
                         f"(sha256 {current['sha256'][:12]}; {', '.join(differ)} differ): refused; restore that "
                         "model folder or retrain")
