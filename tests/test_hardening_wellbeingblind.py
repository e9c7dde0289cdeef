"""Hardening of the blind view on the command line and of analyst well-being.

The defects: `cases show` on a calibration copy printed the item's history, the other analysts'
answers to its copies included, and "[calibration c]", to whoever ran it (the review screen hides
them); on an ordinary case of the same item it printed the peers' calibration answers too, and it
answered a principal without `read`. The shift's exposure counted reveals after the time asked
for (a shift ending at 02:00 counted the 05:00 reveals); nobody but the reader could see who is
over budget (no lead view); `cases show --reveal` past the budget said nothing where the screen
offers a break.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from core.accounts import add_user, create_token
from core.config import config_dir
from core.hooks import PermissionDenied
from core.permissions import load_roles
from core.principals import Principal
from labeling import decisions as DEC
from labeling.cases import build_cases, list_cases
from labeling.claims import next_case
from labeling.queue_config import CalibrationSet, load_queue_config
from labeling.wellbeing import exposure, record_reveal, team_exposure
from workbench.cli import cli

from test_queue_support import T0, add_scored

UTC = dt.timezone.utc


def _cli(store, token=None):
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])
    env = {"WORKBENCH_TOKEN": token}

    def run(*args: str):
        return CliRunner().invoke(cli, [*base, *args], env=env)
    return run


def _tokens(store) -> dict[str, str]:
    roles = load_roles(config_dir())
    add_user(store, "ada", "admin", actor="setup", roles=roles)
    add_user(store, "cat", "analyst", actor="setup", roles=roles)
    add_user(store, "lea", "lead", actor="setup", roles=roles)
    add_user(store, "eng", "engineer", actor="setup", roles=roles)
    out = {n: create_token(store, n, actor="setup")["token"] for n in ("cat", "lea")}
    out["ingest"] = create_token(store, "eng", actor="setup", scopes=["ingest"])["token"]
    return out


def _answered_copy(store, taxonomy) -> tuple[int, int]:
    """bob answered one calibration copy of it1: (another copy's id, the item's ordinary case id)."""
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={
        "qa_share": 0.0, "calibration_sets": [CalibrationSet(name="c", share=1.0, reviewers=3)]})
    add_scored(store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    first = next_case(store, "bob", "calibration", config=cfg)
    DEC.decide(store, taxonomy, first["id"], "bob", "spam", "remove", rationale="an ad, bob thinks", config=cfg)
    rows = list_cases(store)
    copy = next(c["id"] for c in rows if c["queue"] == "calibration" and c["id"] != first["id"]
                and c["state"] != "decided")
    ordinary = next(c["id"] for c in rows if c["queue"] != "calibration")
    return copy, ordinary


def test_cases_show_is_blind_for_an_analyst_and_whole_for_a_lead(any_store, taxonomy):
    copy, ordinary = _answered_copy(any_store, taxonomy)
    tok = _tokens(any_store)
    res = _cli(any_store, tok["cat"])("cases", "show", str(copy), "--json")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown["decisions"] == [] and "calibration_set" not in shown and "is_audit" not in shown
    assert "bob" not in res.stdout
    human = _cli(any_store, tok["cat"])("cases", "show", str(copy))
    assert human.exit_code == 0 and "bob" not in human.output and "[calibration" not in human.output, human.output
    # the item's ordinary case: the analyst sees no peer's calibration answer either
    res = _cli(any_store, tok["cat"])("cases", "show", str(ordinary), "--json")
    assert res.exit_code == 0 and "bob" not in res.stdout, res.output
    # a lead sees everything
    for case_id in (copy, ordinary):
        res = _cli(any_store, tok["lea"])("cases", "show", str(case_id), "--json")
        assert res.exit_code == 0, res.output
        assert [d["reviewer"] for d in json.loads(res.stdout)["decisions"]] == ["bob"]
    assert json.loads(_cli(any_store, tok["lea"])("cases", "show", str(copy), "--json").stdout)["calibration_set"] == "c"


def test_cases_show_refuses_a_principal_without_read(any_store, taxonomy):
    copy, _ = _answered_copy(any_store, taxonomy)
    res = _cli(any_store, _tokens(any_store)["ingest"])("cases", "show", str(copy), "--json")
    assert res.exit_code != 0 and res.stdout == "" and "read" in res.stderr, res.output
    assert "bob" not in res.output


def _reveal(store, who: str, item: str, case_id: int, at: dt.datetime, tier: str = "P0") -> None:
    with store.begin() as conn:
        record_reveal(conn, who, case_id, item, tier, at)


def test_the_shift_ends_at_now_across_midnight_and_zones(any_store, review_settings):
    """Reveals at 22:00 UTC and 05:00 UTC the next day, 8-hour shifts: the shift ending at 02:00
    UTC (07:00 at UTC+05:00) holds one of them, not the later one as well."""
    night = dt.datetime(2026, 12, 6, 22, 0)
    _reveal(any_store, "ann", "a", 1, night)
    _reveal(any_store, "ann", "b", 2, night + dt.timedelta(hours=7))
    at = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 02:00 UTC
    assert (exposure(any_store, "ann", review_settings, now=at)["severe"],
            exposure(any_store, "ann", review_settings, now=at)["revealed"]) == (1, 1)
    # 05:30 UTC as the previous evening at UTC-08:00: both in the shift
    late = dt.datetime(2026, 12, 6, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    assert exposure(any_store, "ann", review_settings, now=late)["severe"] == 2
    # 07:00 UTC the next day: the 22:00 reveal has left the shift
    assert exposure(any_store, "ann", review_settings, now=dt.datetime(2026, 12, 7, 7, 0, tzinfo=UTC))["severe"] == 1


def test_a_lead_sees_who_is_over_budget_and_not_what_they_read(any_store, review_settings, roles):
    now = dt.datetime(2026, 12, 7, 10, 0)
    budget = review_settings.exposure_budget
    for i in range(budget):
        _reveal(any_store, "cat", f"hate-{i}", i + 1, now - dt.timedelta(minutes=i))
    _reveal(any_store, "cat", "hate-0", 999, now)  # the same item again: counted once
    _reveal(any_store, "dan", "mild", 1, now, tier="P3")
    rows = team_exposure(any_store, Principal("lea", "lead"), review_settings, now=now)
    assert [(r["analyst"], r["severe"], r["over_budget"]) for r in rows] == [("cat", budget, True), ("dan", 0, False)]
    assert "hate" not in json.dumps(rows)
    with pytest.raises(PermissionDenied, match="analyst_quality"):
        team_exposure(any_store, Principal("cat", "analyst"), review_settings, now=now)


def test_exposure_on_the_command_line_for_leads_only(any_store, review_settings):
    tok = _tokens(any_store)
    for i in range(review_settings.exposure_budget):
        _reveal(any_store, "cat", f"hate-{i}", i + 1, dt.datetime.now(UTC) - dt.timedelta(minutes=i + 1))
    res = _cli(any_store, tok["lea"])("exposure", "--json")
    assert res.exit_code == 0, res.output
    assert [(r["analyst"], r["over_budget"]) for r in json.loads(res.stdout)] == [("cat", True)]
    assert "hate" not in res.stdout
    res = _cli(any_store, tok["cat"])("exposure", "--json")
    assert res.exit_code != 0 and "analyst_quality" in res.stderr and res.stdout == "", res.output


def test_a_reveal_on_the_command_line_past_the_budget_offers_a_break(any_store, taxonomy, review_settings):
    copy, _ = _answered_copy(any_store, taxonomy)
    tok = _tokens(any_store)
    res = _cli(any_store, tok["cat"])("cases", "show", str(copy), "--reveal", "--json")
    assert res.exit_code == 0 and "take a break" not in res.stderr, res.output
    for i in range(review_settings.exposure_budget):
        _reveal(any_store, "cat", f"hate-{i}", i + 1000, dt.datetime.now(UTC) - dt.timedelta(minutes=i + 1))
    res = _cli(any_store, tok["cat"])("cases", "show", str(copy), "--reveal", "--json")
    assert res.exit_code == 0, res.output
    assert "take a break" in res.stderr and "bob" not in res.stdout
    json.loads(res.stdout)  # the note stays off stdout


def test_the_review_screen_shows_no_peer_calibration_answer_on_the_item(any_store, taxonomy, review_settings,
                                                                          campaign_settings, roles):
    """The Review screen of the item's ordinary case listed bob's calibration answer to an analyst
    who holds an unanswered copy of it; a lead still sees it."""
    from labeling.packets import review_packet

    _, ordinary = _answered_copy(any_store, taxonomy)
    seen = {who.name: [d["reviewer"] for d in review_packet(any_store, taxonomy, ordinary, review_settings,
                                                            campaign_settings, viewer=who)["decisions"]]
            for who in (Principal("cat", "analyst"), Principal("lea", "lead"), Principal("bob", "analyst"))}
    assert seen == {"cat": [], "lea": ["bob"], "bob": ["bob"]}
