"""Champion against challenger on the same items: paired bootstrap intervals and McNemar's test.

Pure functions over arrays (no store, no models), so the promotion gate, the benchmarks and the
tests share one implementation.

- `paired_bootstrap` resamples the evaluation items (or whole groups, e.g. campaigns, when
  `groups` is given: near-copies of one campaign are not independent evidence) and recomputes
  both models' metrics on every resample, so the interval of the *difference* accounts for the
  models being scored on the same items. Resamples are weight vectors, so every metric is a
  weighted count and B resamples cost a few matrix products.
- Metrics: macro F1 over the labels that occur in `y` (a fixed set, so a resample that misses a
  rare label scores it 0 rather than changing the average), and per-policy one-vs-rest ROC AUC
  from the probabilities (Mann-Whitney, ties counted half).
- The multi-class Brier score (squared distance of the probabilities from the one-hot label, a
  proper score): its `delta` is the champion's score minus the challenger's, so that, as for the
  other metrics, a positive delta means the challenger is better. It credits a challenger that is
  surer where it is right even when no arg-max label changes.
- `mcnemar` tests whether the two models' error rates differ, from the items exactly one of
  them gets right: the exact two-sided binomial test (valid for small counts) and its mid-p
  version (each tail counts the observed split at half its probability), which holds the nominal
  level more closely where the exact test is conservative on a handful of disagreements
  (Fagerland, Lydersen & Laake, 2013, BMC Med. Res. Methodol. 13:91).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def resample_weights(n: int, n_boot: int, seed: int, groups: Optional[Sequence[Any]] = None) -> np.ndarray:
    """(n_boot, n) multiplicities of the items in each bootstrap resample; with `groups`, whole
    groups are drawn with replacement (a cluster bootstrap) and each item counts its group's draws."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float) if n else np.zeros((n_boot, 0))
    _, inv = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    g = int(inv.max()) + 1 if n else 0
    draws = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float) if g else np.zeros((n_boot, 0))
    return draws[:, inv]


def weighted_macro_f1(y: np.ndarray, pred: np.ndarray, classes: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro F1 over `classes` for each row of item weights `w` (B, n) -> (B,)."""
    y, pred = np.asarray(y), np.asarray(pred)
    Y = (y[:, None] == classes[None, :]).astype(float)       # (n, k)
    P = (pred[:, None] == classes[None, :]).astype(float)
    tp = w @ (Y * P)
    support = w @ Y
    predicted = w @ P
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)
    return f1.mean(axis=1)


def weighted_auc(positive: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for the boolean `positive` under each row of weights `w` (B, n) -> (B,);
    NaN where a resample has no positive or no negative weight."""
    positive = np.asarray(positive, dtype=bool)
    uniq, rank = np.unique(np.asarray(score, dtype=float), return_inverse=True)
    import scipy.sparse as sp

    onehot = sp.csr_matrix((np.ones(len(rank)), (rank, np.arange(len(rank)))), shape=(len(uniq), len(rank)))
    neg_by_rank = np.asarray((onehot @ (w * ~positive).T).T)   # (B, m) negative weight at each score value
    below = np.cumsum(neg_by_rank, axis=1) - neg_by_rank       # negative weight strictly below
    wins = below[:, rank] + 0.5 * neg_by_rank[:, rank]          # (B, n): per item, as if positive
    pos_w = w * positive
    num = (pos_w * wins).sum(axis=1)
    n_pos, n_neg = pos_w.sum(axis=1), (w * ~positive).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), num / (n_pos * n_neg), np.nan)


def _interval(delta: np.ndarray, point: float, confidence: float) -> dict[str, Any]:
    d = delta[np.isfinite(delta)]
    if len(d) == 0 or not np.isfinite(point):
        return {"delta": None, "lower": None, "upper": None, "p_not_better": None}
    a = (1 - confidence) / 2
    return {"delta": round(float(point), 6), "lower": round(float(np.quantile(d, a)), 6),
            "upper": round(float(np.quantile(d, 1 - a)), 6),
            "p_not_better": round(float((d <= 0).mean()), 6)}


MCNEMAR_TESTS = ("exact", "mid_p")


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool],
            groups: Optional[Sequence[Any]] = None) -> dict[str, Any]:
    """McNemar's test on paired correctness: b = only A right, c = only B right. Returns the item
    counts, the counts the test uses (`favour_champion`, `favour_challenger`, in `units`),
    `p_value` (exact two-sided binomial p of those under equal error rates) and `mid_p` (each tail
    counts the observed split at half its probability; both 1.0 when they never disagree).

    With `groups` (campaign or exact-text groups of the items), the test counts groups: a group
    favours the model right alone on more of its items (a sign test over groups, McNemar's test
    itself when every group is one item). Copies of one campaign share their errors, so counted
    as items they looked like independent evidence: an equal challenger on 10 groups of 4
    copies passed a 0.05 gate about twice as often as it should."""
    from scipy.stats import binom, binomtest

    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b_).sum()), int((~a & b_).sum())
    units, fav_a, fav_b = "items", only_a, only_b
    if groups is not None and len(set(groups)) < len(a):
        _, g = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        net = np.bincount(g, weights=(~a & b_).astype(float)) - np.bincount(g, weights=(a & ~b_).astype(float))
        units, fav_a, fav_b = "groups", int((net < 0).sum()), int((net > 0).sum())
    n = fav_a + fav_b
    p = 1.0 if n == 0 else float(binomtest(fav_b, n, 0.5).pvalue)
    k = min(fav_a, fav_b)
    mid = 1.0 if n == 0 else min(1.0, float(2 * (binom.cdf(k, n, 0.5) - 0.5 * binom.pmf(k, n, 0.5))))
    return {"only_champion_right": only_a, "only_challenger_right": only_b, "disagreements": only_a + only_b,
            "units": units, "favour_champion": fav_a, "favour_challenger": fav_b,
            "p_value": round(p, 6), "mid_p": round(mid, 6)}


def _check_test(test: str) -> str:
    if test not in MCNEMAR_TESTS:
        raise ValueError(f"mcnemar_test: {test!r} is not one of {', '.join(MCNEMAR_TESTS)}")
    return test


def mcnemar_p(result: dict[str, Any], test: str) -> float:
    """The p of an `mcnemar` result that `test` (exact or mid_p) names."""
    return result["mid_p" if _check_test(test) == "mid_p" else "p_value"]


def paired_bootstrap(y: Sequence[int], proba_a: np.ndarray, proba_b: np.ndarray, pred_a: Sequence[int],
                     pred_b: Sequence[int], labels: Sequence[str], *, groups: Optional[Sequence[Any]] = None,
                     n_boot: int = 1000, seed: int = 13, confidence: float = 0.95,
                     policies: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Champion A against challenger B on the same items: each model's macro F1, per-policy AUC
    and Brier score, and the bootstrap interval of how much better B is for each (`delta`,
    `lower`, `upper`, and `p_not_better`, the share of resamples where B is not better): B - A,
    and for the Brier score, where lower is better, A - B.

    `y`, `pred_a`, `pred_b` are label indices into `labels`; `proba_*` are (n, len(labels)).
    `policies`: the labels to compute AUC for (default: every label present with both classes).
    """
    y = np.asarray(y, dtype=int)
    labels = list(labels)
    n = len(y)
    pa, pb = np.asarray(proba_a, dtype=float), np.asarray(proba_b, dtype=float)
    if pa.shape != (n, len(labels)) or pb.shape != (n, len(labels)):
        raise ValueError(f"probabilities must be ({n}, {len(labels)}), got {pa.shape} and {pb.shape}")
    out: dict[str, Any] = {"n": n, "groups": len(set(groups)) if groups is not None else n,
                           "classes": int(len(np.unique(y))), "confidence": confidence, "bootstrap": n_boot}
    if n == 0:
        out.update(macro_f1={"champion": None, "challenger": None, **_interval(np.array([]), np.nan, confidence)},
                   auc={})
        return out
    W = resample_weights(n, n_boot, seed, groups)
    ones = np.ones((1, n))
    classes = np.unique(y)
    fa, fb = weighted_macro_f1(y, pred_a, classes, W), weighted_macro_f1(y, pred_b, classes, W)
    pt_a, pt_b = float(weighted_macro_f1(y, pred_a, classes, ones)[0]), float(weighted_macro_f1(y, pred_b, classes, ones)[0])
    out["macro_f1"] = {"champion": round(pt_a, 6), "challenger": round(pt_b, 6),
                       **_interval(fb - fa, pt_b - pt_a, confidence)}
    auc: dict[str, Any] = {}
    for j, lab in enumerate(labels):
        if policies is not None and lab not in policies:
            continue
        pos = y == j
        if pos.all() or not pos.any():
            continue
        aa, ab = weighted_auc(pos, pa[:, j], W), weighted_auc(pos, pb[:, j], W)
        p_a, p_b = float(weighted_auc(pos, pa[:, j], ones)[0]), float(weighted_auc(pos, pb[:, j], ones)[0])
        auc[lab] = {"champion": round(p_a, 6), "challenger": round(p_b, 6), "positives": int(pos.sum()),
                    **_interval(ab - aa, p_b - p_a, confidence)}
    out["auc"] = auc
    onehot = np.eye(len(labels))[y]
    ba, bb = ((pa - onehot) ** 2).sum(axis=1), ((pb - onehot) ** 2).sum(axis=1)   # per item
    total = W.sum(axis=1)
    out["brier"] = {"champion": round(float(ba.mean()), 6), "challenger": round(float(bb.mean()), 6),
                    **_interval((W @ (ba - bb)) / total, float((ba - bb).mean()), confidence)}
    if auc:
        keys = list(auc)
        mean_a = np.nanmean(np.stack([weighted_auc(y == labels.index(k), pa[:, labels.index(k)], W) for k in keys]), axis=0)
        mean_b = np.nanmean(np.stack([weighted_auc(y == labels.index(k), pb[:, labels.index(k)], W) for k in keys]), axis=0)
        pm_a = float(np.mean([auc[k]["champion"] for k in keys]))
        pm_b = float(np.mean([auc[k]["challenger"] for k in keys]))
        out["auc_mean"] = {"champion": round(pm_a, 6), "challenger": round(pm_b, 6),
                           **_interval(mean_b - mean_a, pm_b - pm_a, confidence)}
    out["mcnemar"] = mcnemar(np.asarray(pred_a) == y, np.asarray(pred_b) == y, groups)
    return out


def metric_interval(comparison: dict[str, Any], metric: str) -> Optional[dict[str, Any]]:
    """The interval entry of `metric` (macro_f1, brier, auc_mean, auc:<policy>) in a `paired_bootstrap`
    result, or None when it could not be computed (no positives, empty set)."""
    if metric.startswith("auc:"):
        entry = (comparison.get("auc") or {}).get(metric[4:])
    else:
        entry = comparison.get(metric)
    if not entry or entry.get("lower") is None:
        return None
    return entry


def _favour(m: dict[str, Any]) -> tuple[int, int]:
    """(favouring the champion, the challenger) as McNemar's test counted them (groups or items)."""
    return m.get("favour_champion", m["only_champion_right"]), m.get("favour_challenger", m["only_challenger_right"])


PREDICTION_METRICS = ("macro_f1",)  # metrics of the arg-max labels, where McNemar's test applies


def gate(comparisons: dict[str, dict[str, Any]], metric: str, min_lower_bound: float,
         min_items: int, mcnemar_alpha: Optional[float] = None, mcnemar_test: str = "exact") -> dict[str, Any]:
    """The promotion verdict over evaluation sets (name -> `paired_bootstrap` result): every set
    with at least `min_items` items, counted by group (copies of a campaign are one unit: a
    bootstrap over a handful of groups under-covers), must have the lower bound of `metric`'s
    B - A interval above `min_lower_bound` and, with `mcnemar_alpha` and a metric of the arg-max
    labels (macro F1), McNemar's p (`mcnemar_test`: exact or mid_p) below it with B right on more of the
    disagreements (a percentile interval of a handful of discordant items can clear zero on luck
    alone; the test cannot). An AUC metric ranks the probabilities of every item, not the
    arg-max: McNemar's test of the
    labels asks another question (a first model of a new policy can rank its items far better
    than chance while calling a few old items by the new label), so its interval alone gates, as
    the Brier score's does (a proper score of the probabilities, not of the arg-max). Smaller
    sets are reported, not counted, and so is a set whose labels are all one class (`classes`
    under 2: a challenger calling everything that class scores a perfect macro F1 and Brier score
    there, whatever it does elsewhere); no qualifying set means no promotion (no evidence). Returns
    {passed, reason, metric, min_lower_bound, mcnemar_alpha, mcnemar_test, sets: {name: {gating,
    passed, n, lower, delta, upper, mcnemar_p}}}."""
    sets: dict[str, Any] = {}
    reasons = []
    _check_test(mcnemar_test)
    uses_mcnemar = mcnemar_alpha is not None and metric in PREDICTION_METRICS
    for name, comp in comparisons.items():
        entry = metric_interval(comp, metric)
        units = comp.get("groups", comp.get("n", 0))  # independent units: a bootstrap over a few groups under-covers
        one_class = comp.get("classes", 2) < 2   # nothing to tell apart: "always that class" scores best
        gating = units >= min_items and entry is not None and not one_class
        ok_interval = bool(gating and entry["lower"] > min_lower_bound)
        m = (comp.get("mcnemar") or {}) if uses_mcnemar else {}
        p = mcnemar_p(m, mcnemar_test) if m else None
        ok_mcnemar = not uses_mcnemar or bool(m and p < mcnemar_alpha and _favour(m)[1] > _favour(m)[0])
        ok = ok_interval and ok_mcnemar
        sets[name] = {"gating": gating, "passed": ok if gating else None, "n": comp.get("n", 0),
                      "lower": entry["lower"] if entry else None, "delta": entry["delta"] if entry else None,
                      "upper": entry.get("upper") if entry else None, "mcnemar_p": p}
        why = None
        if entry is not None:  # the figures; a one-class set shows them beside "reported only"
            why = (f"{metric} delta {entry['delta']:+.4f}, lower bound {entry['lower']:+.4f} "
                   f"{'>' if entry['lower'] > min_lower_bound else '<='} {min_lower_bound:+.4f}")
            if mcnemar_alpha is not None and m:
                verdict = ("passes" if ok_mcnemar else f"fails: not < {mcnemar_alpha}" if p >= mcnemar_alpha
                           else "fails: in the champion's favour")
                fav_a, fav_b = _favour(m)
                why += (f"; McNemar {'mid-p' if mcnemar_test == 'mid_p' else 'p'} {p:.4g} (challenger right alone "
                        f"on {m['only_challenger_right']}, champion on {m['only_champion_right']}"
                        + (f"; by group {fav_b} to {fav_a}" if m.get("units") == "groups" else "") + f") {verdict}")
        if not gating:
            reasons.append(f"{name}: {comp.get('n', 0)} items"
                           + (f" in {units} groups" if units != comp.get("n", 0) else "")
                           + ("" if entry else f", no {metric}")
                           + (", all of one class" if one_class and comp.get("n") else "")
                           + f" (under {min_items}, one class or not computable: reported only)"
                           + (f": {why}" if one_class and why else ""))
            continue
        reasons.append(f"{name}: {why}")
    gating = [s for s in sets.values() if s["gating"]]
    passed = bool(gating) and all(s["passed"] for s in gating)
    if not gating:
        reasons.append("no evaluation set large enough and of two classes or more: not promoted")
    return {"passed": passed, "metric": metric, "min_lower_bound": min_lower_bound, "mcnemar_alpha": mcnemar_alpha,
            "mcnemar_test": mcnemar_test,
            "sets": sets, "reason": "; ".join(reasons)}
