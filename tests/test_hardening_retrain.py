"""Hardening of retrain and promote behind a gate (issue 18): a one-class evaluation set does not
gate, decisions taken back with undo do not make a retrain due, a later verdict on a version keeps
the earlier verdict's report, a rescore leaves no open case on the old champion (cases opened
during it included), the first champion through `models promote` rescores the open cases, and
`models train --promote` never replaces a champion made meanwhile without the gate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

import labeling.training_data
from core import audit
from core.predictions import champion_version
from core.schema import AuditEvent, Case, Decision, utcnow
from evaluation.compare import gate, paired_bootstrap
from evaluation.promotion import promote_through_gate, retrain_and_gate, retrain_due
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.decisions import decide
from labeling.rescore import rescore_open_cases, stale_open_cases
from labeling.undo import undo_last
from models.registry import train_model
from models.scoring import score_items
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus
from test_override_alarm import alarm, reviewing  # noqa: F401 - `reviewing`: the fixture
from test_promotion_gate import FAST, MODELS, _rotated, make_loop


@pytest.fixture
def loop(sqlite_store, taxonomy, queue_config):
    """test_promotion_gate's store: a champion that learned every label wrong, cases, 240 decisions."""
    return make_loop(sqlite_store, taxonomy, queue_config)


def _cli(store, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), *args], catch_exceptions=False)


def _gate_verdicts(store):
    with store.read() as conn:
        return conn.execute(select(AuditEvent.entity_id, AuditEvent.payload)
                            .where(AuditEvent.action == "model.gate").order_by(AuditEvent.id)).all()


# -- the gate: a set of one class tells nothing apart ------------------------------------------
def test_a_one_class_evaluation_set_is_reported_not_gating():
    """Every held-out label benign: a challenger calling everything benign had a perfect macro F1
    and Brier score there and passed (McNemar too) over a champion that still tells spam apart."""
    labels = ["benign", "spam", "scam"]
    rng = np.random.default_rng(0)
    n = 80
    y = np.zeros(n, dtype=int)
    pred_a = np.where(rng.random(n) < 0.8, 0, 1)
    pa = np.eye(3)[pred_a] * 0.8 + 0.1
    pred_b = np.zeros(n, dtype=int)
    pb = np.tile([0.98, 0.01, 0.01], (n, 1))
    comp = paired_bootstrap(y, pa, pb, pred_a, pred_b, labels, groups=[f"g{i}" for i in range(n)], n_boot=300)
    assert comp["classes"] == 1
    for metric in ("macro_f1", "brier"):
        v = gate({"test_split": comp}, metric, 0.0, 30, 0.05, "mid_p")
        assert v["passed"] is False and v["sets"]["test_split"]["gating"] is False, v["reason"]
        assert "all of one class" in v["reason"] and "not promoted" in v["reason"]
    # Two classes, the same sizes: the set gates again (and a clearly better challenger passes).
    y2 = np.where(np.arange(n) % 2 == 0, 0, 1)
    pb2 = np.eye(3)[y2] * 0.9 + 0.05
    comp2 = paired_bootstrap(y2, pa, pb2, pred_a, y2, labels, groups=[f"g{i}" for i in range(n)], n_boot=300)
    assert comp2["classes"] == 2 and gate({"test_split": comp2}, "macro_f1", 0.0, 30, 0.05, "mid_p")["passed"]


# -- the automatic retrain counts decisions that stand ------------------------------------------
def _scored_cases(store, taxonomy, queue_config):
    """A tfidf_lr champion scoring 10 toy items, their cases built (no calibration, no QA): the
    queue config the cases were built with."""
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, [None] * len(texts))
    champ = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST,
                        data=_rotated(TrainingSet(ids, texts, ys, ["source"] * len(ids))), promote_if="always",
                        show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=champ, show_progress=False)
    cfg = queue_config.model_copy(update={"calibration_sets": [], "qa_share": 0.0})
    build_cases(store, taxonomy, cfg, progress=False)
    return cfg


def test_decisions_taken_back_with_undo_do_not_make_a_retrain_due(sqlite_store, taxonomy, queue_config):
    store = sqlite_store
    cfg = _scored_cases(store, taxonomy, queue_config)
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(update={
        "enabled": True, "after_decisions": 6, "override_rate_alarm": 0.5, "alarm_min_decisions": 6})})
    done = 0
    for queue in cfg.queues:
        while done < 8 and (case := next_case(store, "ann", queue, config=cfg)) is not None:
            decide(store, taxonomy, case["id"], "ann", "benign", "no_action", rationale="fine", config=cfg)
            undo_last(store, "ann", cfg, 120)   # taken back at once: no label changed
            done += 1
    assert done == 8
    due = retrain_due(store, on)
    assert due["due"] is False, due["reason"]
    assert due["new_decisions"] == 0 and due["champion_decisions"] == 0 and due["override_rate"] is None


def test_a_corrected_decision_counts_once_toward_an_automatic_retrain(sqlite_store, taxonomy, queue_config):
    """Four decisions each corrected once counted as eight new decisions (and eight of the
    champion's for the override rate): the retrain was due at six with four labels."""
    from labeling.decisions import correct

    store = sqlite_store
    cfg = _scored_cases(store, taxonomy, queue_config)
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(update={
        "enabled": True, "after_decisions": 6, "override_rate_alarm": 0.99, "alarm_min_decisions": 100})})
    done = 0
    for queue in cfg.queues:
        while done < 4 and (case := next_case(store, "ann", queue, config=cfg)) is not None:
            made = decide(store, taxonomy, case["id"], "ann", "benign", "no_action", rationale="fine", config=cfg)
            correct(store, taxonomy, made["decision_ids"][0], "ann", "spam", "on second look")
            done += 1
    assert done == 4
    due = retrain_due(store, on)
    assert due["new_decisions"] == 4 and due["champion_decisions"] == 4 and due["due"] is False, due


# -- reports: one folder per verdict ----------------------------------------------------------
def test_a_later_verdict_on_the_same_version_keeps_the_first_report(loop, taxonomy):
    store, champ, ids = loop
    texts, ys = toy_corpus(60, seed=4)
    weak = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={**FAST, "C": 1e-6},
                       data=_rotated(TrainingSet(ids, texts, ys, ["source"] * len(ids))), promote_if="never",
                       show_progress=False)["id"]
    first = promote_through_gate(store, taxonomy, weak, models_config=MODELS, queue_config=None, actor="eng",
                                 rescore="none", show_progress=False)
    assert not first["promoted"]
    kept = Path(first["report"]).read_text()
    second = promote_through_gate(store, taxonomy, weak, models_config=MODELS, queue_config=None, actor="eng",
                                  force=True, reason="rollback drill", rescore="none", show_progress=False)
    assert second["promoted"] and second["forced"]
    audited = [p["report"] for _, p in _gate_verdicts(store)]
    assert audited == [first["report"], second["report"]] and first["report"] != second["report"]
    assert Path(first["report"]).read_text() == kept and "not promoted" in kept
    assert "forced by eng" in Path(second["report"]).read_text()
    assert Path(second["report"]).parent.name == f"promotion-{weak}-2"


# -- rescoring: no open case is left on the old champion --------------------------------------
def test_cases_opened_during_the_rescore_get_the_new_champions_prediction(loop, taxonomy, queue_config):
    """Items the old champion scored but no case held yet at the promotion: the rescore's own
    `build_cases` opened their cases from the old prediction, and 25 were left stale."""
    store, champ, _ = loop
    texts, _ = toy_corpus(5, seed=99)
    add_items(store, texts, [None] * len(texts), prefix="late")
    score_items(store, taxonomy, config=MODELS, model_version=champ, show_progress=False)  # not cased yet
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                           show_progress=False)
    assert out["promoted"] and out["rescore"]["new_cases"] > 0
    assert out["rescore"]["stale_left"] == 0 and stale_open_cases(store, queue_config) == []
    with store.read() as conn:
        late = conn.execute(select(Case.model_version).where(Case.item_id.like("late:%"))).scalars().all()
    assert late and set(late) == {out["challenger"]}
    again = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                               progress=False)
    assert again["scored"] == 0 and again["stale_left"] == 0


def test_the_first_champion_through_models_promote_rescores_the_open_cases(sqlite_store, taxonomy, queue_config):
    """Cases built on another model's predictions (`score --model X`, `cases build`) stayed on X
    when `models promote Y` made Y the first champion: no rescore ran on that path."""
    store = sqlite_store
    texts, ys = toy_corpus(12, seed=4)
    ids = add_items(store, texts, [None] * len(texts))
    data = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    x = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=_rotated(data),
                    promote_if="never", show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=x, show_progress=False)
    build_cases(store, taxonomy, queue_config, progress=False)
    y = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=data,
                    promote_if="never", show_progress=False)["id"]
    out = promote_through_gate(store, taxonomy, y, models_config=MODELS, queue_config=queue_config, actor="eng",
                               show_progress=False)
    assert out["promoted"] and out["champion"] is None and out["rescore"]["scored"] == len(ids)
    assert out["rescore"]["stale_left"] == 0 and stale_open_cases(store, queue_config) == []


# -- models train --promote: the gate, the first champion included ----------------------------
def test_models_train_promote_is_gated_against_a_champion_made_while_it_trained(sqlite_store, taxonomy,
                                                                              monkeypatch):
    """No champion when the command started; another host promoted one while it trained. The
    command used to promote its (weak) model over that champion with no comparison at all."""
    store = sqlite_store
    texts, ys = toy_corpus(30, seed=4)
    ids = add_items(store, texts, ys)
    real, other = labeling.training_data.learning_data, []

    def racing(*a, **k):
        out = real(*a, **k)
        if not other:  # the other host's first champion lands now
            other.append(train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST,
                                     data=TrainingSet(ids, texts, ys, ["source"] * len(ids)),
                                     promote_if="no_champion", show_progress=False)["id"])
        return out

    monkeypatch.setattr(labeling.training_data, "learning_data", racing)
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--param", "C=0.0001",
               "--promote", "--no-rescore", "--json")
    mine = json.loads(res.stdout)["id"]
    with store.read() as conn:
        assert champion_version(conn) == other[0] != mine
    assert [v for v, _ in _gate_verdicts(store)] == [mine]   # compared with it, and refused
    assert res.exit_code == 1, res.output


def test_after_a_refused_retrain_the_override_alarm_reads_the_decisions_since_it(reviewing):  # noqa: F811
    """The alarm's rate was the champion's lifetime one: after a refused retrain, 20 fresh decisions
    agreeing with the champion re-fired it (20 overridden of 40 in its lifetime, over 0.3)."""
    store, champ, review = reviewing
    review(20, overrides=20)
    assert retrain_due(store, alarm(0.3))["due"] is True
    with store.begin() as conn:  # the verdict of a retrain the gate refused, as compare_and_promote audits it
        audit.record(conn, "eng", "model.gate", "model_version", "refused-challenger",
                     {"champion": champ, "passed": False, "reason": "refused"})
    review(20, overrides=0)
    calm = retrain_due(store, alarm(0.3))
    assert calm["due"] is False and calm["override_rate"] == 0.0 and calm["champion_decisions"] == 20
    review(20, overrides=20)                  # fresh evidence: 20 of 40 since the verdict
    again = retrain_due(store, alarm(0.3))
    assert again["due"] is True and again["override_rate"] == 0.5


# -- the training data: what it leaves out is said ---------------------------------------------
def test_labels_outside_the_taxonomy_are_named_when_training_leaves_them_out(sqlite_store, taxonomy):
    """Human labels of a policy no longer in the taxonomy (renamed after analysts used it) were
    dropped from `retrain` and `models train` with nothing printed but the counts kept."""
    store = sqlite_store
    texts, ys = toy_corpus(12, seed=4)
    ids = add_items(store, texts, ys)
    with store.begin() as conn:
        for i in ids[:9]:
            conn.execute(insert(Decision.__table__).values(item_id=i, label="phishing", action="remove",
                                                           kind="review", reviewer="ann", taxonomy_version="old",
                                                           created_at=utcnow()))
    lines: list[str] = []
    retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                     rescore="none", show_progress=False, echo=lambda *a, **k: lines.append(str(a[0]) if a else ""))
    assert any("left out: unknown label phishing 9" in line for line in lines), lines
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--no-promote", "--json")
    assert res.exit_code == 0, res.output
    assert "warning: left out: unknown label phishing 9" in res.stderr


# -- who may promote must be allowed to rescore, checked before any work ------------------------
def test_a_promotion_that_would_rescore_checks_the_rescore_permissions_first(sqlite_store, taxonomy, queue_config,
                                                                              roles):
    """A token scoped to train and promote: the retrain promoted, then its rescore was refused,
    so the command failed after the promotion and every open case stayed on the old champion."""
    from core.hooks import PermissionDenied
    from core.principals import Principal
    from test_rescore_progress import LoopContext
    from workbench.learning import start_retrain

    store = sqlite_store
    scoped = Principal("erin", "engineer", "user", ("train", "promote"))
    with pytest.raises(PermissionDenied, match="needs permission 'score'"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor=scoped,
                         show_progress=False)
    no_build = Principal("erin", "engineer", "user", ("train", "promote", "score"))
    with pytest.raises(PermissionDenied, match="needs permission 'build_cases'"):
        promote_through_gate(store, taxonomy, "any", models_config=MODELS, queue_config=queue_config,
                             actor=no_build, show_progress=False)
    app = LoopContext(store=store)
    with pytest.raises(PermissionDenied, match="needs permission 'build_cases'"):
        start_retrain(app, no_build)
    assert app.retrain_job is None
    # Without a rescore nothing more is needed than train and promote.
    with pytest.raises(Exception, match="no labelled items"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor=scoped, rescore="none",
                         show_progress=False)
    with store.read() as conn:
        assert conn.execute(select(AuditEvent.id).where(AuditEvent.action == "model.train")).first() is None
