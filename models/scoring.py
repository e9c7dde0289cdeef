"""Batch scoring: every unscored item gets a Prediction from the champion (or a named version).

Items are read in id order, `chunk_size` at a time, and each chunk's predictions are written in
one transaction; the next chunk starts after the last id written, and "unscored" means "has no
prediction from this version", so a killed run resumes where it stopped and never rescores.
Sentence embeddings go through the text-hash cache, so the copies in a scam wave encode once.

Odd input has a defined outcome instead of failing the batch:
- empty or whitespace-only text: no model call; the benign label with score 1, flag `empty`;
- text over `max_chars`: the model sees the first `max_chars` characters, flag `truncated`
  with `original_chars`;
- bytes that were not UTF-8: surrogate escapes (how Python keeps them) are replaced by U+FFFD
  for the model, and text already holding U+FFFD (decoded upstream with errors="replace") is
  scored as it is; both get flag `undecodable`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from core.schema import Item, Prediction, utcnow
from core.text import has_undecodable_bytes, text_hash

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

    from .base import PolicyClassifier
    from .config import ModelsConfig


_MEMO_LIMIT = 200_000  # scores kept per run for repeated texts (about 10 MB)


@dataclass
class PreparedText:
    """What the model sees for one item, and what was done to get there."""

    text: str
    hash: str
    flags: dict[str, Any]


def prepare_text(text: Optional[str], max_chars: int, stored_hash: Optional[str] = None) -> PreparedText:
    """Apply the odd-input rules above; `stored_hash` is reused when the text is unchanged."""
    flags: dict[str, Any] = {}
    text = text or ""
    if has_undecodable_bytes(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        flags["undecodable"] = True
    elif "\ufffd" in text:
        flags["undecodable"] = True
    if not text.strip():
        flags["empty"] = True
    if len(text) > max_chars:
        flags["truncated"] = True
        flags["original_chars"] = len(text)
        text = text[:max_chars]
    h = stored_hash if (stored_hash and not flags) else text_hash(text)
    return PreparedText(text, h, flags)


@dataclass
class ScoreSummary:
    model_version: str
    scored: int = 0
    skipped_already_scored: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, int] = field(default_factory=dict)
    embeddings_encoded: int = 0
    embeddings_cached: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["items_per_second"] = round(self.scored / self.seconds, 1) if self.seconds else None
        return d

    def describe(self) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.by_label.items())) or "-"
        flags = ", ".join(f"{k}={v}" for k, v in sorted(self.flags.items())) or "none"
        return (f"scored {self.scored} items with {self.model_version} in {self.seconds:.1f}s "
                f"({self.skipped_already_scored} already scored); labels: {labels}; flags: {flags}; "
                f"embeddings encoded {self.embeddings_encoded}, from cache {self.embeddings_cached}")


class _CountingCache:
    """Wraps an EmbeddingCache to count hits and misses for the summary."""

    def __init__(self, cache: Any) -> None:
        self.cache, self.hits, self.puts = cache, 0, 0

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        got = self.cache.get(hashes)
        self.hits += len(got)
        return got

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        self.puts += len(vectors)
        self.cache.put(vectors)


def predict_rows(model: "PolicyClassifier", prepared: Sequence[PreparedText], benign: str,
                 embeddings: np.ndarray | None, uncertainty: str = "margin",
                 memo: Optional[dict[str, np.ndarray]] = None) -> list[dict[str, Any]]:
    """Prediction fields (label, score, scores, uncertainty, flags) for prepared texts.

    Texts with the same light-normalised hash (the copies of a wave) go through the head once
    and get identical scores; `memo` carries those scores across calls of one scoring run.
    """
    n = len(prepared)
    k = len(model.labels)
    memo = {} if memo is None else memo
    proba = np.zeros((n, k))
    live = [i for i, p in enumerate(prepared) if not p.flags.get("empty")]
    first: dict[str, int] = {}
    for i in live:
        h = prepared[i].hash
        if h not in memo and h not in first:
            first[h] = i
    if first:
        idx = list(first.values())
        emb = None if embeddings is None else embeddings[idx]
        for h, row in zip(first, model.predict_proba([prepared[i].text for i in idx], emb)):
            memo[h] = row
    for i in live:
        proba[i] = memo[prepared[i].hash]
    b = model.labels.index(benign)
    for i, p in enumerate(prepared):
        if p.flags.get("empty"):
            proba[i, b] = 1.0
    pred = model.predict_from_proba(proba)
    unc = model.uncertainty(proba, uncertainty)
    rows = []
    for i, p in enumerate(prepared):
        j = int(pred[i])
        rows.append({"label": model.labels[j], "score": float(proba[i, j]),
                     "scores": {lab: round(float(proba[i, c]), 6) for c, lab in enumerate(model.labels)},
                     "uncertainty": float(unc[i]), "flags": p.flags or None})
    return rows


def _insert_predictions(conn: Any, rows: list[dict[str, Any]]) -> None:
    t = Prediction.__table__
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(t).on_conflict_do_nothing(index_elements=["item_id", "model_version"]), rows)


def count_unscored(store: "Store", model_version: str) -> tuple[int, int]:
    """(items without a prediction from `model_version`, items in total)."""
    from sqlalchemy import func, select

    it, pt = Item.__table__, Prediction.__table__
    with store.read() as conn:
        total = conn.execute(select(func.count()).select_from(it)).scalar() or 0
        done = conn.execute(select(func.count()).select_from(pt).where(pt.c.model_version == model_version)).scalar() or 0
    return max(total - done, 0), total


def score_items(store: "Store", taxonomy: "Taxonomy", model_version: Optional[str] = None,
                chunk_size: Optional[int] = None, *, config: "ModelsConfig",
                limit: Optional[int] = None, show_progress: bool = True,
                model: Optional["PolicyClassifier"] = None, embedder: Any = None) -> ScoreSummary:
    """Score every item that has no prediction from the model yet; returns counts and timing.

    `model_version` defaults to the champion. `limit` stops after that many items (the rest are
    picked up by the next call). `model` / `embedder` let a caller reuse loaded objects.
    """
    import time

    from sqlalchemy import and_, select
    from tqdm.auto import tqdm

    from .embeddings import Embedder, EmbeddingCache, embed_texts
    from .registry import load_model_version

    cfg = config
    chunk = int(chunk_size or cfg.scoring.chunk_size)
    started = time.perf_counter()
    if model is None:
        model, row = load_model_version(store, model_version)
        version = row["id"]
    else:
        if model_version is None:
            raise ValueError("pass model_version together with model")
        version = model_version
    missing = sorted(set(model.labels) - set(taxonomy.labels))
    if missing:
        from .registry import RegistryError

        raise RegistryError(f"model {version} predicts labels the taxonomy no longer has: {missing}; "
                            "retrain it against the current taxonomy")
    summary = ScoreSummary(model_version=version)
    uses_emb = getattr(model, "needs_embeddings", model.uses_embeddings)
    cache = None
    if uses_emb:
        if embedder is None:
            embedder = model.embedder() if hasattr(model, "embedder") else Embedder()
        embedder.batch_size = cfg.embedding.batch_size
        cache = _CountingCache(EmbeddingCache(store, embedder.model_id))
    todo, total = count_unscored(store, version)
    summary.skipped_already_scored = total - todo
    if limit is not None:
        todo = min(todo, limit)
    it, pt = Item.__table__, Prediction.__table__
    benign = taxonomy.benign_label
    bar = tqdm(total=todo, desc=f"scoring with {version}", unit="item", disable=not show_progress)
    last_id: Optional[str] = None
    memo: dict[str, np.ndarray] = {}
    try:
        while limit is None or summary.scored < limit:
            n = chunk if limit is None else min(chunk, limit - summary.scored)
            q = (select(it.c.id, it.c.text, it.c.text_hash)
                 .select_from(it.outerjoin(pt, and_(pt.c.item_id == it.c.id, pt.c.model_version == version)))
                 .where(pt.c.id.is_(None)).order_by(it.c.id).limit(n))
            if last_id is not None:
                q = q.where(it.c.id > last_id)
            with store.read() as conn:
                items = conn.execute(q).all()
            if not items:
                break
            last_id = items[-1][0]
            prepared = [prepare_text(text, cfg.scoring.max_chars, h) for _, text, h in items]
            emb = None
            if uses_emb:
                live = [p for p in prepared if not p.flags.get("empty")]
                emb = np.zeros((len(prepared), embedder.dim), dtype=np.float32)
                if live:
                    vecs = embed_texts([p.text for p in live], embedder, cache, hashes=[p.hash for p in live],
                                       show_progress=False)
                    emb[[i for i, p in enumerate(prepared) if not p.flags.get("empty")]] = vecs
            if len(memo) > _MEMO_LIMIT:
                memo.clear()
            fields = predict_rows(model, prepared, benign, emb, cfg.scoring.uncertainty, memo)
            now = utcnow()
            rows = [{"item_id": item[0], "model_version": version, "taxonomy_version": taxonomy.version,
                     "created_at": now, **f} for item, f in zip(items, fields)]
            with store.begin() as conn:
                _insert_predictions(conn, rows)
            for f in fields:
                summary.by_label[f["label"]] = summary.by_label.get(f["label"], 0) + 1
                for flag in (f["flags"] or {}):
                    if flag != "original_chars":
                        summary.flags[flag] = summary.flags.get(flag, 0) + 1
            summary.scored += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
    if cache is not None:
        summary.embeddings_encoded = cache.puts
        summary.embeddings_cached = summary.scored - summary.flags.get("empty", 0) - cache.puts
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary
