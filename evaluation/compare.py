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

import warnings
from typing import Any, Iterator, Optional, Sequence

import numpy as np


_CELLS = 2_000_000   # resample x item weights held at once (16 MB of float64); see `_weight_chunks`
MIN_UNITS = 2        # a bootstrap over one group (or item) has no spread: its interval is the point itself
PROBA_TOL = 1e-4     # float32 models' rows may sum to 1 + a few ulps


def group_index(groups: Sequence[Any], n: int) -> tuple[np.ndarray, int]:
    """(each item's group number, number of groups), groups told apart by their text everywhere
    (the bootstrap, McNemar's test and the count the gate reads agree: None and "None" were one
    group to the first two and two to the third)."""
    if len(groups) != n:
        raise ValueError(f"groups: {len(groups)} given for {n} items")
    if not n:
        return np.zeros(0, dtype=int), 0
    _, inv = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    inv = inv.reshape(-1)
    return inv, int(inv.max()) + 1


def _draw_chunks(g: int, n_boot: int, seed: int, row_cells: int, cells: Optional[int] = None) -> Iterator[np.ndarray]:
    """The bootstrap's draws of `g` groups (or items), (rows, g), a few resamples at a time: about
    `cells` (default `_CELLS`) values of `row_cells` per row at once, the same draws in the same
    order whatever the chunk (10^6 items x 1000 resamples held at once were 8 GB per matrix)."""
    rng = np.random.default_rng(seed)
    step = max(1, (cells or _CELLS) // max(row_cells, g, 1))
    for start in range(0, n_boot, step):
        c = min(step, n_boot - start)
        yield rng.multinomial(g, np.full(g, 1.0 / g), size=c).astype(float) if g else np.zeros((c, 0))


def _weight_chunks(n: int, n_boot: int, seed: int, groups: Optional[Sequence[Any]] = None,
                   cells: Optional[int] = None) -> Iterator[np.ndarray]:
    """`resample_weights`' rows a few at a time (`_draw_chunks`)."""
    inv, g = (None, n) if groups is None else group_index(groups, n)
    for draws in _draw_chunks(g, n_boot, seed, n, cells):
        yield draws if inv is None else draws[:, inv]


def resample_weights(n: int, n_boot: int, seed: int, groups: Optional[Sequence[Any]] = None) -> np.ndarray:
    """(n_boot, n) multiplicities of the items in each bootstrap resample; with `groups`, whole
    groups are drawn with replacement (a cluster bootstrap) and each item counts its group's draws."""
    chunks = list(_weight_chunks(n, n_boot, seed, groups))
    return np.vstack(chunks) if chunks else np.zeros((0, n))


def _f1_from(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro F1 per row from weighted counts (rows, classes); a class never seen nor predicted scores 0."""
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)
    return f1.mean(axis=1)


def _onehots(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Y = (np.asarray(y)[:, None] == classes[None, :]).astype(float)       # (n, k)
    P = (np.asarray(pred)[:, None] == classes[None, :]).astype(float)
    return Y * P, Y, P


def weighted_macro_f1(y: np.ndarray, pred: np.ndarray, classes: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro F1 over `classes` for each row of item weights `w` (B, n) -> (B,)."""
    YP, Y, P = _onehots(y, pred, classes)
    return _f1_from(w @ YP, w @ Y, w @ P)


class _Ranked:
    """One score column sorted once, for its weighted AUC under any rows of weights (Mann-Whitney,
    ties counted half): per positive, the cumulated weight of the negatives below it and tied
    with it. The rows weigh the items, or with `inv` their groups (the bootstrap's draws).
    Integer weights keep every sum exact, so the figures are those of a per-resample sort,
    without its sort or its (resamples, items) temporaries."""

    def __init__(self, positive: np.ndarray, score: np.ndarray, inv: Optional[np.ndarray] = None):
        score, positive = np.asarray(score, dtype=float), np.asarray(positive, dtype=bool)
        neg = np.flatnonzero(~positive)
        neg = neg[np.argsort(score[neg], kind="stable")]
        pos = np.flatnonzero(positive)
        pos = pos[np.argsort(score[pos], kind="stable")]   # both sides in score order: gathers read memory in order
        self.lo = np.searchsorted(score[neg], score[pos], side="left")    # negatives strictly below
        self.hi = np.searchsorted(score[neg], score[pos], side="right")   # ... and those tied with it
        # The weights are read by group (`inv`: each item's column of the draws), not item by item.
        self.neg, self.pos = (neg, pos) if inv is None else (inv[neg], inv[pos])

    def auc(self, w: np.ndarray) -> np.ndarray:
        cum = np.zeros((w.shape[0], len(self.neg) + 1))
        np.cumsum(w[:, self.neg], axis=1, out=cum[:, 1:])
        wp = w[:, self.pos]
        num = (wp * (cum[:, self.lo] + cum[:, self.hi])).sum(axis=1) * 0.5   # below + half the ties
        n_pos, n_neg = wp.sum(axis=1), cum[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((n_pos > 0) & (n_neg > 0), num / (n_pos * n_neg), np.nan)


def weighted_auc(positive: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for the boolean `positive` under each row of weights `w` (B, n) -> (B,);
    NaN where a resample has no positive or no negative weight."""
    return _Ranked(positive, score).auc(np.atleast_2d(np.asarray(w, dtype=float)))


def proba_problem(proba: np.ndarray, who: str) -> Optional[str]:
    """Why `who`'s probabilities cannot be compared, or None: a finite value outside [0, 1] (no
    model's scores: `PolicyClassifier._checked_proba` clips them). NaN and infinite rows are a
    model's "could not score this item" (`unscored`), not a reason to refuse the whole set."""
    p = np.asarray(proba, dtype=float)
    with np.errstate(invalid="ignore"):
        bad = (np.isfinite(p) & ((p < -PROBA_TOL) | (p > 1 + PROBA_TOL))).any(axis=1)
    if bad.any():
        return f"{who} probabilities outside [0, 1] on {int(bad.sum())} item(s), the first at row {int(np.argmax(bad))}"
    return None


def unscored(y: np.ndarray, proba: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows with a NaN or infinite probability, the probabilities and predictions with each such
    row a confident wrong answer): a NaN ranked above every score and an infinite one made a
    perfect AUC (a challenger scoring inf on its positives passed `auc:` with lower bound +0.39),
    and a model that cannot score an item has not got it right."""
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        k = proba.shape[1]
        proba, pred = proba.copy(), pred.copy()
        proba[bad] = np.eye(k)[(y[bad] + 1) % k] if k > 1 else 0.0
        pred[bad] = -1
    return bad, proba, pred


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
    g, n_groups = group_index(groups, len(a)) if groups is not None else (None, len(a))
    if g is not None and n_groups < len(a):
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
    A row a model could not score (NaN or infinite) counts as its confident wrong answer, and
    one neither could is left out (`unscored` counts both); a value outside [0, 1] is no model's
    (`proba_problem`): nothing is compared, `invalid` says why and the gate refuses the set. The
    resamples are drawn and scored a few at a time (`_draw_chunks`): memory does not grow with them.
    """
    y = np.asarray(y, dtype=int).reshape(-1)
    labels = list(labels)
    n = len(y)
    pa, pb = np.asarray(proba_a, dtype=float), np.asarray(proba_b, dtype=float)
    if pa.shape != (n, len(labels)) or pb.shape != (n, len(labels)):
        raise ValueError(f"probabilities must be ({n}, {len(labels)}), got {pa.shape} and {pb.shape}")
    pred_a, pred_b = np.asarray(pred_a).reshape(-1), np.asarray(pred_b).reshape(-1)
    if len(pred_a) != n or len(pred_b) != n:
        raise ValueError(f"predictions: {len(pred_a)} and {len(pred_b)} given for {n} items")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups: {len(groups)} given for {n} items")
    if n and (y.min() < 0 or y.max() >= len(labels)):
        raise ValueError(f"y: label index {int(y.min() if y.min() < 0 else y.max())} outside 0..{len(labels) - 1}")
    invalid = proba_problem(pa, "champion") or proba_problem(pb, "challenger")
    bad_a, pa, pred_a = unscored(y, pa, pred_a)
    bad_b, pb, pred_b = unscored(y, pb, pred_b)
    lost = {"champion": int((bad_a & ~bad_b).sum()), "challenger": int((bad_b & ~bad_a).sum()),
            "both": int((bad_a & bad_b).sum())}
    if lost["both"]:  # neither model scored them: no evidence either way
        keep = ~(bad_a & bad_b)
        y, pa, pb, pred_a, pred_b = y[keep], pa[keep], pb[keep], pred_a[keep], pred_b[keep]
        groups = None if groups is None else [g for g, k in zip(groups, keep) if k]
        n = len(y)
    inv, n_groups = group_index(groups, n) if groups is not None else (np.arange(n), n)
    out: dict[str, Any] = {"n": n, "groups": n_groups, "classes": int(len(np.unique(y))), "confidence": confidence,
                           "bootstrap": n_boot}
    if any(lost.values()):
        out["unscored"] = lost
    if n == 0 or invalid:
        out.update(macro_f1={"champion": None, "challenger": None, **_interval(np.array([]), np.nan, confidence)},
                   auc={})
        if invalid:
            out.update(invalid=invalid, brier={"champion": None, "challenger": None,
                                               **_interval(np.array([]), np.nan, confidence)})
        return out
    classes = np.unique(y)
    nc = len(classes)
    Y = (y[:, None] == classes[None, :]).astype(float)
    Pa, Pb = ((p[:, None] == classes[None, :]).astype(float) for p in (pred_a, pred_b))
    # Per group: every F1 count and the item count are sums of integer weights, exact at group level.
    counts = np.hstack([Y * Pa, Y * Pb, Y, Pa, Pb, np.ones((n, 1))])
    by_group = np.zeros((n_groups, counts.shape[1]))
    np.add.at(by_group, inv, counts)
    ranked: dict[str, tuple[_Ranked, _Ranked]] = {}
    for j, lab in enumerate(labels):
        pos = y == j
        if (policies is not None and lab not in policies) or pos.all() or not pos.any():
            continue
        ranked[lab] = (_Ranked(pos, pa[:, j], inv), _Ranked(pos, pb[:, j], inv))
    onehot = np.eye(len(labels))[y]
    ba, bb = ((pa - onehot) ** 2).sum(axis=1), ((pb - onehot) ** 2).sum(axis=1)   # per item
    fa, fb, br = [], [], []
    auc_a: dict[str, list[np.ndarray]] = {lab: [] for lab in ranked}
    auc_b: dict[str, list[np.ndarray]] = {lab: [] for lab in ranked}
    ones = np.ones((1, n_groups))
    for D in [*_draw_chunks(n_groups, n_boot, seed, n), ones]:   # the resamples, then every item once
        c = D @ by_group
        fa.append(_f1_from(c[:, :nc], c[:, 2 * nc:3 * nc], c[:, 3 * nc:4 * nc]))
        fb.append(_f1_from(c[:, nc:2 * nc], c[:, 2 * nc:3 * nc], c[:, 4 * nc:5 * nc]))
        br.append((D[:, inv] @ (ba - bb)) / c[:, -1])
        for lab, (ra, rb) in ranked.items():
            auc_a[lab].append(ra.auc(D))
            auc_b[lab].append(rb.auc(D))
    pt_a, pt_b = float(fa.pop()[0]), float(fb.pop()[0])
    br.pop()
    points = {lab: (float(auc_a[lab].pop()[0]), float(auc_b[lab].pop()[0])) for lab in ranked}
    cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0))
    out["macro_f1"] = {"champion": round(pt_a, 6), "challenger": round(pt_b, 6),
                       **_interval(cat(fb) - cat(fa), pt_b - pt_a, confidence)}
    auc: dict[str, Any] = {}
    boot_a = {lab: cat(v) for lab, v in auc_a.items()}
    boot_b = {lab: cat(v) for lab, v in auc_b.items()}
    for lab, (p_a, p_b) in points.items():
        pos = y == labels.index(lab)
        auc[lab] = {"champion": round(p_a, 6), "challenger": round(p_b, 6), "positives": int(pos.sum()),
                    "positive_groups": int(len(np.unique(inv[pos]))), "negative_groups": int(len(np.unique(inv[~pos]))),
                    **_interval(boot_b[lab] - boot_a[lab], p_b - p_a, confidence)}
    out["auc"] = auc
    out["brier"] = {"champion": round(float(ba.mean()), 6), "challenger": round(float(bb.mean()), 6),
                    **_interval(cat(br), float((ba - bb).mean()), confidence)}
    if auc:
        keys = list(auc)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no positive of any policy: NaN
            mean_a = np.nanmean(np.stack([boot_a[k] for k in keys]), axis=0)
            mean_b = np.nanmean(np.stack([boot_b[k] for k in keys]), axis=0)
        pm_a = float(np.mean([auc[k]["champion"] for k in keys]))
        pm_b = float(np.mean([auc[k]["challenger"] for k in keys]))
        out["auc_mean"] = {"champion": round(pm_a, 6), "challenger": round(pm_b, 6),
                           **_interval(mean_b - mean_a, pm_b - pm_a, confidence)}
    out["mcnemar"] = mcnemar(pred_a == y, pred_b == y, groups)
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


def _one_sided(entry: Optional[dict[str, Any]]) -> Optional[str]:
    """Why a policy's AUC interval cannot gate, or None: its positives (or negatives) all in one
    group. Every resample then holds that group whole or not at all, so the interval leaves out
    how that side varies: one campaign learnt by heart read as a sure gain."""
    if not entry:
        return None
    pos, neg = entry.get("positive_groups", MIN_UNITS), entry.get("negative_groups", MIN_UNITS)
    if min(pos, neg) >= MIN_UNITS:
        return None
    return f"its positives in {pos} group(s) and negatives in {neg}: the interval cannot vary one side"


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
    there, whatever it does elsewhere), a set of fewer than `MIN_UNITS` groups whatever
    `min_items` says, and for `auc:<policy>` a set whose positives or negatives sit in one group
    (`_one_sided`); no qualifying set means no promotion (no evidence). A set whose probabilities
    could not be compared (`invalid`: NaN, inf, no distribution) fails the gate. Returns
    {passed, reason, metric, min_lower_bound, mcnemar_alpha, mcnemar_test, sets: {name: {gating,
    passed, n, lower, delta, upper, mcnemar_p}}}."""
    sets: dict[str, Any] = {}
    reasons = []
    _check_test(mcnemar_test)
    uses_mcnemar = mcnemar_alpha is not None and metric in PREDICTION_METRICS
    floor = max(min_items, MIN_UNITS)
    for name, comp in comparisons.items():
        if comp.get("invalid"):  # NaN, inf or no distribution: no figure of it to trust, so the set refuses
            sets[name] = {"gating": True, "passed": False, "n": comp.get("n", 0), "lower": None, "delta": None,
                          "upper": None, "mcnemar_p": None, "invalid": comp["invalid"]}
            reasons.append(f"{name}: not comparable: {comp['invalid']}")
            continue
        entry = metric_interval(comp, metric)
        units = comp.get("groups", comp.get("n", 0))  # independent units: a bootstrap over a few groups under-covers
        one_class = comp.get("classes", 2) < 2   # nothing to tell apart: "always that class" scores best
        thin = _one_sided(entry) if metric.startswith("auc:") else None
        gating = units >= floor and entry is not None and not one_class and thin is None
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
                           + (f", {thin}" if thin else "")
                           + f" (under {floor}, one class or not computable: reported only)"
                           + (f": {why}" if one_class and why else ""))
            continue
        lost = comp.get("unscored") or {}
        reasons.append(f"{name}: {why}" + (f"; not scored: {lost.get('challenger', 0)} item(s) by the challenger and "
                                           f"{lost.get('champion', 0)} by the champion (counted wrong), "
                                           f"{lost.get('both', 0)} by both (left out)" if lost else ""))
    gating = [s for s in sets.values() if s["gating"]]
    passed = bool(gating) and all(s["passed"] for s in gating)
    if not gating:
        reasons.append("no evaluation set large enough and of two classes or more: not promoted")
    return {"passed": passed, "metric": metric, "min_lower_bound": min_lower_bound, "mcnemar_alpha": mcnemar_alpha,
            "mcnemar_test": mcnemar_test,
            "sets": sets, "reason": "; ".join(reasons)}
