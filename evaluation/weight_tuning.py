"""Choose the weight of human labels on the training side: grouped cross-validation.

`tune_human_weight` folds the human labels of the train side by their group (campaign or text,
so copies never sit on both sides of a fold), and for each candidate weight of
`learning.weight_grid` trains on all source labels of the train side plus the human labels of
the other folds, weighted, and measures macro F1 on the held-out fold's human labels. The test
side is never read, so the gate's comparison stays clean. Ties go to the smaller weight.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from core.hooks import check_permission
from core.principals import Actor

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.training_data import LearningData
    from models.config import ModelsConfig


def cv_human_weight(ld: "LearningData", labels: Sequence[str], kind: str, params: dict[str, Any],
                    grid: Sequence[float], folds: int, seed: int, base_weight: float, max_weight: float,
                    embeddings: Optional[np.ndarray] = None, show_progress: bool = False) -> dict[str, Any]:
    """{chosen, scores: {weight: mean macro F1}, folds} over the train side of `ld` (see the
    module doc). `base_weight` is the human weight `ld.weights` were computed with; a candidate
    w rescales them by w / base_weight (recency and scarcity kept), capped at `max_weight`."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold
    from tqdm.auto import tqdm

    from models.kinds import make_classifier
    from models.training import replicate_by_weight

    train = np.flatnonzero(ld.split == "train")
    human = np.array([i for i in train if ld.data.origin[i] == "decision"], dtype=int)
    source = np.array([i for i in train if ld.data.origin[i] != "decision"], dtype=int)
    groups = np.array([ld.groups[i] for i in human], dtype=object)
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        return {"chosen": base_weight, "scores": {}, "folds": 0,
                "reason": f"{len(human)} human labels in {n_groups} group(s) on the train side: nothing to fold"}
    k = min(folds, n_groups)
    splits = list(GroupKFold(n_splits=k).split(human, groups=groups))
    position = {item_id: j for j, item_id in enumerate(ld.data.ids)}
    scores: dict[float, float] = {}
    bar = tqdm(total=len(grid) * k, desc="tuning the human weight", unit="fit", disable=not show_progress, leave=False)
    for w in grid:
        f1s = []
        for fit_h, held_h in splits:
            idx = np.concatenate([source, human[fit_h]])
            weights = ld.weights[idx].copy()
            is_h = np.zeros(len(idx), dtype=bool)
            is_h[len(source):] = True
            weights[is_h] = np.minimum(max_weight, weights[is_h] * (w / base_weight))
            rep = replicate_by_weight(ld.data.subset(idx), weights, seed)
            rows = np.array([position[i] for i in rep.ids], dtype=int)
            model = make_classifier(kind, list(labels), **params)
            model.fit(rep.texts, rep.labels, embeddings=None if embeddings is None else embeddings[rows])
            held = human[held_h]
            pred = model.predict([ld.data.texts[i] for i in held], None if embeddings is None else embeddings[held])
            truth = [ld.data.labels[i] for i in held]
            f1s.append(f1_score(truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0))
            bar.update(1)
        scores[float(w)] = round(float(np.mean(f1s)), 6)
    bar.close()
    best = max(scores.values())
    chosen = min(w for w, f in scores.items() if f >= best - 1e-9)
    return {"chosen": chosen, "scores": scores, "folds": k}


def tune_human_weight(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig", actor: Actor,
                      kind: Optional[str] = None, params: Optional[dict[str, Any]] = None,
                      sources: Optional[Sequence[str]] = None, show_progress: bool = True) -> dict[str, Any]:
    """`cv_human_weight` on the store's data for the challenger `workbench retrain` would train
    (the champion's kind and parameters unless told). Needs `train`."""
    from labeling.training_data import learning_data
    from models.kinds import make_classifier
    from models.registry import champion, embeddings_for

    from .promotion import _challenger_params

    check_permission(actor, "train", "human weight tuning")
    cfg = models_config
    champ = champion(store)
    kind = kind or (champ["kind"] if champ else cfg.training.default_kind)
    merged = _challenger_params(cfg, kind, champ, params)
    ld = learning_data(store, taxonomy, cfg.learning, actor, sources=sources,
                       min_examples_per_label=cfg.training.min_examples_per_label)
    emb = embeddings_for(store, make_classifier(kind, taxonomy.labels, **merged), ld.data.texts,
                         show_progress=show_progress, config=cfg)
    out = cv_human_weight(ld, taxonomy.labels, kind, merged, cfg.learning.weight_grid, cfg.learning.tune_folds,
                          cfg.training.seed, cfg.learning.human_weight, cfg.learning.max_weight, emb, show_progress)
    return {**out, "kind": kind}
