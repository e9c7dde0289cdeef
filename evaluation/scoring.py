"""How the gate scores evaluation items with a model: its probabilities in the taxonomy's order."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from models.base import PolicyClassifier
    from models.config import ModelsConfig
    from models.training import TrainingSet


def aligned_proba(model: "PolicyClassifier", proba: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, predicted label indices) in `labels` order from a model's own columns: a
    label the model does not know scores 0; the prediction keeps the model's decision weights.
    Probabilities not of shape (n, the model's labels) are a `ModelError` in one line: a broken
    artifact's extra column was read as a label past the model's list (IndexError mid-gate)."""
    from models.base import ModelError

    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(model.labels):
        raise ModelError(f"{type(model).__name__}: probabilities of shape {proba.shape} for "
                         f"{len(model.labels)} labels ({', '.join(map(str, model.labels))[:200]})")
    out = np.zeros((proba.shape[0], len(labels)))
    index = {lab: j for j, lab in enumerate(labels)}
    for j, lab in enumerate(model.labels):
        if lab in index:
            out[:, index[lab]] = proba[:, j]
    pred_own = model.predict_from_proba(proba)
    pred = np.array([index.get(model.labels[int(k)], -1) for k in pred_own], dtype=int)
    return out, pred


def score_set(store: "Store", model: "PolicyClassifier", data: "TrainingSet", labels: Sequence[str],
              config: "ModelsConfig") -> tuple[np.ndarray, np.ndarray]:
    """`aligned_proba` of `model` on the texts of `data` (embeddings from the cache)."""
    from models.registry import embeddings_for

    if not len(data):
        return np.zeros((0, len(labels))), np.zeros(0, dtype=int)
    emb = embeddings_for(store, model, data.texts, show_progress=False, config=config)
    return aligned_proba(model, model.predict_proba(list(data.texts), emb), labels)
