"""File helpers for the index and the campaign graph: atomic replace and append-only logs.

Both files only ever grow between full rebuilds (item ids, entity keys, index keys), so each
save appends what is new instead of rewriting hundreds of thousands of values; the JSON meta
written last records (count, bytes) of every log, and loading reads exactly that prefix, so a
save that died half-way leaves nothing a later load would trust.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def append_log(path: Path, values: list[str], saved: tuple[int, int] | None) -> tuple[int, int]:
    """Write `values` as JSON lines, appending to the file when it holds the first `saved` ones.

    Returns (count, bytes) to record in the caller's meta.
    """
    if saved is None or not path.exists() or saved[0] > len(values) or path.stat().st_size < saved[1]:
        data = "".join(json.dumps(v) + "\n" for v in values).encode("utf-8")
        atomic_write(path, data)
        return len(values), len(data)
    data = "".join(json.dumps(v) + "\n" for v in values[saved[0]:]).encode("utf-8")
    with open(path, "r+b") as fh:
        fh.truncate(saved[1])
        fh.seek(saved[1])
        fh.write(data)
    return len(values), saved[1] + len(data)


def read_log(path: Path, count: int, nbytes: int) -> list[str]:
    """The first `count` values of a log (exactly `nbytes` bytes); ValueError when they are not there."""
    with open(path, "rb") as fh:
        data = fh.read(nbytes)
    text = data.decode("utf-8")
    values = json.loads("[" + ",".join(text.splitlines()) + "]") if text else []
    if len(values) != count:
        raise ValueError(f"{path.name}: {len(values)} values, expected {count}")
    return values
