"""A campaign's top terms, masked by the evidence of the members they come from.

Top terms are computed from every member (the words trend analysts read to learn what a wave
says), but the rule that masked them read a summary that was not about those members: a term kept
from a hate member that has since left the campaign (`service._reusable_terms` keeps terms while
the size moves under 25%) was printed raw by `campaigns list|show` and the Campaigns tab, since
no current member was sensitive; a hate member carrying none of the terms masked every one of
them; a score stored as text failed `campaigns list` with a ValueError traceback; a plain stored
term (no weight) failed `campaigns list`. `clustering.explore` now says, per top term, the
evidence of the members whose text carries it (`term_evidence`), and over all of them the
summary the masking rule reads. The Campaigns tab's Apply read and said the campaign's cases and
counts before it knew who asked: a signed-out request learnt them; each page of its members read,
decoded and masked every member's text to show 50.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

from click.testing import CliRunner
from sqlalchemy import update

from core.schema import Campaign, CampaignMember, Prediction
from labeling.masking import mask_text
from workbench.cli import cli

from test_queue_support import add_campaign, add_scored

SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
# masked by its own rule (hate 0.3 reaches mask_min_score 0.15), top label spam
HATEISH = {"benign": 0.05, "spam": 0.60, "scam": 0.03, "hate": 0.30, "harassment": 0.02}
TERMS = [["vermin", 0.9], ["watches", 0.5], ["cheap", 0.4]]


def _cli(store):
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])

    def run(*args: str):
        res = CliRunner().invoke(cli, [*base, *args])
        assert res.exit_code == 0, res.output
        return res.stdout
    return run


def _spam(store, taxonomy, n: int = 6, prefix: str = "a") -> list[str]:
    return add_scored(store, taxonomy, [{"id": f"{prefix}{i}", "label": "spam", "scores": SPAM,
                                         "text": f"buy cheap watches {i}"} for i in range(n)])


def _terms(store, cid: int, terms) -> None:
    with store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(top_terms=terms))


def _tab(store, taxonomy, queue_config, users: bool = False, roles=None):
    from test_campaign_bulk_integrity import _App
    from test_ui_tabs_fixes import _campaigns

    app = _App(store, taxonomy, queue_config, users=users)
    app.roles = lambda: roles
    return _campaigns(app)


def test_a_term_kept_from_a_member_that_left_is_masked(any_store, taxonomy, queue_config):
    """The hate member the terms were computed with joined another campaign; the terms stay (the
    campaign shrank under 25%) and every member left is plain spam: "vermin" was printed raw."""
    ids = _spam(any_store, taxonomy)
    add_scored(any_store, taxonomy, [{"id": "z0", "label": "spam", "scores": HATEISH,
                                      "text": "cheap watches, you vermin"}])
    cid = add_campaign(any_store, ids + ["z0"])
    _terms(any_store, cid, TERMS)  # as `cluster` computed them, the hate member in
    other = add_campaign(any_store, add_scored(any_store, taxonomy, [{"id": "o0", "label": "spam", "scores": HATEISH,
                                                                      "text": "you vermin"}]))
    with any_store.begin() as conn:  # a later run moves it out and keeps the terms
        conn.execute(update(CampaignMember.__table__).where(CampaignMember.__table__.c.item_id == "z0")
                     .values(campaign_id=other))
        conn.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == cid).values(size=6))
    run = _cli(any_store)
    for out in (run("campaigns", "list"), run("campaigns", "list", "--json"),
                run("campaigns", "show", str(cid), "--members", "5"), run("campaigns", "show", str(cid), "--json")):
        assert "vermin" not in out and mask_text("vermin") in out
    fns = _tab(any_store, taxonomy, queue_config)
    row = next(r for r in fns["campaign_table"][0]("", None) if r[0] == cid)
    shown = fns["first"][0](cid, "lead", None)[0]
    assert "vermin" not in str(row) + shown and mask_text("vermin") in shown


def test_terms_are_masked_by_the_members_that_carry_them(any_store, taxonomy, queue_config):
    """Hate members carrying the slur mask the terms; hate members carrying none of the terms no
    longer mask every term of a spam wave (a trend analyst read only dots)."""
    carrying = _spam(any_store, taxonomy) + add_scored(any_store, taxonomy, [
        {"id": f"z{i}", "label": "spam", "scores": HATEISH, "text": f"you vermin {i}"} for i in range(3)])
    slur = add_campaign(any_store, carrying)
    _terms(any_store, slur, TERMS)
    plain = add_campaign(any_store, _spam(any_store, taxonomy, prefix="b") + add_scored(any_store, taxonomy, [
        {"id": f"y{i}", "label": "spam", "scores": HATEISH, "text": f"you are all idiots {i}"} for i in range(3)]))
    _terms(any_store, plain, TERMS[1:])
    run = _cli(any_store)
    listed = {c["id"]: c for c in json.loads(run("campaigns", "list", "--json"))}
    assert "vermin" not in json.dumps(listed[slur]) and listed[slur]["top_terms"][0][0] == mask_text("vermin")
    assert listed[plain]["top_terms"] == [["watches", 0.5], ["cheap", 0.4]]
    shown = run("campaigns", "show", str(plain), "--members", "5")
    assert "top terms: watches, cheap" in shown
    body = _tab(any_store, taxonomy, queue_config)["first"][0](plain, "lead", None)[0]
    assert "top terms: watches, cheap" in body


def test_term_evidence_leaves_out_the_texts_a_reveal_counts(any_store, taxonomy):
    """For a case view: per term, the members it comes from other than those a reveal unmasks
    and counts (`wellbeing.shown_members` and the item). The slur's evidence is the unshown hate
    members'; a term only the shown members carry has none; a term no member carries is unknown."""
    from clustering.explore import term_evidence

    shown = _spam(any_store, taxonomy)
    hidden = add_scored(any_store, taxonomy, [{"id": f"z{i}", "label": "spam", "scores": HATEISH,
                                               "text": f"you vermin {i}"} for i in range(3)])
    cid = add_campaign(any_store, shown + hidden)
    _terms(any_store, cid, [*TERMS, ["stale", 0.1]])
    with any_store.read() as conn:
        terms, per_term = term_evidence(conn, cid, exclude=shown)
    assert [t for t, _ in terms] == ["vermin", "watches", "cheap", "stale"]
    slur, watches, _cheap, stale = per_term
    assert (slur["members"], slur["unscored"], slur["max_scores"]["hate"]) == (3, 0, 0.3)
    assert (watches["members"], watches["unscored"]) == (0, 0)
    assert (stale["members"], stale["unscored"]) == (0, 1)
    with any_store.read() as conn:  # a campaign too big to read for every case view: each term unknown
        assert all(e["unscored"] == 1 for e in term_evidence(conn, cid, exclude=shown, max_members=8)[1])


def test_a_score_stored_as_text_is_unknown_not_a_traceback(any_store, taxonomy):
    ids = _spam(any_store, taxonomy, 3)
    cid = add_campaign(any_store, ids)
    _terms(any_store, cid, TERMS)
    with any_store.begin() as conn:
        conn.execute(update(Prediction.__table__).where(Prediction.__table__.c.item_id == ids[2])
                     .values(scores={**SPAM, "hate": "high"}))
    out = _cli(any_store)("campaigns", "list")
    assert mask_text("vermin") in out and "vermin" not in out


def test_plain_stored_terms_are_listed(any_store, taxonomy, queue_config):
    cid = add_campaign(any_store, _spam(any_store, taxonomy, 3))
    _terms(any_store, cid, ["watches", "cheap"])
    run = _cli(any_store)
    assert "[watches, cheap]" in run("campaigns", "list")
    assert "top terms: watches, cheap" in run("campaigns", "show", str(cid))
    assert "top terms: watches, cheap" in _tab(any_store, taxonomy, queue_config)["first"][0](cid, "lead", None)[0]


def test_apply_says_nothing_of_a_campaign_before_it_knows_who_asks(any_store, taxonomy, queue_config, roles):
    from core.accounts import add_user
    from labeling.cases import build_cases
    from test_ui_tabs_fixes import _decisions

    cid = add_campaign(any_store, _spam(any_store, taxonomy, 3))
    build_cases(any_store, taxonomy, queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []}),
                progress=False)
    for name, role in (("boss", "admin"), ("vic", "viewer")):
        add_user(any_store, name, role, actor="setup", roles=roles, password=f"{name}-pass-123")
    act = _tab(any_store, taxonomy, queue_config, users=True, roles=roles)["act_on_campaign"][0]
    for request, why in ((None, "sign in first"), (SimpleNamespace(username="gone"), "gone"),
                         (SimpleNamespace(username="vic"), "bulk")):
        for campaign in (cid, 999):
            said = act(campaign, "", "spam", "remove", "", False, request)
            assert said.startswith("Warning: Not saved:") and why in said, said
            assert "case" not in said.replace("campaign", "") and "No campaign" not in said
    assert _decisions(any_store) == 0


def test_a_page_of_a_huge_campaign_reads_only_its_own_texts(any_store, taxonomy, queue_config, monkeypatch):
    """Each page of the Campaigns tab read, decoded and masked every member's text (a wave of
    100,000 members on every click) to show 50; now the page's texts and every member's link."""
    import workbench.ui.campaigns as tab

    ids = add_scored(any_store, taxonomy, [{"id": f"w{i:03d}", "label": "spam", "scores": SPAM,
                                            "text": f"buy cheap watches {i}"} for i in range(120)])
    cid = add_campaign(any_store, ids)
    texts: list[str] = []
    real = tab.decoded
    monkeypatch.setattr(tab, "decoded", lambda t: (texts.append(t), real(t))[1])
    fns = _tab(any_store, taxonomy, queue_config)
    for page in (3, 9):  # past the end: the last page
        texts.clear()
        body, _png, rows, count, shown_page, seen = fns["nxt"][0](cid, page - 1, "lead", None)
        assert shown_page == 3 and [r[0] for r in rows] == ids[100:]
        assert count.startswith("Members 101–120: ") and "page 3 of 3" in count
        assert "each of the 120 members once" in body and len(seen["members"]) == 120
        assert len([t for t in texts if t and t.startswith("buy cheap")]) <= tab.MEMBERS_PAGE + 1


# --- the case views (labeling.packets, labeling.masking): needs the cross-file change ----------

def _wave(store, taxonomy, queue_config):
    """Six plain spam members (an item case each; the campaign case shows five beside its item)
    and three hate-scored members carrying only the slur, which the campaign case does not show."""
    from labeling.cases import build_cases
    from test_queue_support import case_ids, quiet

    shown = _spam(store, taxonomy)
    hidden = add_scored(store, taxonomy, [{"id": f"z{i}", "label": "spam", "scores": HATEISH,
                                           "text": f"you vermin {i}"} for i in range(3)])
    cid = add_campaign(store, shown + hidden)
    with store.begin() as conn:  # the hate members are the least similar: never in the sample
        conn.execute(update(CampaignMember.__table__).where(CampaignMember.__table__.c.item_id.in_(hidden))
                     .values(similarity=0.5))
    _terms(store, cid, TERMS)
    build_cases(store, taxonomy, quiet(queue_config), progress=False)
    return case_ids(store)


def test_an_item_case_does_not_print_a_slur_from_its_campaigns_other_members(any_store, taxonomy, queue_config,
                                                                           review_settings, campaign_settings):
    """A plain spam item's case is not masked, and its campaign panel printed the campaign's top
    terms raw: "vermin", from members the case never shows, with no reveal and nothing counted."""
    from labeling.packets import review_packet

    cases = _wave(any_store, taxonomy, queue_config)
    p = review_packet(any_store, taxonomy, cases["a0"], review_settings, campaign_settings, viewer="ann")
    assert not p["masked"] and "vermin" not in json.dumps(p)
    assert p["campaign"]["top_terms"] == [[mask_text("vermin"), 0.9], ["watches", 0.5], ["cheap", 0.4]]


def test_a_campaign_reveal_unmasks_only_the_terms_it_counts(any_store, taxonomy, queue_config, review_settings,
                                                           campaign_settings):
    """The reveal counts the item and the five members shown (plain spam: not severe); the slur,
    carried only by members it does not show, stays masked on the screen and in `cases show`."""
    from core.principals import Principal
    from labeling.packets import reveal_text, review_packet, show_case
    from labeling.wellbeing import exposure

    ann = Principal("ann", "analyst")
    case = _wave(any_store, taxonomy, queue_config)["campaign"]
    reveal_text(any_store, case, ann, taxonomy=taxonomy, settings=review_settings)
    p = review_packet(any_store, taxonomy, case, review_settings, campaign_settings, viewer=ann)
    assert p["revealed"] and "vermin" not in json.dumps(p) and "_terms_sensitive" not in json.dumps(p)
    assert [t for t, _ in p["campaign"]["top_terms"]] == [mask_text("vermin"), "watches", "cheap"]
    assert exposure(any_store, ann, review_settings)["severe"] == 0
    shown = show_case(any_store, case, review_settings, reveal_by=ann, taxonomy=taxonomy)
    assert [t for t, _ in shown["campaign"]["top_terms"]] == [mask_text("vermin"), "watches", "cheap"]
