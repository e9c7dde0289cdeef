"""Ingest hardening (readers and the quarantine): a mapped column missing from the header, a
compressed file, a basic-format ISO date, a bare CR in JSONL, a torn quarantine line and a
negative `quarantine list --limit` each gave wrong data or misleading output without an error."""
import bz2
import gzip
import io
import json
import lzma
import zipfile

import pytest
from click.testing import CliRunner

from core.ingest import ColumnMap, ingest_paths, parse_time
from core.quarantine import list_quarantine
from test_ingest import count_items, items_by_id
from workbench.cli import cli

BODY = b"text,user,when\nhello there,u1,2024-01-01\nanother post,u2,2024-01-02\n"


def quarantined(store):
    path = store.quarantine_path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# -- a mapped column the header does not have ------------------------------------------------------
def test_a_mistyped_author_column_fails_the_file_instead_of_blanking_every_item(any_store, taxonomy, tmp_path):
    # Before: both rows stored with no author and no time, ok=True; the corrected re-ingest then
    # stored both again under new hash ids (4 items for 2 posts).
    src = tmp_path / "posts.csv"
    src.write_bytes(BODY)
    s = ingest_paths(any_store, taxonomy, [str(src)], columns=ColumnMap(author="author", created="when"),
                     progress=False)
    assert not s.ok and s.total("read") == 0 and count_items(any_store) == 0
    assert s.files[0].error == (f"{src}: no column 'author' in the header (it has 'text', 'user', 'when'); "
                                "check the column mapping (--*-column options)")
    s = ingest_paths(any_store, taxonomy, [str(src)], columns=ColumnMap(id="@row", author="user", created="when"),
                     progress=False)  # the row-number pseudo-column is no column of the file
    assert s.ok and s.total("stored") == 2
    assert {k: i["author_id"] for k, i in items_by_id(any_store).items()} == {"posts:1": "u1", "posts:2": "u2"}


@pytest.mark.parametrize("name, body, columns, missing", [
    ("posts.csv", BODY, ColumnMap(text="body"), "body"),  # every row was quarantined, raw
    ("posts.tsv", BODY.replace(b",", b"\t"), ColumnMap(label="class"), "class"),
    ("posts.csv", BODY, ColumnMap(meta=["user", "country"]), "country"),
], ids=["csv-text", "tsv-label", "csv-meta"])
def test_a_missing_mapped_column_is_one_error_not_a_quarantined_file(sqlite_store, taxonomy, tmp_path,
                                                                      name, body, columns, missing):
    src = tmp_path / name
    src.write_bytes(body)
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], columns=columns, progress=False)
    assert s.total("quarantined") == 0 and quarantined(sqlite_store) == []
    assert s.files[0].error.startswith(f"{src}: no column {missing!r} in the header")


def test_a_missing_parquet_column_is_one_error(sqlite_store, taxonomy, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "posts.parquet"
    pq.write_table(pa.table({"id": ["1", "2"], "body": ["a", "b"]}), src)
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], columns=ColumnMap(id="id"), progress=False)
    assert s.total("quarantined") == 0
    assert s.files[0].error.startswith(f"{src}: no column 'text' in the schema (it has 'id', 'body')")


# -- compressed input -------------------------------------------------------------------------------
def _zip(data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("posts.csv", data)
    return buf.getvalue()


@pytest.mark.parametrize("pack, what", [(gzip.compress, "gzip-compressed"), (_zip, "a zip archive"),
                                        (bz2.compress, "bzip2-compressed"), (lzma.compress, "xz-compressed")])
@pytest.mark.parametrize("name", ["posts.csv", "posts.jsonl"])
def test_a_compressed_file_is_refused_not_read_as_garbage_rows(sqlite_store, taxonomy, tmp_path, pack, what, name):
    # Before: a gzip'd CSV of 300 rows read as 3 rows of binary noise, all quarantined, no error.
    body = b"id,text\n" + b"".join(b"%d,hello number %d\n" % (i, i) for i in range(300))
    if name.endswith(".jsonl"):
        body = b"".join(b'{"text": "hello number %d"}\n' % i for i in range(300))
    src = tmp_path / name
    src.write_bytes(pack(body))
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], progress=False)
    assert s.files[0].error == f"{src}: the file is {what}, not text; decompress it first"
    assert s.total("read") == 0 and quarantined(sqlite_store) == []


# -- times ------------------------------------------------------------------------------------------
def test_a_basic_format_iso_date_is_a_date_not_epoch_seconds(sqlite_store, taxonomy, tmp_path):
    # Before: "20240115" was read as 20,240,115 epoch seconds: 1970-08-23T06:15:15, silently.
    assert parse_time("20240115").isoformat() == "2024-01-15T00:00:00"
    assert parse_time("1700000000").isoformat() == "2023-11-14T22:13:20"  # epoch text still works
    src = tmp_path / "posts.csv"
    src.write_bytes(b"id,text,created\n1,hello,20240115\n2,hi,1714561200000\n")
    ingest_paths(sqlite_store, taxonomy, [str(src)], columns=ColumnMap(id="id", created="created"), progress=False)
    items = items_by_id(sqlite_store)
    assert items["posts:1"]["created_at"].isoformat() == "2024-01-15T00:00:00"
    assert items["posts:2"]["created_at"].isoformat() == "2024-05-01T11:00:00"


# -- JSONL line ends -------------------------------------------------------------------------------
def test_a_bare_cr_in_jsonl_neither_splits_a_record_nor_shifts_line_numbers(sqlite_store, taxonomy, tmp_path):
    # Before: 4 records read as 6 rows; the valid record 4 (a CR as JSON whitespace) was
    # quarantined in two halves and the missing text on line 3 was reported on line 4.
    src = tmp_path / "posts.jsonl"
    src.write_bytes(b'{"id": "1", "text": "one"}\r\n{"id": "2", "text": "line\rbreak"}\n'
                    b'{"id": "3", "text": ""}\n{"id": "4",\r "text": "ok"}\n')
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], columns=ColumnMap(id="id"), progress=False)
    assert (s.total("read"), s.total("stored"), s.total("quarantined")) == (4, 2, 2)
    assert set(items_by_id(sqlite_store)) == {"posts:1", "posts:4"}
    assert [(r["line"], r["field"], r["reason"]) for r in quarantined(sqlite_store)] == [
        (2, "row", "invalid JSON: Invalid control character at column 26"), (3, "text", "missing text")]


# -- the quarantine file ------------------------------------------------------------------------------
def test_a_torn_last_quarantine_line_does_not_swallow_the_next_record(sqlite_store, taxonomy, tmp_path):
    # Before: the new record was appended to the torn line, so the row counted as quarantined
    # had no readable record (list: 1 "unreadable quarantine line", 0 "missing text").
    sqlite_store.quarantine_path.write_text('{"file": "x.csv", "line": 9, "fie', encoding="utf-8")
    src = tmp_path / "posts.jsonl"
    src.write_text('{"id": "1", "text": ""}\n{"id": "2", "text": "fine"}\n', encoding="utf-8")
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], columns=ColumnMap(id="id"), progress=False)
    assert s.total("quarantined") == 1
    listed = list_quarantine(sqlite_store, 30, principal="tester")
    assert listed["by_reason"] == {"unreadable quarantine line": 1, "missing text": 1}
    assert listed["items"][-1]["line"] == 1 and listed["items"][-1]["file"] == str(src)


def test_quarantine_list_refuses_a_negative_limit(tmp_path):
    # Before: --limit -1 printed "newest 4:" and showed every record but the oldest.
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "quarantine", "list", "--limit", "-1"])
    assert res.exit_code == 2 and "--limit" in res.output and "-1" in res.output


def test_nan_and_infinity_in_a_quarantined_row_are_written_as_valid_json(sqlite_store, taxonomy, tmp_path):
    # Before: the records held bare `Infinity` and `NaN`, which strict JSON parsers refuse (and jq
    # reads as 1.79e308 and null), in the file documented as "every line is valid UTF-8 JSON".
    src = tmp_path / "posts.jsonl"
    src.write_text('{"id": "1", "text": "a", "score": Infinity}\n{"id": "2", "text": "", "score": [NaN, -Infinity]}\n',
                   encoding="utf-8")
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], columns=ColumnMap(id="id", meta=["score"]), progress=False)
    assert s.total("quarantined") == 2

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")

    lines = sqlite_store.quarantine_path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line, parse_constant=strict)["row"] for line in lines]
    assert rows == [{"id": "1", "text": "a", "score": "Infinity"}, {"id": "2", "text": "", "score": ["NaN", "-Infinity"]}]


def test_load_labelled_refuses_a_shared_file_missing_a_mapped_column(tmp_path, taxonomy):
    # Before: a Davidson file whose label column is named `label`, not `class`, loaded as an
    # empty training frame (every row left out as "missing label"), with no error.
    from core.readers import IngestError
    from core.sources import load_labelled

    folder = tmp_path / "davidson_hate_offensive"
    folder.mkdir()
    (folder / "labeled_data.csv").write_text(",count,hate_speech,offensive_language,neither,label,tweet\n"
                                             "0,3,0,0,3,2,hello there\n1,3,0,3,0,1,you idiot\n")
    with pytest.raises(IngestError, match=r"labeled_data.csv: no column 'class' in the header"):
        load_labelled("davidson", shared_dir=tmp_path, taxonomy=taxonomy)
