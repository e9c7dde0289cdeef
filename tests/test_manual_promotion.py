"""`workbench models promote` and `models train --promote` go through the same gate as a retrain
(issue 18: only a better model is promoted): an equal or worse version is refused (exit 1, the
champion stays), a clearly better one is promoted and the open cases rescored, and a rollback is
a forced promotion with a reason, audited."""
from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from core.predictions import champion_version
from core.schema import AuditEvent
from labeling.rescore import stale_open_cases
from models.registry import get_model, train_model
from models.training import TrainingSet
from test_models_fixtures import toy_corpus
from test_promotion_gate import FAST, MODELS, _rotated, loop  # noqa: F401 (the fixture)


def _versions(store, taxonomy, ids):
    """A clearly better version (the true labels) and a worse one (every label wrong, weakly fitted)."""
    texts, ys = toy_corpus(60, seed=4)
    truth = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    good = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=truth,
                       promote_if="never", show_progress=False)["id"]
    bad = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={**FAST, "C": 0.01},
                      data=_rotated(truth), promote_if="never", show_progress=False)["id"]
    return good, bad


def _cli(store, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), *args], catch_exceptions=False)


def test_models_promote_goes_through_the_gate_and_a_rollback_is_forced_and_audited(loop, taxonomy):  # noqa: F811
    store, champ, ids = loop
    good, bad = _versions(store, taxonomy, ids)

    res = _cli(store, "models", "promote", bad)
    assert res.exit_code == 1 and "not promoted" in res.output and "gate:" in res.output, res.output
    assert "Traceback" not in res.output
    with store.read() as conn:
        assert champion_version(conn) == champ

    res = _cli(store, "models", "promote", good, "--reason", "learned the labels right", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["champion"] == good and out["previous"] == champ and out["changed"] and not out["forced"]
    assert "lower bound" in out["gate"] and out["report"].endswith("comparison.md")
    assert stale_open_cases(store) == []  # the open cases were rescored by the new champion
    with store.read() as conn:
        why = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.promote",
                                                            AuditEvent.entity_id == good)).scalar_one()["reason"]
    assert why.startswith("passed the gate: ") and why.endswith("; learned the labels right")

    # A rollback to the old champion: refused by the gate, then forced with a reason.
    res = _cli(store, "models", "promote", champ, "--force")
    assert res.exit_code == 1 and res.output.startswith("Error: --force needs a --reason")
    assert len(res.output.strip().splitlines()) == 1
    res = _cli(store, "models", "promote", champ, "--no-rescore")
    assert res.exit_code == 1 and "not promoted" in res.output
    res = _cli(store, "models", "promote", champ, "--force", "--reason", "rollback: queue flooded", "--no-rescore",
               "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["champion"] == champ and out["forced"]
    with store.read() as conn:
        forced = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.force_promote")).all()
        gates = conn.execute(select(AuditEvent.entity_id).where(AuditEvent.action == "model.gate")).all()
    assert [f.payload["reason"] for f in forced] == ["rollback: queue flooded"]
    assert {g.entity_id for g in gates} >= {good, bad, champ}
    assert get_model(store, good)["role"] == "challenger"

    # Promoting the champion itself changes nothing; an unknown version is a one-line error.
    res = _cli(store, "models", "promote", champ, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["changed"] is False
    res = _cli(store, "models", "promote", "nope")
    assert res.exit_code != 0 and res.output.startswith("Error:") and len(res.output.strip().splitlines()) == 1


def test_models_train_promote_is_gated_once_a_champion_exists(loop):  # noqa: F811
    store, champ, _ = loop
    # No source labels: the decisions are the training data (their grouped train side); a weakly fitted
    # model of the true labels still beats a champion that learned every label wrong.
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--promote", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["role"] == "champion" and "lower bound" in out["gate"]
    # promoted through the gate: the open cases are rescored, as `models promote` does
    assert out["rescore"]["stale_left"] == 0 and stale_open_cases(store) == []
    res = _cli(store, "models", "train", "--kind", "tfidf_lr", "--param", "min_df=1", "--param", "C=0.0001",
               "--promote", "--json")
    assert res.exit_code == 1, res.output  # refused: `models train --promote && deploy` stops
    weak = json.loads(res.stdout)
    assert weak["role"] == "challenger" and "<=" in weak["gate"]  # the interval did not clear zero
    with store.read() as conn:
        assert champion_version(conn) == out["id"] != weak["id"]


def test_a_skipped_rescore_is_finished_by_cases_rescore(loop, taxonomy):  # noqa: F811
    """`models promote --no-rescore` leaves every open case on the old champion; `workbench cases
    rescore` brings them onto the new one (before it, nothing but another promotion did)."""
    store, champ, ids = loop
    good, _ = _versions(store, taxonomy, ids)
    res = _cli(store, "models", "promote", good, "--no-rescore")
    assert res.exit_code == 0, res.output
    assert stale_open_cases(store)
    res = _cli(store, "cases", "rescore", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["champion"] == good and out["scored"] > 0 and out["stale_left"] == 0
    assert stale_open_cases(store) == []
    res = _cli(store, "cases", "rescore")
    assert "0 items scored" in res.output and "0 still stale" in res.output


def test_serve_finishes_a_rescore_cut_short(loop, taxonomy, queue_config):  # noqa: F811
    from types import SimpleNamespace

    from models.registry import promote
    from workbench.learning import resume_rescore

    store, champ, ids = loop
    good, _ = _versions(store, taxonomy, ids)
    promote(store, good, actor="eng")  # as if the process died right after promoting
    app = SimpleNamespace(store=lambda: store, taxonomy=lambda: taxonomy, models=lambda: MODELS,
                          queues=lambda: queue_config, rescore_job=None)
    assert stale_open_cases(store)
    job = resume_rescore(app)
    assert job is app.rescore_job and job.total > 0
    job.thread.join(120)
    assert job.error is None and job.result["stale_left"] == 0 and stale_open_cases(store) == []
    assert resume_rescore(app) is None  # nothing stale: no job
