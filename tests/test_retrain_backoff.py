"""A failed automatic retrain backs off (issue 18): serve's check and cron's `retrain --if-due`
audit the failure (`model.retrain_failed`), and `retrain_due` waits `failure_backoff_seconds`,
doubling per failure in a row, before the next try, instead of training again at every check
(a retrain that fails for a lasting reason, such as a full disk, would otherwise run every
`check_seconds` forever). A retrain by hand is never held back, and a gate verdict starts the
count again."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import select

import models.registry
from core.config import config_dir
from core.schema import AuditEvent
from evaluation.promotion import retrain_and_gate, retrain_due
from models.config import AutoRetrainSettings
from test_promotion_gate import loop  # noqa: F401 - `loop`: the fixture
from test_rescore_progress import ON, LoopContext
from workbench.learning import check_and_retrain

BACKOFF = 3600


@pytest.fixture
def disk_full(monkeypatch):
    """Training fails as on a full disk; returns the list of attempts."""
    attempts = []

    def full(*args, **kwargs):
        attempts.append(kwargs.get("kind"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models.registry, "train_model", full)
    return attempts


def _failures(store):
    with store.read() as conn:
        return conn.execute(select(AuditEvent.ts, AuditEvent.actor, AuditEvent.payload)
                            .where(AuditEvent.action == "model.retrain_failed").order_by(AuditEvent.ts)).all()


def test_a_failed_automatic_retrain_waits_doubling_before_the_next_try(loop, taxonomy, queue_config,  # noqa: F811
                                                                       disk_full, monkeypatch):
    store, champ, _ = loop
    app = LoopContext(store=store)
    with pytest.raises(OSError, match="No space left"):
        check_and_retrain(app)  # due (240 new decisions): the retrain starts and fails
    assert len(disk_full) == 1
    (first,) = _failures(store)
    assert first.actor == "system" and "No space left on device" in first.payload["error"]
    assert "240 new human decisions" in first.payload["trigger"]

    assert check_and_retrain(app) is None  # the next check backs off instead of training again
    assert len(disk_full) == 1 and not app.retrain_lock.locked()
    due = retrain_due(store, ON)
    assert not due["due"] and due["failed_retrains"] == 1
    assert "the last automatic retrain failed" in due["reason"] and "No space left" in due["reason"]

    t1 = first.ts
    assert not retrain_due(store, ON, now=t1 + dt.timedelta(seconds=BACKOFF - 5))["due"]
    assert retrain_due(store, ON, now=t1 + dt.timedelta(seconds=BACKOFF + 5))["due"]  # the hour is up
    # A second failure in a row doubles the wait.
    from evaluation import promotion

    monkeypatch.setattr(promotion, "utcnow", lambda: t1 + dt.timedelta(seconds=BACKOFF + 5))
    with pytest.raises(OSError):
        check_and_retrain(app)
    assert len(disk_full) == 2
    t2 = _failures(store)[-1].ts
    assert not retrain_due(store, ON, now=t2 + dt.timedelta(seconds=BACKOFF + 5))["due"]
    assert retrain_due(store, ON, now=t2 + dt.timedelta(seconds=2 * BACKOFF + 5))["due"]
    # The cap bounds the wait however many failures there were.
    capped = ON.model_copy(update={"auto_retrain": ON.auto_retrain.model_copy(
        update={"failure_backoff_cap_seconds": BACKOFF + 60})})
    assert retrain_due(store, capped, now=t2 + dt.timedelta(seconds=BACKOFF + 65))["due"]


def test_a_retrain_by_hand_is_not_held_back_and_its_verdict_starts_the_count_again(loop, taxonomy,  # noqa: F811
                                                                                    monkeypatch):
    store, champ, _ = loop
    app = LoopContext(store=store)
    with monkeypatch.context() as m:
        m.setattr(models.registry, "train_model", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
        with pytest.raises(MemoryError):
            check_and_retrain(app)
    assert not retrain_due(store, ON)["due"]
    out = retrain_and_gate(store, taxonomy, models_config=ON, queue_config=None, actor="eng", promote=False,
                           rescore="none", show_progress=False)  # an engineer retrains by hand: it runs
    assert out["challenger"]
    after = retrain_due(store, ON)
    assert after["failed_retrains"] == 0 and "failed" not in after["reason"]  # counted from the verdict


def test_another_host_retraining_is_not_a_failure(loop, monkeypatch):  # noqa: F811
    from evaluation.promotion import RetrainBusy

    store, champ, _ = loop
    app = LoopContext(store=store)
    monkeypatch.setattr(models.registry, "train_model",
                        lambda *a, **k: (_ for _ in ()).throw(RetrainBusy("another retrain holds the lock")))
    assert check_and_retrain(app) is None
    assert _failures(store) == [] and retrain_due(store, ON)["due"]


def test_cron_if_due_records_the_failure_and_the_next_run_backs_off(loop, tmp_path, disk_full):  # noqa: F811
    store, champ, _ = loop
    data_dir = store.data_dir
    store.dispose()
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    text = (configs / "models.yaml").read_text()
    (configs / "models.yaml").write_text(text.replace("auto_retrain:\n  enabled: false\n  after_decisions: 500",
                                                      "auto_retrain:\n  enabled: true\n  after_decisions: 100"))
    from workbench.cli import cli

    base = ["--data-dir", str(data_dir), "--config-dir", str(configs), "retrain", "--if-due", "--kind", "tfidf_lr",
            "--param", "min_df=1"]
    res = CliRunner().invoke(cli, base)
    assert res.exit_code != 0 and isinstance(res.exception, OSError), res.output
    assert len(disk_full) == 1
    res = CliRunner().invoke(cli, base + ["--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["retrained"] is False and body["failed_retrains"] == 1 and body["retry_after"]
    assert len(disk_full) == 1  # not tried again


def test_the_backoff_settings_are_validated():
    with pytest.raises(ValidationError, match="failure_backoff_cap_seconds must be at least"):
        AutoRetrainSettings(failure_backoff_seconds=7200, failure_backoff_cap_seconds=3600)
    with pytest.raises(ValidationError):
        AutoRetrainSettings(failure_backoff_seconds=0)


def test_the_models_tab_says_the_automatic_retrain_failed_and_when_it_tries_again(loop, disk_full):  # noqa: F811
    pytest.importorskip("gradio")
    from workbench.ui.models import auto_retrain_line

    store, champ, _ = loop
    app = LoopContext(store=store)
    assert auto_retrain_line(app).startswith(" Automatic retrain due: 240 new human decisions")
    with pytest.raises(OSError):
        check_and_retrain(app)
    line = auto_retrain_line(app)
    assert "Automatic retrain waiting: the last automatic retrain failed" in line and "next try after" in line
    assert "No space left on device" in line


def test_the_backoff_reads_the_same_on_postgresql(pg_store, taxonomy, queue_config, disk_full):
    from test_promotion_gate import make_loop

    store, champ, _ = make_loop(pg_store, taxonomy, queue_config)
    app = LoopContext(store=store)
    with pytest.raises(OSError):
        check_and_retrain(app)
    assert check_and_retrain(app) is None and len(disk_full) == 1
    (failure,) = _failures(store)
    due = retrain_due(store, ON)
    assert not due["due"] and due["failed_retrains"] == 1
    assert retrain_due(store, ON, now=failure.ts + dt.timedelta(seconds=BACKOFF + 5))["due"]
