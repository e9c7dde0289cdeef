"""Blind QA re-review (issue 19): a lead draws decided items uniformly into the re-review queue;
the case shows no earlier decision; the answer is a QA-audit decision that feeds the analyst's QA
pass rate; only `qa_review` may draw, and the analyst under review may not answer."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import Case, Decision
from evaluation.analysts import qa_pass_pairs
from labeling.cases import build_cases
from labeling.context import case_context
from labeling.decisions import decide
from labeling.errors import DecisionError, QueueError
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from test_queue_support import T0, add_scored


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


def _decided_by(store, taxonomy, cfg):
    """12 scam items: ann decides the first 8 as scam, bob the other 4 as spam."""
    add_scored(store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(12)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        cases = dict(conn.execute(select(Case.item_id, Case.id).where(Case.campaign_id.is_(None))).all())
    for i in range(12):
        who, label = ("ann", "scam") if i < 8 else ("bob", "spam")
        decide(store, taxonomy, cases[f"s{i}"], who, label, rationale="first look", config=cfg)


def test_draw_is_uniform_blind_and_feeds_the_pass_rate(any_store, taxonomy, cfg, review_settings, roles):
    _decided_by(any_store, taxonomy, cfg)
    lead = Principal("lena", "lead")
    with pytest.raises(PermissionDenied, match="qa_review"):
        draw_rereviews(any_store, cfg, Principal("ann", "analyst"), 3)
    with pytest.raises(QueueError, match="positive whole number"):
        draw_rereviews(any_store, cfg, lead, 0)
    out = draw_rereviews(any_store, cfg, lead, 3, analyst="ann", seed=1)
    assert (out["drawn"], out["candidates"]) == (3, 8)
    with any_store.read() as conn:
        drawn = conn.execute(select(Case.id, Case.item_id, Case.is_audit, Case.queue)
                             .where(Case.id.in_(out["case_ids"]))).all()
    assert all(r.is_audit and r.queue == out["queue"] and int(r.item_id[1:]) < 8 for r in drawn)
    # not drawn twice while waiting: only the 5 other items of ann's remain
    assert draw_rereviews(any_store, cfg, lead, 10, analyst="ann")["drawn"] == 5
    case = drawn[0].id
    ctx = case_context(any_store, taxonomy, case, lead, review_settings)
    assert ctx["history"] == []  # blind: ann's decision is not shown
    with pytest.raises(DecisionError, match="separation of duties"):
        decide(any_store, taxonomy, case, Principal("ann", "lead"), "scam", config=cfg)
    assert decide(any_store, taxonomy, case, lead, "spam", rationale="premium-rate advert",
                  config=cfg)["kind"] == "qa_audit"
    with any_store.read() as conn:
        events = [dict(r) for r in conn.execute(select(Decision.__table__)).mappings()]
    assert qa_pass_pairs(events) == [("ann", False)]  # lena disagreed with ann once


def test_two_leads_drawing_at_once_never_queue_an_item_twice(any_store, taxonomy, cfg, roles, monkeypatch):
    """Lena's draw has read which items wait for a re-review when Lee's draw runs: Lee waits for
    Lena's to be written (or Lena's sees Lee's), so no item gets two waiting re-reviews."""
    import threading
    from collections import Counter

    import labeling.rereview as rereview

    _decided_by(any_store, taxonomy, cfg)
    read, lee_done = threading.Event(), threading.Event()
    original = rereview.current_decisions
    lena_thread = threading.current_thread()

    def slow_read(conn, *args, **kwargs):
        out = original(conn, *args, **kwargs)
        if threading.current_thread() is lena_thread and not read.is_set():
            read.set()
            lee_done.wait(3)  # with the lock held, Lee cannot finish meanwhile
        return out

    monkeypatch.setattr(rereview, "current_decisions", slow_read)
    results = {}

    def lee():
        read.wait(10)
        results["lee"] = draw_rereviews(any_store, cfg, Principal("lee", "lead"), 50, seed=2)
        lee_done.set()

    t = threading.Thread(target=lee)
    t.start()
    results["lena"] = draw_rereviews(any_store, cfg, Principal("lena", "lead"), 50, seed=1)
    t.join(30)
    assert results["lena"]["drawn"] + results["lee"]["drawn"] == 12
    with any_store.read() as conn:
        items = conn.execute(select(Case.item_id).where(Case.queue == results["lena"]["queue"])).scalars().all()
    assert max(Counter(items).values()) == 1
