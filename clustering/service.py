"""Clustering runs: embed, index and attach new items to campaigns (incremental), or re-cluster.

Reading campaigns is `explore`, nearest-neighbour search is `search`. The index and the campaign graph live
in `<data dir>/campaigns/`; campaigns and their members live in the database (Campaign,
CampaignMember), so `workbench items` and the queues see them. A run writes the database first
(campaigns, members, one audit event, all in one transaction) and saves the graph after, so an
interrupted run leaves the new items unattached and the next run attaches them again.

Campaign ids stay stable across runs: an existing campaign's id goes to the component holding
most of its old members (so a split leaves the id, its case and tags with the majority); the
other part records `split_from`. A campaign left with no members is marked `merged`, records
`merged_into`, and its waiting case is closed in the same transaction (it has nothing to decide).
"""
from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update

from core import audit
from core.hooks import check_permission
from core.principals import SYSTEM, Actor, actor_name
from core.schema import AuditEvent, Campaign, CampaignMember, Case, Item, utcnow
from core.text import text_hash

from . import facts
from .campaigns import CampaignGraph, Components
from .config import CampaignSettings
from .index import IndexError_
from .persist import atomic_write
from .normalize import NORMALIZE_VERSION, analyse, normalize_template

if TYPE_CHECKING:  # pragma: no cover
    from models.embeddings import Embedder
    from core.store import Store

CAMPAIGN_DIR = "campaigns"
_CHUNK = 500  # ids per IN (...) list
_TERM_SAMPLE = 300
TERMS_REFRESH_GROWTH = 0.25  # recompute a campaign's top terms once it grew this much
_CT = Campaign.__table__
_MT = CampaignMember.__table__
_IT = Item.__table__
_CS = Case.__table__
WAITING = ("open", "claimed", "escalated")  # campaign case states still in a queue


class CampaignError(RuntimeError):
    """A user-caused problem (unknown campaign or item, nothing indexed yet); the message says what to do."""


@dataclass(frozen=True)
class PreparedText:
    """What clustering needs from one item text: the embedded text, its key and its entities."""

    key: str
    embed_text: str
    template: str
    entities: Any


def prepare(text: str, settings: CampaignSettings) -> PreparedText:
    template, entities = analyse(text)
    embed = template if settings.embed == "template" else text
    return PreparedText(text_hash(embed), embed, template, entities)


def graph_dir(store: "Store") -> Path:
    return store.path(CAMPAIGN_DIR, "index.json").parent


def make_embedder(settings: CampaignSettings) -> "Embedder":
    from models.embeddings import Embedder

    return Embedder(settings.embedding_model)


@contextlib.contextmanager
def _run_lock(store: "Store") -> Iterator[None]:
    """One clustering run at a time per store (`Store.exclusive`): a file lock on SQLite, a
    session advisory lock on PostgreSQL, so two hosts of one database never write campaigns at
    once (the graph files themselves live in the data dir of the host that runs it)."""
    from core.store import Busy

    try:
        with store.exclusive("cluster"):
            yield
    except Busy:
        raise CampaignError(f"another `workbench cluster` is running on this store ({store.data_dir}, or another "
                            "host of its database); wait for it to finish") from None


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _item_time() -> Any:
    return func.coalesce(_IT.c.created_at, _IT.c.ingested_at)


def _fetch_items(conn: Any, ids: Sequence[str], cols: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for chunk in _chunks(list(ids)):
        for row in conn.execute(select(_IT.c.id, *cols).where(_IT.c.id.in_(chunk))):
            out[row[0]] = row
    return out


# -- clustering ---------------------------------------------------------------------------
def _load_or_new_graph(store: "Store", settings: CampaignSettings, embedder: "Embedder",
                       rebuild: bool) -> tuple[CampaignGraph, Optional[str]]:
    """The saved graph when it fits, else an empty one and the reason a full re-cluster is needed."""
    d = graph_dir(store)
    reason: Optional[str] = "--rebuild asked" if rebuild else None
    if reason is None and not CampaignGraph.exists(d):
        reason = "no index yet"
    if reason is None:
        try:
            graph = CampaignGraph.load(d, settings)
        except IndexError_ as exc:
            reason = f"saved index unusable ({exc})"
        else:
            built = CampaignSettings.model_validate(graph.built_with) if graph.built_with else None
            if graph.model_id != embedder.model_id:
                reason = f"embedding model changed ({graph.model_id} -> {embedder.model_id})"
            elif built is None or built.linking_key() != settings.linking_key():
                reason = "linking settings in campaigns.yaml changed"
            elif graph.normalized_with != NORMALIZE_VERSION:
                reason = (f"template and entity rules changed (version {graph.normalized_with} -> "
                          f"{NORMALIZE_VERSION})")
            else:
                reason = _unrecorded_run(store)
                if reason is None:
                    return graph, None
    return CampaignGraph(settings, embedder.dim, embedder.model_id), reason


def _run_path(store: "Store") -> Path:
    return store.path(CAMPAIGN_DIR, "run.json")


def _unrecorded_run(store: "Store") -> Optional[str]:
    """Why the saved graph cannot be trusted for this database (None: it can): the database must
    hold the audit event of the run that saved it. The graph lives in the data dir, the campaigns
    in the database: a new, reset or restored database (re-ingested with the same item ids) must
    not be read as "already clustered", or it never gets its campaigns."""
    try:
        digest = json.loads(_run_path(store).read_text(encoding="utf-8"))["audit_hash"]
    except FileNotFoundError:
        return "no record of the run that saved the index (saved by an older version, or copied in)"
    except (OSError, ValueError, KeyError, TypeError):
        digest = None
    if not isinstance(digest, str):
        return f"{_run_path(store)} unreadable"
    t = AuditEvent.__table__
    with store.read() as conn:
        found = conn.execute(select(t.c.id).where(t.c.hash == digest, t.c.action.in_(
            ("campaigns.attach", "campaigns.rebuild")))).first()
    return None if found else "the database does not record the run that saved the index (a new or restored database?)"


def _output_changed(graph: CampaignGraph, settings: CampaignSettings) -> Optional[str]:
    """Settings that shape only what is written (not the graph) and changed since the saved run, or
    the linking rules' version (`facts.LINKING_VERSION`); None when neither did. Every campaign is
    then written again (no component's labels changed)."""
    built = graph.built_with or {}
    changed = [k for k in ("min_campaign_size", "top_terms") if built.get(k) != getattr(settings, k)]
    if changed:
        return f"{' and '.join(changed)} in campaigns.yaml changed"
    stale = graph.linked_with != facts.LINKING_VERSION
    return f"campaign linking rules changed (version {graph.linked_with} -> {facts.LINKING_VERSION})" if stale else None


def _new_item_ids(conn: Any, graph: CampaignGraph) -> tuple[list[str], bool]:
    """Ids of items not in the graph, and whether every graph item is still in the store.

    Fast path: items ingested since the graph's watermark, accepted only when the counts add
    up (an ingest that committed late with older times breaks the sum); otherwise every id is read.
    """
    total = conn.execute(select(func.count()).select_from(_IT)).scalar_one()
    if len(graph) and graph.watermark is not None:
        recent = conn.execute(select(_IT.c.id).where(_IT.c.ingested_at >= graph.watermark)).scalars().all()
        fresh = sorted(i for i in recent if i not in graph)
        if len(graph) + len(fresh) == total:
            return fresh, True
    db_ids = set(conn.execute(select(_IT.c.id)).scalars())
    intact = all(i in db_ids for i in graph.item_ids)
    return sorted(db_ids.difference(graph.item_ids)), intact


def cluster(store: "Store", settings: CampaignSettings, rebuild: bool = False,
            embedder: Optional["Embedder"] = None, use_cache: bool = True, actor: Actor = SYSTEM["system"],
            show_progress: bool = True) -> dict[str, Any]:
    """Embed, index and attach the items not yet clustered; a full re-cluster with `rebuild=True`.

    Returns a summary: mode (incremental / full and why), items added, campaigns created,
    updated and merged, index kind and size, seconds per phase.
    """
    check_permission(actor, "cluster", "campaigns")
    actor = actor_name(actor)
    from models.embeddings import EmbeddingCache, embed_texts

    embedder = embedder or make_embedder(settings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with _run_lock(store):
        graph, reason = _load_or_new_graph(store, settings, embedder, rebuild)
        with store.read() as conn:
            new_ids, intact = _new_item_ids(conn, graph)
            if not intact:
                graph, reason = CampaignGraph(settings, embedder.dim, embedder.model_id), \
                    "index holds items the store no longer has"
                new_ids, _ = _new_item_ids(conn, graph)
            rows = _fetch_items(conn, new_ids, [_IT.c.text, _IT.c.ingested_at, _item_time().label("seen")])
        fresh_terms = reason is None and "top_terms" in (_output_changed(graph, settings) or "")
        reason = reason or _output_changed(graph, settings)
        prev_labels = None if reason else _saved_labels(store, len(graph))
        timings["load"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        from tqdm.auto import tqdm

        prepared = [prepare(rows[i].text, settings)
                    for i in tqdm(new_ids, desc="normalising texts", unit="item", leave=False,
                                  disable=not show_progress or len(new_ids) < 5000)]
        keys = [p.key for p in prepared]
        missing = set(graph.missing_keys(keys))
        first: dict[str, str] = {}
        for p in prepared:
            if p.key in missing:
                first.setdefault(p.key, p.embed_text)
        miss_keys = list(first)
        cache = EmbeddingCache(store, embedder.model_id) if use_cache else None
        vectors = embed_texts([first[k] for k in miss_keys], embedder, cache=cache, hashes=miss_keys,
                              show_progress=show_progress) if miss_keys else None
        timings["normalise_embed"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if rows:
            newest = max(r.ingested_at for r in rows.values())
            graph.watermark = max(graph.watermark, newest) if graph.watermark else newest
        stats = graph.add(new_ids, keys, [p.entities for p in prepared],
                          vectors if vectors is not None else np.empty((0, embedder.dim), np.float32),
                          terms=[facts.terms_of(p.template) for p in prepared],
                          times=[rows[i].seen for i in new_ids], show_progress=show_progress)
        comps = graph.components()
        timings["link"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        touched = _touched_labels(comps.labels, prev_labels)
        templates = {i: p.template for i, p in zip(new_ids, prepared)}
        summary, digest = _write_campaigns(store, graph, comps, touched, settings, templates, actor,
                                           full=reason is not None, reason=reason, stats=stats.as_dict(),
                                           fresh_terms=fresh_terms)
        timings["write"] = time.perf_counter() - t3
        t4 = time.perf_counter()
        graph.save(graph_dir(store))
        _save_labels(store, comps.labels)
        atomic_write(_run_path(store), json.dumps({"audit_hash": digest}).encode("utf-8"))
        timings["save"] = time.perf_counter() - t4
    timings["total"] = time.perf_counter() - t0
    summary["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return summary


def _labels_path(store: "Store") -> Path:
    return store.path(CAMPAIGN_DIR, "labels.npy")


def _saved_labels(store: "Store", n: int) -> Optional[np.ndarray]:
    """The last run's component labels (only which components to rewrite depends on them), or
    None when missing, unreadable or not this graph's: then every component is rewritten."""
    p = _labels_path(store)
    try:
        labels = np.load(p)
    except (OSError, EOFError, ValueError):  # missing, empty, truncated, not an .npy
        return None
    ok = labels.ndim == 1 and labels.dtype.kind in "iu" and len(labels) == n
    return labels if ok and (not n or (labels.min() >= 0 and labels.max() < n)) else None


def _save_labels(store: "Store", labels: np.ndarray) -> None:
    p = _labels_path(store)
    tmp = p.with_name("labels.tmp.npy")
    np.save(tmp, labels)
    tmp.replace(p)


def _touched_labels(labels: np.ndarray, prev: Optional[np.ndarray]) -> np.ndarray:
    """Components whose membership may differ from the last run (all of them without a last run)."""
    if prev is None:
        return np.unique(labels)
    n_prev = len(prev)
    changed = np.flatnonzero(labels[:n_prev] != prev)
    touched = set(np.unique(labels[n_prev:]).tolist()) | set(np.unique(labels[changed]).tolist())
    if len(changed):
        # A split leaves the old label on the rows that stayed: their component changed too.
        old = np.isin(prev, np.unique(prev[changed]))
        touched |= set(np.unique(labels[:n_prev][old]).tolist())
    return np.array(sorted(touched), dtype=np.int64)


def _write_campaigns(store: "Store", graph: CampaignGraph, comps: Components, touched: np.ndarray,
                     settings: CampaignSettings, templates: dict[str, str], actor: str, full: bool,
                     reason: Optional[str], stats: dict[str, int],
                     fresh_terms: bool = False) -> tuple[dict[str, Any], str]:
    """Write the touched components as campaigns in one transaction; (summary, its audit hash)."""
    labels = comps.labels
    mask = np.isin(labels, touched)
    rows = np.flatnonzero(mask)
    order = rows[np.argsort(labels[rows], kind="stable")]
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    groups = [g for g in np.split(order, cuts) if len(g)] if len(order) else []
    ids = graph.item_ids
    touched_ids = [ids[r] for r in rows.tolist()]
    now = utcnow()
    created = updated = 0
    merged: set[int] = set()
    # Read and plan outside the write transaction (only clustering runs, serialised by the run
    # lock, write campaign members), so reviewers' writes are not blocked while facts are computed.
    with store.read() as conn:
        old_rows: dict[str, tuple[int, Optional[str], Optional[float], Any]] = {}
        cols = (_MT.c.item_id, _MT.c.campaign_id, _MT.c.linked_by, _MT.c.similarity, _MT.c.added_at)
        if full:
            old_rows = {r[0]: tuple(r[1:]) for r in conn.execute(select(*cols))}
        else:
            for chunk in _chunks(touched_ids):
                old_rows.update({r[0]: tuple(r[1:]) for r in conn.execute(select(*cols).where(_MT.c.item_id.in_(chunk)))})
        old_camp = {k: v[0] for k, v in old_rows.items()}
        reported = sorted((g for g in groups if len(g) >= settings.min_campaign_size), key=lambda g: (-len(g), g[0]))
        votes = [Counter(old_camp[ids[r]] for r in g.tolist() if ids[r] in old_camp) for g in reported]
        cids = assign_ids(votes, [len(g) for g in reported])
        claimed = {c for c in cids if c is not None}
        split_from = [sorted(c for c in v if c in claimed and c != cid) for v, cid in zip(votes, cids)]
        stored = _stored_reasons(conn, sorted(claimed))
        kept_terms = [None] * len(reported) if fresh_terms else _reusable_terms(stored, reported, cids, old_camp, ids)
        # Items of campaigns whose terms are recomputed need their text (new items: in hand).
        need_text = [ids[r] for g, kt in zip(reported, kept_terms) if kt is None
                     for r in g[:_TERM_SAMPLE].tolist() if ids[r] not in templates]
        texts = _fetch_items(conn, need_text, [_IT.c.text])
    n_classes = max(len(np.unique(labels)), 1)
    mentions = graph.mentions(np.concatenate(reported)) if reported else {}
    plans: list[tuple[Optional[int], dict[str, Any], np.ndarray, list[tuple[str, Optional[float]]]]] = []
    from tqdm.auto import tqdm

    for g, cid, kt, parts in tqdm(list(zip(reported, cids, kept_terms, split_from)), desc="campaign facts",
                                  unit="campaign", leave=False, disable=len(reported) < 2000):
        reasons = graph.link_reasons(comps, g, mentions)
        f = _campaign_facts(graph, comps, g, texts, templates, settings, n_classes, mentions, reasons, kt)
        # Provenance survives later runs: a split once recorded stays recorded.
        earlier = (stored.get(cid, (None, {}))[1] or {}).get("split_from", []) if cid is not None else []
        if parts or earlier:
            f["link_reasons"]["split_from"] = sorted(set(earlier) | set(parts))
        plans.append((cid, f, g, reasons))
    with store.begin() as conn:
        new_rows = [{**f, "created_at": now, "updated_at": now, "status": "active"} for cid, f, _, _ in plans if cid is None]
        new_ids: list[int] = []
        if new_rows:
            res = conn.execute(insert(_CT).returning(_CT.c.id, sort_by_parameter_order=True), new_rows)
            new_ids = [r[0] for r in res]
            created = len(new_ids)
        upd = [{"cid": cid, **f, "updated_at": now, "status": "active"} for cid, f, _, _ in plans if cid is not None]
        if upd:
            stmt = update(_CT).where(_CT.c.id == bindparam("cid")).values(
                {k: bindparam(k) for k in upd[0] if k != "cid"})
            conn.execute(stmt, upd)
            updated = len(upd)
        # Members: rewrite only rows whose campaign or reason changed; drop those now in none.
        it = iter(new_ids)
        member_rows = []
        now_camp: dict[str, int] = {}
        final: list[tuple[int, dict[str, Any], set[str]]] = []
        split_now: dict[str, list[int]] = {}
        for (cid, f, g, reasons), parts in zip(plans, split_from):
            cid = cid if cid is not None else next(it)
            final.append((cid, f, {ids[r] for r in g.tolist()}))
            if parts:
                split_now[str(cid)] = parts
            for r, (why, sim) in zip(g.tolist(), reasons):
                item = ids[r]
                now_camp[item] = cid
                old = old_rows.get(item)
                if old is None or old[0] != cid or old[1] != why or not _same_sim(old[2], sim):
                    # A member staying in its campaign keeps the time it joined (growth counts joins).
                    member_rows.append({"item_id": item, "campaign_id": cid, "linked_by": why, "similarity": sim,
                                        "added_at": old[3] if old is not None and old[0] == cid else now})
        stale = [i for i in old_rows if i not in now_camp] + [m["item_id"] for m in member_rows if m["item_id"] in old_rows]
        for chunk in _chunks(stale):
            conn.execute(delete(_MT).where(_MT.c.item_id.in_(chunk)))
        for chunk in _chunks(member_rows, 5000):
            conn.execute(insert(_MT), list(chunk))
        # Campaigns that lost every member: merged into another one, or dissolved.
        kept = claimed | set(new_ids)
        gone = set(old_camp.values()) - kept
        if full:
            gone |= set(conn.execute(select(_CT.c.id).where(_CT.c.status == "active")).scalars()) - kept
        into: dict[int, Optional[int]] = {}
        if gone:
            conn.execute(update(_CT).where(_CT.c.id.in_(sorted(gone))).values(
                status="merged", size=0, updated_at=now))
            merged = gone
            into = _record_merges(conn, gone, old_rows, now_camp, now)
        closed = _close_merged_cases(conn, into, actor, now)
        refreshed = _refresh_case_exemplars(conn, final, now)
        summary = {
            "mode": "full" if full else "incremental", "reason": reason, **stats,
            "items_clustered": len(ids), "components_touched": int(len(touched)),
            "campaigns_created": created, "campaigns_updated": updated, "campaigns_merged": len(merged),
            "member_rows_written": len(member_rows),
            "merged_into": {str(k): v for k, v in sorted(into.items())},
            "split_from": split_now,
            "cases_closed": closed, "case_exemplars_refreshed": refreshed,
            "campaigns_active": conn.execute(select(func.count()).select_from(_CT)
                                             .where(_CT.c.status == "active")).scalar_one(),
            "index": {"kind": graph.index.kind, "size": len(graph.index),
                      "hnsw_min_size": graph.index.hnsw_min_size,
                      "switched_at_size": graph.index.switched_at_size},
        }
        digest = audit.record(conn, actor, "campaigns.rebuild" if full else "campaigns.attach", "campaigns", None,
                              {k: v for k, v in summary.items()})
    return summary, digest


def assign_ids(votes: Sequence[Counter[int]], sizes: Sequence[int]) -> list[Optional[int]]:
    """The existing campaign id each group keeps (None: a new campaign), from `votes[g][cid]`, the
    number of group g's members that were in campaign cid.

    Why across all groups at once: an id goes to the group holding most of its old members, so a
    split leaves the id (and the case, decisions and tags attached to it) with the majority even
    when the other part grew bigger. Greedy over (most votes, bigger group, lower id); each id and
    each group is used once.
    """
    if len(votes) != len(sizes):
        raise ValueError(f"assign_ids: {len(votes)} vote counts for {len(sizes)} groups")
    cands = sorted((-n, -sizes[g], cid, g) for g, v in enumerate(votes) for cid, n in v.items() if n > 0)
    out: list[Optional[int]] = [None] * len(votes)
    used: set[int] = set()
    for _n, _size, cid, g in cands:
        if out[g] is None and cid not in used:
            out[g] = cid
            used.add(cid)
    return out


def _stored_reasons(conn: Any, cids: Sequence[int]) -> dict[int, tuple[Any, dict[str, Any]]]:
    """(top terms, link reasons) of the retained campaigns, as stored."""
    stored: dict[int, tuple[Any, dict[str, Any]]] = {}
    for chunk in _chunks(list(cids)):
        for cid, terms, reasons in conn.execute(select(_CT.c.id, _CT.c.top_terms, _CT.c.link_reasons)
                                                .where(_CT.c.id.in_(chunk))):
            stored[cid] = (terms, reasons or {})
    return stored


def _record_merges(conn: Any, gone: set[int], old_rows: dict[str, tuple[Any, ...]], now_camp: dict[str, int],
                   now: Any) -> dict[int, Optional[int]]:
    """Each emptied campaign's `merged_into` (the campaign holding most of its old members; None when
    they are in none, a dissolved campaign), stored in its link reasons; {campaign: merged_into}."""
    dest: dict[int, Counter[int]] = {c: Counter() for c in gone}
    for item, old in old_rows.items():
        if old[0] in dest and item in now_camp:
            dest[old[0]][now_camp[item]] += 1
    into = {c: (min(v.items(), key=lambda x: (-x[1], x[0]))[0] if v else None) for c, v in dest.items()}
    for cid, reasons in conn.execute(select(_CT.c.id, _CT.c.link_reasons).where(_CT.c.id.in_(sorted(gone)))).all():
        conn.execute(update(_CT).where(_CT.c.id == cid).values(
            link_reasons={**(reasons or {}), "merged_into": into.get(cid)}, updated_at=now))
    return into


def _close_merged_cases(conn: Any, into: dict[int, Optional[int]], actor: str, now: Any) -> int:
    """Close the waiting cases of merged campaigns, this run's and any an earlier run left open
    (nothing left to decide; left open they would be served, escalated and fail on decide).
    `decided` is the schema's one terminal state; the meta and audit event say it closed without a
    decision, and why. The count closed."""
    rows = conn.execute(
        select(_CS.c.id, _CS.c.campaign_id, _CS.c.state, _CS.c.claimed_by, _CS.c.meta, _CT.c.link_reasons)
        .join(_CT, _CT.c.id == _CS.c.campaign_id)
        .where(_CT.c.status == "merged", _CS.c.state.in_(WAITING)).order_by(_CS.c.id)).mappings().all()
    closed = 0
    for r in rows:
        dest = into[r["campaign_id"]] if r["campaign_id"] in into else (r["link_reasons"] or {}).get("merged_into")
        why = {"reason": "campaign_merged", "campaign": r["campaign_id"], "merged_into": dest}
        done = conn.execute(update(_CS).where(_CS.c.id == r["id"], _CS.c.state.in_(WAITING)).values(
            state="decided", resolved_at=now, lease_expires_at=None, updated_at=now,
            meta={**(r["meta"] or {}), "closed": {**why, "without_decision": True}})).rowcount
        if done:
            closed += 1
            audit.record(conn, actor, "case.close", "case", r["id"],
                         {**why, "from_state": r["state"], "held_by": r["claimed_by"]})
    return closed


def _refresh_case_exemplars(conn: Any, final: list[tuple[int, dict[str, Any], set[str]]], now: Any) -> int:
    """Point a waiting campaign case whose item left the campaign at the campaign's exemplar, so the
    case shows a current member; the count changed."""
    members = {cid: (f["exemplar_item_id"], items) for cid, f, items in final}
    n = 0
    for chunk in _chunks(sorted(members)):
        for cid_, case_id, item in conn.execute(select(_CS.c.campaign_id, _CS.c.id, _CS.c.item_id).where(
                _CS.c.campaign_id.in_(chunk), _CS.c.state.in_(WAITING))).all():
            exemplar, items = members[cid_]
            if item not in items:
                n += conn.execute(update(_CS).where(_CS.c.id == case_id, _CS.c.state.in_(WAITING)).values(
                    item_id=exemplar, updated_at=now)).rowcount
    return n


def _reusable_terms(stored: dict[int, tuple[Any, dict[str, Any]]], reported: list[np.ndarray],
                    cids: list[Optional[int]], old_camp: dict[str, int],
                    ids: list[str]) -> list[Optional[tuple[list[Any], int]]]:
    """Stored top terms (and the size they were computed at) that may be kept, per campaign.

    Terms are recomputed for new and merged campaigns and once a campaign has grown by
    TERMS_REFRESH_GROWTH since they were computed; otherwise an attach leaves them as they are.
    """
    out: list[Optional[tuple[list[Any], int]]] = []
    for g, cid in zip(reported, cids):
        terms, reasons = stored.get(cid, (None, {})) if cid is not None else (None, {})
        at = reasons.get("top_terms_at_size")
        # Terms stay while the campaign has neither grown nor shrunk (a split) much since.
        fresh = (terms and at and at / (1 + TERMS_REFRESH_GROWTH) <= len(g) < at * (1 + TERMS_REFRESH_GROWTH)
                 and all(old_camp.get(ids[r], cid) == cid for r in g.tolist()))
        out.append((terms, at) if fresh else None)
    return out


def _same_sim(a: Optional[float], b: Optional[float]) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-6)


def _campaign_facts(graph: CampaignGraph, comps: Components, rows: np.ndarray,
                    texts: dict[str, Any], templates: dict[str, str], settings: CampaignSettings,
                    n_classes: int, mentions: dict[int, list[int]], reasons: list[tuple[str, Optional[float]]],
                    kept_terms: Optional[tuple[list[Any], int]]) -> dict[str, Any]:
    """The stored facts of one campaign: size, first/last seen, exemplar, terms, entities, reasons."""
    ids = graph.item_ids
    members = [ids[r] for r in rows.tolist()]
    first_seen, last_seen = graph.seen_range(rows)
    nodes, counts = np.unique(graph.item_node[rows], return_counts=True)
    best = facts.exemplar_row(graph.index.reconstruct(nodes[:5000]), counts[:5000])
    node = nodes[best]
    exemplar = next(ids[r] for r in rows.tolist() if graph.item_node[r] == node)
    if kept_terms is not None:
        top_terms, terms_at = kept_terms
    else:
        term_counts: Counter[str] = Counter()
        for i in members[:_TERM_SAMPLE]:
            tmpl = templates.get(i)
            if tmpl is None:
                tmpl = normalize_template(texts[i].text) if i in texts else ""
            term_counts.update(facts.terms_of(tmpl))
        top_terms = [[t, w] for t, w in facts.class_tfidf_top_terms(term_counts, graph.term_counts, n_classes,
                                                                    settings.top_terms)]
        terms_at = int(len(rows))
    by_reason: Counter[str] = Counter()
    for why, _sim in reasons:
        for part in why.split(","):
            by_reason[part.split(":", 1)[0] if ":" in part else part] += 1
    entities, left_out = graph.shared_entities(comps, rows, mentions)
    return {
        "size": int(len(rows)), "exemplar_item_id": exemplar,
        "first_seen": first_seen, "last_seen": last_seen,
        "top_terms": top_terms,
        "entities": entities,
        "link_reasons": {"members_by_reason": dict(by_reason.most_common()), "top_terms_at_size": terms_at,
                         **({"entities_left_out": left_out} if left_out else {}),
                         "distinct_texts": int(len(nodes)),
                         "similarity_threshold": settings.similarity_threshold,
                         "entity_max_df": settings.entity_max_df},
    }
