"""Drawing figures: the Agg backend and one process-wide lock.

matplotlib is not thread-safe: its text and mathtext parsers hold shared state, so two figures
drawn at once in one process (two retrains' comparison reports, a report beside a UI chart in
`workbench serve`) fail with a `ParseException` or draw into each other. Every function that
draws is `serialised`, and gets pyplot from `pyplot()`, imported lazily (`workbench --help`
never loads matplotlib).

Every name that comes from data or a config (a policy, queue, tier, analyst, model version,
campaign entity, slice) goes through `label_text` before it becomes plot text.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_LOCK = threading.RLock()


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (files and bytes, never a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def serialised(fn: F) -> F:
    """`fn` runs under the process-wide plotting lock; re-entrant, so a drawing function may call another."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def label_text(v: Any) -> str:
    """`v` as plot text drawn as written: matplotlib reads `$...$` as mathtext, so a policy, queue,
    analyst or model version named with dollar signs drew as a formula, or (`$\\foo{$`) failed the
    whole figure with a ValueError. The one rule for every name that becomes plot text."""
    return str(v).replace("$", r"\$")
