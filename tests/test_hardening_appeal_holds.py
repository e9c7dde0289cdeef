"""An item whose appeal waits is the appeal's to settle (12-07): a blind re-review drawn before the
appeal was filed, or a label-error case queued before it, answered while the appeal waited wrote
a decision that became the item's label of record (the decision under appeal replaced by a QA
answer); and the label-error scan queued an item under appeal for a lead's correction."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from core.config import config_dir
from core.labels import current_decisions
from core.schema import Case
from labeling import decisions as DEC
from labeling.appeals import appeal, resolve_appeal
from labeling.cases import build_cases
from labeling.errors import DecisionError
from labeling.label_errors import find_label_errors
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from test_label_errors import decided_store
from test_queue_support import T0, add_scored
from test_seeding import BagOfWords

C = Case.__table__
FLIPS = {"s3": "benign", "s17": "benign", "c5": "spam", "c30": "spam"}


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                  "calibration_sets": []})


def _record(store, item):
    with store.read() as conn:
        return current_decisions(conn, [item])[item]


def _decided_and_drawn(store, taxonomy, cfg) -> int:
    """ann decides item a (scam); lena draws it for blind re-review; the re-review case's id."""
    add_scored(store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        case = conn.execute(select(C.c.id).where(C.c.item_id == "a")).scalar_one()
    DEC.decide(store, taxonomy, case, "ann", "scam", rationale="prize lure", now=T0, config=cfg)
    out = draw_rereviews(store, cfg, "lena", 5, seed=1)
    assert out["drawn"] == 1
    return out["case_ids"][0]


def test_a_rereview_answer_waits_for_the_appeal(any_store, taxonomy, cfg):
    """Drawn before the appeal was filed, the blind answer (benign) became item a's label of record
    while the appeal of ann's decision waited: only the appeal's resolution may replace it."""
    rereview = _decided_and_drawn(any_store, taxonomy, cfg)
    ann = _record(any_store, "a")
    filed = appeal(any_store, "a", "author", "it was a real prize", taxonomy, now=T0, config=cfg)
    with pytest.raises(DecisionError, match=rf"item 'a' has an appeal waiting \(case {filed['id']}\): the appeal "
                                            r"settles its label; skip this re-review") as err:
        DEC.decide(any_store, taxonomy, rereview, "lena", "benign", rationale="looks fine", now=T0, config=cfg)
    assert "\n" not in str(err.value)
    assert _record(any_store, "a")["id"] == ann["id"]  # the decision under appeal stands
    with any_store.read() as conn:
        assert conn.execute(select(C.c.state).where(C.c.id == rereview)).scalar_one() == "open"
    resolve_appeal(any_store, taxonomy, filed["id"], "lena", "reverse", "a real prize draw", label="benign",
                   now=T0, config=cfg)
    assert _record(any_store, "a")["kind"] == "appeal"


def test_a_rereview_answer_waits_for_an_escalated_appeal(any_store, taxonomy, cfg):
    """An appeal case escalated from the appeals queue waits in the escalation queue: still a hold."""
    rereview = _decided_and_drawn(any_store, taxonomy, cfg)
    ann = _record(any_store, "a")
    filed = appeal(any_store, "a", "author", "it was a real prize", taxonomy, now=T0, config=cfg)
    with any_store.begin() as conn:  # escalated from the appeals queue (`escalate` refuses that now; older stores keep them)
        meta = conn.execute(select(C.c.meta).where(C.c.id == filed["id"])).scalar_one()
        conn.execute(update(C).where(C.c.id == filed["id"]).values(
            queue=cfg.escalation_queue, state="escalated", meta=dict(meta, escalated_from=cfg.appeals_queue)))
    with pytest.raises(DecisionError, match=rf"appeal waiting \(case {filed['id']}\)"):
        DEC.decide(any_store, taxonomy, rereview, "lena", "benign", rationale="looks fine", now=T0, config=cfg)
    assert _record(any_store, "a")["id"] == ann["id"]


def _label_error_case(store, item):
    with store.read() as conn:
        return conn.execute(select(C.c.id).where(C.c.item_id == item, C.c.queue == "label-review")).scalar()


def test_the_label_error_scan_leaves_an_item_under_appeal_alone(any_store, taxonomy, cfg):
    """bob's slip s3 is appealed: the scan queued it for a lead's correction beside the appeal."""
    decided_store(any_store, taxonomy, cfg, 40, FLIPS)
    appeal(any_store, "s3", "author", "my message was not spam", taxonomy, now=T0, config=cfg)
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    queued = {c["item_id"] for c in out["cases"]}
    assert {"s17", "c5", "c30"} <= queued and "s3" not in queued, queued
    assert out["under_appeal"] == 1 and _label_error_case(any_store, "s3") is None


def test_a_label_error_case_waits_for_an_appeal_filed_after_the_scan(any_store, taxonomy, cfg):
    decided_store(any_store, taxonomy, cfg, 40, FLIPS)
    find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    case = _label_error_case(any_store, "s3")
    assert case is not None
    bob = _record(any_store, "s3")
    filed = appeal(any_store, "s3", "author", "my message was not spam", taxonomy, now=T0, config=cfg)
    with pytest.raises(DecisionError, match=rf"item 's3' has an appeal waiting \(case {filed['id']}\)"):
        DEC.decide(any_store, taxonomy, case, "lena", "spam", rationale="spam words", now=T0, config=cfg)
    assert _record(any_store, "s3")["id"] == bob["id"]


@pytest.mark.postgres
def test_an_appeal_filed_during_the_answer_waits_for_it(pg_store, taxonomy, cfg, monkeypatch):
    """The hold is checked under the item's decision lock, which filing an appeal takes: an appeal
    filed between the check and the answer's commit waits, then appeals the answer (the label of
    record it finds), never a decision the answer replaces behind its back."""
    rereview = _decided_and_drawn(pg_store, taxonomy, cfg)
    checked, check = threading.Event(), DEC.check_no_waiting_appeal

    def check_then_hold(*args, **kwargs):
        check(*args, **kwargs)
        checked.set()
        time.sleep(1.0)  # the answer's transaction stays open meanwhile

    monkeypatch.setattr(DEC, "check_no_waiting_appeal", check_then_hold)
    filed: list[dict] = []
    worker = threading.Thread(target=lambda: (checked.wait(10), filed.append(
        appeal(pg_store, "a", "author", "it was a real prize", taxonomy, now=T0, config=cfg))))
    worker.start()
    answer = DEC.decide(pg_store, taxonomy, rereview, "lena", "benign", rationale="looks fine", now=T0, config=cfg)
    worker.join(20)
    assert filed and filed[0]["meta"]["appeal"]["decision"]["id"] == answer["decision_ids"][0], filed
    assert _record(pg_store, "a")["id"] == answer["decision_ids"][0]
