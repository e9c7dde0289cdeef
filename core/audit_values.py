"""What an audit event may hold: strict JSON that SQLite and PostgreSQL store alike and UTF-8 encodes.

`audit.record` runs inside the caller's transaction, so a value the log cannot take fails the
action it describes (an ingest whose file name is not UTF-8, a gate whose metric is NaN) or, on
one store only, loses its event after the work is done. The hash must also cover exactly what
the database gives back, or an honest log stops verifying. So before hashing: a lone surrogate
(a file name's undecodable byte) becomes U+FFFD (`core.text`); NaN and the infinities become the
strings "NaN", "Infinity", "-Infinity" (PostgreSQL's JSON refuses them); an integer too long for
`str` becomes hex; a key JSON cannot take becomes its `str`, and keys that meet after that
conversion (1 and "1") are kept apart ("1#2") instead of one silently replacing the other; other
objects become their `str` (as before). The text columns get the same treatment, NUL removed
(PostgreSQL refuses it in text) and cut to their length (PostgreSQL refuses longer, SQLite keeps it).
"""
from __future__ import annotations

import json
import math
from typing import Any, Optional

from sqlalchemy import Table

from .text import replace_lone_surrogates

_MAX_INT_BITS = 10_000  # ~3,000 digits: below Python's int-to-str limit (4,300 digits)


def _text(value: str) -> str:
    return replace_lone_surrogates(str.__str__(value))


def _key(key: Any) -> str:
    """The key as `json.dumps` writes it (str, bool, None, int, float), or its `str`."""
    if isinstance(key, str):
        return _text(key)
    if key is None or isinstance(key, (bool, float)):
        return json.dumps(float(key) if isinstance(key, float) else key)  # "null", "true", "1.5", "NaN"
    if isinstance(key, int):
        return str(_json_safe(key))
    return _text(str(key))


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if value.bit_length() <= _MAX_INT_BITS else f"{int(value):#x}"
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else "NaN" if math.isnan(value) else \
            "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = base = _key(k)
            n = 1
            while name in out:
                n += 1
                name = f"{base}#{n}"
            out[name] = _json_safe(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return _text(str(value))


def json_safe(payload: Any) -> Any:
    """`payload` as strict JSON, read back: what the database will return, so what gets hashed."""
    return json.loads(json.dumps(_json_safe(payload), allow_nan=False))


def event_texts(table: Table, actor: str, action: str, entity_type: Optional[str],
                entity_id: Optional[str | int]) -> tuple[Any, ...]:
    """The event's text columns as `table` can hold them on both stores: lone surrogates and NUL
    replaced, cut to the column's length (the cut marked with "…"); an id given as a number as text."""
    out: list[Optional[str]] = []
    for name, value in (("actor", actor), ("action", action), ("entity_type", entity_type), ("entity_id", entity_id)):
        if value is not None:
            value = _text(str(value)).replace("\x00", "\ufffd")
            size = getattr(table.c[name].type, "length", None)
            value = value[:size - 1] + "…" if size and len(value) > size else value
        out.append(value)
    return tuple(out)
