"""The context beside a case: the suggested policy's text, the author's other items and past
decisions (masked until the case is revealed, by this analyst), the item's whole decision
history (superseded decisions included), notes and tags of the item and its campaign."""
from __future__ import annotations

import pytest

from core.config import ConfigError
from core.taxonomy import load_taxonomy
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.context import case_context
from labeling.decisions import correct, decide
from labeling.masking import mask_text
from labeling.notes import add_note, add_tag
from labeling.packets import reveal_text

from test_queue_support import add_campaign, add_scored

HATE = "you people are vile trash"


def _author(store, item_ids, author):
    from sqlalchemy import update

    from core.schema import Item

    with store.begin() as conn:
        conn.execute(update(Item.__table__).where(Item.__table__.c.id.in_(item_ids)).values(author_id=author))


@pytest.fixture
def world(any_store, taxonomy, queue_config):
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(any_store, taxonomy, [
        {"id": "old1", "label": "hate", "p": 0.8, "text": "those people are filthy vermin"},
        {"id": "old2", "label": "benign", "p": 0.95, "text": "lovely weather for the match"},
        {"id": "new", "label": "hate", "p": 0.7, "text": HATE}])
    _author(any_store, ["old1", "old2", "new"], "u9")
    build_cases(any_store, taxonomy, cfg, progress=False)
    first = next_case(any_store, "ann", "hate-harassment", config=cfg)
    assert first["item_id"] == "old1" or first["item_id"] == "new"
    # decide old1 (a harassment decision, then corrected to hate by a lead)
    while first["item_id"] != "old1":
        decide(any_store, taxonomy, first["id"], "ann", "hate", config=cfg)
        first = next_case(any_store, "ann", "hate-harassment", config=cfg)
    d = decide(any_store, taxonomy, first["id"], "ann", "harassment", action="remove", rationale="insult", config=cfg)
    correct(any_store, taxonomy, d["decision_ids"][0], "lee", "hate", rationale="targets a group",
            action="remove_and_warn")
    return any_store, cfg


def _case_of(store, item_id):
    from sqlalchemy import select

    from core.schema import Case

    with store.read() as conn:
        return conn.execute(select(Case.id).where(Case.item_id == item_id, Case.campaign_id.is_(None))
                            .order_by(Case.id.desc())).scalar()


def test_policy_text_author_history_and_decision_history(world, taxonomy, review_settings):
    store, cfg = world
    old1 = _case_of(store, "old1")
    ctx = case_context(store, taxonomy, old1, "bob", review_settings)
    pol = ctx["policy"]
    assert pol["label"] == "hate" and pol["policy_ref"] == "TS-HATE-3.1"
    assert pol["definition"].startswith("Attacks on people") and "remove_and_warn" in pol["guidance"]
    assert 1 <= len(pol["examples"]) <= 3
    # the item's history: both decisions, the superseded one marked, who/when/label/action/rationale
    hist = ctx["history"]
    assert [(h["reviewer"], h["label"], h["action"]) for h in hist] == [("ann", "harassment", "remove"),
                                                                        ("lee", "hate", "remove_and_warn")]
    assert hist[0]["superseded_by"] == hist[1]["id"] and not hist[0]["current"]
    assert hist[1]["supersedes_id"] == hist[0]["id"] and hist[1]["current"]
    assert hist[0]["rationale"] == mask_text("insult") and hist[0]["created_at"]  # masked until revealed
    reveal_text(store, old1, "bob", taxonomy=taxonomy, settings=review_settings)
    assert case_context(store, taxonomy, old1, "bob", review_settings)["history"][0]["rationale"] == "insult"
    # the author's other items: masked texts, with their current decisions
    new = _case_of(store, "new")
    ctx = case_context(store, taxonomy, new, "bob", review_settings)
    recent = {r["item_id"]: r for r in ctx["author"]["recent"]}
    assert set(recent) == {"old1", "old2"} and ctx["author"]["items"] == 2
    assert recent["old1"]["text"] == mask_text("those people are filthy vermin") and recent["old1"]["masked"]
    assert recent["old1"]["decided"] == "hate" and recent["old1"]["reviewer"] == "lee"
    assert recent["old2"]["text"] == "lovely weather for the match" and not recent["old2"]["masked"]
    assert ctx["author"]["violations"] == 1 and ctx["masked"] and not ctx["revealed"]


def test_reveal_unmasks_for_that_analyst_only(world, taxonomy, review_settings):
    store, cfg = world
    new = _case_of(store, "new")
    reveal_text(store, new, "bob", taxonomy=taxonomy, settings=review_settings)
    mine = case_context(store, taxonomy, new, "bob", review_settings)
    theirs = case_context(store, taxonomy, new, "carol", review_settings)
    assert mine["revealed"] and not mine["masked"]
    # the author's other items follow their own rule: this reveal unmasks this case's texts only
    assert {r["item_id"]: r["text"] for r in mine["author"]["recent"]}["old1"] == mask_text("those people are filthy vermin")
    assert not theirs["revealed"]
    assert {r["item_id"]: r["text"] for r in theirs["author"]["recent"]}["old1"] == mask_text("those people are filthy vermin")
    # a reveal of another case does not unmask this one
    old1 = _case_of(store, "old1")
    assert not case_context(store, taxonomy, old1, "bob", review_settings)["revealed"]


def test_notes_and_tags_of_item_and_campaign(world, taxonomy, review_settings):
    store, cfg = world
    cid = add_campaign(store, ["new", "old2"])
    add_note(store, "item", "new", "reported twice by the same user", "ann")
    add_note(store, "campaign", cid, "coordinated posting", "lee")
    add_tag(store, "item", "new", "brigading", "ann")
    add_tag(store, "campaign", cid, "wave-3", "lee")
    ctx = case_context(store, taxonomy, _case_of(store, "new"), "bob", review_settings)
    assert ctx["campaign_id"] == cid
    assert [n["body"] for n in ctx["notes"]["item"]] == [mask_text("reported twice by the same user")]  # masked case
    reveal_text(store, _case_of(store, "new"), "bob", taxonomy=taxonomy, settings=review_settings)
    ctx = case_context(store, taxonomy, _case_of(store, "new"), "bob", review_settings)
    assert [n["body"] for n in ctx["notes"]["item"]] == ["reported twice by the same user"]
    assert ctx["notes"]["campaign"][0]["author"] == "lee"
    assert ctx["tags"] == {"item": ["brigading"], "campaign": ["wave-3"]}


def test_policy_text_is_validated_with_file_and_field(tmp_path):
    import yaml

    from pathlib import Path

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "taxonomy.yaml").read_text())
    for name, pol in data["policies"].items():
        assert pol["definition"] and pol["guidance"] and 1 <= len(pol["examples"]) <= 2, name
    cases = [
        (lambda d: d["policies"]["spam"].update(definition="   "), "policies.spam.definition': Value error, must not be blank"),
        (lambda d: d["policies"]["scam"]["examples"][0].pop("why"), "policies.scam.examples.0.why': Field required"),
        (lambda d: d["policies"]["hate"].update(examples=[{"text": "x", "why": "y"}] * 4), "policies.hate.examples'"),
        (lambda d: d["policies"]["benign"].update(definition=""), "policies.benign': Value error, policy text needs a `definition`"),
        (lambda d: d["policies"]["harassment"].update(guidance=["a list"]), "policies.harassment.guidance'"),
    ]
    for mutate, message in cases:
        d = yaml.safe_load(yaml.safe_dump(data))
        mutate(d)
        p = tmp_path / "taxonomy.yaml"
        p.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError) as err:
            load_taxonomy(p)
        assert str(p) in str(err.value) and message in str(err.value), str(err.value)
        assert len(str(err.value).splitlines()) == 1
    # policies without any text still load (older taxonomies), and show none
    d = yaml.safe_load(yaml.safe_dump(data))
    for pol in d["policies"].values():
        for k in ("definition", "guidance", "examples"):
            pol.pop(k)
    p.write_text(yaml.safe_dump(d))
    assert load_taxonomy(p).policy_text("spam")["definition"] == ""


def test_open_appeals_carry_decision_rationale_and_reason(world, taxonomy, review_settings):
    from labeling.appeals import appeal, open_appeals, resolve_appeal

    store, cfg = world
    filed = appeal(store, "old1", "u9", "I was quoting a song", taxonomy, config=cfg)
    [a] = open_appeals(store, review_settings, config=cfg)
    assert a["case_id"] == filed["id"] and a["reason"] == mask_text("I was quoting a song") and a["appellant"] == "u9"
    assert (a["decision"]["reviewer"], a["decision"]["label"], a["decision"]["rationale"]) == (
        "lee", "hate", mask_text("targets a group"))  # they quote the text: masked with it
    assert a["still_current"] and a["masked"] and "vermin" not in a["text"]
    reveal_text(store, filed["id"], "bob", taxonomy=taxonomy, settings=review_settings)
    [a] = open_appeals(store, review_settings, config=cfg, principal="bob")
    assert (a["reason"], a["decision"]["rationale"]) == ("I was quoting a song", "targets a group")
    resolve_appeal(store, taxonomy, filed["id"], "bob", "confirm", "slur used to demean", config=cfg)
    assert open_appeals(store, review_settings, config=cfg) == []
