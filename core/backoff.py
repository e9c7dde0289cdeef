"""How long to wait before trying again after failures in a row: one rule for every retry."""
from __future__ import annotations


def exponential_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th failure in a row: base x 2^(attempt - 1), at most
    `cap` (attempt 1 waits `base`). Used by webhook deliveries (with full jitter on top) and by
    automatic retrains that failed."""
    return min(cap, base * (2 ** max(0, min(attempt - 1, 60))))
