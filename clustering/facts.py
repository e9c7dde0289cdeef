"""Campaign facts as pure functions over plain arrays (cleanlab style): terms, exemplar, growth.

No store access here: `clustering.service` gathers the arrays and calls these, tests call them
directly with hand-made inputs.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from core.text import normalize_light

from .normalize import normalize_template

_TOKEN = re.compile(r"<[a-z]+>|[a-z][a-z']+")


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # SMS / tweet filler the English list misses; its "call", "bill", "fire", "find" carry meaning here.
    return (frozenset(ENGLISH_STOP_WORDS) - {"call", "bill", "fire", "find"}) | {
        "u", "ur", "im", "dont", "rt", "amp", "just", "got", "ll", "ve"}


def terms_of(template: str, stop_words: frozenset[str] | None = None) -> list[str]:
    """Content words of a template-normalised text (placeholder tokens and stop words dropped)."""
    stop = stop_words if stop_words is not None else _stop_words()
    return [t.strip("'") for t in _TOKEN.findall(template)
            if not t.startswith("<") and t.strip("'") not in stop and len(t.strip("'")) > 1]


def text_terms(text: str) -> frozenset[str]:
    """The content words a campaign's top terms may have come from in `text` (`terms_of` of its
    template). Plain ASCII is read in its light form (`core.text.normalize_light`): the template
    only swaps entities, money and numbers for tokens, so that holds the template's words and
    maybe more (more is safe: a text said to carry a term only adds its evidence to that term's)
    at a tenth of `normalize_template`'s cost; any other text goes through the template, which
    folds look-alike letters ("vеrmin" with a Cyrillic е is the term "vermin"), drops marks and
    reads a right-to-left override as shown. Whether the text is plain is read on the text as
    written: its light form drops the override, and "\u202emialc" was the term "mialc"."""
    text = text or ""
    # stop words kept: no top term is one, and their list costs scikit-learn's import
    return frozenset(terms_of(normalize_light(text) if text.isascii() else normalize_template(text), frozenset()))


def term_carriers(terms: Sequence[str], text_words: Sequence[frozenset[str] | None]) -> list[list[int]]:
    """Per term of `terms`, the rows of `text_words` (each text's `text_terms`; None for a text
    whose words are not known, e.g. one too long to read) that carry it. A row of unknown words
    carries every term: its evidence counts towards each."""
    out: list[list[int]] = [[] for _ in terms]
    for row, words in enumerate(text_words):
        for k, term in enumerate(terms):
            if words is None or term in words:
                out[k].append(row)
    return out


def class_tfidf_top_terms(class_counts: Counter[str], corpus_counts: Counter[str], n_classes: int,
                          k: int = 8) -> list[tuple[str, float]]:
    """The `k` terms with the highest class-based TF-IDF (BERTopic's c-TF-IDF) for one class.

    Returns (term, weight) pairs, best first, where weight = tf(t, c) / |c| * log(1 + A / f(t)),
    |c| the number of term occurrences in the class, f(t) the term's frequency in the whole
    corpus and A the average number of term occurrences per class.
    """
    total_c = sum(class_counts.values())
    if not total_c:
        return []
    avg_words = sum(corpus_counts.values()) / max(n_classes, 1)
    scored = []
    for term, tf in class_counts.items():
        f_t = max(corpus_counts.get(term, 0), tf)
        scored.append((term, tf / total_c * math.log(1.0 + avg_words / f_t)))
    scored.sort(key=lambda x: (-x[1], x[0]))
    return [(t, round(w, 5)) for t, w in scored[:k]]


# An entity links a similarity group (texts linked by similarity alone) to others only when at
# least this share of the group's items carry it. One post that copies an innocent group's text
# and adds a scam's number (or a decoy also planted in one post of another campaign) no longer
# pulls the whole group into a campaign: to drag n innocent items in, an attacker must now post
# at least n items of their own carrying the entity, and every one of them is in the campaign too.
ENTITY_MIN_SHARE = 0.5


def characteristic_mentions(mention_item: np.ndarray, mention_key: np.ndarray, item_group: np.ndarray,
                            min_share: float = ENTITY_MIN_SHARE) -> np.ndarray:
    """bool per entity mention (item `mention_item[i]` mentions key `mention_key[i]`): whether at
    least `min_share` of the items in that item's similarity group (`item_group`, one per item)
    mention the key too, so the key speaks for the group and may link it to other groups."""
    mention_item = np.asarray(mention_item, dtype=np.int64)
    mention_key = np.asarray(mention_key, dtype=np.int64)
    item_group = np.asarray(item_group, dtype=np.int64)
    if not len(mention_item):
        return np.zeros(0, dtype=bool)
    _, item_group = np.unique(item_group, return_inverse=True)  # any labels, numbered 0..n-1
    item_group = item_group.ravel()
    n_items, n_groups = len(item_group), int(item_group.max()) + 1
    # (key, item) pairs counted once, then (key, group) pairs counted over them
    pairs = np.unique(mention_key * n_items + mention_item)
    codes, carried = np.unique(pairs // n_items * n_groups + item_group[pairs % n_items], return_counts=True)
    count = carried[np.searchsorted(codes, mention_key * n_groups + item_group[mention_item])]
    size = np.bincount(item_group, minlength=n_groups)[item_group[mention_item]]
    return count >= min_share * size - 1e-9


# Linking is not transitive through a hub: one post carrying campaign A's number and campaign B's
# short code (or a few copies of it) joins one of them, never both. Two groups of at least this
# many items merge through an entity only when it is carried by at least ENTITY_MIN_SHARE of each
# (so to merge two campaigns of n items, an attacker posts about n bridge items, all of which then
# sit in the merged campaign); a smaller group (a message and its echo) may join either side.
HUB_MIN_ITEMS = 3
# Version of these linking rules and of what a campaign stores from them (link reasons, shared
# entities). A graph saved under another version has every campaign written again on its next run
# (the graph itself is kept: components are recomputed from its edges on every run anyway).
LINKING_VERSION = 2


def link_groups(mention_item: np.ndarray, mention_key: np.ndarray, item_group: np.ndarray,
                candidate: np.ndarray, item_rank: np.ndarray | None = None, key_rank: np.ndarray | None = None,
                min_share: float = ENTITY_MIN_SHARE, min_size: int = HUB_MIN_ITEMS) -> tuple[np.ndarray, np.ndarray]:
    """(cluster per item, bool per mention: it links) when similarity groups (`item_group`) are
    joined through shared entity keys, hubs refused as `HUB_MIN_ITEMS` says.

    Mentions are of linkable keys; `candidate` marks those that speak for their group
    (`characteristic_mentions`), the only ones that may link. Keys are taken most-carried first,
    then by `key_rank`; per key, the clusters holding a candidate group merge when the key is at
    least `min_share` of each, and one that is not joins only while one side is under `min_size`
    items; passes repeat until nothing merges. Ties go by `item_rank` (e.g. the rank of item ids),
    never by storage order, so a re-cluster reading the items in another order agrees. A mention
    links when another group of its cluster carries its key as a candidate too.
    """
    mention_item = np.asarray(mention_item, dtype=np.int64)
    mention_key = np.asarray(mention_key, dtype=np.int64)
    candidate = np.asarray(candidate, dtype=bool)
    _, unit = np.unique(np.asarray(item_group, dtype=np.int64), return_inverse=True)
    unit = unit.ravel()
    n_items, n_units = len(unit), int(unit.max()) + 1 if len(unit) else 0
    links = np.zeros(len(mention_item), dtype=bool)
    if not candidate.any():
        return unit, links
    n_keys = int(mention_key.max()) + 1
    # items of each group carrying each key (every mention counts towards a cluster's share)
    pairs = np.unique(mention_key * n_items + mention_item)
    ku, count = np.unique(pairs // n_items * n_units + unit[pairs % n_items], return_counts=True)
    cand = np.unique(mention_key[candidate] * n_units + unit[mention_item[candidate]])
    spans = np.bincount(cand // n_units, minlength=n_keys) >= 2  # keys that could join two groups
    cand = cand[spans[cand // n_units]]
    if not len(cand):
        return unit, links
    ranks = np.arange(n_items) if item_rank is None else np.asarray(item_rank)
    rank = np.full(n_units, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(rank, unit, ranks)
    size = np.bincount(unit, minlength=n_units).tolist()
    rank_l = rank.tolist()
    parent = list(range(n_units))
    carried: dict[int, dict[int, int]] = {}  # root -> {key: items of the cluster carrying it}
    held = spans[ku // n_units]
    for code, c in zip(ku[held].tolist(), count[held].tolist()):
        carried.setdefault(code % n_units, {})[code // n_units] = c
    by_key: dict[int, list[int]] = {}
    for code in cand.tolist():
        by_key.setdefault(code // n_units, []).append(code % n_units)
    total = {k: sum(carried[u][k] for u in us) for k, us in by_key.items()}
    krank = (lambda k: k) if key_rank is None else (lambda k: int(key_rank[k]))
    order = sorted(by_key, key=lambda k: (-total[k], krank(k)))

    def find(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    def union(a: int, b: int) -> int:
        if len(carried.get(a, ())) < len(carried.get(b, ())):
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        rank_l[a] = min(rank_l[a], rank_l[b])
        into = carried.setdefault(a, {})
        for k, c in carried.pop(b, {}).items():
            into[k] = into.get(k, 0) + c
        return a

    merged = True
    while merged:
        merged = False
        for k in order:
            roots = sorted({find(u) for u in by_key[k]}, key=lambda r: (-carried[r].get(k, 0), rank_l[r]))
            if len(roots) < 2:
                continue
            share = [r for r in roots if carried[r].get(k, 0) >= min_share * size[r] - 1e-9]
            rest = [r for r in roots if r not in share]
            core = share.pop(0) if share else rest.pop(0)
            for r in share:  # the key speaks for each of them
                core, merged = union(core, r), True
            for r in rest:  # the key is a minority of r: joins while one side is small (core grows)
                if min(size[r], size[core]) < min_size:
                    core, merged = union(core, r), True
    root = np.fromiter((find(u) for u in range(n_units)), np.int64, n_units)
    # A candidate links when another group of its cluster holds the key as a candidate too.
    cand_root = cand // n_units * n_units + root[cand % n_units]
    codes, n_groups = np.unique(cand_root, return_counts=True)
    linking = cand[n_groups[np.searchsorted(codes, cand_root)] >= 2]
    links = candidate & np.isin(mention_key * n_units + unit[mention_item], linking)
    return root[unit], links


def exemplar_row(vectors: np.ndarray, weights: np.ndarray | None = None) -> int:
    """Row of the vector closest to the (weighted) centroid: the most typical member."""
    if not len(vectors):
        raise ValueError("no vectors")
    centroid = np.average(vectors, axis=0, weights=weights)
    return int(np.argmax(vectors @ centroid))


def growth(times: Sequence[dt.datetime], now: dt.datetime) -> dict[str, float | int]:
    """Members per hour / per day over the campaign's life, and how many arrived in the last hour / day before `now`."""
    if not times:
        return {"per_hour": 0.0, "per_day": 0.0, "last_hour": 0, "last_day": 0}
    first, last = min(times), max(times)
    hours = max((last - first).total_seconds() / 3600.0, 1.0)
    zero = dt.timedelta(0)
    # A member dated after `now` (a clock ahead, or `now` in the past) is not a recent arrival.
    return {
        "per_hour": round(len(times) / hours, 3),
        "per_day": round(len(times) / max(hours / 24.0, 1.0), 3),
        "last_hour": sum(1 for t in times if zero <= now - t <= dt.timedelta(hours=1)),
        "last_day": sum(1 for t in times if zero <= now - t <= dt.timedelta(days=1)),
    }


# Gaps are filled with empty buckets up to this many in all: one member dated decades off (a bad
# or hostile time) would otherwise make hundreds of thousands of buckets, and plotting them hangs.
MAX_TIMELINE_BUCKETS = 2000


def timeline(times: Iterable[dt.datetime], freq: str = "h",
             counts: Iterable[int] | None = None) -> list[tuple[dt.datetime, int, int]]:
    """(bucket start, new members, cumulative size) per hour (`h`) or day (`D`), gaps filled with 0
    while the span holds at most `MAX_TIMELINE_BUCKETS` buckets; past that, only buckets with members.
    `counts`: how many members each of `times` stands for (1 each when None), so a store can
    send each distinct time once with its count instead of one row per member."""
    if freq not in ("h", "D"):
        raise ValueError(f"freq must be 'h' or 'D', got {freq!r}")
    step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(days=1)

    def bucket(t: dt.datetime) -> dt.datetime:
        return t.replace(minute=0, second=0, microsecond=0) if freq == "h" else \
            t.replace(hour=0, minute=0, second=0, microsecond=0)

    per: Counter[dt.datetime] = Counter()
    if counts is None:
        per.update(bucket(t) for t in times)
    else:
        for t, n in zip(times, counts):
            per[bucket(t)] += int(n)
    if not per:
        return []
    out = []
    cur, end, total = min(per), max(per), 0
    if (end - cur) // step >= MAX_TIMELINE_BUCKETS:
        for start in sorted(per):
            total += per[start]
            out.append((start, per[start], total))
        return out
    while cur <= end:
        total += per.get(cur, 0)
        out.append((cur, per.get(cur, 0), total))
        cur += step
    return out


def label_mix(labels: Iterable[str | None]) -> dict[str, int]:
    """Count of each decided label, most frequent first (None = undecided, left out)."""
    return dict(Counter(lab for lab in labels if lab).most_common())


def mean_scores(score_dicts: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of each label's score over the given per-item score dicts (empty when none)."""
    sums: Counter[str] = Counter()
    n = 0
    for scores in score_dicts:
        n += 1
        for label, value in scores.items():
            sums[label] += float(value)
    return {label: round(total / n, 4) for label, total in sums.items()} if n else {}
