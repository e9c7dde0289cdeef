"""The shared datasets' Hub copies shaped as their files (`core.sources` reads them, `core.ingest`
ingests them): one column map reads both, so a user with the network gets the same items.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator


def hub_as_local(name: str, rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The Hub copy's rows shaped as the shared file's, so one column map reads both and the same
    dataset gives the same ids, texts and labels either way: the Hub's `sms` keeps each line's
    newline (its loader splits lines without stripping), its labels are ClassLabel (number, name)
    pairs, and its Davidson copy has no index column (the file's 0-based `""`) and spells the vote
    columns `*_count`."""
    for rowno, (lineno, rec) in enumerate(rows, 1):
        if "__error__" in rec:
            yield lineno, rec
            continue
        if name == "sms_spam":
            text = rec.get("sms")
            if isinstance(text, str):
                text = text.removesuffix("\n").removesuffix("\r")
            label = rec.get("label")
            out = {"Label": label[1] if isinstance(label, tuple) else label, "SMS": text}
        else:
            label = rec.get("class")
            out = {"": str(rowno - 1), "tweet": rec.get("tweet"),
                   "class": str(label[0]) if isinstance(label, tuple) else label, "count": rec.get("count")}
            for col in ("hate_speech", "offensive_language", "neither"):
                out[col] = rec.get(f"{col}_count")
        yield lineno, out
