"""The auto-retrain override-rate alarm (`evaluation.promotion.retrain_due`, `auto_retrain` of
configs/models.yaml): due when analysts override the champion's suggestions at or above
`override_rate_alarm` over at least `alarm_min_decisions`, with the rate in the reason; not due
below it, under the minimum, or on another model's suggestions; off by default."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case
from evaluation.promotion import retrain_due
from labeling.cases import build_cases, suggestion
from labeling.decisions import decide
from labeling.queue_config import load_queue_config
from models.config import AutoRetrainSettings, load_models_config
from models.registry import train_model
from models.scoring import score_items
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus

BASE = load_models_config()
MODELS = BASE.model_copy(update={"kinds": {**BASE.kinds, "tfidf_lr": {"min_df": 1}},
                                 "training": BASE.training.model_copy(update={"default_kind": "tfidf_lr"})})


def alarm(rate, min_decisions=20, **more):
    """Auto-retrain on, the override alarm at `rate`; the decision-count trigger out of reach."""
    return MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(update={
        "enabled": True, "after_decisions": 10_000, "override_rate_alarm": rate,
        "alarm_min_decisions": min_decisions, **more})})


@pytest.fixture
def reviewing(any_store, taxonomy):
    """A champion that scored 100 toy items, their cases built, and `review(n, overrides)`: ann
    decides the next n open cases, overriding the champion's suggestion on the first `overrides`."""
    store = any_store
    texts, ys = toy_corpus(20, seed=2)
    ids = add_items(store, texts, [None] * len(texts))
    champ = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1},
                        data=TrainingSet(ids, texts, ys, ["source"] * len(ids)), promote_if="always",
                        show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=champ, show_progress=False)
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                "qa_share": 0.0})
    build_cases(store, taxonomy, cfg, progress=False)

    def review(n, overrides):
        with store.read() as conn:
            cases = conn.execute(select(Case.__table__).where(Case.__table__.c.state == "open",
                                                              Case.__table__.c.item_id.is_not(None))
                                 .order_by(Case.__table__.c.id).limit(n)).mappings().all()
            shown = [suggestion(conn, c)["label"] for c in cases]
        assert len(cases) == n
        for k, (case, model_label) in enumerate(zip(cases, shown)):
            label = next(lab for lab in taxonomy.policies if lab != model_label) if k < overrides else model_label
            view = decide(store, taxonomy, case["id"], "ann", label, rationale="test", config=cfg)
            assert view["is_override"] is (k < overrides)

    return store, champ, review


def test_above_the_alarm_is_due_and_names_the_override_rate(reviewing):
    store, champ, review = reviewing
    review(20, overrides=10)                                     # 0.50 on the champion's suggestions
    due = retrain_due(store, alarm(0.3))
    assert due["due"] is True and due["champion"] == champ
    assert (due["champion_decisions"], due["override_rate"]) == (20, 0.5)
    assert due["reason"] == "override rate 0.500 on 20 decisions >= alarm 0.3"
    assert retrain_due(store, alarm(0.5))["due"] is True        # at the threshold counts
    review(20, overrides=0)                                      # 10 of 40: 0.25, now below
    below = retrain_due(store, alarm(0.3))
    assert below["due"] is False and below["override_rate"] == 0.25
    assert "override rate 0.25 (alarm 0.3)" in below["reason"]


def test_below_the_alarm_or_the_minimum_is_not_due(reviewing):
    store, _, review = reviewing
    review(20, overrides=5)                                      # 0.25
    assert retrain_due(store, alarm(0.3))["due"] is False
    assert retrain_due(store, alarm(0.2))["due"] is True
    few = retrain_due(store, alarm(0.2, min_decisions=21))       # the rate is over, the evidence too thin
    assert few["due"] is False and few["champion_decisions"] == 20


def test_overrides_of_an_earlier_champion_do_not_count(reviewing, taxonomy):
    store, champ, review = reviewing
    review(20, overrides=20)
    assert retrain_due(store, alarm(0.3))["due"] is True
    texts, ys = toy_corpus(20, seed=2)
    ids = add_items(store, texts, [None] * len(texts), prefix="new")
    newer = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1},
                        data=TrainingSet(ids, texts, ys, ["source"] * len(ids)), promote_if="always",
                        show_progress=False)["id"]
    after = retrain_due(store, alarm(0.3))
    assert after["champion"] == newer != champ
    assert after["due"] is False and after["champion_decisions"] == 0 and after["override_rate"] is None


def test_the_alarm_is_off_by_default(reviewing):
    store, _, review = reviewing
    review(20, overrides=20)                                     # every suggestion overridden
    assert AutoRetrainSettings().override_rate_alarm is None and AutoRetrainSettings().enabled is False
    assert BASE.auto_retrain.override_rate_alarm is None and BASE.auto_retrain.enabled is False  # models.yaml
    assert retrain_due(store, BASE) == {"due": False, "reason": "auto_retrain.enabled is false"}
    on = retrain_due(store, alarm(None))                         # auto-retrain on, the alarm left unset
    assert on["due"] is False and on["override_rate"] == 1.0 and "(alarm None)" in on["reason"]
