"""Reading the two drift windows from the store into `WindowData` arrays (see `evaluation.drift`).

Item time is the item's own creation time, else when it was ingested, the same as everywhere
else. Scores and predicted labels are the prediction of record (`core.predictions.record_ids`),
what an analyst was shown. Each window counts a text once (`_one_per_text`): scores, labels and
embeddings are those of one item per distinct text hash. Embeddings are only read from the cache (the `embeddings` table), keyed
either by the item's text hash (what scoring stores) or by the hash of its clustering template
(what `workbench cluster` stores with `embed: template`); whichever key finds more of the windows'
items is used for both windows, so the two never mix vectors of different texts.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from sqlalchemy import DateTime, func, select

from core.labels import AUTHORITATIVE_KINDS, current_decisions
from core.predictions import record_ids
from core.schema import CampaignMember, Item, Prediction

from .data import collapse_bulk, score_row
from .drift_stats import WindowData

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

_I, _P, _M = Item.__table__, Prediction.__table__, CampaignMember.__table__
_CHUNK = 900  # ids per IN (...) list: under SQLite's bound-parameter limit


def item_time() -> Any:
    """The SQL expression of an item's time: created_at, else ingested_at (typed, so SQLite returns datetimes)."""
    return func.coalesce(_I.c.created_at, _I.c.ingested_at, type_=DateTime)


def _as_dt(v: Any) -> Optional[dt.datetime]:
    if v is None or isinstance(v, dt.datetime):
        return v
    return dt.datetime.fromisoformat(str(v))


def newest_item_time(store: "Store", not_after: Optional[dt.datetime] = None) -> Optional[dt.datetime]:
    """The newest item time in the store, of the items dated up to `not_after` when given (None
    when there is none): `drift_report` ends its default windows there, and one ingested item dated
    9999-12-31 put both windows in the year 9999, every check "not enough data", no alarm ever."""
    q = select(func.max(item_time()))
    if not_after is not None:
        q = q.where(item_time() <= not_after)
    with store.read() as conn:
        return _as_dt(conn.execute(q).scalar())


def embedding_model_id(name: Optional[str]) -> str:
    """The cache key of the embedding model: as configured, else the one `Embedder()` would use."""
    from models.embeddings import DEFAULT_MODEL_ID, default_model_path, model_id_for

    if name:
        return model_id_for(name)
    try:
        return model_id_for(default_model_path())
    except ImportError:  # pragma: no cover - bundled model package missing
        return DEFAULT_MODEL_ID


def _cached_vectors(store: "Store", model_id: str, ids: list[str], hashes: list[str]) -> dict[str, np.ndarray]:
    """item id -> cached vector, by text hash or by template hash, whichever covers more items."""
    from models.embeddings import EmbeddingCache

    cache = EmbeddingCache(store, model_id)
    by_text = cache.get(hashes)
    hits = {i: by_text[h] for i, h in zip(ids, hashes) if h in by_text}
    if len(hits) == len(ids):
        return hits
    from clustering.normalize import normalize_template
    from core.text import text_hash

    texts: dict[str, str] = {}
    with store.read() as conn:
        for k in range(0, len(ids), _CHUNK):
            texts.update(dict(conn.execute(select(_I.c.id, _I.c.text).where(_I.c.id.in_(ids[k:k + _CHUNK]))).all()))
    keys = {i: text_hash(normalize_template(texts.get(i) or "")) for i in ids}
    by_template = cache.get(list(keys.values()))
    template_hits = {i: by_template[k] for i, k in keys.items() if k in by_template}
    return template_hits if len(template_hits) > len(hits) else hits


def _one_per_text(side: dict[str, int], hashes: dict[str, Optional[str]]) -> set[str]:
    """Item ids (of `side`) that stand for their window's texts: the smallest id of each text hash per window
    (an item without a hash stands for itself). Why: 5,000 copies of one text in the current
    window raised a score PSI of 3 and an embedding AUC of 0.91, and diluted its campaign rate."""
    first: dict[tuple[int, str], str] = {}
    for i in sorted(side):
        h = hashes.get(i)
        key = (side[i], h if h is not None else f"id:{i}")
        first.setdefault(key, i)
    return set(first.values())


def read_windows(store: "Store", embedding_model: str, taxonomy: "Taxonomy",
                 reference: tuple[dt.datetime, dt.datetime], current: tuple[dt.datetime, dt.datetime]
                 ) -> tuple[WindowData, WindowData, dict[str, dict[str, int]]]:
    """(reference, current, model versions per window) for two (start, end] windows of item time."""
    t = item_time()
    lo, mid, hi = reference[0], reference[1], current[1]
    labels = taxonomy.labels
    with store.read() as conn:
        items = conn.execute(select(_I.c.id, _I.c.text_hash, t.label("t")).where(t > lo, t <= hi)).all()
        side = {i: int(_as_dt(when) > mid) for i, _, when in items}
        hashes = {i: h for i, h, _ in items}
        preds = conn.execute(select(_P.c.item_id, _P.c.label, _P.c.scores, _P.c.model_version)
                             .join(_I, _I.c.id == _P.c.item_id)
                             .where(_P.c.id.in_(record_ids(conn)), t > lo, t <= hi)).all()
        firsts = conn.execute(select(_M.c.campaign_id, func.min(t))
                              .join(_I, _I.c.id == _M.c.item_id).group_by(_M.c.campaign_id)).all()
        decided = current_decisions(conn, list(side), kinds=AUTHORITATIVE_KINDS)
    n_items = [0, 0]
    for s in side.values():
        n_items[s] += 1
    scores: list[list[list[float]]] = [[], []]
    predicted: list[list[str]] = [[], []]
    versions: list[dict[str, int]] = [{}, {}]
    kept = _one_per_text(side, hashes)
    scored = _one_per_text({p[0]: side[p[0]] for p in preds}, hashes)  # a text's first scored copy
    for item_id, label, sc, version in preds:
        s = side[item_id]
        versions[s][version] = versions[s].get(version, 0) + 1
        if item_id not in scored:
            continue
        scores[s].append(score_row(sc, labels))
        predicted[s].append(label)
    new_campaigns: list[Optional[int]] = [None, None]
    if firsts:
        new_campaigns = [0, 0]
        for _, first in firsts:
            first = _as_dt(first)
            if first is not None and lo < first <= hi:
                new_campaigns[int(first > mid)] += 1
    rows = collapse_bulk([d for d in decided.values() if d["model_label"]], hashes)
    decisions, overrides = [0, 0], [0, 0]
    for r in rows:
        s = side[r["item_id"]]
        decisions[s] += 1
        overrides[s] += int(r["label"] != r["model_label"])
    ids = sorted(kept)
    vectors = _cached_vectors(store, embedding_model, ids, [hashes[i] for i in ids])
    emb: list[Optional[np.ndarray]] = [None, None]
    for s in (0, 1):
        vs = [v for i, v in vectors.items() if side[i] == s]
        emb[s] = np.vstack(vs) if vs else None
    k = len(labels)
    windows = [WindowData(n_items=n_items[s], scores=np.asarray(scores[s], dtype=np.float64).reshape(-1, k),
                          predicted=np.asarray(predicted[s], dtype=object), embeddings=emb[s],
                          new_campaigns=new_campaigns[s], decisions=decisions[s], overrides=overrides[s],
                          n_texts=sum(side[i] == s for i in kept))
               for s in (0, 1)]
    return windows[0], windows[1], {"reference": versions[0], "current": versions[1]}
