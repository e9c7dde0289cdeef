"""Exploring campaigns: what the Campaigns tab and `campaigns list|show` show, and refuse.

A campaign's shared entities (a URL, a host, an e-mail address: words a scam wave or a hate wave
chose) were printed raw by the Campaigns tab and `campaigns show|list` while its exemplar and
top terms were masked; a member's "linked by" in `campaigns show` named them too. A merged
campaign shown in the tab said it was merged but not into which campaign. A campaign id or
members page of a whole number too big for a float (a client's JSON) failed Apply and the page
buttons with an OverflowError traceback.
"""
from __future__ import annotations

import json

from sqlalchemy import update

from core.schema import Campaign, CampaignMember
from labeling.masking import mask_text
from workbench.ui.format import md_escape

from test_hardening_campaign_terms import HATEISH, _cli, _spam, _tab
from test_queue_support import add_campaign, add_scored

URL = "vermin-hunters.example/kill"
EMAIL = "vermin@hunters.example"


def _entities(store, cid: int) -> None:
    """Entities as `cluster` stores them, and a member linked by the URL."""
    ents = {"url": [{"value": URL, "items": 4, "links": True}],
            "email": [{"value": EMAIL, "items": 2, "links": True}],
            "phone": [{"value": "09061701461", "items": 3, "links": True}]}
    with store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(entities=ents))
        conn.execute(update(CampaignMember.__table__).where(CampaignMember.__table__.c.campaign_id == cid)
                     .values(linked_by=f"similarity,url:{URL}"))


def test_shared_entities_of_a_sensitive_campaign_are_masked(any_store, taxonomy, queue_config):
    """Hate members in the wave: its URL and e-mail address are masked wherever the campaign is
    shown (the phone, no words, reads the same); a plain spam wave's entities stay readable."""
    hate = add_campaign(any_store, _spam(any_store, taxonomy) + add_scored(any_store, taxonomy, [
        {"id": "z0", "label": "spam", "scores": HATEISH, "text": f"you vermin, see {URL}"}]))
    _entities(any_store, hate)
    run = _cli(any_store)
    outs = {"list": run("campaigns", "list"), "list --json": run("campaigns", "list", "--json"),
            "show": run("campaigns", "show", str(hate), "--members", "0"),
            "show --json": run("campaigns", "show", str(hate), "--json")}
    fns = _tab(any_store, taxonomy, queue_config)
    outs["tab"] = fns["first"][0](hate, "lead", None)[0]
    for where, out in outs.items():
        assert "vermin" not in out and "hunters" not in out, where
    assert md_escape(mask_text(URL)) in outs["tab"] and "09061701461" in outs["tab"]
    assert mask_text(URL) in outs["show"] and mask_text(EMAIL) in outs["show"]
    plain = add_campaign(any_store, _spam(any_store, taxonomy, prefix="b"))
    _entities(any_store, plain)
    assert md_escape(URL) in _tab(any_store, taxonomy, queue_config)["first"][0](plain, "lead", None)[0]
    listed = {c["id"]: c for c in json.loads(run("campaigns", "list", "--json"))}
    assert listed[plain]["entities"]["url"][0]["value"] == URL
    assert listed[hate]["entities"]["url"][0]["value"] == mask_text(URL)


def _merge(store, gone: int, into: int) -> None:
    """As `cluster` leaves a campaign whose members joined `into`: merged, size 0, no members."""
    with store.begin() as conn:
        conn.execute(CampaignMember.__table__.delete().where(CampaignMember.__table__.c.campaign_id == gone))
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == gone).values(
            status="merged", size=0, link_reasons={"merged_into": into}))


def test_a_merged_campaign_names_the_campaign_its_members_are_in(any_store, taxonomy, queue_config):
    """Campaign a merged into b, b later into c: showing a (the tab, `campaigns show`) or applying a
    decision to it names c, where its members are now and the decision belongs; it said only
    "merged", and "apply the decision there" without saying where."""
    a = add_campaign(any_store, _spam(any_store, taxonomy, 2, "a"))
    b = add_campaign(any_store, _spam(any_store, taxonomy, 2, "b"))
    c = add_campaign(any_store, _spam(any_store, taxonomy, 3, "c"))
    _merge(any_store, a, b)
    _merge(any_store, b, c)
    fns = _tab(any_store, taxonomy, queue_config)
    body = fns["first"][0](a, "lead", None)[0]
    assert f"merged into campaign {c}" in body, body
    said = fns["act_on_campaign"][0](a, "lead", "spam", "", "", False, None)
    assert f"campaign {c}" in said, said
    shown = _cli(any_store)("campaigns", "show", str(a))
    assert f"merged into campaign {c}" in shown, shown
    with any_store.begin() as conn:  # a loop a damaged store may hold: said, not followed forever
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == c).values(
            status="merged", size=0, link_reasons={"merged_into": a}))
    assert "merged" in fns["first"][0](a, "lead", None)[0]


def test_a_campaign_id_or_page_too_big_for_a_float_is_refused(any_store, taxonomy, queue_config):
    """A client's JSON may carry a whole number of 400 digits: Apply and the page buttons failed
    with an OverflowError traceback instead of a one-line refusal."""
    cid = add_campaign(any_store, _spam(any_store, taxonomy, 2))
    fns = _tab(any_store, taxonomy, queue_config)
    huge = 10 ** 400
    for big in (huge, 10 ** 5000):  # the second past what `str()` converts
        said = fns["act_on_campaign"][0](big, "lead", "spam", "", "", False, None)
        assert said == "Warning: Not saved: the campaign id must be a whole number from 1 to 2147483647, not a " \
                       "number that large", said
    for step in ("prev", "nxt"):
        body, *_rest, page, _seen = fns[step][0](cid, huge, "lead", None)
        assert f"Campaign {cid}" in body and page == 1
    assert fns["first"][0](huge, "lead", None)[0].startswith("Warning:")


def test_search_embeds_the_query_as_the_index_was_built(sqlite_store):
    """`embed` changed in campaigns.yaml (template -> raw) and no `cluster --rebuild` yet: a text
    searched was embedded raw against an index of templates, so an exact copy of an indexed text
    scored well under 1 (and rankings shifted), silently. The query follows the index's own way."""
    from clustering import search, service
    from test_campaigns import HashingEmbedder, add_items, corpus, settings

    rows = corpus()
    add_items(sqlite_store, rows)
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    text = dict(rows)["a1"]
    for st in (settings(), settings(embed="raw")):
        hits = search.search_text(sqlite_store, text, st, k=3, embedder=HashingEmbedder())
        assert hits[0]["similarity"] > 0.999 and {h["item_id"] for h in hits} <= {"a0", "a1", "a2", "a3"}, hits


def test_a_search_for_more_items_than_a_query_takes_parameters(any_store, taxonomy, monkeypatch):
    """`search -k 70000` (k may be up to a million): the hits' campaigns were read with one IN list
    of every hit's id, over PostgreSQL's 65,535 parameters: an OperationalError traceback."""
    from types import SimpleNamespace

    import numpy as np

    from clustering import search
    from test_campaigns import HashingEmbedder, settings

    n = 70_000
    ids = [f"i{k:06d}" for k in range(n)]
    cid = add_campaign(any_store, add_scored(any_store, taxonomy, [{"id": i, "label": "spam", "p": 0.9}
                                                                   for i in ids[-2:]]))

    class Index:  # the nearest texts: every one, in order
        def search(self, vec, k):
            return np.ones((1, k), np.float32), np.arange(k)[None, :]

        def __len__(self):
            return n
    graph = SimpleNamespace(model_id=HashingEmbedder.model_id, built_with=None, item_ids=ids,
                            item_node=np.arange(n), index=Index())
    monkeypatch.setattr(search, "_load_graph", lambda store, st: graph)
    hits = search.search_text(any_store, "prize", settings(), k=n, embedder=HashingEmbedder())
    assert len(hits) == n and hits[0]["campaign_id"] is None and hits[-1]["campaign_id"] == cid


def test_the_list_says_when_there_are_more_campaigns_and_pages_in_a_stable_order(any_store, taxonomy,
                                                                                   queue_config, monkeypatch):
    """The Campaigns tab listed the 100 biggest and ended, as if there were no more; `campaigns
    list` had no way to the next page. Campaigns of one size are paged by id, none twice."""
    from workbench.ui import campaigns as tab

    monkeypatch.setattr(tab, "LIST_LIMIT", 4)  # 100 in the tab
    ids = _spam(any_store, taxonomy, 12)
    cids = [add_campaign(any_store, ids[i:i + 2]) for i in range(0, len(ids), 2)]
    rows = _tab(any_store, taxonomy, queue_config)["campaign_table"][0]("", None)
    assert [r[0] for r in rows[:-1]] == cids[:4]
    assert rows[-1][0] is None and "More campaigns than the 4 biggest listed" in rows[-1][3]
    assert "--offset 4" in rows[-1][3]
    run = _cli(any_store)
    pages = [json.loads(run("campaigns", "list", "--limit", "4", "--offset", str(o), "--json")) for o in (0, 4, 8)]
    assert [c["id"] for page in pages for c in page] == cids
    assert "no campaigns past the first 6" in run("campaigns", "list", "--offset", "6")


def test_a_masked_review_packet_masks_its_campaigns_shared_entities():
    """The Review screen (and the escalation packet built from it) showed a hate wave's URL raw
    beside its masked text, exemplar and terms; the Campaigns tab and CLI share the same rule."""
    from labeling.masking import mask_packet, mask_text

    url = "vermin-hunters.example/kill"
    packet = {"masked": True, "item": {"id": "x", "text": "vermin go home", "metadata": {}},
              "case": {"id": 1}, "similar_decisions": [], "decisions": [], "author": None,
              "campaign": {"id": 2, "top_terms": [["vermin", 0.5]], "exemplar_text": "vermin go home",
                           "entities": {"url": [{"value": url, "items": 3}], "phone": [{"value": "0871", "items": 2}]},
                           "sample": []}}
    hidden = mask_packet(packet, revealed=False)["campaign"]["entities"]
    assert hidden["url"][0]["value"] == mask_text(url) != url and hidden["url"][0]["items"] == 3
    assert hidden["phone"][0]["value"] == "0871"  # digits only: reads the same
    assert mask_packet(packet, revealed=True)["campaign"]["entities"]["url"][0]["value"] == url
    assert packet["campaign"]["entities"]["url"][0]["value"] == url  # the packet itself is not changed
