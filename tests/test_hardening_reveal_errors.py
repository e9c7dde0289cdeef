"""Reveals counted once per reader and item, and the label-error scan beside appeals (12-07).

1. A case-less reveal through the API (`GET /api/v1/items/{id}?reveal=true`, stored once per
   reader and item) of an item that later got a case was counted again when the same reader
   revealed it on that case (`packets.reveal_text`): one text read, exposure 2. `wellbeing.exposure`
   now counts a reader's exposure to one item once, whichever door revealed it (at the most
   severe tier any of its reveals was stored at).
2. The label-error scan queued an item whose label of record is an appeal's outcome for a lead's
   re-review: the lead's correction would replace the outcome of the appeal, which stands. Such
   items are skipped and counted (`appeal_outcome` in the summary).
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.labels import current_decisions
from core.principals import Principal
from core.schema import Case, Reveal
from labeling.cases import build_cases
from labeling.packets import reveal_text
from labeling.wellbeing import exposure
from test_queue_support import add_scored, case_ids, quiet

ANN = Principal("ann", "analyst")
BOB = Principal("bob", "analyst")
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
BENIGN = {"benign": 0.97, "spam": 0.01, "scam": 0.01, "hate": 0.005, "harassment": 0.005}
C = Case.__table__


def _api_reveal(store, item_id, who=ANN):
    from workbench.api_reveal import item_view
    from workbench.context import AppContext

    return item_view(AppContext(store=store), item_id, who, reveal=True)


def _reveals(store):
    with store.read() as conn:
        return conn.execute(select(Reveal.analyst, Reveal.case_id, Reveal.item_id).order_by(Reveal.id)).all()


# -- 1. one reader's exposure to one item counts once, whichever door ------------------------------
def test_a_caseless_reveal_then_the_items_case_reveal_counts_once(any_store, roles, taxonomy, review_settings,
                                                                 queue_config):
    """Was severe 2, revealed 2: the case-less row and the case's row each counted."""
    add_scored(any_store, taxonomy, [{"id": "x", "label": "hate", "scores": HATE, "text": "vile x"},
                                     {"id": "y", "label": "hate", "scores": HATE, "text": "vile y"}])
    assert _api_reveal(any_store, "x")["text"] == "vile x"  # no case yet: stored once per reader and item
    build_cases(any_store, taxonomy, quiet(queue_config), progress=False)
    cases = case_ids(any_store)
    assert reveal_text(any_store, cases["x"], ANN, taxonomy=taxonomy, settings=review_settings) == "vile x"
    assert _api_reveal(any_store, "x")["text"] == "vile x"  # the case is revealed already: no new row
    rows = _reveals(any_store)
    assert [(r.item_id, r.case_id > 0) for r in rows] == [("x", False), ("x", True)]  # both kept, as stored
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (1, 1)
    reveal_text(any_store, cases["y"], ANN, taxonomy=taxonomy, settings=review_settings)  # another item counts
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (2, 2)
    reveal_text(any_store, cases["x"], BOB, taxonomy=taxonomy, settings=review_settings)  # another reader's own
    assert (exposure(any_store, BOB, review_settings)["severe"], exposure(any_store, ANN, review_settings)["severe"]) \
        == (1, 2)


def test_a_mild_caseless_reveal_then_a_severe_case_reveal_counts_once_as_severe(any_store, roles, taxonomy,
                                                                                review_settings, queue_config):
    """The tier is the most severe any door stored for that item: one text, one severe exposure."""
    from labeling.wellbeing import record_caseless_reveal, record_reveal
    from core.schema import utcnow

    mild = next(t for t in taxonomy.severities if t not in review_settings.severe_tiers)
    severe = review_settings.severe_tiers[0]
    with any_store.begin() as conn:
        assert record_caseless_reveal(conn, ANN, "z", mild, utcnow())
        assert record_reveal(conn, ANN, 7, "z", severe, utcnow())
        assert record_reveal(conn, ANN, 8, None, severe, utcnow())  # a reveal with no item counts on its own
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (2, 2)


# -- 2. the label-error scan leaves an appeal's outcome alone ---------------------------------------
@pytest.fixture(scope="module")
def cfg(taxonomy):
    from core.config import config_dir
    from labeling.queue_config import load_queue_config

    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                  "calibration_sets": []})


FLIPS = {"s3": "benign", "s17": "benign", "c5": "spam", "c30": "spam"}


def _label_error_cases(store, item):
    with store.read() as conn:
        return conn.execute(select(C.c.id).where(C.c.item_id == item, C.c.queue == "label-review")).scalars().all()


def _appealed_and_confirmed(store, taxonomy, cfg, item):
    from labeling.appeals import appeal, resolve_appeal
    from test_queue_support import T0

    filed = appeal(store, item, "author", "my message was fine", taxonomy, now=T0, config=cfg)
    resolve_appeal(store, taxonomy, filed["id"], "lena", "confirm", "read it again: it stands", now=T0, config=cfg)
    with store.read() as conn:
        record = current_decisions(conn, [item])[item]
    assert record["kind"] == "appeal"
    return record


def test_the_scan_leaves_an_item_whose_label_is_an_appeals_outcome_alone(any_store, taxonomy, cfg):
    """bob's slip s3 was appealed and the appeal confirmed it: the scan queued the appeal's outcome
    for a lead's correction, which would have replaced it (an appeal's outcome stands)."""
    from labeling.label_errors import find_label_errors
    from test_label_errors import decided_store
    from test_queue_support import T0
    from test_seeding import BagOfWords

    decided_store(any_store, taxonomy, cfg, 40, FLIPS)
    record = _appealed_and_confirmed(any_store, taxonomy, cfg, "s3")
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    queued = {c["item_id"] for c in out["cases"]}
    assert {"s17", "c5", "c30"} <= queued and "s3" not in queued, queued
    assert out["appeal_outcome"] == 1 and _label_error_cases(any_store, "s3") == []
    assert all(c["decision_id"] != record["id"] for c in out["cases"])
    again = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    assert again["queued"] == 0 and again["appeal_outcome"] == 1 and _label_error_cases(any_store, "s3") == []


@pytest.mark.parametrize("meanwhile", ["appeal", "correction"])
def test_a_decision_superseded_while_the_scan_computes_is_not_queued(any_store, taxonomy, cfg, monkeypatch,
                                                                    meanwhile):
    """s3's appeal was resolved (or bob's decision undone) after the scan read the decisions and
    before it wrote its cases: the case named a decision no longer of record (an appeal's outcome
    standing in its place)."""
    import labeling.label_errors as LE
    from labeling.decisions import correct
    from test_label_errors import decided_store
    from test_queue_support import T0
    from test_seeding import BagOfWords

    decided_store(any_store, taxonomy, cfg, 40, FLIPS)
    rank = LE.rank_label_errors

    def rank_then_supersede(*args, **kwargs):
        out = rank(*args, **kwargs)
        if meanwhile == "appeal":
            _appealed_and_confirmed(any_store, taxonomy, cfg, "s3")
        else:
            with any_store.read() as conn:
                bobs = current_decisions(conn, ["s3"])["s3"]
            correct(any_store, taxonomy, bobs["id"], "lena", "spam", "spam words", now=T0)
        return out

    monkeypatch.setattr(LE, "rank_label_errors", rank_then_supersede)
    out = LE.find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    queued = {c["item_id"] for c in out["cases"]}
    assert {"s17", "c5", "c30"} <= queued and "s3" not in queued and out["queued"] == len(queued)
    assert _label_error_cases(any_store, "s3") == []
    want = (1, 0) if meanwhile == "appeal" else (0, 1)
    assert (out["appeal_outcome"], out["changed_since_scan"]) == want


# -- 3. a corrupt re-review case fails no scan and no count -----------------------------------------
@pytest.mark.parametrize("meta", [["not", "an", "object"], {"label_error": "corrupt"},
                                  {"label_error": {"decision_id": "abc", "reviewer": "bob"}}])
def test_a_corrupt_label_error_case_fails_no_scan_and_no_count(any_store, taxonomy, cfg, meta):
    """One hand-edited or corrupt case row in the re-review queue (meta no object, its `label_error`
    no object, a decision id no number) failed every later scan and `label_error_counts`
    (AttributeError, ValueError): it is read as no record and left as stored."""
    from sqlalchemy import insert

    from labeling.label_errors import find_label_errors, label_error_counts
    from test_label_errors import decided_store
    from test_queue_support import T0
    from test_seeding import BagOfWords

    decided_store(any_store, taxonomy, cfg, 40, FLIPS)
    with any_store.begin() as conn:
        bad = conn.execute(insert(C).values(item_id="c1", queue="label-review", state="open", priority=0.5,
                                            is_audit=False, created_at=T0, updated_at=T0, meta=meta)
                           .returning(C.c.id)).scalar_one()
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    assert {"s3", "s17", "c5", "c30"} <= {c["item_id"] for c in out["cases"]}
    counts = label_error_counts(any_store, cfg)
    assert counts["bob"]["queued"] == 4 + (1 if isinstance(meta.get("label_error") if isinstance(meta, dict)
                                                           else None, dict) else 0)
    with any_store.read() as conn:
        assert conn.execute(select(C.c.meta, C.c.state).where(C.c.id == bad)).one() == (meta, "open")


def test_an_item_read_again_in_a_later_shift_counts_again(any_store, review_settings) -> None:
    """Counted once per shift, not once for ever: the budget is of this shift's exposure."""
    import datetime as _dt

    settings = review_settings
    now = _dt.datetime(2026, 12, 7, 12, 0)
    old = now - _dt.timedelta(hours=settings.shift_hours + 1)
    with any_store.begin() as conn:
        for when, case in ((old, 1), (now - _dt.timedelta(minutes=5), 2)):
            conn.execute(Reveal.__table__.insert().values(analyst="ann", case_id=case, item_id="x",
                                                          severity=settings.severe_tiers[0], created_at=when))
    out = exposure(any_store, "ann", settings, now=now)
    assert out["severe"] == 1 and out["revealed"] == 1  # the earlier shift's read no longer hides this one
