"""Text preprocessing shared by the kinds: `social_text` (the `preprocess: social` option)."""
from __future__ import annotations

import html
import re

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")

PREPROCESSORS = ("social",)


def social_text(text: str) -> str:
    """Lower-cased text with HTML entities decoded and URLs / @mentions as placeholder tokens,
    so n-grams learn from what is said rather than from who is tagged or linked."""
    text = html.unescape(text)
    text = _URL.sub(" httpurl ", text)
    text = _MENTION.sub(" @user ", text)
    return text.lower()
