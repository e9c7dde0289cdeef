"""Recovering from a broken registry, and not getting into one: a champion whose artifact fails its
check is replaced by a forced promotion (the rollback), no version becomes champion unverified,
the demo's re-run goes through the gate, a version-id collision destroys nothing, and a typo in
`models train --kind` stores nothing."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from core.schema import AuditEvent, LearningSplit
from labeling.training_data import learning_data
from models.registry import (RegistryError, artifact_dir, champion, get_model, load_model_version, promote,
                             train_model)
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus
from test_promotion_gate import FAST, MODELS


def _store_with_data(store, n=12, prefix="toy"):
    texts, ys = toy_corpus(n, seed=len(prefix))
    ids = add_items(store, texts, ys, prefix=prefix)
    return TrainingSet(ids, texts, ys, ["source"] * len(ids))


def _train(store, taxonomy, data, promote_if="never"):
    return train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=data,
                       promote_if=promote_if, show_progress=False)["id"]


def _break(store, version):
    (artifact_dir(store, version) / "model.json").write_text("{}")


def _events(store, action):
    with store.read() as conn:
        return list(conn.execute(select(AuditEvent.payload).where(AuditEvent.action == action)).scalars())


def _cli(store, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), *args], catch_exceptions=False)


# -- 1. a champion with a broken artifact ------------------------------------------------------
def test_only_a_forced_promotion_replaces_an_unloadable_champion_and_says_why(sqlite_store, taxonomy):
    from evaluation.promotion import PromotionError, promote_through_gate

    store = sqlite_store
    data = _store_with_data(store)
    old = _train(store, taxonomy, data, "always")
    new = _train(store, taxonomy, data)
    promote(store, new, actor="eng", reason="test")
    _break(store, new)
    kw = dict(models_config=MODELS, queue_config=None, actor="eng", rescore="none", show_progress=False)

    with pytest.raises(PromotionError) as err:
        promote_through_gate(store, taxonomy, old, **kw)
    msg = str(err.value)
    assert "\n" not in msg and f"champion {new}'s artifact is unusable" in msg
    assert 'workbench models promote VERSION --force --reason "..."' in msg
    assert champion(store)["id"] == new

    out = promote_through_gate(store, taxonomy, old, force=True, reason="rollback: champion broken", **kw)
    assert out["promoted"] and out["forced"] and out["comparisons"] == {}
    assert out["gate"]["reason"].startswith(f"champion unloadable: model {new}")
    assert champion(store)["id"] == old
    forced = _events(store, "model.force_promote")[-1]
    assert forced["champion_unloadable"].startswith("champion unloadable:")
    assert forced["gate"]["reason"] == out["gate"]["reason"] and forced["reason"] == "rollback: champion broken"


def test_the_forced_replacement_of_an_unloadable_champion_is_still_a_compare_and_swap(sqlite_store, taxonomy):
    from evaluation.promotion import PromotionRefused, compare_and_promote

    store = sqlite_store
    data = _store_with_data(store)
    broken = _train(store, taxonomy, data, "always")
    other, challenger = _train(store, taxonomy, data), _train(store, taxonomy, data)
    stale = get_model(store, broken)
    _break(store, broken)
    promote(store, other, actor="eng")   # another promotion lands meanwhile
    ld = learning_data(store, taxonomy, MODELS.learning, "eng")
    with pytest.raises(PromotionRefused, match=f"the champion is now {other}"):
        compare_and_promote(store, taxonomy, ld, stale, challenger, kind="tfidf_lr", models_config=MODELS,
                            queue_config=None, actor="eng", promote=True, force=True, reason="replace it",
                            rescore="none", report_dir=None, show_progress=False, echo=lambda *a, **k: None)
    assert champion(store)["id"] == other


def test_retrain_force_replaces_an_unloadable_champion(sqlite_store, taxonomy):
    from evaluation.promotion import PromotionError, retrain_and_gate

    store = sqlite_store
    _store_with_data(store)
    broken = _train(store, taxonomy, learning_data(store, taxonomy, MODELS.learning, "eng").fit_sets(13)[0], "always")
    _break(store, broken)
    kw = dict(models_config=MODELS, queue_config=None, actor="eng", kind="tfidf_lr", params=FAST, rescore="none",
              show_progress=False)
    with pytest.raises(PromotionError, match="artifact is unusable"):
        retrain_and_gate(store, taxonomy, **kw)
    out = retrain_and_gate(store, taxonomy, force=True, reason="replace the broken champion", **kw)
    assert out["promoted"] and out["forced"] and champion(store)["id"] == out["challenger"] != broken


# -- 2. no version becomes champion unverified -------------------------------------------------
def test_a_version_whose_artifact_is_missing_or_changed_is_never_promoted(sqlite_store, taxonomy):
    from evaluation.promotion import promote_through_gate

    store = sqlite_store
    data = _store_with_data(store)
    gone, changed = _train(store, taxonomy, data), _train(store, taxonomy, data)
    shutil.rmtree(artifact_dir(store, gone))
    _break(store, changed)
    with pytest.raises(RegistryError, match=f"model {gone}: artifact folder .* is missing \\(not promoted\\)"):
        promote_through_gate(store, taxonomy, gone, models_config=MODELS, queue_config=None, actor="eng",
                             rescore="none", show_progress=False)   # the first champion: no comparison
    with pytest.raises(RegistryError, match="does not match its recorded SHA-256"):
        promote(store, changed, actor="eng")
    assert champion(store) is None and _events(store, "model.promote") == []
    fine = _train(store, taxonomy, data, "no_champion")
    assert champion(store)["id"] == fine


# -- 3. the demo's re-run goes through the gate ------------------------------------------------
def _demo_sides(store, taxonomy):
    return learning_data(store, taxonomy, MODELS.learning, "demo").fit_sets(MODELS.training.seed)


def test_a_demo_rerun_never_replaces_the_champion_without_the_gate(sqlite_store, taxonomy):
    from evaluation.promotion import promote_through_gate
    from models.demo import models_demo

    store, lines = sqlite_store, []
    data = _store_with_data(store)
    first = models_demo(store, taxonomy, MODELS, lines.append, *_demo_sides(store, taxonomy))
    assert first["reused"] is False and champion(store)["id"] == first["model_version"]
    assert models_demo(store, taxonomy, MODELS, lines.append, *_demo_sides(store, taxonomy))["reused"] is True

    # A rollback puts another version over the demo's; the demo's matches the data but is no champion.
    rollback = _train(store, taxonomy, data)
    promote(store, rollback, actor="eng", reason="rollback")
    again = models_demo(store, taxonomy, MODELS, lines.append, *_demo_sides(store, taxonomy))
    assert again["model_version"] == rollback == champion(store)["id"] and again["candidate"] == first["model_version"]
    assert "stays a challenger" in lines[-2] and _events(store, "model.gate") == []

    # New data: a new version is trained, promoted only through the gate the application passes.
    _store_with_data(store, 6, prefix="more")
    verdicts = []

    def gate(version):
        verdicts.append(promote_through_gate(store, taxonomy, version, models_config=MODELS, queue_config=None,
                                             actor="demo", rescore="none", show_progress=False))
        return verdicts[-1]

    gated = models_demo(store, taxonomy, MODELS, lines.append, *_demo_sides(store, taxonomy), gate=gate)
    assert [v["challenger"] for v in verdicts] == [gated["candidate"]] and gated["reused"] is False
    assert gated["gate"] == verdicts[0]["gate"]["reason"] and len(_events(store, "model.gate")) == 1
    assert champion(store)["id"] == gated["model_version"] == (gated["candidate"] if verdicts[0]["promoted"]
                                                               else rollback)
    with store.read() as conn:
        promoted = list(conn.execute(select(AuditEvent.entity_id).where(AuditEvent.action == "model.promote")
                                     .order_by(AuditEvent.id)).scalars())
    assert promoted == [first["model_version"], rollback] + ([gated["candidate"]] if verdicts[0]["promoted"] else [])


# -- 4. a version-id collision destroys nothing ------------------------------------------------
def test_a_version_id_collision_draws_again_and_never_touches_the_other_folder(sqlite_store, taxonomy, monkeypatch):
    import models.registry as reg

    store = sqlite_store
    data = _store_with_data(store)
    assert len(reg.new_version_id("tfidf_lr").rsplit("-", 1)[1]) == 8
    ids = iter(["tfidf_lr-20261206-120000-abcd", "tfidf_lr-20261206-120000-abcd", "tfidf_lr-20261206-120000-ef01"])
    monkeypatch.setattr(reg, "new_version_id", lambda kind: next(ids))
    first = _train(store, taxonomy, data, "always")
    second = _train(store, taxonomy, data)
    assert (first, second) == ("tfidf_lr-20261206-120000-abcd", "tfidf_lr-20261206-120000-ef01")

    monkeypatch.setattr(reg, "new_version_id", lambda kind: first)   # no free id at all
    with pytest.raises(RegistryError, match="no free version id"):
        _train(store, taxonomy, data)
    load_model_version(store, first)   # still whole: its digest checks out
    load_model_version(store, second)
    # A folder left without a row (a crashed training) is not written into either.
    stray = artifact_dir(store, "tfidf_lr-20261206-120000-0bad")
    stray.mkdir()
    (stray / "keep.txt").write_text("x")
    ids = iter(["tfidf_lr-20261206-120000-0bad", "tfidf_lr-20261206-120000-0bae"])
    monkeypatch.setattr(reg, "new_version_id", lambda kind: next(ids))
    assert _train(store, taxonomy, data) == "tfidf_lr-20261206-120000-0bae"
    assert [p.name for p in stray.iterdir()] == ["keep.txt"]


# -- 5. `models train` checks its kind and parameters before storing anything ------------------
@pytest.mark.parametrize("args, says", [(("--kind", "tfidf_rl"), "unknown model kind 'tfidf_rl'"),
                                        (("--kind", "tfidf_lr", "--param", "nosuch=1"), "nosuch"),
                                        (("--parent", "nope"), "unknown model version 'nope'")])
def test_models_train_refuses_bad_input_before_storing_the_splits(sqlite_store, taxonomy, args, says):
    store = sqlite_store
    _store_with_data(store)
    res = _cli(store, "models", "train", *args)
    assert res.exit_code != 0 and says in res.output and "Traceback" not in res.output, res.output
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(LearningSplit)).scalar() == 0
