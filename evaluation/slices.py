"""Slices and bias: every quality figure per slice of the traffic, and the Jigsaw bias AUCs.

Why: a model can be good on average and systematically wrong on one part of the traffic: one
source, one surface, one language, campaign members, or benign text that mentions an identity
group (the false positives against a group the Jigsaw Unintended Bias competition measured).
Slices (`configs/evaluation.yaml: slices`): source, surface, language (item metadata, when
present), campaign (member or not), identity (one slice per group of `identity_terms`, matched
as whole words) and served (why the case was served: learning share, cold-start seed, uniform
sample or risk order, `labeling.learning.served_as`; the learning and seed slices are chosen
for uncertainty or resemblance, so their override rates are expected to be higher).

Per slice: n, override rate, accuracy, false-positive rate (benign by the human, flagged by the
model) and false-negative rate, each with its n and Wilson interval; per-policy precision /
recall / F1; the same on the slice's QA-audit sample (weighted when the audit is stratified);
and, for "violating" (human label not benign) scored by 1 - p(benign), the three AUCs of
Borkan et al. (2019), each against the background (every item outside the slice):

- subgroup AUC: positives and negatives inside the slice only (how well the model separates
  within the group);
- BPSN (background positive, subgroup negative): low when benign in-group items score above
  violating background items (false positives against the group);
- BNSP (background negative, subgroup positive): low when violating in-group items score below
  benign background items (misses within the group).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from core.taxonomy import Taxonomy
from core.text import pattern_search

from .config import EvaluationConfig
from .estimates import (accuracy_estimate, inverse_probability_weights, policy_estimates, proportion, wilson,
                        z_value)
from .metrics import finite_row


def ranked(y: Sequence[bool], s: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(y, s) as arrays without the items whose score is NaN: a NaN ranks nowhere, and one of them
    made every rank NaN (an AUC of "nan" with an interval of [0, 1]). An infinite score ranks."""
    y, s = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores: {y.size} and {s.size} given, one score per label")
    keep = ~np.isnan(s)
    return y[keep], s[keep]


def auc(y: Sequence[bool], s: Sequence[float]) -> Optional[float]:
    """ROC AUC of scores `s` for binary `y` (ties count one half; a NaN score left out); None
    without both classes."""
    y, s = ranked(y, s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


SMALL_AUC_UNITS = 10  # positives (or negatives) under which Hanley-McNeil's interval is not trusted alone


def auc_estimate(y: Sequence[bool], s: Sequence[float], conf: float = 0.9) -> dict[str, Any]:
    """AUC with n_pos, n_neg and the Hanley-McNeil (1982) interval. Where that fails (an AUC of 0
    or 1, whose variance it puts at 0, so one positive and one negative ranked right read [1, 1];
    or under `SMALL_AUC_UNITS` of the rarer class) the interval is widened to at least a Wilson
    interval of the AUC as a proportion over min(n_pos, n_neg) units (AUC(1 - AUC) / min(n_pos,
    n_neg) bounds its variance). Items with a NaN score are left out of the counts as of the AUC."""
    y, s = ranked(y, s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    a = auc(y, s)
    out: dict[str, Any] = {"estimate": a, "n_pos": n_pos, "n_neg": n_neg, "n": n_pos + n_neg, "lo": None, "hi": None}
    if a is not None:
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
        half = z_value(conf) * math.sqrt(max(var, 0.0))
        out["lo"], out["hi"] = max(0.0, a - half), min(1.0, a + half)
        units = min(n_pos, n_neg)
        if a in (0.0, 1.0) or units < SMALL_AUC_UNITS:
            w_lo, w_hi = wilson(a * units, units, conf)
            out["lo"], out["hi"] = min(out["lo"], w_lo), max(out["hi"], w_hi)
    return out


def bias_aucs(y: Sequence[bool], s: Sequence[float], in_group: Sequence[bool], conf: float = 0.9) -> dict[str, Any]:
    """Subgroup AUC, BPSN AUC and BNSP AUC (Jigsaw definitions) of one subgroup mask."""
    y, s, g = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64), np.asarray(in_group, dtype=bool)
    bpsn = (~g & y) | (g & ~y)
    bnsp = (~g & ~y) | (g & y)
    return {"subgroup_auc": auc_estimate(y[g], s[g], conf), "bpsn_auc": auc_estimate(y[bpsn], s[bpsn], conf),
            "bnsp_auc": auc_estimate(y[bnsp], s[bnsp], conf)}


MAX_VALUES_PER_KIND = 50  # slices of one kind; the rarer values share one "other" slice


def _value_masks(kind: str, values: Sequence[Any]) -> dict[str, np.ndarray]:
    """One mask per value (sorted) of the `MAX_VALUES_PER_KIND` most frequent ones, the rest in one
    "(other: n values)" slice. Why: the language comes from ingested metadata, and 8,000 decided
    items with 8,000 distinct languages made 8,000 slices (a mask of every row each: quadratic in
    time and memory, 25 s there) and a table of 8,000 rows in the report."""
    present = [str(v) for v in values if v]
    if not present:
        return {}
    names, inverse, counts = np.unique(present, return_inverse=True, return_counts=True)
    keep = np.sort(np.argsort(-counts, kind="stable")[:MAX_VALUES_PER_KIND])
    code = np.full(len(values), -1)
    code[[i for i, v in enumerate(values) if v]] = inverse
    out = {f"{kind}={names[j]}": code == j for j in keep}
    if len(names) > len(keep):
        other = f"{kind}=(other: {len(names) - len(keep)} values)"
        out[other if other not in out else other + " "] = (code >= 0) & ~np.isin(code, keep)
    return out


def slice_masks(rows: Sequence[dict[str, Any]], config: EvaluationConfig) -> dict[str, np.ndarray]:
    """Slice name ("source=sms", "campaign=member", "identity=religion", ...) -> row mask.

    Each value seen per kind becomes one slice, up to `MAX_VALUES_PER_KIND` (the most frequent;
    the rest share one); `language` only when some item has one."""
    out: dict[str, np.ndarray] = {}
    for kind in config.slices:
        if kind in ("source", "surface", "language", "served"):
            out.update(_value_masks(kind, [r.get(kind) for r in rows]))
        elif kind == "campaign":
            m = np.array([bool(r.get("campaign")) for r in rows], dtype=bool)
            out["campaign=member"], out["campaign=not member"] = m, ~m
        elif kind == "identity":
            for group, pattern in config.identity_patterns.items():
                out[f"identity={group}"] = np.array([pattern_search(pattern, r.get("text")) for r in rows],
                                                    dtype=bool)
    return out


def quality_figures(rows: Sequence[dict[str, Any]], taxonomy: Taxonomy, config: EvaluationConfig) -> dict[str, Any]:
    """The quality figures of a set of decision rows (`data.decision_rows`), each an estimate."""
    conf, benign = config.confidence, taxonomy.benign_label
    human = [r["human"] for r in rows]
    model = [r["model"] for r in rows]
    h_benign = np.array([h == benign for h in human], dtype=bool)
    m_benign = np.array([m == benign for m in model], dtype=bool)
    over = sum(h != m for h, m in zip(human, model))
    audit = [r for r in rows if r["is_audit"]]
    w = inverse_probability_weights([r.get("inclusion") for r in audit], [r.get("response") for r in audit])
    return {
        "n": len(rows), "audits": len(audit),
        "override_rate": proportion(over, len(rows), conf),
        "accuracy": proportion(len(rows) - over, len(rows), conf),
        "fpr": proportion(int((h_benign & ~m_benign).sum()), int(h_benign.sum()), conf),
        "fnr": proportion(int((~h_benign & m_benign).sum()), int((~h_benign).sum()), conf),
        "per_policy": policy_estimates(human, model, taxonomy.labels, conf=conf),
        "audit_accuracy": accuracy_estimate([r["human"] for r in audit], [r["model"] for r in audit], w, conf=conf),
        "audit_per_policy": policy_estimates([r["human"] for r in audit], [r["model"] for r in audit],
                                             taxonomy.labels, w, conf=conf),
    }


def slice_report(rows: Sequence[dict[str, Any]], taxonomy: Taxonomy, config: EvaluationConfig) -> dict[str, Any]:
    """Every quality figure per slice, with the bias AUCs of each slice against its background."""
    benign = taxonomy.benign_label
    j = taxonomy.labels.index(benign)
    scored = np.array([finite_row(r["proba"]) for r in rows], dtype=bool)  # a NaN score ranks nowhere
    y = np.array([r["human"] != benign for r in rows], dtype=bool)
    s = np.array([1.0 - (float(r["proba"][j]) if ok else 0.0) for r, ok in zip(rows, scored)], dtype=np.float64)
    out: dict[str, Any] = {"overall": quality_figures(rows, taxonomy, config), "slices": {},
                           "overall_auc": auc_estimate(y[scored], s[scored], config.confidence)}
    for name, mask in slice_masks(rows, config).items():
        members = [r for r, m in zip(rows, mask) if m]
        fig = quality_figures(members, taxonomy, config)
        fig["small"] = len(members) < config.min_slice_n
        fig.update(bias_aucs(y[scored], s[scored], mask[scored], config.confidence))
        out["slices"][name] = fig
    return out
