"""Estimates with intervals from audit samples: pure functions over arrays.

Why: a rate read off a handful of audits ("precision 1.000" from n = 2) says nothing without its
n and an interval. Every figure here comes back as an *estimate*: a dict with the point
`estimate`, the raw `n` it rests on (the denominator count observed), the interval `lo`/`hi` at
confidence `conf`, the `method` and, for weighted samples, the Kish effective sample size
`n_eff`.

- Uniform samples: a proportion gets the Wilson score interval (good coverage down to small n,
  never outside [0, 1]).
- Stratified samples (the QA audit drawn with a higher inclusion probability in some score
  bands): each audited case carries its inclusion probability pi; weights 1/pi give the
  Horvitz-Thompson totals and a rate is their ratio (Hajek / ratio estimator): that is the point
  estimate. Its interval (`stratified_posterior`) comes from simulating the population totals:
  per cell (stratum x the model's prediction) a Beta posterior of the share of positives and a
  Gamma posterior of the cell's size (Poisson draws), under one Jeffreys prior per group of cells
  spread over the cells by their sample size; the rate's quantiles over the draws are the
  interval. Why not the linearised variance with Wilson at the effective n (Korn & Graubard):
  a policy's misses sit in large, rarely audited benign bands, so a typical audit sees zero or
  one of them; the linearised variance is then zero or tiny and the interval covered the truth of
  spam recall in ~60% of 90% intervals (benchmarks/estimates.py). The spread prior keeps the
  "zero misses seen in 400 audits of 20,000 items" uncertainty that a uniform audit's Wilson
  interval has, without adding a prior's worth of phantom misses to every band.
- Precision, recall and F1 are all ratios of sums over audited items: precision = sum(tp) /
  sum(pred), recall = sum(tp) / sum(true), F1 = sum(2 tp) / sum(true + pred), so one ratio
  estimator serves all three.
- Prevalence (`prevalence_estimates`): the share of traffic whose human label is each policy,
  read off the QA audit alone (a random draw of the traffic; the model-ranked queue is not one):
  sum(w [label = policy]) / sum(w), the same ratio estimator with the same intervals (Wilson for
  a uniform audit, `stratified_posterior` over strata x the model's prediction for a weighted one).
- `audits_needed` says how many further audits would bring an interval to a target width.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

Estimate = dict[str, Any]


def z_value(conf: float) -> float:
    """Two-sided standard normal quantile for confidence `conf` (0.9 -> 1.645)."""
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {conf}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + conf / 2.0))


def wilson(k: float, n: float, conf: float = 0.9) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (n may be an effective, non-integer n)."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(conf)
    p = min(max(k / n, 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 (p = 1) the bound is exactly 0 (1); rounding left 1 - 1e-16, an interval beside its own estimate
    return (0.0 if p <= 0.0 else max(0.0, centre - half)), (1.0 if p >= 1.0 else min(1.0, centre + half))


def wilson_width(p: float, n: float, conf: float = 0.9) -> float:
    """Width of the Wilson interval at proportion p and sample size n."""
    lo, hi = wilson(p * n, n, conf)
    return hi - lo


def proportion(k: int, n: int, conf: float = 0.9) -> Estimate:
    """A plain rate k / n with its Wilson interval; estimate None when n is 0."""
    lo, hi = wilson(k, n, conf)
    return {"estimate": (k / n) if n else None, "k": int(k), "n": int(n), "lo": lo if n else None,
            "hi": hi if n else None, "conf": conf, "method": "wilson"}


def _binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1)))


def ratio_estimate(num: Sequence[float], den: Sequence[float], weights: Optional[Sequence[float]] = None,
                   strata: Optional[Sequence[Any]] = None, conf: float = 0.9) -> Estimate:
    """R = sum(w num) / sum(w den) over sampled units, with an interval.

    `weights` are inverse inclusion probabilities (None: a uniform sample); `strata` the stratum of
    each unit (None with weights: units of equal weight form a stratum). Unweighted binary ratios
    get the exact-count Wilson interval; otherwise the linearised variance
    Var = sum_h (1 - f_h) n_h / (n_h - 1) sum_i (e_i - mean_h e)^2, e_i = w_i (num_i - R den_i) / sum(w den),
    f_h = n_h / N_h (N_h = sum of the stratum's weights), and Wilson at n_eff = R (1 - R) / Var.
    `n` is the number of sampled units with den > 0. For the audit's precision / recall / F1 and
    accuracy, `policy_estimates` and `accuracy_estimate` replace this weighted interval with the
    `stratified_posterior` one: the linearised variance is near zero when the heavy-weight
    strata show no unit of the rare outcome, and undercovers then.
    """
    z_num, z_den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if z_num.shape != z_den.shape:
        raise ValueError("num and den must have the same length")
    n = int((z_den > 0).sum())
    uniform = weights is None
    w = np.ones_like(z_den) if uniform else np.asarray(weights, dtype=np.float64)
    if w.shape != z_den.shape or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be positive and finite, one per unit")
    total = float((w * z_den).sum())
    out: Estimate = {"estimate": None, "n": n, "lo": None, "hi": None, "conf": conf,
                     "method": "wilson" if uniform else "ratio-linearised"}
    if total <= 0:
        out["n_eff"] = 0.0
        return out
    r = float((w * z_num).sum() / total)
    out["estimate"] = r
    if uniform and _binary(z_num) and _binary(z_den):
        out["lo"], out["hi"] = wilson(float(z_num.sum()), float(z_den.sum()), conf)
        out["n_eff"] = float(z_den.sum())
        return out
    e = w * (z_num - r * z_den) / total
    groups = np.zeros(len(w), dtype=np.int64)
    if strata is not None:
        _, groups = np.unique(np.asarray(list(strata), dtype=object).astype(str), return_inverse=True)
    elif not uniform:
        _, groups = np.unique(w, return_inverse=True)
    var = 0.0
    for g in np.unique(groups):
        m = groups == g
        n_h = int(m.sum())
        f_h = 0.0 if uniform else min(1.0, n_h / float(w[m].sum()))
        if n_h > 1:
            var += (1 - f_h) * n_h / (n_h - 1) * float(((e[m] - e[m].mean()) ** 2).sum())
        else:
            var += (1 - f_h) * float((e[m] ** 2).sum())
    wd = w * z_den
    kish = float(wd.sum() ** 2 / (wd * wd).sum())
    # Korn & Graubard truncate the design effect at 1: n_eff is at most the units observed
    n_eff = min(float(z_den.sum()), r * (1 - r) / var) if var > 0 and 0 < r < 1 else kish
    out["n_eff"] = float(n_eff)
    out["lo"], out["hi"] = wilson(r * n_eff, n_eff, conf)
    return out


def _strata_keys(weights: np.ndarray, strata: Optional[Sequence[Any]]) -> np.ndarray:
    """Stratum of each unit: the given strata, else groups of equal weight (equal inclusion probability)."""
    if strata is not None:
        keys = np.asarray(list(strata), dtype=object).astype(str)
        if len(keys) != len(weights):
            raise ValueError("strata must have one entry per unit")
        return np.unique(keys, return_inverse=True)[1]
    return np.unique(weights, return_inverse=True)[1]


def stratified_posterior(positive: Sequence[bool], group: Sequence[Any], weights: Sequence[float],
                         strata: Optional[Sequence[Any]] = None, draws: int = 4000, prior: float = 0.5,
                         seed: int = 0) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """Posterior draws of the population totals of positive and negative units, per group.

    A cell is a stratum x a `group` (a label known for every unit before auditing, such as the
    model's prediction, within which the share of positives is structurally different: a recall
    miss can only be a unit the model did not flag). Per cell c with n_c audited units, k_c of them
    positive, weight sum W_c and so inclusion probability pi_c = n_c / W_c, the finite population
    is the audited units plus the ones the draw passed over:
    - how many it passed over: U_c ~ NegativeBinomial(n_c, pi_c) (each unit drawn independently
      with probability pi_c, as the hash-based audit draw does; mean W_c - n_c);
    - how many of those are positive: Binomial(U_c, theta_c), theta_c ~ Beta(k_c + a_c,
      n_c - k_c + a_c), a_c = prior n_c / n_g: one Jeffreys prior (`prior` = 1/2) per group,
      spread over the group's cells, so a group with no positive seen keeps a pooled-rate
      uncertainty instead of a point mass at zero, without a prior's worth of phantom positives
      in every heavy cell.
    A census cell (pi_c = 1) is known exactly. Returns {group: (positive totals, negative
    totals)}, each an array of `draws`. Groups are drawn in a fixed (sorted) order, not the rows'
    first-seen one: the same audit read in another row order gave another interval.
    """
    pos = np.asarray(positive, dtype=bool)
    grp = np.asarray(list(group), dtype=object)
    w = np.asarray(weights, dtype=np.float64)
    if not (len(pos) == len(grp) == len(w)):
        raise ValueError("positive, group and weights must have one entry per unit")
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be positive and finite, one per unit")
    st = _strata_keys(w, strata)
    rng = np.random.default_rng(seed)
    out: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for g in sorted(set(grp.tolist()), key=repr):
        in_g = grp == g
        n_g = int(in_g.sum())
        tot_pos, tot_neg = np.zeros(draws), np.zeros(draws)
        for h in np.unique(st[in_g]):
            m = in_g & (st == h)
            n_c, k_c = int(m.sum()), int(pos[m].sum())
            a_c = prior * n_c / n_g
            pi_c = min(1.0, n_c / float(w[m].sum()))
            unseen = rng.negative_binomial(n_c, pi_c, draws) if pi_c < 1.0 else np.zeros(draws, dtype=np.int64)
            hidden = rng.binomial(unseen, rng.beta(k_c + a_c, n_c - k_c + a_c, draws))
            tot_pos += k_c + hidden
            tot_neg += (n_c - k_c) + (unseen - hidden)
        out[g] = (tot_pos, tot_neg)
    return out


def _n_eff_for_width(r: float, width: float, conf: float) -> float:
    """The n at which a Wilson interval around r is `width` wide: the effective sample size that
    `audits_needed` projects from (a uniform audit of that size would be as precise)."""
    lo, hi = 0.5, 1e9
    if width <= 0 or wilson_width(r, hi, conf) >= width:
        return hi
    if wilson_width(r, lo, conf) <= width:
        return lo
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if wilson_width(r, mid, conf) > width:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.001:
            break
    return hi


def _posterior_interval(est: Estimate, num: np.ndarray, den: np.ndarray, conf: float) -> Estimate:
    """Fill `est` (point and n already set) with the equal-tailed interval of num / den over draws.

    The interval is widened to hold the point estimate (a Horvitz-Thompson ratio of 1.0 from an
    audit with no miss seen still gets [lo, 1.0], not an interval beside its own estimate)."""
    ok = den > 0
    if est["estimate"] is None or not ok.any():
        return est
    r = num[ok] / den[ok]
    a = (1 - conf) / 2
    lo, hi = float(np.quantile(r, a)), float(np.quantile(r, 1 - a))
    point = float(est["estimate"])
    est["lo"], est["hi"] = max(0.0, min(lo, point)), min(1.0, max(hi, point))
    # a zero-width interval (every cell a census) is exact: n_eff is the units observed, not 1e9
    est["n_eff"] = _n_eff_for_width(point, est["hi"] - est["lo"], conf) if est["hi"] > est["lo"] else float(est["n"])
    est["method"] = "stratified-posterior"
    return est


MIN_PROBABILITY = 1e-9  # an audit drawn at under one in a billion stands for more traffic than a store holds


def as_probability(v: Any) -> Optional[float]:
    """`v` as a probability in [`MIN_PROBABILITY`, 1], else None (missing, not a number, or out of
    range): a stored inclusion probability or response share is read from rows anyone with the
    database can edit, and a weight of 1e300 overflowed the posterior's draws (ValueError)."""
    try:
        p = float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None
    return p if p is not None and MIN_PROBABILITY <= p <= 1.0 else None


def inverse_probability_weights(inclusion: Sequence[Optional[float]],
                                response: Optional[Sequence[Optional[float]]] = None) -> Optional[np.ndarray]:
    """Weights 1 / (pi x r) for audited (decided) units, or None when every unit had the same
    chance (a uniform audit: plain counts are then exact).

    pi is the draw's inclusion probability; r (`response`, same order, default 1) the share of the
    unit's stratum (its pi) that is decided so far: audits still waiting in a band stand for
    traffic too, so the band's decided ones carry them (a nonresponse adjustment within strata,
    taking a band's pending audits to be like its decided ones). Without it a band whose audits
    are mostly pending is under-weighted and the estimates lean to the bands worked first. Units
    without a stored probability (cases built before it was recorded) count as drawn at the most
    common stored one, and so does a stored value that is no probability (`as_probability`: NaN,
    negative, infinite, above 1, under one in a billion: a hand-edited or corrupt row). As a
    weight it stopped the whole report (ValueError) or, above 1, weighed its audit as a fraction
    of an item. A response that is no probability counts as 1 (all decided)."""
    resp = list(response) if response is not None else [None] * len(inclusion)
    eff: list[Optional[float]] = []
    for p, r in zip(inclusion, resp):
        pi = as_probability(p)
        eff.append(pi * (as_probability(r) or 1.0) if pi else None)
    known = [e for e in eff if e]
    if not known or len(set(known)) == 1:
        return None
    values, counts = np.unique(known, return_counts=True)
    fill = float(values[counts.argmax()])
    return np.array([1.0 / e if e else 1.0 / fill for e in eff], dtype=np.float64)


def bootstrap_interval(stat: Callable[[np.ndarray], Optional[float]], n: int, conf: float = 0.9,
                       n_boot: int = 1000, seed: int = 0, strata: Optional[Sequence[Any]] = None
                       ) -> tuple[Optional[float], Optional[float]]:
    """Percentile bootstrap interval of `stat(indices)` over units resampled within strata."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [
        np.flatnonzero(np.asarray(list(strata), dtype=object).astype(str) == g)
        for g in np.unique(np.asarray(list(strata), dtype=object).astype(str))]
    vals = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups if len(g)])
        v = stat(idx)
        if v is not None and np.isfinite(v):
            vals.append(v)
    if not vals:
        return None, None
    a = (1 - conf) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _union(a: tuple[Optional[float], Optional[float]], b: tuple[Optional[float], Optional[float]]
           ) -> tuple[Optional[float], Optional[float]]:
    """The smallest interval holding both (a missing side is ignored)."""
    los = [x for x in (a[0], b[0]) if x is not None]
    his = [x for x in (a[1], b[1]) if x is not None]
    return (min(los) if los else None), (max(his) if his else None)


def _unweighted_fallback(est: Estimate, num: np.ndarray, den: np.ndarray, conf: float) -> Estimate:
    """`est` (its weighted point kept) with the Wilson interval of the unweighted counts, widened
    to hold the point, and n_eff the units observed: what a uniform audit of these units would
    say, for a measure the stratified posterior cannot simulate (a group never audited). No
    interval (not enough data) when the denominator is empty."""
    n = float(den.sum())
    if est["estimate"] is None or n <= 0:
        return est
    lo, hi = wilson(float(num.sum()), n, conf)
    point = float(est["estimate"])
    est.update(lo=min(lo, point), hi=max(hi, point), n_eff=float(est["n"]), method="wilson-unweighted")
    return est


def policy_estimates(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                     weights: Optional[Sequence[float]] = None, strata: Optional[Sequence[Any]] = None,
                     conf: float = 0.9, method: str = "wilson", n_boot: int = 1000,
                     seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """Per policy: precision, recall and F1 of `y_pred` against `y_true`, each an estimate.

    `method`: "wilson" (Wilson; with weights, the Horvitz-Thompson ratio with the
    `stratified_posterior` interval, cells = strata x whether the model predicted the policy) or
    "bootstrap" (percentile bootstrap of the same weighted ratios, within strata; it cannot see a
    miss the audit did not draw, so it is narrow when the heavy-weight bands show none, and on a
    handful of units it shrinks to a point: the interval returned is never narrower than the
    Wilson one of `ratio_estimate`, their union). Labels that neither side uses are left out.
    With weights, a measure whose group of the audit is absent (recall and F1 when no unit the
    model did not flag was audited) gets the Wilson interval of the unweighted counts
    (`_unweighted_fallback`). `seed` makes the simulated intervals reproducible.
    """
    if method not in ("wilson", "bootstrap"):
        raise ValueError(f"method must be 'wilson' or 'bootstrap', not {method!r}")
    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    # the bootstrap resamples within the design's strata: without `strata`, the units of equal
    # weight, as `ratio_estimate` and `stratified_posterior` read them (it resampled the whole
    # audit as one stratum, so a resample could lose the heavy band altogether)
    boot_strata = strata if strata is not None or w is None or len(w) != len(yt) else _strata_keys(w, None)
    out: dict[str, dict[str, Estimate]] = {}
    for li, lab in enumerate(labels):
        t, p = (yt == lab).astype(float), (yp == lab).astype(float)
        if not (t.any() or p.any()):
            continue
        tp = t * p
        parts = {"precision": (tp, p), "recall": (tp, t), "f1": (2 * tp, t + p)}
        sims: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if w is not None and method == "wilson":
            post = stratified_posterior(t > 0, (p > 0).tolist(), w, strata, seed=seed + li)
            # An absent group is unknown, not zero: with no audited unit the model left unflagged,
            # the misses (FN) were never looked for, so recall and F1 get no simulated interval.
            if True in post:
                TP, FP = post[True]
                sims["precision"] = (TP, TP + FP)
                if False in post:
                    FN = post[False][0]
                    sims.update(recall=(TP, TP + FN), f1=(2 * TP, 2 * TP + FP + FN))
        row = {}
        for name, (num, den) in parts.items():
            est = ratio_estimate(num, den, w, strata, conf)
            if name in sims:
                est = _posterior_interval(est, *np.broadcast_arrays(*sims[name]), conf)
            elif w is not None and method == "wilson":
                est = _unweighted_fallback(est, num, den, conf)
            if method == "bootstrap" and est["estimate"] is not None:
                ww = np.ones_like(num) if w is None else w

                def stat(idx: np.ndarray, num: np.ndarray = num, den: np.ndarray = den, ww: np.ndarray = ww
                         ) -> Optional[float]:
                    d = float((ww[idx] * den[idx]).sum())
                    return float((ww[idx] * num[idx]).sum() / d) if d > 0 else None

                est["lo"], est["hi"] = _union((est["lo"], est["hi"]),
                                              bootstrap_interval(stat, len(num), conf, n_boot, seed, boot_strata))
                est["method"] = "bootstrap"
            row[name] = est
        out[lab] = row
    return out


def prevalence_estimates(y_true: Sequence[str], labels: Sequence[str], y_pred: Optional[Sequence[str]] = None,
                         weights: Optional[Sequence[float]] = None, strata: Optional[Sequence[Any]] = None,
                         conf: float = 0.9, seed: int = 0) -> dict[str, Estimate]:
    """Per policy label: its prevalence, the share of the sampled traffic whose human label
    (`y_true`) it is, as an estimate; empty when nothing was audited.

    Only a random sample says this (the QA audit; the model-ranked queue over-represents what the
    model flags). Uniform: k / n with its Wilson interval. Weighted (1 / inclusion probability):
    the Horvitz-Thompson (Hajek) share with the `stratified_posterior` interval, its cells the
    strata x whether the model predicted the policy (`y_pred`; the same cells as precision and
    recall), so a policy that hides in the rarely audited benign band keeps its uncertainty.
    Every label is reported, a zero prevalence too: its upper bound is the figure that matters.
    `n` is the number of audited items."""
    yt = np.asarray(y_true, dtype=object)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(yt):
        return {}
    yp = None if y_pred is None else np.asarray(y_pred, dtype=object)
    if yp is not None and len(yp) != len(yt):
        raise ValueError("y_true and y_pred must have one entry per unit")
    out: dict[str, Estimate] = {}
    for li, lab in enumerate(labels):
        t = (yt == lab).astype(float)
        est = ratio_estimate(t, np.ones(len(t)), w, strata, conf)
        if w is not None:
            group = [0] * len(t) if yp is None else (yp == lab).tolist()
            post = stratified_posterior(t > 0, group, w, strata, seed=seed + li)
            pos = np.sum([v[0] for v in post.values()], axis=0)
            neg = np.sum([v[1] for v in post.values()], axis=0)
            est = _posterior_interval(est, pos, pos + neg, conf)
        out[lab] = est
    return out


def accuracy_estimate(y_true: Sequence[str], y_pred: Sequence[str], weights: Optional[Sequence[float]] = None,
                      strata: Optional[Sequence[Any]] = None, conf: float = 0.9, seed: int = 0) -> Estimate:
    """Share of items where the model's label is the human's, as an estimate (weighted: the
    `stratified_posterior` interval over strata)."""
    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    est = ratio_estimate((yt == yp).astype(float), np.ones(len(yt)), weights, strata, conf)
    if weights is None or not len(yt):
        return est
    correct, wrong = stratified_posterior(yt == yp, [0] * len(yt), weights, strata, seed=seed)[0]
    return _posterior_interval(est, correct, correct + wrong, conf)


def audits_needed(est: Estimate, audits: int, target_width: float) -> Optional[int]:
    """Further audits (beyond `audits` done) that would bring `est`'s interval to `target_width`.

    Assumes the estimate stays where it is and further audits inform it at the rate seen so far
    (n_eff per audit). 0 when already narrow enough; None when nothing is known yet (no audited
    unit in the denominator).
    """
    if not 0 < target_width < 1:
        raise ValueError(f"target width must be in (0, 1), got {target_width}")
    r, n_eff = est.get("estimate"), est.get("n_eff", est.get("n"))
    if r is None or not n_eff or audits <= 0:
        return None
    conf = est.get("conf", 0.9)
    if est.get("lo") is not None and est["hi"] - est["lo"] <= target_width:
        return 0
    lo, hi = float(n_eff), float(n_eff)
    while wilson_width(r, hi, conf) > target_width:
        hi *= 2
        if hi > 1e9:
            return None
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if wilson_width(r, mid, conf) > target_width:
            lo = mid
        else:
            hi = mid
    per_audit = float(n_eff) / audits
    return max(0, int(math.ceil(hi / per_audit)) - audits)


def estimates_table(per_policy: Mapping[str, Mapping[str, Estimate]], audits: int,
                    target_width: float) -> list[dict[str, Any]]:
    """Rows (policy, measure, estimate, n, lo, hi, further audits to the target width) for display."""
    rows = []
    for lab, measures in per_policy.items():
        for name, est in measures.items():
            rows.append({"policy": lab, "measure": name, "estimate": est["estimate"], "n": est["n"],
                         "n_eff": est.get("n_eff"), "lo": est["lo"], "hi": est["hi"], "method": est["method"],
                         "audits_to_target": audits_needed(est, audits, target_width)})
    return rows
