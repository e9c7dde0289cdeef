"""Hardening of the queue and campaign command lines.

The defects: `cases list --json` and `appeals list --json` printed every item's text raw, and
`cases list` an escalation's reason (which quotes it) in the rank reason, where the review
screen masks both; `campaigns list|show` printed exemplars and members raw where the Campaigns
tab masks them (`mask_campaign`); `search` and `similar` printed the neighbours' texts raw where
`find` masks them; a misspelt `--queue` or `--policy` listed nothing (or zero KPIs) with exit
0, as if the queue were empty; `eval report` without a folder wrote into ./workbench-data of the
working directory, not into the data directory of the store it read; `serve --port 99999` said
"serving" and then failed with an OverflowError traceback; `find --limit 0` or `-3` showed one
result, as if only one matched the page; `campaigns list|show`, `search`, `similar` and `find`
printed a text's terminal escape sequences as they were (an OSC 52 clipboard write ran).
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from core.principals import Principal
from labeling.appeals import appeal
from labeling.cases import build_cases, list_cases
from labeling.claims import claim_case
from labeling.decisions import decide
from workbench.cli import cli
from workbench.context import AppContext

from test_queue_support import add_campaign, add_scored

HATE = "you vile vermin go away"
SPAM = "cheap pills here, order now"


def _cli(store):
    """Run the command line on `store` (SQLite or PostgreSQL)."""
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])

    def run(*args: str):
        return CliRunner().invoke(cli, [*base, *args])
    return run


def _seed(store, taxonomy):
    add_scored(store, taxonomy, [
        {"id": "h1", "label": "hate", "p": 0.95, "text": HATE},
        {"id": "h2", "label": "hate", "p": 0.95, "text": HATE + " now"},
        {"id": "h3", "label": "hate", "p": 0.95, "text": HATE + " today"},
        {"id": "s1", "label": "spam", "p": 0.9, "text": SPAM},
        {"id": "s2", "label": "spam", "p": 0.9, "text": SPAM + "!"},
    ])


def _case_of(store, item_id):
    return next(r["id"] for r in list_cases(store, limit=None) if r["item_id"] == item_id and r["campaign_id"] is None)


def test_case_and_appeal_lists_mask_a_sensitive_text_and_the_escalation_reason(any_store, taxonomy, queue_config):
    _seed(any_store, taxonomy)
    build_cases(any_store, taxonomy, queue_config, progress=False)
    run = _cli(any_store)
    esc = run("escalate", str(_case_of(any_store, "h1")), "--reason", "quotes it: vile vermin", "--as", "ann")
    assert esc.exit_code == 0, esc.output
    h2 = _case_of(any_store, "h2")
    claim_case(any_store, h2, "ann", queue_config)
    decide(any_store, taxonomy, h2, "ann", "hate", config=queue_config)
    appeal(any_store, "h2", "user-1", "it was a joke", taxonomy, config=queue_config)

    listed = run("cases", "list", "--limit", "0", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {(r["item_id"], r["queue"]): r for r in json.loads(listed.stdout)}
    assert "vile" not in listed.stdout and "vermin" not in listed.stdout
    assert rows[("h3", "hate-harassment")]["text"].startswith("y•• v••• v•••••")
    assert rows[("s1", "spam")]["text"] == SPAM  # a text the rule does not mask stays readable
    human = run("cases", "list", "--limit", "0")
    assert human.exit_code == 0 and "vermin" not in human.stdout and "escalation" in human.stdout
    appeals = run("appeals", "list", "--json")
    assert appeals.exit_code == 0, appeals.output
    assert [r["item_id"] for r in json.loads(appeals.stdout)] == ["h2"] and "vermin" not in appeals.stdout


def test_campaign_list_and_detail_are_masked_as_the_campaigns_tab(any_store, taxonomy):
    _seed(any_store, taxonomy)
    hate, spam = add_campaign(any_store, ["h1", "h2"]), add_campaign(any_store, ["s1", "s2"])
    run = _cli(any_store)
    for args in (["campaigns", "list", "--json"], ["campaigns", "list"], ["campaigns", "show", str(hate), "--json"],
                 ["campaigns", "show", str(hate)]):
        res = run(*args)
        assert res.exit_code == 0, res.output
        assert "vile" not in res.stdout and "vermin" not in res.stdout, args
    shown = json.loads(run("campaigns", "show", str(spam), "--json").stdout)
    assert shown["exemplar_text"] == SPAM and {m["text"] for m in shown["members"]} == {SPAM, SPAM + "!"}


@pytest.mark.parametrize("command", ["search", "similar"])
def test_search_and_similar_mask_each_text_by_its_rule(any_store, taxonomy, monkeypatch, command):
    import clustering.search as nearest

    _seed(any_store, taxonomy)
    hits = [{"item_id": i, "similarity": s, "label": None, "decided_label": None, "campaign_id": None,
             "source": "test", "text": t} for i, s, t in (("h2", 0.97, HATE + " now"), ("s1", 0.2, SPAM))]
    monkeypatch.setattr(nearest, "search_text" if command == "search" else "similar_items",
                        lambda *a, **k: [dict(h) for h in hits])  # no index needed: the masking is the CLI's
    run = _cli(any_store)
    res = run(command, "h1", "--json")
    assert res.exit_code == 0, res.output
    out = {h["item_id"]: h for h in json.loads(res.stdout)}
    assert out["h2"]["masked"] is True and "vermin" not in out["h2"]["text"]
    assert out["s1"]["masked"] is False and out["s1"]["text"] == SPAM
    human = run(command, "h1")
    assert human.exit_code == 0 and "vermin" not in human.stdout and SPAM[:20] in human.stdout


@pytest.mark.parametrize("args, name", [(["cases", "list", "--queue", "frud"], "fraud"),
                                        (["cases", "list", "--policy", "scma"], "scam"),
                                        (["queues", "--queue", "frud", "--json"], "fraud"),
                                        (["queues", "--policy", "scma", "--json"], "scam")])
def test_a_misspelt_queue_or_policy_is_named_not_an_empty_list(sqlite_store, taxonomy, args, name):
    _seed(sqlite_store, taxonomy)
    res = _cli(sqlite_store)(*args)
    assert res.exit_code == 2 and res.stdout == ""
    assert "frud" in res.stderr or "scma" in res.stderr
    assert name in res.stderr.splitlines()[-1] and "Traceback" not in res.output


def test_eval_report_without_a_folder_writes_into_the_data_directory(sqlite_store, taxonomy, tmp_path, monkeypatch):
    _seed(sqlite_store, taxonomy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = _cli(sqlite_store)("eval", "report", "--json")
    assert res.exit_code == 0, res.output
    html = json.loads(res.stdout)["html"]
    assert html.startswith(str(sqlite_store.data_dir)) and (sqlite_store.data_dir / "reports" / "latest").is_dir()
    assert not (elsewhere / "workbench-data").exists()


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_port_out_of_range_before_it_says_serving(sqlite_store, port):
    res = _cli(sqlite_store)("serve", "--port", port)
    assert res.exit_code == 2 and "serving" not in res.stdout
    assert "--port" in res.stderr and "Traceback" not in res.output


@pytest.mark.parametrize("args", [["--limit", "0"], ["--limit", "-3"], ["--limit", "501"], ["--offset", "-1"]])
def test_find_refuses_a_page_size_or_offset_out_of_range(sqlite_store, taxonomy, args):
    _seed(sqlite_store, taxonomy)
    res = _cli(sqlite_store)("find", "cheap", *args, "--json")
    assert res.exit_code == 2 and res.stdout == ""
    assert args[0] in res.stderr and "Traceback" not in res.output


def test_the_helpers_keep_every_row_and_its_order(sqlite_store, taxonomy, queue_config):
    from workbench.cli.common import masked_case_rows

    _seed(sqlite_store, taxonomy)
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    rows = list_cases(sqlite_store, limit=None)
    app = AppContext(str(sqlite_store.data_dir), None, None)
    app.principal = lambda *_: Principal("lead", "lead")  # type: ignore[method-assign]
    shown = masked_case_rows(app, rows)
    assert [r["id"] for r in shown] == [r["id"] for r in rows]
    assert sum(r["text"] != s["text"] for r, s in zip(rows, shown)) == 3  # the three hate items
    app.close()


EVIL = "win a prize\x1b]52;c;Y3VybCBldmlsfHNo\x07\x1b[2K\rcall 0900 now"


@pytest.mark.parametrize("args", [["campaigns", "show", "{camp}"], ["campaigns", "list"], ["find", "prize"]])
def test_a_texts_terminal_escapes_are_shown_not_run(sqlite_store, taxonomy, args):
    add_scored(sqlite_store, taxonomy, [{"id": "e1", "label": "spam", "p": 0.9, "text": EVIL},
                                        {"id": "e2", "label": "spam", "p": 0.9, "text": EVIL + "!"}])
    camp = add_campaign(sqlite_store, ["e1", "e2"])
    res = _cli(sqlite_store)(*[a.format(camp=camp) for a in args])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\r" not in res.stdout
    assert "win a prize\\x1b]52;c;" in res.stdout  # shown as its escape, on the item's one line
