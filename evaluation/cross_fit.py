"""The gate's `pooled` evaluation set: more held-out evidence while a surface is young.

A surface's first few hundred decisions put a few dozen human labels on the test side, too few
for the gate to see a real improvement: on `benchmarks/new_surface.py` the challengers of 200
decisions reached a spam AUC of 0.985 while the gate kept a champion at 0.979. The train-side
human labels that the champion never learnt from (whole groups first decided after the data it
was trained on: `LearningData.unseen_after`) are held out from the champion too. The challenger
learnt from them, so it scores them out of fold: `promotion.cross_fit_folds` models of its kind
and parameters, each fitted as the challenger was (the train side repeated by weight) but
without one fold of those groups, score that fold. A fold model saw less than the challenger,
so the challenger's side of the comparison is, if anything, understated; the champion's is its
own held-out scores.

`pooled` = the test split plus those items. It needs a champion trained from the store with its
data recorded (`decisions_through` in its metrics); otherwise, and from `workbench models
promote` (a version trained elsewhere, whose own data is unknown), it is the test split alone,
and the comparison's `cross_fit` entry says why.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from models.training import TrainingSet, replicate_by_weight

from .scoring import aligned_proba

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.training_data import LearningData
    from models.config import ModelsConfig


@dataclass
class CrossFit:
    """The unseen train-side human labels (`idx` into the `LearningData`) with the challenger's
    out-of-fold probabilities and predictions (taxonomy order); `note` says what was done or why
    not."""

    idx: np.ndarray
    proba: np.ndarray
    pred: np.ndarray
    folds: int = 0
    note: str = ""
    fits: list[int] = field(default_factory=list)   # training rows of each fold model

    def summary(self) -> dict[str, Any]:
        return {"items": int(len(self.idx)), "folds": self.folds, "fold_training_rows": self.fits, "note": self.note}

    def extend(self, ld: "LearningData", data: TrainingSet, groups: list[str], proba: np.ndarray,
               pred: np.ndarray) -> tuple[TrainingSet, list[str], np.ndarray, np.ndarray]:
        """The test split's (examples, groups, challenger probabilities, predictions) with these
        items appended: the `pooled` set."""
        if not len(self.idx):
            return data, groups, proba, pred
        extra = ld.data.subset(self.idx)
        joined = TrainingSet(data.ids + extra.ids, data.texts + extra.texts, data.labels + extra.labels,
                             (data.origin + extra.origin) if data.origin and extra.origin else [])
        return (joined, groups + [ld.groups[int(i)] for i in self.idx],
                np.vstack([proba.reshape(-1, self.proba.shape[1]), self.proba]), np.concatenate([pred, self.pred]))


def _none(n_labels: int, note: str) -> CrossFit:
    return CrossFit(np.zeros(0, dtype=int), np.zeros((0, n_labels)), np.zeros(0, dtype=int), 0, note)


def fold_of(group: str, folds: int) -> int:
    """A group's fold: a stable hash of its key, so one campaign or template is in one fold."""
    return int(hashlib.blake2b(f"cross-fit:{group}".encode(), digest_size=8).hexdigest(), 16) % folds


def unseen_by(champ: Optional[dict[str, Any]], ld: "LearningData") -> tuple[np.ndarray, Optional[str]]:
    """(indices of the train-side human labels `champ` never learnt from, or why there are none
    to add). A `decisions_through` that is not a whole decision id (a hand-edited registry row:
    "abc", NaN, true) adds none: it raised ValueError after the challenger was trained, or (true)
    read as decision 1 and held out nearly every human label as unseen."""
    metrics = (champ or {}).get("metrics") or {}
    through = metrics.get("decisions_through")
    if champ is None:
        return np.zeros(0, dtype=int), "no champion"
    if not metrics.get("train_side_only") or through is None:
        return np.zeros(0, dtype=int), (f"{champ['id']}'s training data is not recorded (trained elsewhere or "
                                        f"before the record existed): the test split alone")
    if isinstance(through, bool) or not isinstance(through, int):  # the registry writes an int; a hand edit may not
        return np.zeros(0, dtype=int), (f"{champ['id']}'s recorded decisions_through {str(through)[:40]!r} is not a "
                                        f"decision id: the test split alone")
    idx = ld.unseen_after(through)
    return idx, None if len(idx) else "no train-side human label is newer than the champion's data"


def cross_fit(store: "Store", taxonomy: "Taxonomy", ld: "LearningData", champ: Optional[dict[str, Any]], *,
              kind: str, params: dict[str, Any], config: "ModelsConfig", seed: int, show_progress: bool = False,
              echo: Callable[..., None] = lambda *a, **k: None) -> CrossFit:
    """The challenger's out-of-fold scores on the train-side human labels `champ` never learnt
    from (see the module doc): `config.promotion.cross_fit_folds` fits of `kind` with `params`."""
    from models.kinds import make_classifier
    from models.registry import embeddings_for

    labels: Sequence[str] = list(taxonomy.labels)
    idx, why = unseen_by(champ, ld)
    if why is not None:
        return _none(len(labels), why)
    folds = config.promotion.cross_fit_folds
    fold = np.array([fold_of(ld.groups[int(i)], folds) for i in idx])
    train = np.flatnonzero(ld.split == "train")
    proba, pred = np.zeros((len(idx), len(labels))), np.full(len(idx), -1, dtype=int)
    fits = []
    echo(f"  cross-fitting the challenger on {len(idx)} human labels the champion never saw ({folds} folds)")
    for f in range(folds):
        hold = idx[fold == f]
        if not len(hold):
            continue
        held_groups = {ld.groups[int(i)] for i in hold}
        keep = np.array([i for i in train if ld.groups[int(i)] not in held_groups], dtype=int)
        fit_on = replicate_by_weight(ld.data.subset(keep), ld.weights[keep], seed)
        model = make_classifier(kind, labels, **{k: v for k, v in params.items() if k != "checkpoint_dir"})
        held = ld.data.subset(hold)
        emb = embeddings_for(store, model, list(fit_on.texts) + list(held.texts), show_progress=show_progress,
                             config=config)
        model.fit(fit_on.texts, fit_on.labels, embeddings=None if emb is None else emb[:len(fit_on)],
                  show_progress=show_progress, targets=fit_on.targets(model.labels))
        p, k = aligned_proba(model, model.predict_proba(list(held.texts), None if emb is None else emb[len(fit_on):]),
                             labels)
        proba[fold == f], pred[fold == f] = p, k
        fits.append(len(fit_on))
    return CrossFit(idx, proba, pred, folds, f"{len(idx)} train-side human labels newer than the champion's data, "
                                             f"scored out of fold by {len(fits)} fold models", fits)


def pooled_note(sets: Sequence[str], cf: Optional[CrossFit]) -> Optional[dict[str, Any]]:
    """What the report says of the `pooled` set (None when the gate does not use it)."""
    if "pooled" not in sets:
        return None
    return cf.summary() if cf is not None else {"items": 0, "folds": 0, "fold_training_rows": [],
                                                "note": "no retrain's own data (a version promoted by hand): "
                                                        "the test split alone"}
