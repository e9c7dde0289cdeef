"""What keeps every key of the Review tab answering in one line (review.build_review_tab),
whatever the store or a stored row holds (audit of the Review screen).

- A store that fails (busy, gone) is a refusal the screen says in one line without its SQL
  (`told`, `review_hold.refusal`), on every key, not only on a decision: undo, skip, release,
  open, reveal and the heartbeat raised it to Gradio as a bare "Error"; and the reads that follow
  a saved decision (the "N left" line, display settings, exposure: `status_line`,
  `display_prefs`, `exposure_of`) turned a saved decision into that "Error" as if nothing was;
  the counts timer raised it on every tick (`counts_view`).
- A model's numbers as stored (`finite_numbers`): a NaN, an infinity or a text among a
  prediction's scores, or a re-review's confidence, failed the side column's bars
  (`float`, `round`) and left the case claimed and never shown, again on every `n`.
- A key sent twice with the tab's old state (`done_already`): its first press saved or escalated
  the case, so the second is no refusal ("Not saved", the decided case back on screen over the
  next one) but the same next case.
- A case number a client types (`case_number`): a whole number the store can hold.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from sqlalchemy import select

from core.hooks import PermissionDenied
from core.principals import actor_name
from core.schema import Case, Decision
from labeling.cases import queue_counts, queue_status
from labeling.wellbeing import exposure, preferences

from .render import counts_choices, esc, plain, status_html
from .review_hold import STORE_ERRORS
from .tab_access import one_line, row_id

# What a key may meet: a service's refusal (LabelingError is a ValueError) or a failing store.
FAILURES = (ValueError, PermissionDenied, *STORE_ERRORS)
AGAIN = "nothing was changed: press the key again"
C, D = Case.__table__, Decision.__table__


def told(exc: Exception, then: str = AGAIN) -> str:
    """A refusal as the screen says it: one line, a store failure without its SQL or values."""
    return plain(one_line(exc, then))


def case_number(text: Any) -> int:
    """The case id typed in "Open case #" ('#12' too), from 1 to the largest id the store holds;
    ValueError (one line) for anything else: 99999999999999999999 failed in the store's driver."""
    return row_id(str(text).strip().lstrip("#"), "case number")


def display_prefs(store: Any, settings: Any, principal: Any) -> dict[str, bool]:
    """The principal's display settings; the config's defaults for none, or while the store fails."""
    default = {"blur": settings.default_blur, "grayscale": settings.default_grayscale}
    if not principal:
        return default
    try:
        return preferences(store, principal, settings)
    except FAILURES:
        return default


def exposure_of(store: Any, settings: Any, principal: Any) -> Optional[dict[str, Any]]:
    """The principal's exposure this shift; None for none, or while the store fails."""
    try:
        return exposure(store, principal, settings) if principal else None
    except FAILURES:
        return None


def _unknown(queue: Optional[str], exc: Exception) -> str:
    return f"<div id='wb-status' class='wb-status'>{esc(told(exc, f'the count of {queue} is unknown for now'))}</div>"


def status_line(store: Any, queue: Optional[str], expo: Optional[dict[str, Any]]) -> str:
    """The "N left" line of one queue; while the store fails, a line saying the count is unknown."""
    try:
        return status_html({queue or "": queue_counts(store, queue or "")}, queue, expo)
    except STORE_ERRORS as exc:
        return _unknown(queue, exc)


def counts_view(store: Any, config: Any, queue: Optional[str],
                expo: Optional[dict[str, Any]]) -> tuple[str, Optional[list[tuple[str, str]]]]:
    """The counts timer's "N left" line and the queue list's choices with their counts; while the
    store fails, the line says so and the choices are None (the list stays as it is): the timer
    raised a bare "Error" on every tick."""
    try:
        status = queue_status(store, config)
    except STORE_ERRORS as exc:
        return _unknown(queue, exc), None
    return status_html(status, queue, expo), counts_choices(status, list(config.queues))


def _number(value: Any) -> Optional[float]:
    """`value` as a finite float, or None (a NaN, an infinity, a text, a bool, nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def finite_numbers(packet: dict[str, Any]) -> dict[str, Any]:
    """`packet` with the model's numbers the screen draws (a prediction's score, uncertainty and
    per-policy scores; a re-review's confidence and quality) finite floats or left out, and a
    prediction's flags a mapping: a stored row is read as it is, whatever wrote it."""
    pred = packet.get("prediction")
    if isinstance(pred, dict):
        scores = pred.get("scores") if isinstance(pred.get("scores"), dict) else {}
        packet["prediction"] = dict(
            pred, score=_number(pred.get("score")), uncertainty=_number(pred.get("uncertainty")),
            scores={str(k): v for k, v in ((k, _number(v)) for k, v in scores.items()) if v is not None},
            flags=pred.get("flags") if isinstance(pred.get("flags"), dict) else None)
    review = packet.get("label_review")
    if isinstance(review, dict):
        packet["label_review"] = dict(review, confidence=_number(review.get("confidence")),
                                      quality=_number(review.get("quality")))
    return packet


def done_already(store: Any, case_id: int, principal: Any) -> Optional[str]:
    """What `principal` did to `case_id` already, when a key for it is refused: 'saved' (the
    decision of record on the closed case is theirs) or 'escalated' (by them); None for anything
    else, and while the store fails. A key sent twice with the tab's old state (a retried request,
    two presses under way at once) meets its first press's work here."""
    who = actor_name(principal)
    try:
        with store.read() as conn:
            case = conn.execute(select(C.c.state, C.c.meta).where(C.c.id == case_id)).first()
            last = conn.execute(select(D.c.reviewer).where(D.c.case_id == case_id).order_by(D.c.id.desc())
                                .limit(1)).scalar()
    except STORE_ERRORS:
        return None
    if case is None or not who:
        return None
    if case.state == "decided" and last == who:
        return "saved"
    if case.state == "escalated" and (case.meta or {}).get("escalated_by") == who:
        return "escalated"
    return None
