"""Masked texts stay masked everywhere else they leave the server (the UI audit of 12-06): the
context panel (author's other items, rationales, notes, blind calibration copies), the Appeals
tab (reason and rationale, per viewer), the Campaigns tab (each member by its own rule) and a
free-typed policy reference that reached the lead's Markdown."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.principals import Principal
from core.schema import Case, Decision, Item
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case
from labeling.context import case_context
from labeling.decisions import decide
from labeling.errors import DecisionError
from labeling.masking import mask_text
from labeling.notes import add_note
from labeling.packets import reveal_text

from test_queue_support import add_campaign, add_scored

SLUR = "SECRETSLUR vile hateful text"
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
MILD = {"benign": 0.6, "spam": 0.01, "scam": 0.01, "hate": 0.2, "harassment": 0.18}  # masked: hate >= 0.15


def _cfg(queue_config, **update_):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": [], **update_})


def _case_of(store, item_id, queue=None):
    with store.read() as conn:
        q = select(Case.id).where(Case.item_id == item_id, Case.campaign_id.is_(None))
        if queue:
            q = q.where(Case.queue == queue)
        return conn.execute(q.order_by(Case.id.desc())).scalar()


def _author(store, ids, author):
    with store.begin() as conn:
        conn.execute(update(Item.__table__).where(Item.__table__.c.id.in_(ids)).values(author_id=author))


def test_a_reveal_leaves_the_authors_other_items_to_their_own_rule(sqlite_store, taxonomy, queue_config,
                                                                    review_settings):
    from workbench.ui.context_panel import panel_html

    add_scored(sqlite_store, taxonomy, [{"id": "mild", "label": "benign", "scores": MILD, "text": "kind of annoying"},
                                        {"id": "vile", "label": "hate", "scores": HATE, "text": SLUR}])
    _author(sqlite_store, ["mild", "vile"], "troll")
    build_cases(sqlite_store, taxonomy, _cfg(queue_config), progress=False)
    case = _case_of(sqlite_store, "mild")
    reveal_text(sqlite_store, case, "ann", taxonomy=taxonomy, settings=review_settings)  # ann reveals this case only
    ctx = case_context(sqlite_store, taxonomy, case, "ann", review_settings)
    assert ctx["revealed"] and not ctx["masked"]
    row = ctx["author"]["recent"][0]
    assert row["item_id"] == "vile" and row["text"] == mask_text(SLUR) and row["masked"]
    assert "SECRETSLUR" not in panel_html(ctx)


def test_rationales_and_notes_of_a_masked_case_are_masked_until_revealed(sqlite_store, taxonomy, queue_config,
                                                                          review_settings):
    from workbench.ui.context_panel import notes_html, panel_html

    cfg = _cfg(queue_config)
    add_scored(sqlite_store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": SLUR}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    case = _case_of(sqlite_store, "vile")
    claim_case(sqlite_store, case, "ann", cfg)
    decide(sqlite_store, taxonomy, case, "ann", "hate", rationale="uses SECRETSLUR against a group", config=cfg)
    add_note(sqlite_store, "item", "vile", "author posted SECRETSLUR twice", "ann")
    ctx = case_context(sqlite_store, taxonomy, case, "bob", review_settings)
    assert ctx["masked"] and not ctx["revealed"]
    assert ctx["history"][0]["rationale"] == mask_text("uses SECRETSLUR against a group")
    assert ctx["notes"]["item"][0]["body"] == mask_text("author posted SECRETSLUR twice")
    assert "SECRETSLUR" not in panel_html(ctx) + notes_html(ctx)
    reveal_text(sqlite_store, case, "bob", taxonomy=taxonomy, settings=review_settings)  # bob's own reveal: to bob
    ctx = case_context(sqlite_store, taxonomy, case, "bob", review_settings)
    assert ctx["history"][0]["rationale"] == "uses SECRETSLUR against a group"
    assert ctx["notes"]["item"][0]["body"] == "author posted SECRETSLUR twice"


def test_appeals_mask_reason_and_rationale_unless_this_viewer_revealed(sqlite_store, taxonomy, queue_config,
                                                                       review_settings, roles):
    from labeling.appeals import appeal, open_appeals
    from workbench.ui.appeals import appeal_rows, side_by_side

    cfg = _cfg(queue_config)
    ann, lee, vic = Principal("ann", "analyst"), Principal("lee", "lead"), Principal("vic", "viewer")
    add_scored(sqlite_store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": SLUR}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    case = _case_of(sqlite_store, "vile")
    claim_case(sqlite_store, case, ann, cfg)
    decide(sqlite_store, taxonomy, case, ann, "hate", rationale="uses SECRETSLUR against a group", config=cfg)
    filed = appeal(sqlite_store, "vile", Principal("boss", "admin"), "I only quoted SECRETSLUR", taxonomy, config=cfg)
    for who in (None, vic, lee):  # nobody, a viewer (no reveal), a lead who has not revealed
        a = open_appeals(sqlite_store, review_settings, config=cfg, principal=who)[0]
        assert a["masked"] and a["text"] == mask_text(SLUR)
        assert a["reason"] == mask_text("I only quoted SECRETSLUR")
        assert a["decision"]["rationale"] == mask_text("uses SECRETSLUR against a group")
        assert "SECRETSLUR" not in "".join(side_by_side(a)) + str(appeal_rows([a]))
    reveal_text(sqlite_store, filed["id"], lee, taxonomy=taxonomy, settings=review_settings)
    a = open_appeals(sqlite_store, review_settings, config=cfg, principal=lee)[0]
    assert not a["masked"] and a["reason"] == "I only quoted SECRETSLUR"
    assert a["decision"]["rationale"] == "uses SECRETSLUR against a group"
    assert open_appeals(sqlite_store, review_settings, config=cfg, principal=vic)[0]["masked"]


def test_a_calibration_copy_shows_no_decision_on_its_item(sqlite_store, taxonomy, queue_config, review_settings):
    from labeling.packets import review_packet
    from labeling.queue_config import CalibrationSet
    from clustering.config import load_campaign_settings
    from core.config import config_dir

    cfg = _cfg(queue_config, calibration_sets=[CalibrationSet(name="weekly", share=1.0, reviewers=3)])
    add_scored(sqlite_store, taxonomy, [{"id": "c1", "label": "scam", "scores": SPAM, "text": "Win cash now"}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    c_ann = next_case(sqlite_store, "ann", cfg.calibration_queue, config=cfg, detail=False)["id"]
    decide(sqlite_store, taxonomy, c_ann, "ann", "spam", action="remove", rationale="ann thinks spam", config=cfg)
    c_bob = next_case(sqlite_store, "bob", cfg.calibration_queue, config=cfg, detail=False)["id"]
    ctx = case_context(sqlite_store, taxonomy, c_bob, "bob", review_settings)
    assert ctx["history"] == []  # blind: ann's calibration label is not shown to bob
    packet = review_packet(sqlite_store, taxonomy, c_bob, review_settings,
                           load_campaign_settings(config_dir()), viewer="bob")
    assert all(r["item_id"] != "c1" for r in packet["similar_decisions"])


def test_campaigns_mask_each_member_by_its_own_rule(sqlite_store, taxonomy, queue_config, review_settings,
                                                    campaign_settings):
    from clustering.explore import campaign_detail, list_campaigns
    from labeling.masking import mask_campaign
    from labeling.packets import review_packet

    spam = [{"id": f"s{i}", "label": "spam", "scores": SPAM, "text": f"Win cash now ref {i}"} for i in range(6)]
    add_scored(sqlite_store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": SLUR}, *spam])
    cid = add_campaign(sqlite_store, ["vile"] + [s["id"] for s in spam])
    with sqlite_store.begin() as conn:
        from core.schema import Campaign
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid)
                     .values(top_terms=[["secretslur", 0.9], ["cash", 0.5]]))
    build_cases(sqlite_store, taxonomy, _cfg(queue_config), progress=False)
    listed = mask_campaign(review_settings, list_campaigns(sqlite_store, taxonomy=taxonomy)[0])
    assert listed["exemplar_text"] == mask_text(SLUR)  # the mean says spam; the exemplar's own rule masks
    assert [t[0] for t in listed["top_terms"]] == [mask_text("secretslur"), "cash"]
    detail = mask_campaign(review_settings, campaign_detail(sqlite_store, cid, members_limit=0, taxonomy=taxonomy))
    texts = {m["item_id"]: m["text"] for m in detail["members"]}
    assert texts["vile"] == mask_text(SLUR) and texts["s0"] == "Win cash now ref 0"
    with sqlite_store.read() as conn:
        camp_case = conn.execute(select(Case.id).where(Case.campaign_id == cid)).scalar()
    packet = review_packet(sqlite_store, taxonomy, camp_case, review_settings, campaign_settings, viewer="vic")
    assert packet["masked"] and "SECRETSLUR" not in str(packet)


def test_policy_ref_is_a_plain_reference(sqlite_store, taxonomy, queue_config):
    from workbench.ui.appeals import side_by_side

    cfg = _cfg(queue_config)
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "spam", "scores": SPAM, "text": "Win cash"},
                                        {"id": "b", "label": "spam", "scores": SPAM, "text": "Win more cash"}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    evil = "![x](https://attacker.example/p.png) <img src=x>"
    case = _case_of(sqlite_store, "a")
    for bad in (evil, "https://phish.example/login", "x" * 101):
        with pytest.raises(DecisionError, match="policy_ref"):
            decide(sqlite_store, taxonomy, case, "ann", "spam", policy_ref=bad, config=cfg)
    decide(sqlite_store, taxonomy, case, "ann", "spam", policy_ref=" TS-SPAM-1.2 / cg#4: v2_b ", config=cfg)
    with sqlite_store.read() as conn:
        assert conn.execute(select(Decision.policy_ref)).scalar() == "TS-SPAM-1.2 / cg#4: v2_b"
    # whatever is stored (older rows), the lead's Markdown shows it as text
    a = {"case_id": 1, "item_id": "a", "text": "Win cash", "masked": False, "still_current": True,
         "appellant": "u", "reason": "no", "filed_at": None, "due_at": None,
         "decision": {"id": 1, "label": "spam", "action": "remove](https://x.example)", "policy_ref": evil,
                      "reviewer": "ann", "kind": "<b>review</b>", "rationale": "r"}}
    original = side_by_side(a)[1]
    assert "<img" not in original and "](" not in original and "<b>" not in original
