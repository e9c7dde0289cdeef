"""How text is masked: one rule, one place, applied server-side before any text is shown.

Offensive text is masked (not just blurred in the browser) until the analyst reveals it, and a
reveal is an audited action (`packets.reveal_text`), as T&S wellness practice asks.
"""
from __future__ import annotations

import re
from typing import Optional

from .review_config import ReviewSettings

_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def mask_text(text: str) -> str:
    """Keep the shape (first letter, length, punctuation, numbers, links) and hide the words."""
    return _WORD.sub(lambda m: m.group(0)[0] + "•" * (len(m.group(0)) - 1), text)


def should_mask(settings: ReviewSettings, scores: Optional[dict[str, float]], policy_label: Optional[str]) -> bool:
    """Mask when a sensitive policy is likely, is the source's label, or nothing is known yet."""
    if policy_label in settings.mask_policies:
        return True
    if not scores:
        return True
    return any(float(scores.get(p, 0.0)) >= settings.mask_min_score for p in settings.mask_policies)


def shown_text(settings: ReviewSettings, text: str, scores: Optional[dict[str, float]],
               *labels: Optional[str]) -> str:
    """`text` as it may leave the server unrevealed: masked when `should_mask` says so for its
    scores or for any of `labels` (its source's policy label, a human decision's label)."""
    sensitive = should_mask(settings, scores, None) or any(lab in settings.mask_policies for lab in labels if lab)
    return mask_text(text) if sensitive else text
