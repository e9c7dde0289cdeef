"""Hostile text and rows at ingest: invisible characters cannot evade hashing, campaign grouping,
entity extraction or escalation; one hostile row costs that row only (never its chunk or the rest
of the file, on SQLite and PostgreSQL); ids that look identical are one id."""
import datetime as dt
import hashlib
import json
import re
import unicodedata

import pytest

from clustering.normalize import analyse
from core.ingest import ColumnMap, IngestError, ingest_paths
from core.text import text_hash
from labeling.routing import Candidate, match_escalation, plan_case
from test_ingest import count_items, items_by_id, write_jsonl

INVISIBLE = {"ZWSP": "\u200b", "ZWJ": "\u200d", "soft hyphen": "\u00ad", "word joiner": "\u2060",
             "BOM": "\ufeff", "RLO": "\u202e", "LRM": "\u200e"}
PLAIN = "WINNER! Call 09061701461 or visit www.prizeclaim.com to claim your cash"


def old_hash(text):
    """The hash as stored before invisible characters were dropped (NFKC, spacing, casefold)."""
    light = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()
    return hashlib.sha1(light.encode("utf-8", "surrogatepass")).hexdigest()


def quarantined(store):
    path = store.quarantine_path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# -- invisible characters: one normalisation for hashing, templates, entities, escalation ---------
@pytest.mark.parametrize("ch", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_change_neither_hash_template_nor_entities(ch):
    evil = PLAIN.replace("09061", "09" + ch + "061").replace("prizeclaim", "prize" + ch + "claim")
    evil = evil.replace("WINNER", "WIN" + ch + "NER")
    template, entities = analyse(PLAIN)
    assert text_hash(evil) == text_hash(PLAIN)
    assert analyse(evil) == (template, entities)
    assert entities.phone == ("09061701461",) and entities.host == ("prizeclaim.com",)
    # Texts without a format character hash exactly as before: stored text_hash values stay valid.
    for text in (PLAIN, "  Café   ÉTÉ ﬁne \u00a0 ok ", "straße 😀 \u05e9\u05dc\u05d5\u05dd"):
        assert text_hash(text) == old_hash(text)


@pytest.mark.parametrize("text, crit", [
    ("i will k\u200bill you tomorrow", "credible_threat"),
    ("i will ki\u00adll you tomorrow", "credible_threat"),
    ("dm me, i sell k\u200bid pics cheap", "child_safety"),
    ("dm me, i sell kid p\u00adics cheap", "child_safety"),
    ("dm me, i sell k\u2060id pics cheap", "child_safety"),
])
def test_invisible_characters_do_not_evade_escalation(taxonomy, queue_config, text, crit):
    scores = {"harassment": 0.9, "benign": 0.1}
    assert getattr(match_escalation(taxonomy, text, scores), "id", None) == crit
    cand = Candidate(item_id="x:1", text=text, label="benign", score=0.95, scores={"benign": 0.95})
    if crit == "child_safety":  # any score escalates it: the case must not land in a low-risk queue
        row = plan_case(taxonomy, queue_config, cand, dt.datetime(2024, 1, 1))
        assert row["queue"] == queue_config.escalation_queue and row["severity"] == "P0"


# -- one hostile row costs that row (SQLite and PostgreSQL) --------------------------------------
def fifty(bad):
    rows = [{"id": f"r{i}", "text": f"message number {i}", "user": f"user{i}", "country": "uk"} for i in range(50)]
    rows[25].update(bad)
    return rows


@pytest.mark.parametrize("bad, field, reason", [
    ({"user": "u" * 300}, "user", "author longer than 200 characters"),
    ({"user": "evil\u0000user"}, "user", "author contains NUL bytes"),
    ({"id": "r\u000025"}, "id", "id contains NUL bytes"),
    ({"country": "u\u0000k"}, "country", "value contains NUL bytes"),
])
def test_one_hostile_row_is_quarantined_and_the_rest_stored(any_store, taxonomy, tmp_path, bad, field, reason):
    path = write_jsonl(tmp_path / "posts.jsonl", fifty(bad))
    cols = ColumnMap(id="id", text="text", author="user", meta=["country"])
    summary = ingest_paths(any_store, taxonomy, [str(path)], columns=cols, progress=False)
    f = summary.files[0]
    assert (f.read, f.stored, f.quarantined, f.lost, f.error) == (50, 49, 1, 0, None), summary.describe()
    assert summary.ok and count_items(any_store) == 49
    [rec] = quarantined(any_store)
    assert (rec["file"], rec["line"], rec["field"], rec["reason"]) == (str(path), 26, field, reason)


@pytest.mark.parametrize("source, name, words", [
    ("s" * 101, "posts.jsonl", "--source"),
    (None, "p" * 120 + ".jsonl", "file name"),
    ("ev\u200bil", "posts.jsonl", "U+200B"),
])
def test_a_source_name_the_store_cannot_hold_is_refused_up_front(sqlite_store, taxonomy, tmp_path, source, name, words):
    path = write_jsonl(tmp_path / name, fifty({}))
    with pytest.raises(IngestError) as err:
        ingest_paths(sqlite_store, taxonomy, [str(path)], source=source, columns=ColumnMap(id="id"), progress=False)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert count_items(sqlite_store) == 0


# -- one hostile record never aborts the input ---------------------------------------------------
@pytest.mark.parametrize("hostile, reason", [
    ('{"id": "a2", "text": "deep", "x": ' + "[" * 100000 + "]" * 100000 + "}", "invalid JSON: nested too deeply"),
    ('{"id": "a2", "text": "x", "n": ' + "9" * 5000 + "}", "invalid JSON: unreadable value"),
])
def test_hostile_jsonl_line_is_quarantined_and_reading_goes_on(sqlite_store, taxonomy, tmp_path, hostile, reason):
    path = tmp_path / "posts.jsonl"
    good = ['{"id": "a%d", "text": "good row %d"}' % (i, i) for i in (1, 3, 4)]
    path.write_text("\n".join([good[0], hostile, *good[1:]]) + "\n", encoding="utf-8")
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], columns=ColumnMap(id="id"), progress=False)
    f = summary.files[0]
    assert (f.read, f.stored, f.quarantined, f.error) == (4, 3, 1, None) and summary.ok
    [rec] = quarantined(sqlite_store)
    assert rec["line"] == 2 and rec["field"] == "row" and rec["reason"].startswith(reason)


def _parquet_with_bad_time(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = pa.array([0, 1, 2, 253402300800 * 1_000_000, 4], type=pa.timestamp("us"))  # year 10000
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(5)], "text": [f"post {i}" for i in range(5)],
                             "at": ts}), path)
    return path


def test_bad_value_in_an_unmapped_parquet_column_costs_nothing(sqlite_store, taxonomy, tmp_path):
    path = _parquet_with_bad_time(tmp_path / "posts.parquet")
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], columns=ColumnMap(id="id"), progress=False)
    f = summary.files[0]
    assert (f.read, f.stored, f.quarantined, f.error) == (5, 5, 0, None) and summary.ok


def test_bad_value_in_a_mapped_parquet_column_costs_its_row(sqlite_store, taxonomy, tmp_path):
    path = _parquet_with_bad_time(tmp_path / "posts.parquet")
    cols = ColumnMap(id="id", created="at")
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], columns=cols, progress=False, chunk_size=2)
    f = summary.files[0]
    assert (f.read, f.stored, f.quarantined, f.error) == (5, 4, 1, None) and summary.ok
    [rec] = quarantined(sqlite_store)
    assert (rec["line"], rec["field"]) == (4, "at") and "timestamp" in rec["reason"]
    assert rec["row"]["id"] == "p3" and rec["row"]["at"].startswith("10000-01-01")
    assert set(items_by_id(sqlite_store)) == {"posts:p0", "posts:p1", "posts:p2", "posts:p4"}


# -- ids that look identical are one id ----------------------------------------------------------
def test_lookalike_ids_are_one_item_or_quarantined(sqlite_store, taxonomy, tmp_path):
    text = "Claim your prize now at 09061701461"
    rows = [{"id": "caf\u00e9-1", "text": text, "user": "Jos\u00e9"},
            {"id": "cafe\u0301-1", "text": text, "user": "Jose\u0301"},   # NFD: the same id
            {"id": "caf\u00e9-1\u200b", "text": text, "user": "x"},        # trailing zero-width space
            {"id": "\u202e1-\u00e9fac", "text": text, "user": "x"},        # renders as café-1
            {"id": "plain-2", "text": text, "user": "u\u200b2"},           # invisible author
            {"id": "plain-3", "text": text, "user": "u3"}]
    path = write_jsonl(tmp_path / "posts.jsonl", rows)
    cols = ColumnMap(id="id", text="text", author="user")
    summary = ingest_paths(sqlite_store, taxonomy, [str(path)], columns=cols, progress=False)
    f = summary.files[0]
    assert (f.read, f.stored, f.duplicate, f.quarantined) == (6, 2, 1, 3), summary.describe()
    items = items_by_id(sqlite_store)
    assert set(items) == {"posts:caf\u00e9-1", "posts:plain-3"}  # NFC and ASCII ids as before
    assert items["posts:caf\u00e9-1"]["author_id"] == "Jos\u00e9"
    recs = quarantined(sqlite_store)
    assert [(r["line"], r["field"]) for r in recs] == [(3, "id"), (4, "id"), (5, "user")]
    assert "U+200B" in recs[0]["reason"] and "U+202E" in recs[1]["reason"]
