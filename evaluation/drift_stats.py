"""Drift statistics: pure functions over arrays, shared by `workbench eval drift` and benchmarks/drift.py.

Each function compares a reference sample with a current one and returns plain numbers, so the
same code runs on arrays read from the store and on arrays a benchmark simulates. PSI and the
two-sample KS statistic come from `evaluation.metrics`; this module adds the Jensen-Shannon
distance on binned scores and on label shares, a domain classifier's cross-validated ROC AUC on
embeddings, and the two rate tests (override rate, new-campaign emergence).

Conventions follow Evidently where it has one: the Jensen-Shannon *distance* (the square root
of the divergence) with natural logarithms, as `scipy.spatial.distance.jensenshannon` computes
it, so Evidently's threshold of 0.1 means the same here; a domain-classifier AUC of 0.5 means the
windows cannot be told apart.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from . import metrics as em
from .metrics import finite, quantile_edges


@dataclass
class WindowData:
    """What the checks need from one window, as arrays.

    `scores` (n_scored, len(policies)) and `predicted` (n_scored,) come from the prediction of
    record; `embeddings` are the cached vectors of the window's items (None: none cached);
    `new_campaigns` counts campaigns whose earliest member falls in the window (None: the store
    has no campaigns); `decisions` / `overrides` count current human labels on the window's items
    that differ from the model label the analyst saw. `n_texts` counts distinct texts (None: not
    known, `n_items` is used): read from the store, scores, labels and embeddings are one row per
    distinct text, so a flood of copies of one text weighs as one text.
    """

    n_items: int
    scores: np.ndarray
    predicted: np.ndarray
    embeddings: Optional[np.ndarray] = None
    new_campaigns: Optional[int] = None
    decisions: int = 0
    overrides: int = 0
    n_texts: Optional[int] = None


def binned_shares(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Shares of each sample's finite values per reference-quantile bin (each sums to 1; all
    zeros for a sample without a finite value)."""
    ref, cur = finite(reference), finite(current)
    edges = quantile_edges(ref, bins)
    return (np.histogram(ref, edges)[0] / max(len(ref), 1), np.histogram(cur, edges)[0] / max(len(cur), 1))


def psi_of_shares(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """PSI of two share vectors on the same bins, shares clipped at `eps` (as `em.psi` does): the
    bins `binned_shares` made, so PSI and JS always measure one binning."""
    p, q = np.clip(np.asarray(p, dtype=np.float64), eps, None), np.clip(np.asarray(q, dtype=np.float64), eps, None)
    return float(((q - p) * np.log(q / p)).sum())


def holm_adjusted(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN, and counts in no family).

    Why: one test per policy at level alpha false-alarms about alpha x policies times a run;
    comparing Holm-adjusted p-values with alpha keeps the chance of any false alarm in the run
    at alpha (family-wise), whatever the number of policies."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log; 0 = identical, sqrt(ln 2) ~ 0.83 = disjoint) of two share vectors."""
    from scipy.spatial.distance import jensenshannon

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p, q))


def score_shift(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> dict[str, float]:
    """PSI, Jensen-Shannon distance and KS of one score column between two windows, plus the means.

    PSI and JS use the same reference-quantile bins. Under no drift both shrink like
    (bins - 1) * (1/n_ref + 1/n_cur): PSI about that much, JS divergence an eighth of it, so with
    10 bins and 1,000 items a window the JS distance stays near 0.04, well below 0.1.

    Non-finite scores are left out and counted (`nonfinite_ref`, `nonfinite_cur`); the figures
    rest on the finite ones (`n_ref`, `n_cur`), and are NaN when a window has none.
    """
    raw_ref, raw_cur = np.asarray(reference, dtype=np.float64).ravel(), np.asarray(current, dtype=np.float64).ravel()
    ref, cur = finite(raw_ref), finite(raw_cur)
    counts = {"n_ref": len(ref), "n_cur": len(cur), "nonfinite_ref": len(raw_ref) - len(ref),
              "nonfinite_cur": len(raw_cur) - len(cur)}
    if len(ref) == 0 or len(cur) == 0:
        nan = float("nan")
        return {"psi": nan, "js": nan, "ks": nan, "ks_pvalue": nan, "mean_ref": nan, "mean_cur": nan, **counts}
    p, q = binned_shares(ref, cur, bins)
    ks = em.ks_statistic(ref, cur)
    return {"psi": psi_of_shares(p, q), "js": js_distance(p, q), "ks": ks["statistic"],
            "ks_pvalue": ks["pvalue"], "mean_ref": float(ref.mean()), "mean_cur": float(cur.mean()), **counts}


def label_mix_shift(reference: Sequence[str], current: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Shares of each label in both windows, their Jensen-Shannon distance and a chi-square test.

    The chi-square p-value (scipy's test of independence on the 2 x k count table, labels absent
    from both windows dropped) says whether the change could be chance; the JS distance says how
    big it is, which is what the alarm looks at on windows of a thousand items and more.
    """
    from scipy.stats import chi2_contingency

    # Counted by their text: a label that is not a str (None, a number) was listed under its text
    # with a share of 0 while counted nowhere, so the shares of a window left it out.
    ref, cur = Counter(str(x) for x in reference), Counter(str(x) for x in current)
    labels = [str(lab) for lab in labels]
    extra = sorted((set(ref) | set(cur)) - set(labels))
    labels += extra  # a label the taxonomy no longer has still counts as a change
    rc = np.array([ref[lab] for lab in labels], dtype=np.float64)
    cc = np.array([cur[lab] for lab in labels], dtype=np.float64)
    out: dict[str, Any] = {"ref_shares": {}, "cur_shares": {}, "js": float("nan"), "chi2_pvalue": float("nan")}
    if rc.sum() == 0 or cc.sum() == 0:
        return out
    out["ref_shares"] = {lab: float(v) for lab, v in zip(labels, rc / rc.sum())}
    out["cur_shares"] = {lab: float(v) for lab, v in zip(labels, cc / cc.sum())}
    out["js"] = js_distance(rc / rc.sum(), cc / cc.sum())
    keep = (rc + cc) > 0
    if keep.sum() >= 2:
        out["chi2_pvalue"] = float(chi2_contingency(np.vstack([rc[keep], cc[keep]]))[1])
    else:
        out["chi2_pvalue"] = 1.0
    return out


def domain_classifier_auc(reference: np.ndarray, current: np.ndarray, folds: int = 5, seed: int = 0,
                          max_per_window: Optional[int] = 5000, C: float = 1.0) -> dict[str, Any]:
    """Cross-validated ROC AUC of a logistic regression telling current rows from reference rows.

    Why a classifier: a shift in a 384-dimensional embedding space has no single statistic, but if
    a linear model can tell which window a text came from better than chance (AUC 0.5), the
    content changed. Out-of-fold probabilities (stratified k-fold) keep the model from grading
    its own training rows. Windows larger than `max_per_window` are subsampled (seeded) to bound
    the cost; the AUC does not depend on the class balance. Under no drift the AUC scatters around
    0.5 with sd ~ sqrt((n_ref + n_cur) / (12 n_ref n_cur)), about 0.018 at 500 a window. Rows
    with a non-finite value are left out and counted (`nonfinite_reference`, `nonfinite_current`).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    ref, cur = _finite_rows(reference), _finite_rows(current)
    dropped = {"nonfinite_reference": len(reference) - len(ref), "nonfinite_current": len(current) - len(cur)}
    if len(ref) == 0 or len(cur) == 0:  # nothing to tell apart, whatever the other window's width
        return {"auc": float("nan"), "n_reference": len(ref), "n_current": len(cur), "folds": 0, **dropped}
    if ref.shape[1:] != cur.shape[1:]:
        raise ValueError(f"embeddings of different sizes: {ref.shape[1:]} reference, {cur.shape[1:]} current")
    if max_per_window is not None:
        if len(ref) > max_per_window:
            ref = ref[rng.choice(len(ref), max_per_window, replace=False)]
        if len(cur) > max_per_window:
            cur = cur[rng.choice(len(cur), max_per_window, replace=False)]
    k = min(folds, len(ref), len(cur))
    if k < 2:
        return {"auc": float("nan"), "n_reference": len(ref), "n_current": len(cur), "folds": k, **dropped}
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref), dtype=int), np.ones(len(cur), dtype=int)]
    clf = LogisticRegression(C=C, max_iter=1000, class_weight="balanced")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return {"auc": float(roc_auc_score(y, proba)), "n_reference": len(ref), "n_current": len(cur), "folds": k,
            **dropped}


def _finite_rows(x: Any) -> np.ndarray:
    """`x` as a 2-D float32 array without its rows holding a NaN or infinity: a vector a broken
    embedding model stored made the classifier raise, and the whole drift report with it."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.size == 0:  # an empty window ([] or shape (0,)): reshape(0, -1) raised ValueError
        return arr.reshape(0, arr.shape[1] if arr.ndim == 2 else 0)
    arr = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
    return arr[np.isfinite(arr).all(axis=1)]


def two_proportion_test(k_ref: int, n_ref: int, k_cur: int, n_cur: int,
                        alternative: str = "two-sided") -> dict[str, float]:
    """Pooled two-proportion z-test of k_cur/n_cur against k_ref/n_ref.

    `alternative`: "two-sided", or "increase" (only a rise of the current rate counts). Returns
    both rates, their difference (current - reference), z and the p-value; p is 1.0 when the
    pooled rate is 0 or 1 (no variation to test). When a cell of the 2 x 2 table expects fewer
    than 5 counts the normal approximation does not hold (0 of 3 against 3 of 3 read p 0.014),
    so the p-value is Fisher's exact test's (`exact` says which). A count below 0 or above its
    total is a ValueError in one line, not a math domain error.
    """
    from scipy.stats import fisher_exact, norm

    if alternative not in ("two-sided", "increase"):
        raise ValueError(f"alternative must be 'two-sided' or 'increase', got {alternative!r}")
    for name, k, n in (("reference", k_ref, n_ref), ("current", k_cur, n_cur)):
        if k < 0 or (n > 0 and k > n):
            raise ValueError(f"two_proportion_test: {name} count {k} is not within 0..{n}")
    nan = float("nan")
    if n_ref <= 0 or n_cur <= 0:
        return {"rate_ref": nan, "rate_cur": nan, "difference": nan, "z": nan, "pvalue": nan}
    k_ref, n_ref, k_cur, n_cur = int(k_ref), int(n_ref), int(k_cur), int(n_cur)
    p1, p2 = k_ref / n_ref, k_cur / n_cur
    pooled = (k_ref + k_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    if se == 0:
        return {"rate_ref": p1, "rate_cur": p2, "difference": p2 - p1, "z": 0.0, "pvalue": 1.0, "exact": False}
    z = (p2 - p1) / se
    if min(pooled, 1 - pooled) * min(n_ref, n_cur) < 5:  # the smallest expected cell
        table = [[k_cur, n_cur - k_cur], [k_ref, n_ref - k_ref]]
        p = float(fisher_exact(table, alternative="two-sided" if alternative == "two-sided" else "greater").pvalue)
        return {"rate_ref": p1, "rate_cur": p2, "difference": p2 - p1, "z": float(z), "pvalue": p, "exact": True}
    p = float(2 * norm.sf(abs(z))) if alternative == "two-sided" else float(norm.sf(z))
    return {"rate_ref": p1, "rate_cur": p2, "difference": p2 - p1, "z": float(z), "pvalue": p, "exact": False}


def emergence_test(new_ref: int, items_ref: int, new_cur: int, items_cur: int) -> dict[str, Any]:
    """New campaigns per 1,000 items in both windows, their ratio, and a one-sided exact test.

    Given the new campaigns of both windows together, equal rates would put each in the current
    window with probability items_cur / (items_ref + items_cur); the binomial test (scipy) asks
    whether the current window got more than that. The ratio is None when the reference saw none.
    """
    from scipy.stats import binomtest

    nan = float("nan")
    if items_ref <= 0 or items_cur <= 0:
        return {"rate_ref": nan, "rate_cur": nan, "ratio": None, "pvalue": nan}
    r1, r2 = 1000 * new_ref / items_ref, 1000 * new_cur / items_cur
    total = new_ref + new_cur
    p = 1.0 if total == 0 else float(binomtest(new_cur, total, items_cur / (items_ref + items_cur),
                                               alternative="greater").pvalue)
    return {"rate_ref": r1, "rate_cur": r2, "ratio": (r2 / r1) if r1 > 0 else None, "pvalue": p}
