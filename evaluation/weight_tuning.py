"""Choose the weight of human labels, and the hybrid's head, on the training side: grouped cross-validation.

`tune_human_weight` folds the human labels of the train side by their group (campaign or text,
so copies never sit on both sides of a fold), and for each candidate weight of
`learning.weight_grid` trains on the source labels of the train side outside the held-out fold's
groups plus the human labels of the other folds, weighted, and measures macro F1 on the held-out
fold's human labels. The test side is never read, so the gate's comparison stays clean. Ties go
to the smaller weight.

`tune_head` chooses the `hybrid` kind's head (one multinomial softmax, or a binary head per label:
`models.ovr`) the same way, over the whole train side (source and human labels, folded by group,
each fold's training rows repeated by weight): the out-of-fold AUC of the gate's policy
(`promotion.metric` auc:<policy>), else the mean one-vs-rest AUC of the labels humans decided.
That is the question a new policy asks: can its few hundred decisions rank it among everything
the source labels taught? Ties go to the multinomial head.
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


def _fit_on(ld: "LearningData", idx: np.ndarray, weights: np.ndarray, kind: str, labels: Sequence[str],
            params: dict[str, Any], seed: int, embeddings: Optional[np.ndarray], position: dict[str, int]) -> Any:
    """A `kind` model fitted on the items `idx` of `ld`, each repeated by its weight, with their
    cached embeddings (`position`: item id -> row) and the annotators' vote shares as soft targets,
    as the product trains (`models.registry.train_model`): without them a `soft_labels` kind was
    tuned on hard labels it never trains on. No `checkpoint_dir`: a fold model resuming from, or
    writing over, the checkpoint of the run it is tuning for (as `cross_fit` leaves it out too)."""
    from models.kinds import make_classifier
    from models.training import replicate_by_weight

    rep = replicate_by_weight(ld.data.subset(idx), weights, seed)
    rows = np.array([position[i] for i in rep.ids], dtype=int)
    model = make_classifier(kind, list(labels), **{k: v for k, v in params.items() if k != "checkpoint_dir"})
    return model.fit(rep.texts, rep.labels, embeddings=None if embeddings is None else embeddings[rows],
                     targets=rep.targets(model.labels))


def _store_side(store: "Store", taxonomy: "Taxonomy", cfg: "ModelsConfig", actor: Actor, what: str,
                kind: Optional[str], params: Optional[dict[str, Any]], sources: Optional[Sequence[str]],
                show_progress: bool, only_kind: Optional[str] = None) -> tuple[str, dict[str, Any], Any, Any]:
    """(kind, parameters, learning data, embeddings) of the challenger `workbench retrain` would
    train (the champion's kind and parameters unless told), after the `train` permission check."""
    from labeling.training_data import learning_data
    from models.base import ModelError
    from models.kinds import make_classifier
    from models.registry import champion, embeddings_for

    from .promotion import _challenger_params

    check_permission(actor, "train", what)
    champ = champion(store)
    kind = kind or (champ["kind"] if champ else cfg.training.default_kind)
    if only_kind is not None and kind != only_kind:
        raise ModelError(f"only the {only_kind} kind has a head to choose, not {kind!r} (pass --kind {only_kind})")
    merged = _challenger_params(cfg, kind, champ, params)
    ld = learning_data(store, taxonomy, cfg.learning, actor, sources=sources,
                       min_examples_per_label=cfg.training.min_examples_per_label)
    emb = embeddings_for(store, make_classifier(kind, taxonomy.labels, **merged), ld.data.texts,
                         show_progress=show_progress, config=cfg)
    return kind, merged, ld, emb


def cv_human_weight(ld: "LearningData", labels: Sequence[str], kind: str, params: dict[str, Any],
                    grid: Sequence[float], folds: int, seed: int, base_weight: float, max_weight: float,
                    embeddings: Optional[np.ndarray] = None, show_progress: bool = False) -> dict[str, Any]:
    """{chosen, scores: {weight: mean macro F1}, folds} over the train side of `ld` (see the
    module doc). `base_weight` is the human weight `ld.weights` were computed with; a candidate
    w rescales them by w / base_weight (recency and scarcity kept), capped at `max_weight`."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold
    from tqdm.auto import tqdm

    bad = [w for w in grid if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w <= 0]
    if bad or not len(grid):  # NaN failed the first fit with "weights must be finite"; inf tuned the cap
        raise ValueError(f"models.yaml learning.weight_grid: give finite positive weights, not {bad or list(grid)!r}")
    train = np.flatnonzero(ld.split == "train")
    human = np.array([i for i in train if ld.data.origin[i] == "decision"], dtype=int)
    source = np.array([i for i in train if ld.data.origin[i] != "decision"], dtype=int)
    groups = np.array([ld.groups[i] for i in human], dtype=object)
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        return {"chosen": base_weight, "scores": {}, "folds": 0,
                "reason": f"{len(human)} human labels in {n_groups} group(s) on the train side: nothing to fold"}
    k = min(folds, n_groups)
    # A fold's training side: the source labels outside its held groups (a campaign-mate or copy
    # of a held human label that a source labelled sat on both sides of every fold) and the other
    # folds' human labels. A side of one label cannot be fitted (ModelError): that fold is left out.
    splits = []
    for fit_h, held_h in GroupKFold(n_splits=k).split(human, groups=groups):
        held_groups = set(groups[held_h].tolist())
        src = np.array([i for i in source if ld.groups[i] not in held_groups], dtype=int)
        if _two_labels(ld, np.concatenate([src, human[fit_h]])):
            splits.append((src, fit_h, held_h))
    if not splits:
        return {"chosen": base_weight, "scores": {}, "folds": 0,
                "reason": f"no fold of the {len(human)} human labels leaves two labels to train on"}
    position = {item_id: j for j, item_id in enumerate(ld.data.ids)}
    scores: dict[float, float] = {}
    bar = tqdm(total=len(grid) * len(splits), desc="tuning the human weight", unit="fit", disable=not show_progress,
               leave=False)
    for w in grid:
        f1s = []
        for src, fit_h, held_h in splits:
            idx = np.concatenate([src, human[fit_h]])
            weights = ld.weights[idx].copy()
            is_h = np.zeros(len(idx), dtype=bool)
            is_h[len(src):] = True
            weights[is_h] = np.minimum(max_weight, weights[is_h] * (w / base_weight))
            model = _fit_on(ld, idx, weights, kind, labels, params, seed, embeddings, position)
            held = human[held_h]
            pred = model.predict([ld.data.texts[i] for i in held], None if embeddings is None else embeddings[held])
            truth = [ld.data.labels[i] for i in held]
            f1s.append(f1_score(truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0))
            bar.update(1)
        scores[float(w)] = round(float(np.mean(f1s)), 6)
    bar.close()
    best = max(scores.values())
    chosen = min(w for w, f in scores.items() if f >= best - 1e-9)
    return {"chosen": chosen, "scores": scores, "folds": len(splits)}


def _two_labels(ld: "LearningData", idx: np.ndarray) -> bool:
    """Whether the items `idx` of `ld` hold two different labels (what a fit needs)."""
    return len({ld.data.labels[int(i)] for i in idx}) >= 2


def tune_human_weight(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig", actor: Actor,
                      kind: Optional[str] = None, params: Optional[dict[str, Any]] = None,
                      sources: Optional[Sequence[str]] = None, show_progress: bool = True) -> dict[str, Any]:
    """`cv_human_weight` on the store's data for the challenger `workbench retrain` would train
    (the champion's kind and parameters unless told). Needs `train`."""
    cfg = models_config
    kind, merged, ld, emb = _store_side(store, taxonomy, cfg, actor, "human weight tuning", kind, params, sources,
                                        show_progress)
    out = cv_human_weight(ld, taxonomy.labels, kind, merged, cfg.learning.weight_grid, cfg.learning.tune_folds,
                          cfg.training.seed, cfg.learning.human_weight, cfg.learning.max_weight, emb, show_progress)
    return {**out, "kind": kind}


HEADS = ("multinomial", "ovr")


def cv_head(ld: "LearningData", labels: Sequence[str], kind: str, params: dict[str, Any], folds: int, seed: int,
            policies: Sequence[str], embeddings: Optional[np.ndarray] = None,
            show_progress: bool = False) -> dict[str, Any]:
    """{chosen, scores: {head: out-of-fold AUC}, folds, policies} over the train side of `ld` (see
    the module doc); the folds' models skip calibration and decision weights (AUC needs neither)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from tqdm.auto import tqdm

    train = np.flatnonzero(ld.split == "train")
    y = np.array([ld.data.labels[i] for i in train], dtype=object)
    policies = [p for p in policies if p in set(y.tolist()) and p in labels]
    groups = np.array([ld.groups[i] for i in train], dtype=object)
    n_groups = len(set(groups.tolist()))
    current = params.get("head", "multinomial")
    if not policies or n_groups < 2:
        return {"chosen": current, "scores": {}, "folds": 0, "policies": policies,
                "reason": "no policy with labels on the train side, or nothing to fold"}
    k = min(folds, n_groups)
    position = {item_id: j for j, item_id in enumerate(ld.data.ids)}
    cols = [list(labels).index(p) for p in policies]
    scores: dict[str, float] = {}
    # A fold whose training side holds one label cannot be fitted (ModelError mid-tuning), and the
    # other folds then score that one label only: no AUC to choose on.
    splits = list(GroupKFold(n_splits=k).split(train, groups=groups))
    if not all(_two_labels(ld, train[f]) for f, _ in splits):
        return {"chosen": current, "scores": {}, "folds": 0, "policies": policies,
                "reason": "a fold leaves one label to train on: nothing to fold"}
    bar = tqdm(total=len(HEADS) * k, desc="choosing the head", unit="fit", disable=not show_progress,
               leave=False)
    for head in HEADS:
        oof = np.zeros((len(train), len(labels)))
        for fit_i, held_i in splits:
            model = _fit_on(ld, train[fit_i], ld.weights[train[fit_i]], kind, labels,
                            {**params, "head": head, "calibration": "none", "decision_objective": None},
                            seed, embeddings, position)
            held = train[held_i]
            oof[held_i] = model.predict_proba([ld.data.texts[i] for i in held],
                                              None if embeddings is None else embeddings[held])
            bar.update(1)
        aucs = [roc_auc_score(y == p, oof[:, c]) for p, c in zip(policies, cols) if 0 < (y == p).sum() < len(y)]
        scores[head] = round(float(np.mean(aucs)), 6) if aucs else float("nan")
    bar.close()
    best = max(v for v in scores.values() if v == v) if any(v == v for v in scores.values()) else None
    chosen = current if best is None else next(h for h in HEADS if scores[h] >= best - 1e-9)
    return {"chosen": chosen, "scores": scores, "folds": k, "policies": policies}


def tune_head(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig", actor: Actor,
              kind: Optional[str] = None, params: Optional[dict[str, Any]] = None,
              sources: Optional[Sequence[str]] = None, show_progress: bool = True) -> dict[str, Any]:
    """`cv_head` on the store's data for the challenger `workbench retrain` would train. Only the
    `hybrid` kind has a head to choose. Needs `train`."""
    cfg = models_config
    kind, merged, ld, emb = _store_side(store, taxonomy, cfg, actor, "head tuning", kind, params, sources,
                                        show_progress, only_kind="hybrid")
    metric = cfg.promotion.metric
    if metric.startswith("auc:"):
        policies = [metric.split(":", 1)[1]]
    else:
        policies = sorted({ld.data.labels[i] for i in np.flatnonzero(ld.split == "train")
                           if ld.data.origin[i] == "decision"})
    out = cv_head(ld, taxonomy.labels, kind, merged, cfg.learning.tune_folds, cfg.training.seed, policies, emb,
                  show_progress)
    return {**out, "kind": kind}
