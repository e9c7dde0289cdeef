"""The Review tab's queue list: which queue a client's value names, and its "N left" counts kept
in step with the status line (review.build_review_tab).

The list is a plain choice of queue names, each shown with its count ("spam (12 left)"). It
allowed a custom value, so text typed into it ("low" inside "hate-harassment (104 left)") became
the queue and `n` said "unknown queue"; no free text now, and a value a client sends anyway is
read as the queue it names (a bare name, or a label with its count) or refused in one line.

The counts of every queue come from the counts timer (`queue_status` over all live cases: too
much for every key); the status line counts the tab's own queue on every key (one index range).
That count also goes into the list whenever it differs from what the list shows
(review_guard.line_and_list), so the list never says "104 left" beside a status line that says
"102 left" (audit, issue 8). What each
page's list shows is kept on the server by Gradio session (`ListedCounts`), not in a State: a
State input would change the keys' API (every caller of /run/claim sends its inputs).
"""
from __future__ import annotations

import inspect
import re
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable, Optional

import gradio as gr


# A queue list label: the queue's name, then its counts in brackets ("spam (12 left, 1 overdue)").
_LABEL = re.compile(r"^\s*(?P<name>.+?)\s*\(\d+ left(?:, \d+ overdue)?\)\s*$")


def queue_name(value: Any, queues: Iterable[str]) -> Optional[str]:
    """The queue `value` names: a queue's name, or a list label with its counts; None for
    anything else (text typed into the list, another client's value)."""
    names = list(queues)
    text = str(value).strip() if value is not None else ""
    if text in names:
        return text
    found = _LABEL.match(text)
    return found.group("name") if found and found.group("name") in names else None


def unknown_queue(value: Any) -> str:
    """The one line for a value that names no queue."""
    return f"pick a queue from the Queue list ({str(value)[:40]!r} is not one of its queues)"


_COUNTS = re.compile(r"\((?P<waiting>\d+) left(?:, (?P<overdue>\d+) overdue)?\)\s*$")


def known_counts(choices: Optional[list[tuple[str, str]]]) -> Optional[dict[str, dict[str, int]]]:
    """The counts a list of (label, queue) choices shows (render.counts_choices); None for none."""
    if choices is None:
        return None
    out = {}
    for label, queue in choices:
        found = _COUNTS.search(str(label))
        if found:
            out[queue] = {"waiting": int(found.group("waiting")), "overdue": int(found.group("overdue") or 0)}
    return out


class ListedCounts:
    """What each page's queue list shows, by Gradio session (the latest `size` sessions): set when
    the page loads and by the counts timer, then by each key that changed a count."""

    def __init__(self, size: int = 2000) -> None:
        self._seen: "OrderedDict[Any, dict[str, dict[str, int]]]" = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    @staticmethod
    def _key(request: Any) -> Any:
        return getattr(request, "session_hash", None)

    def get(self, request: Any) -> Optional[dict[str, dict[str, int]]]:
        with self._lock:
            return self._seen.get(self._key(request))

    def put(self, request: Any, known: Optional[dict[str, dict[str, int]]]) -> None:
        if known is None:
            return
        with self._lock:
            self._seen[self._key(request)] = known
            self._seen.move_to_end(self._key(request))
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


def as_event(fn: Callable[..., Any], n_in: int, name: str) -> None:
    """Give `fn(*args)` (review's `wired`) the signature Gradio reads: `n_in` inputs, then the
    request (Gradio passes it to the parameter annotated gr.Request)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(f"in{i}", kind) for i in range(n_in)]
    params.append(inspect.Parameter("request", kind, annotation=gr.Request))
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {"request": gr.Request}
    fn.__name__ = name
