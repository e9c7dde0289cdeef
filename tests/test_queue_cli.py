"""The queue commands: same service calls as the UI, `--json` for scripts, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from workbench.cli import cli
from core.store import open_store

from test_queue_support import add_campaign, add_scored


@pytest.fixture
def env(tmp_path, taxonomy):
    data = tmp_path / "data"
    store = open_store(data)
    add_scored(store, taxonomy, [
        {"id": "s1", "label": "scam", "p": 0.95, "text": "You won a prize, call 0900"},
        {"id": "s2", "label": "scam", "p": 0.7},
        {"id": "h1", "label": "hate", "p": 0.9},
        {"id": "c1", "label": "spam", "p": 0.9}, {"id": "c2", "label": "spam", "p": 0.9},
    ])
    add_campaign(store, ["c1", "c2"])
    store.dispose()
    runner = CliRunner()

    def run(*args, ok=True):
        res = runner.invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)
        if ok:
            assert res.exit_code == 0, res.output
        return res

    return run


def test_build_claim_decide_appeal_resolve(env, tmp_path):
    built = json.loads(env("cases", "build", "--json").output)
    assert built["cases"] == 6 and built["campaign_cases"] == 1
    claimed = json.loads(env("next", "--queue", "fraud", "--as", "ann", "--json").output)
    assert claimed["item_id"] == "s1" and claimed["claimed_by"] == "ann" and "priority_reason" in claimed
    refused = env("decide", str(claimed["id"]), "--label", "benign", "--as", "ann", ok=False)
    assert refused.exit_code == 1 and "rationale is required" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    done = json.loads(env("decide", str(claimed["id"]), "--label", "scam", "--action", "block_sender",
                          "--as", "ann", "--json").output)
    assert done["state"] == "decided" and len(done["decision_ids"]) == 1
    ap = json.loads(env("appeal", "s1", "--reason", "my bank", "--as", "user-9", "--json").output)
    assert ap["queue"] == "appeals" and ap["meta"]["appeal"]["reason"] == "my bank"
    listed = json.loads(env("appeals", "list", "--json").output)
    assert [r["id"] for r in listed] == [ap["id"]]
    res = json.loads(env("appeals", "resolve", str(ap["id"]), "--outcome", "reverse", "--rationale", "bank",
                         "--as", "bob", "--json").output)
    assert res["upheld"] is True
    kpis = json.loads(env("queues", "--json").output)
    assert kpis["appeals_upheld_rate"] == 1.0 and kpis["resolved_per_analyst"] == {"ann": 1, "bob": 1}
    human = env("queues").output
    assert "SLA compliance" in human and "fraud" in human
    png = tmp_path / "q.png"
    assert json.loads(env("queues", "--plot", str(png), "--json").output)["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_skip_release_escalate_and_empty_queue(env):
    env("cases", "build")
    first = json.loads(env("next", "-q", "fraud", "--as", "ann", "--json").output)
    env("skip", str(first["id"]), "--as", "ann", "--reason", "language")
    second = json.loads(env("next", "-q", "fraud", "--as", "ann", "--json").output)
    assert second["id"] != first["id"]
    env("release", str(second["id"]), "--as", "ann")
    again = json.loads(env("next", "-q", "fraud", "--as", "ann", "--json").output)
    assert again["id"] == second["id"]  # released (not skipped): offered again
    esc = json.loads(env("escalate", str(first["id"]), "--reason", "names a school", "--severity", "P0",
                         "--as", "lead", "--json").output)
    assert esc["case"]["queue"] == "escalation" and esc["case"]["severity"] == "P0"
    packet = json.loads(open(esc["packet_path"], encoding="utf-8").read())
    assert packet["case_id"] == first["id"] and packet["recommended_next_step"]["severity"] == "P0"
    shown = env("cases", "show", str(first["id"])).output
    assert "escalated: names a school" in shown and "why first:" in shown
    rows = json.loads(env("cases", "list", "--queue", "escalation", "--json").output)
    assert [r["id"] for r in rows] == [first["id"]]
    bulk = json.loads(env("next", "-q", "campaigns", "--as", "lead", "--json").output)
    env("decide", str(bulk["id"]), "--label", "spam", "--action", "remove", "--as", "lead")
    assert env("next", "-q", "campaigns", "--as", "lead", ok=False).exit_code == 3
    assert json.loads(env("cases", "sweep", "--json").output)["leases_expired"] == 0


def test_user_errors_are_one_line(env):
    env("cases", "build")
    for args, msg in ((("decide", "999", "--label", "scam", "--as", "a"), "no case 999"),
                      (("next", "-q", "nope", "--as", "a"), "unknown queue 'nope'"),
                      (("appeal", "s2", "--reason", "x", "--as", "u"), "has no decision to appeal"),
                      (("release", "1", "--as", "a"), "is not claimed by a")):
        res = env(*args, ok=False)
        assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output


def test_cli_module_imports_stay_light():
    code = ("import sys, workbench.cli.queue, workbench.cli.campaigns, workbench.cli.models, workbench.context; "
            "heavy = [m for m in ('sqlalchemy', 'numpy', 'pandas', 'torch', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_leases_are_capped_and_case_text_is_masked_unless_revealed(env):
    env("cases", "build", "--json")
    refused = env("next", "--queue", "hate-harassment", "--as", "ann", "--lease", "3000000000", ok=False)
    assert refused.exit_code == 1 and "max_lease_seconds" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    claimed = json.loads(env("next", "--queue", "hate-harassment", "--as", "ann", "--json").output)
    assert claimed["item_id"] == "h1" and claimed["masked"]
    shown = json.loads(env("cases", "show", str(claimed["id"]), "--json").output)
    assert shown["masked"] and shown["item"]["text"] == claimed["item"]["text"] and "•" in shown["item"]["text"]
    needs_who = env("cases", "show", str(claimed["id"]), "--reveal", ok=False)
    assert needs_who.exit_code != 0 and "--as" in needs_who.output
    revealed = json.loads(env("cases", "show", str(claimed["id"]), "--reveal", "--as", "lead", "--json").output)
    assert not revealed["masked"] and "•" not in revealed["item"]["text"]
    log = json.loads(env("audit", "log", "--json").output)
    assert log[0]["action"] == "text.reveal" and log[0]["actor"] == "lead"


def test_campaign_decision_previews_and_says_what_it_left_out(env):
    env("cases", "build", "--json")
    own = json.loads(env("next", "--queue", "spam", "--as", "ann", "--json").output)
    camp = json.loads(env("next", "--queue", "campaigns", "--as", "lead", "--json").output)
    preview = json.loads(env("cases", "preview", str(camp["id"]), "--as", "lead", "--json").output)
    assert preview["members"] == 2 and preview["held_by_others"] == {own["item_id"]: "ann"}
    out = env("decide", str(camp["id"]), "--label", "spam", "--as", "lead").output
    assert "left out 1 member(s) another analyst holds" in out
