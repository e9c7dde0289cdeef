"""Appeals, undo, notes and masking under an adversarial review (12-06): an appeal filed while its
decision is undone, texts a store cannot keep or a terminal would obey, notes probed by search
or listed raw, `cases show` quoting what people wrote about a masked text, the appealed
decision's rationale in the review packet, and a text a human decided as hate shown unmasked on
its own case."""
from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from core.principals import Principal
from core.schema import AuditEvent, Case, Decision, Note
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling import undo as UNDO
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.context import case_context
from labeling.errors import DecisionError
from labeling.escalation import escalate
from labeling.masking import mask_text
from labeling.notes import NoteError, add_note, list_notes
from labeling.packets import escalation_packet, review_packet, show_case
from labeling.search import search

from test_queue_support import add_campaign, add_scored

WORD = "SECRETSLUR"
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
SCAM = {"benign": 0.05, "spam": 0.02, "scam": 0.90, "hate": 0.01, "harassment": 0.02}


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _case_of(store, item_id):
    with store.read() as conn:
        return conn.execute(select(Case.id).where(Case.item_id == item_id, Case.campaign_id.is_(None))
                            .order_by(Case.id)).scalar()


def _decided(store, taxonomy, cfg, item_id, scores, text, label, action, rationale="lure"):
    add_scored(store, taxonomy, [{"id": item_id, "label": max(scores, key=scores.get), "scores": scores,
                                  "text": text}])
    build_cases(store, taxonomy, cfg, progress=False)
    case = _case_of(store, item_id)
    claim_case(store, case, "ann", cfg)
    DEC.decide(store, taxonomy, case, "ann", label, action, rationale=rationale, config=cfg)
    return case


def _leaks(obj) -> list[str]:
    return [WORD] if WORD in json.dumps(obj, default=str) else []


@pytest.mark.postgres
def test_an_appeal_filed_while_its_decision_is_undone_waits_and_is_refused(pg_store, taxonomy, cfg, monkeypatch):
    """The undo commits while the appeal is being filed: the appeal named the undone decision and
    moved the case the undo handed back to its analyst to 'appealed' (stuck: nobody could resolve
    the appeal, nor decide the case)."""
    case = _decided(pg_store, taxonomy, cfg, "a", SCAM, "claim your prize", "scam", "block_sender")
    held, restore = threading.Event(), UNDO._restore

    def restore_then_hold(*args, **kwargs):
        out = restore(*args, **kwargs)
        held.set()
        time.sleep(1.0)  # the undo's transaction stays open meanwhile
        return out

    monkeypatch.setattr(UNDO, "_restore", restore_then_hold)
    undone: list[object] = []
    worker = threading.Thread(target=lambda: undone.append(UNDO.undo_last(pg_store, "ann", cfg, 120)))
    worker.start()
    assert held.wait(10)
    with pytest.raises(DecisionError, match="has no decision to appeal"):
        APP.appeal(pg_store, "a", "user-1", "my bank", taxonomy, config=cfg)
    worker.join(30)
    assert undone and undone[0]["case_id"] == case
    with pg_store.read() as conn:
        rows = conn.execute(select(Case.id, Case.queue, Case.state, Case.claimed_by)).all()
    assert [(r.id, r.state, r.claimed_by) for r in rows] == [(case, "claimed", "ann")]


@pytest.mark.parametrize("bad, what", [("my\x00bank", "control character"), ("my\ud800bank", "lone surrogate"),
                                       ("my\x1b[2Jbank", "control character")])
def test_texts_the_store_cannot_keep_or_a_terminal_would_obey_are_refused(any_store, taxonomy, cfg, bad, what):
    """A NUL byte (PostgreSQL: a DataError traceback), a lone surrogate (UnicodeEncodeError on
    both stores) or an escape sequence in a note, an appeal's reason or its rationale: one line,
    nothing stored."""
    _decided(any_store, taxonomy, cfg, "a", SCAM, "claim your prize", "scam", "block_sender")
    with pytest.raises(NoteError, match=f"a note holds a {what} at character 3"):
        add_note(any_store, "item", "a", bad, "ann")
    with pytest.raises(DecisionError, match=f"an appeal's reason holds a {what} at character 3"):
        APP.appeal(any_store, "a", "user-1", bad, taxonomy, config=cfg)
    filed = APP.appeal(any_store, "a", "user-1", "my bank\n\tsee the letter", taxonomy, config=cfg)  # tab, newline: fine
    with pytest.raises(DecisionError, match=f"a rationale holds a {what} at character 3"):
        APP.resolve_appeal(any_store, taxonomy, filed["id"], "lee", "confirm", bad, config=cfg)
    with any_store.read() as conn:
        assert conn.execute(select(func.count()).select_from(Note)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(Decision).where(Decision.kind == "appeal")).scalar() == 0
    assert APP.resolve_appeal(any_store, taxonomy, filed["id"], "lee", "confirm", "a lure", config=cfg)["outcome"] \
        == "confirm"


def test_without_reveal_search_finds_no_note_about_a_masked_text(any_store, taxonomy, review_settings, roles):
    """A viewer searched `note:WORD` (or just WORD) and got the masked item back, matched by its
    note: which hidden notes hold a word, the probing a text match is refused for."""
    add_scored(any_store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": f"you {WORD} people"},
                                     {"id": "ok", "label": "scam", "scores": SCAM, "text": "claim your prize"},
                                     {"id": "ok2", "label": "scam", "scores": SCAM, "text": "claim a prize"}])
    hidden, plain = add_campaign(any_store, ["vile", "ok"]), add_campaign(any_store, ["ok2"])
    ann, vic = Principal("ann", "analyst"), Principal("vic", "viewer")
    add_note(any_store, "item", "vile", f"author wrote {WORD}", ann)
    add_note(any_store, "campaign", hidden, f"wave says {WORD}", ann)
    add_note(any_store, "item", "ok", f"{WORD} is the sender's alias", ann)  # a text that is not masked
    add_note(any_store, "campaign", plain, f"{WORD} again", ann)
    for query in (WORD, f"note:{WORD}"):
        found = search(any_store, query, vic, review_settings)
        assert [r["item_id"] for r in found["results"]] == ["ok"]
        assert [c["campaign_id"] for c in found["campaigns"]] == [plain]
        found = search(any_store, query, ann, review_settings)  # who may reveal finds them, texts masked
        assert sorted(r["item_id"] for r in found["results"]) == ["ok", "vile"]
        assert sorted(c["campaign_id"] for c in found["campaigns"]) == sorted([hidden, plain])


def test_listed_notes_on_a_masked_text_are_masked(sqlite_store, taxonomy, review_settings):
    """`workbench notes item X` printed the bodies raw, though they quote a text masked everywhere else."""
    add_scored(sqlite_store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": f"you {WORD} people"},
                                        {"id": "ok", "label": "scam", "scores": SCAM, "text": "claim your prize"}])
    camp = add_campaign(sqlite_store, ["vile", "ok"])
    add_note(sqlite_store, "item", "vile", f"author wrote {WORD}", "ann")
    add_note(sqlite_store, "campaign", camp, f"wave says {WORD}", "ann")
    add_note(sqlite_store, "item", "ok", "carrier confirmed", "ann")
    got = list_notes(sqlite_store, "item", "vile", review_settings, principal="tester")
    assert got["masked"] and [n["body"] for n in got["notes"]] == [mask_text(f"author wrote {WORD}")]
    got = list_notes(sqlite_store, "campaign", camp, review_settings, principal="tester")
    assert got["masked"] and [n["body"] for n in got["notes"]] == [mask_text(f"wave says {WORD}")]
    got = list_notes(sqlite_store, "item", "ok", review_settings, principal="tester")
    assert not got["masked"] and [n["body"] for n in got["notes"]] == ["carrier confirmed"]


def test_cases_show_masks_what_people_wrote_about_a_masked_case(sqlite_store, taxonomy, cfg, review_settings):
    """`workbench cases show` and `next` masked only the item's text: the rationales, the appeal's
    reason and the escalation's reason (three places) quoted it raw."""
    decided = _decided(sqlite_store, taxonomy, cfg, "vile", HATE, f"you {WORD} people", "hate", "remove",
                       rationale=f"uses {WORD} against a group")
    filed = APP.appeal(sqlite_store, "vile", "user-1", f"I only quoted {WORD}", taxonomy, config=cfg)
    add_scored(sqlite_store, taxonomy, [{"id": "vile2", "label": "hate", "scores": HATE, "text": f"more {WORD}"}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    escalated = _case_of(sqlite_store, "vile2")
    claim_case(sqlite_store, escalated, "ann", cfg)
    escalate(sqlite_store, taxonomy, escalated, "ann", f"says {WORD}, a threat?", cfg)
    for case in (decided, filed["id"], escalated):
        view = show_case(sqlite_store, case, review_settings)
        assert view["masked"] and _leaks(view) == []
    assert show_case(sqlite_store, filed["id"], review_settings, blind=True)["masked"]
    shown = show_case(sqlite_store, filed["id"], review_settings, reveal_by="lee", taxonomy=taxonomy)
    assert not shown["masked"] and shown["meta"]["appeal"]["reason"] == f"I only quoted {WORD}"
    assert shown["decisions"][0]["rationale"] == f"uses {WORD} against a group"


def test_the_review_packet_of_an_appeal_masks_the_appealed_rationale(sqlite_store, taxonomy, cfg, review_settings,
                                                                     campaign_settings):
    _decided(sqlite_store, taxonomy, cfg, "vile", HATE, f"you {WORD} people", "hate", "remove",
             rationale=f"uses {WORD} against a group")
    filed = APP.appeal(sqlite_store, "vile", "user-1", "not hate", taxonomy, config=cfg)
    packet = review_packet(sqlite_store, taxonomy, filed["id"], review_settings, campaign_settings, viewer="lee")
    assert packet["masked"] and _leaks(packet) == []
    assert packet["appeal"]["decision"]["rationale"] == mask_text(f"uses {WORD} against a group")


def test_a_text_decided_as_hate_is_masked_on_its_own_case(any_store, taxonomy, cfg, review_settings,
                                                          campaign_settings):
    """The model said scam; an analyst decided hate. Search, the author history and the Appeals
    tab masked the text, but its own cases (the appeal on the Review tab, the context panel,
    `cases show`, the escalation packet) showed it raw."""
    _decided(any_store, taxonomy, cfg, "x", SCAM, f"send money you {WORD}", "hate", "remove", rationale="a slur")
    filed = APP.appeal(any_store, "x", "user-1", "not hate", taxonomy, config=cfg)["id"]
    lee = Principal("lee", "lead")
    assert APP.open_appeals(any_store, review_settings, config=cfg, principal=lee)[0]["masked"]
    packet = review_packet(any_store, taxonomy, filed, review_settings, campaign_settings, viewer=lee)
    assert packet["masked"] and packet["item"]["text"] == mask_text(f"send money you {WORD}")
    assert case_context(any_store, taxonomy, filed, lee, review_settings)["masked"]
    assert show_case(any_store, filed, review_settings)["masked"]
    assert _leaks(escalation_packet(any_store, taxonomy, filed, review_settings, campaign_settings)["evidence"]) == []
    with any_store.read() as conn:  # nothing was revealed or audited as one
        assert conn.execute(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == "text.reveal")).scalar() == 0
