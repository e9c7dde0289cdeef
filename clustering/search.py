"""Nearest-neighbour search over the campaign index: free-text search and "similar to this item"."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from sqlalchemy import select

from core.labels import current_decisions
from core.text import has_undecodable_bytes, lone_surrogate_at, normalize_light

from .campaigns import CampaignGraph
from .config import CampaignSettings
from .explore import check_count
from .index import IndexError_
from .service import _IT, _MT, CampaignError, _chunks, _fetch_items, graph_dir, make_embedder, prepare

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from models.embeddings import Embedder


def _load_graph(store: "Store", settings: CampaignSettings) -> CampaignGraph:
    d = graph_dir(store)
    if not CampaignGraph.exists(d):
        raise CampaignError("nothing indexed yet; run `workbench cluster` first")
    for attempt in range(4):  # a cluster run saves its files one after another: a reader may land between
        try:
            return CampaignGraph.load(d, settings)
        except IndexError_ as exc:
            if attempt == 3:
                raise CampaignError(str(exc)) from None
            time.sleep(0.2)
    raise AssertionError("unreachable")

def _expand(store: "Store", graph: CampaignGraph, sims: np.ndarray, nodes: np.ndarray, k: int,
            exclude: Optional[str] = None) -> list[dict[str, Any]]:
    """Nearest nodes -> their items (copies share a node), with label, decision and campaign."""
    order = np.argsort(graph.item_node, kind="stable")
    sorted_nodes = graph.item_node[order]
    hits: list[tuple[str, float]] = []
    for sim, node in zip(sims.tolist(), nodes.tolist()):
        if node < 0:
            continue
        lo, hi = np.searchsorted(sorted_nodes, [node, node + 1])
        for r in order[lo:hi].tolist():
            if graph.item_ids[r] != exclude:
                hits.append((graph.item_ids[r], float(sim)))
        if len(hits) >= k:
            break
    hits = hits[:k]
    ids = [h for h, _ in hits]
    with store.read() as conn:
        items = _fetch_items(conn, ids, [_IT.c.text, _IT.c.policy_label, _IT.c.source])
        camps: dict[str, int] = {}
        for chunk in _chunks(ids):  # one IN list of every hit failed past 65,535 on PostgreSQL (-k 70000)
            camps.update(conn.execute(select(_MT.c.item_id, _MT.c.campaign_id).where(_MT.c.item_id.in_(chunk))).all())
        decided = {k: d["label"] for k, d in current_decisions(conn, ids).items()}
    return [{"item_id": i, "similarity": round(s, 4), "label": items[i].policy_label if i in items else None,
             "decided_label": decided.get(i), "campaign_id": camps.get(i), "source": items[i].source if i in items else None,
             "text": items[i].text if i in items else None}
            for i, s in hits]

def search_text(store: "Store", text: str, settings: CampaignSettings, k: int = 10,
                embedder: Optional["Embedder"] = None) -> list[dict[str, Any]]:
    """The `k` indexed items nearest to a free text, most similar first. A text of invisible
    characters only is empty (it would return arbitrary items); one holding bytes that are not
    UTF-8 (a terminal in another encoding) or another lone surrogate is refused, as the tokenizer
    cannot read it."""
    check_count(k, "k", least=1)
    if has_undecodable_bytes(text):
        raise CampaignError("search text is not UTF-8 (an undecodable byte; check the terminal's encoding)")
    at = lone_surrogate_at(text)
    if at is not None:
        raise CampaignError(f"search text is not Unicode text (a lone surrogate such as \\ud800 at character {at})")
    if not normalize_light(text):
        raise CampaignError("empty search text")
    graph = _load_graph(store, settings)
    embedder = embedder or make_embedder(settings)
    if embedder.model_id != graph.model_id:
        raise CampaignError(f"the index was built with {graph.model_id}, not {embedder.model_id}; "
                            "run `workbench cluster --rebuild`")
    # as the index's texts were embedded: `embed` changed in campaigns.yaml before a rebuild
    # embedded the query another way than every indexed text (an exact copy scored 0.69)
    built = (graph.built_with or {}).get("embed") if isinstance(graph.built_with, dict) else None
    if built in ("template", "raw") and built != settings.embed:
        settings = settings.model_copy(update={"embed": built})
    query = prepare(text, settings).embed_text
    vec = embedder.encode([query])
    sims, nodes = graph.index.search(vec, min(k, len(graph.index)))
    return _expand(store, graph, sims[0], nodes[0], k)

def similar_items(store: "Store", item_id: str, settings: CampaignSettings, k: int = 10) -> list[dict[str, Any]]:
    """The `k` items nearest to an indexed item (its exact copies first), the item itself left out."""
    check_count(k, "k", least=1)
    graph = _load_graph(store, settings)
    if item_id not in graph:
        with store.read() as conn:
            exists = conn.execute(select(_IT.c.id).where(_IT.c.id == item_id)).scalar()
        raise CampaignError(f"item {item_id!r} " + ("is not indexed yet; run `workbench cluster`" if exists
                                                   else "does not exist"))
    node = int(graph.item_node[graph.row(item_id)])
    vec = graph.index.reconstruct([node])
    sims, nodes = graph.index.search(vec, min(k + 1, len(graph.index)))
    return _expand(store, graph, sims[0], nodes[0], k, exclude=item_id)
