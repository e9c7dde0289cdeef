"""Issue 15: ingest never loses or rewrites a row. Each case runs the real command line and checks
the reconciliation (read = stored + duplicate + conflict + quarantined, nothing lost) and the
exit status."""
import json
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.schema import Item
from core.store import open_store
from workbench.cli import cli


def ingest(tmp_path, *args):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", *map(str, args), "--json"],
                             catch_exceptions=False)
    summary = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
    return res, summary


def reconciled(s):
    assert s["read"] == s["stored"] + s["duplicate"] + s["conflict"] + s["quarantined"], s
    assert s["lost"] == 0, s
    assert all(f["reconciled"] for f in s["files"]), s


def quarantine(tmp_path):
    path = tmp_path / "data" / "quarantine.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def items(tmp_path):
    store = open_store(tmp_path / "data")
    try:
        with store.read() as conn:
            return {r.id: r.text for r in conn.execute(select(Item.__table__.c.id, Item.__table__.c.text))}
    finally:
        store.dispose()


def test_bad_byte_in_an_unused_header_column_costs_nothing(tmp_path):
    src = tmp_path / "posts.csv"
    src.write_bytes(b"id,text,caf\xe9\n1,first,x\n2,,y\n3,third,z\n4,fourth,w\n")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["read"], s["stored"], s["quarantined"]) == (4, 3, 1)
    assert set(items(tmp_path)) == {"posts:1", "posts:3", "posts:4"}  # the rest of the file is stored
    [rec] = quarantine(tmp_path)  # the row counted as quarantined is written, and is valid JSON
    assert (rec["file"], rec["line"], rec["field"], rec["reason"]) == (str(src), 3, "text", "missing text")
    assert rec["row"]["caf\\xe9"] == "y"


@pytest.mark.parametrize("column", ["text", "author", "country"])
def test_undecodable_bytes_in_any_used_field_quarantine_that_row_only(tmp_path, column):
    values = {"text": b"hello", "author": b"u1", "country": b"GB"}
    values[column] = b"caf\xe9"
    src = tmp_path / "posts.csv"
    src.write_bytes(b"id,text,author,country\n1,good,u1,GB\n2," + b",".join(values.values()) + b"\n3,also good,u2,US\n")
    res, s = ingest(tmp_path, src, "--id-column", "id", "--author-column", "author", "--meta-column", "country")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["stored"], s["quarantined"]) == (2, 1)
    [rec] = quarantine(tmp_path)
    assert rec["line"] == 3 and rec["field"] == column and "not valid UTF-8" in rec["reason"]


def test_same_id_with_another_text_is_a_conflict_with_both_texts(tmp_path):
    first = tmp_path / "posts.jsonl"
    first.write_text('{"id": "a", "text": "original"}\n{"id": "b", "text": "bee"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, first, "--id-column", "id")
    assert res.exit_code == 0 and s["stored"] == 2
    second = tmp_path / "posts2.jsonl"
    second.write_text('{"id": "a", "text": "rewritten"}\n{"id": "b", "text": "bee"}\n'
                      '{"id": "c", "text": "sea"}\n{"id": "c", "text": "see"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, second, "--id-column", "id", "--source", "posts")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["read"], s["stored"], s["duplicate"], s["conflict"], s["quarantined"]) == (4, 1, 1, 2, 0)
    assert items(tmp_path) == {"posts:a": "original", "posts:b": "bee", "posts:c": "sea"}  # nothing rewritten
    recs = {r["line"]: r for r in quarantine(tmp_path)}
    assert recs[1]["reason"].startswith("conflict") and recs[1]["field"] == "text" and recs[1]["file"] == str(second)
    assert (recs[1]["id"], recs[1]["stored_text"], recs[1]["new_text"]) == ("posts:a", "original", "rewritten")
    assert (recs[4]["stored_text"], recs[4]["new_text"]) == ("sea", "see")  # within one file too


def test_conflicts_across_chunks_and_runs(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": i % 3, "text": f"t{i}"}) + "\n" for i in range(7)), encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id", "--chunk-size", "2")
    assert res.exit_code == 0
    reconciled(s)
    assert (s["stored"], s["conflict"]) == (3, 4)


@pytest.mark.parametrize("line, field, words", [
    ('{"id": "x", "text": {"nested": 1}}', "text", "text is a dict"),
    ('{"id": "x", "text": ["a", "b"]}', "text", "text is a list"),
    ('{"id": "x", "text": true}', "text", "text is a bool"),
    ('{"id": "x", "text": 42}', "text", "text is an int"),
    ('{"id": {"a": 1}, "text": "hello"}', "id", "id is a dict"),
    ('{"id": true, "text": "hello"}', "id", "id is a bool"),
    ('{"id": 1.5, "text": "hello"}', "id", "id is a float"),
    ('{"id": 1.0, "text": "hello"}', "id", "id is a float"),
])
def test_non_string_text_and_ids_are_quarantined_with_the_type(tmp_path, line, field, words):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": 1, "text": "int id"}\n' + line + "\n", encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["stored"], s["quarantined"]) == (1, 1)
    assert items(tmp_path) == {"p:1": "int id"}  # an integer id keeps its decimal text
    [rec] = quarantine(tmp_path)
    assert rec["line"] == 2 and rec["field"] == field and rec["reason"].startswith(words)


def test_unbalanced_quote_does_not_swallow_the_rows_after_it(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('id,text,label\n1,"never closed,ham\n2,second,ham\n3,third,spam\n4,"fine",ham\n',
                   encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["read"], s["stored"], s["quarantined"]) == (4, 3, 1)
    assert items(tmp_path) == {"p:2": "second", "p:3": "third", "p:4": "fine"}
    [rec] = quarantine(tmp_path)
    assert (rec["line"], rec["field"]) == (2, "text") and rec["reason"].startswith("unbalanced quote")
    assert "line 3" in rec["reason"] and rec["row"] == '1,"never closed,ham\n'


def test_unbalanced_quote_closed_by_a_later_field(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('id,text\n1,"never closed\n2,"quoted"\n3,plain\n', encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0
    reconciled(s)
    assert set(items(tmp_path)) == {"p:2", "p:3"} and s["quarantined"] == 1


def test_final_unterminated_quote(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('id,text\n1,fine\n2,"runs to the end of the file\nand on\n', encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0
    reconciled(s)
    recs = quarantine(tmp_path)
    assert recs[0]["line"] == 3 and "the file ends inside it" in recs[0]["reason"]
    assert set(items(tmp_path)) == {"p:1"}


def test_legitimate_multi_line_quoted_fields_are_kept_whole(tmp_path):
    src = tmp_path / "p.csv"
    src.write_bytes(b'id,text,label\r\n1,"Dear sir,\r\nplease call me, now\r\nthanks",ham\r\n'
                    b'2,"line one\r\n\r\n""quoted"" line three",spam\r\n3,plain,ham\r\n')
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert (s["stored"], s["quarantined"]) == (3, 0)
    got = items(tmp_path)
    assert got["p:1"] == "Dear sir,\r\nplease call me, now\r\nthanks"
    assert got["p:2"] == 'line one\r\n\r\n"quoted" line three'


@pytest.mark.parametrize("name, body", [
    ("p.csv", "id,text\n1,hello\n2,world\n"),
    ("p.tsv", "id\ttext\n1\thello\n2\tworld\n"),
    ("p.jsonl", '{"id": 1, "text": "hello"}\n{"id": 2, "text": "world"}\n'),
])
def test_utf8_bom_is_accepted(tmp_path, name, body):
    src = tmp_path / name
    src.write_bytes(b"\xef\xbb\xbf" + body.encode())
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0, res.output
    reconciled(s)
    assert items(tmp_path) == {"p:1": "hello", "p:2": "world"}


@pytest.mark.parametrize("path", ["./missing.csv", "sub/missing.csv", "missing.jsonl", "a/b/c", "/nowhere/at/all",
                                  "EXISTING/missing"])
def test_missing_local_path_fails_at_once(tmp_path, path):
    (tmp_path / "EXISTING").mkdir()
    path = path.replace("EXISTING", str(tmp_path / "EXISTING"))
    t0 = time.perf_counter()
    res, s = ingest(tmp_path, path)
    assert time.perf_counter() - t0 < 5
    assert res.exit_code != 0 and s is None
    assert f"{path}: no such file or folder" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_file_cut_short_fails_and_keeps_what_was_read(tmp_path, monkeypatch):
    import core.ingest

    def broken(path):
        yield 1, {"text": "one"}
        yield 2, {"text": "two"}
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(core.ingest, "read_jsonl", broken)
    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "x"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, src)
    assert res.exit_code == 1
    reconciled(s)
    assert s["stored"] == 2 and "read failed after 2 rows" in s["files"][0]["error"]


def test_a_chunk_the_store_refuses_is_lost_and_fails_the_run(tmp_path, monkeypatch):
    import core.ingest

    def refuse(self, conn, items):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(core.ingest._ChunkWriter, "_insert", refuse)
    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "one"}\n{"text": ""}\n{"text": "three"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, src)
    assert res.exit_code == 1
    assert (s["read"], s["stored"], s["quarantined"], s["lost"]) == (3, 0, 1, 2)
    assert s["read"] == s["stored"] + s["duplicate"] + s["conflict"] + s["quarantined"] + s["lost"]
    assert "refused 2 rows" in s["files"][0]["error"]


def test_a_quarantine_record_that_cannot_be_written_is_not_counted(tmp_path, monkeypatch):
    import core.quarantine

    def fail(self, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.quarantine.QuarantineWriter, "write", fail)
    src = tmp_path / "p.jsonl"
    src.write_text('{"text": "one"}\n{"text": ""}\n{"text": "three"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, src)
    assert res.exit_code == 1
    assert (s["read"], s["stored"], s["quarantined"], s["lost"]) == (2, 1, 0, 1)
    assert "No space left" in s["files"][0]["error"]


def test_human_summary_shows_the_reconciliation(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n{"id": 2, "text": ""}\n', encoding="utf-8")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", str(src), "--id-column", "id"])
    assert res.exit_code == 0
    assert "read 3, stored 1, duplicate 0, conflict 1, quarantined 1" in res.stdout


def test_repeats_of_a_conflicting_row_are_conflicts_too(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x", "text": "A"}\n', encoding="utf-8")
    ingest(tmp_path, src, "--id-column", "id")
    src.write_text('{"id": "x", "text": "B"}\n{"id": "x", "text": "B"}\n{"id": "x", "text": "A"}\n'
                   '{"id": "y", "text": "new"}\n', encoding="utf-8")
    res, s = ingest(tmp_path, src, "--id-column", "id")
    assert res.exit_code == 0
    reconciled(s)
    assert (s["stored"], s["duplicate"], s["conflict"]) == (1, 1, 2)
    assert [r["stored_text"] for r in quarantine(tmp_path)] == ["A", "A"]
