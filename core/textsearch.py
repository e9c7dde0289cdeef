"""Substring search over stored text in its `normalize_light` form, on SQLite and PostgreSQL.

The stored text is evidence and never normalised, so a search folds both sides when it runs: a
query for "prize" finds "PRIZE", "ＰＲＩＺＥ" and "pri\u200bze", and "приз" finds "ПРИЗ"
(SQLite's own LIKE folds ASCII letters only). SQLite calls `normalize_light` itself through a
function the store registers on every connection (`FOLD_FUNCTION`); PostgreSQL folds with
`normalize(…, NFKC)`, regular expressions over every format (Cf) and space character, `lower`,
"ß" as "ss" and "ς" as "σ" (`casefold`'s commonest differences from `lower`), and folds the
query with that same SQL, so a text always finds itself there; `lower` and `casefold` still
differ on a few letters (PostgreSQL's `lower("İ")` is "i", `casefold`'s is "i" with a dot above).
"""
from __future__ import annotations

import functools
import unicodedata
from typing import Any, Callable, Iterable

from sqlalchemy import ColumnElement, String, false, func, literal, literal_column

from .text import has_lone_surrogate, normalize_light

FOLD_FUNCTION = "wb_fold"  # the SQLite function name the store registers


def _char_class(keep: Callable[[str], bool], planes: Iterable[range]) -> str:
    """A regular-expression bracket class of the characters `keep` takes, as ranges."""
    spans: list[list[int]] = []
    for c in (c for r in planes for c in r if keep(chr(c))):
        if spans and spans[-1][1] == c - 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return "[" + "".join(chr(a) + ("-" + chr(b) if b > a else "") for a, b in spans) + "]"


@functools.cache
def _pg_classes() -> tuple[str, str]:
    """(every format (Cf) character, every `str.isspace` character) as classes for PostgreSQL's
    regular expressions: `normalize_light` drops the one and folds the other to a space. A short
    list of "usual" invisibles and PostgreSQL's `\\s` missed 139 of them there (tag characters,
    Arabic number signs, \\x85, \\x1c-\\x1f), so "p<U+E0020>rize" hid from a search for "prize"."""
    invisible = _char_class(lambda ch: unicodedata.category(ch) == "Cf", (range(0x20000), range(0xE0000, 0xE1000)))
    return invisible, _char_class(str.isspace, (range(0x3001),)) + "+"  # U+3000 is the last space


def folded(column: Any, dialect: str) -> ColumnElement[Any]:
    """`column` as `normalize_light` would fold it, in SQL for `dialect` ("sqlite" or "postgresql").
    Invisible characters go before NFKC, as `normalize_light`'s second NFKC has it: "e<ZWSP><acute>"
    is "é" there, and stayed "e<acute>" (no match for "é") when they went after it."""
    if dialect == "sqlite":
        return getattr(func, FOLD_FUNCTION)(column)
    invisible, spaces = _pg_classes()
    visible = func.regexp_replace(column, invisible, "", "g")
    nfkc = func.normalize(visible, literal_column("NFKC"))  # the form is a keyword, not a string
    lowered = func.lower(func.regexp_replace(nfkc, spaces, " ", "g"))
    return func.btrim(func.replace(func.translate(lowered, "\u03c2", "\u03c3"), "\u00df", "ss"))


def contains_folded(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """True where `column`, folded, contains `value`, folded: a plain substring test (`instr`,
    `strpos`), so `%`, `_` and `\\` in `value` are literal and its length has no limit (as a LIKE
    pattern, SQLite refused one over 50,000 bytes: "pattern too complex"). On PostgreSQL the query
    is folded by the same SQL as the column: folded in Python, "Straße" and "İstanbul" did not find
    themselves there. A `value` that folds to nothing (only spaces or invisible characters) matches
    nothing, and so does one no stored text holds, which the drivers cannot send: a NUL (it matched
    every row on SQLite, a DataError on PostgreSQL) or a lone surrogate (a UnicodeEncodeError)."""
    if "\x00" in value or has_lone_surrogate(value) or not normalize_light(value):
        return false()
    if dialect == "sqlite":
        return func.instr(folded(column, dialect), literal(normalize_light(value), String)) > 0
    return func.strpos(folded(column, dialect), folded(literal(value, String), dialect)) > 0


def register_sqlite(dbapi_conn: Any) -> None:
    """Give a sqlite3 connection the fold function (deterministic, so SQLite may cache it)."""
    dbapi_conn.create_function(FOLD_FUNCTION, 1, lambda s: None if s is None else normalize_light(str(s)),
                               deterministic=True)
