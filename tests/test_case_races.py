"""Writers of cases that read, then write, while analysts claim (issue 18, PostgreSQL): the
re-plan and refresh after a promotion, the sweep's SLA escalations and folds, seeds and the
learning plan. Claims and decisions do not take the case writers' lock, so each of those writes
is a compare-and-swap on the case's state and `updated_at`: a case an analyst claims in between
stays claimed by them (the re-plan used to write it back to `open`, so a second analyst could
claim it too), and what another writer recorded in between is kept. On SQLite the write
transaction holds the database's write lock, so nothing comes in between."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

import labeling.cases
import labeling.rescore
from core.schema import Case, Decision, utcnow
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


def test_a_case_claimed_while_a_seed_moves_it_stays_where_the_analyst_has_it(pg_store, taxonomy, monkeypatch):
    import labeling.seeding as seeding
    from core.config import config_dir
    from labeling.queue_config import load_queue_config
    from test_queue_support import T0
    from test_seeding import SPAM, BagOfWords, _store

    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": []})
    _store(pg_store, taxonomy, cfg)
    with pg_store.read() as conn:
        target = conn.execute(select(C.c.id, C.c.queue).where(C.c.item_id == "s1")).one()
    original = seeding.score_features

    def claim_meanwhile(*args, **kwargs):
        if not claim_meanwhile.done:  # the first seed's case, claimed between the read and the write
            claim_meanwhile.done = True
            claim_case(pg_store, target.id, "ann", cfg, now=T0)
        return original(*args, **kwargs)

    claim_meanwhile.done = False
    monkeypatch.setattr(seeding, "score_features", claim_meanwhile)
    out = seeding.seed_cases(pg_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[1]],
                             embedder=BagOfWords(), neighbours=5, uniform_share=0.0, max_similarity=1.0, now=T0)
    assert out["items"][0]["item_id"] != "s1" and out["passed_over"] == 1 and out["seeded"] == 4
    with pg_store.read() as conn:
        row = conn.execute(select(C.c.state, C.c.claimed_by, C.c.queue, C.c.meta).where(C.c.id == target.id)).one()
    assert (row.state, row.claimed_by, row.queue) == ("claimed", "ann", target.queue) and "seed" not in row.meta


def test_a_case_claimed_while_the_learning_plan_pins_it_is_not_marked_learning(pg_store, taxonomy, monkeypatch):
    import labeling.learning as learning
    from labeling.learning import apply_learning_share
    from test_learning_share import EMB, _fill, share_config
    from test_queue_support import T0

    cfg = share_config(taxonomy)
    _fill(pg_store, taxonomy, cfg)
    plan = learning.plan_queue(pg_store, taxonomy, cfg, "general", T0, EMB)
    first = next(iter(plan["pin"]))
    original = learning.score_features

    def claim_meanwhile(*args, **kwargs):
        if not claim_meanwhile.done:
            claim_meanwhile.done = True
            claim_case(pg_store, first, "ann", cfg, now=T0)
        return original(*args, **kwargs)

    claim_meanwhile.done = False
    monkeypatch.setattr(learning, "plan_queue", lambda *a, **k: plan)
    monkeypatch.setattr(learning, "score_features", claim_meanwhile)
    out = apply_learning_share(pg_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    assert out["general"]["learning"] == len(plan["pin"]) - 1
    with pg_store.read() as conn:
        row = conn.execute(select(C.c.state, C.c.priority_reason, C.c.meta).where(C.c.id == first)).one()
    assert row.state == "claimed" and not row.priority_reason.startswith("learning:") and "learning" not in row.meta


def test_a_member_case_claimed_while_a_campaign_is_decided_stays_claimed(pg_store, taxonomy, monkeypatch):
    """A lead decides a campaign; ann claims one member's own case after the decision read who holds
    what. The bulk decision labels the item, but ann's case is not closed under her."""
    import labeling.decisions as decisions
    from core.config import config_dir
    from labeling.cases import build_cases
    from labeling.claims import next_case
    from labeling.queue_config import load_queue_config
    from test_queue_support import T0, add_campaign, add_scored

    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                "calibration_sets": []})
    members = [f"m{i}" for i in range(6)]
    add_scored(pg_store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in members])
    add_campaign(pg_store, members)
    build_cases(pg_store, taxonomy, cfg, now=T0, progress=False)
    camp = next_case(pg_store, "lead", "campaigns", now=T0, config=cfg)
    original, got = decisions.current_decisions, {}

    def claim_meanwhile(conn, *args, **kwargs):
        if not got:  # after `_bulk_plan` read which member cases others hold
            got["case"] = next_case(pg_store, "ann", "fraud", now=T0, config=cfg)
        return original(conn, *args, **kwargs)

    monkeypatch.setattr(decisions, "current_decisions", claim_meanwhile)
    out = decisions.decide(pg_store, taxonomy, camp["id"], "lead", "scam", "block_sender", now=T0, config=cfg)
    mine = got["case"]
    assert mine is not None and mine["id"] not in out["closed_member_cases"]
    with pg_store.read() as conn:
        row = conn.execute(select(C.c.state, C.c.claimed_by).where(C.c.id == mine["id"])).one()
    assert (row.state, row.claimed_by) == ("claimed", "ann")
    assert len(out["closed_member_cases"]) == 5


def test_two_corrections_of_one_decision_at_once_do_not_fork_it(any_store, taxonomy, monkeypatch):
    """Two leads correct the same decision at once (or one resolves its re-review while another
    corrects it): the second sees the first and is told to correct that one, as it would one
    after the other. Two rows superseding one decision would leave the label of record to
    whichever was written last, with neither lead told."""
    import labeling.decisions as decisions
    from core.config import config_dir
    from labeling.cases import build_cases
    from labeling.claims import next_case
    from labeling.errors import DecisionError
    from labeling.queue_config import load_queue_config
    from test_queue_support import T0, add_scored, at_once, meeting

    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": "x", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    first = decisions.decide(any_store, taxonomy, case["id"], "ann", "scam", now=T0, config=cfg)["decision_ids"][0]
    both_checked, original = meeting(), decisions._supersede

    def meet_then_write(*args, **kwargs):
        both_checked()  # each has seen no newer decision
        return original(*args, **kwargs)

    monkeypatch.setattr(decisions, "_supersede", meet_then_write)
    outcomes = at_once(*(lambda who=who, label=label: decisions.correct(any_store, taxonomy, first, who, label,
                                                                        rationale="second look")
                         for who, label in (("lena", "spam"), ("lee", "benign"))), catch=(DecisionError,))
    assert sum(isinstance(o, dict) for o in outcomes) == 1, outcomes
    assert any("already superseded" in str(o) for o in outcomes)
    with any_store.read() as conn:
        assert conn.execute(select(Decision.__table__.c.id).where(
            Decision.__table__.c.supersedes_id == first)).scalars().all().__len__() == 1


def test_a_pin_written_while_the_sweep_refreshes_priorities_is_kept(pg_store, taxonomy, queue_config, monkeypatch):
    """The sweep recomputes waiting cases' priorities from what it read; a seed pinned in between
    (its own priority and `updated_at`) is not written back to the priority from before the pin."""
    import datetime as dt

    import labeling.escalation as escalation

    store, _, _ = make_loop(pg_store, taxonomy, queue_config)
    target = _waiting_item_case(store, queue_config)
    original, pinned = escalation.score_features, {}

    def pin_meanwhile(*args, **kwargs):
        if not pinned:  # the first priority computed: another writer pins the target case meanwhile
            pinned["priority"] = 1e6
            with store.begin() as other:
                other.execute(update(C).where(C.c.id == target.id).values(
                    priority=1e6, priority_reason="seed: pinned meanwhile", updated_at=utcnow()))
        return original(*args, **kwargs)

    monkeypatch.setattr(escalation, "score_features", pin_meanwhile)
    out = escalation.sweep(store, taxonomy, queue_config, now=utcnow() + dt.timedelta(minutes=10))
    with store.read() as conn:
        row = conn.execute(select(C.c.priority, C.c.priority_reason).where(C.c.id == target.id)).one()
    assert (row.priority, row.priority_reason) == (1e6, "seed: pinned meanwhile")
    assert out["reprioritised"] > 0


def test_two_hosts_of_one_database_never_cluster_at_once(pg_store, tmp_path):
    """Each host has its own data dir (so its own file lock); the clustering run lock is the
    database's, so a second host's `workbench cluster` is refused while the first one runs."""
    from clustering import service
    from core.store import open_store
    from test_campaigns import HashingEmbedder, settings
    from test_promotion_race import held_elsewhere

    other_host = open_store(tmp_path / "host-b", pg_store.url)
    try:
        with held_elsewhere(pg_store, "cluster"):
            with pytest.raises(service.CampaignError, match="another `workbench cluster` is running"):
                service.cluster(other_host, settings(), embedder=HashingEmbedder(), show_progress=False)
        service.cluster(other_host, settings(), embedder=HashingEmbedder(), show_progress=False)  # free again
    finally:
        other_host.dispose()
