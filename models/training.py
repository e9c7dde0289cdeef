"""Training data from the store, seeded stratified splits and the data fingerprint.

`training_examples` is the seam between what the store knows and what a model learns from: today
an item's label is its source label mapped through the taxonomy (`items.policy_label`), and where
a human has decided on the item, the newest decision's label takes precedence. Where the source
recorded its annotators' votes (taxonomy `votes`), the vote shares travel beside the label as
soft targets (`TrainingSet.targets`), for kinds with `soft_labels: true`. The models the
workbench trains from the store (`models train`, `retrain`, the demo) take their examples from
`labeling.training_data.learning_data`, which adds the campaign-grouped stored sides and the
human-label weights on top of the same label-of-record rule (`core.labels`).

Below them, the held-out rows a kind carves out of its own training data (calibration folds, a
blend slice) keep every copy of a text on one side (`grouped_folds`, `grouped_holdout`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Sized

import numpy as np

from core.labels import current_decisions
from core.schema import Item
from core.text import text_hash

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy


UNREADABLE_VOTES = "unreadable vote counts (trained on the label alone)"


@dataclass
class TrainingSet:
    """Parallel lists of item ids, texts and policy labels, sorted by id; `origin` says where
    each label came from ('source' or 'decision'); `shares` holds the annotators' vote share per
    policy label where the source recorded votes (None elsewhere, and where a human decided)."""

    ids: list[str]
    texts: list[str]
    labels: list[str]
    origin: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    shares: list[Optional[dict[str, float]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> "TrainingSet":
        idx = [int(i) for i in index]
        return TrainingSet([self.ids[i] for i in idx], [self.texts[i] for i in idx],
                           [self.labels[i] for i in idx], [self.origin[i] for i in idx] if self.origin else [],
                           shares=[self.shares[i] for i in idx] if self.shares else [])

    def targets(self, labels: Sequence[str]) -> Optional[np.ndarray]:
        """(n, len(labels)) soft targets (see `target_matrix`), or None when no item has votes."""
        if not any(self.shares):
            return None
        return target_matrix(self.shares, self.labels, labels)

    def label_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return dict(sorted(out.items()))

    def fingerprint(self) -> str:
        """SHA-256 over (id, label, text hash, vote shares) of every example: same data, same fingerprint."""
        return data_fingerprint(self.ids, self.texts, self.labels, self.shares or None)


def target_matrix(shares: Sequence[Optional[dict[str, float]]], y: Sequence[str],
                  labels: Sequence[str]) -> np.ndarray:
    """(n, len(labels)) rows summing to 1: an item's vote shares where it has them, else the
    one-hot of its label `y`; shares for labels outside `labels` are dropped and the row renormalised."""
    _same_length(shares=shares, labels=y)
    col = {lab: j for j, lab in enumerate(labels)}
    out = np.zeros((len(y), len(labels)))
    for i, (share, lab) in enumerate(zip(shares, y)):
        if share:
            for k, v in share.items():
                if k in col:
                    out[i, col[k]] += float(v)
        total = out[i].sum()
        if total > 0:
            out[i] /= total
        elif lab in col:
            out[i, col[lab]] = 1.0
        else:
            raise ValueError(f"row {i}: label {lab!r} is not among the labels {list(labels)}")
    return out


def data_fingerprint(ids: Sequence[str], texts: Sequence[str], labels: Sequence[str],
                     shares: Optional[Sequence[Optional[dict[str, float]]]] = None) -> str:
    """Hex SHA-256 identifying a labelled data set independent of its order (an item's vote
    shares count where it has them, so data without votes keeps its old fingerprint)."""

    shares = shares or [None] * len(ids)
    _same_length(ids=ids, texts=texts, labels=labels, shares=shares)
    rows = sorted(f"{i}\x1f{lab}\x1f{text_hash(t)}"
                  + (f"\x1f{sorted((k, round(v, 6)) for k, v in s.items())}" if s else "")
                  for i, t, lab, s in zip(ids, texts, labels, shares))
    h = hashlib.sha256()
    for r in rows:
        h.update(r.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def training_examples(store: "Store", taxonomy: "Taxonomy", sources: Optional[Iterable[str]] = None,
                      prefer_decisions: bool = True, min_examples_per_label: int = 1) -> TrainingSet:
    """(texts, labels) for training: every item with a policy label known to the taxonomy.

    An item's current human label (`labeling.labels`: latest decision nothing supersedes)
    overrides its source label when `prefer_decisions`.
    Labels with fewer than `min_examples_per_label` examples are dropped (counted in `dropped`).
    """
    from sqlalchemy import select

    known = set(taxonomy.labels)
    it = Item.__table__
    q = select(it.c.id, it.c.text, it.c.policy_label, it.c.source, it.c["metadata"]).order_by(it.c.id)
    src = sorted(set(sources)) if sources else None
    if src:
        q = q.where(it.c.source.in_(src))
    decided: dict[str, str] = {}
    with store.read() as conn:
        rows = conn.execute(q).all()
        if prefer_decisions:
            # The label store's rule: the latest decision nothing supersedes (calibration excluded).
            decided = {item_id: d["label"] for item_id, d in current_decisions(conn).items()}
    ids, texts, labels, origin, shares = [], [], [], [], []
    dropped: dict[str, int] = {}
    for item_id, text, policy_label, source, meta in rows:
        label, how = (decided[item_id], "decision") if item_id in decided else (policy_label, "source")
        if label is None:
            continue
        if label not in known:
            dropped[f"unknown label {label}"] = dropped.get(f"unknown label {label}", 0) + 1
            continue
        share = None
        if how == "source":
            try:
                share = taxonomy.vote_shares(source, meta, text)
            except ValueError:
                # The majority label still trains; the item is counted so the gap is visible.
                dropped[UNREADABLE_VOTES] = dropped.get(UNREADABLE_VOTES, 0) + 1
        ids.append(item_id)
        texts.append(text)
        labels.append(label)
        origin.append(how)
        shares.append(share)
    data = TrainingSet(ids, texts, labels, origin, dropped, shares)
    counts = data.label_counts()
    rare = {lab for lab, c in counts.items() if c < min_examples_per_label}
    if rare:
        keep = [i for i, lab in enumerate(labels) if lab not in rare]
        data = data.subset(keep)
        data.dropped = {**dropped, **{f"too few examples of {lab}": counts[lab] for lab in sorted(rare)}}
    return data


def stratified_split(ids: Sequence[str], labels: Sequence[str], fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) index arrays: within each label, the `fraction` of items whose seeded
    hash of their id is smallest are held out.

    Depending only on (seed, id), an item keeps its side when other items are added, so a
    retrained challenger is validated on the same items as its parent where they overlap.
    Labels with fewer than 2 items stay wholly in training. Rows sharing an id (a human label
    repeated by its weight, `replicate_by_weight`) are one item, on one side: split by row, the
    copies landed on both and the validation scores were in-sample for exactly those labels.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    _same_length(ids=ids, labels=labels)
    first: dict[str, int] = {}
    for i, item in enumerate(ids):
        first.setdefault(item, i)
    if len(first) < len(ids):  # each id under its first row's label, every row following its id
        distinct = list(first)
        _, hold_first = stratified_split(distinct, [labels[i] for i in first.values()], fraction, seed)
        held = {distinct[j] for j in hold_first}
        mask = np.fromiter((item in held for item in ids), dtype=bool, count=len(ids))
        return np.flatnonzero(~mask), np.flatnonzero(mask)
    keys = np.array([int(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest(), 16) for i in ids],
                    dtype=np.uint64)
    labels_arr = np.asarray(labels, dtype=object)
    train, hold = [], []
    for lab in sorted(set(labels)):
        members = np.flatnonzero(labels_arr == lab)
        members = members[np.argsort(keys[members], kind="stable")]
        k = int(round(len(members) * fraction)) if len(members) >= 2 else 0
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1) if len(members) >= 2 else 0
        hold.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)).astype(int), np.sort(np.concatenate(hold)).astype(int)


def _same_length(**columns: Sized) -> None:
    """ValueError naming the columns when parallel columns differ in length: zip and fancy
    indexing would otherwise drop the surplus rows silently (from both sides of a split, from a
    fingerprint)."""
    sizes = {name: len(col) for name, col in columns.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("parallel columns differ in length: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


# -- a model's own held-out rows: every copy of a text on one side ------------------------------
def _text_codes(texts: Sequence[str]) -> np.ndarray:
    """An integer per row, shared by the rows with the same text as the workbench counts copies:
    the same `text_hash` (case, spacing and invisible characters aside), the key the scoring
    memo and the embedding cache give one score and one vector, so such twins are one text to
    the models too and must not sit on both sides of a split."""
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(text_hash(t), len(codes)) for t in texts], dtype=int)


def grouped_fold_count(texts: Sequence[str], y: Sequence[int], wanted: int) -> int:
    """How many folds `grouped_folds` can make with every present label in every fold: `wanted`,
    at most the fewest distinct texts (`_text_codes`) of any label (under 2: no folds)."""
    _same_length(texts=texts, labels=y)
    distinct: dict[int, set[int]] = {}
    for t, lab in zip(_text_codes(texts), y):
        distinct.setdefault(int(lab), set()).add(int(t))
    return min([wanted, *(len(v) for v in distinct.values())]) if distinct else 0


def grouped_folds(texts: Sequence[str], y: Sequence[int], n_folds: int,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) index pairs of stratified K folds in which every copy of a text sits in
    one fold (sklearn's StratifiedGroupKFold). Why: a human label is repeated by its weight
    (`replicate_by_weight`) and sources hold exact duplicates; split by row, a held-out copy
    has its twins in the fitting rows, and the out-of-fold predictions that calibration and
    decision weights learn from are in-sample for exactly the human labels."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    pairs = splitter.split(np.zeros(len(y)), np.asarray(y), _text_codes(texts))
    return [(np.asarray(a), np.asarray(b)) for a, b in pairs]


def grouped_holdout(texts: Sequence[str], labels: Sequence[str], fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`stratified_split` of the distinct texts (each under its first row's label, keyed by its
    hash), every row following its text: (fit, held-out) row indices with no text on both sides
    (texts as `_text_codes` counts them; see `grouped_folds` for why)."""
    _same_length(texts=texts, labels=labels)
    codes = _text_codes(texts)
    first: dict[int, int] = {}
    for i, c in enumerate(codes):
        first.setdefault(int(c), i)
    reps = np.fromiter(first.values(), dtype=int, count=len(first))
    _, hold_rep = stratified_split([text_hash(texts[i]) for i in reps], [labels[i] for i in reps], fraction, seed)
    mask = np.isin(codes, codes[reps[hold_rep]])
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def replicate_by_weight(data: TrainingSet, weights: Sequence[float], seed: int) -> TrainingSet:
    """`data` with example i repeated about `weights[i]` times: floor(w) copies plus one more with
    probability frac(w), decided by a seeded hash of (seed, id), so the same data and weights give
    the same set on every run. Why copies: every kind's `fit` then honours the weight the same
    way (the linear heads, the transformer, the ensemble), without a sample-weight argument in
    each. A weight below 1 keeps the example with probability w. Order follows `data`."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(data),):
        raise ValueError(f"need one weight per example ({len(data)}), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    frac = np.array([int(hashlib.blake2b(f"{seed}:w:{i}".encode(), digest_size=8).hexdigest(), 16) / 2.0 ** 64
                     for i in data.ids])
    counts = np.floor(w).astype(int) + (frac < (w - np.floor(w))).astype(int)
    return data.subset(np.repeat(np.arange(len(data)), counts))
