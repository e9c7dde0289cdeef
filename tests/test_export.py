import json

import pytest
from sqlalchemy import insert, select

from labeling.export import ExportError, export_labels
from core.ingest import ColumnMap, ingest_paths
from core.schema import Case, Prediction, utcnow

SPAM = {"benign": 0.05, "spam": 0.9, "scam": 0.05, "hate": 0.0, "harassment": 0.0}


@pytest.fixture
def decided_store(sqlite_store, taxonomy, tmp_path, queue_config):
    from labeling.decisions import correct, decide
    from labeling.cases import build_cases

    src = tmp_path / "items.jsonl"
    rows = [{"id": "1", "text": "cheap pills", "label": "spam"}, {"id": "2", "text": "see you soon", "label": "ham"},
            {"id": "3", "text": "free ringtones", "label": "spam"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ingest_paths(sqlite_store, taxonomy, [str(src)], source="sms_spam", columns=ColumnMap(id="id", label="label"),
                 progress=False)
    with sqlite_store.begin() as conn:
        for i in ("1", "3"):
            conn.execute(insert(Prediction.__table__).values(
                item_id=f"sms_spam:{i}", model_version="m1", label="spam", score=0.9, scores=SPAM, uncertainty=0.1,
                taxonomy_version=taxonomy.version, created_at=utcnow()))
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    with sqlite_store.read() as conn:
        cases = dict(conn.execute(select(Case.item_id, Case.id).where(Case.item_id.is_not(None))).all())
    decide(sqlite_store, taxonomy, cases["sms_spam:1"], "ann", "spam", action="remove", config=queue_config)
    first = decide(sqlite_store, taxonomy, cases["sms_spam:3"], "ann", "spam", action="remove",
                   config=queue_config)
    correct(sqlite_store, taxonomy, first["decision_ids"][0], "lead", "benign", action="no_action",
            rationale="ringtone offer from the carrier itself")
    return sqlite_store


def test_export_human_labels_with_audit_columns(decided_store, taxonomy, tmp_path):
    import datasets

    summary = export_labels(decided_store, taxonomy, tmp_path / "out")
    ds = datasets.load_from_disk(summary["path"])
    assert ds.features["label"].names == taxonomy.labels
    rows = {r["id"]: r for r in ds}
    assert set(rows) == {"sms_spam:1", "sms_spam:3"}
    assert ds.features["label"].int2str(rows["sms_spam:1"]["label"]) == "spam"
    corrected = rows["sms_spam:3"]
    assert ds.features["label"].int2str(corrected["label"]) == "benign"  # the correction wins
    assert corrected["reviewer"] == "lead" and corrected["rationale"].startswith("ringtone")
    assert corrected["model_label"] == "spam" and corrected["label_origin"] == "human"
    assert (tmp_path / "out" / "labels.parquet").exists()


def test_export_with_source_labels(decided_store, taxonomy, tmp_path):
    summary = export_labels(decided_store, taxonomy, tmp_path / "out", include_source_labels=True)
    assert summary["rows"] == 3 and summary["by_origin"] == {"human": 2, "source": 1}


def test_nothing_to_export(sqlite_store, taxonomy, tmp_path):
    with pytest.raises(ExportError, match="no labels"):
        export_labels(sqlite_store, taxonomy, tmp_path / "out")
