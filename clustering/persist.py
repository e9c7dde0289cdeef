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
    """The first `count` values of a log (exactly `nbytes` bytes); ValueError when they are not
    there or are not strings. A damaged or planted log (a line of 100,000 "[", numbers for item
    ids) was a RecursionError traceback, or loaded ints as ids that then matched nothing."""
    with open(path, "rb") as fh:
        data = fh.read(nbytes)
    text = data.decode("utf-8")
    try:
        values = json.loads("[" + ",".join(text.splitlines()) + "]") if text else []
    except RecursionError:
        raise ValueError(f"{path.name}: values nested too deeply to be ids or keys") from None
    if len(values) != count:
        raise ValueError(f"{path.name}: {len(values)} values, expected {count}")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"{path.name}: line {bad + 1} is {type(values[bad]).__name__}, expected a string")
    return values
