"""Label quality: confident learning over the decided items puts likely label errors in front of a lead.

Analysts make mistakes, and a wrong decision flows straight into training. Here every current
human decision (the label of record, `core.labels`) is checked against out-of-fold probabilities
of a model trained on the other decisions (logistic regression on the cached MiniLM embeddings
beside word n-gram TF-IDF, `label_features`; folds grouped as training groups its split, by campaign
and template-normalised text, so the variants of a wave never sit on both sides). cleanlab's confident learning
(Northcutt et al. 2021) flags the items whose given label the model finds implausible; flagged
items and those of label quality (self-confidence) under `min_label_quality` are ranked by that
quality, and the top `label_errors.max_cases` become cases in the lead's re-review queue (`label_errors.queue` of
`configs/queues.yaml`) with the reason shown: given label, the model's label and its confidence. On small
data two limits keep the queue to evidence (`fold_support`, `queue_cap`): a label with too few decisions
in a training fold is not judged, and one scan queues at most a tenth of the decisions; the summary's
note says what was skipped or left for a later scan.

A lead resolves such a case by deciding it (`labeling.decisions.decide`, or
`resolve_label_error`): a different label becomes a correction (a new decision superseding the
old one); the same label confirms the decision; `qa_review` is needed, and the analyst whose
decision is under review may not resolve it (separation of duties). `tally_label_errors` counts, per
analyst, the decisions queued and how the lead resolved them (`label_error_counts` for the CLI, and
the analyst table of the evaluation report).
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import func, insert, select, update

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions
from core.principals import Actor, actor_name
from core.schema import Case, Decision, Item, utcnow
from core.store import Store, serialise
from core.taxonomy import Taxonomy

from .appeal_holds import waiting_appeals
from .cases import unchanged
from .decisions import decide
from .errors import DecisionError, QueueError
from .queue_config import QueueConfig

if TYPE_CHECKING:  # pragma: no cover
    from models.embeddings import Embedder

C = Case.__table__
D = Decision.__table__
I = Item.__table__


# -- pure functions ---------------------------------------------------------------------------
# Small data (a demo run of a few hundred decisions): a scan queued every decision of its rare labels
# and a quarter or more of the rest, the lead's queue flooded and the per-analyst counts noise.
MIN_LABEL_DECISIONS = 5   # `label_errors.min_label_decisions`: see `fold_support`
MAX_QUEUED_SHARE = 0.10   # `label_errors.max_queued_share`: see `queue_cap`
MIN_QUEUED_CAP = 10       # the cap never falls below this many cases (a small fixture's slips still fit)


def _fold_splits(y: np.ndarray, groups: Optional[Sequence[Any]], n_labels: int, folds: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) row indices of the out-of-fold model: stratified by label, grouped, at
    most `folds`, as many as the largest label and the groups allow. One place, so `fold_support`
    counts the very sides `out_of_fold_probs` trains on."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(y)
    g = np.asarray(groups if groups is not None else np.arange(n))
    counts = np.bincount(y, minlength=n_labels)
    if len(np.unique(g)) < 2:  # every row in one group (one text): no fold can hold a row out
        raise ValueError("out-of-fold probabilities need rows of at least 2 groups (distinct texts)")
    k = int(max(2, min(folds, counts[counts > 0].max() if counts.any() else 2, len(np.unique(g)))))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((n, 1)), y, g))


def out_of_fold_probs(X: Any, y: np.ndarray, n_labels: int, folds: int = 5,
                      groups: Optional[Sequence[Any]] = None, seed: int = 0, C_reg: float = 4.0) -> np.ndarray:
    """(n, n_labels) probabilities of each row from a logistic regression fitted without its fold.

    Folds are stratified by label and grouped (rows of one group, e.g. one text, stay together);
    a label absent from a fold's training side gets probability 0 there, before a small floor
    and renormalisation (cleanlab needs every row to sum to 1)."""
    from sklearn.linear_model import LogisticRegression

    import scipy.sparse as sp

    X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=int)
    out = np.zeros((len(y), n_labels))
    for tr, te in _fold_splits(y, groups, n_labels, folds, seed):
        present = np.unique(y[tr])
        if present.size == 1:
            out[np.ix_(te, present)] = 1.0
            continue
        clf = LogisticRegression(C=C_reg, max_iter=2000, class_weight="balanced")
        clf.fit(X[tr], y[tr])
        out[np.ix_(te, clf.classes_)] = clf.predict_proba(X[te])
    out = np.clip(out, 1e-6, None)
    return out / out.sum(axis=1, keepdims=True)


def fold_support(y: np.ndarray, n_labels: int, folds: int = 5, groups: Optional[Sequence[Any]] = None,
                 seed: int = 0) -> np.ndarray:
    """Per label, the fewest of its rows on the training side of any fold of `out_of_fold_probs`
    (same arguments, same folds): what the model saw of it before judging its held-out rows.

    Why a scan skips a label with fewer than `MIN_LABEL_DECISIONS` there: a model that saw a label
    a handful of times gives it a low probability everywhere, so its every decision looks wrong.
    Measured on the cached MiniLM vectors of the shared SMS and Davidson data (220 common decisions
    beside two rare labels, 3% flipped, 6 draws each), the correct decisions of a rare, separable
    label (scam) that were queued: 93% with about 2 training rows, 83% with 4, 53-54% with 6 to 10,
    35% with 13, 19-24% from 20 on (the common labels: 21-33%). Below 5 the scan only says the label
    is rare. On the demo (`--limit` 60 to 300, the same vectors) 5 kept 13 of 14 slips at 200 rows,
    where 10 skipped hate (11 decisions) and its slips, 6 of 14 found."""
    y = np.asarray(y, dtype=int)
    splits = _fold_splits(y, groups, n_labels, folds, seed)
    return np.array([min(int((y[tr] == c).sum()) for tr, _ in splits) for c in range(n_labels)])


def queue_cap(decided: int, share: float = MAX_QUEUED_SHARE, floor: int = MIN_QUEUED_CAP) -> int:
    """The most new cases one scan may queue: `share` of the decisions scanned, at least `floor`.

    Why: analysts' slips are a few percent of their decisions (the demo team's 3%, the
    benchmark's 5%), so a scan that would queue more says more about its model than about them;
    its best-ranked candidates go first and the rest wait for the next scan, when the lead has
    corrected some and the model learnt from them. At the benchmark's sizes (5,574 and 24,783
    decisions: a cap of 558 and 2,479) it does not bind below `max_cases` 500."""
    return max(int(floor), int(np.ceil(share * decided)))


def label_features(texts: Sequence[str], emb: np.ndarray) -> Any:
    """The features the out-of-fold model sees: the MiniLM embedding beside word 1-2-gram TF-IDF
    (sublinear, min_df 2, at most 50k terms), as one sparse matrix.

    Why both: on seed 1 of benchmarks/label_errors.py (not a reported seed) the embedding alone
    found 53% (Davidson) and 79% (SMS) of the flipped labels in the top 500, with the n-grams 71%
    and 98%: slurs and short codes are lexical, and the embedding blurs them."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(texts)
    try:
        tf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000).fit_transform(texts)
    except ValueError:  # too few texts for min_df: the embedding alone
        return np.asarray(emb, dtype=np.float32)
    return sp.hstack([sp.csr_matrix(np.asarray(emb, dtype=np.float32)), tf]).tocsr()


def rank_label_errors(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, flagged, quality): row indices most-likely-wrong first, cleanlab's confident-learning
    flag per row (confident joint, prune by noise rate) and its label quality (self-confidence,
    cleanlab's default: the out-of-fold probability of the given label; 0 = surely wrong).

    Ordered by quality alone: on seed 13 of benchmarks/label_errors.py, putting flagged rows first
    and ranking by normalised margin found fewer flipped labels in the top 500 than this (SMS 0.69
    vs 0.73, Davidson 0.49 vs 0.56), so the flag only decides what is queued."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, pred_probs = _checked_probs(labels, pred_probs)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    try:
        # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork from a threaded
        # process (`serve`, two scans at once) can inherit a held lock and hang forever.
        flagged = np.asarray(find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate", n_jobs=1),
                             dtype=bool)
    except (ValueError, IndexError):  # too few rows or labels for the confident joint
        flagged = quality < 0.5
    order = np.argsort(quality, kind="stable")
    return order, flagged, quality


def _checked_probs(labels: Any, pred_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """`labels` and `pred_probs` as arrays, or a ValueError naming the first bad row. Why: a NaN
    row went through cleanlab unnoticed, its quality NaN (never queued) and the confident joint's
    per-label thresholds NaN, so not one decision of that label was flagged any more."""
    labels = np.asarray(labels, dtype=int)
    pred_probs = np.asarray(pred_probs, dtype=float)
    if pred_probs.ndim != 2 or labels.shape != (pred_probs.shape[0],):
        raise ValueError(f"pred_probs of shape {pred_probs.shape} do not match {labels.shape[0]} labels")
    bad = ~np.isfinite(pred_probs).all(axis=1)
    bad |= ((pred_probs < 0) | (pred_probs > 1)).any(axis=1) | (np.abs(pred_probs.sum(axis=1) - 1.0) > 1e-3)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"pred_probs row {row} is not a probability distribution ({pred_probs[row].tolist()}); "
                         f"{int(bad.sum())} such row(s)")
    if labels.size and (labels.min() < 0 or labels.max() >= pred_probs.shape[1]):
        row = int(np.flatnonzero((labels < 0) | (labels >= pred_probs.shape[1]))[0])
        raise ValueError(f"label {int(labels[row])} of row {row} is not a column of pred_probs "
                         f"({pred_probs.shape[1]} labels)")
    return labels, pred_probs


def default_ranking(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """cleanlab's own default ranking (self-confidence label quality, lowest first): the reference."""
    from cleanlab.rank import get_label_quality_scores

    q = get_label_quality_scores(np.asarray(labels, dtype=int), np.asarray(pred_probs, dtype=float))
    return np.argsort(q, kind="stable")


# -- the service ------------------------------------------------------------------------------
def _queue(config: QueueConfig) -> str:
    q = config.label_errors.queue
    if q is None:
        raise QueueError("no label_errors.queue in queues.yaml: name the lead's re-review queue there")
    return q


def find_label_errors(store: Store, taxonomy: Taxonomy, config: QueueConfig, actor: Actor, embedder: "Embedder",
                      now: Optional[dt.datetime] = None, max_cases: Optional[int] = None, seed: int = 0,
                      progress: bool = False) -> dict[str, Any]:
    """Rank the decided items by how likely their label is wrong and queue the top ones.

    Needs `build_cases`. A decision already queued for re-review (in any state), or an item with
    a re-review still pending (`_pending_items`), is not queued again; nor is an item whose appeal
    waits (`under_appeal`: the appeal settles its label, `labeling.appeal_holds`) or whose label of
    record is an appeal's outcome (`appeal_outcome`: it stands), and a decision no longer of record
    when the cases are written (`changed_since_scan`). Returns counts, the queued
    cases (item, decision, given / model label, confidence, quality) and per-analyst counts;
    `skipped_labels` (labels not judged, `fold_support`), `cap` and `capped` (`queue_cap`) and a
    `note` saying why."""
    check_permission(actor, "build_cases", "label errors")
    queue = _queue(config)
    limit = config.label_errors.max_cases if max_cases is None else int(max_cases)
    if limit < 0:
        raise QueueError(f"max_cases must be 0 (rank and count only) or more, not {limit}")
    now = now or utcnow()
    from models.embeddings import EmbeddingCache, embed_texts

    closed = 0
    if limit:  # 0 ranks and counts only: nothing is written
        with store.begin() as conn:
            serialise(conn, "label-errors")
            closed = _close_superseded(conn, queue, actor, now)
    with store.read() as conn:
        dec = current_decisions(conn)
        ids = sorted(dec)
        texts: dict[str, Any] = {}
        for i in range(0, len(ids), 900):
            for r in conn.execute(select(I.c.id, I.c.text, I.c.text_hash).where(I.c.id.in_(ids[i:i + 900]))):
                texts[r.id] = r
        queued = _queued_decisions(conn, queue)
        pending = _pending_items(conn, queue, config)
        appealed = set(waiting_appeals(conn, config))
        looked = _second_looks(conn, dec)
        from .training_data import group_keys

        group_of = group_keys(conn, {i: r.text for i, r in texts.items()})
    rows, groups, waves = _scanned(ids, texts, dec, taxonomy, group_of)
    labels_used = sorted({dec[i]["label"] for i in rows}, key=taxonomy.labels.index)
    summary: dict[str, Any] = {"decided": len(rows), "labels": labels_used, "flagged": 0, "queued": 0,
                               "already_queued": 0, "under_appeal": 0, "appeal_outcome": 0, "changed_since_scan": 0,
                               "corrected": 0, "capped": 0,
                               "skipped_labels": {}, "closed_superseded": closed, "cases": []}
    if len(rows) < 10 or len(labels_used) < 2 or len(set(groups)) < 2:
        summary["note"] = "too few decided items (or only one label, or one distinct text) to learn from"
        summary["by_analyst"] = _per_analyst([dec[i] for i in rows], np.zeros(len(rows), bool))
        return summary
    col = {lab: j for j, lab in enumerate(labels_used)}
    y = np.array([col[dec[i]["label"]] for i in rows])
    X = embed_texts([texts[i].text for i in rows], embedder, EmbeddingCache(store, embedder.model_id),
                    hashes=[texts[i].text_hash for i in rows], show_progress=progress)
    X = label_features([texts[i].text for i in rows], X)
    probs = out_of_fold_probs(X, y, len(labels_used), config.label_errors.folds,
                              groups=groups, seed=seed)
    order, flagged, quality = rank_label_errors(y, probs)
    settings = config.label_errors
    # Not yet fields of LabelErrorSettings everywhere: the module's defaults until queues.yaml names them.
    min_decisions = int(settings.min_label_decisions)
    support = fold_support(y, len(labels_used), settings.folds, groups=groups, seed=seed)
    judged = support[y] >= min_decisions  # a label the model saw too rarely is not judged (`fold_support`)
    flagged &= judged
    candidate = judged & (flagged | (quality < settings.min_label_quality))
    cap = queue_cap(len(rows), float(settings.max_queued_share))
    summary["flagged"] = int(flagged.sum())
    summary["candidates"] = int(candidate.sum())
    summary["cap"] = cap
    summary["skipped_labels"] = {lab: {"decisions": int((y == c).sum()), "fewest_in_training": int(support[c])}
                                 for lab, c in col.items() if (y == c).any() and support[c] < min_decisions}
    summary["by_analyst"] = _per_analyst([dec[i] for i in rows], flagged)
    # An item whose label of record is an appeal's outcome (a decision of kind "appeal"): the outcome
    # stands (`labeling.appeal_holds`), so a lead's correction may not replace it. Still learnt from.
    settled = {i for i in rows if dec[i].get("kind") == "appeal"}
    new_rows, ranked = [], order.tolist()
    for pos, j in enumerate(ranked):
        if len(new_rows) >= min(limit, cap):
            if cap < limit:  # the cap, not max_cases, stopped it: say how many wait for a later scan
                summary["capped"] = sum(1 for k in ranked[pos:] if candidate[k] and dec[rows[k]]["id"] not in queued
                                        and rows[k] not in pending and rows[k] not in appealed
                                        and rows[k] not in settled and rows[k] not in looked)
            break
        if not candidate[j]:
            continue
        d = dec[rows[j]]
        if rows[j] in appealed:  # a re-review's correction would replace the decision under appeal
            summary["under_appeal"] += 1
            continue
        if rows[j] in settled:  # ... or the appeal's outcome
            summary["appeal_outcome"] += 1
            continue
        if rows[j] in looked:  # a correction or a blind re-review's answer: a second look settled it
            summary["corrected"] += 1
            continue
        if d["id"] in queued or rows[j] in pending:
            summary["already_queued"] = summary.get("already_queued", 0) + 1
            continue
        m, alt = _model_labels(probs[j], int(y[j]))
        info = {"decision_id": int(d["id"]), "given_label": d["label"], "model_label": labels_used[m],
                "confidence": round(float(probs[j, m]), 4), "given_prob": round(float(probs[j, y[j]]), 4),
                "quality": round(float(quality[j]), 4), "flagged": bool(flagged[j]), "reviewer": d["reviewer"],
                "found_at": now.isoformat(), "alternative": labels_used[alt],
                "alternative_confidence": round(float(probs[j, alt]), 4)}
        says = (f"model says {labels_used[m]} ({info['confidence']:.2f})" if m != y[j] else
                f"model leans to {labels_used[m]} only ({info['confidence']:.2f}), next {labels_used[alt]} "
                f"({info['alternative_confidence']:.2f})")
        why = (f"label error? given {d['label']} by {d['reviewer']}, {says}; label quality {info['quality']:.2f}"
               + ("" if flagged[j] else " (not flagged by confident learning)")
               + (f"; a campaign decision of {waves[rows[j]]} items: correct the campaign" if rows[j] in waves else ""))
        new_rows.append({"item_id": rows[j], "campaign_id": None, "queue": queue, "state": config.waiting_state(queue),
                         "priority": round(1.0 - float(quality[j]), 6),
                         "priority_reason": why, "predicted_label": labels_used[alt], "due_at": None,
                         "is_audit": False, "created_at": now, "updated_at": now,
                         "meta": {"label_error": info, "scores": {lab: round(float(probs[j, c]), 6)
                                                                  for lab, c in col.items()}}})
        summary["cases"].append({"item_id": rows[j], **{k: info[k] for k in (
            "decision_id", "given_label", "model_label", "confidence", "quality", "reviewer", "alternative",
            "alternative_confidence")}})
    if new_rows:
        with store.begin() as conn:
            # Another scan may have queued some of these while this one computed: re-read under
            # the scan's lock, so a decision is queued once however many scans run at a time.
            serialise(conn, "label-errors")
            serialise(conn, "case-builds")  # and under the lock a blind re-review draw queues under
            queued = _queued_decisions(conn, queue)
            pending = _pending_items(conn, queue, config)
            appealed = set(waiting_appeals(conn, config, [r["item_id"] for r in new_rows]))
            summary["under_appeal"] += sum(1 for r in new_rows if r["item_id"] in appealed)
            new_rows = [r for r in new_rows if r["item_id"] not in appealed]
            # The label of record may have changed since the scan read it (an appeal resolved, a
            # correction or an undo): queue only a decision still of record, never an appeal's outcome.
            record = current_decisions(conn, [r["item_id"] for r in new_rows])
            moved = {r["item_id"] for r in new_rows if (record.get(r["item_id"]) or {}).get("id")
                     != r["meta"]["label_error"]["decision_id"]}
            late = sum(1 for i in moved if (record.get(i) or {}).get("kind") == "appeal")
            summary["appeal_outcome"] += late
            summary["changed_since_scan"] += len(moved) - late
            new_rows = [r for r in new_rows if r["item_id"] not in moved]
            fresh = [r for r in new_rows if r["meta"]["label_error"]["decision_id"] not in queued
                     and r["item_id"] not in pending]
            summary["already_queued"] += len(new_rows) - len(fresh)
            new_rows = fresh
            summary["cases"] = [c for c in summary["cases"] if c["decision_id"] not in queued and c["item_id"]
                                not in pending and c["item_id"] not in appealed and c["item_id"] not in moved]
            if new_rows:
                conn.execute(insert(C), new_rows)
                audit.record(conn, actor, "cases.label_errors", "queue", None, {
                    "queue": queue, "queued": len(new_rows), "decided": len(rows), "flagged": summary["flagged"]})
    summary["queued"] = len(new_rows)
    notes = [f"labels not judged, too few decisions for the model to learn them (fewer than {min_decisions} in "
             "a training fold): " + ", ".join(f"{lab} ({v['decisions']} decided)"
                                              for lab, v in summary["skipped_labels"].items())
             ] if summary["skipped_labels"] else []
    if summary["appeal_outcome"]:
        notes.append(f"{summary['appeal_outcome']} item(s) whose label is an appeal's outcome left alone "
                     "(the outcome stands)")
    if summary["capped"]:
        notes.append(f"{summary['capped']} more likely errors left for a later scan: one scan queues at most "
                     f"{cap} ({float(settings.max_queued_share):.0%} of the "
                     f"decisions, at least {MIN_QUEUED_CAP}), best-ranked first")
    if notes:
        summary["note"] = "; ".join(notes)
    return summary


def _scanned(ids: Sequence[str], texts: Mapping[str, Any], dec: Mapping[str, dict[str, Any]],
             taxonomy: Taxonomy, group_of: Optional[Mapping[str, str]] = None
             ) -> tuple[list[str], list[str], dict[str, int]]:
    """(the decided items the scan learns from, their fold groups, kept bulk member -> wave size).

    Fold groups are training's (`training_data.group_keys`, `group_of`: one campaign, or one
    template-normalised text, is one group), else the exact text: grouped by exact text, a wave's
    variants decided one by one sat in each other's training folds and vouched for the label
    an analyst gave them all.

    A campaign (bulk) decision is one judgement: its members count once per distinct template
    (`training_data.one_per_text`, as in training) and share one fold group. Counted per member,
    a wrongly decided wave's template variants sat in each other's training folds and vouched for
    the wrong label. Keyed by campaign and label as training keys them: the follow-up decision of
    the members that joined later (a case of its own) is the same judgement, not a second wave.
    Other decisions are grouped by exact text (copies share a fold)."""
    from .training_data import one_per_text

    usable = [i for i in ids if i in texts and dec[i]["label"] in taxonomy.policies]
    waves: dict[Any, list[tuple[str, str]]] = {}
    for i in usable:
        d = dec[i]
        if d.get("kind") == "bulk":
            who = ("campaign", d["campaign_id"]) if d.get("campaign_id") is not None else ("case", d.get("case_id"))
            waves.setdefault((who, d["label"]), []).append((i, texts[i].text))
    keep = one_per_text(waves)
    wave_of = {i: key for key, members in waves.items() for i, _ in members}
    rows = [i for i in usable if i not in wave_of or i in keep]
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    def key(i: str) -> str:
        return (group_of or {}).get(i) or f"text:{texts[i].text_hash}"

    for members in waves.values():  # a campaign decision is one group, with whatever its members share
        first = root(key(members[0][0]))
        for i, _ in members[1:]:
            if (other := root(key(i))) != first:
                parent[other] = first
    groups = [root(key(i)) for i in rows]
    return rows, groups, {i: len(waves[wave_of[i]]) for i in rows if i in wave_of}


def _model_labels(row: np.ndarray, given: int) -> tuple[int, int]:
    """(the model's most likely label, the most likely label other than the given one), as columns
    of one row of out-of-fold probabilities (ties: the first column). Why both: with three labels or
    more a decision under the label-quality bar may still be the model's first choice, and its reason
    read "given spam, model says spam"; the lead needs the label to weigh against the given one."""
    row = np.asarray(row, dtype=float)
    return int(np.argmax(row)), int(np.argmax(np.where(np.arange(row.size) == given, -np.inf, row)))


def _second_looks(conn: Any, dec: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Items whose decision of record is a second human look: a correction (superseding a non-"undo"
    decision of its own case: `decisions.correct`, a label-review verdict) or a blind re-review's
    answer (a `qa_audit` decision superseding one, `labeling.rereview`). Why: the scan queued such a
    decision as a new label error ("given spam by lena"), asking again what a lead had settled. An
    undo's restoring row (it supersedes the "undo" row) is the first judgement back, scanned."""
    ids = sorted({int(d["supersedes_id"]) for d in dec.values() if d.get("supersedes_id") is not None})
    before: dict[int, Any] = {}
    for k in range(0, len(ids), 900):
        before.update((r.id, r) for r in conn.execute(
            select(D.c.id, D.c.case_id, D.c.kind).where(D.c.id.in_(ids[k:k + 900]))))
    out: set[str] = set()
    for i, d in dec.items():
        prev = before.get(d.get("supersedes_id")) if d.get("supersedes_id") is not None else None
        if prev is None or prev.kind == "undo":
            continue
        if d.get("kind") == "qa_audit" or prev.case_id == d.get("case_id"):
            out.add(i)
    return out


def _info(meta: Any) -> dict[str, Any]:
    """A re-review case's `label_error` record; {} where its meta or the record is no object (a
    hand-edited or corrupt row): read as no record. Why: one such row failed every later scan and
    `label_error_counts` (AttributeError)."""
    info = meta.get("label_error") if isinstance(meta, Mapping) else None
    return dict(info) if isinstance(info, Mapping) else {}


def _decision_ref(value: Any) -> Optional[int]:
    """A decision id stored in a record, as an int; None when absent or no whole number (a corrupt
    record, which named no decision: `int("abc")` failed the scan)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(value) if isinstance(value, (int, str)) else None
    except ValueError:
        return None


def _superseded(conn: Any, decision_ids: Iterable[Any]) -> dict[int, int]:
    """decision id -> the id of a decision superseding it (a correction, an undo, an appeal's
    outcome), for those of `decision_ids` that one supersedes."""
    ids = sorted({i for i in map(_decision_ref, decision_ids) if i is not None})
    out: dict[int, int] = {}
    for i in range(0, len(ids), 900):
        out.update((int(old), int(new)) for old, new in conn.execute(
            select(D.c.supersedes_id, func.min(D.c.id)).where(D.c.supersedes_id.in_(ids[i:i + 900]))
            .group_by(D.c.supersedes_id)))
    return out


def _close_superseded(conn: Any, queue: str, actor: Actor, now: dt.datetime) -> int:
    """Close the waiting re-review cases whose decision was corrected, undone or reversed since it
    was queued, as `superseded` (what deciding such a case does, `labeling.decisions`): left open,
    the lead is served a decision that is no longer the label of record, and the next scan may
    queue the item's newer decision beside it. A case someone holds is theirs to resolve."""
    rows = conn.execute(select(C.c.id, C.c.meta, C.c.updated_at)
                        .where(C.c.queue == queue, C.c.state == "open")).all()
    infos = {r.id: _info(r.meta) for r in rows}
    newer = _superseded(conn, (i.get("decision_id") for i in infos.values()))
    who, closed = actor_name(actor), 0
    for r in rows:
        info = infos[r.id]
        ref = _decision_ref(info.get("decision_id"))
        by = newer.get(ref) if ref is not None else None
        if by is None:
            continue
        meta = dict(r.meta, label_error=dict(info, outcome="superseded", superseded_by=by, resolved_by=who))
        if conn.execute(update(C).where(unchanged(r.id, "open", r.updated_at)).values(
                state="decided", resolved_at=now, claimed_by=who, lease_expires_at=None, meta=meta,
                updated_at=now)).rowcount:
            audit.record(conn, actor, "label_error.resolve", "case", r.id,
                         {"decision": info["decision_id"], "given": info.get("given_label"), "outcome": "superseded",
                          "superseded_by": by, "rationale": "superseded before the re-review (closed by the scan)"})
            closed += 1
    return closed


def _queued_decisions(conn: Any, queue: str) -> set[Any]:
    """The decision ids already queued for re-review in `queue` (any state), and the corrections
    leads made resolving them: a correction is the lead's verdict on the very disagreement the
    scan found (a label or action kept against the model), so queueing it again asks again."""
    out: set[Any] = set()
    for r in conn.execute(select(C.c.meta).where(C.c.queue == queue)):
        info = _info(r.meta)
        out.update(v for v in map(_decision_ref, (info.get("decision_id"), info.get("correction_id")))
                   if v is not None)
    return out


def _pending_items(conn: Any, queue: str, config: QueueConfig) -> set[str]:
    """Items with a re-review still waiting, held or escalated in `queue` (escalated from it
    included), of any kind: a blind QA re-review (`labeling.rereview`) or a label-error case of an
    earlier decision. Why: the scan queued a slip beside its item's blind QA case, two re-reviews
    of one decision, the label-error case showing the lead what the blind one hides."""
    rows = conn.execute(select(C.c.item_id, C.c.queue, C.c.meta).where(
        C.c.queue.in_([queue, config.escalation_queue]), C.c.state.in_(["open", "claimed", "escalated"]),
        C.c.item_id.is_not(None)))
    return {r.item_id for r in rows if r.queue == queue
            or (isinstance(r.meta, Mapping) and r.meta.get("escalated_from") == queue)}


def _per_analyst(decisions: Sequence[dict[str, Any]], flagged: np.ndarray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d, f in zip(decisions, flagged.tolist()):
        row = out.setdefault(d["reviewer"], {"decided": 0, "flagged": 0})
        row["decided"] += 1
        row["flagged"] += int(f)
    for row in out.values():
        row["flagged_rate"] = round(row["flagged"] / row["decided"], 4) if row["decided"] else None
    return dict(sorted(out.items()))


def resolve_label_error(store: Store, taxonomy: Taxonomy, config: QueueConfig, case_id: int, lead: Actor,
                        label: str, rationale: str, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """A lead's verdict on a re-review case: `label` differing from the decision under review
    becomes a correction superseding it; the same label confirms it (no new decision).

    The same as deciding the case through `labeling.decisions.decide` (the Review screen, `workbench
    decide`), which handles the case kind: `qa_review`, a rationale, and never the analyst whose
    decision is under review (separation of duties). This entry point only checks first that the
    case is one."""
    if not rationale or not rationale.strip():
        raise DecisionError("a re-review needs a rationale")
    with store.read() as conn:
        row = conn.execute(select(C.c.queue, C.c.meta).where(C.c.id == case_id)).first()
    if row is None:
        raise QueueError(f"no case {case_id}")
    if row.queue != _queue(config) or not _info(row.meta):  # a corrupt meta is none (no AttributeError)
        raise QueueError(f"case {case_id} is not a label-error re-review case")
    view = decide(store, taxonomy, case_id, lead, label, rationale=rationale, config=config, now=now)
    review = view["label_review"]
    return {k: review[k] for k in ("case_id", "outcome", "decision_id", "correction_id", "label")}


LABEL_ERROR_COUNTS = ("queued", "corrected", "confirmed", "superseded", "pending")


def tally_label_errors(infos: Iterable[Optional[Mapping[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per analyst, from the `label_error` meta of re-review cases: queued, confirmed errors
    (corrected), confirmed correct, superseded before the re-review (no verdict), still pending.
    Pure, so the CLI and the evaluation report count alike."""
    out: dict[str, dict[str, int]] = {}
    for info in infos:
        if not isinstance(info, Mapping) or not info:  # a corrupt record is no count
            continue
        row = out.setdefault(str(info.get("reviewer") or "?"), dict.fromkeys(LABEL_ERROR_COUNTS, 0))
        row["queued"] += 1
        row[info["outcome"] if info.get("outcome") in ("corrected", "confirmed", "superseded") else "pending"] += 1
    return dict(sorted(out.items()))


def label_error_counts(store: Store, config: QueueConfig) -> dict[str, dict[str, int]]:
    """`tally_label_errors` over the cases of the configured re-review queue."""
    queue = _queue(config)
    with store.read() as conn:
        infos = [r.meta.get("label_error") if isinstance(r.meta, Mapping) else None
                 for r in conn.execute(select(C.c.meta).where(C.c.queue == queue))]
        # A case still waiting whose decision was superseded since (corrected, undone, reversed) will
        # close as superseded, with no verdict: counted so now, not as pending.
        open_ = [i if isinstance(i, Mapping) and not i.get("outcome") else None for i in infos]
        newer = _superseded(conn, (i.get("decision_id") for i in open_ if i))
    return tally_label_errors(dict(i, outcome="superseded") if o and _decision_ref(o.get("decision_id")) in newer
                              else i for i, o in zip(infos, open_))
