"""Readers for ingest: each yields (line number, {column: value}) for every record of one input.

A record that cannot be read as a row is yielded as `{"__error__": BadRow(...), "__raw__": ...}`
so the caller quarantines it and goes on; nothing is skipped silently. Files are decoded as
UTF-8 with `surrogateescape` (a byte that is not UTF-8 survives, flagged by the row builder, so
it costs that row and not the file) and a UTF-8 byte-order mark is dropped.

**Unbalanced quotes (CSV / TSV).** A quoted field may hold line breaks, so a quote that is never
closed would swallow the rows after it into one text. A record that spans several lines is kept
only when all of these hold:
  - it parses strictly (after a closing quote comes a delimiter or the line end),
  - it has the header's number of fields and ends before the end of the file,
  - no line inside the quoted field reads as a row of its own: no quote character, exactly the
    header's number of fields (two or more), and a first field without spaces (as ids, numbers
    and dates are), and
  - it spans at most `MAX_RECORD_LINES` lines.
Otherwise the line where the quote opened is quarantined ("unbalanced quote", naming the column
the quote opened in) and reading starts again at the next line, so the rows it swallowed are
read as rows. A legitimate multi-line text (whose inner lines are prose) passes.

**Ambiguous or mis-encoded input.** A header naming a mapped column twice or not at all (CSV,
TSV, Parquet), a file whose byte-order mark says UTF-16 or UTF-32 and a compressed file (gzip,
zip, bzip2, xz, zstd) fail at once with one line; a JSONL object holding a key twice is a bad
row (`json.loads` would keep the last value silently). Files joined together (`cat`): a CSV/TSV
line repeating the header is a bad row, not an item, and a BOM opening a later JSONL line is dropped.

**Local paths.** A path that does not exist but looks local (starts with `.`, `/` or `~`, holds a
backslash or more than one `/`, ends in a file extension, or names a folder that exists, as in
`data/posts`) fails at once with "no such file or folder"; only `owner/name` shapes go to the Hub.
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import json
import math
import unicodedata
from pathlib import Path
from typing import Any, Iterator, Optional

from .text import has_undecodable_bytes, invisible_char

FORMATS = ("csv", "tsv", "jsonl", "parquet", "hf")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".arrow": "hf"}
# Extensions that mark a missing path as a local file (never a Hub id).
_FILE_EXTENSIONS = set(_EXTENSIONS) | {".txt", ".gz", ".bz2", ".xz", ".zst", ".zip", ".xls", ".xlsx", ".feather"}
MAX_RECORD_LINES = 10_000  # a quoted field running longer than this is taken as an unclosed quote
PSEUDO_COLUMNS = ("@row",)  # ingest's ROW_NUMBER: mapped, but no column of the file
# One item's text, by file or by the API: a 100 MB CSV field stored whole would be served,
# masked, scored and shown whole on every screen that shows the item.
MAX_TEXT_CHARS = 100_000
_UNCLOSED = "unbalanced quote: the quoted field opened on this line is not closed"

csv.field_size_limit(min(2**31 - 1, 1 << 28))


class IngestError(RuntimeError):
    """An input cannot be read at all (missing file, unknown format, bad options)."""


class BadRow(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


# -- which reader --------------------------------------------------------------------------------
def detect_format(path: str, fmt: Optional[str], default: Optional[str] = None) -> str:
    """The explicit format, else the extension's, else `default` (a preset's), else an error.

    A missing path fails at once unless it can only be a Hub dataset id (see the module doc)."""
    p = Path(path)
    if not p.exists():
        if looks_local(path) or (fmt is not None and fmt != "hf") or not _looks_like_hub_id(path):
            raise IngestError(f"{path}: no such file or folder")
        return "hf"
    if fmt:
        return fmt
    if p.is_dir():
        return "hf"
    ext = p.suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if default:
        return default
    raise IngestError(f"{path}: cannot tell the format from the extension {ext!r}; pass --format "
                      f"({', '.join(FORMATS)})")


def looks_local(path: str) -> bool:
    """True when a path names a local file or folder, never a Hub dataset id."""
    if path.startswith((".", "/", "~")) or "\\" in path or path.count("/") > 1:
        return True
    if Path(path).suffix.lower() in _FILE_EXTENSIONS:
        return True
    head = path.split("/")[0]
    return "/" in path and Path(head).is_dir()


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and all(parts)


# -- values as read: times, ids, types ----------------------------------------------------------
def parse_time(value: Any) -> Optional[dt.datetime]:
    """ISO 8601 text (basic `20240115` too), epoch seconds (or milliseconds), or a datetime; as naive UTC."""
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
        try:  # ISO first: a basic-format date ("20240115") is a float too, and read so it is 1970-08-23
            ts = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            num = float(s)  # epoch seconds or milliseconds as text; else the ValueError is the row's
            if not math.isfinite(num):  # the text "nan" or "inf" is no time (a NaN value is a missing one)
                raise ValueError(f"not a time: {s!r}") from None
            return parse_time(num)
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def ident_text(value: Any, column: str, what: str) -> Optional[str]:
    """An id or author as text: a string (stripped, NFC) or an integer's decimal text; None if absent.

    A float is refused even when integral: `1.0` must not silently become the same id as `1`.
    Ids that look identical must be one id: a string is NFC-normalised (an NFC or ASCII id is
    unchanged) and one holding a control or invisible format character (NUL, zero-width space,
    bidi override) is refused, since it would be a different id that renders the same."""
    if type(value) is str:
        s = value.strip()
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    elif isinstance(value, bool) or not isinstance(value, (str, int)):
        hint = "; write ids as text or integers" if isinstance(value, float) else ""
        raise BadRow(column, f"{what} is {type_name(value)} ({preview(value)}), not text or an integer{hint}")
    else:
        s = str(value).strip()
    if not s.isascii() and has_undecodable_bytes(s):
        raise BadRow(column, f"wrong encoding: {what} is not valid UTF-8")
    bad = invisible_char(s)
    if bad == "\x00":
        raise BadRow(column, f"{what} contains NUL bytes")
    if bad is not None:
        raise BadRow(column, f"{what} contains the invisible or control character U+{ord(bad):04X}")
    if not s.isascii():
        s = unicodedata.normalize("NFC", s)
    return s or None


def type_name(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def preview(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def has_bad_bytes(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii() and has_undecodable_bytes(value)
    if isinstance(value, dict):
        return any(has_bad_bytes(k) or has_bad_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_bad_bytes(v) for v in value)
    return False


def has_nul(value: Any) -> bool:
    """True when a string in `value` (keys included) holds NUL, which a PostgreSQL text cannot hold."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


def lone_surrogate(value: Any) -> Optional[int]:
    """1-based place of the first lone surrogate in a string of `value` (keys too), or None.

    UTF-8 cannot encode one, so the store would refuse the whole chunk holding the row."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return exc.start + 1
        return None
    parts = [x for kv in value.items() for x in kv] if isinstance(value, dict) else value
    if isinstance(parts, (list, tuple)):
        for v in parts:
            at = lone_surrogate(v)
            if at is not None:
                return at
    return None


def non_finite(value: Any) -> Optional[float]:
    """The first NaN or infinity anywhere in `value` (a JSON-like value), or None.

    JSON has no such numbers: PostgreSQL refuses the chunk holding one in a JSON column. Walks
    with its own stack: the input is hostile."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return v
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
    return None


def name_problem(what: str, value: str, limit: int) -> Optional[str]:
    """Why `value` cannot be a source or surface name (the items table's rule), or None."""
    if len(value) > limit:
        return f"the {what} name is {len(value)} characters long, the most is {limit} ({value[:40]!r}...)"
    bad = invisible_char(value)
    if bad is not None:
        return f"the {what} name contains the control or invisible character U+{ord(bad):04X}"
    at = lone_surrogate(value)
    if at is not None:  # undecodable bytes in a file name: every row would be quarantined for it
        return f"the {what} name is not valid Unicode (character {at})"
    return None


def jsonable(value: Any) -> Any:
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


# -- CSV / TSV ------------------------------------------------------------------------------------
class _Swallowed(Exception):
    """A line inside a quoted field reads as a row of its own, or the field runs too long."""


class _Lines:
    """The physical lines of a file for csv.reader, remembering those of the current record;
    lines can be handed back to be read again."""

    def __init__(self, fh: Any, delimiter: str, quotechar: str) -> None:
        self.fh = fh
        self.delimiter = delimiter
        self.quotechar = quotechar
        self.pending: collections.deque[str] = collections.deque()
        self.taken: list[str] = []
        self.width = 0  # the header's field count, once known

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self.pending.popleft() if self.pending else next(self.fh)
        self.taken.append(line)
        if len(self.taken) > 1:  # csv asks for another line only inside a quoted field
            if len(self.taken) > MAX_RECORD_LINES or self._reads_as_row(line):
                raise _Swallowed()
        return line

    def _reads_as_row(self, line: str) -> bool:
        if self.width < 2 or self.quotechar in line:
            return False
        parts = line.rstrip("\r\n").split(self.delimiter)
        return len(parts) == self.width and bool(parts[0]) and not any(ch.isspace() for ch in parts[0])

    def give_back(self, lines: list[str]) -> None:
        self.pending.extendleft(reversed(lines))


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


_COMPRESSED = ((b"\x1f\x8b", "gzip-compressed"), (b"PK\x03\x04", "a zip archive"),
               (b"\xfd7zXZ\x00", "xz-compressed"), (b"\x28\xb5\x2f\xfd", "zstd-compressed"))


def _check_utf8(path: str) -> None:
    """IngestError for a file whose byte-order mark says UTF-16 or UTF-32, or that is compressed:
    read as UTF-8 text every row would be quarantined (binary noise) for a reason that hides the cause."""
    with open(path, "rb") as fh:
        head = fh.read(10)
    packed = [name for magic, name in _COMPRESSED if head.startswith(magic)]
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        packed.append("bzip2-compressed")
    if packed:
        raise IngestError(f"{path}: the file is {packed[0]}, not text; decompress it first")
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise IngestError(f"{path}: the file is {name} (its byte-order mark says so); save it as UTF-8")


def read_delimited(path: str, delimiter: str, quoting: int,
                   columns: Optional[list[str]] = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV/TSV file; bytes that are not UTF-8 survive as surrogates, flagged later.

    A header naming one of `columns` (those mapped to fields) twice or not at all is an
    IngestError: which of two values is the text would be a guess (an unused duplicate costs
    nothing), and a missing column would cost or blank every row."""
    _check_utf8(path)
    with open(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        lines = _Lines(fh, delimiter, '"')
        reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
        skipped = 0  # blank lines before the header: the header is the first line with a field
        try:
            while not (header := next(reader)):
                skipped, lines.taken = skipped + len(lines.taken), []
        except StopIteration:
            return
        except (csv.Error, _Swallowed) as exc:
            what = exc if isinstance(exc, csv.Error) else "a quote in the header is not closed"
            raise IngestError(f"{path}: cannot parse the header: {what}") from None
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        _check_mapped(path, header, columns or ())
        width = lines.width = len(header)
        lineno = 1 + skipped + len(lines.taken)  # the number of the record's first line
        while True:
            lines.taken = []
            problem: Optional[str] = None
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem = str(exc)
                values = None
            except _Swallowed:
                problem = "swallowed"
                values = None
            taken = lines.taken
            if values is not None and (len(taken) <= 1 or len(values) == width):
                start, lineno = lineno, lineno + len(taken)
                if not values:
                    continue  # blank line
                if len(values) != width:
                    yield start, {"__error__": BadRow("row", f"expected {width} fields, found {len(values)}"),
                                  "__raw__": values}
                    continue
                if width > 1 and [values[0].removeprefix("\ufeff"), *values[1:]] == header:
                    yield start, {"__error__": BadRow("row", "the header line again (files joined together?)"),
                                  "__raw__": values}
                    continue
                yield start, dict(zip(header, values))
                continue
            if len(taken) <= 1:  # one line that does not parse (a final unclosed quote included)
                start, lineno = lineno, lineno + max(len(taken), 1)
                reason = (_UNCLOSED + " (the file ends inside it)" if problem and "end of data" in problem
                          else f"unparsable CSV: {problem}")
                yield start, {"__error__": BadRow(_open_column(taken, header, delimiter), reason),
                              "__raw__": "".join(taken)}
                reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
                continue
            # A quoted field ran over several lines and did not make a good row: quarantine the
            # line it opened on, and read the lines it took again as rows of their own.
            if problem == "swallowed":
                why = f"line {lineno + len(taken) - 1} inside it reads as a row of its own"
                if len(taken) > MAX_RECORD_LINES:
                    why = f"it runs over more than {MAX_RECORD_LINES} lines"
            elif problem and "end of data" in problem:
                why = "the file ends inside it"
            elif problem:
                why = f"it does not parse: {problem}"
            else:
                why = f"it spans lines {lineno}-{lineno + len(taken) - 1} and leaves {len(values or [])} fields, not {width}"
            yield lineno, {"__error__": BadRow(_open_column(taken, header, delimiter),
                                               f"{_UNCLOSED} ({why})"),
                           "__raw__": taken[0]}
            lines.give_back(taken[1:])
            lineno += 1
            reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)


def _check_mapped(path: str, names: list[str], used: Any, where: str = "header") -> None:
    """IngestError when a column mapped to a field (one of `used`) is named twice in the file:
    which of the two values is meant would be a guess (an unused duplicate costs nothing), or is
    not in it at all: a mistyped author or time column would store every item without one (and
    hash ids that a corrected re-ingest stores again), a mistyped text or label column would
    copy every row into the quarantine. A header that spells a mapped column in another case or
    with spaces around it is named as such (not read as the column: that would be a guess)."""
    at = path
    missing = [n for n in used if n not in names and n not in PSEUDO_COLUMNS]
    if missing:
        near = [f"column {i + 1} is {h!r}" for i, h in enumerate(names)
                if isinstance(h, str) and h.strip().casefold() == missing[0].strip().casefold()]
        if near:
            raise IngestError(f"{at}: no column {missing[0]!r} in the {where}, but {', '.join(near[:3])} "
                              f"(another case or spaces around it); rename it or map that spelling")
        shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise IngestError(f"{at}: no column {missing[0]!r} in the {where} (it has {shown or 'none'}); "
                          f"check the column mapping (--*-column options)")
    for name in used:
        places = [str(i + 1) for i, h in enumerate(names) if h == name]
        if len(places) > 1:
            raise IngestError(f"{at}: the {where} names column {name!r} {len(places)} times "
                              f"(columns {', '.join(places)}); rename all but one")


def _open_column(taken: list[str], header: list[str], delimiter: str) -> str:
    """The column a record's first line leaves open (its last field once the quote is closed)."""
    if not taken:
        return "row"
    try:
        fields = next(csv.reader([taken[0].rstrip("\r\n") + '"'], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return "row"
    idx = len(fields) - 1
    return header[idx] if 0 <= idx < len(header) and header[idx] else "row"


# -- JSONL, Parquet, Hugging Face ----------------------------------------------------------------
class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        shown = repr(key) if len(key) <= 100 else repr(key[:100]) + "..."  # hostile: one short line
        super().__init__(f"duplicate key {shown} in a JSON object: which value is meant is a guess")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json.loads would keep the last value
    silently: `{"text": "benign", "text": "scam"}` reads differently elsewhere)."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a JSONL file: a line that is not one JSON object, or holds a key twice, is a bad row.

    Lines end at LF only: a bare CR is JSON whitespace (or a bad row's stray byte), and splitting
    there would break a record in two and put every later line number off by one."""
    _check_utf8(path)
    with open(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="\n") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if line.startswith("\ufeff"):  # files joined with `cat`: JSON has no BOM, so no row holds one
                line = line[1:]
            try:
                obj = json.loads(line, object_pairs_hook=unique_keys)
            except DuplicateKey as exc:
                yield lineno, {"__error__": BadRow(exc.key, str(exc)), "__raw__": line[:500]}
                continue
            except (ValueError, RecursionError) as exc:  # a syntax error, nesting too deep, an int too long
                yield lineno, {"__error__": BadRow("row", f"invalid JSON: {_json_problem(exc)}"),
                               "__raw__": line[:500]}
                continue
            if not isinstance(obj, dict):
                yield lineno, {"__error__": BadRow("row", f"expected a JSON object, found {type(obj).__name__}"),
                               "__raw__": line[:500]}
                continue
            yield lineno, obj


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"  # "Invalid control character at"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"unreadable value ({str(exc).split(';')[0].strip() or type(exc).__name__})"


def read_parquet(path: str, batch_rows: int = 10_000,
                 columns: Optional[list[str]] = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Parquet file, only `columns` (those mapped to fields) when given.

    A value Python cannot hold (a timestamp past year 9999) costs its row, not the batch: a
    batch that fails to convert is converted again row by row, naming the failing column."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise IngestError(f"{path}: not a readable Parquet file: {exc}") from None
    keep = None if columns is None else set(columns)
    _check_mapped(path, names, keep or (), "schema")
    wanted = None if keep is None else [c for c in names if c in keep]
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        try:
            recs = batch.to_pylist() if batch.num_columns else [{} for _ in range(batch.num_rows)]
        except Exception:  # noqa: BLE001 - pyarrow / datetime raise several types for one bad value
            recs = [_parquet_row(batch, i) for i in range(batch.num_rows)]
        for rec in recs:
            row += 1
            yield row, rec


def _parquet_row(batch: Any, i: int) -> dict[str, Any]:
    """Row `i` of a batch value by value; a value that cannot be converted makes it a bad row."""
    rec: dict[str, Any] = {}
    bad: Optional[BadRow] = None
    for name, col in zip(batch.schema.names, batch.columns):
        try:
            rec[name] = col[i].as_py()
        except Exception as exc:  # noqa: BLE001 - as above
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            bad = bad or BadRow(name, f"unreadable {col.type} value: {why}")
            try:  # the value as Arrow prints it, for the quarantine record
                rec[name] = col.slice(i, 1).cast("string")[0].as_py()
            except Exception:  # noqa: BLE001 - a type Arrow cannot print either
                rec[name] = f"<unreadable {col.type}>"
    return rec if bad is None else {"__error__": bad, "__raw__": rec}


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
