"""Hardening (export push): `export --push-to-hub` pushed the dataset (every text unmasked, its
authors and notes) to the Hub and only then recorded `labels.export`, the one event of the export:
a store that failed that write left user content outside with no audit record. Now a `labels.push`
event recording the intent (repo, rows, unmasked texts by tier, who) commits before any byte is
pushed; the push's result goes into `labels.export` after it (or, when that fails, into a second
`labels.push` event); no intent recorded, nothing pushed."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select

import core.audit
from core.schema import AuditEvent, Decision, utcnow
from labeling.export import ExportError, export_labels
from test_models_fixtures import add_items

REPO = "me/labels"


def _labelled(store):
    ids = add_items(store, ["buy cheap pills", "see you at 5"], ["spam", None])
    with store.begin() as conn:
        for i, label in zip(ids, ("spam", "benign")):
            conn.execute(insert(Decision.__table__).values(
                item_id=i, label=label, action="remove", kind="review", reviewer="ann", taxonomy_version="t",
                created_at=utcnow()))
    return store


@pytest.fixture
def labelled(any_store):
    return _labelled(any_store)


@pytest.fixture
def hub(monkeypatch):
    """A Hub that says the repo is private and keeps what is pushed to it (the real one is never reached)."""
    import datasets
    import huggingface_hub

    pushed: list = []
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, repo, **kw: SimpleNamespace(private=True))
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, self.num_rows)))
    return pushed


def _events(store, action=None):
    with store.read() as conn:
        q = select(AuditEvent.action, AuditEvent.actor, AuditEvent.entity_id, AuditEvent.payload, AuditEvent.hash)
        q = q.where(AuditEvent.action.in_([action] if action else ["labels.push", "labels.export"]))
        return [dict(r._mapping) for r in conn.execute(q.order_by(AuditEvent.id))]


def _failing(monkeypatch, *actions):
    """Make `audit.record` fail for these actions (the store is locked just then)."""
    from sqlalchemy.exc import OperationalError

    real = core.audit.record

    def record(conn, actor, action, *a, **k):
        if action in actions:
            raise OperationalError("INSERT INTO audit_events ...", {}, Exception("database is locked"))
        return real(conn, actor, action, *a, **k)

    monkeypatch.setattr(core.audit, "record", record)


def test_the_push_is_recorded_before_any_byte_leaves(labelled, taxonomy, tmp_path, monkeypatch, hub):
    import datasets

    seen = []

    def push(self, repo, **kw):  # what the audit log holds at the moment the bytes leave
        seen.append(_events(labelled))
        hub.append((repo, kw))

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", push)
    summary = export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO, actor="ann")
    [[intent]] = seen  # was: nothing at all until after the push
    assert (intent["action"], intent["actor"], intent["entity_id"]) == ("labels.push", "ann", REPO)
    p = intent["payload"]
    assert (p["state"], p["repo"], p["rows"]) == ("intended", REPO, 2)
    assert p["unmasked_by_tier"] == summary["unmasked_by_tier"] and sum(p["unmasked_by_tier"].values()) == 2
    assert hub == [(REPO, {"private": True})]
    [_, done] = _events(labelled)
    assert done["action"] == "labels.export" and done["payload"]["pushed_to"] == REPO
    assert done["payload"]["push_intent"] == intent["hash"]  # the result names the intent it completes


def test_nothing_is_pushed_when_the_intent_cannot_be_recorded(labelled, taxonomy, tmp_path, monkeypatch, hub):
    _failing(monkeypatch, "labels.push")
    with pytest.raises(ExportError, match=r"out: not exported: the push to me/labels could not be recorded "
                                          r"\(.*database is locked\), so nothing was pushed or written$") as err:
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    assert "\n" not in str(err.value)
    assert hub == [] and not (tmp_path / "out").exists() and _events(labelled) == []  # was: pushed, unaudited
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left


def test_nothing_is_pushed_when_no_commit_goes_through(labelled, taxonomy, tmp_path, monkeypatch, hub):
    """The store takes the event, then its commit fails (was: pushed, then "it was pushed already")."""
    import contextlib

    from sqlalchemy.exc import OperationalError

    real = labelled.begin

    @contextlib.contextmanager
    def begin():
        with real() as conn:
            yield conn
            raise OperationalError("COMMIT", {}, Exception("database is locked"))  # rolled back

    monkeypatch.setattr(labelled, "begin", begin)
    with pytest.raises(ExportError, match=r"the push to me/labels could not be recorded \(.*database is locked\), so "
                                          r"nothing was pushed or written$"):
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    monkeypatch.undo()
    assert hub == [] and not (tmp_path / "out").exists() and _events(labelled) == []


def test_a_push_whose_export_event_fails_records_its_result_apart(labelled, taxonomy, tmp_path, monkeypatch, hub):
    _failing(monkeypatch, "labels.export")
    with pytest.raises(ExportError, match=r"out: not exported: its audit event could not be recorded \(.*database "
                                          r"is locked\), so nothing was written; it was pushed to me/labels "
                                          r"already \(recorded as its labels.push event\)$") as err:
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    assert "\n" not in str(err.value) and hub == [(REPO, 2)] and not (tmp_path / "out").exists()
    intent, result = _events(labelled)
    assert intent["payload"]["state"] == "intended" and result["action"] == "labels.push"
    assert (result["payload"]["state"], result["payload"]["intent"]) == ("pushed", intent["hash"])


def test_a_push_whose_result_cannot_be_recorded_keeps_its_intent(labelled, taxonomy, tmp_path, monkeypatch, hub):
    real, calls = core.audit.record, []

    def record(conn, actor, action, *a, **k):  # the intent commits; then the store locks up
        calls.append(action)
        if len(calls) > 1:
            raise RuntimeError("database is locked\nbackground on this error")
        return real(conn, actor, action, *a, **k)

    monkeypatch.setattr(core.audit, "record", record)
    with pytest.raises(ExportError, match=r"nothing was written; it was pushed to me/labels already: only its intent "
                                          r"is recorded \(the result could not be: database is locked\)$") as err:
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    assert "\n" not in str(err.value) and hub == [(REPO, 2)]
    [intent] = _events(labelled)
    assert intent["payload"]["state"] == "intended" and intent["payload"]["repo"] == REPO


def test_a_failed_push_is_recorded_against_its_intent(labelled, taxonomy, tmp_path, monkeypatch, hub):
    import datasets

    def offline(self, repo, **kw):
        raise ConnectionError("Cannot reach https://huggingface.co\nunset HF_HUB_OFFLINE")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", offline)
    with pytest.raises(ExportError, match=r"out: written \(2 rows\), but the push to me/labels failed: Cannot reach "
                                          r"https://huggingface.co$"):
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    intent, done = _events(labelled)
    assert intent["payload"]["state"] == "intended"
    assert done["payload"]["pushed_to"] is None and done["payload"]["push_error"] == "Cannot reach https://huggingface.co"
    assert done["payload"]["push_intent"] == intent["hash"] and (tmp_path / "out" / "labels.parquet").is_file()


def test_an_export_without_a_push_records_one_event(labelled, taxonomy, tmp_path, hub):
    export_labels(labelled, taxonomy, tmp_path / "out")
    [done] = _events(labelled)
    assert done["action"] == "labels.export" and "push_intent" not in done["payload"] and hub == []


# -- hostile input: repo ids, paths, what the folder lets others read --------------------------
@pytest.mark.parametrize("repo", ["", "me/x\ny", "../../etc/passwd", "me/..", "me/" + "a" * 200, "me/x y"])
def test_a_repo_id_the_hub_would_refuse_is_refused_before_any_work(labelled, taxonomy, tmp_path, hub, repo):
    """Was: the export written and audited, then the push refused in a message holding the id whole
    (a line break split it; 200 characters twice over); "" (an unset variable) exported, no push."""
    with pytest.raises(ExportError, match=r"^--push-to-hub '.*': not a Hub repo id \(.*\); nothing was written or "
                                          r"pushed$") as err:
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=repo)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300
    assert hub == [] and not (tmp_path / "out").exists() and _events(labelled) == []


def test_the_export_folder_is_its_owners_alone(labelled, taxonomy, tmp_path):
    """Unmasked texts, authors and notes were left readable by every account on the machine (0755),
    where an escalation packet, masked, is 0700."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        export_labels(labelled, taxonomy, tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


def test_the_filter_asked_for_is_recorded(labelled, taxonomy, tmp_path, hub):
    export_labels(labelled, taxonomy, tmp_path / "out", source="toy", include_source_labels=True, push_to_hub=REPO)
    intent, done = _events(labelled)
    for p in (intent["payload"], done["payload"]):
        assert (p["source"], p["include_source_labels"]) == ("toy", True)


def test_the_cli_reports_an_export_to_a_non_utf8_folder(sqlite_store, taxonomy, tmp_path):
    """The export was written and audited, then the report crashed (UnicodeEncodeError, exit 1): the
    user was told it failed. A line break in the name split the report."""
    import os

    from click.testing import CliRunner

    from workbench.cli import cli

    labelled = _labelled(sqlite_store)  # the CLI opens the store of --data-dir: SQLite
    out = os.fsdecode(bytes(tmp_path) + b"/bad\xff\nname")
    res = CliRunner().invoke(cli, ["--data-dir", str(labelled.data_dir), "export", out])
    assert res.exit_code == 0 and res.exception is None, res.output
    [line] = [x for x in res.output.splitlines() if x.startswith("exported ")]
    assert line.endswith("bad\\udcff\\nname/labels.parquet")
    assert (Path(out) / "labels.parquet").is_file() and len(_events(labelled)) == 1
