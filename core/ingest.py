"""Ingest: stream rows from CSV / TSV / JSONL / Parquet / Hugging Face datasets into items.

Rows are validated and normalised one at a time and written in chunks (one transaction each),
so a million rows never sit in memory and a crash loses at most one uncommitted chunk. Ids are
stable (`source:<id>`, or a content hash when the source has none), and inserts skip ids that
exist, so re-ingesting adds nothing. A row that cannot become an item goes to the quarantine
JSONL in the data directory with file, line, field and reason; nothing is silently dropped.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from . import audit
from .schema import IngestRun, Item
from .store import insert_ignore
from .text import has_undecodable_bytes, text_hash

ROW_NUMBER = "@row"  # pseudo-column: the 1-based data row number (same in a file and on the Hub)
MAX_ID_LEN = 200
FORMATS = ("csv", "tsv", "jsonl", "parquet", "hf")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".arrow": "hf"}

csv.field_size_limit(min(2**31 - 1, 1 << 28))


class IngestError(RuntimeError):
    """An input cannot be read at all (missing file, unknown format, bad options)."""


@dataclass
class ColumnMap:
    """Which input column feeds which item field; None means the default or absent."""

    id: Optional[str] = None
    text: Optional[str] = None
    author: Optional[str] = None
    created: Optional[str] = None
    label: Optional[str] = None
    meta: list[str] = field(default_factory=list)

    def merged_over(self, base: "ColumnMap") -> "ColumnMap":
        """Explicit options win over a preset's mapping."""
        return ColumnMap(id=self.id or base.id, text=self.text or base.text,
                         author=self.author or base.author, created=self.created or base.created,
                         label=self.label or base.label, meta=self.meta or base.meta)


@dataclass(frozen=True)
class Preset:
    """How to read one known public dataset, from its file and from the Hub."""

    source: str
    fmt: str
    columns: ColumnMap
    hub_id: str
    hub_columns: ColumnMap
    quoting: int = csv.QUOTE_MINIMAL


PRESETS: dict[str, Preset] = {
    "sms_spam": Preset(
        source="sms_spam", fmt="tsv", quoting=csv.QUOTE_NONE,
        columns=ColumnMap(id=ROW_NUMBER, text="SMS", label="Label"),
        hub_id="ucirvine/sms_spam", hub_columns=ColumnMap(id=ROW_NUMBER, text="sms", label="label"),
    ),
    "davidson": Preset(
        source="davidson", fmt="csv",
        columns=ColumnMap(id="", text="tweet", label="class",
                          meta=["count", "hate_speech", "offensive_language", "neither"]),
        hub_id="tdavidson/hate_speech_offensive",
        hub_columns=ColumnMap(id=ROW_NUMBER, text="tweet", label="class",
                              meta=["count", "hate_speech_count", "offensive_language_count", "neither_count"]),
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
    quarantined: int = 0
    error: Optional[str] = None
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestSummary:
    run_id: int
    files: list[FileSummary]
    quarantine_path: str

    def total(self, key: str) -> int:
        return sum(getattr(f, key) for f in self.files)

    @property
    def ok(self) -> bool:
        """False only when nothing could be stored (nor was already there)."""
        return self.total("stored") + self.total("duplicate") > 0

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "read": self.total("read"), "stored": self.total("stored"),
                "duplicate": self.total("duplicate"), "quarantined": self.total("quarantined"),
                "quarantine_file": self.quarantine_path, "ok": self.ok,
                "files": [f.__dict__ for f in self.files]}

    def describe(self) -> str:
        lines = []
        for f in self.files:
            if f.error:
                lines.append(f"{f.path}: ERROR {f.error}")
                continue
            lines.append(f"{f.path} [{f.fmt}, source {f.source}]: read {f.read}, stored {f.stored}, "
                         f"duplicate {f.duplicate}, quarantined {f.quarantined}")
            for reason, n in sorted(f.reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"    quarantined {n}: {reason}")
        if len(self.files) > 1:
            lines.append(f"total: read {self.total('read')}, stored {self.total('stored')}, duplicate "
                         f"{self.total('duplicate')}, quarantined {self.total('quarantined')}")
        if self.total("quarantined"):
            lines.append(f"quarantined rows (file, line, reason) are in {self.quarantine_path}")
        return "\n".join(lines)


class BadRow(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


# -- readers: each yields (line number, {column: value}) ----------------------------------------
def detect_format(path: str, fmt: Optional[str], default: Optional[str] = None) -> str:
    """The explicit format, else the extension's, else `default` (a preset's), else an error."""
    if fmt:
        return fmt
    p = Path(path)
    if p.is_dir():
        return "hf"
    if p.exists():
        ext = p.suffix.lower()
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
        if default:
            return default
        raise IngestError(f"{path}: cannot tell the format from the extension {ext!r}; pass --format "
                          f"({', '.join(FORMATS)})")
    if _looks_like_hub_id(path):
        return "hf"
    raise IngestError(f"{path}: no such file or folder")


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not path.startswith((".", "~")) and "\\" not in path


def read_delimited(path: str, delimiter: str, quoting: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV/TSV file; bytes that are not UTF-8 survive as surrogates, flagged later."""
    with open(path, "r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise IngestError(f"{path}: cannot parse the header: {exc}") from None
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        width = len(header)
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, {"__error__": BadRow("row", f"unparsable CSV: {exc}")}
                continue
            if not values:
                continue  # blank line
            if len(values) != width:
                yield reader.line_num, {"__error__": BadRow(
                    "row", f"expected {width} fields, found {len(values)}"), "__raw__": values}
                continue
            yield reader.line_num, dict(zip(header, values))


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "r", encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, {"__error__": BadRow("row", f"invalid JSON: {exc.msg} at column {exc.colno}"),
                               "__raw__": line[:500]}
                continue
            if not isinstance(obj, dict):
                yield lineno, {"__error__": BadRow("row", f"expected a JSON object, found {type(obj).__name__}"),
                               "__raw__": line[:500]}
                continue
            yield lineno, obj


def read_parquet(path: str, batch_rows: int = 10_000) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise IngestError(f"{path}: not a readable Parquet file: {exc}") from None
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def read_hf(path: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """A Hub dataset id, a `save_to_disk` folder, or a local data folder/file, through `datasets`."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency
        raise IngestError(f"{path}: the `datasets` package is needed for Hugging Face input: {exc}") from None
    p = Path(path)
    try:
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "state.json").exists()
                           or (p / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise IngestError(f"{path}: no split {split!r} (has {', '.join(ds)})")
                ds = ds[split]
        elif p.is_file():
            builder = {".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json",
                       ".parquet": "parquet"}.get(p.suffix.lower())
            if builder is None:
                raise IngestError(f"{path}: datasets cannot read {p.suffix!r} files")
            ds = datasets.load_dataset(builder, data_files=str(p), split="train", streaming=True)
        else:
            ds = datasets.load_dataset(path, split=split, streaming=True)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline hub, missing repo, bad folder
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(f"{path}: cannot load as a Hugging Face dataset: {first}") from None
    names = _classlabel_names(ds)
    for row, rec in enumerate(ds, 1):
        for col, labels in names.items():
            value = rec.get(col)
            if isinstance(value, int) and 0 <= value < len(labels):
                rec[col] = (value, labels[value])
        yield row, rec


def _classlabel_names(ds: Any) -> dict[str, list[str]]:
    try:
        import datasets

        feats = ds.features or {}
        return {k: list(v.names) for k, v in feats.items() if isinstance(v, datasets.ClassLabel)}
    except Exception:  # noqa: BLE001 - streaming datasets may not know their features
        return {}


# -- normalising one row ------------------------------------------------------------------------
def parse_time(value: Any) -> Optional[dt.datetime]:
    """ISO 8601 text, epoch seconds (or milliseconds), or a datetime; returned as naive UTC."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, dt.date):
        ts = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        ts = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    else:
        s = str(value).strip()
        try:
            num = float(s)
        except ValueError:
            ts = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        else:
            return parse_time(num)
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def _label_value(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


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

    def __call__(self, lineno: int, row: dict[str, Any], rowno: Optional[int] = None) -> dict[str, Any]:
        """`lineno` locates the row for people; `rowno` (1-based data row) is the `@row` id."""
        c = self.c
        text_col = c.text or "text"
        if text_col not in row:
            raise BadRow(text_col, f"missing text column {text_col!r}")
        text = row[text_col]
        if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
            raise BadRow(text_col, "missing text")
        text = str(text)
        if has_undecodable_bytes(text):
            raise BadRow(text_col, "wrong encoding: text is not valid UTF-8")
        if "\x00" in text:
            raise BadRow(text_col, "text contains NUL bytes")

        author = _opt_str(row.get(c.author)) if c.author else None
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
            raw_id = _opt_str(row.get(c.id))
            if not raw_id:
                raise BadRow(c.id or "id", "missing id")
        else:
            key = "\x1f".join([self.source, author or "", created.isoformat() if created else "", text])
            raw_id = "h" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]
        item_id = f"{self.source}:{raw_id}"
        if len(item_id) > MAX_ID_LEN:
            item_id = f"{self.source}:h{hashlib.sha1(raw_id.encode()).hexdigest()[:24]}"

        meta = None
        if c.meta:
            meta = {}
            for col in c.meta:
                if col not in row:
                    raise BadRow(col, f"missing metadata column {col!r}")
                meta[col] = _jsonable(row[col])
        return {"id": item_id, "source": self.source, "surface": self.surface, "text": text,
                "text_hash": text_hash(text), "author_id": author, "created_at": created,
                "source_label": source_label, "policy_label": policy, "taxonomy_version": self.version,
                "metadata": meta, "ingest_run_id": self.run_id, "ingested_at": self.now}

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


def _opt_str(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = str(value).strip()
    return s or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


# -- the service --------------------------------------------------------------------------------
def ingest_paths(store: Any, taxonomy: Any, paths: list[str], preset: Optional[str] = None,
                 source: Optional[str] = None, fmt: Optional[str] = None,
                 columns: Optional[ColumnMap] = None, surface: Optional[str] = None,
                 split: str = "train", chunk_size: int = 20000, limit: Optional[int] = None,
                 actor: str = "system", progress: bool = True) -> IngestSummary:
    """Ingest every path; raises IngestError before writing anything if a path is unusable."""
    from sqlalchemy import insert, update

    if preset is not None and preset not in PRESETS:
        raise IngestError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if chunk_size < 1:
        raise IngestError("--chunk-size must be at least 1")
    default_fmt = PRESETS[preset].fmt if preset else None
    plan = [(p, detect_format(p, fmt, default_fmt)) for p in paths]  # fails fast on a missing file

    options = {"preset": preset, "source": source, "format": fmt, "split": split,
               "columns": (columns or ColumnMap()).__dict__, "surface": surface, "limit": limit}
    with store.begin() as conn:
        run_id = conn.execute(insert(IngestRun.__table__).values(
            actor=actor, paths=[str(p) for p in paths], options=options)).inserted_primary_key[0]

    files = []
    for path, file_fmt in plan:
        files.append(_ingest_one(store, taxonomy, path, file_fmt, preset, source, columns, surface,
                                 split, chunk_size, limit, run_id, progress))

    summary = IngestSummary(run_id=run_id, files=files, quarantine_path=str(store.quarantine_path))
    counts = {k: summary.total(k) for k in ("read", "stored", "duplicate", "quarantined")}
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
                progress: bool) -> FileSummary:
    from tqdm import tqdm

    pre = PRESETS.get(preset) if preset else None
    from_hub = fmt == "hf" and not Path(path).exists()
    base = (pre.hub_columns if from_hub else pre.columns) if pre else ColumnMap()
    cols = (columns or ColumnMap()).merged_over(base)
    src = source or (pre.source if pre else _source_from_path(path))
    smap = taxonomy.sources.get(src)
    surf = surface or (smap.surface if smap else "post")
    if cols.label is None and smap is not None and smap.label_field and pre is None:
        cols = replace(cols, label=None)  # only map labels when told which column holds them
    summary = FileSummary(path=str(path), fmt=fmt, source=src)

    if fmt in ("csv", "tsv"):
        quoting = pre.quoting if pre and not from_hub else csv.QUOTE_MINIMAL
        rows: Iterable[tuple[int, dict[str, Any]]] = read_delimited(path, "\t" if fmt == "tsv" else ",", quoting)
    elif fmt == "jsonl":
        rows = read_jsonl(path)
    elif fmt == "parquet":
        rows = read_parquet(path)
    else:
        rows = read_hf(path, split)

    build = RowBuilder(taxonomy, src, surf, cols, run_id)
    writer = _ChunkWriter(store, summary, chunk_size)
    bar = tqdm(desc=f"ingest {Path(path).name}", unit=" rows", disable=not progress, mininterval=0.5,
               leave=False)
    try:
        with open(store.quarantine_path, "a", encoding="utf-8") as qfile:
            for lineno, row in rows:
                if limit is not None and summary.read >= limit:
                    break
                summary.read += 1
                err = row.get("__error__")
                try:
                    if err is not None:
                        raise err
                    writer.add(build(lineno, row, summary.read))
                except BadRow as bad:
                    summary.quarantined += 1
                    summary.reasons[bad.reason.split(" (")[0]] = summary.reasons.get(bad.reason.split(" (")[0], 0) + 1
                    qfile.write(json.dumps({
                        "file": str(path), "line": lineno, "field": bad.field, "reason": bad.reason,
                        "source": src, "run_id": run_id, "row": _quarantine_row(row),
                    }, ensure_ascii=False, default=str) + "\n")
                if summary.read % 1000 == 0:
                    bar.update(1000)
            writer.flush()
    except IngestError as exc:
        writer.flush()
        summary.error = str(exc)
    except (OSError, UnicodeError) as exc:
        writer.flush()
        summary.error = f"{path}: read failed after {summary.read} rows: {exc}"
    finally:
        bar.close()
    return summary


def _quarantine_row(row: dict[str, Any]) -> Any:
    raw = row["__raw__"] if "__raw__" in row else {k: v for k, v in row.items() if k != "__error__"}
    return _printable(raw)


def _printable(value: Any) -> Any:
    """Undecodable bytes as `\\xNN` escapes, so the quarantine line itself is valid UTF-8."""
    if isinstance(value, str):
        if has_undecodable_bytes(value):
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


def _source_from_path(path: str) -> str:
    name = Path(path.rstrip("/")).name
    stem = name.split(".")[0] if "." in name else name
    return stem.lower().replace(" ", "_") or "input"


class _ChunkWriter:
    """Buffers item dicts and writes each chunk in one transaction, skipping ids already stored.

    Chunks are large on purpose: a commit rewrites every index page it touched, and hash-keyed
    index pages are touched at random, so small commits make the cost per row grow with the
    store. PostgreSQL's executemany gives no row count, so there RETURNING counts new rows.
    """

    def __init__(self, store: Any, summary: FileSummary, chunk_size: int) -> None:
        self.store = store
        self.summary = summary
        self.chunk_size = chunk_size
        self.buf: list[dict[str, Any]] = []
        self.stmt = insert_ignore(store.dialect, Item.__table__, ["id"])
        self.returning = self.stmt.returning(self.stmt.table.c.id)
        self.counts_rows = store.dialect == "sqlite"  # sqlite3's executemany rowcount is exact

    def add(self, item: dict[str, Any]) -> None:
        self.buf.append(item)
        if len(self.buf) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        with self.store.begin() as conn:
            if self.counts_rows:
                stored = conn.execute(self.stmt, self.buf).rowcount
            else:
                stored = len(conn.execute(self.returning, self.buf).all())
        self.summary.stored += stored
        self.summary.duplicate += len(self.buf) - stored
        self.buf = []
