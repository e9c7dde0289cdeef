"""The quarantine: rows ingest could not store, one JSON record a line, with their retention.

Every record names `file`, `line` (the line, or the row for Parquet and Hugging Face input),
`field` and `reason`, with `source`, `run_id`, `quarantined_at` (UTC) and the raw `row` for
repair; a `conflict` record also holds `id`, `stored_text` and `new_text`. Undecodable bytes are
written as `\\xNN` escapes and a record holding a lone surrogate as ASCII JSON (`\\ud800`), so
every line is valid UTF-8 JSON; a NaN or infinity (JSONL input may hold one) is written as the
text "NaN", "Infinity" or "-Infinity".

The file holds raw input, which may be personal data: it is created with mode 0600, and
`configs/retention.yaml` (`quarantine.max_age_days`) says how long records are kept. `purge`
drops records older than that, keeps every other record byte for byte (a record it cannot date
is kept), rewrites the file atomically (a 0600 temp file, then `os.replace`) and records an
audit event; a store that fails to commit that event gets the old file back. A line Python cannot
decode (not JSON, an integer of thousands of digits, nesting too deep) is listed as unreadable and kept. Writers (ingest) hold a shared lock on `<file>.lock` while the file is open and
purge an exclusive one, so a purge never drops a record appended while it runs.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO

from pydantic import BaseModel, ConfigDict, Field

from .config import config_file, load_model
from .text import has_undecodable_bytes

RETENTION_FILE = "retention.yaml"
LOCK_WAIT_S = 10.0
MAX_RETENTION_DAYS = 36_500  # a hundred years: a longer retention is a typo, and its cutoff a date before year 1


class QuarantineError(RuntimeError):
    """The quarantine cannot be read or rewritten (busy, unreadable)."""


class QuarantineRetention(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_age_days: int = Field(default=30, ge=0, le=MAX_RETENTION_DAYS)


class RetentionConfig(BaseModel):
    """`configs/retention.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    quarantine: QuarantineRetention = QuarantineRetention()


def load_retention(path: str | os.PathLike[str] | None = None) -> RetentionConfig:
    """`retention.yaml` from a configs folder or file; errors name the file and the field."""
    return load_model(config_file(path, RETENTION_FILE), RetentionConfig)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# -- writing -------------------------------------------------------------------------------------
def _escaped(value: Any) -> Any:
    if isinstance(value, str) and has_undecodable_bytes(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN: json.dumps would write one
        return json.dumps(value)  # as the text "NaN", "Infinity" or "-Infinity"
    return value


def printable(value: Any) -> Any:
    """Undecodable bytes as `\\xNN` escapes (keys too) and NaN or infinity as text ("NaN"), so
    the record is valid UTF-8 JSON (a strict parser refuses `NaN`; jq reads it as null).

    Walks with its own stack, not recursion: deeply nested input cannot exhaust Python's.
    """
    if not isinstance(value, (dict, list, tuple)):
        return _escaped(value)
    root: Any = {} if isinstance(value, dict) else []
    todo: list[tuple[Any, Any]] = [(value, root)]
    while todo:
        src, dst = todo.pop()
        for k, v in (src.items() if isinstance(src, dict) else enumerate(src)):
            if isinstance(v, (dict, list, tuple)):
                out: Any = {} if isinstance(v, dict) else []
                todo.append((v, out))
            else:
                out = _escaped(v)
            if isinstance(dst, dict):
                dst[_escaped(str(k))] = out
            else:
                dst.append(out)
    return root


@contextlib.contextmanager
def _lock(path: Path, exclusive: bool) -> Iterator[None]:
    import fcntl

    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not exclusive:
            fcntl.flock(fd, fcntl.LOCK_SH)
        else:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise QuarantineError(f"{path}: an ingest is writing the quarantine; try again when it ends") from None
                    time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class QuarantineWriter:
    """Appends records, each flushed as it is written, so a record counted is a record on disk.

    A file whose last line was cut short (a crash or a full disk mid-write) gets its line ended
    first: appended to it, the next record would be unreadable too."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self._fh: Optional[TextIO] = None

    def __enter__(self) -> "QuarantineWriter":
        self._stack.enter_context(_lock(self.path, exclusive=False))
        try:
            self._open()
        except BaseException:  # __exit__ will not run: let go of the lock, or a purge waits on it
            self._stack.close()
            raise
        return self

    def _open(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):  # a file made before 0600 was the rule, or not ours
            os.fchmod(fd, 0o600)
        try:  # a record torn by a crash or a full disk: end its line, or the next record joins it
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        except OSError:
            os.close(fd)
            raise
        self._fh = self._stack.enter_context(open(fd, "a", encoding="utf-8"))

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def write(self, record: dict[str, Any]) -> None:
        assert self._fh is not None, "use QuarantineWriter as a context manager"
        record = {**record, "quarantined_at": utcnow().isoformat(timespec="seconds")}
        line = json.dumps(printable(record), ensure_ascii=False, default=str)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON input): dumps passes it, UTF-8 cannot
            line = json.dumps(printable(record), ensure_ascii=True, default=str)
        self._fh.write(line + "\n")
        self._fh.flush()


# -- reading, listing, purging -------------------------------------------------------------------
def _records(path: Path) -> Iterator[tuple[str, Optional[dict[str, Any]]]]:
    """(raw line, parsed record or None) for every line of the file."""
    try:
        fh = open(path, "r", encoding="utf-8", errors="surrogateescape", newline="")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise QuarantineError(f"{path}: cannot read the quarantine: {exc.strerror}") from None
    with fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, an int too long to read, nesting too deep
                rec = None
            yield line, rec if isinstance(rec, dict) else None


def _run_times(store: Any) -> dict[int, dt.datetime]:
    """When each ingest run started: the date of records written before `quarantined_at` existed."""
    from sqlalchemy import select

    from .schema import IngestRun

    t = IngestRun.__table__
    with store.read() as conn:
        return {r.id: r.started_at for r in conn.execute(select(t.c.id, t.c.started_at)) if r.started_at}


def _when(rec: Optional[dict[str, Any]], runs: dict[int, dt.datetime]) -> Optional[dt.datetime]:
    if rec is None:
        return None
    stamp = rec.get("quarantined_at")
    if isinstance(stamp, str):
        try:
            ts = dt.datetime.fromisoformat(stamp)
            return ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts
        except (ValueError, OverflowError):  # hand-edited: not a time, or one UTC cannot hold (year 1, +01:00)
            return None
    run = rec.get("run_id")
    return runs.get(run) if isinstance(run, int) else None


def _utf8(text: str) -> str:
    """`text` as UTF-8 can print it: undecodable bytes as `\\xNN`, a lone surrogate as `\\udNNN`
    (read back from a record `ensure_ascii` wrote, or from a hand-edited line)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _escaped(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _listed(value: Any) -> Any:
    """A record's value as the listing shows it: an integer or None as it is, text UTF-8 safe,
    anything else a hand edit put there (a list, NaN) as its JSON text, so `--json` stays valid."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=True, default=str)
    return _utf8(value)


def list_quarantine(store: Any, max_age_days: int, now: Optional[dt.datetime] = None, *,
                    principal: Any) -> dict[str, Any]:
    """Every record's place, reason and age (no row contents), counts per reason, and how many
    are past the retention of `max_age_days`. Every value is valid UTF-8 (for `--json` and a
    terminal): the file may hold lone surrogates or hand edits. Needs `read`, checked here, so
    no caller can forget it."""
    from .hooks import check_permission

    check_permission(principal, "read", "quarantine")
    now = now or utcnow()
    path, runs = store.quarantine_path, _run_times(store)
    out, reasons, past, undated = [], {}, 0, 0
    for _, rec in _records(path):
        when = _when(rec, runs)
        age = round((now - when).total_seconds() / 86400, 2) if when else None
        if age is None:
            undated += 1
        elif age > max_age_days:
            past += 1
        rec = rec or {}
        reason = _utf8(str(rec.get("reason", "unreadable quarantine line")))
        key = reason.split(" (")[0].split(": ")[0]
        reasons[key] = reasons.get(key, 0) + 1
        out.append({**{k: _listed(rec.get(k)) for k in ("file", "line", "field")}, "reason": reason,
                    **{k: _listed(rec.get(k)) for k in ("source", "run_id")},
                    "quarantined_at": when.isoformat(timespec="seconds") if when else None, "age_days": age})
    return {"path": _utf8(str(path)), "records": len(out), "max_age_days": max_age_days, "past_retention": past,
            "undated": undated, "by_reason": reasons, "items": out}


def purge_quarantine(store: Any, older_than_days: float, actor: Any,
                     now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Drop records older than `older_than_days`; keep the rest intact; audit the purge. Needs
    `purge_quarantine`."""
    from . import audit
    from .hooks import check_permission

    check_permission(actor, "purge_quarantine", "quarantine")

    if not 0 <= older_than_days <= MAX_RETENTION_DAYS:
        raise QuarantineError(f"--older-than must be 0 to {MAX_RETENTION_DAYS} days")
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=older_than_days)
    path, runs = store.quarantine_path, _run_times(store)
    removed = kept = 0
    # Rewrite the file a symlink points to (writers append through it): replacing the link
    # itself would leave every purged record in its target, personal data kept past retention.
    real = Path(os.path.realpath(path))
    with _lock(path, exclusive=True):
        tmp = prev = None
        if real.exists():
            fd, tmp = tempfile.mkstemp(prefix=".quarantine-", suffix=".tmp", dir=real.parent)
        try:
            if tmp is not None:
                os.fchmod(fd, 0o600)
                with open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
                    for line, rec in _records(real):
                        when = _when(rec, runs)
                        if when is not None and when < cutoff:
                            removed += 1
                            continue
                        kept += 1
                        out.write(line if line.endswith("\n") else line + "\n")
                    out.flush()
                    os.fsync(out.fileno())
            result = {"path": str(path), "removed": removed, "kept": kept, "older_than_days": older_than_days,
                      "cutoff": cutoff.isoformat(timespec="seconds")}
            # The event commits only once the file is replaced: no audited purge that did not happen.
            # A commit that fails after the replace puts the file back (a hard link to it as it
            # was): no purge that the audit log does not show either.
            with store.begin() as conn:
                audit.record(conn, actor, "quarantine_purge", "quarantine", path.name, result)
                if tmp is not None:
                    prev = _linked_aside(real)
                    os.replace(tmp, real)
                    tmp = None
        except BaseException:
            if tmp is None and prev is not None:  # replaced, then the store failed: undo the purge
                os.replace(prev, real)
                prev = None
            raise
        finally:
            for left in (tmp, prev):
                if left is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(left)
    return result


def _linked_aside(real: Path) -> Optional[str]:
    """A hard link to the quarantine as it is (same inode, so mode 0600 and no copy), for putting
    it back; None where the file system has no hard links (the purge then cannot be undone)."""
    aside = str(real.with_name(f".{real.name}.purging"))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(aside)  # left by a purge that crashed: the file itself is the truth
    try:
        os.link(real, aside)
    except OSError:
        return None
    return aside
