"""Registry (train, promote, retire, one champion, audit) and batch scoring (resumable, cached,
odd input), through the service layer and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from models import scoring as scoring_mod
from models.base import ModelError
from models.config import ModelsConfig, load_models_config
from models.registry import (
    RegistryError,
    champion,
    get_model,
    list_models,
    load_model_version,
    promote,
    retire,
    train_model,
)
from models.scoring import prepare_text, score_items
from test_models_fixtures import add_items, tiny_embedding_model, tiny_st_path, toy_corpus  # noqa: F401
from core import audit
from core.schema import AuditEvent, Embedding, Prediction
from core.text import text_hash

MODELS = load_models_config()
FAST = {"tfidf_lr": {"min_df": 1}}


def _config(**scoring) -> ModelsConfig:
    base = load_models_config()
    return base.model_copy(update={"scoring": base.scoring.model_copy(update=scoring)} if scoring else {})


def _count(store, table, **where) -> int:
    t = table.__table__
    q = select(func.count()).select_from(t)
    for k, v in where.items():
        q = q.where(t.c[k] == v)
    with store.read() as conn:
        return conn.execute(q).scalar()


@pytest.fixture
def labelled_store(any_store, taxonomy):
    texts, ys = toy_corpus(12)
    add_items(any_store, texts, ys)
    return any_store


# -- registry ------------------------------------------------------------------------------
def test_train_register_promote_retire(labelled_store, taxonomy):
    store = labelled_store
    first = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST["tfidf_lr"], show_progress=False)
    assert first["role"] == "champion"  # the first model of a store becomes champion
    assert first["kind"] == "tfidf_lr" and first["labels"] == taxonomy.labels
    assert first["taxonomy_version"] == taxonomy.version and len(first["data_fingerprint"]) == 64
    # The artifact is stored relative to the data directory, with the SHA-256 of its folder.
    assert first["artifact_path"] == f"models/{first['id']}" and len(first["artifact_sha256"]) == 64
    m = first["metrics"]
    assert m["n_train"] + m["n_validation"] == 60 and 0 <= m["ece"] <= 1 and set(m["per_label"]) == set(taxonomy.labels)
    folder = store.data_dir / first["artifact_path"]
    assert (folder / "reliability.png").stat().st_size > 1000 and (folder / "metrics.json").exists()

    second = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 1.0}, parent=first["id"],
                         show_progress=False)
    assert second["role"] == "challenger" and second["parent_id"] == first["id"]
    assert second["data_fingerprint"] == first["data_fingerprint"]
    assert promote(store, second["id"], actor="lead", reason="better")["previous"] == first["id"]
    roles = {r["id"]: r["role"] for r in list_models(store)}
    assert roles == {first["id"]: "challenger", second["id"]: "champion"}
    assert champion(store)["id"] == second["id"]

    with pytest.raises(RegistryError, match="is the champion"):
        retire(store, second["id"])
    assert retire(store, first["id"], reason="old")["changed"] is True
    assert [r["id"] for r in list_models(store, include_retired=False)] == [second["id"]]
    with pytest.raises(RegistryError, match="unknown model version"):
        promote(store, "nope")
    with pytest.raises(RegistryError, match="unknown model version"):
        train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", parent="nope", show_progress=False)

    with store.read() as conn:
        actions = [a for (a,) in conn.execute(select(AuditEvent.action).order_by(AuditEvent.id))]
        assert actions.count("model.train") == 2 and actions.count("model.promote") == 2
        assert "model.retire" in actions
        assert audit.verify(conn).ok


def test_training_needs_labels(sqlite_store, taxonomy):
    add_items(sqlite_store, ["unlabelled one", "unlabelled two"], [None, None])
    with pytest.raises(ModelError, match="no labelled items"):
        train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", show_progress=False)
    with pytest.raises(RegistryError, match="no champion"):
        score_items(sqlite_store, taxonomy, config=MODELS, show_progress=False)


def test_failed_training_leaves_no_row_or_folder(labelled_store, taxonomy, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("models.registry.plot_reliability", boom, raising=False)
    import models.metrics

    monkeypatch.setattr(models.metrics, "plot_reliability", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        train_model(labelled_store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST["tfidf_lr"], show_progress=False)
    assert list_models(labelled_store) == []
    assert not any((labelled_store.data_dir / "models").glob("*"))


# -- scoring -------------------------------------------------------------------------------
def test_scoring_is_resumable_and_never_rescores(labelled_store, taxonomy, monkeypatch):
    store = labelled_store
    version = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST["tfidf_lr"], show_progress=False)["id"]
    part = score_items(store, taxonomy, config=MODELS, chunk_size=7, limit=20, show_progress=False)
    assert part.scored == 20 and _count(store, Prediction) == 20

    # A crash in the third chunk: the two chunks before it stay written.
    real = scoring_mod.predict_rows
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(scoring_mod, "predict_rows", flaky)
    with pytest.raises(KeyboardInterrupt):
        score_items(store, taxonomy, config=MODELS, chunk_size=7, show_progress=False)
    assert _count(store, Prediction) == 34
    monkeypatch.setattr(scoring_mod, "predict_rows", real)

    rest = score_items(store, taxonomy, config=MODELS, chunk_size=7, show_progress=False)
    assert rest.scored == 26 and rest.skipped_already_scored == 34
    assert _count(store, Prediction) == 60 and _count(store, Prediction, model_version=version) == 60
    assert score_items(store, taxonomy, config=MODELS, show_progress=False).scored == 0
    with store.read() as conn:
        rows = conn.execute(select(Prediction.label, Prediction.score, Prediction.scores, Prediction.uncertainty,
                                   Prediction.taxonomy_version)).all()
    for label, score, scores, unc, tv in rows:
        assert set(scores) == set(taxonomy.labels) and abs(sum(scores.values()) - 1) < 1e-4
        assert scores[label] == pytest.approx(score, abs=1e-5) and 0 <= unc <= 1 and tv == taxonomy.version
    # New items are picked up by the next run, and only they.
    add_items(store, ["a brand new discount offer sale"], ["spam"], prefix="new")
    assert score_items(store, taxonomy, config=MODELS, show_progress=False).scored == 1


def test_odd_input_gets_a_defined_outcome(sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    odd = ["", "   \n\t ", "prize " * 5000, "claim your cash \ufffd\ufffd now"]
    ids = add_items(sqlite_store, odd, [None] * 4, prefix="odd")
    train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST["tfidf_lr"], show_progress=False)
    summary = score_items(sqlite_store, taxonomy, config=_config(max_chars=1000), show_progress=False)
    assert summary.flags == {"empty": 2, "truncated": 1, "windowed": 1, "undecodable": 1}
    with sqlite_store.read() as conn:
        got = {r.item_id: r for r in conn.execute(select(Prediction).where(Prediction.item_id.in_(ids)))}
    assert got[ids[0]].flags == {"empty": True} and got[ids[0]].label == "benign" and got[ids[0]].score == 1.0
    assert got[ids[1]].flags == {"empty": True}
    # 30,000 characters: read over 64 windows spread evenly (the cap), so some text went unread.
    assert got[ids[2]].flags == {"windowed": True, "windows": 64, "truncated": True, "original_chars": 30000}
    assert got[ids[2]].label == "scam" and abs(sum(got[ids[2]].scores.values()) - 1) < 1e-4
    assert got[ids[3]].flags == {"undecodable": True}
    p = prepare_text("x" * 10, max_chars=4, stored_hash="stale")
    assert p.text == "xxxx" and p.hash == text_hash("xxxx")
    # Bytes kept as surrogate escapes (files read with errors="surrogateescape") never reach the model.
    p = prepare_text("cash \udcff now", max_chars=100)
    assert p.flags == {"undecodable": True} and p.text == "cash \ufffd now"
    assert prepare_text("fine text", 100, stored_hash="h").hash == "h"


def test_duplicate_texts_are_encoded_once(tiny_embedding_model, sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    wave = ["URGENT you are a winner claim your cash prize now"] * 30 + ["urgent YOU are a winner  claim your cash prize now"] * 5
    add_items(sqlite_store, wave, [None] * len(wave), prefix="wave")
    row = train_model(sqlite_store, taxonomy, config=MODELS, kind="hybrid", params={"min_df": 1, "calibration_folds": 2},
                      show_progress=False)
    distinct_training = len({text_hash(t) for t in texts})
    assert _count(sqlite_store, Embedding) == distinct_training  # training embedded each labelled text once
    summary = score_items(sqlite_store, taxonomy, config=MODELS, show_progress=False)
    assert summary.scored == 40 + 35
    # 35 copies (case and spacing vary) encode once; the training texts come from the cache.
    assert summary.embeddings_encoded == 1 and summary.embeddings_cached == 74
    assert _count(sqlite_store, Embedding) == distinct_training + 1
    with sqlite_store.read() as conn:
        wave_scores = {json.dumps(s, sort_keys=True) for (s,) in conn.execute(
            select(Prediction.scores).where(Prediction.item_id.like("wave:%")))}
    assert len(wave_scores) == 1  # one text, one set of scores
    # A model loaded from the registry scores like the one trained.
    model, _ = load_model_version(sqlite_store, row["id"])
    assert model.embedder().model_id.startswith("tiny-st-")


def test_new_texts_are_encoded_and_cached_while_scoring(tiny_embedding_model, sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    train_model(sqlite_store, taxonomy, config=MODELS, kind="hybrid", params={"min_df": 1, "calibration_folds": 2},
                show_progress=False)
    before = _count(sqlite_store, Embedding)
    add_items(sqlite_store, ["fresh words here"] * 4 + ["other fresh words"], [None] * 5, prefix="fresh")
    summary = score_items(sqlite_store, taxonomy, config=MODELS, show_progress=False)
    assert summary.embeddings_encoded == 2 and _count(sqlite_store, Embedding) == before + 2


def test_ensemble_trains_registers_and_scores_through_the_cache(tiny_embedding_model, sqlite_store, taxonomy):
    """The ensemble reads embeddings through its hybrid member, checkpoints its transformer
    member under the store's checkpoints folder, and scores like any other version."""
    from test_models_fixtures import TINY_TRANSFORMER

    texts, ys = toy_corpus(12)
    add_items(sqlite_store, texts, ys)
    members = [{"kind": "hybrid", "params": {"min_df": 1, "calibration_folds": 2}},
               {"kind": "transformer", "params": {"init_config": TINY_TRANSFORMER, "max_steps": 10,
                                                  "batch_size": 8, "max_length": 16, "calibration_fraction": 0.0,
                                                  "torch_threads": 1}}]
    row = train_model(sqlite_store, taxonomy, config=MODELS, kind="ensemble", params={"members": members, "blend_fraction": 0.25},
                      show_progress=False)
    assert row["role"] == "champion" and row["metrics"]["n_validation"] > 0
    assert any(p.name.startswith("member-1-transformer") for p in sqlite_store.path("checkpoints").rglob("*"))
    model, _ = load_model_version(sqlite_store, row["id"])
    assert model.embedder().model_id.startswith("tiny-st-") and set(model.fit_info["weights"]) == {"0:hybrid", "1:transformer"}
    summary = score_items(sqlite_store, taxonomy, config=MODELS, show_progress=False)
    assert summary.scored == len(texts) and summary.embeddings_encoded == 0  # all from the training cache


# -- CLI -----------------------------------------------------------------------------------
def test_cli_train_list_show_promote_retire_score(sqlite_store, taxonomy):
    from workbench.cli import cli

    texts, ys = toy_corpus(12)
    add_items(sqlite_store, texts, ys)
    base = ["--data-dir", str(sqlite_store.data_dir)]
    run = CliRunner().invoke
    r = run(cli, base + ["models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)  # the stored-sides warning goes to stderr
    assert first["role"] == "champion" and "the store has no campaign" in r.stderr
    r = run(cli, base + ["models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--param", "C=0.5",
                         "--no-promote", "--json"])
    second = json.loads(r.stdout)
    assert second["role"] == "challenger" and second["params"]["C"] == 0.5
    r = run(cli, base + ["models", "list", "--json"])
    assert [m["id"] for m in json.loads(r.output)] == [second["id"], first["id"]]
    r = run(cli, base + ["models", "show", "--json"])
    assert json.loads(r.output)["id"] == first["id"]
    r = run(cli, base + ["models", "show", first["id"]])
    assert "reliability diagram" in r.output and "harassment" in r.output
    r = run(cli, base + ["score", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["scored"] == 60
    r = run(cli, base + ["models", "promote", second["id"], "--json"])  # no human labels: the gate cannot pass
    assert r.exit_code == 1 and json.loads(r.stdout)["changed"] is False
    r = run(cli, base + ["models", "promote", second["id"], "--force", "--reason", "smaller C", "--no-rescore",
                         "--json"])
    out = json.loads(r.stdout)
    assert (out["champion"], out["previous"], out["changed"], out["forced"]) == (second["id"], first["id"], True, True)
    r = run(cli, base + ["score", "--json"])
    assert json.loads(r.output)["scored"] == 60  # the new champion scores everything once
    r = run(cli, base + ["models", "retire", first["id"]])
    assert r.exit_code == 0 and "retired" in r.output
    # user errors: one line, non-zero exit, no traceback
    for args in (["models", "retire", second["id"]], ["models", "show", "nope"], ["score", "--model", "nope"],
                 ["models", "train", "--kind", "svm"], ["models", "train", "--param", "gamma=1", "--kind", "tfidf_lr"]):
        r = run(cli, base + args)
        assert r.exit_code != 0 and r.output.startswith("Error:") and "Traceback" not in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
    r = run(cli, base + ["models", "kinds", "--json"])
    assert set(json.loads(r.output)) >= {"hybrid", "tfidf_lr", "minilm_lr", "transformer"}


def test_models_yaml_errors_name_the_field(tmp_path):
    from core.config import ConfigError

    bad = tmp_path / "models.yaml"
    bad.write_text("kinds:\n  hybrid:\n    gamma: 3\nscoring:\n  chunk_size: 0\n")
    with pytest.raises(ConfigError) as err:
        load_models_config(bad)
    msg = str(err.value)
    assert "models.yaml" in msg and "'kinds'" in msg and "hybrid.gamma" in msg and "scoring.chunk_size" in msg
    # An ensemble's members are checked when the file is read, not when training starts.
    bad.write_text("kinds:\n  ensemble:\n    members:\n      - kind: hybird\n      - {kind: transformer, params: {lr: 1}}\n")
    with pytest.raises(ConfigError) as err:
        load_models_config(bad)
    msg = str(err.value)
    assert "models.yaml" in msg and "ensemble.members[0]" in msg and "hybird" in msg
    assert "ensemble.members[1]" in msg and "lr" in msg


def _demo_sides(store, taxonomy, cfg):
    """What `workbench demo` passes to `models_demo`: the grouped train and test sides."""
    from labeling.training_data import learning_data

    return learning_data(store, taxonomy, cfg.learning, "demo").fit_sets(cfg.training.seed)


def test_demo_step_trains_once_then_reuses(tiny_embedding_model, sqlite_store, taxonomy):
    from models.demo import models_demo

    texts, ys = toy_corpus(10)
    add_items(sqlite_store, texts, ys)
    lines: list[str] = []
    cfg = load_models_config()
    out = models_demo(sqlite_store, taxonomy, cfg, lines.append, *_demo_sides(sqlite_store, taxonomy, cfg))
    assert out["reused"] is False and out["scoring"]["scored"] == 50
    champ = get_model(sqlite_store, "champion")
    assert champ["id"] == out["model_version"] and champ["metrics"]["split_seed"] is None  # the test side
    again = models_demo(sqlite_store, taxonomy, cfg, lines.append, *_demo_sides(sqlite_store, taxonomy, cfg))
    assert again["reused"] is True and again["model_version"] == out["model_version"]
    assert again["scoring"]["scored"] == 0


def test_demo_step_without_labels_skips_cleanly(sqlite_store, taxonomy):
    from models.demo import models_demo

    add_items(sqlite_store, ["just text", "more text"], [None, None])
    cfg = load_models_config()
    assert models_demo(sqlite_store, taxonomy, cfg, lambda *a: None, *_demo_sides(sqlite_store, taxonomy, cfg)) \
        == {"skipped": "no labelled items and no champion"}


def test_copies_go_through_the_head_once(sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    add_items(sqlite_store, ["WIN cash now"] * 12 + ["win  cash NOW"] * 3 + ["other text"], [None] * 16, prefix="w")
    version = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST["tfidf_lr"], show_progress=False)["id"]
    model, _ = load_model_version(sqlite_store, version)
    seen: list[str] = []
    real = model.predict_proba

    def counting(batch, embeddings=None):
        seen.extend(batch)
        return real(batch, embeddings)

    model.predict_proba = counting
    summary = score_items(sqlite_store, taxonomy, config=MODELS, model_version=version, model=model, chunk_size=7,
                          show_progress=False)
    assert summary.scored == 56
    assert len(seen) == 40 + 2 and seen.count("WIN cash now") == 1  # copies across chunks: once


def test_training_learns_from_annotator_votes_when_the_kind_asks(sqlite_store, taxonomy):
    from core.schema import Item

    texts, ys = toy_corpus(10, labels=("benign", "hate", "harassment"))
    with sqlite_store.session() as s:
        for i, (t, lab) in enumerate(zip(texts, ys)):
            votes = {"hate_speech": 2 if lab == "hate" else 0, "offensive_language": 1 if lab != "benign" else 0,
                     "neither": 3 if lab == "benign" else 0}
            if lab == "harassment":
                votes["offensive_language"] = 3
            s.add(Item(id=f"davidson:{i}", source="davidson", surface="post", text=t, text_hash=text_hash(t),
                       policy_label=lab, source_label=lab, taxonomy_version="test", meta={"count": 3, **votes}))
    params = {"embedding_weight": 0.0, "min_df": 1, "calibration_folds": 2}
    soft = train_model(sqlite_store, taxonomy, config=MODELS, kind="hybrid", params={**params, "soft_labels": True},
                       show_progress=False)
    hard = train_model(sqlite_store, taxonomy, config=MODELS, kind="hybrid", params=params, show_progress=False)
    assert load_model_version(sqlite_store, soft["id"])[0].fit_info["soft_targets"] is True
    assert load_model_version(sqlite_store, hard["id"])[0].fit_info["soft_targets"] is False
    assert soft["params"]["soft_labels"] is True and soft["data_fingerprint"] == hard["data_fingerprint"]
