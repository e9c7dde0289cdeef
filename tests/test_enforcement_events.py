"""What the enforcement platform hears by webhook: only decisions of the label of record's kinds
(no calibration copy, its correction or undo); a label-error re-review that changes only the
action is a correction; a blind re-review supersedes the decision of record and is sent only when
it changes the label or action; an undo event says each item's outcome and lists no action to
apply for its undo rows; an undo row cannot be corrected."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, insert, select

from core.labels import current_labels
from core.principals import Principal
from core.schema import Case, Decision, OutboxEvent
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.queue_config import CalibrationSet
from labeling.rereview import draw_rereviews
from labeling.undo import undo_last

from test_queue_support import add_campaign, add_scored

LENA = Principal("lena", "lead")


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _events(store):
    with store.read() as conn:
        return [(r.event_type, r.payload) for r in conn.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload).order_by(OutboxEvent.id))]


def _rows(store, ids):
    with store.read() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(Decision.__table__)
                                                       .where(Decision.id.in_(ids))).mappings()}


def _decided(store, taxonomy, cfg, items, action="block_sender"):
    """ann decides each of `items` (scam) as scam with `action`; their decision ids."""
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in items])
    build_cases(store, taxonomy, cfg, progress=False)
    ids = {}
    for _ in items:
        c = next_case(store, "ann", "fraud", config=cfg)
        [ids[c["item_id"]]] = DEC.decide(store, taxonomy, c["id"], "ann", "scam", action, config=cfg)["decision_ids"]
    return ids


def test_calibration_answers_their_corrections_and_undos_send_nothing(any_store, taxonomy, queue_config, roles):
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": [
        CalibrationSet(name="c", share=1.0, reviewers=2)]})
    add_scored(any_store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, progress=False)
    c = next_case(any_store, "bob", "calibration", config=cfg)
    [bob] = DEC.decide(any_store, taxonomy, c["id"], "bob", "scam", "suspend_author", config=cfg)["decision_ids"]
    DEC.correct(any_store, taxonomy, bob, "bob", "scam", "slip", action="refer_law_enforcement")
    c = next_case(any_store, "cat", "calibration", config=cfg)
    DEC.decide(any_store, taxonomy, c["id"], "cat", "scam", "block_sender", config=cfg)
    undo_last(any_store, "cat", cfg, 120)
    assert _events(any_store) == []  # agreement copies enforce nothing
    c = next_case(any_store, "ann", "fraud", config=cfg)
    [ann] = DEC.decide(any_store, taxonomy, c["id"], "ann", "scam", config=cfg)["decision_ids"]
    assert [(t, p["decisions"][0]["id"]) for t, p in _events(any_store)] == [("decision.created", ann)]


def _label_review_case(store, decision_id, item):
    with store.begin() as conn:
        return conn.execute(insert(Case.__table__).values(
            item_id=item, campaign_id=None, queue="label-review", state="open", priority=0.5,
            priority_reason="label error?", predicted_label="spam", is_audit=False, meta={"label_error": {
                "decision_id": decision_id, "given_label": "scam", "model_label": "spam", "reviewer": "ann"}})
            .returning(Case.__table__.c.id)).scalar_one()


def test_a_label_review_that_changes_only_the_action_is_a_correction(any_store, taxonomy, cfg, roles):
    ids = _decided(any_store, taxonomy, cfg, ["a1", "a2"], action="suspend_author")
    before = len(_events(any_store))
    _label_review_case(any_store, ids["a1"], "a1")
    c = next_case(any_store, LENA, "label-review", config=cfg)
    out = DEC.decide(any_store, taxonomy, c["id"], LENA, "scam", "refer_law_enforcement", rationale="a fraud ring",
                     config=cfg)
    assert out["label_review"]["outcome"] == "corrected"
    [(kind, data)] = _events(any_store)[before:]
    assert kind == "decision.corrected" and data["corrects"] == ids["a1"]
    [row] = data["decisions"]
    assert (row["action"], row["supersedes_id"]) == ("refer_law_enforcement", ids["a1"])
    assert current_labels(any_store, ["a1"])["a1"]["action"] == "refer_law_enforcement"
    # The same label and no action chosen confirms ann's decision (not the policy's default action).
    _label_review_case(any_store, ids["a2"], "a2")
    c = next_case(any_store, LENA, "label-review", config=cfg)
    out = DEC.decide(any_store, taxonomy, c["id"], LENA, "scam", rationale="right", config=cfg)
    assert out["label_review"]["outcome"] == "confirmed" and len(_events(any_store)) == before + 1
    assert current_labels(any_store, ["a2"])["a2"]["id"] == ids["a2"]


def test_a_blind_rereview_supersedes_the_record_and_is_sent_only_as_a_change(any_store, taxonomy, cfg, roles):
    ids = _decided(any_store, taxonomy, cfg, ["a1", "a2"])
    before = len(_events(any_store))
    assert draw_rereviews(any_store, cfg, LENA, 2, seed=1)["drawn"] == 2
    answers = {}
    for _ in range(2):
        c = next_case(any_store, LENA, "label-review", config=cfg)
        action = "block_sender" if c["item_id"] == "a1" else "suspend_author"  # agrees on a1 only
        [answers[c["item_id"]]] = DEC.decide(any_store, taxonomy, c["id"], LENA, "scam", action,
                                             config=cfg)["decision_ids"]
        if c["item_id"] == "a1":  # agreeing, and undone: nothing was sent, nothing to take back
            again = undo_last(any_store, LENA, cfg, 120)["restored"][ids["a1"]]  # ann's decision, re-asserted
            assert len(_events(any_store)) == before
            [answers["a1"]] = DEC.decide(any_store, taxonomy, c["id"], LENA, "scam", action,
                                         config=cfg)["decision_ids"]
    rows = _rows(any_store, answers.values())
    record = current_labels(any_store, ["a1", "a2"])
    assert rows[answers["a2"]]["supersedes_id"] == ids["a2"] and record["a2"]["id"] == answers["a2"]
    assert rows[answers["a1"]]["supersedes_id"] == again and record["a1"]["id"] == answers["a1"]
    [(kind, data)] = _events(any_store)[before:]  # the agreeing answer sent nothing: no second strike
    assert kind == "decision.corrected" and data["corrects"] == ids["a2"]
    assert [(d["id"], d["action"], d["supersedes_id"]) for d in data["decisions"]] == [
        (answers["a2"], "suspend_author", ids["a2"])]
    assert data["effective"] == {"a2": {"decision_id": answers["a2"], "label": "scam", "action": "suspend_author"}}
    # Undoing the disagreeing answer brings ann's action back, and the event says so.
    undone = undo_last(any_store, LENA, cfg, 120)
    [(kind, data)] = _events(any_store)[before + 1:]
    restored = undone["restored"][ids["a2"]]
    assert data["effective"] == {"a2": {"decision_id": restored, "label": "scam", "action": "block_sender"}}


def test_an_undo_event_says_each_items_outcome_and_no_action_for_its_undo_rows(any_store, taxonomy, cfg, roles):
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ("m0", "m1", "m2")])
    add_campaign(any_store, ["m0", "m1", "m2"])
    build_cases(any_store, taxonomy, cfg, progress=False)
    own = next_case(any_store, "ann", "fraud", config=cfg)
    [ann] = DEC.decide(any_store, taxonomy, own["id"], "ann", "scam", "remove_and_warn", config=cfg)["decision_ids"]
    camp = next_case(any_store, "bob", "campaigns", config=cfg)
    bulk = DEC.decide(any_store, taxonomy, camp["id"], "bob", "scam", "suspend_author", config=cfg)["decision_ids"]
    before = len(_events(any_store))
    undone = undo_last(any_store, "bob", cfg, 120)
    [(kind, data)] = _events(any_store)[before:]
    restored = undone["restored"][ann]
    assert kind == "decision.corrected" and sorted(data["undone"]) == sorted(bulk)
    undo_rows = [d for d in data["decisions"] if d["kind"] == "undo"]
    assert sorted(d["undoes"] for d in undo_rows) == sorted(bulk)
    assert all(d["action"] is None and d["label"] is None for d in undo_rows)  # nothing to re-apply
    assert data["effective"] == {"m0": {"decision_id": restored, "label": "scam", "action": "remove_and_warn"},
                                 "m1": None, "m2": None}
    stored = _rows(any_store, undone["undo_ids"])  # the append-only rows themselves are as before
    assert {r["action"] for r in stored.values()} == {"suspend_author"}


def test_an_undo_row_cannot_be_corrected(any_store, taxonomy, cfg, roles):
    ids = _decided(any_store, taxonomy, cfg, ["x1"])
    undone = undo_last(any_store, "ann", cfg, 120)
    before = len(_events(any_store))
    [undo_row] = undone["undo_ids"]
    with pytest.raises(DecisionError, match=rf"decision {undo_row} is an undo of decision {ids['x1']}, not a label: "
                                            rf"re-decide case \d+"):
        DEC.correct(any_store, taxonomy, undo_row, LENA, "scam", "lead fixes", action="suspend_author")
    with pytest.raises(DecisionError, match=rf"decision {ids['x1']} was undone \(decision {undo_row}\)"):
        DEC.correct(any_store, taxonomy, ids["x1"], LENA, "scam", "lead fixes", action="suspend_author")
    assert len(_events(any_store)) == before and current_labels(any_store, ["x1"]) == {}


def test_an_undo_row_that_restored_a_decision_points_to_it(any_store, taxonomy, cfg, roles):
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ("m0", "m1")])
    add_campaign(any_store, ["m0", "m1"])
    build_cases(any_store, taxonomy, cfg, progress=False)
    own = next_case(any_store, "ann", "fraud", config=cfg)
    [ann] = DEC.decide(any_store, taxonomy, own["id"], "ann", "scam", config=cfg)["decision_ids"]
    camp = next_case(any_store, "bob", "campaigns", config=cfg)
    DEC.decide(any_store, taxonomy, camp["id"], "bob", "scam", "suspend_author", config=cfg)
    undone = undo_last(any_store, "bob", cfg, 120)
    restored = undone["restored"][ann]
    undo_row = _rows(any_store, [restored])[restored]["supersedes_id"]
    with pytest.raises(DecisionError, match=rf"correct decision {restored}, the decision it restored"):
        DEC.correct(any_store, taxonomy, undo_row, LENA, "spam", "lead fixes")
    assert DEC.correct(any_store, taxonomy, restored, LENA, "spam", "lead fixes")["supersedes_id"] == restored


@pytest.mark.postgres
def test_a_rereview_answer_waits_for_a_correction_under_way(pg_store, taxonomy, cfg, roles, monkeypatch):
    """A lead's correction of ann's decision, uncommitted while the re-review is answered: the
    answer waits for it and supersedes the correction, so no decision is superseded twice."""
    ids = _decided(pg_store, taxonomy, cfg, ["a1"])
    draw_rereviews(pg_store, cfg, LENA, 1)
    case = next_case(pg_store, LENA, "label-review", config=cfg)
    inserted, original, fixer = threading.Event(), DEC._insert_decision, []

    def insert_then_hold(*args, **kwargs):
        new_id = original(*args, **kwargs)
        if threading.current_thread() in fixer:
            inserted.set()
            time.sleep(1.0)  # the correction's transaction stays open meanwhile
        return new_id

    monkeypatch.setattr(DEC, "_insert_decision", insert_then_hold)
    got: list[dict] = []
    worker = threading.Thread(target=lambda: got.append(DEC.correct(
        pg_store, taxonomy, ids["a1"], Principal("max", "lead"), "scam", "refer it", action="refer_law_enforcement")))
    fixer.append(worker)
    worker.start()
    assert inserted.wait(10)
    [answer] = DEC.decide(pg_store, taxonomy, case["id"], LENA, "scam", "suspend_author", config=cfg)["decision_ids"]
    worker.join(30)
    assert _rows(pg_store, [answer])[answer]["supersedes_id"] == got[0]["decision_id"]
    with pg_store.read() as conn:
        forks = conn.execute(select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
                             .group_by(Decision.supersedes_id).having(func.count() > 1)).scalars().all()
    assert forks == [] and current_labels(pg_store, ["a1"])["a1"]["id"] == answer
