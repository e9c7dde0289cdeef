"""Operations KPIs and coaching figures, attacked.

The defects: the rework rate of the Operations tab counted a campaign decided in one action once
per member (300 copies of one text were 300 "original decisions", burying one analyst's reworked
decision at 1/301 where the report's rule, one per text, says 1/2); `ops_kpis` given an aware
`now` (UTC offset) ended in a TypeError comparing it with the store's naive UTC times; a case
closed with no decision (a merged campaign's, one behind an appeal) counted as an SLA met and a
resolution at the moment it was closed; calibration copies past their case's due time counted as
overdue cases; `ops_kpis` with a filter read every decision of the store, then filtered in Python;
the Models tab lost an older version's gate verdict behind the newest 1,000 gate events.
"""
from __future__ import annotations

import datetime as dt

import pytest

from evaluation import ops
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case

from test_queue_support import T0, add_campaign, add_scored

SCAM = "claim your refund now at refund-desk"


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _campaign_and_one_review(store, taxonomy, cfg, members: int = 6) -> int:
    """A campaign of `members` copies of one text decided in one action by the lead, and one item
    decided by ann; returns ann's decision id."""
    ids = [f"w{i}" for i in range(members)]
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.8, "text": SCAM} for m in ids]
               + [{"id": "s1", "label": "scam", "p": 0.9, "text": "a different text entirely"}])
    add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(store, "lead", "campaigns", now=T0, config=cfg)
    DEC.decide(store, taxonomy, camp["id"], "lead", "scam", rationale="one wave", now=T0, config=cfg)
    case = next_case(store, "ann", "fraud", now=T0 + dt.timedelta(minutes=5), config=cfg)
    assert case is not None and case["item_id"] == "s1"
    return DEC.decide(store, taxonomy, case["id"], "ann", "scam", now=T0 + dt.timedelta(minutes=6),
                      config=cfg)["decision_ids"][0]


def test_a_campaign_decided_in_one_action_is_one_original_in_the_rework_rate(any_store, taxonomy, cfg):
    mine = _campaign_and_one_review(any_store, taxonomy, cfg)
    DEC.correct(any_store, taxonomy, mine, "lead", "spam", rationale="not a scam", now=T0 + dt.timedelta(hours=1))
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), config=cfg)
    assert k["labelling_acts"] == 3  # one per text of the campaign, ann's, the lead's correction
    # was 1/7: the six copies of one text were six original decisions
    assert k["rework_rate"] == pytest.approx(1 / 2)
    assert (k["rate_intervals"]["rework_rate"]["n"], k["rate_intervals"]["rework_rate"]["k"]) == (2, 1)


def test_a_campaign_decision_changed_on_one_copy_is_one_act_reworked(any_store, taxonomy, cfg):
    _campaign_and_one_review(any_store, taxonomy, cfg)
    from sqlalchemy import select
    from core.schema import Decision
    with any_store.read() as conn:
        copy = conn.execute(select(Decision.id).where(Decision.kind == "bulk").order_by(Decision.id.desc())
                            .limit(1)).scalar()
    DEC.correct(any_store, taxonomy, copy, "bob", "spam", rationale="this copy is spam", now=T0 + dt.timedelta(hours=1))
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), config=cfg)
    # the campaign decision (one act) was changed on one copy: reworked, whichever copy it was
    assert k["rework_rate"] == pytest.approx(1 / 2)


def test_an_aware_now_is_read_as_utc(any_store, taxonomy, cfg):
    _campaign_and_one_review(any_store, taxonomy, cfg)
    naive = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), config=cfg)
    aware = ops.ops_kpis(any_store, now=(T0 + dt.timedelta(hours=2)).replace(tzinfo=dt.timezone.utc)
                         .astimezone(dt.timezone(dt.timedelta(hours=5))), config=cfg)
    assert aware["as_of"] == naive["as_of"] and aware["sla"] == naive["sla"] and aware["overdue"] == naive["overdue"]


def _close_without_decision(store, case_id: int, when: dt.datetime, meta: dict) -> None:
    """Close a waiting case as `clustering.service` (a merged campaign's case) and
    `labeling.appeal_holds.closes_behind_appeal` do: decided, resolved, no decision row."""
    from sqlalchemy import select, update
    from core.schema import Case
    C = Case.__table__
    with store.begin() as conn:
        old = conn.execute(select(C.c.meta).where(C.c.id == case_id)).scalar() or {}
        conn.execute(update(C).where(C.c.id == case_id).values(state="decided", resolved_at=when,
                                                                 lease_expires_at=None, meta={**old, **meta}))


@pytest.mark.parametrize("meta", [
    {"closed": {"reason": "campaign_merged", "campaign": 1, "merged_into": 2, "without_decision": True}},
    {"closed_behind_appeal": {"decision_id": 1, "appeal_case_id": 9, "closed_by": "ann"}}])
def test_a_case_closed_without_a_decision_is_no_sla_met_nor_a_resolution(any_store, taxonomy, cfg, meta):
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}, {"id": "s2", "label": "scam", "p": 0.8}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = next_case(any_store, "ann", "fraud", now=T0 + dt.timedelta(minutes=5), config=cfg)
    DEC.decide(any_store, taxonomy, case["id"], "ann", "scam", now=T0 + dt.timedelta(minutes=6), config=cfg)
    other = next_case(any_store, "bob", "fraud", now=T0 + dt.timedelta(minutes=7), config=cfg)
    _close_without_decision(any_store, other["id"], T0 + dt.timedelta(minutes=30), meta)
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=1), config=cfg)
    tiers = {t: v for t, v in k["sla"].items() if v["cases"]}
    # was 2 cases, 2 met: nobody decided the closed one by its due time (nor after it)
    assert sum(v["cases"] for v in tiers.values()) == 1 and sum(v["met"] for v in tiers.values()) == 1
    assert k["median_minutes_to_resolution"] == pytest.approx(6.0)  # was 18: the closing time read as a decision
    assert k["closed_without_decision"] == 1
    assert k["backlog"] == 0 and k["decisions"] == 1


def test_a_filtered_view_asks_the_store_for_its_cases_decisions_only(any_store, taxonomy, cfg):
    from sqlalchemy import event
    _campaign_and_one_review(any_store, taxonomy, cfg)
    whole = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), config=cfg)
    seen: list[str] = []

    def spy(conn, cursor, statement, *args):
        if "FROM decisions" in statement:
            seen.append(statement)
    engines = {any_store.engine, any_store.read_engine}
    for e in engines:
        event.listen(e, "before_cursor_execute", spy)
    try:
        k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(hours=2), queue="fraud", config=cfg)
    finally:
        for e in engines:
            event.remove(e, "before_cursor_execute", spy)
    assert whole["decisions"] == 7 and k["decisions"] == 1 and k["labelling_acts"] == 1
    # was every decision of the store read, then filtered in Python, on every `workbench queues --queue`
    assert seen and all("WHERE" in s and "case_id IN" in s for s in seen), seen


def test_a_versions_gate_verdict_is_found_behind_a_thousand_newer_ones(any_store):
    """The Models tab read the newest 1,000 gate events: an older champion's verdict read as
    "never compared" once 1,000 retrains of other versions had been gated since."""
    from sqlalchemy import insert
    from core import audit
    from core.schema import ModelVersion
    from evaluation.model_overview import model_overview, verdict_word

    with any_store.begin() as conn:
        for v in ("champ-1", "nightly"):
            conn.execute(insert(ModelVersion.__table__).values(id=v, kind="tfidf", artifact_path="x", labels=[]))
        audit.record(conn, "eng", "model.gate", "model_version", "champ-1", {"champion": "c0", "passed": True})
        for i in range(1000):
            audit.record(conn, "eng", "model.gate", "model_version", "nightly", {"champion": "champ-1", "passed": False})
    rows = {m["id"]: m for m in model_overview(any_store, "eng")}
    assert verdict_word(rows["champ-1"]["verdict"]) == "passed"  # was "—": never compared
    assert verdict_word(rows["nightly"]["verdict"]) == "refused"


def test_a_calibration_copy_past_the_due_time_is_no_overdue_case(any_store, taxonomy, queue_config):
    """Calibration copies carry the due time of the case they copy; practice answers owe no SLA
    (`sla` leaves them out), yet each waiting copy counted as one more overdue case."""
    kind = type(queue_config.calibration_sets[0])
    cfg = queue_config.model_copy(update={"qa_share": 0.0,
                                          "calibration_sets": [kind(name="all", share=1.0, reviewers=3)]})
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    k = ops.ops_kpis(any_store, now=T0 + dt.timedelta(days=30), config=cfg)
    assert k["queues"][cfg.calibration_queue]["open"] == 3 and k["backlog"] == 4
    assert k["overdue"] == 1  # was 4: the case and its three practice copies
    assert sum(v["missed"] for v in k["sla"].values()) == 1
