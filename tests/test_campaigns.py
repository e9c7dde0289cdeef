"""Campaign linking and the store-facing service, with a small deterministic embedder.

`HashingEmbedder` (word uni- and bigrams hashed into 256 dims) stands in for MiniLM so these
tests run in seconds; tests/test_search.py runs the real model.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from clustering import explore, search, service
from clustering.campaigns import CampaignGraph
from clustering.config import CampaignSettings, IndexSettings
from clustering.normalize import Entities, extract_entities
from core import audit
from core.schema import AuditEvent, Campaign, CampaignMember, Decision, Item, Prediction
from core.text import text_hash


class HashingEmbedder:
    """Deterministic bag-of-words vectors: near-duplicate texts get cosine close to 1."""

    model_id = "test-hashing"
    dim = 256

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, show_progress=False):
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"[a-z<>]+", t.lower())
            for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
                out[i, int(hashlib.md5(tok.encode()).hexdigest(), 16) % self.dim] += 1.0
            out[i] /= max(np.linalg.norm(out[i]), 1e-9)
        return out


SCAM_A = ("URGENT! You have won a {amt} prize GUARANTEED. Call {num} now to claim. Claim code {code}. "
          "Valid 12hrs only")
SCAM_B = "Your free ringtone is waiting to be collected. Simply text the password MIX to 85069 to verify."
HAM = ["Sorry, I'll call later", "Are we still on for dinner tonight at the usual place?",
       "Can you pick up milk on the way home", "Happy birthday mate, have a great one!",
       "The meeting moved to 3pm, see you there", "lol that film was so bad"]


def settings(**kw) -> CampaignSettings:
    base = dict(similarity_threshold=0.8, entity_max_df=3, index=IndexSettings(hnsw_min_size=10_000))
    base.update(kw)
    return CampaignSettings(**base)


def corpus() -> list[tuple[str, str]]:
    rows = []
    for i, (amt, num, code) in enumerate([("£900", "09061701939", "S89"), ("£2000", "09064012160", "K52"),
                                          ("£1500", "09061701461", "KL341"), ("£900", "09061701939", "S89")]):
        rows.append((f"a{i}", SCAM_A.format(amt=amt, num=num, code=code)))
    rows += [("b0", SCAM_B), ("b1", SCAM_B), ("b2", SCAM_B.upper())]
    rows += [(f"h{i}", t) for i, t in enumerate(HAM)]
    # Different wording, same callback number: only the entity links these two.
    rows += [("e0", "Hi it's Jen from the bank, please ring 09050001808 about your account"),
             ("e1", "Delivery failed!! Reschedule: 09050001808")]
    return rows


def add_items(store, rows, start=dt.datetime(2026, 1, 1, 8, 0)):
    with store.begin() as conn:
        conn.execute(insert(Item.__table__), [
            {"id": i, "source": "test", "surface": "sms", "text": t, "text_hash": text_hash(t),
             "created_at": start + dt.timedelta(minutes=10 * n), "policy_label": None}
            for n, (i, t) in enumerate(rows)])


def partition(store) -> set[frozenset[str]]:
    with store.read() as conn:
        rows = conn.execute(select(CampaignMember.item_id, CampaignMember.campaign_id)).all()
    groups: dict[int, set[str]] = {}
    for item, cid in rows:
        groups.setdefault(cid, set()).add(item)
    return {frozenset(g) for g in groups.values()}


def campaign_of(store, item_id):
    with store.read() as conn:
        return conn.execute(select(CampaignMember.campaign_id).where(CampaignMember.item_id == item_id)).scalar()


# -- the graph, on hand-made vectors ---------------------------------------------------------
def _graph_add(g, ids, keys, ents, vecs):
    first = {}
    for k, v in zip(keys, vecs):
        first.setdefault(k, v)
    g.add(ids, keys, ents, np.array([first[k] for k in g.missing_keys(keys)]).reshape(-1, g.index.dim))


def _partition_of(g):
    comps = g.components()
    return {frozenset(g.item_ids[r] for r in rows) for rows in comps.groups(1).values()}


def test_entity_link_works_without_text_similarity():
    e = np.eye(4, dtype=np.float32)  # orthogonal: cosine 0 between any two
    ents = [Entities(phone=("09050001808",)), Entities(phone=("09050001808",)), Entities(), Entities()]
    g = CampaignGraph(settings(), 4)
    _graph_add(g, ["x", "y", "z", "w"], ["k0", "k1", "k2", "k3"], ents, e)
    assert frozenset({"x", "y"}) in _partition_of(g)
    reasons = g.link_reasons(g.components(), np.array([0, 1]))
    assert all("phone:09050001808" in why for why, _ in reasons)
    # The same data without phone links: no campaign.
    g2 = CampaignGraph(settings(entity_kinds=("url", "host")), 4)
    _graph_add(g2, ["x", "y", "z", "w"], ["k0", "k1", "k2", "k3"], ents, e)
    assert frozenset({"x", "y"}) not in _partition_of(g2)


def test_common_entity_does_not_chain():
    n = 6  # one number in 6 distinct texts > entity_max_df=3: a helpline, not a campaign signal
    g = CampaignGraph(settings(), n)
    _graph_add(g, [f"i{i}" for i in range(n)], [f"k{i}" for i in range(n)],
               [Entities(phone=("08001111111",))] * n, np.eye(n, dtype=np.float32))
    assert all(len(p) == 1 for p in _partition_of(g))


def test_exact_duplicates_share_a_component_even_at_threshold_one():
    v = np.eye(3, dtype=np.float32)
    g = CampaignGraph(settings(similarity_threshold=1.0), 3)
    _graph_add(g, ["a", "b", "c", "d"], ["k0", "k0", "k1", "k2"], [Entities()] * 4, v[[0, 0, 1, 2]])
    assert frozenset({"a", "b"}) in _partition_of(g)


def _random_corpus(n=400, seed=7):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(30, 32)).astype(np.float32)
    which = rng.integers(0, 30, size=n)
    x = centers[which] + rng.normal(scale=0.25, size=(n, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    keys = [f"t{i}" if rng.random() > 0.2 else f"t{i // 2}" for i in range(n)]  # some shared texts
    phones = [Entities(phone=(f"0906{rng.integers(0, 60):07d}",)) if rng.random() < 0.3 else Entities()
              for _ in range(n)]
    return [f"i{i}" for i in range(n)], keys, phones, x


@pytest.mark.parametrize("cuts", [[400], [100, 400], [37, 250, 251, 400]])
def test_incremental_attach_equals_full_recluster(cuts):
    ids, keys, ents, x = _random_corpus()
    full = CampaignGraph(settings(similarity_threshold=0.85), 32)
    _graph_add(full, ids, keys, ents, x)
    inc = CampaignGraph(settings(similarity_threshold=0.85), 32)
    lo = 0
    for hi in cuts:
        _graph_add(inc, ids[lo:hi], keys[lo:hi], ents[lo:hi], x[lo:hi])
        lo = hi
    assert _partition_of(inc) == _partition_of(full)
    assert len([p for p in _partition_of(full) if len(p) > 1]) > 5  # the test data does cluster
    assert np.array_equal(inc.components().labels, full.components().labels)


def test_entity_becoming_common_unlinks_in_both_paths():
    e = np.eye(8, dtype=np.float32)
    ents = [Entities(phone=("0800",))] * 2 + [Entities()] * 2 + [Entities(phone=("0800",))] * 4
    inc = CampaignGraph(settings(), 8)
    _graph_add(inc, ["0", "1", "2", "3"], ["k0", "k1", "k2", "k3"], ents[:4], e[:4])
    assert frozenset({"0", "1"}) in _partition_of(inc)
    _graph_add(inc, ["4", "5", "6", "7"], ["k4", "k5", "k6", "k7"], ents[4:], e[4:])
    full = CampaignGraph(settings(), 8)
    _graph_add(full, [str(i) for i in range(8)], [f"k{i}" for i in range(8)], ents, e)
    assert _partition_of(inc) == _partition_of(full)
    assert frozenset({"0", "1"}) not in _partition_of(inc)


def test_graph_survives_a_restart(tmp_path):
    ids, keys, ents, x = _random_corpus(120)
    g = CampaignGraph(settings(similarity_threshold=0.85), 32, model_id="m")
    _graph_add(g, ids[:100], keys[:100], ents[:100], x[:100])
    g.save(tmp_path)
    again = CampaignGraph.load(tmp_path, settings(similarity_threshold=0.85))
    assert again.item_ids == g.item_ids and again.model_id == "m"
    assert np.array_equal(again.components().labels, g.components().labels)
    _graph_add(again, ids[100:], keys[100:], ents[100:], x[100:])
    _graph_add(g, ids[100:], keys[100:], ents[100:], x[100:])
    assert _partition_of(again) == _partition_of(g)


# -- the service, on a real store ------------------------------------------------------------
def test_cluster_builds_campaigns_with_reasons_and_audit(any_store):
    add_items(any_store, corpus())
    emb = HashingEmbedder()
    s = service.cluster(any_store, settings(), embedder=emb, show_progress=False)
    assert s["mode"] == "full" and s["reason"] == "no index yet"
    parts = partition(any_store)
    assert frozenset({"a0", "a1", "a2", "a3"}) in parts  # template variants
    assert frozenset({"b0", "b1", "b2"}) in parts  # exact (case-folded) copies
    assert frozenset({"e0", "e1"}) in parts  # shared callback number only
    assert not any(p & {f"h{i}" for i in range(len(HAM))} for p in parts)  # ham stays out
    with any_store.read() as conn:
        m = conn.execute(select(CampaignMember.__table__).where(CampaignMember.item_id == "e0")).one()
        assert "phone:09050001808" in m.linked_by
        events = conn.execute(select(AuditEvent.action)).scalars().all()
        assert "campaigns.rebuild" in events
        assert audit.verify(conn).ok
    # Run again with nothing new: nothing embedded, nothing touched.
    calls = emb.calls
    again = service.cluster(any_store, settings(), embedder=emb, show_progress=False)
    assert again["mode"] == "incremental" and again["items"] == 0 and emb.calls == calls
    assert partition(any_store) == parts


def test_incremental_attach_equals_rebuild_in_the_store(any_store):
    rows = corpus()
    add_items(any_store, rows[:6])
    s = settings()
    service.cluster(any_store, s, embedder=HashingEmbedder(), show_progress=False)
    a_campaign = campaign_of(any_store, "a0")
    add_items(any_store, rows[6:], start=dt.datetime(2026, 1, 2))
    inc = service.cluster(any_store, s, embedder=HashingEmbedder(), show_progress=False)
    assert inc["mode"] == "incremental" and inc["items"] == len(rows) - 6
    incremental = partition(any_store)
    assert campaign_of(any_store, "a0") == a_campaign  # ids stay stable
    full = service.cluster(any_store, s, rebuild=True, embedder=HashingEmbedder(), show_progress=False)
    assert full["mode"] == "full"
    assert partition(any_store) == incremental
    assert campaign_of(any_store, "a0") == a_campaign


def test_settings_change_forces_full_recluster(sqlite_store):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    s = service.cluster(sqlite_store, settings(similarity_threshold=0.9), embedder=HashingEmbedder(),
                        show_progress=False)
    assert s["mode"] == "full" and "settings" in s["reason"]


def test_merged_campaign_is_marked(any_store):
    # Two separate waves, then a message sharing both their numbers joins them into one.
    add_items(any_store, [("p0", "ring 09050000001 now"), ("p1", "call 09050000001 today please"),
                             ("q0", "your parcel: 09050000002"), ("q1", "parcel waiting 09050000002 asap")])
    s = settings(similarity_threshold=0.99)
    service.cluster(any_store, s, embedder=HashingEmbedder(), show_progress=False)
    assert len(partition(any_store)) == 2
    add_items(any_store, [("r0", "numbers 09050000001 and 09050000002 both work")], start=dt.datetime(2026, 2, 1))
    out = service.cluster(any_store, s, embedder=HashingEmbedder(), show_progress=False)
    assert out["campaigns_merged"] == 1 and len(partition(any_store)) == 1
    with any_store.read() as conn:
        statuses = sorted(conn.execute(select(Campaign.status)).scalars())
    assert statuses == ["active", "merged"]


def test_campaign_facts_and_live_label_mix(sqlite_store, taxonomy):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    cid = campaign_of(sqlite_store, "a0")
    with sqlite_store.begin() as conn:
        conn.execute(insert(Decision.__table__), [
            {"item_id": "a0", "reviewer": "r1", "label": "spam", "action": "remove", "taxonomy_version": "t",
             "created_at": dt.datetime(2026, 3, 1)},
            {"item_id": "a0", "reviewer": "r2", "label": "scam", "action": "block_sender", "taxonomy_version": "t",
             "created_at": dt.datetime(2026, 3, 2)},  # the newer decision counts
            {"item_id": "a1", "reviewer": "r1", "label": "scam", "action": "block_sender", "taxonomy_version": "t",
             "created_at": dt.datetime(2026, 3, 1)}])
        conn.execute(insert(Prediction.__table__), [
            {"item_id": i, "model_version": "m1", "label": "scam", "score": 0.8, "taxonomy_version": "t",
             "scores": {"benign": b, "spam": 0.1, "scam": 0.9 - b, "hate": 0.0, "harassment": 0.0}}
            for i, b in (("a0", 0.1), ("a1", 0.3))])
    d = explore.campaign_detail(sqlite_store, cid, taxonomy=taxonomy, now=dt.datetime(2026, 1, 1, 9, 0))
    assert d["size"] == 4 and d["label_mix"] == {"scam": 2} and d["decided"] == 2
    assert d["mean_violation_score"] == pytest.approx(0.8)
    assert d["first_seen"] == dt.datetime(2026, 1, 1, 8, 0) and d["last_seen"] == dt.datetime(2026, 1, 1, 8, 30)
    assert d["growth"]["last_hour"] == 4
    assert d["exemplar_item_id"] in {"a0", "a1", "a2", "a3"}
    assert {"urgent", "prize", "guaranteed"} & {t for t, _ in d["top_terms"]}
    # Shared by two copies of one template: reported, but it is the text that links them.
    assert d["entities"]["phone"][0] == {"value": "09061701939", "items": 2, "links": False}
    assert {m["item_id"] for m in d["members"]} == {"a0", "a1", "a2", "a3"}
    listed = explore.list_campaigns(sqlite_store, taxonomy=taxonomy)
    assert listed[0]["size"] >= listed[-1]["size"] and cid in [c["id"] for c in listed]


def test_timeline_writes_a_png(sqlite_store, tmp_path):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    cid = campaign_of(sqlite_store, "a0")
    t = explore.campaign_timeline(sqlite_store, cid, png_path=tmp_path / "t.png")
    assert t["freq"] == "hour" and t["buckets"][-1]["size"] == 4
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(service.CampaignError, match="no campaign"):
        explore.campaign_timeline(sqlite_store, 9999)


def test_search_returns_the_near_duplicate_first_and_survives_restart(sqlite_store):
    from core.store import open_store

    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    q = "URGENT! you have won a £5000 prize GUARANTEED. Call 09099999999 now to claim. Claim code X1. Valid 12hrs only"
    hits = search.search_text(sqlite_store, q, settings(), k=3, embedder=HashingEmbedder())
    assert hits[0]["item_id"].startswith("a") and hits[0]["similarity"] > 0.9
    assert hits[0]["campaign_id"] == campaign_of(sqlite_store, "a0")
    # A fresh process: the index is loaded from the data dir.
    store2 = open_store(sqlite_store.data_dir)
    try:
        sim = search.similar_items(store2, "b0", settings(), k=2)
        assert {h["item_id"] for h in sim} == {"b1", "b2"} and sim[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
        with pytest.raises(service.CampaignError, match="does not exist"):
            search.similar_items(store2, "nope", settings())
    finally:
        store2.dispose()


def test_unindexed_store_gives_a_clear_error(sqlite_store):
    with pytest.raises(service.CampaignError, match="run `workbench cluster`"):
        search.similar_items(sqlite_store, "x", settings())


def test_damaged_index_triggers_a_full_recluster(sqlite_store):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    before = partition(sqlite_store)
    (service.graph_dir(sqlite_store) / "index.faiss").write_bytes(b"garbage")
    s = service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "unusable" in s["reason"]
    assert partition(sqlite_store) == before  # nothing stored was lost


def test_graph_logs_survive_a_crashed_append(tmp_path):
    from clustering.campaigns import ITEMS_LOG

    ids, keys, ents, x = _random_corpus(60)
    g = CampaignGraph(settings(similarity_threshold=0.85), 32)
    _graph_add(g, ids[:40], keys[:40], ents[:40], x[:40])
    g.save(tmp_path)
    with open(tmp_path / ITEMS_LOG, "ab") as fh:  # a save that died half-way through an append
        fh.write(b'"half-writ')
    again = CampaignGraph.load(tmp_path, settings(similarity_threshold=0.85))
    assert again.item_ids == ids[:40]
    _graph_add(again, ids[40:], keys[40:], ents[40:], x[40:])
    again.save(tmp_path)
    assert CampaignGraph.load(tmp_path, settings(similarity_threshold=0.85)).item_ids == ids


def test_empty_store_clusters_to_nothing(sqlite_store):
    s = service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert s["items_clustered"] == 0 and s["campaigns_active"] == 0
    assert explore.list_campaigns(sqlite_store) == []
    assert search.search_text(sqlite_store, "anything", settings(), embedder=HashingEmbedder()) == []


def test_ignored_hosts_do_not_link_but_their_urls_do():
    s = settings(ignore_hosts=("t.co",))
    e = np.eye(4, dtype=np.float32)
    ents = [extract_entities("lol http://t.co/AAA"), extract_entities("wow http://t.co/BBB"),
            extract_entities("see http://t.co/CCC"), extract_entities("again http://t.co/CCC")]
    g = CampaignGraph(s, 4)
    _graph_add(g, ["a", "b", "c", "d"], ["k0", "k1", "k2", "k3"], ents, e)
    assert _partition_of(g) == {frozenset({"a"}), frozenset({"b"}), frozenset({"c", "d"})}


def _graph(vectors, max_texts, entities=None, thr=0.45):
    st = CampaignSettings(similarity_threshold=thr, entity_max_df=3, max_campaign_texts=max_texts, split_step=0.03,
                          index=IndexSettings(hnsw_min_size=10_000))
    g = CampaignGraph(st, dim=vectors.shape[1], model_id="test")
    n = len(vectors)
    ents = entities or [extract_entities("") for _ in range(n)]
    g.add([f"i{k}" for k in range(n)], [f"t{k}" for k in range(n)], ents, vectors)
    return g


def _n_groups(g):
    return len(g.components().groups(min_size=2))


def test_similarity_chains_are_split_but_tight_waves_stay_whole():
    n = 12
    eye = np.eye(n + 1, dtype=np.float32)
    chain = np.stack([(eye[k] + eye[k + 1]) / np.sqrt(2) for k in range(n)])  # neighbours 0.5, others 0
    assert _n_groups(_graph(chain, None)) == 1  # plain components: one 12-text "campaign"
    assert _n_groups(_graph(chain, 5)) == 0  # stricter: the chain is no campaign at all

    rng = np.random.default_rng(0)
    base = rng.normal(size=32).astype(np.float32)
    wave = base + 0.05 * rng.normal(size=(8, 32)).astype(np.float32)
    wave /= np.linalg.norm(wave, axis=1, keepdims=True)  # every pair ~0.99: a real scam wave
    g = _graph(wave, 5)
    assert list(g.components().groups(min_size=2).values())[0].tolist() == list(range(8))


def test_split_keeps_rare_entity_links():
    n = 8
    eye = np.eye(n + 1, dtype=np.float32)
    chain = np.stack([(eye[k] + eye[k + 1]) / np.sqrt(2) for k in range(n)])
    ents = [extract_entities("call 09061701461 now" if k in (0, 7) else "") for k in range(n)]
    groups = _graph(chain, 3, ents).components().groups(min_size=2)
    assert [rows.tolist() for rows in groups.values()] == [[0, 7]]  # same premium number, far apart in text
