"""Campaign cases and bulk decisions stay consistent: a merged campaign's case is never served,
escalated or decided; a campaign that keeps growing after its bulk decision gets a new case for
the newcomers only; a bulk decision never overrides an appeal; the preview counts what `decide`
does, for whoever applies it (the Campaigns tab included)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, update

from core.config import config_dir
from core.labels import current_labels
from core.schema import Campaign, CampaignMember, Case
from labeling import decisions as DEC
from labeling.appeals import appeal, resolve_appeal
from labeling.cases import build_cases, campaign_case
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.escalation import sweep
from labeling.queue_config import load_queue_config

from test_queue_support import T0, add_campaign, add_scored

C = Case.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _camp(store, taxonomy, cfg, ids, now=T0):
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ids])
    cid = add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=now, progress=False)
    return cid


def _case(store, cid):
    with store.read() as conn:
        return dict(conn.execute(select(C).where(C.c.campaign_id == cid).order_by(C.c.id.desc())).mappings().first())


def _merge(store, gone, into):
    """What a clustering run does when campaign `gone` is absorbed: members move, it is marked merged."""
    with store.begin() as conn:
        conn.execute(update(CampaignMember.__table__).where(CampaignMember.__table__.c.campaign_id == gone)
                     .values(campaign_id=into, added_at=T0 + dt.timedelta(hours=1)))
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == gone).values(status="merged", size=0))


def _join_ids(store, taxonomy, ids):
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ids])
    return ids


def _join(store, taxonomy, cid, ids, at):
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ids])
    with store.begin() as conn:
        conn.execute(insert(CampaignMember.__table__), [
            {"item_id": m, "campaign_id": cid, "linked_by": "test", "similarity": 0.9, "added_at": at} for m in ids])


class _App:
    """What the Campaigns tab reads from the application context."""

    def __init__(self, store, taxonomy, cfg, users=False):
        self._s, self._t, self._c, self._u = store, taxonomy, cfg, users

    def store(self):
        return self._s

    def taxonomy(self):
        return self._t

    def queues(self):
        return self._c

    def has_users(self):
        return self._u

    def review(self):
        from labeling.review_config import load_review_settings
        return load_review_settings(config_dir(), taxonomy=self._t)


def _tab(app):
    """The Campaigns tab's callbacks by name."""
    import gradio as gr

    from workbench.ui.campaigns import build_campaigns_tab

    with gr.Blocks() as demo:
        who = gr.Textbox()
        with gr.Tab("Campaigns") as tab:
            build_campaigns_tab(app, tab, who)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {getattr(f.fn, "__name__", ""): f.fn for f in fns}


# --- 2. a merged campaign's case ---------------------------------------------------------------

def test_merged_campaign_case_is_not_decided_escalated_or_offered(any_store, taxonomy, cfg):
    keep = _camp(any_store, taxonomy, cfg, ["a0", "a1", "a2"])
    gone = add_campaign(any_store, _join_ids(any_store, taxonomy, ["b0", "b1"]))
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    stale = _case(any_store, gone)
    _merge(any_store, gone, keep)
    assert campaign_case(any_store, gone) is None and campaign_case(any_store, keep) is not None
    with pytest.raises(DecisionError, match=f"campaign {gone} of case {stale['id']} is merged"):
        DEC.decide(any_store, taxonomy, stale["id"], "lead", "scam", now=T0, config=cfg)
    assert build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=2), progress=False)["campaign_cases"] == 0
    out = sweep(any_store, taxonomy, cfg, now=T0 + dt.timedelta(days=30))
    after = _case(any_store, gone)
    assert out["sla_escalated"] > 0  # the live cases lapsed and were escalated ...
    assert (after["state"], after["queue"]) == (stale["state"], stale["queue"])  # ... the merged one was not
    assert after["updated_at"] == stale["updated_at"]


def test_campaigns_tab_shows_a_merged_campaign_instead_of_failing(sqlite_store, taxonomy, cfg):
    keep = _camp(sqlite_store, taxonomy, cfg, ["a0", "a1", "a2"])
    gone = add_campaign(sqlite_store, _join_ids(sqlite_store, taxonomy, ["b0", "b1"]))
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    _merge(sqlite_store, gone, keep)
    fns = _tab(_App(sqlite_store, taxonomy, cfg))
    body = fns["prev"](gone, 2, "lead", None)[0]
    assert f"Campaign {gone} is merged" in body
    said = fns["act_on_campaign"](gone, "lead", "scam", "block_sender", "", False, None)
    assert said.startswith("Warning:") and "is merged" in said


def test_campaigns_tab_shows_a_refused_preview(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    fns = _tab(_App(sqlite_store, taxonomy, cfg, users=True))  # accounts, but no signed-in request
    body = fns["prev"](cid, 2, "", None)[0]
    assert "Warning: sign in first" in body


# --- 3. a campaign that keeps growing -------------------------------------------------------------

def test_grown_campaign_gets_a_new_case_for_its_undecided_newcomers(any_store, taxonomy, cfg):
    cid = _camp(any_store, taxonomy, cfg, ["w0", "w1", "w2"])
    first = campaign_case(any_store, cid)
    DEC.decide(any_store, taxonomy, first, "lead", "scam", now=T0, config=cfg)
    assert build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=30), progress=False)["campaign_cases"] == 0
    _join(any_store, taxonomy, cid, ["x0", "x1", "x2"], T0 + dt.timedelta(hours=1))
    built = build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=1), progress=False)
    assert built["campaign_cases"] == 1
    second = campaign_case(any_store, cid)
    assert second not in (None, first) and _case(any_store, cid)["meta"]["follow_up_of"] == first
    p = DEC.bulk_preview(any_store, second, "lead", now=T0 + dt.timedelta(hours=1))
    assert (p["existing"], p["will_decide"], p["already_decided"]) == ("skip", 3, 0)
    assert p["skipped_decided"] == ["w0", "w1", "w2"]
    out = DEC.decide(any_store, taxonomy, second, "lead", "scam", now=T0 + dt.timedelta(hours=2), config=cfg)
    assert len(out["decision_ids"]) == 3 and out["bulk"]["superseded"] == 0
    labels = current_labels(any_store)
    assert {m for m, d in labels.items() if d["case_id"] == second} == {"x0", "x1", "x2"}
    assert all(labels[m]["case_id"] == first for m in ("w0", "w1", "w2"))  # the first decision stands
    # asked for, the earlier decisions are superseded as before
    _join(any_store, taxonomy, cid, ["y0", "y1"], T0 + dt.timedelta(hours=3))
    build_cases(any_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=3), progress=False)
    third = campaign_case(any_store, cid)
    out = DEC.decide(any_store, taxonomy, third, "lead", "scam", now=T0 + dt.timedelta(hours=4), config=cfg,
                     existing="supersede")
    assert len(out["decision_ids"]) == 8 and out["bulk"]["superseded"] == 6


def test_grown_campaign_whose_newcomer_is_decided_gets_no_case(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["w0", "w1"])
    DEC.decide(sqlite_store, taxonomy, campaign_case(sqlite_store, cid), "lead", "scam", now=T0, config=cfg)
    add_scored(sqlite_store, taxonomy, [{"id": "x0", "label": "scam", "p": 0.8}])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    own = next_case(sqlite_store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(sqlite_store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg)
    with sqlite_store.begin() as conn:  # x0 joins the wave already decided
        conn.execute(insert(CampaignMember.__table__).values(item_id="x0", campaign_id=cid, linked_by="test",
                                                             added_at=T0 + dt.timedelta(hours=1)))
    assert build_cases(sqlite_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=1), progress=False)["campaign_cases"] == 0
    assert campaign_case(sqlite_store, cid) is None


def test_campaigns_tab_says_why_a_decided_campaign_has_no_case(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["w0", "w1"])
    first = campaign_case(sqlite_store, cid)
    fns = _tab(_App(sqlite_store, taxonomy, cfg))
    said = fns["act_on_campaign"](cid, "lead", "scam", "block_sender", "", False, None)
    assert said.startswith("Saved:")
    said = fns["act_on_campaign"](cid, "lead", "scam", "block_sender", "", False, None)
    assert f"was decided (case {first}) and no undecided member joined since" in said
    _join(sqlite_store, taxonomy, cid, ["x0", "x1"], dt.datetime(2100, 1, 1))
    said = fns["act_on_campaign"](cid, "lead", "scam", "block_sender", "", False, None)
    assert "2 undecided members joined since: they get a campaign case of their own when an engineer builds" in said
    assert "`workbench cases build`" in said and "decide them one by one on the Review tab" in said
    build_cases(sqlite_store, taxonomy, cfg, now=T0 + dt.timedelta(hours=1), progress=False)
    assert "already decided are left out" in fns["prev"](cid, 2, "lead", None)[0]
    said = fns["act_on_campaign"](cid, "lead", "scam", "block_sender", "", False, None)
    assert said.startswith("Saved: scam / block_sender applied to 2 items") and "2 already decided" in said


# --- 4. appeals -------------------------------------------------------------------------------

def test_bulk_leaves_out_an_upheld_appeal_and_a_pending_one(any_store, taxonomy, cfg):
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1", "m2", "m3"])
    for who in ("ann", "bob"):
        own = next_case(any_store, who, "fraud", now=T0, config=cfg)
        DEC.decide(any_store, taxonomy, own["id"], who, "scam", now=T0, config=cfg)
    upheld, pending = sorted(current_labels(any_store))
    ap = appeal(any_store, upheld, "user1", "I am a real shop", taxonomy, now=T0, config=cfg)
    resolve_appeal(any_store, taxonomy, ap["id"], "carol", "reverse", "verified merchant", now=T0, config=cfg)
    waiting = appeal(any_store, pending, "user2", "not a scam", taxonomy, now=T0, config=cfg)
    case = campaign_case(any_store, cid)
    p = DEC.bulk_preview(any_store, case, "lead", now=T0, config=cfg)
    assert p["skipped_appeal"] == [upheld, pending] and (p["will_decide"], p["already_decided"]) == (2, 0)
    out = DEC.decide(any_store, taxonomy, case, "lead", "spam", rationale="advert", now=T0, config=cfg)
    assert out["bulk"]["skipped_appeal"] == [upheld, pending] and out["bulk"]["superseded"] == 0
    assert len(out["decision_ids"]) == 2
    labels = current_labels(any_store)
    assert (labels[upheld]["label"], labels[upheld]["kind"]) == ("benign", "appeal")
    assert labels[pending]["reviewer"] in ("ann", "bob")
    with any_store.read() as conn:
        assert conn.execute(select(C.c.state).where(C.c.id == waiting["id"])).scalar() == "open"


# --- 5. the preview counts what decide does ----------------------------------------------------

def test_preview_counts_decided_members_only_where_decide_touches_them(any_store, taxonomy, cfg):
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1", "m2", "m3"])
    own = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(any_store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg)
    with any_store.begin() as conn:  # bob holds a QA copy of ann's decided item
        conn.execute(insert(C).values(item_id=own["item_id"], queue="fraud", state="claimed", is_audit=True,
                                      claimed_by="bob", lease_expires_at=T0 + dt.timedelta(hours=1),
                                      created_at=T0, updated_at=T0, meta={}))
    case = campaign_case(any_store, cid)
    p = DEC.bulk_preview(any_store, case, "lead", now=T0)
    assert p["held_by_others"] == {own["item_id"]: "bob"} and p["already_decided"] == 0 and p["will_decide"] == 3
    out = DEC.decide(any_store, taxonomy, case, "lead", "scam", now=T0, config=cfg)
    assert (len(out["decision_ids"]), out["bulk"]["superseded"]) == (p["will_decide"], p["already_decided"])


def test_campaigns_tab_previews_for_the_lead_who_applies(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2", "m3"])
    next_case(sqlite_store, "lead", "fraud", now=dt.datetime(2100, 1, 1), config=cfg)  # the lead's own claim
    fns = _tab(_App(sqlite_store, taxonomy, cfg))
    body = fns["prev"](cid, 2, "lead", None)[0]
    assert "labels 4 of 4 members." in body and "held by other" not in body
    assert "labels 3 of 4 members; 1 held by other analysts" in fns["prev"](cid, 2, "ann", None)[0]


def test_a_campaign_decision_for_the_members_previewed_refuses_a_changed_campaign(any_store, taxonomy, cfg):
    """The Campaigns tab passes the members its preview listed: a member that joined between the
    tab's check and the save (under the decision's locks) refuses the whole decision."""
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1", "m2"])
    case = _case(any_store, cid)
    with pytest.raises(DecisionError, match="changed since it was previewed .2 members then, 3 now"):
        DEC.decide(any_store, taxonomy, case["id"], "lead", "scam", config=cfg, members=["m0", "m1"])
    assert current_labels(any_store) == {}
    out = DEC.decide(any_store, taxonomy, case["id"], "lead", "scam", config=cfg, members=["m2", "m1", "m0"])
    assert len(out["decision_ids"]) == 3
