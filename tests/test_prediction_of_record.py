"""One rule for which prediction counts (`core.predictions`): the champion's, a former champion's, any.

The defect this guards against: after `workbench score --model <challenger>` the review screen
suggested the challenger's label while a confirm was judged against the champion's, so a plain
confirm counted as an override, or was refused for lacking a rationale.
"""
from __future__ import annotations

from sqlalchemy import select

from core.predictions import champion_version, predictions_of_record
from core.schema import Case
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.decisions import decide
from labeling.packets import review_packet
from models.config import load_models_config
from models.registry import train_model
from models.scoring import score_items
from models.training import training_examples
from test_models_fixtures import add_items, toy_corpus

MODELS = load_models_config()
FAST = {"min_df": 1}


def _rotated(data, labels):
    """The same items with every label moved to the next policy: a challenger that disagrees."""
    nxt = {lab: labels[(i + 1) % len(labels)] for i, lab in enumerate(labels)}
    return type(data)(data.ids, data.texts, [nxt[y] for y in data.labels], data.origin, shares=data.shares)


def test_confirming_the_suggestion_after_a_challenger_scored_is_not_an_override(
        sqlite_store, taxonomy, queue_config, review_settings, campaign_settings):
    store = sqlite_store
    texts, ys = toy_corpus(10)
    add_items(store, texts, ys)
    champ = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=champ, show_progress=False)
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    build_cases(store, taxonomy, cfg, progress=False)

    data = training_examples(store, taxonomy, min_examples_per_label=1)
    challenger = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 2.0},
                             promote_if="never",
                             data=_rotated(data, sorted(set(data.labels))), show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=challenger, show_progress=False)  # `workbench score --model`
    build_cases(store, taxonomy, cfg, progress=False)

    with store.read() as conn:
        assert champion_version(conn) == champ
        record = predictions_of_record(conn, [f"toy:{i:05d}" for i in range(len(texts))])
        queues = sorted({q for (q,) in conn.execute(select(Case.queue).where(Case.state == "open"))})
    assert {p["model_version"] for p in record.values()} == {champ}

    decided = 0
    for queue in queues:
        case = next_case(store, "ann", queue, cfg, detail=False)
        if case is None:
            continue
        packet = review_packet(store, taxonomy, case["id"], review_settings, campaign_settings)
        assert packet["prediction"]["model_version"] == champ
        suggested = packet["suggested_label"]
        out = decide(store, taxonomy, case["id"], "ann", suggested, config=cfg)  # a plain confirm, no rationale
        assert out["is_override"] is False
        decided += 1
    assert decided >= 2


def test_without_a_champion_the_newest_prediction_counts(sqlite_store, taxonomy):
    texts, ys = toy_corpus(6)
    add_items(sqlite_store, texts, ys)
    first = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, promote_if="never",
                        show_progress=False)["id"]
    score_items(sqlite_store, taxonomy, config=MODELS, model_version=first, show_progress=False)
    second = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 0.5},
                         promote_if="never", show_progress=False)["id"]
    score_items(sqlite_store, taxonomy, config=MODELS, model_version=second, show_progress=False)
    with sqlite_store.read() as conn:
        assert champion_version(conn) is None
        record = predictions_of_record(conn, ["toy:00000", "toy:00001"])
    assert {p["model_version"] for p in record.values()} == {second}


def test_a_former_champions_prediction_outranks_a_never_promoted_challengers(any_store, taxonomy):
    """Items the champion never scored keep what a champion once said, not a shadow challenger's
    newer scores (the fallback took the newest of any model), in both readers of the rule."""
    from models.registry import promote
    from core.predictions import record_ids
    from core.schema import Prediction

    store = any_store
    texts, ys = toy_corpus(6)
    ids = add_items(store, texts, ys)
    first = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=first, show_progress=False)  # every item
    second = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 0.5},
                         promote_if="never", show_progress=False)["id"]
    promote(store, second)
    score_items(store, taxonomy, config=MODELS, model_version=second, limit=2, show_progress=False)
    shadow = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 2.0},
                         promote_if="never", show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=shadow, show_progress=False)  # newest rows
    P = Prediction.__table__
    with store.read() as conn:
        record = {i: p["model_version"] for i, p in predictions_of_record(conn, ids).items()}
        by_sql = dict(conn.execute(select(P.c.item_id, P.c.model_version).where(P.c.id.in_(record_ids(conn)))).all())
    assert record == by_sql
    assert sorted(record.values()).count(second) == 2
    assert set(record.values()) == {first, second}, record  # the shadow challenger counts nowhere


def test_only_a_challengers_prediction_still_counts(sqlite_store, taxonomy):
    """Nothing scored is left out: an item only a never-promoted model scored has that record."""
    from core.predictions import record_ids
    from core.schema import Prediction

    texts, ys = toy_corpus(6)
    ids = add_items(sqlite_store, texts, ys)
    champ = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST,
                        show_progress=False)["id"]
    score_items(sqlite_store, taxonomy, config=MODELS, model_version=champ, limit=3, show_progress=False)
    other = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 2.0},
                        promote_if="never", show_progress=False)["id"]
    score_items(sqlite_store, taxonomy, config=MODELS, model_version=other, show_progress=False)
    P = Prediction.__table__
    with sqlite_store.read() as conn:
        record = {i: p["model_version"] for i, p in predictions_of_record(conn, ids).items()}
        by_sql = dict(conn.execute(select(P.c.item_id, P.c.model_version).where(P.c.id.in_(record_ids(conn)))).all())
    assert record == by_sql and len(record) == len(ids)
    assert sorted(record.values()) == sorted([champ] * 3 + [other] * (len(ids) - 3))
