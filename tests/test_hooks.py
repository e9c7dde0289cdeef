"""Extension points: a plugin sees every committed decision, can refuse an action, adds commands
and demo steps, all through the one plugin manager (`core.hooks.pm`)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from core.hooks import DemoStep, PermissionDenied, hookimpl, pm
from labeling.appeals import appeal
from labeling.claims import next_case
from labeling.decisions import correct, decide

from test_queue_support import add_scored


class Recorder:
    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.calls: list[dict] = []
        self.asked: list[tuple[str, str]] = []
        self.refuse = refuse

    @hookimpl
    def decision_recorded(self, decision_ids, case, actor, kind, label, action):
        self.calls.append({"ids": decision_ids, "case": case["id"], "actor": actor, "kind": kind, "label": label,
                           "action": action})

    @hookimpl
    def permission_allowed(self, actor, action, resource):
        self.asked.append((actor, action))
        return False if action in self.refuse else None


@pytest.fixture
def plugin():
    made = []

    def register(**kw):
        p = Recorder(**kw)
        pm.register(p)
        made.append(p)
        return p

    yield register
    for p in made:
        if pm.is_registered(p):
            pm.unregister(p)


def _one_case(store, taxonomy, cfg):
    from labeling.cases import build_cases

    add_scored(store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, progress=False)
    return next_case(store, "ann", "fraud", cfg, detail=False)


def test_decision_recorded_sees_decisions_and_corrections(sqlite_store, taxonomy, queue_config, plugin):
    rec = plugin()
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    case = _one_case(sqlite_store, taxonomy, cfg)
    out = decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg)
    fix = correct(sqlite_store, taxonomy, out["decision_ids"][0], "lead", "spam", "an advert", action="remove")
    assert [(c["ids"], c["actor"], c["label"]) for c in rec.calls] == [
        (out["decision_ids"], "ann", "scam"), ([fix["decision_id"]], "lead", "spam")]
    assert rec.calls[0]["action"] == taxonomy.policies["scam"].default_action
    assert ("ann", "claim") in rec.asked and ("ann", "decide") in rec.asked and ("lead", "correct") in rec.asked


def test_a_plugin_can_refuse_an_action_and_nothing_is_written(sqlite_store, taxonomy, queue_config, plugin):
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    case = _one_case(sqlite_store, taxonomy, cfg)
    rec = plugin(refuse=frozenset({"decide", "appeal"}))
    with pytest.raises(PermissionDenied, match="ann may not decide case"):
        decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg)
    assert rec.calls == []
    with pytest.raises(PermissionDenied):
        appeal(sqlite_store, "reports:it1", "user-1", "mine", taxonomy, config=cfg)
    pm.unregister(rec)
    assert decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg)["state"] == "decided"


def test_plugins_add_commands_and_demo_steps(tmp_path):
    import click

    from workbench.cli import cli
    from workbench.demo import collect_steps

    class Extra:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("hello-plugin")
            def hello() -> None:
                """Say hello (a plugin's command).

                \b
                Example:
                  workbench hello-plugin
                """
                click.echo("hello from a plugin")

        @hookimpl
        def demo_steps(self):
            return [DemoStep("plugin-step", 250, lambda app, echo: {"ran": True})]

    extra = Extra()
    pm.register(extra)
    try:
        res = CliRunner().invoke(cli, ["hello-plugin"])
        assert res.exit_code == 0 and "hello from a plugin" in res.output
        names = [s.name for s in collect_steps()]
        assert names.index("campaigns") < names.index("plugin-step") < names.index("cases")
    finally:
        pm.unregister(extra)
        cli.commands.pop("hello-plugin", None)


class Broken:
    @hookimpl
    def decision_recorded(self, decision_ids, case, actor, kind, label, action):
        raise RuntimeError("the enforcement bus is down\nretry later")


def test_a_plugin_failing_after_the_commit_never_reads_as_a_lost_decision(sqlite_store, taxonomy, queue_config,
                                                                        plugin, caplog):
    """The decision was stored, then the plugin's error reached the caller: the Review screen and
    the Appeals tab said "not saved" over a saved decision, and later plugins were never told."""
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    case = _one_case(sqlite_store, taxonomy, cfg)
    rec = plugin()
    broken = Broken()
    pm.register(broken)  # registered last: called first, before the recorder
    try:
        out = decide(sqlite_store, taxonomy, case["id"], "ann", "scam", config=cfg)
    finally:
        pm.unregister(broken)
    assert out["state"] == "decided" and len(out["decision_ids"]) == 1
    assert [c["ids"] for c in rec.calls] == [out["decision_ids"]]
    logged = [r.getMessage() for r in caplog.records if r.name == "workbench.plugins"]
    assert len(logged) == 1 and "RuntimeError: the enforcement bus is down retry later" in logged[0]
    assert "\n" not in logged[0]
