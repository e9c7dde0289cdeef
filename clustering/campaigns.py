"""The campaign graph: which items link, and why, as connected components.

Items with the same template-normalised text share one vector (one index position, a *node*);
nodes link when their cosine similarity passes the threshold (faiss range search); items link
when they share a rare entity (URL, host, e-mail, phone number, short code). Campaigns are the
similarity groups joined through the entities that speak for them, never through a hub (one post
carrying two campaigns' numbers joins one of them: `facts.link_groups`).

Incremental by construction: `add` searches only the new nodes against the index (which
already holds every older node), so the similarity edge set after `add(a); add(b)` is the set
a single `add(a + b)` finds. Components and entity document frequencies are recomputed from
the stored edges in one vectorised pass (milliseconds even at 200k items), so an entity that
becomes too common stops linking everywhere at once, exactly as in a full re-cluster. Only the
similarity search, the expensive part, is incremental. With the HNSW index the search is
approximate, so equality with a full re-cluster then holds up to HNSW recall.

Public entities never link (`public_entities`): a scam wave citing a real gov.uk page or a
bank's helpline as a decoy would otherwise pull every honest message citing it into the
campaign and under its bulk action. Public are links, hosts and e-mails on a `public_hosts`
host, `public_phones`, and links and e-mails on a host the store itself shows in more than
`entity_max_df` unrelated texts (distinct similarity groups, which a sender cannot fake by
sending more copies of one wave).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import facts
from .config import CampaignSettings
from .index import IndexError_, VectorIndex
from .normalize import NORMALIZE_VERSION, Entities
from .persist import append_log, read_log

GRAPH_ARRAYS = "graph.npz"
GRAPH_META = "graph.json"
ITEMS_LOG = "graph_items.jsonl"
ENTITIES_LOG = "graph_entities.jsonl"
_SEARCH_BATCH = 2048
_EPOCH = dt.datetime(1970, 1, 1)
# Shared entities stored (and shown) per campaign and kind; the rest are counted, not listed.
MAX_SHARED_PER_KIND = 20
# graph.npz: each array, whether it holds positions ("i") or numbers ("f"), and what it indexes
# (its values must lie in [0, that count)) or which array it runs beside (same length).
_ARRAY_KINDS = {"item_node": ("i", "nodes", "items"), "item_time": ("f", None, "items"),
                "edge_a": ("i", "nodes", None), "edge_b": ("i", "nodes", "edge_a"),
                "edge_sim": ("f", None, "edge_a"), "ent_item": ("i", "items", None),
                "ent_key": ("i", "entities", "ent_item")}


def _arrays_problem(arrays: dict[str, np.ndarray], n_items: int, n_nodes: int, n_entities: int) -> str | None:
    """What is wrong with graph.npz's arrays (None when nothing): a missing one, a wrong kind or
    length, a position outside what it points into. A damaged or edited file would otherwise
    fail deep in a run, or read outside the faiss index (which ends the process)."""
    counts = {"items": n_items, "nodes": n_nodes, "entities": n_entities}
    for name, (kind, points_to, beside) in _ARRAY_KINDS.items():
        a = arrays.get(name)
        if a is None:
            return f"no array '{name}'"
        if a.ndim != 1 or (a.dtype.kind not in "iu" if kind == "i" else a.dtype.kind != "f"):
            return f"array '{name}' is {a.dtype} of shape {a.shape}, expected a 1-d {'integer' if kind == 'i' else 'float'} array"
        want = counts.get(beside, len(arrays[beside]) if beside in arrays else None) if beside else None
        if want is not None and len(a) != want:
            return f"array '{name}' holds {len(a)} values, expected {want}"
        if points_to and len(a) and (a.min() < 0 or a.max() >= counts[points_to]):
            return f"array '{name}' points outside the {counts[points_to]} {points_to}"
    return None


@dataclass(frozen=True)
class AddStats:
    items: int
    new_nodes: int
    new_edges: int
    new_entities: int

    def as_dict(self) -> dict[str, int]:
        return {"items": self.items, "new_texts": self.new_nodes, "new_similarity_edges": self.new_edges,
                "new_entity_mentions": self.new_entities}


@dataclass(frozen=True)
class Components:
    """Component label per item row (labels are the smallest item row of each component)."""

    labels: np.ndarray
    active_entity: np.ndarray  # bool per entity key: may link (2 <= distinct texts <= max_df, not public)
    link_mention: np.ndarray  # bool per entity mention (graph.ent_item order): it links its item here
    node_max_sim: np.ndarray  # best similarity of each node to another node (0 if none)
    node_items: np.ndarray  # items per node

    def groups(self, min_size: int = 1) -> dict[int, np.ndarray]:
        """label -> item rows, for components of at least `min_size` items."""
        order = np.argsort(self.labels, kind="stable")
        labels = self.labels[order]
        cuts = np.flatnonzero(np.diff(labels)) + 1
        out: dict[int, np.ndarray] = {}
        for rows in np.split(order, cuts):
            if len(rows) >= min_size:
                out[int(self.labels[rows[0]])] = rows
        return out


def _empty_i64() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def _host_of_entity(kind: str, value: str) -> str:
    """The host a url, host or email entity value lives on ("" for other kinds)."""
    if kind == "host":
        return value
    if kind == "email":
        return value.rsplit("@", 1)[-1]
    if kind == "url":
        return re.split(r"[/?#:]", value, maxsplit=1)[0]
    return ""


class CampaignGraph:
    """Items, their nodes in a `VectorIndex`, similarity edges and entity mentions."""

    def __init__(self, settings: CampaignSettings, dim: int, model_id: str | None = None) -> None:
        self.settings = settings
        ix = settings.index
        self.index = VectorIndex(dim, ix.hnsw_min_size, ix.hnsw_m, ix.ef_construction, ix.ef_search,
                                 model_id=model_id, range_k=ix.range_k, delta_max=ix.delta_max)
        self.item_ids: list[str] = []
        self._item_row: dict[str, int] = {}
        self.item_node = _empty_i64()
        self.item_time = np.empty(0, dtype=np.float64)  # seconds since 1970 (naive UTC), NaN = unknown
        self.edge_a = _empty_i64()
        self.edge_b = _empty_i64()
        self.edge_sim = np.empty(0, dtype=np.float32)
        self.entity_keys: list[str] = []
        self._entity_id: dict[str, int] = {}
        self.ent_item = _empty_i64()
        self.ent_key = _empty_i64()
        # Term counts of every item's template text: the corpus side of class-based TF-IDF.
        self.term_counts: Counter[str] = Counter()
        # Settings the saved graph was built with (None for a new graph), and the version of the
        # template and entity rules its items were read with (`normalize.NORMALIZE_VERSION`).
        self.built_with: dict[str, Any] | None = None
        self.normalized_with: int | None = NORMALIZE_VERSION
        self.linked_with: int | None = facts.LINKING_VERSION  # as saved; a run rewrites campaigns when stale
        # Newest `ingested_at` among the items added: where to look for new items next time.
        self.watermark: dt.datetime | None = None
        # (values, bytes) already in each append-only log on disk.
        self._logged: dict[str, tuple[int, int]] = {}
        # Per entity key, in key order: its host ("" for phones and short codes), and whether it
        # is on a `public_hosts` host or a `public_phones` number (settings-only facts).
        self._key_host: list[str] = []
        self._key_listed: list[bool] = []

    # -- building -----------------------------------------------------------------------
    @property
    def model_id(self) -> str | None:
        return self.index.model_id

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._item_row

    def row(self, item_id: str) -> int:
        return self._item_row[item_id]

    def missing_keys(self, node_keys: Sequence[str]) -> list[str]:
        """The distinct keys not yet indexed, in first-appearance order: what `add` needs vectors for."""
        return [k for k in dict.fromkeys(node_keys) if k not in self.index]

    def add(self, item_ids: Sequence[str], node_keys: Sequence[str], entities: Sequence[Entities],
            vectors: np.ndarray, terms: Sequence[Sequence[str]] | None = None,
            times: Sequence[dt.datetime | None] | None = None, show_progress: bool = False) -> AddStats:
        """Attach items. `vectors` holds one row per key of `missing_keys(node_keys)`, in that order.

        `times` (when each item was seen; None = unknown) feed first/last seen without a query.
        """
        if not (len(item_ids) == len(node_keys) == len(entities)):
            raise ValueError(f"{len(item_ids)} item ids, {len(node_keys)} keys, {len(entities)} entity sets")
        seen = [i for i in item_ids if i in self._item_row]
        if seen or len(set(item_ids)) != len(item_ids):
            raise ValueError(f"items already in the graph or repeated, e.g. {(seen or list(item_ids))[:3]}")
        new_keys = self.missing_keys(node_keys)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(new_keys), -1) if len(new_keys) \
            else np.empty((0, self.index.dim), dtype=np.float32)
        positions = self.index.add(new_keys, vectors)
        new_edges = self._search_edges(positions, vectors, show_progress)

        start = len(self.item_ids)
        self.item_ids.extend(item_ids)
        for i, item in enumerate(item_ids):
            self._item_row[item] = start + i
        self.item_node = np.concatenate(
            [self.item_node, np.fromiter((self.index.position(k) for k in node_keys), np.int64, len(node_keys))])
        stamps = [np.nan if t is None else (t - _EPOCH).total_seconds() for t in (times or [None] * len(item_ids))]
        self.item_time = np.concatenate([self.item_time, np.asarray(stamps, dtype=np.float64)])

        ent_rows: list[int] = []
        ent_keys: list[int] = []
        ignored = set(self.settings.ignore_hosts)
        for i, ents in enumerate(entities):
            for kind, value in ents.items(self.settings.entity_kinds):
                if kind == "host" and value in ignored:
                    continue
                key = f"{kind}:{value}"
                kid = self._entity_id.get(key)
                if kid is None:
                    kid = self._entity_id[key] = len(self.entity_keys)
                    self.entity_keys.append(key)
                ent_rows.append(start + i)
                ent_keys.append(kid)
        self.ent_item = np.concatenate([self.ent_item, np.asarray(ent_rows, dtype=np.int64)])
        self.ent_key = np.concatenate([self.ent_key, np.asarray(ent_keys, dtype=np.int64)])
        if terms is not None:
            for toks in terms:
                self.term_counts.update(toks)
        return AddStats(len(item_ids), len(new_keys), new_edges, len(ent_rows))

    def _search_edges(self, positions: np.ndarray, vectors: np.ndarray, show_progress: bool) -> int:
        """Range-search the new nodes against the whole index; keep each pair once (a < b)."""
        if not len(positions):
            return 0
        from tqdm.auto import tqdm

        a_parts, b_parts, s_parts = [], [], []
        thr = self.settings.similarity_threshold
        for lo in tqdm(range(0, len(positions), _SEARCH_BATCH), desc="linking similar texts",
                       unit="batch", disable=not show_progress, leave=False):
            q = vectors[lo:lo + _SEARCH_BATCH]
            rows, pos, sims = self.index.range_search(q, thr)
            src = positions[lo:lo + _SEARCH_BATCH][rows]
            keep = src != pos
            a_parts.append(np.minimum(src, pos)[keep])
            b_parts.append(np.maximum(src, pos)[keep])
            s_parts.append(sims[keep])
        a = np.concatenate(a_parts)
        b = np.concatenate(b_parts)
        s = np.concatenate(s_parts)
        # A pair of two new nodes is found from both ends: keep one copy (the higher similarity).
        n = len(self.index)
        code = a * n + b
        order = np.lexsort((-s, code))
        code, s = code[order], s[order]
        first = np.ones(len(code), dtype=bool)
        first[1:] = code[1:] != code[:-1]
        a, b, s = code[first] // n, code[first] % n, s[first]
        self.edge_a = np.concatenate([self.edge_a, a])
        self.edge_b = np.concatenate([self.edge_b, b])
        self.edge_sim = np.concatenate([self.edge_sim, s.astype(np.float32)])
        return int(len(a))

    # -- components ---------------------------------------------------------------------
    def entity_df(self) -> np.ndarray:
        """Number of distinct texts (nodes) mentioning each entity key."""
        n_keys = len(self.entity_keys)
        if not n_keys:
            return _empty_i64()
        n_nodes = max(len(self.index), 1)
        pairs = np.unique(self.ent_key * n_nodes + self.item_node[self.ent_item])
        return np.bincount(pairs // n_nodes, minlength=n_keys)

    def _key_facts(self) -> tuple[list[str], np.ndarray]:
        """(host per entity key, listed-as-public per key), extended for keys added since."""
        st = self.settings
        suffixes = tuple("." + h for h in st.public_hosts)
        listed_hosts, phones = set(st.public_hosts), set(st.public_phones)
        for key in self.entity_keys[len(self._key_host):]:
            kind, value = key.split(":", 1)
            host = _host_of_entity(kind, value)
            self._key_host.append(host)
            self._key_listed.append(value in phones if kind == "phone"
                                    else bool(host) and (host in listed_hosts or host.endswith(suffixes)))
        return self._key_host, np.asarray(self._key_listed, dtype=bool)

    def similarity_groups(self) -> np.ndarray:
        """Group per node: texts linked by similarity alone (copies of one text are one node)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n_nodes = len(self.index)
        graph = coo_matrix((np.ones(len(self.edge_a), dtype=np.int8), (self.edge_a, self.edge_b)),
                           shape=(n_nodes, n_nodes))
        return connected_components(graph, directed=False)[1]

    def public_entities(self) -> np.ndarray:
        """bool per entity key: public, so it never links (module docstring says which are)."""
        n_keys = len(self.entity_keys)
        hosts, public = self._key_facts()
        if not n_keys or not len(self.ent_key):
            return public
        group = self.similarity_groups()
        n_groups = int(group.max()) + 1
        pairs = np.unique(self.ent_key * n_groups + group[self.item_node[self.ent_item]])
        spread = np.bincount(pairs // n_groups, minlength=n_keys)  # unrelated texts per key
        host_key = np.fromiter((self._entity_id.get(f"host:{h}", -1) if h else -1 for h in hosts),
                               np.int64, n_keys)
        common = spread > self.settings.entity_max_df
        return public | ((host_key >= 0) & common[np.maximum(host_key, 0)])

    def components(self) -> Components:
        """Campaigns: similarity groups joined by the rare entities that speak for them (no hubs:
        `facts.link_groups`), oversized ones split."""
        n_items, n_nodes, n_keys = len(self.item_ids), len(self.index), len(self.entity_keys)
        df = self.entity_df()
        active = (df >= 2) & (df <= self.settings.entity_max_df) & ~self.public_entities()
        mention = active[self.ent_key] if n_keys else np.zeros(0, dtype=bool)
        items = np.arange(n_items, dtype=np.int64)
        group = self._text_groups() if n_items else items
        link = np.zeros(len(mention), dtype=bool)
        comp = group
        if mention.any():  # a key links a similarity group only when it speaks for the group, never as a hub
            cand = facts.characteristic_mentions(self.ent_item[mention], self.ent_key[mention], group)
            comp, link[mention] = facts.link_groups(self.ent_item[mention], self.ent_key[mention], group, cand,
                                                    *(self._ranks() if cand.any() else (None, None)))
        if self.settings.max_campaign_texts and n_items:
            comp = self._split_chained(comp, link)
        # Canonical labels: the smallest item row of each component (independent of add order).
        smallest = np.full(comp.max() + 1 if n_items else 0, n_items, dtype=np.int64)
        np.minimum.at(smallest, comp, items)
        node_max = np.zeros(n_nodes, dtype=np.float32)
        np.maximum.at(node_max, self.edge_a, self.edge_sim)
        np.maximum.at(node_max, self.edge_b, self.edge_sim)
        return Components(labels=smallest[comp], active_entity=active, link_mention=link, node_max_sim=node_max,
                          node_items=np.bincount(self.item_node, minlength=n_nodes))

    def _ranks(self) -> tuple[np.ndarray, np.ndarray]:
        """Rank of each item id and of each entity key: tie-breaks that do not depend on the order
        items were added (a re-cluster adds them in another order than the runs that attached them)."""
        def rank(values: list[str]) -> np.ndarray:
            out = np.empty(len(values), dtype=np.int64)
            out[np.argsort(np.asarray(values, dtype=object), kind="stable")] = np.arange(len(values))
            return out
        return rank(self.item_ids), rank(self.entity_keys)

    def _text_groups(self) -> np.ndarray:
        """Group per item by similarity alone, oversized chains split as `_split_chained` splits
        them: the groups whose members must mostly carry an entity for it to link them."""
        group = self.similarity_groups()[self.item_node]
        if self.settings.max_campaign_texts and len(group):
            group = self._split_chained(group, np.zeros(len(self.ent_key), dtype=bool))
        return group

    def _split_chained(self, comp: np.ndarray, mention: np.ndarray) -> np.ndarray:
        """Split components of more than `max_campaign_texts` distinct texts (a stricter method).

        Inside oversized components only similarity edges at a raised threshold are kept (rare
        shared entities keep linking); parts still too large go one step higher, up to
        `split_max_threshold`. All oversized parts of one level are split by one connected-
        components pass: an edge kept at a higher threshold was kept at every lower one, so no
        edge crosses two parts. A pure function of the stored edges, so attach and re-cluster
        still agree. Only `mention`s (those that link) keep linking, and only inside their part:
        a split never joins what it was given apart.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        st = self.settings
        n_nodes = len(self.index)
        node_comp = np.full(n_nodes, -1, dtype=np.int64)
        node_comp[self.item_node] = comp
        ent_node, ent_key = self.item_node[self.ent_item[mention]], self.ent_key[mention]
        # Work on the edges and mentions inside oversized parts only; both shrink level by level.
        ea, eb, es = self.edge_a, self.edge_b, self.edge_sim
        thr = st.similarity_threshold
        while True:
            thr += st.split_step
            counts = np.bincount(node_comp[node_comp >= 0])
            big = counts > st.max_campaign_texts
            if thr > st.split_max_threshold + 1e-9 or not big.any():
                break
            in_big = (node_comp >= 0) & big[np.maximum(node_comp, 0)]
            sel = in_big[ea] & in_big[eb] & (es >= thr) & (node_comp[ea] == node_comp[eb])
            ea, eb, es = ea[sel], eb[sel], es[sel]
            inside = in_big[ent_node]
            ent_node, ent_key = ent_node[inside], ent_key[inside]
            nodes = np.flatnonzero(in_big)
            local = np.full(n_nodes, -1, dtype=np.int64)
            local[nodes] = np.arange(len(nodes))
            keys, key_idx = np.unique(node_comp[ent_node] * max(len(self.entity_keys), 1) + ent_key,
                                      return_inverse=True)
            src = np.concatenate([local[ea], local[ent_node]])
            dst = np.concatenate([local[eb], len(nodes) + key_idx.ravel()])
            size = len(nodes) + len(keys)
            graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(size, size))
            _, part = connected_components(graph, directed=False)
            node_comp[nodes] = int(node_comp.max()) + 1 + part[:len(nodes)]
        return node_comp[self.item_node]

    def seen_range(self, rows: np.ndarray) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(first, last) time the given items were seen, None when none has a time."""
        t = self.item_time[rows]
        t = t[~np.isnan(t)]
        if not len(t):
            return None, None
        return _EPOCH + dt.timedelta(seconds=float(t.min())), _EPOCH + dt.timedelta(seconds=float(t.max()))

    def mentions(self, rows: np.ndarray) -> dict[int, list[int]]:
        """The entity mentions (positions in `ent_item` / `ent_key`) of each of `rows` (one pass;
        pass the result to the two below)."""
        out: dict[int, list[int]] = {}
        if len(self.ent_key) and len(rows):
            want = np.flatnonzero(np.isin(self.ent_item, rows))
            for r, m in zip(self.ent_item[want].tolist(), want.tolist()):
                out.setdefault(r, []).append(m)
        return out

    def link_reasons(self, comps: Components, rows: np.ndarray,
                     mentions: dict[int, list[int]] | None = None) -> list[tuple[str, float | None]]:
        """(linked_by, best similarity) per item row: why each member is in its campaign."""
        mentions = self.mentions(rows) if mentions is None else mentions
        rows = np.asarray(rows)
        nodes = self.item_node[rows]
        copies = (comps.node_items[nodes] > 1).tolist()
        best = comps.node_max_sim[nodes].tolist()
        links = comps.link_mention
        out: list[tuple[str, float | None]] = []
        for r, copy, b in zip(rows.tolist(), copies, best):
            parts: list[str] = []
            sim: float | None = None
            if copy:
                parts.append("same_text")
                sim = 1.0
            if b > 0:
                parts.append("similarity")
                sim = max(sim or 0.0, b)
            ms = mentions.get(r)
            if ms:  # only the mentions that link it (not a decoy its group does not carry, nor a hub's other key)
                parts.extend(sorted(self.entity_keys[k] for k in self.ent_key[ms][links[ms]].tolist()))
            out.append((",".join(parts)[:200] or "seed", sim))
        return out

    def shared_entities(self, comps: Components, rows: np.ndarray, mentions: dict[int, list[int]] | None = None,
                        per_kind: int = MAX_SHARED_PER_KIND) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
        """(entities mentioned by at least two of `rows`, by kind, at most `per_kind` of each;
        how many more of each kind were left out). Ranked by how many members carry them, those
        that link first, then by value: 25,000 numbers padding a 100 KB text neither bloat the
        stored row nor push out the number every member carries."""
        mentions = self.mentions(rows) if mentions is None else mentions
        ms = np.asarray([m for r in np.asarray(rows).tolist() for m in mentions.get(r, ())], dtype=np.int64)
        n = len(self.item_ids) + 1  # one per (key, item): an item repeating a value counts once
        keys = np.unique(self.ent_key[ms] * n + self.ent_item[ms]) // n
        links = np.zeros(len(self.entity_keys), dtype=bool)
        links[self.ent_key[ms][comps.link_mention[ms]]] = True
        count = Counter(keys.tolist())
        out: dict[str, list[dict[str, Any]]] = {}
        left: dict[str, int] = {}
        for k in sorted((k for k, c in count.items() if c >= 2),
                        key=lambda k: (-count[k], not links[k], self.entity_keys[k])):
            kind, value = self.entity_keys[k].split(":", 1)
            shown = out.setdefault(kind, [])
            if len(shown) < per_kind:
                shown.append({"value": value, "items": count[k], "links": bool(links[k])})
            else:
                left[kind] = left.get(kind, 0) + 1
        return out, left

    # -- persistence --------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Index, then arrays and the append-only id logs, then the JSON meta that `load` trusts.

        Item ids and entity keys only ever grow, so their logs are appended to (after cutting
        anything a crashed save left past the recorded length) instead of rewritten.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.index.save(d)
        tmp = d / (GRAPH_ARRAYS + ".tmp.npz")
        np.savez(tmp, item_node=self.item_node, item_time=self.item_time, edge_a=self.edge_a, edge_b=self.edge_b,
                 edge_sim=self.edge_sim, ent_item=self.ent_item, ent_key=self.ent_key)
        os.replace(tmp, d / GRAPH_ARRAYS)
        self._logged["items"] = append_log(d / ITEMS_LOG, self.item_ids, self._logged.get("items"))
        self._logged["entities"] = append_log(d / ENTITIES_LOG, self.entity_keys, self._logged.get("entities"))
        meta = {"settings": self.settings.model_dump(mode="json"), "items": len(self.item_ids),
                "nodes": len(self.index), "edges": int(len(self.edge_a)), "entities": len(self.entity_keys),
                "logs": {k: list(v) for k, v in self._logged.items()}, "term_counts": dict(self.term_counts),
                "normalize_version": self.normalized_with, "linking_version": facts.LINKING_VERSION,
                "watermark": self.watermark.isoformat() if self.watermark else None}
        tmp_meta = d / (GRAPH_META + ".tmp")
        tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp_meta, d / GRAPH_META)

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        d = Path(directory)
        return VectorIndex.exists(d) and (d / GRAPH_ARRAYS).exists() and (d / GRAPH_META).exists()

    @classmethod
    def load(cls, directory: str | os.PathLike[str], settings: CampaignSettings,
             mmap: bool = True) -> "CampaignGraph":
        """Load a saved graph; raises IndexError_ when files are missing or disagree."""
        d = Path(directory)
        index = VectorIndex.load(d, mmap=mmap)
        rebuild = "run `workbench cluster --rebuild`"
        path = d / GRAPH_META
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            path = d / GRAPH_ARRAYS
            with np.load(path) as npz:  # every array read now: a damaged member fails here, not later
                arrays = {name: npz[name] for name in _ARRAY_KINDS if name in npz.files}
        except FileNotFoundError as exc:
            raise IndexError_(f"{exc.filename}: campaign graph missing; {rebuild}") from None
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
            # not JSON, not UTF-8, an empty or truncated graph.npz, one that is no archive
            raise IndexError_(f"{path}: campaign graph unreadable "
                              f"({(str(exc).splitlines() or [type(exc).__name__])[0]}); {rebuild}") from None
        if not isinstance(meta, dict):
            raise IndexError_(f"{d / GRAPH_META}: expected a JSON object, got {type(meta).__name__}; {rebuild}")
        self = cls(settings, index.dim, index.model_id)
        self.index = index
        try:
            logs = meta["logs"]
            self.item_ids = read_log(d / ITEMS_LOG, *logs["items"])
            self.entity_keys = read_log(d / ENTITIES_LOG, *logs["entities"])
            self._logged = {k: tuple(v) for k, v in logs.items()}
            self.term_counts = Counter(meta.get("term_counts", {}))
            self.watermark = dt.datetime.fromisoformat(meta["watermark"]) if meta.get("watermark") else None
        except (KeyError, FileNotFoundError, ValueError, TypeError, AttributeError) as exc:
            raise IndexError_(f"{d}: campaign graph metadata or logs unreadable ({exc}); {rebuild}") from None
        self._item_row = {k: i for i, k in enumerate(self.item_ids)}
        if meta.get("nodes") != len(index) or len(self.entity_keys) != meta.get("entities"):
            raise IndexError_(f"{d}: campaign graph and index disagree (a run was interrupted?); {rebuild}")
        problem = _arrays_problem(arrays, len(self.item_ids), len(index), len(self.entity_keys))
        if problem:
            raise IndexError_(f"{d / GRAPH_ARRAYS}: {problem} (a run was interrupted, or the file was "
                              f"changed?); {rebuild}")
        for name in _ARRAY_KINDS:
            setattr(self, name, arrays[name])
        self._entity_id = {k: i for i, k in enumerate(self.entity_keys)}
        self.built_with = meta.get("settings")
        self.normalized_with = meta.get("normalize_version")
        self.linked_with = meta.get("linking_version")
        return self
