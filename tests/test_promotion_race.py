"""Only a challenger compared with the current champion is promoted, even when promotions race
(issue 18): a second retrain, `serve`'s automatic one or another host may promote while a gate
is comparing. `models.registry.promote(expect_champion=...)` is the compare-and-swap that keeps
the gate's verdict tied to the champion it was reached against."""
from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import select

from core.predictions import champion_version
from core.schema import AuditEvent, Case
from evaluation.promotion import PromotionError, retrain_and_gate
from models.registry import ChampionChanged, get_model, promote
from test_manual_promotion import _versions
from test_promotion_gate import MODELS, loop, make_loop  # noqa: F401 (the fixture)


@pytest.fixture
def any_loop(any_store, taxonomy, queue_config):
    return make_loop(any_store, taxonomy, queue_config)


def _promotions(store) -> list[dict]:
    with store.read() as conn:
        rows = conn.execute(select(AuditEvent.entity_id, AuditEvent.payload)
                            .where(AuditEvent.action == "model.promote").order_by(AuditEvent.id)).all()
    return [{"version": v, **p} for v, p in rows]


def test_promote_is_a_compare_and_swap_on_the_champion(any_loop, taxonomy):
    store, champ, ids = any_loop
    good, bad = _versions(store, taxonomy, ids)
    with pytest.raises(ChampionChanged, match=f"the champion is now {champ}, not {bad} that {good} was compared"):
        promote(store, good, actor="eng", expect_champion=bad)
    with pytest.raises(ChampionChanged, match=f"the champion is now {champ}, not none"):
        promote(store, good, actor="eng", expect_champion=None)
    with store.read() as conn:
        assert champion_version(conn) == champ
    assert get_model(store, good)["role"] == "challenger" and len(_promotions(store)) == 1  # the fixture's
    assert promote(store, good, actor="eng", expect_champion=champ)["previous"] == champ
    with store.read() as conn:
        assert champion_version(conn) == good


def test_a_promotion_while_a_retrain_compares_refuses_the_retrains_promotion(any_loop, taxonomy, queue_config):
    store, champ, ids = any_loop
    good, _ = _versions(store, taxonomy, ids)

    def echo(message: str = "", *_, **__) -> None:
        if message.startswith("assembling training data") and champion_version_now(store) == champ:
            promote(store, good, actor="eng", reason="someone else's promotion")  # lands mid-retrain

    with pytest.raises(PromotionError, match=f"the champion is now {good}, not {champ} .*nothing promoted"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                         show_progress=False, echo=echo)
    with store.read() as conn:
        assert champion_version(conn) == good
        verdicts = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.gate")).scalars().all()
    assert [p["version"] for p in _promotions(store)][1:] == [good]  # the retrain promoted nothing
    with store.read() as conn:
        refused = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.promote_refused")).scalar_one()
    assert refused["compared_with"] == champ and f"the champion is now {good}" in refused["reason"]
    from evaluation.model_overview import gate_verdicts, verdict_word

    latest = gate_verdicts(store, "eng", limit=1)[0]  # what the Models tab and `models gates` show
    assert latest["champion"] == champ and latest["passed"] and f"the champion is now {good}" in latest["promote_refused"]
    assert verdict_word(latest) == "passed, not promoted: the champion changed meanwhile"
    assert verdicts and verdicts[-1]["champion"] == champ and verdicts[-1]["passed"]  # compared with the old one


def champion_version_now(store) -> str:
    with store.read() as conn:
        return champion_version(conn)


def test_a_second_retrain_while_one_runs_is_refused_at_once(any_loop, taxonomy, queue_config):
    """One retrain at a time per store, whichever thread, process or host starts it
    (`Store.exclusive`): the second is refused before it trains anything."""
    store, champ, _ = any_loop
    started, go = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        def echo(message: str = "", *_, **__) -> None:
            if message.startswith("assembling training data"):
                started.set()
                go.wait(120)
        outcome["first"] = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config,
                                            actor="eng", rescore="none", show_progress=False, echo=echo)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(120)
        n_models = len(_model_ids(store))
        with pytest.raises(PromotionError, match="a retrain is already running on this store"):
            retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             rescore="none", show_progress=False)
        assert len(_model_ids(store)) == n_models  # refused before training
    finally:
        go.set()
        t.join(300)
    assert outcome["first"]["promoted"] and outcome["first"]["champion"] == champ
    again = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             rescore="none", show_progress=False)  # the lock was released
    assert not again["promoted"]


def _model_ids(store) -> list[str]:
    from core.schema import ModelVersion

    with store.read() as conn:
        return list(conn.execute(select(ModelVersion.id)).scalars())


def test_two_gated_promotions_at_once_promote_one_version_at_most(any_loop, taxonomy, queue_config):
    """Two versions gated against the same champion at once (two engineers' `models promote`):
    both pass the gate, the compare-and-swap lets one through and refuses the other."""
    from evaluation.promotion import promote_through_gate

    store, champ, ids = any_loop
    good, _ = _versions(store, taxonomy, ids)
    also_good, _ = _versions(store, taxonomy, ids)
    both_read_the_champion = threading.Barrier(2, timeout=120)
    outcomes: dict[str, object] = {}

    def run(version: str) -> None:
        def echo(message: str = "", *_, **__) -> None:
            if message.startswith("assembling the held-out human labels"):  # after reading the champion
                both_read_the_champion.wait()
        try:
            outcomes[version] = promote_through_gate(store, taxonomy, version, models_config=MODELS,
                                                     queue_config=queue_config, actor="eng", rescore="none",
                                                     show_progress=False, echo=echo)
        except Exception as exc:  # noqa: BLE001 - the assertion below says what was expected
            outcomes[version] = exc

    threads = [threading.Thread(target=run, args=(v,)) for v in (good, also_good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    promoted = [o for o in outcomes.values() if isinstance(o, dict) and o["promoted"]]
    refused = [o for o in outcomes.values() if isinstance(o, PromotionError)]
    assert len(promoted) == 1 and len(refused) == 1, outcomes
    assert "another promotion ran meanwhile" in str(refused[0])
    winner = promoted[0]["challenger"]
    assert promoted[0]["champion"] == champ
    with store.read() as conn:
        assert champion_version(conn) == winner
    later = _promotions(store)[1:]
    assert [(p["version"], p["previous_champion"]) for p in later] == [(winner, champ)]


@contextlib.contextmanager
def held_elsewhere(store, name: str):
    """`store.exclusive(name)` held by another thread (as another process or host would) while the block runs."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.exclusive(name):
            held.set()
            release.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(60)
        yield
    finally:
        release.set()
        t.join(60)


def test_store_exclusive_is_held_across_threads_and_released(any_store):
    from core.store import Busy

    with held_elsewhere(any_store, "job"):
        with pytest.raises(Busy):
            with any_store.exclusive("job"):
                pass
        with any_store.exclusive("another-job"):  # a lock per name
            pass
    with any_store.exclusive("job"):  # released when the holder left
        pass
    with pytest.raises(RuntimeError, match="inside"):  # an error inside releases it too
        with any_store.exclusive("job"):
            raise RuntimeError("inside")
    with any_store.exclusive("job"):
        pass


def test_a_promotion_replans_the_learning_share_on_the_new_models_uncertainty(any_loop, taxonomy, queue_config):
    """The pinned learning cases were chosen by the old champion's uncertainty: the rescore after
    a promotion plans them again on the new one's."""
    from core.predictions import predictions_of_record
    from labeling.learning import apply_learning_share

    from labeling.queue_config import LearningShare

    store, champ, _ = any_loop
    with store.read() as conn:
        waiting = set(conn.execute(select(Case.queue).where(Case.state == "open")).scalars())
    config = queue_config.model_copy(update={"learning": LearningShare(
        queues={q: 0.5 for q in waiting if q in queue_config.queues}, min_uncertainty=0.0)})
    assert config.learning.queues
    apply_learning_share(store, taxonomy, config, "eng")
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=config, actor="eng",
                           show_progress=False)
    assert out["promoted"] and sum(q["learning"] for q in out["rescore"]["learning"].values()) > 0
    with store.read() as conn:
        pinned = conn.execute(select(Case.item_id, Case.meta).where(Case.state == "open")).all()
        pinned = [(i, m["learning"]) for i, m in pinned if (m or {}).get("learning")]
        record = predictions_of_record(conn, [i for i, _ in pinned])
    assert pinned and all(record[i]["model_version"] == out["challenger"] for i, _ in pinned)
    assert all(abs(info["uncertainty"] - record[i]["uncertainty"]) < 1e-6 for i, info in pinned)


def test_serve_auto_retrain_skips_while_another_host_retrains(any_loop, taxonomy, queue_config, caplog):
    from types import SimpleNamespace

    from workbench.learning import check_and_retrain

    store, champ, _ = any_loop
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
        update={"enabled": True, "after_decisions": 200})})
    app = SimpleNamespace(store=lambda: store, models=lambda: on, taxonomy=lambda: taxonomy,
                          queues=lambda: queue_config, retrain_lock=threading.Lock(), rescore_job=None)
    with held_elsewhere(store, "retrain"):  # another host is retraining
        with caplog.at_level("INFO", logger="workbench.learning"):
            assert check_and_retrain(app) is None
        assert "a retrain is already running on this store" in caplog.text
        assert not app.retrain_lock.locked()
    assert check_and_retrain(app)["promoted"]  # the next check, once the other retrain is done


def test_store_exclusive_dies_with_the_process_that_held_it(any_store):
    """A retrain killed mid-way (OOM, a host lost) must not block every later retrain."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from core.store import Busy

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from core.store import Store; "
            "s = Store(sys.argv[2], sys.argv[3]); cm = s.exclusive('job'); cm.__enter__(); "
            "print('held', flush=True); time.sleep(120)")
    root = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", code, root, str(any_store.data_dir), any_store.url],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(Busy):
            with any_store.exclusive("job"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    deadline = time.time() + 20
    while True:
        try:
            with any_store.exclusive("job"):
                break
        except Busy:
            assert time.time() < deadline, "the lock outlived the process that held it"
            time.sleep(0.2)


def test_retrain_if_due_from_cron_skips_quietly_while_another_host_retrains(loop, tmp_path):  # noqa: F811
    """Cron's `workbench retrain --if-due` on a second host: due, but one retrain at a time per
    store, so it says why it skipped and exits 0 (an error there would mail the operator every run)."""
    import json
    import shutil

    import yaml
    from click.testing import CliRunner

    from core.config import config_dir
    from workbench.cli import cli

    store, _, _ = loop
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    models_yaml = configs / "models.yaml"
    doc = yaml.safe_load(models_yaml.read_text())
    doc["auto_retrain"] = {**(doc.get("auto_retrain") or {}), "enabled": True, "after_decisions": 10}
    models_yaml.write_text(yaml.safe_dump(doc))

    def run(*args):
        return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "--config-dir", str(configs), *args],
                                  catch_exceptions=False)

    with held_elsewhere(store, "retrain"):
        res = run("retrain", "--if-due", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["retrained"] is False and "a retrain is already running on this store" in out["reason"]
        res = run("retrain", "--no-promote")  # asked for by hand: an error, exit 1
        assert res.exit_code == 1 and "Error: a retrain is already running on this store" in res.output
