"""A lone surrogate ("\\ud800" in JSON input, which UTF-8 cannot encode) costs its row, never its chunk."""
import json

import pytest

from core.ingest import ColumnMap, ingest_paths
from core.quarantine import QuarantineWriter


def _records(store):
    raw = store.quarantine_path.read_bytes()
    raw.decode("utf-8")  # every line valid UTF-8
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


@pytest.mark.parametrize("bad, field, reason", [
    ({"text": "bad \ud800 text"}, "text", "text is not valid Unicode (lone surrogate at character 5)"),
    ({"user": "mal\udfff"}, "user", "author is not valid Unicode (lone surrogate at character 4)"),
    ({"id": "x\ud83d"}, "id", "id is not valid Unicode (lone surrogate at character 2)"),
    ({"extra": {"k\ud800": 1}}, "extra", "value is not valid Unicode (lone surrogate at character 2)"),
])
def test_a_lone_surrogate_quarantines_its_row_not_its_chunk(any_store, taxonomy, tmp_path, bad, field, reason):
    src = tmp_path / "in.jsonl"
    rows = [{"id": str(i), "text": f"message {i}", "user": "ann", "extra": {"k": i}} for i in range(50)]
    rows.insert(20, {"id": "bad", "text": "a text", "user": "bob", "extra": {}, **bad})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # json writes \\ud800 escapes
    s = ingest_paths(any_store, taxonomy, [str(src)], source="t", chunk_size=1000, progress=False,
                     columns=ColumnMap(id="id", author="user", meta=["extra"]))
    assert (s.total("stored"), s.total("quarantined"), s.total("lost"), s.ok) == (50, 1, 0, True)
    [rec] = _records(any_store)
    assert (rec["line"], rec["field"], rec["reason"]) == (21, field, reason)
    assert rec["row"][field] == bad[field]  # kept for repair, escaped as ASCII JSON


def test_undecodable_bytes_are_still_a_wrong_encoding(sqlite_store, taxonomy, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text\n1,fine\n2,caf\xe9\n")
    s = ingest_paths(sqlite_store, taxonomy, [str(src)], source="t", columns=ColumnMap(id="id"), progress=False)
    assert (s.total("stored"), s.total("quarantined"), s.total("lost")) == (1, 1, 0)
    assert _records(sqlite_store)[0]["reason"] == "wrong encoding: text is not valid UTF-8"


def test_the_writer_falls_back_to_ascii_json_for_a_lone_surrogate(tmp_path):
    path = tmp_path / "q.jsonl"
    with QuarantineWriter(path) as qw:
        qw.write({"line": 1, "reason": "first", "row": {"text": "caf\u00e9"}})
        qw.write({"line": 2, "reason": "second", "row": {"text": "bad \ud800"}})
    first, second = path.read_bytes().decode("utf-8").splitlines()
    assert "café" in first  # readable text stays as it is
    assert json.loads(second)["row"]["text"] == "bad \ud800" and second.isascii()


def test_a_source_name_that_is_not_unicode_is_refused_up_front(sqlite_store, taxonomy, tmp_path):
    from core.ingest import IngestError

    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text\n1,fine\n")
    with pytest.raises(IngestError, match="source name .* is not valid Unicode"):
        ingest_paths(sqlite_store, taxonomy, [str(src)], source="feed\udcff", columns=ColumnMap(id="id"),
                     progress=False)
