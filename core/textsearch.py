"""Substring search over stored text in its `normalize_light` form, on SQLite and PostgreSQL.

The stored text is evidence and never normalised, so a search folds both sides when it runs: a
query for "prize" finds "PRIZE", "ＰＲＩＺＥ" and "pri\u200bze", and "приз" finds "ПРИЗ"
(SQLite's own LIKE folds ASCII letters only). SQLite calls `normalize_light` itself through a
function the store registers on every connection (`FOLD_FUNCTION`); PostgreSQL folds with
`normalize(…, NFKC)`, a regular expression over the usual invisible format characters, `lower`,
"ß" as "ss" and "ς" as "σ" (`casefold`'s commonest differences from `lower`), and folds the
query with that same SQL, so a text always finds itself there; `lower` and `casefold` still
differ on a few letters (PostgreSQL's `lower("İ")` is "i", `casefold`'s is "i" with a dot above).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, func, literal, literal_column

from .text import normalize_light

FOLD_FUNCTION = "wb_fold"  # the SQLite function name the store registers
# Format (Cf) characters seen in evasions: soft hyphen, Arabic letter mark, Mongolian vowel
# separator, zero-width space / non-joiner / joiner, LRM / RLM, bidi embeddings and isolates,
# word joiner and invisible operators, the byte-order mark.
_PG_INVISIBLE = "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"


def folded(column: Any, dialect: str) -> ColumnElement[Any]:
    """`column` as `normalize_light` would fold it, in SQL for `dialect` ("sqlite" or "postgresql")."""
    if dialect == "sqlite":
        return getattr(func, FOLD_FUNCTION)(column)
    nfkc = func.normalize(column, literal_column("NFKC"))  # the form is a keyword, not a string
    visible = func.regexp_replace(nfkc, _PG_INVISIBLE, "", "g")
    lowered = func.lower(func.regexp_replace(visible, r"\s+", " ", "g"))
    return func.btrim(func.replace(func.translate(lowered, "\u03c2", "\u03c3"), "\u00df", "ss"))


def contains_folded(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """True where `column`, folded, contains `value`, folded; LIKE wildcards in `value` are literal.
    On PostgreSQL the query is folded by the same SQL as the column: folded in Python, "Straße"
    and "İstanbul" did not find themselves there."""
    if dialect == "sqlite":
        needle: ColumnElement[Any] = literal(normalize_light(value), String)
    else:
        needle = folded(literal(value, String), dialect)
    escaped = func.replace(func.replace(func.replace(needle, "/", "//", type_=String), "%", "/%", type_=String),
                           "_", "/_", type_=String)
    pattern = literal("%", String).concat(escaped).concat(literal("%", String))
    return folded(column, dialect).like(pattern, escape="/")


def register_sqlite(dbapi_conn: Any) -> None:
    """Give a sqlite3 connection the fold function (deterministic, so SQLite may cache it)."""
    dbapi_conn.create_function(FOLD_FUNCTION, 1, lambda s: None if s is None else normalize_light(str(s)),
                               deterministic=True)
