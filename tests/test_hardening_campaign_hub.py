"""Hub posts, link reasons and padded entity lists of campaigns.

One attacker post carrying campaign A's phone number and campaign B's short code merged A and B
(components are transitive), so a decision on A actioned all 12 items of B. Linking now refuses
hubs: two groups of at least `facts.HUB_MIN_ITEMS` items merge only through an entity carried by
a real share of both. A member's "linked by" listed entities whose mention does not link (a
decoy its text group does not carry); a 100 KB text of numbers stored every one of them as a
shared entity of its campaign (3,000 from two texts here; 25,000 are possible).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from clustering import campaigns, explore, facts, service
from clustering.campaigns import CampaignGraph
from clustering.normalize import Entities, extract_entities
from core.config import config_dir
from core.labels import current_labels
from core.schema import CampaignMember
from labeling import decisions as DEC
from labeling.cases import build_cases, campaign_case
from labeling.queue_config import load_queue_config
from test_campaigns import HashingEmbedder, add_items, campaign_of, partition
from test_hardening_campaign_entities import _campaign, _settings, _wave
from test_queue_support import T0, add_scored

PRIZE = "URGENT! You have won a guaranteed cash prize. Call 09061701939 now to claim, valid 12hrs only"
TONES = "Your free ringtone is waiting to be collected. Simply text the password MIX to 85069 to verify."
HUB = "hey there, call 09061701939 or text 85069"


def _waves(hubs: list[str], b_axes: tuple[int, ...] = (10,)) -> tuple[list[str], list[str], list[Entities], dict]:
    """Wave A: 12 items in 3 texts with one number; wave B: 12 items with one short code (one
    near-duplicate wave, or 3 differently worded texts); then the hub posts, texts of their own.
    (ids, text keys, entities, vector per text key)."""
    rng, dim = np.random.default_rng(0), 64
    eye = np.eye(dim, dtype=np.float32)
    texts = [f"{PRIZE} {i % 3}" for i in range(12)] + [f"{TONES} {i % 3}" for i in range(12)] + hubs
    ids = [f"a{i}" for i in range(12)] + [f"b{i}" for i in range(12)] + [f"hub{i}" for i in range(len(hubs))]
    keys = [f"ka{i % 3}" for i in range(12)] + [f"kb{i % 3}" for i in range(12)] + [f"kh{i}" for i in range(len(hubs))]
    b = _wave(3, dim, rng, 10) if len(b_axes) == 1 else eye[list(b_axes)]
    vectors = np.concatenate([_wave(3, dim, rng, 0), b, eye[40:40 + len(hubs)]])
    return ids, keys, [extract_entities(t) for t in texts], dict(zip(dict.fromkeys(keys), vectors))


def _build(ids, keys, ents, vec_of, cuts=None, **kw) -> CampaignGraph:
    g, lo = CampaignGraph(_settings(**kw), 64), 0
    for hi in cuts or [len(ids)]:
        ks = keys[lo:hi]
        g.add(ids[lo:hi], ks, ents[lo:hi], np.array([vec_of[k] for k in g.missing_keys(ks)]).reshape(-1, 64))
        lo = hi
    return g


def _two_waves_and_hubs(hubs: list[str], b_axes: tuple[int, ...] = (10,)) -> CampaignGraph:
    return _build(*_waves(hubs, b_axes))


# -- the rule, on plain arrays ---------------------------------------------------------------------
def test_a_hub_group_joins_one_side_and_a_real_share_still_merges():
    # groups: A = items 0-3 (key 0), B = items 4-7 (key 1), hub = item 8 (keys 0 and 1)
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    item = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    key = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    cand = np.ones(len(item), dtype=bool)
    comp, links = facts.link_groups(item, key, group, cand)
    assert comp[8] == comp[0] != comp[4]  # the hub joins A (key 0 sorts first), B stays apart
    assert links.tolist() == [True] * 4 + [False] * 4 + [True, False]  # key 1 links nothing now
    # B carrying key 0 too in half its items: the key is a real share of both sides, they merge
    comp, links = facts.link_groups(np.r_[item, 4, 5], np.r_[key, 0, 0], group, np.ones(12, dtype=bool))
    assert len(set(comp.tolist())) == 1 and links.all()
    # a pair (under HUB_MIN_ITEMS) still joins through a bridge: the small side bears the risk alone
    comp, _ = facts.link_groups(np.array([0, 1, 2, 2, 3, 4]), np.array([0, 0, 0, 1, 1, 1]),
                                np.arange(5), np.ones(6, dtype=bool))
    assert len(set(comp.tolist())) == 1


# -- the graph -------------------------------------------------------------------------------------
@pytest.mark.parametrize("b_axes", [(10,), (20, 21, 22)], ids=["one wave", "three wordings"])
def test_one_hub_post_does_not_merge_two_campaigns(b_axes):
    g = _two_waves_and_hubs([HUB], b_axes)
    a, b = _campaign(g, "a0"), _campaign(g, "b0")
    assert sum(i.startswith("b") for i in a) == 0  # was 12: all of B in A's campaign
    assert a == {f"a{i}" for i in range(12)} | {"hub0"} and b == {f"b{i}" for i in range(12)}


def test_a_few_hub_posts_do_not_merge_them_either():
    g = _two_waves_and_hubs([HUB, "call 09061701939 and text 85069 x", "ring 09061701939, txt 85069 y"])
    assert not _campaign(g, "a0") & _campaign(g, "b0")
    # the scam's own number still links a differently worded message to its wave
    g.add(["x"], ["kx"], [extract_entities("Hi mum, new phone, text me on 09061701939")], np.eye(64, dtype=np.float32)[[50]])
    assert "x" in _campaign(g, "a0")


def test_link_reasons_list_only_mentions_that_link():
    g = _two_waves_and_hubs([HUB])
    # a decoy short code in one of the 4 copies of a wave text: its mention does not link
    g.add(["d"], ["ka0"], [extract_entities(PRIZE + " or text 85069")], np.empty((0, 64), np.float32))
    comps = g.components()
    rows = np.array([g.row(i) for i in ("d", "hub0", "a1")])
    why = dict(zip(["d", "hub0", "a1"], [w for w, _ in g.link_reasons(comps, rows)]))
    assert why["d"] == "same_text,similarity,phone:09061701939"  # was "...,shortcode:85069" too
    assert why["hub0"] == "phone:09061701939"  # it links to A only
    assert why["a1"] == "same_text,similarity,phone:09061701939"
    shared, _ = g.shared_entities(comps, np.flatnonzero(comps.labels == comps.labels[g.row("a0")]))
    assert shared["shortcode"] == [{"value": "85069", "items": 2, "links": False}]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_data_in_another_order_gives_the_same_campaigns(seed):
    """Which side a hub joins, and every other tie, is decided by content (key values, item ids),
    so attaching in runs and a re-cluster reading the items in another order agree."""
    rng = np.random.default_rng(seed)
    ids, keys, ents, vec_of = _waves([HUB, "call 09061701939 and text 85069 x"])
    n, free = 200, [a for a in range(64) if a not in (0, 1, 2, 10, 11, 12, 40, 41)]  # off the waves' axes
    centers = np.zeros((30, 64), dtype=np.float32)
    centers[:, free] = rng.normal(size=(30, len(free)))
    x = centers[rng.integers(0, 30, n)]
    x[:, free] += rng.normal(scale=0.2, size=(n, len(free)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids += [f"i{j}" for j in range(n)]
    keys += [f"t{j}" for j in range(n)]
    vec_of.update({f"t{j}": x[j] for j in range(n)})
    ents += [Entities(phone=tuple(sorted({f"0906{rng.integers(0, 40):07d}" for _ in range(rng.integers(0, 3))})),
                      shortcode=tuple(sorted({str(rng.integers(60000, 60020)) for _ in range(rng.integers(0, 2))})))
             for _ in range(n)]

    def parts(order, cuts=None):
        g = _build([ids[j] for j in order], [keys[j] for j in order], [ents[j] for j in order], vec_of, cuts,
                   similarity_threshold=0.85, entity_max_df=6)
        assert not _campaign(g, "a0") & _campaign(g, "b0")  # was one campaign: the hubs merged them
        return {frozenset(g.item_ids[r] for r in rows) for rows in g.components().groups(1).values()}

    m = len(ids)
    base = parts(np.arange(m))
    assert parts(np.arange(m), [40, 170, m]) == base  # attached in runs
    assert parts(rng.permutation(m)) == parts(rng.permutation(m), [120, m]) == base  # re-clustered
    assert sum(len(p) > 1 for p in base) > 10  # the data does cluster


# -- the store -------------------------------------------------------------------------------------
def test_a_bulk_decision_on_a_hubbed_campaign_reaches_only_its_members(any_store, taxonomy):
    rows = [(f"a{i}", PRIZE) for i in range(6)] + [(f"b{i}", TONES) for i in range(6)]
    add_scored(any_store, taxonomy, [{"id": i, "text": t, "label": "scam", "p": 0.8} for i, t in rows])
    st = _settings()
    service.cluster(any_store, st, embedder=HashingEmbedder(), show_progress=False)
    a, b = campaign_of(any_store, "a0"), campaign_of(any_store, "b0")
    add_scored(any_store, taxonomy, [{"id": "hub", "text": HUB, "label": "scam", "p": 0.8}])
    service.cluster(any_store, st, embedder=HashingEmbedder(), show_progress=False)
    members = {i: campaign_of(any_store, i) for i, _ in rows + [("hub", HUB)]}
    assert members == {**{i: a for i, _ in rows[:6]}, **{i: b for i, _ in rows[6:]}, "hub": a}  # b was merged into a
    with any_store.read() as conn:
        assert conn.execute(select(CampaignMember.linked_by).where(CampaignMember.item_id == "hub")).scalar() \
            == "phone:09061701939"
    # a re-cluster of the same data: the same campaigns, the same ids
    before = partition(any_store)
    service.cluster(any_store, st, rebuild=True, embedder=HashingEmbedder(), show_progress=False)
    assert partition(any_store) == before and campaign_of(any_store, "a0") == a and campaign_of(any_store, "b0") == b
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = campaign_case(any_store, a)
    preview = DEC.bulk_preview(any_store, case, "lead", now=T0)
    assert preview["members"] == preview["will_decide"] == 7
    DEC.decide(any_store, taxonomy, case, "lead", "scam", now=T0, config=cfg)
    labelled = current_labels(any_store, [i for i, _ in rows] + ["hub"])
    assert sorted(labelled) == sorted([f"a{i}" for i in range(6)] + ["hub"])


def test_a_padded_text_stores_a_bounded_list_led_by_what_every_member_carries(sqlite_store):
    pad = " ".join(f"ring 0770090{i:04d}" for i in range(3000))  # ~60 KB of numbers
    real = "claim now at prize-win.icu/x"
    rows = [("p0", f"{real} {pad}"), ("p1", f"{real} {pad}"), ("p2", f"{real} and hurry")]
    add_items(sqlite_store, rows)
    service.cluster(sqlite_store, _settings(), embedder=HashingEmbedder(), show_progress=False)
    cid = campaign_of(sqlite_store, "p0")
    assert cid is not None and campaign_of(sqlite_store, "p2") == cid
    d = explore.campaign_detail(sqlite_store, cid)
    cap = getattr(campaigns, "MAX_SHARED_PER_KIND", 20)
    assert len(d["entities"]["phone"]) == cap  # was 3000
    assert d["link_reasons"]["entities_left_out"] == {"phone": 3000 - cap}
    assert d["entities"]["url"][0] == {"value": "prize-win.icu/x", "items": 3, "links": True}
    assert [e["items"] for e in d["entities"]["phone"]] == [2] * cap


def test_campaigns_written_under_older_linking_rules_are_written_again(sqlite_store):
    rows = [(f"a{i}", PRIZE) for i in range(4)] + [(f"b{i}", TONES) for i in range(4)] + [("hub", HUB)]
    add_items(sqlite_store, rows)
    st = _settings()
    service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    a, b = campaign_of(sqlite_store, "a0"), campaign_of(sqlite_store, "b0")
    # what the older rules stored: B inside A, the hub linked by both, and the graph saved without a version
    with sqlite_store.begin() as conn:
        conn.execute(CampaignMember.__table__.update().where(CampaignMember.item_id.in_([f"b{i}" for i in range(4)]))
                     .values(campaign_id=a))
        conn.execute(CampaignMember.__table__.update().where(CampaignMember.item_id == "hub")
                     .values(linked_by="phone:09061701939,shortcode:85069"))
    meta_path = service.graph_dir(sqlite_store) / "graph.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("linking_version", None)
    meta_path.write_text(json.dumps(meta))
    s = service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "linking rules changed" in s["reason"]
    assert campaign_of(sqlite_store, "b0") != a and campaign_of(sqlite_store, "a0") == a and b is not None
    with sqlite_store.read() as conn:
        assert conn.execute(select(CampaignMember.linked_by).where(CampaignMember.item_id == "hub")).scalar() \
            == "phone:09061701939"
    assert service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)["mode"] == "incremental"
