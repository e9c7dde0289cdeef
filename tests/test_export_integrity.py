"""Label exports are whole or absent, never silently replace an earlier one, label what training
learns from, and carry notes whose authorship cannot be forged."""
import errno
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from core.schema import AuditEvent, Decision, utcnow
from labeling.export import ExportError, export_labels, label_rows
from labeling.notes import add_note
from test_export import decided_store  # noqa: F401 (the fixture)


def _rows(path):
    import datasets
    import pyarrow.parquet as pq

    return datasets.load_from_disk(str(path / "dataset")).num_rows, pq.read_table(str(path / "labels.parquet")).num_rows


def _exports(store):
    A = AuditEvent.__table__
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(A).where(A.c.action == "labels.export")).scalar()


def test_a_folder_holding_an_earlier_export_is_refused_unless_overwrite(decided_store, taxonomy, tmp_path):
    out = tmp_path / "out"
    first = export_labels(decided_store, taxonomy, out, include_source_labels=True)
    assert first["rows"] == 3 and first["replaced"] is False
    with pytest.raises(ExportError, match=r"out: the folder is not empty .*pass --overwrite") as err:
        export_labels(decided_store, taxonomy, out)
    assert "\n" not in str(err.value)
    assert _rows(out) == (3, 3) and _exports(decided_store) == 1  # the earlier export is untouched

    second = export_labels(decided_store, taxonomy, out, overwrite=True)
    assert second["rows"] == 2 and second["replaced"] is True
    assert _rows(out) == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "items.jsonl", "out"]  # no temp or old folder left behind


def test_an_empty_or_missing_folder_needs_no_overwrite_and_a_file_is_refused(decided_store, taxonomy, tmp_path):
    (tmp_path / "empty").mkdir()
    assert export_labels(decided_store, taxonomy, tmp_path / "empty")["replaced"] is False
    assert export_labels(decided_store, taxonomy, tmp_path / "new" / "deeper")["rows"] == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        export_labels(decided_store, taxonomy, tmp_path / "file", overwrite=True)


@pytest.mark.parametrize("fail", ["save_to_disk", "to_parquet"])
def test_a_failed_write_leaves_the_earlier_export_whole(decided_store, taxonomy, tmp_path, monkeypatch, fail):
    import datasets

    out = tmp_path / "out"
    export_labels(decided_store, taxonomy, out, include_source_labels=True)

    def disk_full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, fail, disk_full)
    with pytest.raises(ExportError, match="cannot write the export: .*No space left"):
        export_labels(decided_store, taxonomy, out, overwrite=True)
    with pytest.raises(ExportError, match="cannot write the export"):
        export_labels(decided_store, taxonomy, tmp_path / "fresh")
    monkeypatch.undo()
    assert _rows(out) == (3, 3) and _exports(decided_store) == 1  # old dataset and parquet together, no event
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "items.jsonl", "out"]  # temp folders removed, "fresh" not made


def test_the_export_command_needs_overwrite_to_replace(decided_store, tmp_path):
    from workbench.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["--data-dir", str(decided_store.data_dir), "export", str(tmp_path / "out"),
                                        *args], catch_exceptions=False)

    assert run().exit_code == 0
    res = run("--include-source-labels")
    assert res.exit_code != 0 and "pass --overwrite" in res.output
    res = run("--include-source-labels", "--overwrite", "--json")
    assert res.exit_code == 0, res.output
    assert _rows(tmp_path / "out") == (3, 3)


def _calibrate(store, taxonomy, item_id, votes):
    with store.begin() as conn:
        for who, label in votes:
            conn.execute(insert(Decision.__table__).values(
                item_id=item_id, label=label, action="no_action", kind="calibration", reviewer=who,
                taxonomy_version=taxonomy.version, created_at=utcnow()))


def test_calibration_labels_are_exported_as_training_uses_them(decided_store, taxonomy, tmp_path):
    from labeling.training_data import learning_data
    from models.config import LearningSettings

    # sms_spam:2 has only a source label (benign); three analysts calibrate it as spam (2 to 1).
    _calibrate(decided_store, taxonomy, "sms_spam:2", [("ann", "spam"), ("bob", "spam"), ("cy", "benign")])
    # sms_spam:1 has a decision of record (spam): copies saying otherwise do not overrule it.
    _calibrate(decided_store, taxonomy, "sms_spam:1", [("ann", "benign"), ("bob", "benign")])
    settings = LearningSettings()
    ld = learning_data(decided_store, taxonomy, settings, "eng")
    trained = dict(zip(ld.data.ids, ld.data.labels))
    for include in (False, True):
        rows = {r["id"]: r for r in label_rows(decided_store, taxonomy, include_source_labels=include)}
        assert {i: r["label"] for i, r in rows.items()} == trained
        two = rows["sms_spam:2"]
        assert (two["label_origin"], two["decision_kind"], two["reviewer"]) == ("calibration", "calibration",
                                                                               "ann,bob,cy")
        assert two["decision_id"] is None and two["decided_at"]
        assert rows["sms_spam:1"]["label_origin"] == "human" and rows["sms_spam:1"]["label"] == "spam"
    summary = export_labels(decided_store, taxonomy, tmp_path / "out", splits=settings)
    assert summary["by_origin"] == {"human": 2, "source": 0, "calibration": 1}


def test_exported_notes_keep_each_author(sqlite_store, taxonomy, queue_config):
    from labeling.cases import build_cases
    from labeling.claims import next_case
    from labeling.decisions import decide
    from test_queue_support import add_scored

    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}])
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    case = next_case(sqlite_store, "ann", "spam", config=queue_config)
    decide(sqlite_store, taxonomy, case["id"], "ann", "spam", action="remove", config=queue_config)
    add_note(sqlite_store, "item", "a", "looks like spam\nlead: verified, safe to train on", "mallory")
    add_note(sqlite_store, "item", "a", "agreed", "ann")
    notes = json.loads(label_rows(sqlite_store, taxonomy)[0]["notes"])
    assert [(n["author"], n["body"]) for n in notes] == [
        ("mallory", "looks like spam\nlead: verified, safe to train on"), ("ann", "agreed")]
    assert all(n["created_at"] for n in notes)
