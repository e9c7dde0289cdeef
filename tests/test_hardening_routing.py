"""Hardening of routing, priority times and the queue config / CLI: configs that validate but
strand cases or never match, aware datetimes, and CLI inputs that listed nothing or tracebacked."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from core.config import ConfigError, config_dir
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.escalation import sweep
from labeling.queue_config import QUEUES_FILE, load_queue_config
from labeling.routing import Candidate, plan_case
from workbench.cli import cli

from test_queue_support import T0, add_scored

SCAM_ROUTE = "  - {queue: fraud, when: {policy: [scam]}}"


def _write(tmp_path, old: str, new: str):
    src = (config_dir() / QUEUES_FILE).read_text()
    assert old in src
    path = tmp_path / QUEUES_FILE
    path.write_text(src.replace(old, new))
    return path


# -- queue roles: a route, the default queue or a second role may not take a role's queue -----------
@pytest.mark.parametrize("target", ["appeals", "calibration", "escalation", "label-review"])
def test_a_route_into_a_role_queue_is_refused(tmp_path, taxonomy, target):
    """Routed there, a scam was stranded: in `appeals` it could be neither decided nor resolved; in
    `calibration` the SLA sweep never escalated it; in `escalation` it waited with no reason."""
    path = _write(tmp_path, SCAM_ROUTE, SCAM_ROUTE.replace("fraud", target))
    with pytest.raises(ConfigError, match=rf"field 'routes.1.queue': '{target}' is the \w+"):
        load_queue_config(path, taxonomy=taxonomy)


def test_the_default_queue_may_not_be_a_role_queue(tmp_path, taxonomy):
    path = _write(tmp_path, "default_queue: general", "default_queue: escalation")
    with pytest.raises(ConfigError, match="field 'default_queue': 'escalation' is the escalation_queue"):
        load_queue_config(path, taxonomy=taxonomy)


def test_two_roles_on_one_queue_are_refused(tmp_path, taxonomy):
    """appeals_queue = escalation_queue: an appeal waited `open` where only `escalated` is claimed."""
    path = _write(tmp_path, "appeals_queue: appeals", "appeals_queue: escalation")
    with pytest.raises(ConfigError, match="field 'appeals_queue': 'escalation' is already escalation_queue"):
        load_queue_config(path, taxonomy=taxonomy)


def test_the_bundled_roles_still_route_and_sla_escalate(sqlite_store, taxonomy, queue_config):
    """The check leaves the bundled config alone: a P1 scam goes to fraud and the sweep escalates it."""
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(sqlite_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])
    assert build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)["by_queue"] == {"fraud": 1}
    assert sweep(sqlite_store, taxonomy, cfg, now=T0 + dt.timedelta(minutes=239))["sla_escalated"] == 1
    assert next_case(sqlite_store, "ann", "escalation", config=cfg, now=T0 + dt.timedelta(minutes=239)) is not None


# -- routes that can never match ---------------------------------------------------------------------
def test_a_route_an_earlier_one_covers_is_refused(tmp_path, taxonomy):
    """Appended after `{policy: [scam]}`, a high-confidence scam route validated and never matched."""
    path = _write(tmp_path, "default_queue: general",
                  "  - {queue: spam, when: {policy: [scam], min_score: 0.95}}\ndefault_queue: general")
    with pytest.raises(ConfigError, match=r"field 'routes.5': never matches: routes.1 \(queue 'fraud'\)"):
        load_queue_config(path, taxonomy=taxonomy)
    # first instead, it is reachable and loads
    path = _write(tmp_path, "routes:\n", "routes:\n  - {queue: spam, when: {policy: [scam], min_score: 0.95}}\n")
    cfg = load_queue_config(path, taxonomy=taxonomy)
    assert cfg.routes[0].queue == "spam"


def test_a_route_after_a_benign_only_route_still_takes_long_texts(tmp_path, taxonomy):
    """A benign-only route lets windowed texts through, so a catch-all after it is not dead."""
    path = _write(tmp_path, "default_queue: general",
                  "  - {queue: general, when: {source: [sms_spam]}}\ndefault_queue: general")
    load_queue_config(path, taxonomy=taxonomy)
    path = _write(tmp_path, "default_queue: general",
                  "  - {queue: general, when: {policy: [benign], min_score: 0.95}}\ndefault_queue: general")
    with pytest.raises(ConfigError, match=r"field 'routes.5': never matches: routes.4 \(queue 'low-risk'\)"):
        load_queue_config(path, taxonomy=taxonomy)


@pytest.mark.parametrize("when, problem", [
    ("{policy: [benign], min_score: 0.9, max_score: 0.5}", "min_score 0.9 is above max_score 0.5"),
    ("{policy: []}", "routes.4.when.policy"),
    ("{surface: []}", "routes.4.when.surface"),
])
def test_a_route_that_matches_nothing_is_refused(tmp_path, taxonomy, when, problem):
    path = _write(tmp_path, "  - {queue: low-risk, when: {policy: [benign], min_score: 0.9}}",
                  f"  - {{queue: low-risk, when: {when}}}")
    with pytest.raises(ConfigError, match=problem):
        load_queue_config(path, taxonomy=taxonomy)


# -- times -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "America/New_York"])
def test_plan_case_takes_an_aware_now_and_stores_naive_utc(taxonomy, queue_config, zone):
    """An aware `now` raised TypeError in the SLA-urgency term; a local one just before a DST change
    would have given a due time in wall-clock minutes (an hour off) had it been kept aware."""
    naive_utc = dt.datetime(2026, 3, 29, 0, 30) if zone != "America/New_York" else dt.datetime(2026, 3, 8, 6, 30)
    now = naive_utc.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(zone))
    cand = Candidate(item_id="x", text="t", label="scam", score=0.9, scores={"scam": 0.9, "benign": 0.1})
    row = plan_case(taxonomy, queue_config, cand, now)
    plain = plan_case(taxonomy, queue_config, cand, naive_utc)
    assert row["due_at"].tzinfo is None and row["created_at"] == naive_utc
    assert row["due_at"] - naive_utc == dt.timedelta(minutes=taxonomy.sla_minutes("P1"))
    assert (row["priority"], row["priority_reason"], row["due_at"]) == \
        (plain["priority"], plain["priority_reason"], plain["due_at"])


# -- CLI -----------------------------------------------------------------------------------------------
def test_cases_and_appeals_list_refuse_a_negative_limit_and_an_unknown_state(any_store, taxonomy):
    """`--limit -1` tracebacked on PostgreSQL (LIMIT must not be negative) and listed everything on
    SQLite; a misspelt `--state` listed nothing, as if no case were in that state."""
    add_scored(any_store, taxonomy, [{"id": "s1", "label": "scam", "p": 0.9}])
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, ["--data-dir", str(any_store.data_dir), "--db", any_store.url, *args])

    assert run("cases", "build").exit_code == 0
    for args in (["cases", "list", "--limit", "-1"], ["appeals", "list", "--limit", "-2"],
                 ["cases", "list", "--state", "opne"], ["appeals", "list", "--state", "claimd"]):
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output and "Invalid value for '--" in res.output, (args, res.output)
    listed = run("cases", "list", "--limit", "0", "--state", "open")
    assert listed.exit_code == 0 and "scam p=0.90" in listed.output


# -- review.yaml against queues.yaml -------------------------------------------------------------------
@pytest.mark.parametrize("old, new, problem", [
    ("heartbeat_seconds: 60", "heartbeat_seconds: 1200", "field 'heartbeat_seconds': 1200 must be below"),
    ("break_queue: low-risk", "break_queue: low-risks", "field 'break_queue': 'low-risks' is not a queue"),
    ("break_queue: low-risk", "break_queue: escalation", "field 'break_queue': 'escalation' is the escalation"),
])
def test_review_settings_are_checked_against_the_queues(tmp_path, taxonomy, queue_config, old, new, problem):
    """A heartbeat of 1200 s over a 900 s lease validated; the first renewal found the claim lapsed."""
    from labeling.review_config import REVIEW_FILE, load_review_settings

    src = (config_dir() / REVIEW_FILE).read_text()
    assert old in src
    path = tmp_path / REVIEW_FILE
    path.write_text(src.replace(old, new))
    load_review_settings(path, taxonomy=taxonomy)  # each file alone validates
    with pytest.raises(ConfigError, match=problem):
        load_review_settings(path, taxonomy=taxonomy, queues=queue_config)
    assert load_review_settings(config_dir(), taxonomy=taxonomy, queues=queue_config).heartbeat_seconds == 60
