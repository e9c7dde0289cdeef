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
- `s` or `x` sent twice with the tab's old state (`repeat_note`): the second met "not claimed",
  cleared the screen and gave back the case the first press put on screen.
- The queue counts need `read` on a store with accounts (`unread`, as tab_access.check_reader),
  checked on the server each time they are shown; the page's first counts (`start_view`) were
  read unguarded, so a busy store at page load broke the page.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import gradio as gr
from sqlalchemy import func, select

from core.hooks import PermissionDenied, check_permission
from core.principals import actor_name
from core.schema import AuditEvent, Case, Decision
from labeling.cases import queue_counts, queue_status, start_queue
from labeling.wellbeing import exposure, preferences

from .render import counts_choices, esc, plain, status_html
from .review_hold import STORE_ERRORS
from .tab_access import one_line, row_id

# What a key may meet: a service's refusal (LabelingError is a ValueError) or a failing store.
FAILURES = (ValueError, PermissionDenied, *STORE_ERRORS)
AGAIN = "nothing was changed: press the key again"
C, D, A = Case.__table__, Decision.__table__, AuditEvent.__table__
# How far back in the audit log `repeat_note` looks (a range of its primary key, not a scan of it all).
RECENT_EVENTS = 50_000


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


def status_line(store: Any, queue: Optional[str], expo: Optional[dict[str, Any]], principal: Any = None,
                config: Any = None) -> str:
    """The "N left" line of one queue (as `principal` may work it: not their own escalations);
    while the store fails, a line saying the count is unknown."""
    try:
        return status_html({queue or "": queue_counts(store, queue or "", viewer=principal, config=config)}, queue, expo)
    except STORE_ERRORS as exc:
        return _unknown(queue, exc)


def line_and_list(store: Any, queue: Optional[str], expo: Optional[dict[str, Any]], listed: Any,
                  request: Any, queues: list[str], principal: Any = None, config: Any = None) -> tuple[str, Any]:
    """(the "N left" line, the queue list's update): one count query; the list re-rendered only
    when that count differs from what this page's list shows (`listed`, a review_counts.ListedCounts, then updated); while the
    store fails, a line saying the count is unknown and the list as it is."""
    try:
        counts = queue_counts(store, queue or "", viewer=principal, config=config)
    except STORE_ERRORS as exc:
        return _unknown(queue, exc), gr.update()
    line = status_html({queue or "": counts}, queue, expo)
    mine = {"waiting": int(counts.get("waiting") or 0), "overdue": int(counts.get("overdue") or 0)}
    known = listed.get(request)
    if known is None or queue not in queues or known.get(queue) == mine:
        return line, gr.update()
    known = dict(known, **{queue: mine})
    listed.put(request, known)
    return line, gr.update(choices=counts_choices(known, queues))


def counts_view(store: Any, config: Any, queue: Optional[str],
                expo: Optional[dict[str, Any]], principal: Any = None) -> tuple[str, Optional[list[tuple[str, str]]]]:
    """The counts timer's "N left" line and the queue list's choices with their counts; while the
    store fails, the line says so and the choices are None (the list stays as it is): the timer
    raised a bare "Error" on every tick."""
    try:
        status = queue_status(store, config, viewer=principal)
    except STORE_ERRORS as exc:
        return _unknown(queue, exc), None
    return status_html(status, queue, expo), counts_choices(status, list(config.queues))


def queue_choices(store: Any, config: Any, principal: Any = None) -> dict[str, Any]:
    """The queue list's choices with their counts, as a `gr.update`'s keywords; none (the list as
    it is) while the store fails: the break button's queue switch raised a bare "Error"."""
    try:
        return {"choices": counts_choices(queue_status(store, config, viewer=principal), list(config.queues))}
    except STORE_ERRORS:
        return {}


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


def repeat_note(store: Any, exc: Exception, case_id: int, principal: Any, key: str) -> Optional[str]:
    """What the screen says when `key` ('skip' or 'release') is refused for `case_id` because
    `principal`'s own last act on it was that key (a key sent twice with the tab's old state);
    None for any other refusal, a case held again by them, and while the store fails."""
    who = actor_name(principal)
    if not isinstance(exc, ValueError) or not who:
        return None
    try:
        with store.read() as conn:
            held = conn.execute(select(C.c.claimed_by).where(C.c.id == case_id)).scalar()
            top = conn.execute(select(func.max(A.c.id))).scalar() or 0  # a repeat is seconds old: the log's tail
            last = conn.execute(select(A.c.action).where(
                A.c.id > top - RECENT_EVENTS, A.c.entity_type == "case", A.c.entity_id == str(case_id),
                A.c.actor == who).order_by(A.c.id.desc()).limit(1)).scalar()
    except STORE_ERRORS:
        return None
    if held == who or last != f"case.{key}":
        return None
    done = "skipped" if key == "skip" else "released"
    return f"Case {case_id} was {done} already (a key sent twice, or another tab): nothing was {done} twice."


def unread(accounts: Any, principal: Any) -> Optional[str]:
    """The "N left" line saying why the queue counts are not shown, or None (show them): on a
    store with accounts (`accounts()`), the principal (`principal()`: raises when the session
    ended) must hold `read`, as tab_access.check_reader; they were shown to any request."""
    try:
        if accounts():
            check_permission(principal(), "read", "queue counts")
    except FAILURES as exc:
        return f"<div id='wb-status' class='wb-status'>{esc(told(exc, 'the counts are not shown'))}</div>"
    return None


def load_name(app: Any, who: str, request: Any) -> str:
    """The analyst box at page load: the signed-in user's name on a store with accounts, else
    `who` (also while the store fails: page load raised a bare "Error")."""
    try:
        return (getattr(request, "username", None) or who) if app.has_users() else who
    except FAILURES:
        return who


def start_view(store: Any, config: Any, queue: Optional[str], principal: Any, expo: Optional[dict[str, Any]],
               refused: Optional[str] = None) -> tuple[str, str, Optional[list[tuple[str, str]]]]:
    """The page's first queue (`queue`, else the most urgent this principal may work), its "N
    left" line and the queue list's choices; while the store fails, `queue` or the default, a
    line saying so, and None (the list as it is): page load raised a bare "Error". `refused`
    (`unread`'s line): no counts are read, that line is shown."""
    if refused:
        return queue or config.default_queue, refused, None
    try:
        status = queue_status(store, config, viewer=principal)
        first = queue or (start_queue(store, principal, config, status=status) if principal else None) \
            or start_queue(store, "", config, status=status) or config.default_queue
    except STORE_ERRORS as exc:
        return queue or config.default_queue, _unknown(queue or config.default_queue, exc), None
    return first, status_html(status, first, expo), counts_choices(status, list(config.queues))
