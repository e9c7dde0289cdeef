import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.ingest import ColumnMap, IngestError, ingest_paths, parse_time
from core.schema import Item

ROWS = [
    {"post_id": "p1", "body": "Win a free cruise now!", "user": "u1", "at": "2024-05-01T10:00:00Z", "tag": "spam", "country": "GB"},
    {"post_id": "p2", "body": "see you at lunch", "user": "u2", "at": "2024-05-01T11:30:00", "tag": "ham", "country": "US"},
    {"post_id": "p3", "body": "call me back", "user": "u1", "at": "1714561200", "tag": "ham", "country": "GB"},
]
COLS = ColumnMap(id="post_id", text="body", author="user", created="at", label="tag", meta=["country"])


def count_items(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(Item)).scalar_one()


def items_by_id(store) -> dict:
    with store.read() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(Item.__table__)).mappings()}


def write_csv(path: Path, rows, delimiter=","):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_hf_folder(path: Path, rows):
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("writer, name", [
    (write_csv, "posts.csv"),
    (lambda p, r: write_csv(p, r, "\t"), "posts.tsv"),
    (write_jsonl, "posts.jsonl"),
    (write_parquet, "posts.parquet"),
    (write_hf_folder, "posts_hf"),
])
def test_each_format_with_column_mapping(sqlite_store, taxonomy, tmp_path, writer, name):
    path = writer(tmp_path / name, ROWS)
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], source="sms_spam", columns=COLS, progress=False)
    assert (summary.total("read"), summary.total("stored"), summary.total("quarantined")) == (3, 3, 0)
    items = items_by_id(sqlite_store)
    p1 = items["sms_spam:p1"]
    assert p1["text"] == "Win a free cruise now!"
    assert p1["author_id"] == "u1"
    assert p1["source_label"] == "spam" and p1["policy_label"] == "scam"  # refined by the taxonomy rule
    assert p1["created_at"].isoformat() == "2024-05-01T10:00:00"
    assert p1["metadata"] == {"country": "GB"}
    assert p1["surface"] == "sms"
    assert p1["taxonomy_version"] == taxonomy.version
    assert items["sms_spam:p3"]["created_at"].isoformat() == "2024-05-01T11:00:00"  # epoch seconds


def test_hf_local_file_through_datasets(sqlite_store, taxonomy, tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", ROWS)
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], fmt="hf", source="sms_spam", columns=COLS,
                           progress=False)
    assert summary.total("stored") == 3


def test_reingest_adds_nothing(any_store, taxonomy, tmp_path):
    path = write_csv(tmp_path / "posts.csv", ROWS)
    first = ingest_paths(any_store, taxonomy, [str(path)], source="sms_spam", columns=COLS, progress=False)
    second = ingest_paths(any_store, taxonomy, [str(path)], source="sms_spam", columns=COLS, progress=False)
    assert first.total("stored") == 3
    assert (second.total("stored"), second.total("duplicate")) == (0, 3)
    assert second.ok  # everything was already there: not a failure
    assert count_items(any_store) == 3


def test_hash_ids_when_the_source_has_none(sqlite_store, taxonomy, tmp_path):
    rows = [{"text": "same words"}, {"text": "other words"}, {"text": "same words"}]
    path = write_jsonl(tmp_path / "x.jsonl", rows)
    s1 = ingest_paths(sqlite_store, taxonomy, [str(path)], progress=False)
    s2 = ingest_paths(sqlite_store, taxonomy, [str(path)], progress=False)
    assert (s1.total("stored"), s1.total("duplicate")) == (2, 1)
    assert s2.total("stored") == 0
    assert all(i.startswith("x:h") for i in items_by_id(sqlite_store))


def test_bad_rows_go_to_quarantine_and_good_rows_around_them_are_stored(any_store, taxonomy, tmp_path):
    raw = (
        "post_id,body,user,at,tag,country\n"
        "g1,first good row,u1,2024-01-01T00:00:00,ham,GB\n"
        "b1,,u1,2024-01-01T00:00:00,ham,GB\n"                      # missing text
        "b2,bad time,u1,the day after tomorrow,ham,GB\n"            # unparsable time
        "b3,bad label,u1,2024-01-01T00:00:00,eggs,GB\n"             # unknown label
    ).encode() + b"b4,caf\xe9 latin-1 bytes,u1,2024-01-01T00:00:00,ham,GB\n" + (  # wrong encoding
        "b5,too,many,fields,here,x,y\n"                             # wrong field count
        "g2,second good row,u2,2024-01-02T00:00:00,spam,US\n"
    ).encode()
    path = tmp_path / "mixed.csv"
    path.write_bytes(raw)
    summary = ingest_paths(any_store, taxonomy, [str(path)], source="sms_spam", columns=COLS, progress=False)
    assert (summary.total("read"), summary.total("stored"), summary.total("quarantined")) == (7, 2, 5)
    assert set(items_by_id(any_store)) == {"sms_spam:g1", "sms_spam:g2"}
    lines = [json.loads(l) for l in any_store.quarantine_path.read_text().splitlines()]
    by_line = {q["line"]: q for q in lines}
    assert all(q["file"] == str(path) for q in lines)
    assert by_line[3]["reason"] == "missing text" and by_line[3]["field"] == "body"
    assert by_line[4]["field"] == "at" and "unparsable time" in by_line[4]["reason"]
    assert by_line[5]["field"] == "tag" and "unknown label 'eggs'" in by_line[5]["reason"]
    assert by_line[6]["field"] == "body" and "wrong encoding" in by_line[6]["reason"]
    assert "expected 6 fields, found 7" in by_line[7]["reason"]
    assert by_line[6]["row"]["post_id"] == "b4"  # the raw row is kept for repair


def test_bad_jsonl_lines(sqlite_store, taxonomy, tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "ok one"}\n{not json\n[1, 2]\n{"text": "ok two"}\n', encoding="utf-8")
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], progress=False)
    assert (summary.total("stored"), summary.total("quarantined")) == (2, 2)
    reasons = [json.loads(l)["reason"] for l in sqlite_store.quarantine_path.read_text().splitlines()]
    assert reasons[0].startswith("invalid JSON") and reasons[1].startswith("expected a JSON object")


def test_nothing_stored_is_not_ok(sqlite_store, taxonomy, tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [{"body": "no text column here"}])
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], progress=False)
    assert not summary.ok and summary.total("quarantined") == 1


def test_missing_file_fails_before_writing(sqlite_store, taxonomy, tmp_path):
    good = write_jsonl(tmp_path / "r.jsonl", [{"text": "hello"}])
    with pytest.raises(IngestError, match="no such file"):
        ingest_paths(sqlite_store, taxonomy, [str(good), str(tmp_path / "missing.csv")], progress=False)
    assert count_items(sqlite_store) == 0


def test_unparsable_parquet_is_one_error_and_keeps_the_rest(sqlite_store, taxonomy, tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet")
    good = write_jsonl(tmp_path / "r.jsonl", [{"text": "hello"}])
    summary = ingest_paths(sqlite_store, taxonomy, [str(bad), str(good)], progress=False)
    assert "not a readable Parquet file" in summary.files[0].error
    assert summary.total("stored") == 1  # the other file is still stored...
    assert not summary.ok  # ...but an unreadable file fails the run (issue 15)


def test_presets_on_shared_data(sqlite_store, taxonomy, shared_data):
    sms = shared_data / "sms_spam_collection" / "SMSSpamCollection"
    dav = shared_data / "davidson_hate_offensive" / "labeled_data.csv"
    s1 = ingest_paths(sqlite_store, taxonomy, [str(sms)], preset="sms_spam", limit=300, progress=False)
    s2 = ingest_paths(sqlite_store, taxonomy, [str(dav)], preset="davidson", limit=300, progress=False)
    assert s1.total("stored") == 300 and s2.total("stored") == 300
    items = items_by_id(sqlite_store)
    assert items["sms_spam:1"]["text"].startswith("Go until jurong point")
    assert items["sms_spam:3"]["source_label"] == "spam"
    assert items["davidson:0"]["policy_label"] == "benign"
    assert items["davidson:1"]["metadata"]["offensive_language"] == "3"


@pytest.mark.parametrize("value, expected", [
    ("2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00"),
    ("2024-05-01", "2024-05-01T00:00:00"),
    (1714561200000, "2024-05-01T11:00:00"),
])
def test_parse_time(value, expected):
    assert parse_time(value).isoformat() == expected


def test_hub_id_offline_is_a_clear_error(sqlite_store, taxonomy, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    summary = ingest_paths(sqlite_store, taxonomy, ["ucirvine/sms_spam"], preset="sms_spam", progress=False)
    assert summary.files[0].fmt == "hf"
    assert "cannot load as a Hugging Face dataset" in summary.files[0].error
    assert not summary.ok
