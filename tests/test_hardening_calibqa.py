"""Calibration and QA machinery, as a T&S lead who coaches analysts with it.

Each test reproduces a defect found in an audit, or pins a property the coaching figures rest on:
- a calibration copy its holder released (or let lapse) kept its sibling copies written off for
  that holder: once another analyst took the released copy, the analyst who never answered the
  item could get no copy of it, and with few analysts the item was never answered;
- an item drawn into two calibration sets served one analyst a copy from each: a second answer
  to an item they had already seen is neither blind nor independent;
- a calibration tie under `majority` is left out and reported, never resolved by a coin toss;
- calibration answers enforce nothing (no webhook event) and train once per item;
- the QA-audit draw is uniform (a seeded chi-square test) and never takes a calibration copy;
- the agreement figures match a hand computation and say "not enough data" with 0 or 1 rater;
- an analyst without `analyst_quality` reads no analyst's figures.
Also: a tie a lead's decision settled is no tie reported (training_data); a second set's copy
opened by id is refused to who answered the item (decisions); the decisions feed shows no
calibration answer to a role without `analyst_quality` (api).
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case, CaseSkip, Decision
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case, release
from labeling.queue_config import CalibrationSet, load_queue_config
from test_queue_support import T0, add_scored

C, D, SK = Case.__table__, Decision.__table__, CaseSkip.__table__
LATER = T0 + dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "calibration_sets": [CalibrationSet(name="c1", share=1.0, reviewers=2)]})


def _copies(store, item="it1", cal_set="c1"):
    with store.read() as conn:
        return conn.execute(select(C.c.id).where(C.c.item_id == item, C.c.calibration_set == cal_set)
                            .order_by(C.c.id)).scalars().all()


def _build(store, taxonomy, cfg, items=("it1",)):
    add_scored(store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in items])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)


def test_a_released_copy_gives_its_sibling_back_to_who_released_it(any_store, taxonomy, cfg):
    _build(any_store, taxonomy, cfg)
    first, second = _copies(any_store)
    assert next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=T0, detail=False)["id"] == first
    release(any_store, first, "ann", cfg, now=T0)
    assert next_case(any_store, "bob", cfg.calibration_queue, config=cfg, now=T0, detail=False)["id"] == first
    # ann never answered the item: the other copy is hers to take
    got = next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=LATER, detail=False)
    assert got is not None and got["id"] == second


def test_a_lapsed_copy_gives_its_sibling_back_to_who_held_it(any_store, taxonomy, cfg):
    _build(any_store, taxonomy, cfg)
    first, second = _copies(any_store)
    next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=T0, lease_seconds=60, detail=False)
    after = T0 + dt.timedelta(minutes=5)  # ann's lease lapsed
    assert next_case(any_store, "bob", cfg.calibration_queue, config=cfg, now=after, detail=False)["id"] == first
    got = next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=after, detail=False)
    assert got is not None and got["id"] == second


def test_a_skipped_copy_keeps_its_siblings_away(any_store, taxonomy, cfg):
    """A skip declines the item, unlike a release: no copy of it comes back to the skipper."""
    from labeling.claims import skip

    _build(any_store, taxonomy, cfg)
    first, _ = _copies(any_store)
    next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=T0, detail=False)
    skip(any_store, first, "ann", cfg, reason="not my language", now=T0)
    assert next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=LATER, detail=False) is None


def test_an_answered_copy_never_comes_back_after_a_release_of_another(any_store, taxonomy, cfg):
    _build(any_store, taxonomy, cfg)
    first, second = _copies(any_store)
    claim_case(any_store, first, "ann", cfg, now=T0)
    DEC.decide(any_store, taxonomy, first, "ann", "scam", config=cfg, now=T0)
    claim_case(any_store, second, "ann", cfg, now=T0)  # by id: the screen allows it, the answer is refused
    release(any_store, second, "ann", cfg, now=T0)
    assert next_case(any_store, "ann", cfg.calibration_queue, config=cfg, now=LATER, detail=False) is None


def test_an_item_in_two_sets_serves_one_analyst_one_copy(any_store, taxonomy, cfg):
    two = cfg.model_copy(update={"calibration_sets": [CalibrationSet(name="c1", share=1.0, reviewers=2),
                                                      CalibrationSet(name="c2", share=1.0, reviewers=2)]})
    _build(any_store, taxonomy, two)
    got = next_case(any_store, "ann", two.calibration_queue, config=two, now=T0, detail=False)
    DEC.decide(any_store, taxonomy, got["id"], "ann", "scam", config=two, now=T0)
    assert next_case(any_store, "ann", two.calibration_queue, config=two, now=LATER, detail=False) is None
    assert next_case(any_store, "bob", two.calibration_queue, config=two, now=LATER, detail=False) is not None


def _answer(store, taxonomy, cfg, case_id, who, label, at=T0):
    claim_case(store, case_id, who, cfg, now=at)
    return DEC.decide(store, taxonomy, case_id, who, label, rationale="my reading", config=cfg, now=at)


def test_a_majority_tie_is_reported_not_resolved_and_a_leads_decision_settles_it(any_store, taxonomy, cfg):
    from core.principals import Principal
    from core.schema import AuditEvent, OutboxEvent
    from labeling.training_data import learning_data
    from models.config import LearningSettings

    _build(any_store, taxonomy, cfg, items=("it1", "it2"))
    a1, b1 = _copies(any_store, "it1")
    a2, b2 = _copies(any_store, "it2")
    _answer(any_store, taxonomy, cfg, a1, "ann", "scam")
    _answer(any_store, taxonomy, cfg, b1, "bob", "spam")  # a tie on it1
    _answer(any_store, taxonomy, cfg, a2, "ann", "scam")
    _answer(any_store, taxonomy, cfg, b2, "bob", "scam")  # agreement on it2
    with any_store.read() as conn:
        assert conn.execute(select(OutboxEvent.__table__.c.id)).first() is None  # copies enforce nothing
    eng = Principal("erin", "engineer", "user")
    settings = LearningSettings(calibration_rule="majority")
    ld = learning_data(any_store, taxonomy, settings, eng, now=LATER)
    ids = list(ld.data.ids)
    assert "it1" not in ids and ids.count("it2") == 1  # the tie teaches nothing; it2 counts once
    assert ld.data.dropped["calibration ties (no majority)"] == 1
    # a lead decides it1's own case: the decision of record settles it, the copies stay as they were
    with any_store.read() as conn:
        own = conn.execute(select(C.c.id).where(C.c.item_id == "it1", C.c.calibration_set.is_(None))).scalar()
        copies_before = conn.execute(select(D.c.id, D.c.label).where(D.c.kind == "calibration")
                                     .order_by(D.c.id)).all()
    out = _answer(any_store, taxonomy, cfg, own, "lea", "spam", at=LATER)
    with any_store.read() as conn:
        assert conn.execute(select(D.c.id, D.c.label).where(D.c.kind == "calibration").order_by(D.c.id)).all() \
            == copies_before
        A = AuditEvent.__table__
        assert conn.execute(select(A.c.id).where(A.c.action == "decision.create", A.c.actor == "lea",
                                                 A.c.entity_id == str(own))).first() is not None
        events = conn.execute(select(OutboxEvent.__table__.c.event_type)).scalars().all()
    assert events == ["decision.created"]  # the decision of record, and only it, enforces
    ld = learning_data(any_store, taxonomy, settings, eng, now=LATER)
    ids = list(ld.data.ids)
    assert ids.count("it1") == 1 and ids.count("it2") == 1
    assert ld.data.labels[ids.index("it1")] == "spam" and out["kind"] == "review"


def test_a_tie_a_lead_settled_is_no_longer_reported_as_one(any_store, taxonomy, cfg):
    """A tie the item's decision of record settled still read "calibration ties (no majority): 1"
    in the training report: a lead would look for a tie there is no longer."""
    from core.principals import Principal
    from labeling.training_data import learning_data
    from models.config import LearningSettings

    _build(any_store, taxonomy, cfg)
    a1, b1 = _copies(any_store, "it1")
    _answer(any_store, taxonomy, cfg, a1, "ann", "scam")
    _answer(any_store, taxonomy, cfg, b1, "bob", "spam")
    with any_store.read() as conn:
        own = conn.execute(select(C.c.id).where(C.c.item_id == "it1", C.c.calibration_set.is_(None))).scalar()
    _answer(any_store, taxonomy, cfg, own, "lea", "spam", at=LATER)
    ld = learning_data(any_store, taxonomy, LearningSettings(calibration_rule="majority"),
                       Principal("erin", "engineer", "user"), now=LATER)
    assert list(ld.data.ids) == ["it1"] and "calibration ties (no majority)" not in ld.data.dropped


def _chi_square(observed, expected):
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected))


def test_the_qa_draw_is_uniform_over_keys_and_scores(cfg):
    """Seeded (the config's seed, fixed keys): the same numbers every run, never flaky. The draw's
    numbers fill 20 equal bins evenly (chi-square, 19 df, under the 0.999 quantile 43.82), and the
    draw takes `qa_share` of every score band alike (2 x 5 table, 4 df, under 18.47)."""
    from labeling.sampling import audit_draw, uniform_draw

    qa = cfg.model_copy(update={"qa_share": 0.2, "qa_strata": []})
    keys = [f"item-{i}" for i in range(20000)]
    bins = [0] * 20
    for k in keys:
        bins[int(uniform_draw(k, f"{qa.seed}:qa") * 20)] += 1
    assert _chi_square(bins, [len(keys) / 20] * 20) < 43.82
    bands = [0.5, 0.6, 0.7, 0.8, 0.9]
    drawn = [0] * len(bands)
    for i, k in enumerate(keys):
        hit, p = audit_draw(qa, k, "scam", bands[i % len(bands)] + 0.05)
        assert p == 0.2
        drawn[i % len(bands)] += hit
    per_band = len(keys) / len(bands)
    table = drawn + [per_band - d for d in drawn]
    share = sum(drawn) / len(keys)
    assert abs(share - 0.2) < 0.01
    assert _chi_square(table, [per_band * share] * len(bands) + [per_band * (1 - share)] * len(bands)) < 18.47


def test_the_qa_sample_never_takes_a_calibration_copy(any_store, taxonomy, cfg):
    from labeling.sampling import audit_draw

    both = cfg.model_copy(update={"qa_share": 0.5, "calibration_sets": [CalibrationSet(name="c1", share=0.5,
                                                                                        reviewers=2)]})
    items = [f"q{i:03d}" for i in range(60)]
    add_scored(any_store, taxonomy, [{"id": i, "label": "scam", "p": 0.9} for i in items])
    build_cases(any_store, taxonomy, both, now=T0, progress=False)
    with any_store.read() as conn:
        rows = conn.execute(select(C.c.item_id, C.c.calibration_set, C.c.is_audit, C.c.audit_inclusion)).all()
    copies = [r for r in rows if r.calibration_set]
    own = {r.item_id: r for r in rows if not r.calibration_set}
    assert copies and not any(r.is_audit or r.audit_inclusion is not None for r in copies)
    assert set(own) == set(items)  # one case of its own per item, drawn or not by its own key alone
    assert {i for i, r in own.items() if r.is_audit} == {i for i in items if audit_draw(both, i, "scam", 0.9)[0]}


def _three_raters(store, taxonomy, cfg):
    """Three items rated by ann, bob, cat: it1 x x x, it2 x x y, it3 y y y (x = scam, y = spam)."""
    three = cfg.model_copy(update={"calibration_sets": [CalibrationSet(name="c3", share=1.0, reviewers=3)]})
    _build(store, taxonomy, three, items=("it1", "it2", "it3"))
    labels = {"it1": ("scam", "scam", "scam"), "it2": ("scam", "scam", "spam"), "it3": ("spam", "spam", "spam")}
    for item, answers in labels.items():
        for copy, who, label in zip(_copies(store, item, "c3"), ("ann", "bob", "cat"), answers):
            _answer(store, taxonomy, three, copy, who, label)


def test_agreement_figures_by_hand(any_store, taxonomy, cfg):
    """Fleiss: P_e = (5/9)^2 + (4/9)^2 = 41/81, mean P_i = (1 + 1/3 + 1) / 3 = 63/81, kappa = 22/40.
    ann's peer pairs: 5 of 6 equal, Cohen's kappa (5/6 - 1/2) / (1/2) = 2/3; cat's 4 of 6,
    kappa (2/3 - 4/9) / (5/9) = 2/5. No decision of record: gold agreement has not enough data."""
    from core.principals import Principal
    from evaluation.analysts import analyst_quality
    from evaluation.config import load_evaluation_config
    from evaluation.report import agreement

    _three_raters(any_store, taxonomy, cfg)
    fleiss = agreement(any_store)["c3"]
    assert fleiss["method"] == "fleiss" and fleiss["items"] == 3 and fleiss["kappa"] == pytest.approx(22 / 40)
    rows = {r["analyst"]: r for r in analyst_quality(any_store, Principal("lea", "lead"),
                                                     load_evaluation_config(config_dir()))["analysts"]}
    assert sorted(rows) == ["ann", "bob", "cat"]
    ann, cat = rows["ann"]["peer_agreement"], rows["cat"]["peer_agreement"]
    assert (ann["k"], ann["n"]) == (5, 6) and ann["kappa"] == pytest.approx(2 / 3)
    assert (cat["k"], cat["n"]) == (4, 6) and cat["kappa"] == pytest.approx(0.4)
    gold = rows["ann"]["gold_agreement"]
    assert gold["n"] == 0 and gold["estimate"] is None and gold["kappa"] is None
    assert "not enough data" in gold["kappa_note"]


def test_one_rater_is_not_enough_data_never_nan(any_store, taxonomy, cfg):
    import math

    from core.principals import Principal
    from evaluation.analysts import analyst_quality
    from evaluation.config import load_evaluation_config
    from evaluation.report import agreement

    _build(any_store, taxonomy, cfg)
    _answer(any_store, taxonomy, cfg, _copies(any_store)[0], "ann", "scam")
    one = agreement(any_store)["c1"]
    assert one["kappa"] is None and one["kappa_note"]
    row = analyst_quality(any_store, Principal("lea", "lead"), load_evaluation_config(config_dir()))["analysts"]
    assert [r["analyst"] for r in row] == ["ann"]
    for key in ("peer_agreement", "gold_agreement"):
        fig = row[0][key]
        assert fig["n"] == 0 and "not enough data" in fig["kappa_note"]
        assert not any(isinstance(v, float) and math.isnan(v) for v in fig.values())


def test_an_analyst_reads_no_analysts_figures(any_store, taxonomy, cfg, roles):
    from core.hooks import PermissionDenied
    from core.principals import Principal
    from evaluation.analysts import analyst_quality
    from evaluation.config import load_evaluation_config

    _build(any_store, taxonomy, cfg)
    _answer(any_store, taxonomy, cfg, _copies(any_store)[0], "bob", "scam")
    config = load_evaluation_config(config_dir())
    for who in (None, "bob", "ann"):
        with pytest.raises(PermissionDenied, match="analyst_quality"):
            analyst_quality(any_store, Principal("ann", "analyst"), config, analyst=who)
    assert analyst_quality(any_store, Principal("lea", "lead"), config, analyst="bob")["analysts"][0]["analyst"] == "bob"


def test_a_second_sets_copy_opened_by_id_is_refused_to_who_answered_the_item(any_store, taxonomy, cfg):
    """`n` no longer serves it (`exclude_calibration_siblings`), but a copy of another set opened
    by id was still answered: the same analyst's second, no longer blind, answer to one item."""
    from labeling.errors import DecisionError

    two = cfg.model_copy(update={"calibration_sets": [CalibrationSet(name="c1", share=1.0, reviewers=2),
                                                      CalibrationSet(name="c2", share=1.0, reviewers=2)]})
    _build(any_store, taxonomy, two)
    first, second = _copies(any_store, cal_set="c1")[0], _copies(any_store, cal_set="c2")[0]
    _answer(any_store, taxonomy, two, first, "ann", "scam")
    claim_case(any_store, second, "ann", two, now=LATER)
    with pytest.raises(DecisionError, match="already answered item 'it1'"):
        DEC.decide(any_store, taxonomy, second, "ann", "scam", config=two, now=LATER)


def test_the_decisions_feed_shows_no_calibration_answer_to_an_analyst(any_store, taxonomy, cfg):
    """GET /api/v1/decisions (`read`) listed every calibration answer, reviewer and label: an
    analyst holding a copy read their peers' answers before giving theirs (not blind), and a
    consumer of the feed read the copies as decisions."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from core.accounts import add_user, create_token
    from core.permissions import load_roles
    from workbench.api import create_app
    from workbench.context import AppContext

    roles = load_roles(config_dir())
    tokens = {}
    for name, role in (("ada", "admin"), ("ann", "analyst"), ("lea", "lead")):
        add_user(any_store, name, role, actor="setup", roles=roles, password="correct horse battery")
        tokens[name] = create_token(any_store, name, actor="setup")["token"]
    _build(any_store, taxonomy, cfg)
    first, second = _copies(any_store)
    _answer(any_store, taxonomy, cfg, first, "bob", "spam")
    claim_case(any_store, second, "ann", cfg, now=LATER)
    client = TestClient(create_app(AppContext(store=any_store)))
    feed = client.get("/api/v1/decisions", headers={"Authorization": f"Bearer {tokens['ann']}"})
    assert feed.status_code == 200 and feed.json()["decisions"] == []
    lead = client.get("/api/v1/decisions", headers={"Authorization": f"Bearer {tokens['lea']}"})
    assert [d["kind"] for d in lead.json()["decisions"]] == ["calibration"]
