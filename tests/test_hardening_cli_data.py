"""Hardening of the data commands and the quarantine.

The defects: `quarantine list` printed a record's file name and field (a JSONL key given twice
is the field of its record) as they were, so an escape sequence in them ran in the operator's
terminal (an OSC 52 clipboard write), and a record holding a lone surrogate (`"\\ud800"`, which
the writer stores as ASCII JSON) made `list` and `list --json` fail with a UnicodeEncodeError
traceback; a hand-edited `quarantined_at` that UTC cannot hold ("0001-01-01T00:00:00+01:00")
made `list` and `purge` fail with an OverflowError traceback; `purge` of a quarantine.jsonl that
is a symlink replaced the link with the kept records and left every purged record (personal
data past its retention) in the link's target; `items` printed every text unmasked (`find`, the
case lists and the HTTP API mask it), ran a text's terminal escapes, and needed no `read`
permission (a token scoped to `ingest` listed every text); an argument with a byte that is not
UTF-8 (`--source $'\\xff'`, a lone surrogate) was a UnicodeEncodeError traceback from the
database driver in `items`, `export`, `note`, `notes`, `tag` and `webhooks list`; `webhooks
list --limit -1` was a PostgreSQL DataError traceback; `ingest` printed a file name's escape
sequence as it was.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from workbench.cli import cli

from test_queue_support import add_scored

OSC = "\x1b]52;c;Y3VybCBldmlsfHNo\x07"


def _cli(store):
    """Run the command line on `store` (SQLite or PostgreSQL)."""
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])

    def run(*args: str, token: str | None = None):
        return CliRunner().invoke(cli, [*base, *(["--token", token] if token else []), *args])
    return run


def _hostile_ingest(store, tmp_path):
    """Ingest a JSONL file whose name holds an escape sequence and whose rows repeat a key that
    holds one, and a key that is a lone surrogate: three quarantined rows."""
    key = json.dumps(OSC + "\x1b[2K")
    src = tmp_path / f"in{OSC}.jsonl"
    src.write_text("{%s: 1, %s: 2}\n" % (key, key) + '{"\\ud800": 1, "\\ud800": 2}\n'
                   + json.dumps({"text": "hello", "when": "soon"}) + "\n", encoding="utf-8")
    return _cli(store)("ingest", str(src), "--created-column", "when", "--source", "x")


def test_quarantine_list_shows_escapes_and_a_lone_surrogate_instead_of_failing(sqlite_store, tmp_path):
    res = _hostile_ingest(sqlite_store, tmp_path)
    assert "\x1b]52" not in res.stdout and "in\\x1b]52;c;" in res.stdout  # the summary names the file, escaped
    human = _cli(sqlite_store)("quarantine", "list")
    assert human.exit_code == 0, human.output
    assert "\x1b" not in human.stdout and "\x07" not in human.stdout
    assert "field \\x1b]52;c;" in human.stdout and "field \\ud800" in human.stdout
    res = _cli(sqlite_store)("quarantine", "list", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    res.stdout.encode("utf-8")  # valid UTF-8 throughout
    assert out["records"] == 3 and [r["field"] for r in out["items"]][1] == "\\ud800"


@pytest.mark.parametrize("command", [["quarantine", "list", "--json"], ["quarantine", "purge", "--older-than", "1"]])
def test_a_hand_edited_time_utc_cannot_hold_is_undated_and_kept(sqlite_store, command):
    line = json.dumps({"file": "a.csv", "line": 2, "field": "text", "reason": "missing text",
                       "quarantined_at": "0001-01-01T00:00:00+01:00"})
    sqlite_store.quarantine_path.write_text(line + "\n", encoding="utf-8")
    res = _cli(sqlite_store)(*command)
    assert res.exit_code == 0, res.output
    if command[1] == "list":
        assert json.loads(res.stdout)["undated"] == 1
    assert sqlite_store.quarantine_path.read_text(encoding="utf-8") == line + "\n"


def test_purge_through_a_symlink_drops_the_records_from_its_target(sqlite_store, tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    target = vault / "quarantine.jsonl"
    old = json.dumps({"file": "a.csv", "line": 2, "field": "text", "reason": "missing text",
                      "quarantined_at": "2000-01-01T00:00:00", "row": {"text": "old personal data"}})
    new = json.dumps({"file": "a.csv", "line": 3, "field": "text", "reason": "missing text",
                      "quarantined_at": "2999-01-01T00:00:00"})
    target.write_text(old + "\n" + new + "\n", encoding="utf-8")
    sqlite_store.quarantine_path.symlink_to(target)
    res = _cli(sqlite_store)("quarantine", "purge", "--older-than", "30", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["removed"] == 1
    assert sqlite_store.quarantine_path.is_symlink()  # writers still append to the target
    assert target.read_text(encoding="utf-8") == new + "\n"


HATE = "you vile vermin go away"


def test_items_masks_a_sensitive_text_and_shows_escapes(any_store, taxonomy):
    add_scored(any_store, taxonomy, [{"id": "h1", "label": "hate", "p": 0.95, "text": HATE},
                                     {"id": "s1", "label": "spam", "p": 0.9, "text": "win a prize" + OSC + "\rcall"}])
    run = _cli(any_store)
    rows = {r["id"]: r for r in map(json.loads, run("items", "--json").stdout.splitlines())}
    assert rows["h1"]["masked"] and "vile" not in rows["h1"]["text"]
    assert not rows["s1"]["masked"] and rows["s1"]["text"].startswith("win a prize")
    human = run("items")
    assert human.exit_code == 0, human.output
    assert "vile" not in human.stdout and "\x1b" not in human.stdout and "\r" not in human.stdout
    assert "win a prize\\x1b]52;c;" in human.stdout


def test_items_needs_the_read_permission(sqlite_store, taxonomy):
    from core.accounts import add_user, create_token
    from core.permissions import load_roles
    from core.config import config_dir

    roles = load_roles(config_dir())
    add_scored(sqlite_store, taxonomy, [{"id": "h1", "label": "hate", "p": 0.95, "text": HATE}])
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=roles)
    add_user(sqlite_store, "eng", "engineer", actor="setup", roles=roles)
    scoped = create_token(sqlite_store, "eng", actor="ada", scopes=["ingest"])["token"]
    full = create_token(sqlite_store, "eng", actor="ada")["token"]
    run = _cli(sqlite_store)
    refused = run("items", "--json", token=scoped)
    assert refused.exit_code != 0 and "h1" not in refused.stdout
    assert run("items", "--json", token=full).exit_code == 0


BAD = "a\udcffb"  # a byte that is not UTF-8 in argv, as Python decodes it


@pytest.mark.parametrize("args", [
    ["items", "--source", BAD], ["items", "--label", BAD], ["items", "--state", BAD],
    ["export", "{out}", "--source", BAD, "--include-source-labels"],
    ["note", "item", BAD, "a note"], ["notes", "item", BAD], ["tag", "item", BAD, "t1"],
    ["webhooks", "list", "--event", BAD], ["webhooks", "list", "--endpoint", BAD],
])
def test_an_argument_that_is_not_unicode_is_a_usage_error(any_store, tmp_path, args):
    res = _cli(any_store)(*[a.format(out=tmp_path / "out") for a in args])
    assert res.exit_code == 2, (res.exit_code, repr(res.exception), res.output)
    assert "not valid Unicode" in res.output


def test_webhooks_list_refuses_a_limit_out_of_range(any_store):
    res = _cli(any_store)("webhooks", "list", "--limit", "-1", "--json")
    assert res.exit_code == 2 and "--limit" in res.output, (repr(res.exception), res.output)
