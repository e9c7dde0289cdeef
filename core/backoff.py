"""How long to wait before trying again after failures in a row: one rule for every retry."""
from __future__ import annotations

import math

# The longest wait ever returned: a year. A longer one is a typo in a cap that its config does not
# bound (`auto_retrain.failure_backoff_cap_seconds`), and `now + timedelta(seconds=wait)` past
# 999999999 days (or year 9999) raises OverflowError in the caller, after the failure it counts.
MAX_WAIT_SECONDS = 366 * 86400


def exponential_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th failure in a row: base x 2^(attempt - 1), at most
    `cap` (attempt 1 waits `base`) and at most `MAX_WAIT_SECONDS`. Used by webhook deliveries
    (with full jitter on top) and by automatic retrains that failed. A base or cap that is not a
    finite number above 0 is refused (ValueError): NaN would make every comparison false."""
    for name, value in (("base", base), ("cap", cap)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"back-off {name} must be a finite number of seconds above 0, got {value!r}")
    return min(cap, MAX_WAIT_SECONDS, base * (2 ** max(0, min(attempt - 1, 60))))
