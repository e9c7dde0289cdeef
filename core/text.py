"""Light text normalisation and the text hash shared by ingest, the embedding cache and dedupe.

`normalize_light` only folds what never changes meaning (Unicode form, case, spacing), so two
copies of one message in a scam wave hash alike while different messages do not. Template-level
normalisation for campaigns (digits, URLs, phone numbers as tokens) lives in `clustering`. The
length rule for a reason a person writes (`MAX_REASON_CHARS`) lives here too, one rule for every
service and the API.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\udc80-\udcff]")


def normalize_light(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def text_hash(text: str) -> str:
    """Hex SHA-1 of the lightly normalised text (40 chars): the key of the embedding cache."""
    return hashlib.sha1(normalize_light(text).encode("utf-8", "surrogatepass")).hexdigest()


def has_undecodable_bytes(text: str) -> bool:
    """True when `text` was decoded with `surrogateescape` and held bytes that are not UTF-8."""
    return bool(_SURROGATE.search(text))


# A rationale or reason a person writes (a decision, a correction, a forced promotion) is kept in
# the decision rows and the audit log for good: long enough for a careful note, never a dump.
MAX_REASON_CHARS = 5000


def reason_length_error(text: str | None, what: str, limit: int = MAX_REASON_CHARS) -> str | None:
    """The one-line refusal when `text` is over `limit` characters (None when it is within): the
    services raise it as their own error, so every free-text reason follows the same rule."""
    if text is not None and len(text) > limit:
        return f"{what} has at most {limit:,} characters, this one has {len(text):,}"
    return None
