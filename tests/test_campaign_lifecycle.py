"""Campaign ids, cases and member times across re-clustering: splits, merges, re-linked members;
growth windows and URL entities (clustering/service.py, facts.py, normalize.py)."""
from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import insert, select, update

from clustering import facts, service
from clustering.normalize import extract_entities
from core import audit
from core.schema import AuditEvent, Campaign, Case, CampaignMember
from test_campaigns import HashingEmbedder, campaign_of, settings
from test_queue_support import T0, add_scored

X = "hello dear customer your tax refund of money is ready please claim it today via the secure portal at refundx.com {w}"
Y = "winner winner you have been selected for a free holiday cruise book your cabin now at refundx.com {w}"


def _cluster(store, s):
    return service.cluster(store, s, embedder=HashingEmbedder(), show_progress=False)


def _add(store, taxonomy, rows):
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9, "text": t} for i, t in rows])


def _open_case(store, campaign_id, item_id, state="open", claimed_by=None):
    with store.begin() as conn:
        return conn.execute(insert(Case.__table__).values(
            item_id=item_id, campaign_id=campaign_id, queue="campaigns", state=state, claimed_by=claimed_by,
            meta={"note": "kept"}, created_at=T0, updated_at=T0).returning(Case.__table__.c.id)).scalar_one()


def _case(store, case_id):
    with store.read() as conn:
        return conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one()


def _campaign(store, cid):
    with store.read() as conn:
        return conn.execute(select(Campaign.__table__).where(Campaign.id == cid)).mappings().one()


def test_assign_ids_gives_each_id_to_the_group_with_most_of_its_members():
    # Campaign 1 split: 2 old members in a group grown to 6, 3 in a group of 3. The 3 keep id 1.
    assert service.assign_ids([Counter({1: 2}), Counter({1: 3})], [6, 3]) == [None, 1]
    # A merge: the group holds 3 of campaign 1 and 2 of campaign 2; campaign 2 goes.
    assert service.assign_ids([Counter({1: 3, 2: 2})], [6]) == [1]
    # Ties: the bigger group, then the lower id; every group and id used once.
    assert service.assign_ids([Counter({5: 2, 4: 2}), Counter({5: 2})], [2, 4]) == [4, 5]
    with pytest.raises(ValueError, match="2 vote counts for 1 groups"):
        service.assign_ids([Counter(), Counter()], [1])


def test_split_leaves_id_and_case_with_the_majority(any_store, taxonomy):
    s = settings(similarity_threshold=0.8, entity_max_df=5)
    _add(any_store, taxonomy, [("a0", X.format(w="alpha")), ("a1", X.format(w="beta")),
                               ("a2", Y.format(w="gamma")), ("a3", Y.format(w="delta")), ("a4", Y.format(w="omega"))])
    _cluster(any_store, s)
    old = campaign_of(any_store, "a0")
    assert {campaign_of(any_store, i) for i in ("a1", "a2", "a3", "a4")} == {old}
    case_id = _open_case(any_store, old, "a0")  # its exemplar is about to leave
    # Four new X texts: the shared host is now too common to link, so the X part (2 old members,
    # 6 in all) and the Y part (3 old members) separate.
    _add(any_store, taxonomy, [(f"n{i}", X.format(w=w)) for i, w in enumerate(["kappa", "lambda", "sigma", "zeta"])])
    out = _cluster(any_store, s)
    assert {campaign_of(any_store, i) for i in ("a2", "a3", "a4")} == {old}
    other = campaign_of(any_store, "a0")
    assert other != old and campaign_of(any_store, "n0") == other
    assert _campaign(any_store, other)["link_reasons"]["split_from"] == [old]
    assert "split_from" not in _campaign(any_store, old)["link_reasons"]
    assert out["split_from"] == {str(other): [old]}
    case = _case(any_store, case_id)
    assert case["state"] == "open" and case["item_id"] in {"a2", "a3", "a4"}
    assert case["item_id"] == _campaign(any_store, old)["exemplar_item_id"]
    assert out["case_exemplars_refreshed"] == 1


def _merge_setup(store, taxonomy):
    s = settings(similarity_threshold=0.99, entity_max_df=10)
    _add(store, taxonomy, [("p0", "ring 09050000001 now"), ("p1", "call 09050000001 today please"),
                           ("p2", "yo 09050000001 ok"),
                           ("q0", "your parcel: 09050000002"), ("q1", "parcel waiting 09050000002 asap")])
    _cluster(store, s)
    return s, campaign_of(store, "p0"), campaign_of(store, "q0")


@pytest.mark.parametrize("state,holder", [("open", None), ("claimed", "lead"), ("escalated", None)])
def test_merge_closes_the_absorbed_campaigns_waiting_case(any_store, taxonomy, state, holder):
    s, cp, cq = _merge_setup(any_store, taxonomy)
    assert cp != cq
    waiting = _open_case(any_store, cq, "q1", state=state, claimed_by=holder)
    survivor = _open_case(any_store, cp, "p0")
    _add(any_store, taxonomy, [("r0", "numbers 09050000001 and 09050000002 both work")])
    out = _cluster(any_store, s)
    case = _case(any_store, waiting)
    assert case["state"] == "decided" and case["resolved_at"] is not None and case["lease_expires_at"] is None
    assert out["campaigns_merged"] == 1 and out["merged_into"] == {str(cq): cp} and out["cases_closed"] == 1
    assert _campaign(any_store, cq)["status"] == "merged"
    assert _campaign(any_store, cq)["link_reasons"]["merged_into"] == cp
    assert case["meta"]["note"] == "kept"
    assert case["meta"]["closed"] == {"reason": "campaign_merged", "campaign": cq, "merged_into": cp,
                                      "without_decision": True}
    assert _case(any_store, survivor)["state"] == "open"
    with any_store.read() as conn:
        ev = conn.execute(select(AuditEvent.__table__).where(AuditEvent.action == "case.close")).mappings().all()
        assert [(e["entity_id"], e["payload"]["merged_into"], e["payload"]["from_state"]) for e in ev] == \
            [(str(waiting), cp, state)]
        assert audit.verify(conn).ok


def test_a_merged_campaigns_case_left_open_earlier_is_closed_on_the_next_run(any_store, taxonomy):
    s, cp, _cq = _merge_setup(any_store, taxonomy)
    with any_store.begin() as conn:
        old = conn.execute(insert(Campaign.__table__).values(
            exemplar_item_id="p0", size=0, status="merged", link_reasons={"merged_into": cp},
            created_at=T0, updated_at=T0).returning(Campaign.__table__.c.id)).scalar_one()
    case_id = _open_case(any_store, old, "p0")
    out = _cluster(any_store, s)  # nothing new to cluster
    case = _case(any_store, case_id)
    assert case["state"] == "decided" and case["meta"]["closed"]["merged_into"] == cp
    assert out["items"] == 0 and out["cases_closed"] == 1


def test_a_member_staying_in_its_campaign_keeps_its_added_at(any_store, taxonomy):
    s = settings(similarity_threshold=0.8, entity_max_df=50)
    _add(any_store, taxonomy, [(f"w{i}", f"parcel held fee pay at 09050000009 ref {w}")
                               for i, w in enumerate(["alpha", "beta", "gamma"])])
    _cluster(any_store, s)
    joined = dt.datetime(2025, 6, 1, 12, 0)
    with any_store.begin() as conn:
        conn.execute(update(CampaignMember.__table__).values(added_at=joined))
    # An exact copy of w0: w0's linked_by and similarity change, its campaign does not.
    _add(any_store, taxonomy, [("x0", "parcel held fee pay at 09050000009 ref alpha")])
    _cluster(any_store, s)
    with any_store.read() as conn:
        rows = {r.item_id: r for r in conn.execute(select(CampaignMember.__table__))}
    assert rows["w0"].linked_by.startswith("same_text") and rows["w0"].added_at == joined
    assert rows["x0"].added_at > joined and rows["x0"].campaign_id == rows["w0"].campaign_id


def test_growth_does_not_count_future_members_as_recent():
    now = dt.datetime(2026, 1, 1, 12, 0)
    times = [now - dt.timedelta(minutes=30), now - dt.timedelta(hours=5), now + dt.timedelta(hours=3)]
    g = facts.growth(times, now)
    assert g["last_hour"] == 1 and g["last_day"] == 2


@pytest.mark.parametrize("text", ["claim at www.refundx.com/", "claim at http://refundx.com", "claim at wap.refundx.com",
                                  "claim at https://m.refundx.com/", "claim at refundx.com."])
def test_one_url_written_several_ways_is_one_entity(text):
    ents = extract_entities(text)
    assert ents.url == ("refundx.com",) and ents.host == ("refundx.com",)


def test_url_prefix_and_trailing_slash_go_but_a_bare_two_label_host_stays():
    assert extract_entities("see https://www.refundx.com/claim/").url == ("refundx.com/claim",)
    assert extract_entities("m.com/x").host == ("m.com",) and extract_entities("m.com/x").url == ("m.com/x",)
