"""Scam-wave campaigns: near-duplicate clustering with sentence embeddings, faiss and entities.

Modules, one concern each:
- `normalize`: template normalisation (digits, URLs, phone numbers, short codes, e-mails and
  money become tokens) and entity extraction (the values themselves, for linking).
- `index`: the faiss index (exact flat while small, HNSW past a measured size; base + exact
  delta tier so an attach writes megabytes), persisted in `<data dir>/campaigns/`.
- `campaigns`: the linking graph (similarity edges, rare shared entities) and its connected
  components; incremental by construction.
- `facts`: pure functions for campaign facts (class-based TF-IDF, exemplar, growth, mixes).
- `service`: what the CLI, the UI, the demo and the tests call (cluster, search, similar,
  list/show/timeline); `cli`: the `workbench` commands; `config`: `configs/campaigns.yaml`.

Choices that depart from the design note, and why:
- The index holds one vector per *distinct template-normalised text*, with a mapping to its
  items, not one per item: copies in a scam wave share a vector, so a 200k-item collection
  with 120k distinct texts needs 120k vectors and copies never crowd each other out of a
  neighbour list. Exact duplicates are linked by construction (same text, same node).
- Entity links only count entities found in 2..`entity_max_df` distinct texts: a shared
  premium number links two differently-worded messages, a helpline or URL shortener seen
  everywhere does not chain unrelated ones.
- Components are recomputed from the stored edges on every run (vectorised, well under a
  second at 200k items); only the similarity search is incremental. That is what makes an
  attach give exactly the result of a full re-cluster on the exact index, even when an entity
  becomes too common and stops linking.
- On HNSW, "every neighbour above the threshold" is the `range_k` nearest filtered by the
  threshold: faiss 1.15's HNSW range search aborts the process on large result sets.
"""
