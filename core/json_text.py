"""JSON text that reads as it is wherever it is shown: one rule for every JSON a person may read
in a terminal or an editor (`workbench ... --json`, a filed escalation packet).

Standard library only: the CLI imports it at its top level, and `workbench --help` must stay fast.
"""
from __future__ import annotations

import json
import unicodedata
from typing import Any, Optional


def inert_json(data: Any, indent: Optional[int] = None) -> str:
    """`data` as JSON in which every character a terminal or an editor would obey or hide (C0 and
    C1 controls, DEL, bidi overrides and isolates, other invisible format characters such as tag
    characters, line and paragraph separators, lone surrogates) is a `\\uXXXX` escape.
    `ensure_ascii=False` escapes only C0: an item's CSI (U+009B) cleared the screen of whoever read
    the output, and an RLO (U+202E) made it read backwards. JSON readers load the same data; the
    letters of any script stay as they are."""
    text = json.dumps(data, indent=indent, default=str, ensure_ascii=False)
    if text.replace("\n", " ").isprintable():  # the common case, in C
        return text
    return "".join(ch if ch.isprintable() or ch == "\n" or unicodedata.category(ch) == "Zs" else _escape(ch)
                   for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a JSON escape beyond the BMP is a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
