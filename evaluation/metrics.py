"""Pure functions over arrays for model-vs-human and drift figures (cleanlab style).

Classification figures (precision/recall/F1, confusion, ECE) come from `models.metrics`, so the
registry, the benchmarks and these reports agree; this module adds what only human decisions
and time windows give: override rates, inter-analyst agreement and distribution drift.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def override_rate(model_labels: Sequence[str], human_labels: Sequence[str]) -> Optional[float]:
    """Share of decisions whose human label differs from the model's label; None when empty."""
    m, h = np.asarray(model_labels, dtype=object), np.asarray(human_labels, dtype=object)
    return float((m != h).mean()) if len(m) else None


def override_rates_by(groups: Sequence[Any], model_labels: Sequence[str],
                      human_labels: Sequence[str]) -> dict[Any, dict[str, Any]]:
    """Per group (e.g. model label, or day): {'n', 'overrides', 'rate'} in first-seen order."""
    out: dict[Any, dict[str, Any]] = {}
    for g, m, h in zip(groups, model_labels, human_labels):
        row = out.setdefault(g, {"n": 0, "overrides": 0})
        row["n"] += 1
        row["overrides"] += int(m != h)
    for row in out.values():
        row["rate"] = row["overrides"] / row["n"]
    return out


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> Optional[float]:
    """Cohen's kappa of two raters over the same items; None when empty, 1.0 when both are constant and agree."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if len(a) == 0:
        return None
    cats = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    po = float((a == b).mean())
    pe = sum(float((a == c).mean()) * float((b == c).mean()) for c in cats)
    return 1.0 if pe >= 1.0 else (po - pe) / (1.0 - pe)


def fleiss_kappa(counts: np.ndarray) -> Optional[float]:
    """Fleiss' kappa from an (items, categories) matrix of rating counts (equal raters per item);
    None when it is undefined: every rating one and the same category makes chance agreement 1
    and kappa 0/0 (it read as a perfect 1.0 in the report's agreement table, though raters who
    all say "benign" to benign items show no skill; statsmodels gives NaN there)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        return None
    n = counts.sum(axis=1)
    if not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    r = n[0]
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = ((counts * counts).sum(axis=1) - r) / (r * (r - 1))
    pe = float((p_j * p_j).sum())
    return None if pe >= 1.0 else float((p_i.mean() - pe) / (1.0 - pe))


def finite(values: Any) -> np.ndarray:
    """`values` as a flat float array without its NaN and infinite entries (a score the model
    could not give is no score, and no quantile survives one)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


PROBABILITY_SLACK = 1e-6  # stored scores are rounded to 6 places: `core.predictions`' own slack


def finite_row(values: Any) -> bool:
    """True when `values` is a score vector of probabilities: finite numbers in [0, 1] (give or
    take `PROBABILITY_SLACK`), the rule `core.predictions.prediction_problem` puts on a stored
    prediction. A stored score that is NaN or infinite (a broken model's row, a hand edit) is no
    score, and one such row made the calibration error and the slices' AUCs read "nan" in the
    report; one of 1000 or -999 (a row stored before that rule) is no probability either: it
    stayed in and made the calibration error over 100, a figure that lives in [0, 1]."""
    if values is None:
        return False
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(v).all() and (v >= -PROBABILITY_SLACK).all() and (v <= 1.0 + PROBABILITY_SLACK).all())


def quantile_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Bin edges at the reference sample's quantiles, open at both ends (the bins `psi` and the drift checks use).

    Why reference quantiles: every bin holds about the same share of the reference, so a shift
    anywhere in the range moves mass between well-populated bins; ties (many scores of exactly
    0) collapse duplicate edges into fewer bins instead of empty ones. Non-finite values are
    left out (one NaN made every quantile NaN, one bin, PSI 0); with no finite value the single
    bin (-inf, inf) comes back, which measures nothing: `score_shift` reports NaN then.
    """
    ref = finite(reference)
    if len(ref) == 0:
        return np.array([-np.inf, np.inf])
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) <= 2:
        # A reference of one or two values (a policy the model never scores above 0, a model that
        # outputs 0 or 1): opening both ends left one bin, so PSI and JS read 0 against any
        # current window. The top value gets a bin of its own, with one below and one above it.
        top = edges[-1]
        return np.array([-np.inf, top, np.nextafter(top, np.inf), np.inf])
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of `current` against `reference`, on reference-quantile bins.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift. Non-finite
    values are left out (one NaN made every quantile NaN and the PSI 0); NaN when either sample
    has no finite value left: not measured, never "stable".
    """
    ref, cur = finite(reference), finite(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = quantile_edges(ref, bins)
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.clip(r, eps, None), np.clip(c, eps, None)
    return float(((c - r) * np.log(c / r)).sum())


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov: {'statistic', 'pvalue'} (scipy) over the finite values; NaN
    for both when either sample has none."""
    from scipy.stats import ks_2samp

    ref, cur = finite(reference), finite(current)
    if len(ref) == 0 or len(cur) == 0:
        return {"statistic": float("nan"), "pvalue": float("nan")}
    res = ks_2samp(ref, cur)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
