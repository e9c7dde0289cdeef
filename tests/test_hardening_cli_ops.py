"""Hardening of the operations command lines: quarantine, serve, find/notes, eval, campaigns, seed.

The defects: `campaigns list|show|timeline`, `search`, `similar`, `notes`, `quarantine list` and
`eval drift` answered a principal without `read` (a token scoped to `ingest` only), where `items`
and `find` refuse it; `eval report` into a folder it cannot make, `campaigns timeline` where the
plots folder is a file, and a `quarantine purge` that cannot write its new file ended in an
OSError traceback; a byte that is not UTF-8 in `eval report --model` or `seed --source|--surface`
ended in a UnicodeEncodeError traceback, and `rereview --seed -5` in numpy's ValueError; `eval
report --model` with a misspelt version wrote an empty report with exit 0, and `serve --queue`
with a misspelt queue started serving a page set on no queue; `notes` printed a note's line
breaks and bidi override as they were (a forged second note, text shown backwards), and
`campaigns show` a URL entity's escape sequence in the shared entities and members' linked_by
(an OSC 52 clipboard write ran); the `quarantine`, `campaigns` and `eval` groups' help had no
example; `serve` on a port already taken (or a host that does not resolve) ended in Gradio's
OSError traceback, `serve --host " "` said "serving on http://:7860" while the server chose its
own interface, and `demo --json --serve` printed its "serving" line into the JSON on stdout.
"""
from __future__ import annotations

import errno
import json
import sys
import types

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, update

from core.accounts import add_user, create_token
from core.config import config_dir
from core.permissions import load_roles
from core.schema import Campaign, CampaignMember, ModelVersion
from labeling.notes import add_note
from workbench.cli import cli

from test_queue_support import add_campaign, add_scored

SPAM = "cheap pills here, order now"
OSC52 = "\x1b]52;c;aGVsbG8=\x07"


def _cli(store, token=None):
    """Run the command line on `store` (SQLite or PostgreSQL), as the holder of `token` if given."""
    base = ["--data-dir", str(store.data_dir)] + ([] if store.is_sqlite else ["--db", store.url])
    env = {"WORKBENCH_TOKEN": token} if token else {"WORKBENCH_TOKEN": None}

    def run(*args: str):
        return CliRunner().invoke(cli, [*base, *args], env=env)
    return run


def _seed(store, taxonomy) -> int:
    add_scored(store, taxonomy, [{"id": "s1", "label": "spam", "p": 0.9, "text": SPAM},
                                 {"id": "s2", "label": "spam", "p": 0.9, "text": SPAM + "!"}])
    return add_campaign(store, ["s1", "s2"])


def _one_line_error(res, *words: str) -> None:
    assert res.exit_code != 0 and res.stdout == "", res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, (OSError, UnicodeError, ValueError))
    for w in words:
        assert w in res.stderr, res.output


READS = [["campaigns", "list", "--json"], ["campaigns", "show", "{cid}", "--json"],
         ["campaigns", "timeline", "{cid}", "--json"], ["search", "cheap pills"], ["similar", "s1"],
         ["notes", "item", "s1"], ["quarantine", "list", "--json"], ["eval", "drift", "--json"],
         ["cases", "list", "--json"], ["status", "--json"], ["appeals", "list", "--json"],
         ["models", "list", "--json"], ["audit", "verify", "--json"], ["webhooks", "list", "--json"]]


def test_read_only_commands_refuse_a_principal_without_read(any_store, taxonomy):
    cid = _seed(any_store, taxonomy)
    roles = load_roles(config_dir())
    add_user(any_store, "ada", "admin", actor="setup", roles=roles)
    add_user(any_store, "eng", "engineer", actor="setup", roles=roles)
    add_user(any_store, "vic", "viewer", actor="setup", roles=roles)
    ingest_only = create_token(any_store, "eng", actor="setup", scopes=["ingest"])["token"]
    viewer = create_token(any_store, "vic", actor="setup")["token"]

    bot, reader = _cli(any_store, ingest_only), _cli(any_store, viewer)
    for args in READS:
        res = bot(*(a.format(cid=cid) for a in args))
        _one_line_error(res, "needs permission 'read'")
    assert not (any_store.data_dir / "campaigns" / "plots").exists()  # the timeline wrote no plot either
    for args in (["campaigns", "list", "--json"], ["notes", "item", "s1"], ["quarantine", "list", "--json"],
                 ["cases", "list", "--json"], ["status", "--json"], ["models", "list", "--json"]):
        assert reader(*args).exit_code == 0, args
    # A refusal is not a file error: `eval report` says who may not, not "cannot write".
    res = reader("eval", "report", str(any_store.data_dir / "r"), "--model", "m1")
    _one_line_error(res, "may not evaluate")
    assert "cannot write" not in res.stderr


def test_eval_report_into_a_folder_it_cannot_make_is_one_line(any_store, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = _cli(any_store)("eval", "report", str(blocker / "week-48"), "--json")
    _one_line_error(res, "cannot write the report", str(blocker / "week-48"))


def test_campaign_timeline_where_the_plots_folder_is_a_file_is_one_line(any_store, taxonomy):
    cid = _seed(any_store, taxonomy)
    (any_store.data_dir / "campaigns").write_text("a file where the plots folder belongs")
    res = _cli(any_store)("campaigns", "timeline", str(cid))
    _one_line_error(res, "cannot write the timeline plot", "campaigns")


def test_quarantine_purge_that_cannot_write_is_one_line_and_keeps_every_record(any_store, monkeypatch):
    import tempfile

    path = any_store.quarantine_path
    before = '{"reason": "bad", "quarantined_at": "2020-01-01T00:00:00"}\n'
    path.write_text(before, encoding="utf-8")

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path.parent / ".quarantine-x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    res = _cli(any_store)("quarantine", "purge", "--older-than", "0", "--json")
    _one_line_error(res, "cannot purge the quarantine", "No space left on device")
    assert path.read_text(encoding="utf-8") == before


@pytest.mark.parametrize("args", [
    ["eval", "report", "{dir}", "--model", "m\udcff1"],
    ["seed", "--policy", "spam", "--keyword", "pills", "--source", "a\udcffb"],
    ["seed", "--policy", "spam", "--keyword", "pills", "--surface", "a\udcffb"],
    ["rereview", "--seed", "-5"],
])
def test_a_bad_byte_or_negative_seed_is_a_usage_error(any_store, taxonomy, args):
    _seed(any_store, taxonomy)
    out = any_store.data_dir / "report"
    res = _cli(any_store)(*(a.format(dir=out) for a in args))
    assert res.exit_code == 2, res.output
    _one_line_error(res, args[-2])
    assert not out.exists()


def test_eval_report_refuses_an_unknown_model_version(any_store, tmp_path):
    with any_store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(id="tfidf-7", kind="tfidf", artifact_path="x", labels=[]))
    run = _cli(any_store)
    res = run("eval", "report", str(tmp_path / "r"), "--model", "tfidf-8")
    assert res.exit_code == 2
    _one_line_error(res, "unknown model version 'tfidf-8'", "tfidf-7")
    assert not (tmp_path / "r").exists()
    ok = run("eval", "report", str(tmp_path / "r"), "--model", "tfidf-7", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["model_version"] == "tfidf-7"


def test_serve_refuses_an_unknown_queue_before_it_serves(sqlite_store, monkeypatch):
    served = []
    _fake_ui(monkeypatch, lambda app, **kw: served.append(kw))
    run = _cli(sqlite_store)
    res = run("serve", "--queue", "spma")
    assert res.exit_code == 2 and not served
    _one_line_error(res, "unknown queue 'spma'", "spam")
    assert run("serve", "--queue", "spam").exit_code == 0 and served[0]["queue"] == "spam"


def test_notes_show_a_line_break_and_a_bidi_override_as_escapes(any_store, taxonomy):
    _seed(any_store, taxonomy)
    add_note(any_store, "item", "s2", "ok \u202e txet\n  2026-12-01T09:00 lena: approved", "ann")
    res = _cli(any_store)("notes", "item", "s2")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and "\u202e" not in res.stdout and "\\u202e" in lines[1]
    assert lines[1].endswith("lena: approved")  # the forged line stays inside the real note's line


def test_campaign_show_escapes_an_entity_value_and_linked_by(any_store, taxonomy):
    cid = _seed(any_store, taxonomy)
    url = "evil.example/a" + OSC52 + "b"
    with any_store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.id == cid).values(
            entities={"url": [{"value": url, "items": 2, "links": True}]}))
        conn.execute(update(CampaignMember.__table__).values(linked_by="url:" + url))
    res = _cli(any_store)("campaigns", "show", str(cid))
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "evil.example/a\\x1b]52" in res.stdout


@pytest.mark.parametrize("group", ["quarantine", "campaigns", "eval"])
def test_group_help_has_an_example(group):
    res = CliRunner().invoke(cli, [group, "--help"])
    assert res.exit_code == 0 and "Example" in res.output and f"workbench {group} " in res.output


def _fake_ui(monkeypatch, serve):
    """`workbench.ui` with `serve` replaced: the real one starts a blocking web server."""
    fake = types.ModuleType("workbench.ui")
    fake.serve = serve
    monkeypatch.setitem(sys.modules, "workbench.ui", fake)


def test_serve_on_a_port_already_taken_is_one_line(sqlite_store, monkeypatch):
    def taken(app, **kw):  # what Gradio raises when it cannot bind (port taken, host unresolvable)
        raise OSError(f"Cannot find empty port in range: {kw['port']}-{kw['port']}. You can specify ...")

    _fake_ui(monkeypatch, taken)
    res = _cli(sqlite_store)("serve", "--port", "7999")
    assert res.exit_code == 1 and not isinstance(res.exception, OSError), res.output
    assert "cannot serve on 127.0.0.1:7999" in res.stderr and "Traceback" not in res.output


def test_serve_refuses_an_empty_host(sqlite_store, monkeypatch):
    served = []
    _fake_ui(monkeypatch, lambda app, **kw: served.append(kw))
    res = _cli(sqlite_store)("serve", "--host", " ")
    assert res.exit_code == 2 and not served and "--host" in res.stderr, res.output


def test_demo_json_then_serve_keeps_stdout_one_json_document(sqlite_store, monkeypatch):
    import workbench.demo

    monkeypatch.setattr(workbench.demo, "run_demo", lambda app, **kw: {"steps": {}, "timings": {}})
    _fake_ui(monkeypatch, lambda app, **kw: None)
    res = _cli(sqlite_store)("demo", "--json", "--serve")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"steps": {}, "timings": {}}
