"""Override telemetry: how often analysts overrule the model, where, and whether it is changing.

Why: the override rate is the first sign that a model or its traffic moved, but a rate from a
quiet week swings by chance. Each rate here comes with its n and a Wilson interval, per model
version, per policy the model predicted and per queue, over fixed windows of decision time; a
two-proportion z-test says whether the newest window differs from the one before. The confusion
matrix (model label against the human's) and the scores of confirmed against overridden items
say what the overrides are.

Pure functions over arrays first; `override_telemetry` reads the store and applies them.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Optional, Sequence

import numpy as np

from core.schema import utcnow
from core.store import Store
from core.taxonomy import Taxonomy

from .config import EvaluationConfig
from .data import EVENT_KINDS, decision_events, first_judgements
from .estimates import proportion, wilson


def two_proportion_test(k1: int, n1: int, k2: int, n2: int, conf: float = 0.9) -> dict[str, Any]:
    """Change from rate k1/n1 (before) to k2/n2 (after): pooled two-proportion z-test and
    Newcombe's hybrid-score interval of the difference p2 - p1. None fields when a side is empty.

    The p-value is the drift check's (`drift_stats.two_proportion_test`): Fisher's exact test
    where a cell of the 2 x 2 table expects fewer than 5 counts (`exact` says so). The z-test
    alone read 0 of 3 overrides against 3 of 3 as p 0.014, a "significant" change at the
    default alpha of 0.05 from six decisions (exact p 0.1)."""
    if n1 <= 0 or n2 <= 0:
        return {"change": None, "z": None, "pvalue": None, "lo": None, "hi": None, "n_before": n1, "n_after": n2}
    from .drift_stats import two_proportion_test as tested

    p1, p2 = k1 / n1, k2 / n2
    test = tested(k1, n1, k2, n2)
    l1, u1 = wilson(k1, n1, conf)
    l2, u2 = wilson(k2, n2, conf)
    d = p2 - p1
    return {"change": d, "z": test["z"], "pvalue": test["pvalue"], "exact": test["exact"],
            "lo": d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
            "hi": d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2), "n_before": n1, "n_after": n2}


def window_days_for(span_days: float, configured: float) -> float:
    """The window length: the configured days, or shorter when the decisions span fewer than three
    such windows (a new team's first week would otherwise be one dot): 1 day, 6 h, 1 h, 15 min."""
    for days in (configured, 1.0, 0.25, 1 / 24, 1 / 96):
        if days <= configured and span_days >= 3 * days:
            return days
    return 1 / 96


def window_label(days: float) -> str:
    """'7 days', '1 day', '6 hours', '15 minutes'."""
    if days >= 1:
        return f"{days:g} day" + ("" if days == 1 else "s")
    hours = days * 24
    return f"{hours:g} hour" + ("" if hours == 1 else "s") if hours >= 1 else f"{hours * 60:g} minutes"


def window_bounds(end: dt.datetime, days: float, count: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """`count` consecutive windows of `days` days, oldest first, the last one ending at `end`."""
    step = dt.timedelta(days=days)
    return [(end - (count - i) * step, end - (count - i - 1) * step) for i in range(count)]


def rates_over_windows(times: Sequence[dt.datetime], flags: Sequence[bool],
                       bounds: Sequence[tuple[dt.datetime, dt.datetime]], conf: float = 0.9) -> list[dict[str, Any]]:
    """Per window [start, end): the rate of true flags among events in it, with n and interval."""
    base = dt.datetime(1970, 1, 1)
    t = np.array([(x - base).total_seconds() for x in times], dtype=np.float64)
    f = np.asarray(flags, dtype=bool)
    out = []
    for lo, hi in bounds:
        m = (t >= (lo - base).total_seconds()) & (t < (hi - base).total_seconds())
        est = proportion(int(f[m].sum()), int(m.sum()), conf)
        out.append({"start": lo.isoformat(timespec="seconds"), "end": hi.isoformat(timespec="seconds"), **est})
    return out


def change_between_last_windows(series: Sequence[dict[str, Any]], alpha: float, conf: float = 0.9) -> dict[str, Any]:
    """Two-proportion test between the last two windows of a `rates_over_windows` series."""
    if len(series) < 2:
        return {"change": None, "significant": False}
    a, b = series[-2], series[-1]
    test = two_proportion_test(a["k"], a["n"], b["k"], b["n"], conf)
    test["significant"] = test["pvalue"] is not None and test["pvalue"] < alpha
    return test


def confusion_matrix(model: Sequence[str], human: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Counts with rows = the model's label and columns = the human's, in `labels` order."""
    idx = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=int)
    for a, b in zip(model, human):
        if a in idx and b in idx:
            m[idx[a], idx[b]] += 1
    return m.tolist()


def score_split(scores: Sequence[Optional[float]], overridden: Sequence[bool]) -> dict[str, Any]:
    """The model's score of its own label for confirmed and for overridden decisions: n, mean,
    quartiles, and the AUC of the score at telling a confirm from an override (0.5: no signal).
    A missing or non-finite score is left out (an infinite one made the mean "inf" and a
    quartile NaN in the report)."""
    s = np.asarray([np.nan if v is None else float(v) for v in scores], dtype=np.float64)
    o = np.asarray(overridden, dtype=bool)
    ok = np.isfinite(s)
    out: dict[str, Any] = {}
    for name, m in (("confirmed", ok & ~o), ("overridden", ok & o)):
        v = s[m]
        out[name] = {"n": int(v.size), "mean": float(v.mean()) if v.size else None,
                     "q25": float(np.quantile(v, 0.25)) if v.size else None,
                     "median": float(np.median(v)) if v.size else None,
                     "q75": float(np.quantile(v, 0.75)) if v.size else None}
    a, b = s[ok & ~o], s[ok & o]
    if a.size and b.size:
        from scipy.stats import mannwhitneyu

        out["auc"] = float(mannwhitneyu(a, b).statistic / (a.size * b.size))
    else:
        out["auc"] = None
    return out


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))


def _grouped(events: list[dict[str, Any]], key: str, bounds: list[tuple[dt.datetime, dt.datetime]],
             cfg: EvaluationConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in sorted({str(e[key]) for e in events if e[key] is not None}):
        ev = [e for e in events if str(e[key]) == g]
        series = rates_over_windows([e["created_at"] for e in ev], [e["is_override"] for e in ev], bounds,
                                    cfg.confidence)
        out[g] = {"overall": proportion(sum(bool(e["is_override"]) for e in ev), len(ev), cfg.confidence),
                  "windows": series, "change": change_between_last_windows(series, cfg.change_alpha, cfg.confidence)}
    return out


def override_telemetry(store: Store, taxonomy: Taxonomy, config: EvaluationConfig,
                       now: Optional[dt.datetime] = None, model_version: Optional[str] = None) -> dict[str, Any]:
    """Override rates overall and per model version, policy and queue, per window of decision
    time (the newest window ends at `now`, default the latest decision), with change tests; the
    confusion matrix; confirmed vs overridden scores. Counts each first judgement of the model's
    suggestion (review, QA audit and re-review, escalation, bulk per distinct text); a correction
    is rework (`evaluation.analysts`), not a new judgement of the model; a decision taken back
    with undo (a slip) and the row an undo restored are no judgement at all (`taken_back`)."""
    if now is not None and now.tzinfo is not None:  # decision times are naive UTC
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    events = [e for e in first_judgements(decision_events(store, kinds=(*EVENT_KINDS, "undo")))
              if e["model_label"] and (model_version is None or e["model_version"] == model_version)]
    end = now or (max(e["created_at"] for e in events) + dt.timedelta(seconds=1) if events else utcnow())
    span = ((end - min(e["created_at"] for e in events)).total_seconds() / 86400) if events else 0.0
    days = window_days_for(span, config.override_window_days)
    bounds = window_bounds(end, days, config.override_windows)
    series = rates_over_windows([e["created_at"] for e in events], [e["is_override"] for e in events], bounds,
                                config.confidence)
    if events:  # start at the first window with a decision (keep at least two windows)
        first = min(next(i for i, w in enumerate(series) if w["n"]) if any(w["n"] for w in series) else 0,
                    len(bounds) - 2)
        bounds, series = bounds[first:], series[first:]
    for e in events:
        e["policy"] = e["model_label"]
    return {
        "window_days": days, "window": window_label(days), "as_of": end.isoformat(timespec="seconds"),
        "overall": proportion(sum(bool(e["is_override"]) for e in events), len(events), config.confidence),
        "windows": series, "change": change_between_last_windows(series, config.change_alpha, config.confidence),
        "by_model_version": _grouped(events, "model_version", bounds, config),
        "by_policy": _grouped(events, "policy", bounds, config),
        "by_queue": _grouped(events, "queue", bounds, config),
        "labels": list(taxonomy.labels),
        "confusion": confusion_matrix([e["model_label"] for e in events], [e["label"] for e in events],
                                      taxonomy.labels),
        "scores": score_split([e["model_score"] for e in events], [bool(e["is_override"]) for e in events]),
        # the values behind `scores`, for its plot (report.evaluation_summary drops them from the JSON)
        "_score_values": {"confirmed": [float(e["model_score"]) for e in events
                                        if _finite(e["model_score"]) and not e["is_override"]],
                          "overridden": [float(e["model_score"]) for e in events
                                         if _finite(e["model_score"]) and e["is_override"]]},
    }
