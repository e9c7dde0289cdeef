"""Rescoring after a promotion while analysts work (issue 18, PostgreSQL): the re-plan of the open
cases and the refresh read the cases, then write each one. A case an analyst claims in between
stays claimed by them (the re-plan used to write it back to `open`, so a second analyst could
claim it too), and a pin a seed or a learning pass wrote in between is kept. On SQLite the
write transaction holds the database's write lock, so nothing comes in between."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

import labeling.cases
import labeling.rescore
from core.schema import Case, utcnow
from labeling.claims import claim_case
from labeling.rescore import rescore_open_cases, stale_open_cases
from models.registry import promote, train_model
from test_promotion_gate import FAST, MODELS, make_loop
from test_models_fixtures import toy_corpus
from models.training import TrainingSet

C = Case.__table__


def _new_champion(store, taxonomy, ids):
    """A second champion (trained on the true labels) whose predictions the open cases lack."""
    texts, ys = toy_corpus(60, seed=4)
    truth = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    new = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=truth, promote_if="never",
                      show_progress=False)["id"]
    promote(store, new, actor="eng", reason="test")
    return new


def _waiting_item_case(store, queue_config):
    special = [queue_config.escalation_queue, queue_config.appeals_queue, queue_config.calibration_queue]
    with store.read() as conn:
        return conn.execute(select(C.c.id, C.c.item_id).where(
            C.c.state == "open", C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
            C.c.queue.notin_(special)).order_by(C.c.id)).first()


def _rescore_then_read(store, taxonomy, queue_config, case_id):
    """Rescore the open cases as a promotion does; (its counts, the case's row afterwards)."""
    out = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             progress=False)
    with store.read() as conn:
        return out, conn.execute(select(C).where(C.c.id == case_id)).mappings().one()


def test_a_case_claimed_during_the_replan_stays_claimed(pg_store, taxonomy, queue_config, monkeypatch):
    store, _, ids = make_loop(pg_store, taxonomy, queue_config)
    target = _waiting_item_case(store, queue_config)
    champ = _new_champion(store, taxonomy, ids)
    original = labeling.cases.plan_case

    def claim_meanwhile(tax, config, cand, *args, **kwargs):
        if cand.item_id == target.item_id and not claim_meanwhile.done:
            claim_meanwhile.done = True  # ann claims it between the re-plan's read and its write
            claim_case(store, target.id, "ann", queue_config)
        return original(tax, config, cand, *args, **kwargs)

    claim_meanwhile.done = False
    monkeypatch.setattr(labeling.cases, "plan_case", claim_meanwhile)
    out, row = _rescore_then_read(store, taxonomy, queue_config, target.id)
    assert claim_meanwhile.done
    assert (row["state"], row["claimed_by"]) == ("claimed", "ann")  # not handed back to the queue
    assert row["model_version"] == champ and out["stale_left"] == 0 == len(stale_open_cases(store))


def test_a_pin_written_during_the_refresh_is_kept(pg_store, taxonomy, queue_config, monkeypatch):
    store, _, ids = make_loop(pg_store, taxonomy, queue_config)
    target = _waiting_item_case(store, queue_config)
    claim_case(store, target.id, "ann", queue_config)  # claimed: the refresh, not the re-plan, brings it over
    champ = _new_champion(store, taxonomy, ids)
    original = labeling.rescore.predictions_of_record

    def pin_meanwhile(conn, item_ids, *args, **kwargs):
        if list(item_ids) == [target.item_id] and not pin_meanwhile.done:
            pin_meanwhile.done = True  # another writer records something on the case meanwhile
            with store.begin() as other:
                meta = dict(other.execute(select(C.c.meta).where(C.c.id == target.id)).scalar() or {})
                other.execute(update(C).where(C.c.id == target.id).values(
                    meta=dict(meta, note_from_elsewhere=True), updated_at=utcnow()))
        return original(conn, item_ids, *args, **kwargs)

    pin_meanwhile.done = False
    monkeypatch.setattr(labeling.rescore, "predictions_of_record", pin_meanwhile)
    out, row = _rescore_then_read(store, taxonomy, queue_config, target.id)
    assert pin_meanwhile.done
    assert row["meta"].get("note_from_elsewhere") is True  # not overwritten by the refresh's stale copy
    assert row["model_version"] == champ and row["state"] == "claimed" and out["stale_left"] == 0


def test_a_case_claimed_while_the_sweep_escalates_stays_claimed(pg_store, taxonomy, queue_config, monkeypatch):
    """The sweep reads the cases whose SLA is lapsing, then moves each to the escalation queue. One
    an analyst claims in between stays theirs: not escalated, its claim not cleared under them."""
    import labeling.escalation as escalation
    import datetime as dt

    store, _, _ = make_loop(pg_store, taxonomy, queue_config)
    tiers = queue_config.sla_escalation.tiers
    with store.read() as conn:
        target = conn.execute(select(C.c.id).where(C.c.state == "open", C.c.severity.in_(tiers),
                                                   C.c.campaign_id.is_(None)).order_by(C.c.id)).scalar()
    assert target is not None
    original = escalation.sla_lapsing

    def claim_meanwhile(*args, **kwargs):
        claim_case(store, target, "ann", queue_config)  # between the sweep's read and its writes
        return original(*args, **kwargs)

    monkeypatch.setattr(escalation, "sla_lapsing", claim_meanwhile)
    out = escalation.sweep(store, taxonomy, queue_config, now=utcnow() + dt.timedelta(days=2))
    assert out["sla_escalated"] > 0  # the others lapsed and moved
    with store.read() as conn:
        row = conn.execute(select(C.c.state, C.c.claimed_by, C.c.queue).where(C.c.id == target)).one()
    assert (row.state, row.claimed_by) == ("claimed", "ann") and row.queue != queue_config.escalation_queue
