"""Hardening (retrain and export): the automatic retrain counts human decisions by decision id
after the last one the champion's data or the latest gate verdict held, never by the writing
server's clock (a web server 5 minutes behind the trainer wrote decisions that never counted
toward the retrain or the override alarm), and orders its failures after a verdict by audit id;
the label export needs `export` and its audit event says how many texts of each severity tier
left unmasked."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select, update

import core.audit
import models.registry
from core import audit
from core.schema import AuditEvent, Decision, ModelVersion, utcnow
from evaluation.promotion import record_retrain_failure, retrain_and_gate, retrain_due
from models.registry import train_model
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus
from test_promotion_gate import FAST, MODELS, make_loop

BEHIND = dt.timedelta(minutes=5)   # a web server's clock this far behind the trainer's


def _on(after=10_000, rate=None, min_decisions=20):
    return MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(update={
        "enabled": True, "after_decisions": after, "override_rate_alarm": rate, "alarm_min_decisions": min_decisions,
        "failure_backoff_seconds": 3600})})


def _max_decision(store):
    with store.read() as conn:
        return conn.execute(select(func.max(Decision.id))).scalar() or 0


def _trained_at(store, version):
    with store.read() as conn:
        return conn.execute(select(ModelVersion.created_at).where(ModelVersion.id == version)).scalar()


def _decide(store, ids, at, champ=None, override=False):
    """Human decisions on `ids`, stamped `at` (the writing server's clock), on `champ`'s suggestions."""
    with store.begin() as conn:
        for i in ids:
            conn.execute(insert(Decision.__table__).values(
                item_id=i, label="spam", action="remove", kind="review", reviewer="ann", taxonomy_version="t",
                model_version=champ, model_label="benign" if override else "spam", is_override=override,
                created_at=at))


def _store_champion(store, taxonomy, ids, texts, ys):
    """A champion trained from the store as `models train` trains one: its data's last decision id recorded."""
    return train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST,
                       data=TrainingSet(ids, texts, ys, ["source"] * len(ids)), train_side_only=True,
                       decisions_through=_max_decision(store), promote_if="always", show_progress=False)["id"]


# -- the decisions after the champion's data ---------------------------------------------------
def test_decisions_from_a_server_behind_the_trainer_count_toward_the_retrain_and_the_alarm(any_store, taxonomy):
    """20 decisions made after the champion, by a web server 5 minutes behind the trainer: stamped
    before the champion's created_at, they counted 0 new decisions and 0 for the override alarm."""
    store = any_store
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, ys)
    champ = _store_champion(store, taxonomy, ids, texts, ys)
    _decide(store, ids[:20], _trained_at(store, champ) - BEHIND, champ, override=True)
    due = retrain_due(store, _on(after=20))
    assert due["new_decisions"] == 20 and due["due"] is True, due
    alarm = retrain_due(store, _on(rate=0.5))
    assert (alarm["champion_decisions"], alarm["override_rate"], alarm["due"]) == (20, 1.0, True), alarm
    assert alarm["reason"] == "override rate 1.000 on 20 decisions >= alarm 0.5"


def test_decisions_the_champion_trained_on_do_not_count_whatever_their_stamp(any_store, taxonomy):
    """Decisions in the champion's data, written by a server 5 minutes ahead: stamped after the
    champion, they counted as new ones it had never seen."""
    store = any_store
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, ys)
    _decide(store, ids[:20], utcnow() + BEHIND)
    champ = _store_champion(store, taxonomy, ids, texts, ys)
    due = retrain_due(store, _on(after=20))
    assert due["new_decisions"] == 0 and due["due"] is False and due["after_decision"] == _max_decision(store), due
    _decide(store, ids[20:25], _trained_at(store, champ) - BEHIND)  # after it, whatever their stamp
    assert retrain_due(store, _on(after=20))["new_decisions"] == 5


@pytest.mark.parametrize("through", ["abc", True, -1, 2.5, None])
def test_a_champion_without_a_usable_recorded_id_keeps_the_time_rule(sqlite_store, taxonomy, through):
    """A registry row from before the id was recorded, or hand-edited: counted by time, no error."""
    store = sqlite_store
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, ys)
    champ = _store_champion(store, taxonomy, ids, texts, ys)
    with store.begin() as conn:
        metrics = conn.execute(select(ModelVersion.metrics).where(ModelVersion.id == champ)).scalar()
        conn.execute(update(ModelVersion.__table__).where(ModelVersion.id == champ)
                     .values(metrics={**metrics, "decisions_through": through}))
    at = _trained_at(store, champ)
    _decide(store, ids[:3], at - BEHIND)
    _decide(store, ids[3:7], at + dt.timedelta(seconds=1))
    due = retrain_due(store, _on(after=20))
    assert due["new_decisions"] == 4, due


# -- the decisions after the latest gate verdict -----------------------------------------------
def test_decisions_after_a_refused_verdict_count_by_id_not_by_the_verdicts_time(any_store, taxonomy, queue_config):
    """After a retrain the gate refused, 100 decisions from a server 5 minutes behind: stamped
    before the verdict, they never made the next retrain due."""
    store, champ, ids = make_loop(any_store, taxonomy, queue_config)
    on = _on(after=100)
    refused = retrain_and_gate(store, taxonomy, models_config=on, queue_config=None, actor="eng", promote=False,
                               rescore="none", show_progress=False)
    with store.read() as conn:
        gate_ts, payload = conn.execute(select(AuditEvent.ts, AuditEvent.payload)
                                        .where(AuditEvent.action == "model.gate")).one()
    through = _max_decision(store)
    assert retrain_due(store, on)["new_decisions"] == 0
    _decide(store, ids[:100], gate_ts - BEHIND)
    again = retrain_due(store, on)
    assert again["new_decisions"] == 100 and again["due"] is True, again
    assert payload["decisions_through"] == refused["data"]["decisions_through"] == through == again["after_decision"]


def test_decisions_made_while_the_challenger_trained_count_after_its_verdict(any_store, taxonomy, queue_config,
                                                                             monkeypatch):
    """Decisions made between the data's assembly and the verdict: the challenger never saw them,
    yet stamped before the verdict they were counted as answered by it."""
    store, champ, ids = make_loop(any_store, taxonomy, queue_config)
    real = models.registry.train_model

    def meanwhile(*a, **k):
        _decide(store, ids[:30], utcnow())
        return real(*a, **k)

    monkeypatch.setattr(models.registry, "train_model", meanwhile)
    retrain_and_gate(store, taxonomy, models_config=_on(), queue_config=None, actor="eng", promote=False,
                     rescore="none", show_progress=False)
    assert retrain_due(store, _on())["new_decisions"] == 30


def test_a_verdict_without_a_recorded_id_keeps_the_time_rule(sqlite_store, taxonomy):
    """A `model.gate` row from before the id was recorded, after a champion that has one: the
    decisions stamped before it are not counted again (the rule the refused retrain needs)."""
    store = sqlite_store
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, ys)
    _store_champion(store, taxonomy, ids, texts, ys)
    _decide(store, ids[:10], utcnow() - dt.timedelta(seconds=5))
    with store.begin() as conn:
        audit.record(conn, "eng", "model.gate", "model_version", "old-challenger", {"passed": False, "reason": "x"})
    assert retrain_due(store, _on(after=10))["new_decisions"] == 0
    _decide(store, ids[10:14], utcnow() + dt.timedelta(seconds=5))
    assert retrain_due(store, _on(after=10))["new_decisions"] == 4


# -- failed automatic retrains are counted after the verdict by audit order -------------------------
def test_failures_are_ordered_against_the_verdict_by_audit_id(any_store, taxonomy, queue_config, monkeypatch):
    """A failure audited by a host 10 minutes ahead, then a retrain by hand: the failure looked
    later than the verdict and kept backing off; one audited after the verdict by a host behind
    looked earlier and was not backed off from."""
    store, champ, _ = make_loop(any_store, taxonomy, queue_config)
    on = _on(after=100)
    real_now = core.audit.utcnow
    monkeypatch.setattr(core.audit, "utcnow", lambda: real_now() + dt.timedelta(minutes=10))
    record_retrain_failure(store, "system", "240 new human decisions", OSError("No space left on device"))
    monkeypatch.setattr(core.audit, "utcnow", real_now)
    assert retrain_due(store, on)["failed_retrains"] == 1
    retrain_and_gate(store, taxonomy, models_config=on, queue_config=None, actor="eng", promote=False,
                     rescore="none", show_progress=False)   # by hand, after the failure
    after = retrain_due(store, on)
    assert after["failed_retrains"] == 0 and "failed" not in after["reason"], after
    monkeypatch.setattr(core.audit, "utcnow", lambda: real_now() - dt.timedelta(minutes=10))
    record_retrain_failure(store, "system", "drift", OSError("No space left on device"))
    monkeypatch.setattr(core.audit, "utcnow", real_now)
    backing = retrain_due(store, on, now=utcnow())
    assert backing["failed_retrains"] == 1, backing


# -- the label export: what left unmasked, by tier ---------------------------------------------
def test_the_export_audit_counts_the_unmasked_texts_of_each_tier(any_store, taxonomy, tmp_path):
    """Every exported text leaves unmasked (training needs it raw), yet `labels.export` said only
    how many of each label: a lead could not see how much severe content an export handed out. A
    text counts at the most severe of its label, the decision's tier, the model's label when the
    analyst decided and the source's policy label; the dataset itself is unchanged."""
    import datasets

    from core.principals import Principal
    from labeling.export import COLUMNS, export_labels

    store = any_store
    texts = ["you people are vermin", "buy cheap pills", "send me your bank pin", "lol see you at 5",
             "nice weather today", "you are an idiot"]
    ids = add_items(store, texts, [None, "spam", None, None, "scam", None])
    decided = [("hate", "P1", "hate"), ("spam", "P3", "spam"), ("benign", None, "scam"), ("benign", None, "benign"),
               ("benign", None, "benign"), ("harassment", "P0", "harassment")]  # P0: the analyst's own tier
    with store.begin() as conn:
        for i, (label, severity, model_label) in zip(ids, decided):
            conn.execute(insert(Decision.__table__).values(
                item_id=i, label=label, action="remove", kind="review", reviewer="ann", taxonomy_version="t",
                severity=severity, model_label=model_label, is_override=label != model_label, created_at=utcnow()))
    summary = export_labels(store, taxonomy, tmp_path / "out", actor=Principal("erin", "engineer", "user"))
    # hate P1; spam P3; benign the model called scam P1; benign; benign of a source saying scam P1; P0
    want = {"P0": 1, "P1": 3, "P2": 0, "P3": 1, "none": 1}
    assert summary["unmasked_by_tier"] == want and summary["rows"] == 6
    with store.read() as conn:
        (event,) = conn.execute(select(AuditEvent.actor, AuditEvent.payload)
                                .where(AuditEvent.action == "labels.export")).all()
    assert event.actor == "erin" and event.payload["unmasked_by_tier"] == want
    ds = datasets.load_from_disk(summary["path"])
    assert ds.column_names == COLUMNS and sorted(ds["text"]) == sorted(texts)   # raw, as before


def test_a_failed_retrains_error_is_one_line_in_the_reason(sqlite_store, taxonomy):
    """A retrain that failed on the store (an SQLAlchemy error spans lines: the statement, the
    background link) made `retrain --if-due` and the Models tab print the reason over three lines,
    with any control character the message held."""
    store = sqlite_store
    texts, ys = toy_corpus(10, seed=2)
    ids = add_items(store, texts, ys)
    _store_champion(store, taxonomy, ids, texts, ys)
    record_retrain_failure(store, "system", "drift", RuntimeError(
        "(psycopg.errors.DiskFull) could not extend file\n[SQL: INSERT INTO model_versions]\n\x1b]52;c;aGk=\x07"))
    due = retrain_due(store, _on(after=1), now=utcnow())
    assert due["due"] is False and "could not extend file [SQL: INSERT INTO model_versions]" in due["reason"]
    assert "\n" not in due["reason"] and "\x1b" not in due["reason"] and "\\x1b" in due["reason"], due["reason"]
