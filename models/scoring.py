"""Batch scoring: every unscored item gets a Prediction from the champion (or a named version).

Items are read in id order, `chunk_size` at a time, and each chunk's predictions are written in
one transaction; the next chunk starts after the last id written, and "unscored" means "has no
prediction from this version", so a killed run resumes where it stopped and never rescores.
Sentence embeddings go through the text-hash cache, so the copies in a scam wave encode once.

Odd input has a defined outcome instead of failing the batch:
- empty or whitespace-only text: no model call; the benign label with score 1, flag `empty`;
- text over `window_chars` (and up to `max_chars`): scored over windows as below, flag `windows`
  only (every character is read, so routing treats it as any other text);
- text over `max_chars`: scored whole, over windows of `window_chars` characters (see
  `text_windows`: head, tail and strided chunks overlapping by `window_overlap`, at most
  `max_windows` of them), combined by `combine_windows` (the most violating window decides each
  policy); flags `windowed`, `windows` (how many), `original_chars`, and `truncated` (true when
  the cap on windows left characters that no window covered). With `max_windows: 1` only the
  first `max_chars` characters are scored (flag `truncated`). Routing sends both to a human
  queue, never to low-risk (`labeling.routing`). Windows are short (320 characters by default,
  about two SMS) because the models learn from short messages: a 5,000-character window that is
  94% benign padding reads as benign to them however plain the scam at its end;
- invisible format characters (zero-width, soft hyphen, bidi controls) are dropped and the text
  NFKC-normalised before the model reads it (`core.text.visible_text`), so a copy of a wave
  obfuscated that way scores as its readable twin, which shares its hash;
- bytes that were not UTF-8: surrogate escapes (how Python keeps them), and any other lone
  surrogate (a JSON `\\ud800` stored before ingest refused them), are replaced by U+FFFD for the
  model (`core.text.replace_lone_surrogates`; a tokenizer cannot read them), and text already
  holding U+FFFD (decoded upstream with errors="replace") is scored as it is; all get flag
  `undecodable`.

A model's output is checked before it is stored (`core.predictions.prediction_problem`: every
score and the uncertainty a finite number in [0, 1]): a broken or hostile model's NaN, infinity
or out-of-range score leaves that item unscored, with the reason (item and field) in the
summary's `refused`, and the rest of the batch is stored.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from core.hooks import check_permission
from core.predictions import prediction_problem
from core.principals import SYSTEM, Actor
from core.schema import Item, Prediction, utcnow
from core.store import insert_ignore
from core.text import has_lone_surrogate, replace_lone_surrogates, text_hash, visible_text

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

    from .base import PolicyClassifier
    from .config import ModelsConfig


_MEMO_LIMIT = 200_000  # scores kept per run for repeated texts (about 10 MB)
_REFUSED_KEPT = 20  # refusal reasons a summary keeps (the count is exact)


@dataclass
class PreparedText:
    """What the model sees for one item, and what was done to get there.

    `text` / `hash`: the whole text, or the first window of a long one; `windows`: every window
    of a long text as (text, hash), empty otherwise (see `units`)."""

    text: str
    hash: str
    flags: dict[str, Any]
    windows: list[tuple[str, str]] = field(default_factory=list)

    @property
    def units(self) -> list[tuple[str, str]]:
        """What goes through the model, one (text, hash) per call: the windows, or the text."""
        return self.windows or [(self.text, self.hash)]


def text_windows(n_chars: int, size: int, overlap: int, max_windows: int) -> tuple[list[int], bool]:
    """(start offsets of windows of `size` characters over a text of `n_chars`, truncated).

    The head (0) and the tail (`n_chars - size`) always, strided chunks between them stepping
    `size - overlap`; when that needs more than `max_windows`, `max_windows` windows spread
    evenly from head to tail instead, and `truncated` says whether that left gaps no window
    reads. A text of `size` characters or fewer is one window.
    """
    if n_chars <= size:
        return [0], False
    last = n_chars - size
    if max_windows <= 1:
        return [0], True
    stride = max(size - overlap, 1)
    starts = list(range(0, last, stride)) + [last]
    if len(starts) <= max_windows:
        return starts, False
    starts = sorted({int(round(x)) for x in np.linspace(0, last, max_windows)})
    gaps = any(b - a > size for a, b in zip(starts, starts[1:]))
    return starts, gaps


def combine_windows(proba: np.ndarray, benign: int) -> np.ndarray:
    """One distribution from a long text's per-window distributions (rows).

    Each violating policy takes its maximum over the windows (a scam payload anywhere counts
    wherever it sits); benign takes its minimum (the text is only as benign as its least benign
    window). The sum is then at least 1 (the least benign window alone already sums to 1), so
    dividing by it keeps the scores a distribution, as risk, escalation and priority expect;
    one window, or identical windows, give that window's scores unchanged.
    """
    proba = np.asarray(proba, dtype=float)
    out = proba.max(axis=0)
    out[benign] = proba[:, benign].min()
    return out / out.sum()


def prepare_text(text: Optional[str], max_chars: int, stored_hash: Optional[str] = None,
                 window_chars: Optional[int] = None, window_overlap: int = 0, max_windows: int = 1) -> PreparedText:
    """Apply the odd-input rules above; `stored_hash` is reused when the text is unchanged."""
    flags: dict[str, Any] = {}
    text = text or ""
    if has_lone_surrogate(text):
        text = replace_lone_surrogates(text)
        flags["undecodable"] = True
    elif "\ufffd" in text:
        flags["undecodable"] = True
    text = visible_text(text)  # hashes alike with the raw text: the memo and the cache stay keyed by it
    if not text.strip():
        flags["empty"] = True
    windows: list[tuple[str, str]] = []
    size = min(window_chars or max_chars, max_chars)
    if len(text) > max_chars:
        starts, truncated = text_windows(len(text), size, window_overlap, max_windows)
        if len(starts) > 1:
            flags.update(windowed=True, windows=len(starts))
            windows = [(w, text_hash(w)) for w in (text[s:s + size] for s in starts)]
        flags["truncated"] = truncated
        flags["original_chars"] = len(text)
        text = text[:max_chars]
    elif len(text) > size and max_windows > 1:
        # Read whole, but in windows: benign padding up to max_chars drowned a payload at its end
        # as surely as past it. Every character is read, so this alone does not route to a person.
        starts, truncated = text_windows(len(text), size, window_overlap, max_windows)
        windows = [(w, text_hash(w)) for w in (text[s:s + size] for s in starts)]
        flags["windows"] = len(starts)
        if truncated:
            flags.update(truncated=True, original_chars=len(text))
    h = stored_hash if (stored_hash and not flags) else text_hash(text)
    return PreparedText(text, h, flags, windows)


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
    unscored: int = 0  # items whose prediction `_insert_predictions` refused (left unscored)
    refused: list[str] = field(default_factory=list)  # why, one line each (the first _REFUSED_KEPT)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["items_per_second"] = round(self.scored / self.seconds, 1) if self.seconds else None
        return d

    def describe(self) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.by_label.items())) or "-"
        flags = ", ".join(f"{k}={v}" for k, v in sorted(self.flags.items())) or "none"
        return (f"scored {self.scored} items with {self.model_version} in {self.seconds:.1f}s "
                f"({self.skipped_already_scored} already scored); labels: {labels}; flags: {flags}; "
                f"embeddings encoded {self.embeddings_encoded}, from cache {self.embeddings_cached}"
                + (f"; {self.unscored} left unscored (the model's output was refused: "
                   f"{self.refused[0]}{' ...' if self.unscored > 1 else ''})" if self.unscored else ""))


class _CountingCache:
    """Wraps an EmbeddingCache to count hits and misses for the summary."""

    def __init__(self, cache: Any) -> None:
        self.cache, self.hits, self.puts = cache, 0, 0

    def get(self, hashes: list[str], dim: Optional[int] = None) -> dict[str, np.ndarray]:
        got = self.cache.get(hashes, dim=dim)
        self.hits += len(got)
        return got

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        self.puts += len(vectors)
        self.cache.put(vectors)


def predict_rows(model: "PolicyClassifier", prepared: Sequence[PreparedText], benign: str,
                 embeddings: np.ndarray | None, uncertainty: str = "margin",
                 memo: Optional[dict[str, np.ndarray]] = None) -> list[dict[str, Any]]:
    """Prediction fields (label, score, scores, uncertainty, flags) for prepared texts.

    `embeddings`, when given, has one row per unit (`PreparedText.units`, item after item).
    Texts with the same light-normalised hash (the copies of a wave, a window two long texts
    share) go through the head once and get identical scores; `memo` carries those scores
    across calls of one scoring run. A long text's windows are combined by `combine_windows`.
    """
    n = len(prepared)
    k = len(model.labels)
    memo = {} if memo is None else memo
    proba = np.zeros((n, k))
    b = model.labels.index(benign)
    units = [(i, t, h) for i, p in enumerate(prepared) for t, h in p.units]
    first: dict[str, int] = {}
    for j, (i, _, h) in enumerate(units):
        if not prepared[i].flags.get("empty") and h not in memo and h not in first:
            first[h] = j
    if first:
        idx = list(first.values())
        emb = None if embeddings is None else embeddings[idx]
        for h, row in zip(first, model.predict_proba([units[j][1] for j in idx], emb)):
            memo[h] = row
    for i, p in enumerate(prepared):
        if p.flags.get("empty"):
            proba[i, b] = 1.0
        elif p.windows:
            proba[i] = combine_windows(np.stack([memo[h] for _, h in p.windows]), b)
        else:
            proba[i] = memo[p.hash]
    pred = model.predict_from_proba(proba)
    unc = model.uncertainty(proba, uncertainty)
    rows = []
    for i, p in enumerate(prepared):
        j = int(pred[i])
        rows.append({"label": model.labels[j], "score": float(proba[i, j]),
                     "scores": {lab: round(float(proba[i, c]), 6) for c, lab in enumerate(model.labels)},
                     "uncertainty": float(unc[i]), "flags": p.flags or None})
    return rows


def _insert_predictions(conn: Any, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Insert prediction rows; one already stored for an item and model (a concurrent run) stays.

    The one place predictions are written (scoring, rescoring after a promotion): a row
    `prediction_problem` refuses (a NaN, infinite or out-of-range score) is not written, its item
    stays unscored by this model, and item id -> the reason comes back, one line each ("item 'x':
    scores['spam'] is nan (model M); left unscored"); the other rows are stored."""
    good: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for r in rows:
        problem = prediction_problem(r)
        if problem is None:
            good.append(r)
        else:
            refused[r["item_id"]] = (f"item {str(r['item_id'])[:80]!r}: {problem} "
                                     f"(model {r.get('model_version')}); left unscored")
    if good:
        conn.execute(insert_ignore(conn.dialect.name, Prediction.__table__, ["item_id", "model_version"]), good)
    return refused


def count_unscored(store: "Store", model_version: str) -> tuple[int, int]:
    """(items without a prediction from `model_version`, items in total)."""
    from sqlalchemy import func, select

    it, pt = Item.__table__, Prediction.__table__
    with store.read() as conn:
        total = conn.execute(select(func.count()).select_from(it)).scalar() or 0
        done = conn.execute(select(func.count()).select_from(pt).where(pt.c.model_version == model_version)).scalar() or 0
    return max(total - done, 0), total


def check_model_labels(model: Any, version: str, taxonomy: "Taxonomy") -> None:
    """Raise RegistryError when `model` predicts labels the taxonomy no longer has: a model trained
    before the taxonomy lost a label would store predictions (and so case labels) no policy
    knows; or lacks the taxonomy's benign label (now another policy), which empty texts get and
    every score is read against (it was a bare "ValueError: 'x' is not in list" mid-run). Every
    path that writes predictions calls it before writing anything."""
    from .registry import RegistryError

    missing = sorted(set(model.labels) - set(taxonomy.labels))
    if missing:
        raise RegistryError(f"model {version} predicts labels the taxonomy no longer has: {missing}; "
                            "retrain it against the current taxonomy")
    if taxonomy.benign_label not in model.labels:
        raise RegistryError(f"model {version} has no label {taxonomy.benign_label!r}, the taxonomy's benign "
                            f"policy (it predicts {list(model.labels)}): retrain it against the current taxonomy")


def score_items(store: "Store", taxonomy: "Taxonomy", model_version: Optional[str] = None,
                chunk_size: Optional[int] = None, *, config: "ModelsConfig",
                limit: Optional[int] = None, show_progress: bool = True,
                model: Optional["PolicyClassifier"] = None, embedder: Any = None,
                actor: Actor = SYSTEM["system"]) -> ScoreSummary:
    """Score every item that has no prediction from the model yet; returns counts and timing.
    Needs `score`.

    `model_version` defaults to the champion. `limit` stops after that many items (the rest are
    picked up by the next call). `model` / `embedder` let a caller reuse loaded objects.
    """
    import time

    from sqlalchemy import and_, select
    from tqdm.auto import tqdm

    from .config import MAX_CHUNK_SIZE
    from .embedding_pin import check_embedding_pin
    from .embeddings import Embedder, EmbeddingCache, embed_texts
    from .registry import load_model_version

    check_permission(actor, "score", model_version or "champion")
    cfg = config
    chunk = int(chunk_size or cfg.scoring.chunk_size)
    if not 1 <= chunk <= MAX_CHUNK_SIZE or (limit is not None and limit < 0):  # past 2**63: the database's OverflowError
        from .base import ModelError  # a ValueError the CLI prints as one line

        raise ModelError(f"chunk_size must be 1 to {MAX_CHUNK_SIZE} and limit 0 or more, not {chunk} and {limit}")
    started = time.perf_counter()
    if model is None:
        model, row = load_model_version(store, model_version)
        version = row["id"]
        if row.get("role") == "retired":  # its predictions would become the record where no champion's are
            from .registry import RegistryError

            raise RegistryError(f"model {version} is retired: it scores nothing (promote it back to use it)")
    else:
        if model_version is None:
            raise ValueError("pass model_version together with model")
        version = model_version
    check_model_labels(model, version, taxonomy)
    summary = ScoreSummary(model_version=version)
    uses_emb = getattr(model, "needs_embeddings", model.uses_embeddings)
    cache = None
    if uses_emb:
        if embedder is None:
            embedder = model.embedder() if hasattr(model, "embedder") else Embedder()
        embedder.batch_size = cfg.embedding.batch_size
        # trained on other vectors (a folder's weights swapped, $WORKBENCH_EMBEDDING_MODEL moved): refused
        check_embedding_pin(model, version, embedder)
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
    live_units = 0  # texts and windows that needed an embedding
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
            sc = cfg.scoring
            prepared = [prepare_text(text, sc.max_chars, h, sc.window_chars, sc.window_overlap, sc.max_windows)
                        for _, text, h in items]
            emb = None
            if uses_emb:
                units = [(u, not p.flags.get("empty")) for p in prepared for u in p.units]
                live = [j for j, (_, ok) in enumerate(units) if ok]
                emb = np.zeros((len(units), embedder.dim), dtype=np.float32)
                if live:
                    emb[live] = embed_texts([units[j][0][0] for j in live], embedder, cache,
                                            hashes=[units[j][0][1] for j in live], show_progress=False)
                live_units += len(live)
            if len(memo) > _MEMO_LIMIT:
                memo.clear()
            fields = predict_rows(model, prepared, benign, emb, cfg.scoring.uncertainty, memo)
            now = utcnow()
            rows = [{"item_id": item[0], "model_version": version, "taxonomy_version": taxonomy.version,
                     "created_at": now, **f} for item, f in zip(items, fields)]
            with store.begin() as conn:
                refused = _insert_predictions(conn, rows)
            summary.unscored += len(refused)
            summary.refused += list(refused.values())[:max(_REFUSED_KEPT - len(summary.refused), 0)]
            for item, f in zip(items, fields):
                if item[0] in refused:
                    continue
                summary.by_label[f["label"]] = summary.by_label.get(f["label"], 0) + 1
                for flag, value in (f["flags"] or {}).items():
                    if value is True:
                        summary.flags[flag] = summary.flags.get(flag, 0) + 1
            summary.scored += len(rows) - len(refused)
            bar.update(len(rows))
    finally:
        bar.close()
    if cache is not None:
        summary.embeddings_encoded = cache.puts
        summary.embeddings_cached = live_units - cache.puts
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary
