"""Cold start: the first cases of a new source, surface or policy, seeded around a few examples.

A model that never saw a policy (or a surface) ranks its violations low, so risk order and
uncertainty alone would serve analysts almost only negatives. An engineer gives a handful of
example texts or a query (`workbench seed --policy P --examples FILE` / `--query TEXT`); the items
of the scope (a source and/or surface, else every item) nearest to them by cosine similarity of the
cached MiniLM embeddings become the first cases of the queue policy P routes to, one per distinct
text and per campaign, round-robin over the examples so each gets neighbours. A uniform QA sample
of the same scope (blind to the model and to the examples, `sampling.uniform_draw`) is interleaved, so the first
labels are not all of one kind and precision and recall can be estimated. Seed cases are pinned at
the head of their queue (`priority.pinned`), explained as `seed: ...`, and items a human already
decided or someone holds are left alone.

Keywords (`--keyword WORD`, `--keywords FILE`) seed too: an item whose text holds a keyword as a
whole word or phrase (after `core.text.normalize_light`: Unicode form, case, spacing) is a seed
for that keyword, drawn in a seeded random order among its matches (`keyword_similarities`), in
the same round-robin as the examples. A slur, a brand or a payment app says more as a word than
as a sentence to embed; embedding it as a query finds texts about it, not texts that use it.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
import stat
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from sqlalchemy import func, insert, select, update

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.principals import Actor
from core.schema import CampaignMember, Case, Item, utcnow
from core.text import has_lone_surrogate, has_undecodable_bytes, normalize_light
from core.store import Store, serialise
from core.taxonomy import Taxonomy

from .cases import unchanged
from .errors import QueueError
from .masking import mask_text
from .priority import score_features
from .queue_config import QueueConfig
from .routing import Candidate, plan_case, route
from .sampling import uniform_draw

if TYPE_CHECKING:  # pragma: no cover
    from models.embeddings import Embedder

C = Case.__table__
I = Item.__table__
CM = CampaignMember.__table__


# Limits of an examples file (`workbench seed --examples`). An engineer seeding a new policy writes a
# handful to a few hundred examples; the seeds are `seeding.neighbours` (50 by default) shared
# round-robin over the examples, so past a thousand most examples would get no neighbour at all,
# and every example costs a column of the (items x examples) similarity matrix. The byte cap lets
# a file of MAX_EXAMPLES long examples through while a mistaken path (a dump, a model file) is
# refused from its size, before it is read into memory.
MAX_EXAMPLES = 1000
"""Most examples an examples file may hold (the `--examples` of `workbench seed`)."""
MAX_EXAMPLES_FILE_BYTES = 4 * 1024 * 1024
"""Largest examples file read, in bytes (4 MiB)."""
MAX_EXAMPLE_CHARS = 10_000
"""Longest example text or query, in characters. The embedder reads only its first few hundred
tokens (`models.yaml` max_seq_length), so a longer one is a mistake (a whole thread or file on one
line), not an example; core.ingest has no text-length cap to reuse."""


def check_example(text: str, where: str) -> str:
    """`text` stripped, refused (one line, `where` naming the file and line or the query) when it
    holds a NUL byte, bytes that are not UTF-8 (the tokenizer cannot read them), only invisible
    characters, or runs past MAX_EXAMPLE_CHARS: each means the input is not what was meant."""
    if "\x00" in text:
        raise QueueError(f"{where}: NUL byte in the example text")
    if has_undecodable_bytes(text):
        raise QueueError(f"{where}: the example text is not UTF-8 (an undecodable byte; check the terminal's encoding)")
    if has_lone_surrogate(text):
        raise QueueError(f"{where}: the example text holds a lone surrogate (an escape such as \\ud800), not Unicode text")
    s = text.strip()
    if s and not normalize_light(s):
        raise QueueError(f"{where}: the example text has only invisible characters")
    if len(s) > MAX_EXAMPLE_CHARS:
        raise QueueError(f"{where}: example text is {len(s):,} characters, over the limit of "
                         f"{MAX_EXAMPLE_CHARS:,}")
    return s


MAX_KEYWORD_CHARS = 200
"""Longest keyword or phrase: past it the input is a sentence (give it as an example instead)."""


def check_keyword(text: str, where: str) -> str:
    """A keyword, normalised as texts are matched (`normalize_light`), or a one-line refusal."""
    if "\x00" in text:
        raise QueueError(f"{where}: NUL byte in the keyword")
    if has_undecodable_bytes(text):
        raise QueueError(f"{where}: the keyword is not UTF-8 (an undecodable byte; check the terminal's encoding)")
    if has_lone_surrogate(text):
        raise QueueError(f"{where}: the keyword holds a lone surrogate (an escape such as \\ud800), not Unicode text")
    k = normalize_light(text)
    if not k:
        raise QueueError(f"{where}: empty keyword")
    if len(k) > MAX_KEYWORD_CHARS:
        raise QueueError(f"{where}: keyword is {len(k):,} characters, over the limit of {MAX_KEYWORD_CHARS} "
                         "(give a sentence as an example)")
    return k


def keyword_similarities(texts: Sequence[str], keywords: Sequence[str], draws: Sequence[float]) -> np.ndarray:
    """(items x keywords) pseudo-similarities for `nearest_round_robin`: for an item whose
    normalised text holds the keyword as a whole word or phrase, 1 - draw x 1e-6 (so its matches
    are taken in the order of `draws`, a seeded uniform draw per item in [0, 1), not by id); -1
    elsewhere. Keywords are matched as `check_keyword` normalises them; one pass per text (an
    alternation, longest keyword first)."""
    out = np.full((len(texts), len(keywords)), -1.0)
    if not len(texts) or not len(keywords):
        return out
    index: dict[str, int] = {}
    for j, k in enumerate(keywords):
        index.setdefault(normalize_light(k), j)
    alts = sorted(index, key=len, reverse=True)
    rx = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, alts)) + r")(?!\w)")
    for i, t in enumerate(texts):
        for m in rx.finditer(normalize_light(t)):
            out[i, index[m.group(0)]] = 1.0 - float(draws[i]) * 1e-6  # both sides normalised alike
    return out


def read_examples(path: str) -> list[str]:
    """Example texts from a file: one per line (blank lines and `#` comments skipped), a JSONL
    file of objects with a `text` field, or a CSV / TSV file with a `text` column (a .json
    document is refused). UTF-8, a leading BOM dropped; the file is refused past
    MAX_EXAMPLES_FILE_BYTES (before it is read whole) or MAX_EXAMPLES, an example past
    MAX_EXAMPLE_CHARS or with a NUL byte. One-line errors name the file and line."""
    return [text for _, text in read_example_lines(path)]


def read_example_lines(path: str, what: str = "examples") -> list[tuple[int, str]]:
    """`read_examples` with each text's line number, so a later check (a keyword's) names the
    line an editor shows, not the ordinal among the lines kept (comments and blanks are skipped).
    `what` names the file's contents in errors ("keywords" for `--keywords FILE`: its errors said
    "no such examples file")."""
    import json
    from pathlib import Path

    p = Path(path)
    not_regular = QueueError(f"{path}: not a regular file (a device, FIFO or directory): give a text file of {what}")
    if not p.is_file():  # /dev/zero, a FIFO or a directory exists: "no such file" sent one looking for a typo
        raise not_regular if p.exists() else QueueError(f"{path}: no such {what} file")
    limit = f"the limit of {'an' if what[0] in 'aeiou' else 'a'} {what} file is {MAX_EXAMPLES_FILE_BYTES // (1024 * 1024)} MiB"
    try:
        # Non-blocking, and checked again on the open file: a path swapped for a FIFO since the
        # check above would otherwise block the open until something wrote to it.
        with os.fdopen(os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise not_regular
            if info.st_size > MAX_EXAMPLES_FILE_BYTES:
                raise QueueError(f"{path}: {info.st_size:,} bytes, {limit}")
            raw = fh.read(MAX_EXAMPLES_FILE_BYTES + 1)  # bounded: a file grown since the stat is not read whole
    except OSError as exc:
        raise QueueError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None
    if len(raw) > MAX_EXAMPLES_FILE_BYTES:
        raise QueueError(f"{path}: over {MAX_EXAMPLES_FILE_BYTES:,} bytes, {limit}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        n = raw[:exc.start + bom].count(b"\n") + 1
        # A spreadsheet's or Notepad's "Unicode" export is UTF-16: say so, not just "invalid start byte".
        utf16 = " (UTF-16, by its byte-order mark: save it as UTF-8)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise QueueError(f"{path} line {n}: not UTF-8 text ({exc.reason} at byte {exc.start + bom}){utf16}") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        raise QueueError(f"{path}: a .json file is not read (one JSON document, not one example per line): "
                         "give JSONL (.jsonl, one object with a 'text' field per line) or one text per line")
    jsonl = suffix == ".jsonl"
    lines = _table_cells(path, text, "\t" if suffix == ".tsv" else ",") if suffix in (".csv", ".tsv") else \
        enumerate(text.split("\n"), 1)  # "\n" only: line numbers as an editor shows them
    out: list[tuple[int, str]] = []
    column = ", column 'text'" if suffix in (".csv", ".tsv") else ""
    for n, line in lines:
        where = f"{path} line {n}{column}"
        s = line.strip()
        if not s or (s.startswith("#") and suffix not in (".csv", ".tsv")):
            continue
        if "\x00" in s:
            raise QueueError(f"{where}: NUL byte in the example text")
        if jsonl:
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as exc:
                raise QueueError(f"{where}: invalid JSON ({exc.msg})") from None
            except RecursionError:  # a line of 100,000 "[" fits the byte cap
                raise QueueError(f"{where}: invalid JSON (nested too deeply)") from None
            except ValueError as exc:  # e.g. an integer of more digits than Python converts
                raise QueueError(f"{where}: invalid JSON ({str(exc).split(';')[0]})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise QueueError(f"{where}: field 'text' must be a non-empty string")
            s, where = obj["text"], f"{where}, field 'text'"
        if len(out) >= MAX_EXAMPLES:
            raise QueueError(f"{where}: more than {MAX_EXAMPLES:,} {what}, the limit of "
                             f"{'an' if what[0] in 'aeiou' else 'a'} {what} file")
        out.append((n, check_example(s, where)))
    if not out:
        raise QueueError(f"{path}: no {what} (one {'text ' if what == 'examples' else ''}per line)")
    return out


def _table_cells(path: str, text: str, delimiter: str) -> list[tuple[int, str]]:
    """(line, cell) of the `text` column of a CSV / TSV examples file, the first row its header:
    a spreadsheet export read line by line made its header an example and kept each row's quotes
    and other columns in the text. One-line errors name the file and line."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = [h.strip().lower() for h in header]
        if "text" not in names:
            raise QueueError(f"{path} line 1: no 'text' column (columns: {', '.join(h.strip() for h in header)})")
        col = names.index("text")
        out: list[tuple[int, str]] = []
        last = reader.line_num
        for row in reader:  # a row's first line: a quoted cell over several lines ends on a later one
            out.append((last + 1, row[col] if col < len(row) else ""))
            last = reader.line_num
        return out
    except csv.Error as exc:
        raise QueueError(f"{path} line {reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                         f"({exc})") from None


def decided_examples(store: Store, taxonomy: Taxonomy, policy: str, source: Optional[str] = None,
                     surface: Optional[str] = None, limit: int = 200) -> list[str]:
    """The texts of the items (in the scope) whose current decision is `policy`, newest first, at
    most `limit`: the examples of a second seeding round. Five examples find a first handful of
    violations; while no promoted model knows the policy, risk order cannot find more, so the
    confirmed ones become the examples around which the next seeds are searched."""
    if policy not in taxonomy.policies:
        raise QueueError(f"unknown policy {policy!r} (known: {', '.join(taxonomy.policies)})")
    with store.read() as conn:
        rows = sorted((d for d in current_decisions(conn).values() if d["label"] == policy),
                      key=lambda d: (d["created_at"], d["id"]), reverse=True)
        ids = [d["item_id"] for d in rows]
        texts: dict[str, str] = {}
        for i in range(0, len(ids), 500):  # the decided items' texts, in the scope
            q = select(I.c.id, I.c.text).where(I.c.id.in_(ids[i:i + 500]))
            if source:
                q = q.where(I.c.source == source)
            if surface:
                q = q.where(I.c.surface == surface)
            texts.update(conn.execute(q).all())
    return [texts[i] for i in ids if texts.get(i)][:limit]


def nearest_round_robin(sims: np.ndarray, n: int, min_similarity: float,
                        groups: Optional[Sequence[Any]] = None, vectors: Optional[np.ndarray] = None,
                        max_similarity: Optional[float] = None) -> list[tuple[int, int, float]]:
    """Up to `n` (row, example, similarity) picks from an (items x examples) similarity matrix:
    each example in turn takes its nearest row not yet taken, with similarity >= `min_similarity`
    and a group (e.g. the text hash; a tuple holds several, e.g. text and campaign) not yet taken.
    With `vectors` (the rows' unit embeddings) and
    `max_similarity`, a row within that cosine of a row already taken is passed over too: one
    label of a template teaches what ten near-copies would, so the seeds spread over more of what
    the examples resemble. Pure; the seed order."""
    sims = np.atleast_2d(np.asarray(sims, dtype=float))
    rows, m = sims.shape
    if rows == 0 or m == 0 or n <= 0:
        return []
    n = min(int(n), rows)  # no more picks than rows: a huge `n` ("all of them") sizes nothing by itself
    V = None
    if vectors is not None and max_similarity is not None:
        V = np.asarray(vectors)   # no copy of a large pool's vectors: rows are read as they are tried
        if V.shape[0] != rows:
            raise ValueError(f"vectors has {V.shape[0]} rows, sims {rows}")
        taken_v = np.zeros((n, V.shape[1]), dtype=np.float32)
    orders = [np.argsort(-sims[:, e], kind="stable") for e in range(m)]
    ptr = [0] * m
    taken_rows: set[int] = set()
    taken_groups: set[Any] = set()
    out: list[tuple[int, int, float]] = []
    active = set(range(m))
    while len(out) < n and active:
        for e in sorted(active):
            if len(out) >= n:
                break
            while ptr[e] < rows:
                r = int(orders[e][ptr[e]])
                ptr[e] += 1
                if sims[r, e] < min_similarity:
                    ptr[e] = rows
                    break
                g = groups[r] if groups is not None else None
                keys = [x for x in g if x is not None] if isinstance(g, tuple) else [] if g is None else [g]
                if r in taken_rows or any(x in taken_groups for x in keys):
                    continue
                v = V[r].astype(np.float32) if V is not None else None
                if v is not None and np.isnan(v).any():
                    v = None   # a row without a vector is kept apart by its group alone
                if v is not None and out and float((taken_v[:len(out)] @ v).max()) >= max_similarity:
                    continue
                taken_rows.add(r)
                taken_groups.update(keys)
                if v is not None:
                    taken_v[len(out)] = v
                out.append((r, e, float(sims[r, e])))
                break
            if ptr[e] >= rows:
                active.discard(e)
    return out


def interleave_uniform(seeds: list[Any], uniform: list[Any]) -> list[Any]:
    """The seed order with the uniform sample spread evenly through it."""
    if not uniform:
        return list(seeds)
    out: list[Any] = []
    total = len(seeds) + len(uniform)
    step = total / len(uniform)
    u_pos = {int(math.floor(step * (j + 0.5))) for j in range(len(uniform))}
    s_it, u_it = iter(seeds), iter(uniform)
    for pos in range(total):
        nxt = next(u_it, None) if pos in u_pos else next(s_it, None)
        if nxt is None:
            nxt = next(s_it, None) if pos in u_pos else next(u_it, None)
        if nxt is not None:
            out.append(nxt)
    return out


def seed_cases(store: Store, taxonomy: Taxonomy, config: QueueConfig, actor: Actor, *, policy: str,
               examples: Sequence[str], embedder: "Embedder", keywords: Sequence[str] = (), source: Optional[str] = None,
               surface: Optional[str] = None, neighbours: Optional[int] = None,
               uniform_share: Optional[float] = None, max_similarity: Optional[float] = None,
               now: Optional[dt.datetime] = None, progress: bool = False) -> dict[str, Any]:
    """Seed the first cases of `policy` in the scope (source / surface) around `examples` and
    items holding `keywords` (round-robin over both).

    Needs `build_cases`. Items already decided, or whose case is claimed, decided or escalated,
    are left out; an item's waiting case moves to the seed queue; an item without a case gets
    one. A neighbour within `max_similarity` cosine (default: seeding.max_similarity) of one
    already seeded is a near-copy and is passed over. Returns the queue, counts, the near-copy
    threshold used and each seeded item (id, kind seed / uniform, similarity, example index, case id)."""
    check_permission(actor, "build_cases", f"seed {policy}")
    if policy not in taxonomy.policies:
        raise QueueError(f"unknown policy {policy!r} (known: {', '.join(taxonomy.policies)})")
    for i, e in enumerate(examples, 1):  # what `check_example` refuses would crash the tokenizer
        if e and has_undecodable_bytes(e):
            raise QueueError(f"example {i}: the example text is not UTF-8 (an undecodable byte)")
        if e and has_lone_surrogate(e):
            raise QueueError(f"example {i}: the example text holds a lone surrogate, not Unicode text")
    # Invisible-only is empty; a repeat (a line twice, a --query also in the file, a decided text
    # from --from-decisions) is the example once: each copy took a turn of the round-robin.
    kept: dict[str, str] = {}
    for e in examples:
        key = normalize_light(e) if e else ""
        if key and key not in kept:
            kept[key] = e.strip()
    examples = list(kept.values())
    keywords = list(dict.fromkeys(check_keyword(k, f"keyword {i}") for i, k in enumerate(keywords, 1)))
    if not examples and not keywords:
        raise QueueError("seeding needs at least one non-empty example text, query or keyword")
    settings = config.seeding
    if neighbours is not None and (isinstance(neighbours, bool) or not isinstance(neighbours, (int, float, np.number))
                                   or not float(neighbours).is_integer()):  # NaN, 2.5, "8": not int()'s guess
        raise QueueError(f"neighbours must be a positive whole number, not {neighbours!r}")
    n_seed = settings.neighbours if neighbours is None else int(neighbours)
    share = settings.uniform_share if uniform_share is None else float(uniform_share)
    near = settings.max_similarity if max_similarity is None else float(max_similarity)
    for bad, what in ((n_seed <= 0, f"neighbours must be positive, not {n_seed}"),
                      (not 0.0 <= share <= 1.0, f"uniform_share must be between 0 and 1, not {share:g}"),
                      (near is not None and not -1.0 < near <= 1.0, f"max_similarity must be in (-1, 1], not {near}")):
        if bad:
            raise QueueError(what)
    now = now or utcnow()
    from models.embeddings import EmbeddingCache, embed_texts

    q = select(I.c.id, I.c.text, I.c.text_hash, I.c.source, I.c.surface).order_by(I.c.id)
    if source:
        q = q.where(I.c.source == source)
    if surface:
        q = q.where(I.c.surface == surface)
    with store.read() as conn:
        items = conn.execute(q).all()
        decided = set(current_decisions(conn, [r.id for r in items]))
        busy = set(conn.execute(select(C.c.item_id).where(C.c.item_id.is_not(None),
                                                          C.c.state.notin_(("open",)))).scalars())
    pool = [r for r in items if r.id not in decided and r.id not in busy]
    if not pool:
        raise QueueError("no undecided item to seed in " + (f"source {source!r}" if source else "the store")
                         + (f", surface {surface!r}" if surface else ""))
    vecs = embed_texts([r.text for r in pool], embedder, EmbeddingCache(store, embedder.model_id),
                       hashes=[r.text_hash for r in pool], show_progress=progress)
    salt = f"{config.seed}:seed:{policy}"
    sims = vecs @ embedder.encode(list(examples)).T if examples else np.zeros((len(pool), 0))
    if keywords:
        draws = [uniform_draw(r.id, f"{salt}:keyword") for r in pool]
        sims = np.hstack([sims, keyword_similarities([r.text for r in pool], keywords, draws)])
    # One seed per text and per campaign: a spam wave varied past the near-copy threshold (or with
    # --max-similarity 1) otherwise fills the seeds with one campaign, which its campaign case decides.
    camp = _campaigns(store, [r.id for r in pool])
    groups = [(("text", r.text_hash), ("campaign", camp[r.id]) if r.id in camp else None) for r in pool]
    picks = nearest_round_robin(sims, n_seed, settings.min_similarity, groups, vecs, near)
    chosen = {r for r, _, _ in picks}
    n_uni = int(round(share * len(picks))) if picks else int(round(share * n_seed))
    rest = sorted((i for i in range(len(pool)) if i not in chosen), key=lambda i: uniform_draw(pool[i].id, salt))
    uniform = rest[:n_uni]
    order = interleave_uniform([("seed", r, e, s) for r, e, s in picks],
                               [("uniform", r, None, None) for r in uniform])
    inclusion = len(uniform) / len(rest) if rest else None  # each undecided item's chance of the uniform draw
    out = _write_seeds(store, taxonomy, config, actor, policy, [*examples, *keywords], pool, order, now,
                       {"source": source, "surface": surface}, inclusion, n_examples=len(examples))
    return {**out, "keywords": len(keywords), "max_similarity": near}


def _campaigns(store: Store, item_ids: Sequence[str]) -> dict[str, int]:
    """item id -> the campaign it is a member of, for the items given that are members."""
    out: dict[str, int] = {}
    with store.read() as conn:
        for i in range(0, len(item_ids), 900):
            out.update(conn.execute(select(CM.c.item_id, CM.c.campaign_id)
                                    .where(CM.c.item_id.in_(item_ids[i:i + 900]))).all())
    return out


def _write_seeds(store: Store, taxonomy: Taxonomy, config: QueueConfig, actor: Actor, policy: str,
                 examples: Sequence[str], pool: Sequence[Any], order: Sequence[tuple[Any, ...]], now: dt.datetime,
                 scope: dict[str, Any], inclusion: Optional[float] = None,
                 n_examples: Optional[int] = None) -> dict[str, Any]:
    """Create or move the seed cases, pinned at the head of the queue `policy` routes to. A uniform
    case is a QA audit whose inclusion probability is that of the uniform draw (`inclusion`).
    `examples` holds the example texts, then (from index `n_examples`) the keywords."""
    n_ex = len(examples) if n_examples is None else n_examples
    out: dict[str, Any] = {"policy": policy, "examples": n_ex, "scope": scope, "seeded": 0, "uniform": 0,
                           "created": 0, "moved": 0, "passed_over": 0, "items": []}
    with store.begin() as conn:
        serialise(conn, "case-builds")  # case builds, seeds and re-review draws write cases one at a time
        ids = [pool[r].id for _, r, _, _ in order]
        # The pool was read (and embedded) before this transaction: an item whose case an analyst
        # claimed, decided or escalated meanwhile keeps that case and is passed over, not given a second one.
        taken = set(conn.execute(select(C.c.item_id).where(C.c.item_id.in_(ids), C.c.state != "open")).scalars())
        taken |= set(current_decisions(conn, ids))
        order = [o for o in order if pool[o[1]].id not in taken]
        out["passed_over"] = len(ids) - len(order)
        ids = [pool[r].id for _, r, _, _ in order]
        records = predictions_of_record(conn, ids)
        existing = {row.item_id: row for row in conn.execute(
            select(C.c.id, C.c.item_id, C.c.state, C.c.meta, C.c.created_at, C.c.due_at, C.c.queue, C.c.updated_at)
            .where(C.c.item_id.in_(ids), C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
                   C.c.state == "open")).all()} if ids else {}
        queue = None
        for kind, r, e, s in order:
            item = pool[r]
            q = route(config, Candidate(item_id=item.id, text=item.text, label=policy, score=1.0, scores={},
                                        surface=item.surface, source=item.source), taxonomy.severity_of(policy),
                      taxonomy.benign_label)
            queue = queue or q
        queue = queue or config.default_queue
        top = conn.execute(select(func.max(C.c.priority)).where(C.c.queue == queue,
                                                                C.c.state == config.waiting_state(queue))).scalar()
        top = float(top or 0.0) + 1.0
        total = len(order)
        for pos, (kind, r, e, s) in enumerate(order):
            item = pool[r]
            rec = records.get(item.id)
            word = examples[e] if e is not None and e >= n_ex else None
            why = (f"uniform QA sample of the {policy} seed scope" if kind != "seed" else
                   # masked: a keyword is often a slur, and a priority reason is shown on every
                   # case list and screen, masked case or not (meta keeps it for the engineer)
                   f"holds keyword {mask_text(word)!r} for policy {policy}" if word is not None else
                   f"similar ({s:.2f}) to example {e + 1} of {n_ex} for policy {policy}")
            pin = {"priority": round(top + 1.0 - (pos + 1) / (total + 1), 9), "why": why}
            info = {"policy": policy, "kind": kind, "seeded_at": now.isoformat(),
                    "similarity": None if s is None or word is not None else round(s, 4),
                    "example": None if e is None or word is not None else e + 1, "keyword": word}
            case = existing.get(item.id)
            if case is not None:
                meta = dict(case.meta or {})
                feats = {k: v for k, v in (meta.get("features") or {}).items() if k != "learning"}
                feats["seed"] = pin
                meta.pop("learning", None)
                meta.update(features=feats, seed=info, **({"seeded_from": case.queue} if case.queue != queue else {}))
                p, reason, _ = score_features(taxonomy, feats, config, case.created_at, case.due_at, now)
                values: dict[str, Any] = {"queue": queue, "priority": p, "priority_reason": reason, "meta": meta,
                                          "updated_at": now}
                if kind == "uniform":
                    values.update(is_audit=True, audit_inclusion=inclusion)
                # Claims do not take the case writers' lock: a case claimed since it was read stays as the
                # analyst has it (a compare-and-swap on state and updated_at), passed over like the rest.
                moved = conn.execute(update(C).where(unchanged(case.id, "open", case.updated_at)).values(**values))
                if not moved.rowcount:
                    out["passed_over"] += 1
                    continue
                case_id = case.id
                out["moved"] += 1
            else:
                cand = (Candidate(item_id=item.id, text=item.text, label=rec["label"], score=float(rec["score"]),
                                  scores=dict(rec["scores"] or {}), uncertainty=float(rec["uncertainty"] or 0.0),
                                  model_version=rec["model_version"], surface=item.surface, source=item.source,
                                  flags=dict(rec["flags"] or {}))
                        if rec else Candidate(item_id=item.id, text=item.text, label=taxonomy.benign_label, score=0.0,
                                              scores={}, surface=item.surface, source=item.source))
                row = plan_case(taxonomy, config, cand, now)
                row["meta"]["seed"] = info
                if rec is None:  # no model scored it yet: the case suggests nothing (a decision is no override)
                    row["predicted_label"] = None
                if row["escalation_reason"] is None:  # an escalation criterion outranks a seed
                    row["meta"]["features"]["seed"] = pin
                    p, reason, _ = score_features(taxonomy, row["meta"]["features"], config, now, row["due_at"], now)
                    row.update(queue=queue, state=config.waiting_state(queue), priority=p, priority_reason=reason)
                    if kind == "uniform":
                        row.update(is_audit=True, audit_inclusion=inclusion)
                case_id = conn.execute(insert(C).values(**row)).inserted_primary_key[0]
                out["created"] += 1
            out["seeded" if kind == "seed" else "uniform"] += 1
            out["items"].append({"item_id": item.id, "kind": kind, "similarity": info["similarity"],
                                 "example": info["example"], "keyword": word, "case_id": int(case_id)})
        out["queue"] = queue
        audit.record(conn, actor, "cases.seed", "queue", None,
                     {k: v for k, v in out.items() if k != "items"} | {"config_version": config.version})
    return out
