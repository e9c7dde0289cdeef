"""Ingest: stream rows from CSV / TSV / JSONL / Parquet / Hugging Face datasets into items.

Rows are validated and normalised one at a time and written in chunks (one transaction each),
so a million rows never sit in memory. Ids are stable (`source:<id>`, or a content hash when the
source has none). Nothing is lost or rewritten without a trace; every row read ends as exactly one of:

- **stored**: a new item, counted once its chunk has committed;
- **duplicate**: an item with this id and exactly this text is already stored (re-ingesting adds
  nothing; other fields of the new row are not compared, the stored item is kept as it is);
- **conflict**: an item with this id is stored with a *different* text (or an earlier row of this
  run has it). The stored item is never rewritten: the new row goes to the quarantine with both
  texts (`stored_text`, `new_text`) and reason "conflict", for a person to resolve (for instance
  by ingesting it under a new id). It is not stored as a new version;
- **quarantined**: the row cannot become an item (a text over `MAX_TEXT_CHARS` too); its record
  in the quarantine file (`core.quarantine`) names file, line (row), field and reason, and it is
  counted once written.
  Undecodable bytes in any field used cost that row, never the file; so do text that is not a
  string (a dict, list, number or bool: the type is named) and ids or authors that are neither
  text nor integers. An integer id is kept as its decimal text (`1` -> `src:1`); a float id is
  quarantined, integral or not, since `1.0` would otherwise silently become the same item as
  `1` (write ids as text or integers). A value longer than its column in `core.schema` (an
  author over 200 characters), a NUL in any field used, and an id or author holding a control or
  invisible format character are quarantined too, so one row never costs its chunk; ids and
  authors are NFC-normalised, so ids that look identical are one id. A lone surrogate (a JSON
  `"\\ud800"`, which UTF-8 cannot encode) in any field used is quarantined the same way, and so
  is a metadata value holding infinity or a nested NaN (JSON has neither: PostgreSQL would refuse
  the chunk; a NaN value itself is a missing one).

So read = stored + duplicate + conflict + quarantined, and `lost` (rows read but neither written
nor quarantined: a chunk the store refused, a quarantine write that failed) is 0 unless the
summary says why. `IngestSummary.ok` (the command's exit status) is False when any row was
lost, a file could not be read or was cut short (an error after some rows), or nothing could be
stored. Readers, unbalanced-quote detection and the missing-path rule live in `core.readers`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from . import audit
from .hooks import check_permission
from .principals import SYSTEM, Actor, actor_name
from .quarantine import QuarantineWriter, printable
from .readers import (FORMATS, MAX_TEXT_CHARS, PSEUDO_COLUMNS, BadRow, IngestError, csv, detect_format,
                      has_bad_bytes, has_nul, ident_text, jsonable, lone_surrogate, name_problem, non_finite,
                      parse_time, preview, read_delimited, read_hf, read_jsonl, read_parquet, type_name)
from .schema import IngestRun, Item
from .store import insert_ignore
from .text import has_undecodable_bytes, text_hash

__all__ = ["FORMATS", "PRESETS", "BadRow", "ColumnMap", "IngestError", "IngestSummary", "RowBuilder",
           "detect_format", "ingest_paths", "parse_time", "read_delimited", "read_hf", "read_jsonl",
           "read_parquet"]

ROW_NUMBER = PSEUDO_COLUMNS[0]  # pseudo-column "@row": the 1-based data row number (same in a file and on the Hub)
MAX_ID_LEN: int = Item.__table__.c.id.type.length
COUNTS = ("read", "stored", "duplicate", "conflict", "quarantined", "lost")
# Reasons a file's summary names apart: a reason may quote the row's value (an unparsable time),
# so a file of a million bad times would print and store (ingest_runs.counts) a million lines.
MAX_REASON_KINDS = 50


@dataclass
class ColumnMap:
    """Which input column feeds which item field; None means the default or absent."""

    id: Optional[str] = None
    text: Optional[str] = None
    author: Optional[str] = None
    created: Optional[str] = None
    label: Optional[str] = None
    meta: list[str] = field(default_factory=list)
    # Every column a row has besides the mapped ones is metadata, as that row has it (the API's
    # items each carry their own keys; a row is never given another row's keys).
    meta_all: bool = False

    def merged_over(self, base: "ColumnMap") -> "ColumnMap":
        """Explicit options win over a preset's mapping."""
        return ColumnMap(id=self.id or base.id, text=self.text or base.text,
                         author=self.author or base.author, created=self.created or base.created,
                         label=self.label or base.label, meta=self.meta or base.meta,
                         meta_all=self.meta_all or base.meta_all)


@dataclass(frozen=True)
class Preset:
    """How to read one known public dataset, from its file and from the Hub."""

    source: str
    fmt: str
    columns: ColumnMap
    hub_id: str
    quoting: int = csv.QUOTE_MINIMAL


PRESETS: dict[str, Preset] = {
    "sms_spam": Preset(
        source="sms_spam", fmt="tsv", quoting=csv.QUOTE_NONE,
        columns=ColumnMap(id=ROW_NUMBER, text="SMS", label="Label"),
        hub_id="ucirvine/sms_spam",
    ),
    "davidson": Preset(
        source="davidson", fmt="csv",
        columns=ColumnMap(id="", text="tweet", label="class",
                          meta=["count", "hate_speech", "offensive_language", "neither"]),
        hub_id="tdavidson/hate_speech_offensive",
    ),
}


@dataclass
class FileSummary:
    path: str
    fmt: str
    source: str
    read: int = 0
    stored: int = 0
    duplicate: int = 0
    conflict: int = 0
    quarantined: int = 0
    lost: int = 0
    error: Optional[str] = None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.read == self.stored + self.duplicate + self.conflict + self.quarantined

    def note(self, reason: str) -> None:
        key = reason.split(" (")[0][:200]
        if key not in self.reasons and len(self.reasons) >= MAX_REASON_KINDS:
            key = "other reasons (each is in the quarantine file)"
        self.reasons[key] = self.reasons.get(key, 0) + 1


@dataclass
class IngestSummary:
    run_id: int
    files: list[FileSummary]
    quarantine_path: str

    def total(self, key: str) -> int:
        return sum(getattr(f, key) for f in self.files)

    @property
    def ok(self) -> bool:
        """False when a row was lost, a file failed or was cut short, or nothing could be stored."""
        return (not any(f.error or f.lost or not f.reconciled for f in self.files)
                and self.total("stored") + self.total("duplicate") > 0)

    def counts(self) -> dict[str, int]:
        return {k: self.total(k) for k in COUNTS}

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.counts(), "quarantine_file": self.quarantine_path, "ok": self.ok,
                "files": [{**f.__dict__, "reconciled": f.reconciled} for f in self.files]}

    def describe(self) -> str:
        def line(c: Any) -> str:
            text = (f"read {c('read')}, stored {c('stored')}, duplicate {c('duplicate')}, conflict "
                    f"{c('conflict')}, quarantined {c('quarantined')}")
            return text + (f", LOST {c('lost')}" if c("lost") else "")

        lines = []
        for f in self.files:
            if f.error and not f.read:
                lines.append(f"{f.path}: ERROR {f.error}")
                continue
            lines.append(f"{f.path} [{f.fmt}, source {f.source}]: " + line(lambda k: getattr(f, k)))
            for reason, n in sorted(f.reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"    quarantined {n}: {reason}")
            if f.error:
                lines.append(f"    ERROR (file cut short): {f.error}")
        if len(self.files) > 1:
            lines.append("total: " + line(self.total))
        if self.total("quarantined") + self.total("conflict"):
            lines.append(f"quarantined rows (file, line, field, reason) are in {self.quarantine_path}")
        return "\n".join(lines)


# -- normalising one row ------------------------------------------------------------------------
def _label_value(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _check_unicode(value: Any, column: Optional[str], what: str) -> None:
    at = lone_surrogate(value)
    if at is not None:
        raise BadRow(column or what, f"{what} is not valid Unicode (lone surrogate at character {at})")


class RowBuilder:
    """Turns one input row into an item dict, or raises BadRow naming the field and reason."""

    def __init__(self, taxonomy: Any, source: str, surface: str, columns: ColumnMap, run_id: int) -> None:
        self.tax = taxonomy
        self.source = source
        self.surface = surface
        self.c = columns
        self.run_id = run_id
        self.version = taxonomy.version
        self.smap = taxonomy.sources.get(source)
        self.now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        # The schema's string column limits, checked per row: the store would refuse the chunk.
        self.limits = [(col.name, col.type.length) for col in Item.__table__.columns
                       if getattr(col.type, "length", None)]
        self.mapped = {columns.id, columns.text or "text", columns.author, columns.created, columns.label}
        self.fields = {"id": (columns.id or "id", "id"), "author_id": (columns.author, "author"),
                       "source_label": (columns.label, "label"), "policy_label": (columns.label, "policy label")}

    def __call__(self, lineno: int, row: dict[str, Any], rowno: Optional[int] = None) -> dict[str, Any]:
        """`lineno` locates the row for people; `rowno` (1-based data row) is the `@row` id."""
        c = self.c
        text_col = c.text or "text"
        if text_col not in row:
            raise BadRow(text_col, f"missing text column {text_col!r}")
        text = row[text_col]
        if text is None or (isinstance(text, float) and math.isnan(text)):
            raise BadRow(text_col, "missing text")
        if not isinstance(text, str):
            raise BadRow(text_col, f"text is {type_name(text)} ({preview(text)}), not a string")
        if not text.strip():
            raise BadRow(text_col, "missing text")
        if len(text) > MAX_TEXT_CHARS:  # the API's rule too (`workbench.api`)
            raise BadRow(text_col, f"text is {len(text)} characters, over MAX_TEXT_CHARS ({MAX_TEXT_CHARS})")
        if not text.isascii() and has_undecodable_bytes(text):
            raise BadRow(text_col, "wrong encoding: text is not valid UTF-8")
        if "\x00" in text:
            raise BadRow(text_col, "text contains NUL bytes")
        _check_unicode(text, text_col, "text")

        author = ident_text(row.get(c.author), c.author, "author") if c.author else None
        _check_unicode(author, c.author, "author")
        created = None
        if c.created:
            raw_time = row.get(c.created)
            try:
                created = parse_time(raw_time)
            except (ValueError, OverflowError, OSError):
                raise BadRow(c.created, f"unparsable time {str(raw_time)[:60]!r}") from None

        source_label = policy = None
        if c.label:
            raw = row.get(c.label)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise BadRow(c.label, "missing label")
            policy, source_label = self._map_label(raw, text)

        if c.id == ROW_NUMBER:
            raw_id = str(rowno if rowno is not None else lineno)
        elif c.id is not None:
            raw_id = ident_text(row.get(c.id), c.id, "id")
            if not raw_id:
                raise BadRow(c.id or "id", "missing id")
            _check_unicode(raw_id, c.id, "id")
        else:
            key = "\x1f".join([self.source, author or "", created.isoformat() if created else "", text])
            raw_id = "h" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]
        item_id = f"{self.source}:{raw_id}"
        if len(item_id) > MAX_ID_LEN:
            item_id = f"{self.source}:h{hashlib.sha1(raw_id.encode()).hexdigest()[:24]}"

        meta = None
        meta_cols = [k for k in row if k not in self.mapped] if c.meta_all else c.meta
        if meta_cols:
            meta = {}
            for col in meta_cols:
                if col not in row:
                    raise BadRow(col, f"missing metadata column {col!r}")
                if has_bad_bytes(row[col]) or has_bad_bytes(col):
                    raise BadRow(col, "wrong encoding: value is not valid UTF-8")
                if has_nul(col):
                    raise BadRow(col, "metadata key contains NUL bytes")
                if has_nul(row[col]):
                    raise BadRow(col, "value contains NUL bytes")
                _check_unicode([col, row[col]], col, "value")
                meta[col] = jsonable(row[col])
                if non_finite(meta[col]) is not None:  # JSON has none: the store would refuse the chunk
                    raise BadRow(col, f"value holds the number {non_finite(meta[col])}, which JSON cannot hold")
        item = {"id": item_id, "source": self.source, "surface": self.surface, "text": text,
                "text_hash": text_hash(text), "author_id": author, "created_at": created,
                "source_label": source_label, "policy_label": policy, "taxonomy_version": self.version,
                "metadata": meta, "ingest_run_id": self.run_id, "ingested_at": self.now}
        for name, limit in self.limits:
            value = item.get(name)
            column, what = self.fields.get(name, (name, name))
            if isinstance(value, str) and len(value) > limit:
                raise BadRow(column or name, f"{what} longer than {limit} characters")
            _check_unicode(value, column or name, what)
        return item

    def _map_label(self, raw: Any, text: str) -> tuple[str, str]:
        # A ClassLabel arrives as (int, name): try the name, then the number.
        candidates = [raw[1], raw[0]] if isinstance(raw, tuple) else [raw]
        for cand in candidates:
            key = str(int(cand)) if isinstance(cand, float) and cand.is_integer() else str(cand).strip()
            if self.smap is not None and self.smap.labels:
                try:
                    return self.tax.map_source_label(self.source, key, text), key
                except KeyError:
                    continue
            elif key in self.tax.policies:
                return key, key
        known = ", ".join(self.smap.labels) if self.smap and self.smap.labels else ", ".join(self.tax.policies)
        raise BadRow(self.c.label or "label", f"unknown label {_label_value(raw)!r} (known: {known})")


# -- the service --------------------------------------------------------------------------------
def ingest_paths(store: Any, taxonomy: Any, paths: list[str], preset: Optional[str] = None,
                 source: Optional[str] = None, fmt: Optional[str] = None,
                 columns: Optional[ColumnMap] = None, surface: Optional[str] = None,
                 split: str = "train", chunk_size: int = 20000, limit: Optional[int] = None,
                 actor: Actor = SYSTEM["ingest"], progress: bool = True,
                 report: Optional[Callable[[dict[str, Any]], None]] = None) -> IngestSummary:
    """Ingest every path; raises IngestError before writing anything if a path is unusable.
    `report` is called with each quarantine record (conflicts too) once it is written.

    Runs as the reserved system principal `ingest` unless a person starts it (`actor`, who
    needs the `ingest` permission and is recorded on the run)."""
    from sqlalchemy import insert, update

    check_permission(actor, "ingest", "items")
    actor = actor_name(actor)

    if preset is not None and preset not in PRESETS:
        raise IngestError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if chunk_size < 1:
        raise IngestError("--chunk-size must be at least 1")
    default_fmt = PRESETS[preset].fmt if preset else None
    plan = [(p, detect_format(p, fmt, default_fmt)) for p in paths]  # fails fast on a missing file
    for p in paths:  # a source or surface the items table cannot hold would cost every row
        _check_name(p, "source", _source_name(p, preset, source), "--source" if source else "the file name")
    if surface is not None:
        _check_name(paths[0] if paths else "", "surface", surface, "--surface")

    options = {"preset": preset, "source": source, "format": fmt, "split": split,
               "columns": (columns or ColumnMap()).__dict__, "surface": surface, "limit": limit}
    with store.begin() as conn:
        run_id = conn.execute(insert(IngestRun.__table__).values(
            actor=actor, paths=[str(p) for p in paths], options=options)).inserted_primary_key[0]

    files = []
    for path, file_fmt in plan:
        files.append(_ingest_one(store, taxonomy, path, file_fmt, preset, source, columns, surface,
                                 split, chunk_size, limit, run_id, progress, report))

    summary = IngestSummary(run_id=run_id, files=files, quarantine_path=str(store.quarantine_path))
    counts = summary.counts()
    with store.begin() as conn:
        conn.execute(update(IngestRun.__table__).where(IngestRun.__table__.c.id == run_id)
                     .values(finished_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                             counts={**counts, "files": [f.__dict__ for f in files]}))
        audit.record(conn, actor, "ingest", "ingest_run", run_id,
                     {**counts, "paths": [str(p) for p in paths], "preset": preset})
    return summary


def _ingest_one(store: Any, taxonomy: Any, path: str, fmt: str, preset: Optional[str],
                source: Optional[str], columns: Optional[ColumnMap], surface: Optional[str],
                split: str, chunk_size: int, limit: Optional[int], run_id: int,
                progress: bool, report: Optional[Callable[[dict[str, Any]], None]] = None) -> FileSummary:
    from tqdm import tqdm

    pre = PRESETS.get(preset) if preset else None
    from_hub = fmt == "hf" and not Path(path).exists()
    base = pre.columns if pre else ColumnMap()  # the Hub copy is read as the file (core.hub_rows.hub_as_local)
    cols = (columns or ColumnMap()).merged_over(base)
    src = _source_name(path, preset, source)
    smap = taxonomy.sources.get(src)
    surf = surface or (smap.surface if smap else "post")
    if cols.label is None and smap is not None and smap.label_field and pre is None:
        cols = replace(cols, label=None)  # only map labels when told which column holds them
    summary = FileSummary(path=str(path), fmt=fmt, source=src)

    if fmt in ("csv", "tsv"):
        quoting = pre.quoting if pre and not from_hub else csv.QUOTE_MINIMAL
        used = [c for c in (cols.id, cols.text or "text", cols.author, cols.created, cols.label, *cols.meta) if c]
        rows: Iterable[tuple[int, dict[str, Any]]] = read_delimited(path, "\t" if fmt == "tsv" else ",", quoting, used)
    elif fmt == "jsonl":
        rows = read_jsonl(path)
    elif fmt == "parquet":  # only the mapped columns: an unused column's bad value costs nothing
        mapped = [cols.id, cols.text or "text", cols.author, cols.created, cols.label, *cols.meta]
        rows = read_parquet(path, columns=[c for c in mapped if c is not None and c != ROW_NUMBER])
    else:
        rows = read_hf(path, split)
        if from_hub and preset in PRESETS:  # the same ids, texts and labels as the shared file
            from .hub_rows import hub_as_local
            rows = hub_as_local(preset, rows)

    build = RowBuilder(taxonomy, src, surf, cols, run_id)
    bar = tqdm(desc=f"ingest {Path(path).name}", unit=" rows", disable=not progress, mininterval=0.5,
               leave=False)
    try:
        with QuarantineWriter(store.quarantine_path) as qw:
            sink = _Sink(qw, str(path), src, run_id, summary, report)
            writer = _ChunkWriter(store, summary, chunk_size, sink, cols.text or "text")
            try:
                summary.error = _read_all(rows, build, writer, sink, summary, limit, path, bar)
            except _Abort as exc:
                summary.error = str(exc)
            try:
                writer.flush()  # rows read before an error are still stored
            except _Abort as exc:
                summary.error = summary.error or str(exc)
    except OSError as exc:  # the quarantine file cannot be opened: nothing was read
        summary.error = f"cannot open the quarantine {store.quarantine_path}: {exc.strerror or exc}"
    finally:
        bar.close()
    return summary


def _read_all(rows: Iterable[tuple[int, dict[str, Any]]], build: "RowBuilder", writer: "_ChunkWriter",
              sink: "_Sink", summary: FileSummary, limit: Optional[int], path: str, bar: Any) -> Optional[str]:
    """Every row to the writer or the quarantine; the error that cut the file short, if any."""
    it: Iterator[tuple[int, dict[str, Any]]] = iter(rows)
    while limit is None or summary.read < limit:
        try:
            lineno, row = next(it)
        except StopIteration:
            return None
        except IngestError as exc:
            return str(exc) if not summary.read else f"{exc} (after {summary.read} rows)"
        except Exception as exc:  # noqa: BLE001 - OSError, a decoder's or pyarrow's error mid-file
            return f"{path}: read failed after {summary.read} rows: {_one_line(exc)}"
        summary.read += 1
        err = row.get("__error__")
        try:
            if err is not None:
                raise err
            item = build(lineno, row, summary.read)
        except BadRow as bad:
            sink.put(lineno, bad.field, bad.reason, row)
        except Exception as exc:  # noqa: BLE001 - a row the builder did not foresee: kept, not lost
            sink.put(lineno, "row", f"cannot normalise the row: {type(exc).__name__}: {_one_line(exc)}", row)
        else:
            writer.add(lineno, item, row)
        if summary.read % 1000 == 0:
            bar.update(1000)
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _Abort(Exception):
    """A row could be neither stored nor quarantined: the file stops here, the run fails."""


class _Sink:
    """Writes one quarantine record and counts the row only once the record is written."""

    def __init__(self, writer: QuarantineWriter, path: str, source: str, run_id: int, summary: FileSummary,
                 report: Optional[Callable[[dict[str, Any]], None]] = None) -> None:
        self.writer = writer
        self.report = report
        self.path = path
        self.source = source
        self.run_id = run_id
        self.summary = summary

    def put(self, lineno: int, field_name: str, reason: str, row: dict[str, Any], count: str = "quarantined",
            **extra: Any) -> None:
        record = {"file": self.path, "line": lineno, "field": field_name, "reason": reason,
                  "source": self.source, "run_id": self.run_id, **extra, "row": _quarantine_row(row)}
        try:
            self.writer.write(record)
        except (OSError, ValueError) as exc:
            self.summary.lost += 1
            raise _Abort(f"cannot write the quarantine {self.writer.path}: {_one_line(exc)}") from None
        setattr(self.summary, count, getattr(self.summary, count) + 1)
        self.summary.note(reason)
        if self.report is not None:
            self.report(record)


def _quarantine_row(row: dict[str, Any]) -> Any:
    raw = row["__raw__"] if "__raw__" in row else {k: v for k, v in row.items() if k != "__error__"}
    return printable(raw)


def _source_name(path: str, preset: Optional[str], source: Optional[str]) -> str:
    """The source items of `path` get: `--source`, else the preset's, else the file name's stem."""
    return source or (PRESETS[preset].source if preset in PRESETS else _source_from_path(path))


def _check_name(path: str, what: str, value: str, origin: str) -> None:
    """Refuse up front, in one line, a source or surface name the items table cannot hold."""
    problem = name_problem(what, value, Item.__table__.c[what].type.length)
    if problem is not None:
        raise IngestError(f"{path}: {problem.replace(' name ', f' name from {origin} ', 1)}; pass --{what}")


def _source_from_path(path: str) -> str:
    name = Path(path.rstrip("/")).name
    stem = name.split(".")[0] if "." in name else name
    return stem.lower().replace(" ", "_") or "input"


class _ChunkWriter:
    """Buffers item dicts and writes each chunk in one transaction; sorts out duplicates and conflicts.

    Inserts skip ids already stored; only when some were skipped does one look-up fetch the
    stored texts: an id stored with the same text is a duplicate, with another text a conflict
    (quarantined with both texts, the stored item untouched). Chunks are large on purpose: a commit rewrites every index
    page it touched, and hash-keyed index pages are touched at random, so small commits make the
    cost per row grow with the store. PostgreSQL's executemany gives no row count, so there
    RETURNING counts new rows. A chunk the store refuses is counted as lost and stops the file.
    """

    LOOKUP_BATCH = 500

    def __init__(self, store: Any, summary: FileSummary, chunk_size: int, sink: _Sink, text_col: str) -> None:
        self.store = store
        self.summary = summary
        self.chunk_size = chunk_size
        self.sink = sink
        self.text_col = text_col
        self.buf: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        self.table = Item.__table__
        self.stmt = insert_ignore(store.dialect, self.table, ["id"])
        self.returning = self.stmt.returning(self.stmt.table.c.id)
        self.counts_rows = store.dialect == "sqlite"  # sqlite3's executemany rowcount is exact

    def add(self, lineno: int, item: dict[str, Any], row: dict[str, Any]) -> None:
        self.buf.append((lineno, item, row))
        if len(self.buf) >= self.chunk_size:
            self.flush()

    def _texts(self, conn: Any, ids: list[str]) -> dict[str, str]:
        from sqlalchemy import select

        t, out = self.table, {}
        for i in range(0, len(ids), self.LOOKUP_BATCH):
            out.update(conn.execute(select(t.c.id, t.c.text).where(t.c.id.in_(ids[i:i + self.LOOKUP_BATCH]))).all())
        return out

    def flush(self) -> None:
        buf, self.buf = self.buf, []
        if not buf:
            return
        # The first row of each id is inserted (skipped if the id is stored); the rows after it
        # and the skipped ones are then compared with the text the store holds.
        first: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}
        repeats = []
        for entry in buf:
            if entry[1]["id"] in first:
                repeats.append(entry)
            else:
                first[entry[1]["id"]] = entry
        # In id order: two runs inserting overlapping ids in opposite orders would each hold a row
        # the other waits for (on PostgreSQL a deadlock, and one run's whole chunk lost).
        new = sorted((item for _, item, _ in first.values()), key=lambda it: it["id"])
        conflicts: list[tuple[int, dict[str, Any], dict[str, Any], str]] = []
        try:
            with self.store.begin() as conn:
                stored = self._insert(conn, new)
                known = self._texts(conn, list(first)) if stored < len(new) else {}
        except Exception as exc:  # noqa: BLE001 - whatever the driver raises, these rows are not stored
            self.summary.lost += len(buf)
            raise _Abort(f"the store refused {len(buf)} rows: {_one_line(exc)}") from None
        duplicate = len(new) - stored
        for entry in [*first.values(), *repeats]:
            item = entry[1]
            held = known.get(item["id"], first[item["id"]][1]["text"])
            if held == item["text"]:
                if entry is not first[item["id"]]:
                    duplicate += 1  # a repeat of the text the store holds
            else:
                conflicts.append((*entry, held))
                if entry is first[item["id"]]:
                    duplicate -= 1  # skipped by the insert, but its text differs
        self.summary.stored += stored
        self.summary.duplicate += duplicate
        conflicts.sort(key=lambda c: c[0])
        for n, (lineno, item, row, prior) in enumerate(conflicts):
            try:
                self.sink.put(lineno, self.text_col, "conflict: this id is already stored with a different text",
                              row, count="conflict", id=item["id"], stored_text=prior, new_text=item["text"])
            except _Abort:
                self.summary.lost += len(conflicts) - n - 1  # the failed one is counted by the sink
                raise

    def _insert(self, conn: Any, items: list[dict[str, Any]]) -> int:
        if not items:
            return 0
        if self.counts_rows:
            return conn.execute(self.stmt, items).rowcount
        return len(conn.execute(self.returning, items).all())
