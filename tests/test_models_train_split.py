"""Every model trained from the store fits on the campaign-grouped train side (issue 18: training
data without leakage). `workbench models train` used to split by item, so a version it trained had
seen most of the items the gate then tested it on: `models train --promote` could pass the gate
with a model no better than chance on anything it had not memorised."""
from __future__ import annotations

import json
import random

import numpy as np
from click.testing import CliRunner
from sqlalchemy import insert

from core.predictions import champion_version
from core.schema import Decision, utcnow
from labeling.training_data import learning_data
from models.registry import get_model, train_model
from test_models_fixtures import add_items, toy_corpus
from test_promotion_gate import FAST, MODELS

LABELS = ("benign", "spam", "scam")


def _noise_store(store):
    """400 items of unique words, each decided with a label drawn at random: nothing about an
    item's text says anything about another's label, so on items a model never saw every model
    is at chance, and only memorising can look better."""
    rng = random.Random(3)
    texts = [f"w{i}a w{i}b w{i}c" for i in range(400)]
    ids = add_items(store, texts, [None] * len(texts))
    with store.begin() as conn:
        for i in ids:
            conn.execute(insert(Decision.__table__).values(item_id=i, label=rng.choice(LABELS), action="none",
                                                           kind="review", reviewer="ann", taxonomy_version="t",
                                                           created_at=utcnow()))
    return ids


def _cli(store, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), *args], catch_exceptions=False)


def test_models_train_fits_the_grouped_train_side_and_cannot_pass_the_gate_by_memorising(sqlite_store, taxonomy):
    store = sqlite_store
    _noise_store(store)
    ld = learning_data(store, taxonomy, MODELS.learning, "eng")
    train, validation = ld.fit_sets(MODELS.training.seed)
    test_ids = set(validation.ids)
    assert test_ids and not test_ids & set(train.ids)
    champ = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=train,
                        validation=validation, promote_if="always", show_progress=False)["id"]

    # A memorising challenger (every word its own feature, almost no regularisation).
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--param", "C=1000",
               "--promote", "--json")
    assert res.exit_code == 1, res.output  # refused by the gate
    out = json.loads(res.stdout)
    row = get_model(store, out["id"])
    # It fitted exactly the train side and was measured on the test side, as a retrain is ...
    assert row["metrics"]["n_validation"] == len(validation) and row["metrics"]["split_seed"] is None
    assert row["data_fingerprint"] == learning_data(store, taxonomy, MODELS.learning, "eng") \
        .fit_sets(MODELS.training.seed)[0].fingerprint()
    # ... so on the gate's items it is at chance, like the champion, and stays a challenger.
    assert row["metrics"]["accuracy"] < 0.6
    assert out["role"] == "challenger", out["gate"]
    with store.read() as conn:
        assert champion_version(conn) == champ


def test_first_champion_from_models_train_never_saw_a_test_side_item(sqlite_store, taxonomy):
    """The first `models train` stores the sides it used, so a later retrain's gate tests the
    champion only on items it never trained on."""
    store = sqlite_store
    _noise_store(store)
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--json")
    assert res.exit_code == 0, res.output
    first = get_model(store, json.loads(res.stdout)["id"])
    assert first["role"] == "champion"
    ld = learning_data(store, taxonomy, MODELS.learning, "eng")
    train, validation = ld.fit_sets(MODELS.training.seed)
    assert first["data_fingerprint"] == train.fingerprint()
    assert first["metrics"]["n_validation"] == len(validation) == int((ld.split == "test").sum())
    assert np.isin(np.array(validation.ids), np.array(train.ids)).sum() == 0


def test_a_champion_from_an_item_level_split_is_named_beside_the_verdict(sqlite_store, taxonomy, queue_config,
                                                                          tmp_path):
    """A version registered before this rule (an item-level split: its metrics keep `split_seed`)
    may have seen the gate's items; the verdict, the report and the audit say so."""
    from evaluation.promotion import retrain_and_gate

    store = sqlite_store
    _noise_store(store)
    legacy = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, promote_if="always",
                         show_progress=False)
    assert legacy["metrics"]["split_seed"] is not None
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                           promote=False, rescore="none", report_dir=str(tmp_path), show_progress=False)
    assert out["warnings"] == [f"{legacy['id']} was trained on an item-level split: it may have seen items of "
                               f"this comparison, which flatters its figures"]
    assert "**Warning:** " + out["warnings"][0] in (tmp_path / "comparison.md").read_text()
    assert get_model(store, out["challenger"])["metrics"]["split_seed"] is None
    # A version fitted on the train side while the test side was still empty was validated on a
    # seeded split of that side: it never saw a test-side item, and is not named.
    from evaluation.promotion import item_split_warning

    assert item_split_warning({"id": "v", "metrics": {"split_seed": 13, "train_side_only": True}}) is None
    assert item_split_warning({"id": "v", "metrics": {"split_seed": None}}) is None
    assert item_split_warning({"id": "v", "metrics": {"split_seed": 13}}).startswith("v was trained on an item-level")
    # The Models tab and `models gates` read the warning back from the audit log.
    from evaluation.model_overview import gate_verdicts
    from workbench.ui.models import verdict_rows

    verdict = gate_verdicts(store, "eng", limit=1)[0]
    assert verdict["warnings"] == out["warnings"]
    assert f" | warning: {legacy['id']} was trained on an item-level split" in verdict_rows([verdict])[0][5]
    res = _cli(store, "models", "gates", "--limit", "1")
    assert res.exit_code == 0 and f"warning: {legacy['id']} was trained on an item-level split" in res.output


def test_storing_sides_before_any_campaign_exists_is_warned(sqlite_store, taxonomy):
    """Sides stored while nothing is clustered group exact texts only: a campaign formed later
    over both sides leaves out its test-side members. `models train` says so, once."""
    from sqlalchemy import insert as sa_insert

    from core.schema import Campaign, CampaignMember

    store = sqlite_store
    _noise_store(store)
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--json")
    assert res.exit_code == 0 and "warning: 400 items got their train/test side while the store has no campaign" \
        in res.stderr and "`workbench cluster` before the first training" in res.stderr
    json.loads(res.stdout)  # the JSON on stdout is untouched
    assert learning_data(store, taxonomy, MODELS.learning, "eng").stats["warnings"] == []  # nothing new stored
    # New labelled items on a clustered store (a campaign of unlabelled items): no warning.
    add_items(store, ["v1 fresh text", "v2 fresh text"], ["spam", "benign"], prefix="more")
    unlabelled = add_items(store, ["x1 wave text", "x2 wave text"], [None, None], prefix="wave")
    with store.begin() as conn:
        conn.execute(sa_insert(Campaign.__table__).values(id=1, exemplar_item_id=unlabelled[0], size=2))
        conn.execute(sa_insert(CampaignMember.__table__), [{"item_id": i, "campaign_id": 1} for i in unlabelled])
    assert learning_data(store, taxonomy, MODELS.learning, "eng").stats["warnings"] == []


def test_an_export_that_stores_sides_before_any_campaign_exists_is_warned(sqlite_store, tmp_path):
    _noise_store(sqlite_store)
    res = _cli(sqlite_store, "export", str(tmp_path / "out"), "--json")
    assert res.exit_code == 0, res.output
    assert "warning: 400 items got their train/test side while the store has no campaign" in res.stderr
    assert json.loads(res.stdout)["warnings"] and "warning" not in _cli(sqlite_store, "export", str(tmp_path / "again"),
                                                                        "--json").stderr  # stored once


def test_retrain_tune_weight_says_when_there_is_nothing_to_tune(sqlite_store):
    """With no human label on the train side there is nothing to fold: the command used to print
    `human weight 10.0 by 0-fold grouped cross-validation: ` as if it had tuned it."""
    texts, ys = toy_corpus(20, seed=2)
    add_items(sqlite_store, texts, ys)
    res = _cli(sqlite_store, "retrain", "--tune-weight", "--no-promote", "--kind", "tfidf_lr", "--param", "min_df=1")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("human weight"))
    assert line.startswith("human weight not tuned (0 human labels in 0 group(s) on the train side: nothing to fold)")
    assert line.endswith(f"keeping the configured {MODELS.learning.human_weight}")
