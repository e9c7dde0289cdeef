"""Issue 15 (personal data): the quarantine's retention, `workbench quarantine list|purge`."""
import datetime as dt
import json
import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from core import audit
from core.config import ConfigError
from core.quarantine import QuarantineError, QuarantineWriter, load_retention, purge_quarantine
from core.schema import AuditEvent, IngestRun
from core.store import open_store
from workbench.cli import cli


def run(tmp_path, *args, config_dir=None, ok=True):
    base = ["--data-dir", str(tmp_path / "data")] + (["--config-dir", str(config_dir)] if config_dir else [])
    res = CliRunner().invoke(cli, [*base, *map(str, args)], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def stamp(days_ago):
    return (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=days_ago)).isoformat()


@pytest.fixture
def seeded(tmp_path):
    """A quarantine with old, new, legacy (dated by its ingest run) and unreadable records."""
    store = open_store(tmp_path / "data")
    with store.begin() as conn:
        old_run = conn.execute(insert(IngestRun.__table__).values(
            actor="t", paths=[], started_at=dt.datetime.now() - dt.timedelta(days=90))).inserted_primary_key[0]
    lines = [
        json.dumps({"file": "a.csv", "line": 2, "field": "text", "reason": "missing text", "run_id": 9,
                    "row": {"text": "old personal data"}, "quarantined_at": stamp(40)}),
        json.dumps({"file": "a.csv", "line": 3, "field": "text", "reason": "missing text", "run_id": 9,
                    "row": {"text": "caf\\xe9 new"}, "quarantined_at": stamp(1)}, ensure_ascii=False),
        json.dumps({"file": "b.csv", "line": 7, "field": "id", "reason": "missing id", "run_id": old_run,
                    "row": {"id": ""}}),  # written before records carried a timestamp
        "{not json, kept since it cannot be dated",
        json.dumps({"file": "c.csv", "line": 5, "field": "text", "reason": "conflict: this id is already stored",
                    "run_id": 12, "stored_text": "x", "new_text": "y", "row": {}, "quarantined_at": stamp(0.5)}),
    ]
    path = store.quarantine_path
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    store.dispose()
    return path, lines


def test_list_shows_places_reasons_and_ages_without_row_contents(tmp_path, seeded):
    out = json.loads(run(tmp_path, "quarantine", "list", "--json").stdout)
    assert out["records"] == 5 and out["max_age_days"] == 30
    assert out["past_retention"] == 2 and out["undated"] == 1  # the 40-day record and the legacy one
    assert out["by_reason"] == {"missing text": 2, "missing id": 1, "unreadable quarantine line": 1, "conflict": 1}
    assert out["items"][0]["file"] == "a.csv" and out["items"][0]["line"] == 2 and out["items"][0]["age_days"] > 39
    text = json.dumps(out)
    assert "personal data" not in text and "stored_text" not in text
    human = run(tmp_path, "quarantine", "list").stdout
    assert "5 quarantined rows" in human and "a.csv:2" in human and "old personal data" not in human


def test_purge_drops_old_records_keeps_the_rest_intact_and_is_audited(tmp_path, seeded):
    path, lines = seeded
    os.chmod(path, 0o644)
    out = json.loads(run(tmp_path, "quarantine", "purge", "--older-than", "10", "--as", "alice", "--json").stdout)
    assert (out["removed"], out["kept"]) == (2, 3)
    assert path.read_text(encoding="utf-8") == "".join(line + "\n" for line in (lines[1], lines[3], lines[4]))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".quarantine-")]  # no temp file left
    store = open_store(tmp_path / "data")
    with store.read() as conn:
        ev = conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.__table__.c.id.desc())).mappings().first()
        assert audit.verify(conn).ok
    store.dispose()
    assert (ev["actor"], ev["action"], ev["payload"]["removed"], ev["payload"]["older_than_days"]) == \
        ("alice", "quarantine_purge", 2, 10)


def test_purge_defaults_to_the_retention_config(tmp_path, seeded):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "retention.yaml").write_text("quarantine:\n  max_age_days: 0\n", encoding="utf-8")
    out = json.loads(run(tmp_path, "quarantine", "purge", "--json", config_dir=cfg).stdout)
    assert out["older_than_days"] == 0 and (out["removed"], out["kept"]) == (4, 1)  # only the undatable line stays


def test_bundled_retention_config_loads():
    assert load_retention().quarantine.max_age_days == 30


@pytest.mark.parametrize("body, field", [
    ("quarantine:\n  max_age_days: -3\n", "quarantine.max_age_days"),
    ("quarantine:\n  max_age: 3\n", "quarantine.max_age"),
])
def test_a_broken_retention_config_names_file_and_field(tmp_path, body, field):
    (tmp_path / "retention.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"retention.yaml: field '{field}'"):
        load_retention(tmp_path)
    res = run(tmp_path, "quarantine", "purge", config_dir=tmp_path, ok=False)
    assert res.exit_code == 1 and field in res.output


def test_ingest_writes_the_quarantine_0600_with_a_timestamp(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "fine"}\n{"text": ""}\n', encoding="utf-8")
    run(tmp_path, "ingest", src)
    path = tmp_path / "data" / "quarantine.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [rec] = [json.loads(line) for line in path.read_text().splitlines()]
    assert dt.datetime.fromisoformat(rec["quarantined_at"]) and rec["run_id"] == 1


def test_purge_waits_for_a_writer_and_never_drops_its_records(tmp_path, monkeypatch):
    import core.quarantine

    monkeypatch.setattr(core.quarantine, "LOCK_WAIT_S", 0.2)
    store = open_store(tmp_path / "data")
    with QuarantineWriter(store.quarantine_path) as writer:
        writer.write({"file": "x", "line": 1, "field": "text", "reason": "missing text"})
        with pytest.raises(QuarantineError, match="an ingest is writing"):
            purge_quarantine(store, 0, "t")
    assert purge_quarantine(store, 0, "t")["removed"] == 1
    store.dispose()
