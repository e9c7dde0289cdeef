"""Decoy entities that merge innocent texts into a campaign, and entity extraction under attack.

One post copying an innocent group's text with a scam's number added (or one post in each of
two campaigns carrying the same decoy) linked, by that entity, the whole innocent group into the
scam's campaign, where a bulk action hit every innocent member: 1 post pulled 40 innocent items
in. An entity now links a similarity group only when most of the group's items carry it.
A text of thousands of numbers took seconds per text (quadratic overlap checks), and the first
11 digits of a longer number (an order or tracking number) were read as a phone number, so two
different numbers sharing a prefix were one entity.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from clustering import facts, service
from clustering import normalize
from clustering.campaigns import CampaignGraph
from clustering.config import CampaignSettings, IndexSettings
from clustering.normalize import extract_entities, normalize_template
from test_campaigns import HashingEmbedder, add_items, campaign_of


def _settings(**kw) -> CampaignSettings:
    return CampaignSettings(**{**dict(similarity_threshold=0.8, index=IndexSettings(hnsw_min_size=10_000)), **kw})


def _wave(n: int, dim: int, rng: np.random.Generator, axis: int) -> np.ndarray:
    v = np.zeros((n, dim), dtype=np.float32)
    v[:, axis] = 1.0
    v[:, axis + 1:axis + 3] = 0.05 * rng.normal(size=(n, 2))
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # every pair ~0.99: one wave


def _campaign(g: CampaignGraph, item: str) -> set[str]:
    labels = g.components().labels
    return {g.item_ids[r] for r in np.flatnonzero(labels == labels[g.row(item)])}


# -- the rule, on plain arrays ---------------------------------------------------------------------
def test_an_entity_speaks_for_a_group_only_when_most_of_its_items_carry_it():
    # items 0-3: one group; item 4 and item 5: groups of their own
    item_group = np.array([7, 7, 7, 7, 2, 9])
    mention_item = np.array([0, 4, 1, 2, 5, 5])
    mention_key = np.array([0, 0, 1, 1, 1, 0])
    keep = facts.characteristic_mentions(mention_item, mention_key, item_group)
    # key 0: 1 of 4 items of the big group (a decoy there), the whole of 4's and 5's groups
    # key 1: 2 of 4 (half: speaks for it), all of 5's group
    assert keep.tolist() == [False, True, True, True, True, True]
    assert facts.characteristic_mentions(np.array([], dtype=int), np.array([], dtype=int), item_group).tolist() == []
    # a key repeated for one item counts once
    assert facts.characteristic_mentions(np.array([0, 0]), np.array([3, 3]), np.array([0, 0, 0])).tolist() == [False, False]


# -- the graph (needs the campaigns.py change in the report) --------------------------------------
def test_one_bridge_post_does_not_pull_an_innocent_group_into_a_scam_campaign():
    rng = np.random.default_rng(0)
    dim = 64
    texts = ["URGENT claim your prize, call 09061701939 now"] * 10
    texts += [f"happy new year to all my friends and family {i}" for i in range(40)]
    texts += ["happy new year to all my friends and family, call 09061701939"]  # the attacker's bridge
    keys = ["scam"] * 10 + [f"b{i}" for i in range(40)] + ["bridge"]
    ids = [f"s{i}" for i in range(10)] + [f"b{i}" for i in range(40)] + ["bridge"]
    vectors = np.concatenate([_wave(1, dim, rng, 0), _wave(41, dim, rng, 10)])
    g = CampaignGraph(_settings(), dim)
    g.add(ids, keys, [extract_entities(t) for t in texts], vectors)
    assert _campaign(g, "s0") == {f"s{i}" for i in range(10)}  # was 51: the 40 innocent items too
    assert "bridge" in _campaign(g, "b0")  # it is its text's: similarity still groups it there
    # The scam's own number still links its differently-worded messages to the wave.
    more = ["Hi mum, new phone, text me on 09061701939", "Delivery failed!! Reschedule: 09061701939"]
    g.add(["x", "y"], ["x", "y"], [extract_entities(t) for t in more], np.eye(dim, dtype=np.float32)[[40, 50]])
    assert _campaign(g, "s0") == {f"s{i}" for i in range(10)} | {"x", "y"}


def test_one_decoy_post_in_each_of_two_campaigns_does_not_merge_them():
    rng = np.random.default_rng(1)
    dim = 64
    p = [f"parcel fee due, pay at royalmail-fee.com/{i}" for i in range(15)] + \
        ["parcel fee due, pay at royalmail-fee.com/x or ring 07700900999"]
    q = [f"your bank account is locked, verify at bank-verify.icu/{i}" for i in range(15)] + \
        ["your bank account is locked, verify at bank-verify.icu/y or ring 07700900999"]
    ids = [f"p{i}" for i in range(16)] + [f"q{i}" for i in range(16)]
    g = CampaignGraph(_settings(), dim)
    g.add(ids, [f"k{i}" for i in range(32)], [extract_entities(t) for t in p + q],
          np.concatenate([_wave(16, dim, rng, 20), _wave(16, dim, rng, 30)]))
    assert _campaign(g, "p0") == {f"p{i}" for i in range(16)}
    assert _campaign(g, "q0") == {f"q{i}" for i in range(16)}


def test_a_bridge_post_does_not_pull_innocent_items_into_the_stored_campaign(any_store):
    scam = "URGENT! You have won a guaranteed cash prize. Call 09061701939 now to claim, valid 12hrs only"
    chain = "Happy new year to all my friends and family, wishing you health and happiness this year"
    rows = [(f"s{i}", scam) for i in range(3)] + [(f"h{i}", chain) for i in range(8)]
    rows += [("bridge", chain + " call 09061701939")]
    add_items(any_store, rows)
    service.cluster(any_store, _settings(), embedder=HashingEmbedder(), show_progress=False)
    scam_campaign = campaign_of(any_store, "s0")
    assert scam_campaign is not None
    assert [i for i, _ in rows if campaign_of(any_store, i) == scam_campaign] == ["s0", "s1", "s2"]


# -- extraction ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["your order 0770090012345 has shipped", "ref 07700900123999",
                                  "tracking 0123456789012345678"])
def test_the_start_of_a_longer_number_is_no_phone(text):
    assert extract_entities(text).phone == ()
    assert "<phone>" not in normalize_template(text)


def test_two_numbers_sharing_a_prefix_are_not_one_entity():
    a, b = extract_entities("order 0770090012345 shipped"), extract_entities("order 0770090012399 shipped")
    assert not set(a.items()) & set(b.items())
    assert extract_entities("call 07700900123 or 07700 900124").phone == ("07700900123", "07700900124")


@pytest.mark.parametrize("text", ["call +44 07700 900123", "call +44 0 7 7 0 0 9 0 0 1 2 3", "call 0044 07700.900.123",
                                  "call +44 07700-900-123 today"])
def test_a_trunk_zero_after_the_country_code_is_the_same_number(text):
    assert extract_entities(text).phone == extract_entities("call +447700900123").phone == ("07700900123",)


def test_overlap_checks_over_many_spans_agree_with_checking_each():
    rng = random.Random(5)
    taken, spans = normalize._Taken(), []
    for _ in range(3000):
        s = rng.randrange(0, 5000)
        e = s + rng.randrange(1, 12)
        free = all(e <= ts or s >= te for ts, te in spans)
        assert taken.free(s, e) == free
        if free:
            taken.add(s, e)
            spans.append((s, e))
    assert len(spans) > 100
    # a text of thousands of entities (quadratic before: 100 KB of short codes took 11 s) keeps each
    text = " ".join(f"text {70000 + i} or ring 0770090{i:04d} at a{i}.com" for i in range(2000))
    ents = extract_entities(text)
    assert (len(ents.shortcode), len(ents.phone), len(ents.url)) == (2000, 2000, 2000)

