"""Promotion gate benchmark: does the gate of `workbench retrain` promote a truly better challenger
and keep an equal or worse one out?

Data: the SMS Spam Collection (policy labels benign / spam / scam through the taxonomy). In each
of `--trials` seeded trials the messages are grouped by template-normalised text (the campaign
stand-in; copies never straddle) and a share of the groups is held out; `--eval` items of it
are the held-out human labels both models are scored on. From the rest:

- the champion is trained on `--n` items with label noise `--noise` (`--noise-kind missed`, the
  default: each violating label recorded as benign with that probability, as with labels from
  user reports; `uniform`: any label replaced by another);
- `--design paired` (the default; "challengers trained on the same data"): a **better**
  challenger on the champion's items with their labels corrected (`--better-noise`: what human
  corrections buy); an **equal** one on the champion's items and noisy labels with
  `--equal-extra` (5%) of them swapped for other items with the same noise (a retrain that
  learnt nothing new: same size, same noise); a
  **worse** one on the champion's items with more labels lost (`--worse-noise` in all);
- `--design independent`: each challenger on its own independent sample at its noise rate,
  so training variance comes on top (an "equal" challenger is then only equal in expectation:
  one unlucky champion draw makes it truly better on the held-out items).

Each challenger is compared with the champion on the same held-out items by the gate's own
functions (`evaluation.compare.paired_bootstrap` resampling whole groups, then `gate` with
models.yaml's `promotion` settings: macro F1, lower bound of the 95% interval above 0, and
McNemar's p < 0.05 in the challenger's favour, exact or mid-p as `promotion.mcnemar_test` says or
`--mcnemar-test` overrides; `interval_only` is the interval alone). The
baseline, in the same process on the same models: promoting whenever the challenger's macro F1
point estimate is higher (what a by-hand comparison does); McNemar's test (p < 0.05, challenger
right more often) is reported beside it. `--gate-metric` runs the same trials through the gate on
another of `promotion`'s metrics (e.g. `brier`); the baselines and the reported deltas stay macro F1.

Targets: false promotions (equal or worse promoted) <= 1 in 20 each; better promoted in >= 18 of 20.

`--tune-weight` adds the training-side cross-validation behind `learning.human_weight`: base
data = the Davidson tweets (source labels), a new surface = `--human` SMS messages decided by
humans; grouped 3-fold CV over those human labels (`evaluation.weight_tuning.cv_human_weight`)
for each weight in `learning.weight_grid`, per seed.

Prints one JSON line. Usage: python benchmarks/promotion.py [--trials 20] [--kind tfidf_lr]
       [--n 3000] [--noise 0.3] [--noise-kind missed] [--better-noise 0.0] [--worse-noise 0.6]
       [--eval 600] [--design paired|independent] [--equal-extra 0.05] [--gate-metric M]
       [--mcnemar-test exact|mid_p] [--tune-weight]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from clustering.normalize import normalize_template  # noqa: E402
from core.sources import load_labelled  # noqa: E402
from core.taxonomy import load_taxonomy  # noqa: E402
from evaluation.compare import gate, mcnemar_p, paired_bootstrap  # noqa: E402
from models.config import load_models_config  # noqa: E402
from models.kinds import make_classifier  # noqa: E402


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def flip(y: np.ndarray, rate: float, labels: list[str], rng: np.random.Generator, kind: str = "missed",
         benign: str = "benign") -> np.ndarray:
    """Noisy labels. `missed`: each violating label is recorded as benign with probability `rate`
    (what labels from user reports look like: violations nobody flagged); `uniform`: a share
    `rate` of all labels replaced by a different label."""
    out = y.copy()
    if kind == "missed":
        out[(out != benign) & (rng.random(len(out)) < rate)] = benign
        return out
    for i in np.flatnonzero(rng.random(len(y)) < rate):
        out[i] = rng.choice([lab for lab in labels if lab != y[i]])
    return out


def fit_predict(kind: str, params: dict, labels: list[str], texts: list[str], y: np.ndarray, idx: np.ndarray,
                eval_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    model = make_classifier(kind, labels, **params)
    model.fit([texts[i] for i in idx], list(y))
    proba = model.predict_proba(eval_texts)
    return proba, model.predict_from_proba(proba)


def sms_grouped(tax) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:  # noqa: ANN001
    """The SMS Spam Collection: (texts, policy labels, the labels present, template groups)."""
    df = load_labelled("sms_spam", taxonomy=tax)
    texts = df.text.tolist()
    y_all = np.array(df.policy_label.tolist(), dtype=object)
    return texts, y_all, sorted(set(y_all)), np.array([normalize_template(t) for t in texts], dtype=object)


def run_trials(args: argparse.Namespace) -> dict:
    tax = load_taxonomy()
    cfg = load_models_config()
    pc = cfg.promotion
    if args.gate_metric:  # e.g. brier: the same trials through the gate on another metric
        pc = pc.model_copy(update={"metric": args.gate_metric})
    if args.mcnemar_test:  # exact or mid_p: the same trials through the gate with the other McNemar p
        pc = pc.model_copy(update={"mcnemar_test": args.mcnemar_test})
    labels = list(tax.labels)
    texts, y_all, present, groups_all = sms_grouped(tax)
    uniq = np.unique(groups_all)
    params = {**cfg.kind_params(args.kind), **({"min_df": 1} if args.kind == "tfidf_lr" else {})}
    outcome: dict[str, dict[str, list]] = {k: {"gate": [], "interval_only": [], "naive": [], "mcnemar": [], "delta": [], "lower": []}
                                           for k in ("better", "equal", "worse")}
    champ_f1 = []
    t0 = time.perf_counter()
    for trial in range(args.trials):
        rng = np.random.default_rng(1000 + trial)
        held_groups = set(rng.choice(uniq, int(len(uniq) * 0.3), replace=False).tolist())
        held = np.flatnonzero([g in held_groups for g in groups_all])
        pool = np.flatnonzero([g not in held_groups for g in groups_all])
        ev = rng.choice(held, min(args.eval, len(held)), replace=False)
        ev_texts = [texts[i] for i in ev]
        y_ev = np.array([labels.index(v) for v in y_all[ev]])
        g_ev = groups_all[ev]

        def fit(idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return fit_predict(args.kind, params, labels, texts, y, idx, ev_texts)

        def noisy(idx: np.ndarray, rate: float) -> np.ndarray:
            return flip(y_all[idx], rate, present, rng, args.noise_kind)

        base = rng.choice(pool, args.n, replace=False)
        y_base = noisy(base, args.noise)
        pa, preda = fit(base, y_base)
        champ_f1.append(paired_bootstrap(y_ev, pa, pa, preda, preda, labels, n_boot=100)["macro_f1"]["champion"])
        if args.design == "paired":
            # The champion's items; better: their labels corrected; equal: the same noisy labels with
            # a few items swapped for others with the same noise (a retrain that learnt nothing new);
            # worse: more labels lost.
            rest = np.setdiff1d(pool, base)
            extra = rng.choice(rest, min(len(rest), max(1, int(args.n * args.equal_extra))), replace=False)
            runs = {"better": lambda: fit(base, noisy(base, args.better_noise)),
                    "equal": lambda: fit(np.concatenate([base[len(extra):], extra]),
                                         np.concatenate([y_base[len(extra):], noisy(extra, args.noise)])),
                    "worse": lambda: fit(base, flip(y_base, 1 - (1 - args.worse_noise) / (1 - args.noise),
                                                    present, rng, args.noise_kind))}
        else:  # independent: every challenger on its own sample (training variance included)
            def own(rate: float):  # noqa: ANN202
                idx = rng.choice(pool, args.n, replace=False)
                return lambda: fit(idx, noisy(idx, rate))

            runs = {"better": own(args.better_noise), "equal": own(args.noise), "worse": own(args.worse_noise)}
        for name in ("better", "equal", "worse"):
            pb, predb = runs[name]()
            comp = paired_bootstrap(y_ev, pa, pb, preda, predb, labels, groups=g_ev, n_boot=pc.bootstrap,
                                    seed=pc.seed + trial, confidence=pc.confidence)
            verdict = gate({"test_split": comp}, pc.metric, pc.min_lower_bound, pc.min_items, pc.mcnemar_alpha,
                           pc.mcnemar_test)
            interval_only = gate({"test_split": comp}, pc.metric, pc.min_lower_bound, pc.min_items)
            o = outcome[name]
            o["gate"].append(bool(verdict["passed"]))
            o["interval_only"].append(bool(interval_only["passed"]))
            o["naive"].append(bool(comp["macro_f1"]["delta"] > 0))
            m = comp["mcnemar"]
            o["mcnemar"].append(bool(mcnemar_p(m, pc.mcnemar_test) < 0.05
                                     and m["favour_challenger"] > m["favour_champion"]))
            o["delta"].append(comp["macro_f1"]["delta"])
            o["lower"].append(comp["macro_f1"]["lower"])
        log(f"trial {trial + 1}/{args.trials}: champion macro F1 {champ_f1[-1]:.3f}; "
            + "; ".join(f"{k} d={v['delta'][-1]:+.3f} lo={v['lower'][-1]:+.3f} {'P' if v['gate'][-1] else '-'}"
                        for k, v in outcome.items()) + f"  ({time.perf_counter() - t0:.0f}s)")
    n = args.trials
    count = {k: {g: int(sum(v[g])) for g in ("gate", "interval_only", "naive", "mcnemar")} for k, v in outcome.items()}
    false_max = max(1, int(round(n / 20)))
    met = (count["equal"]["gate"] <= false_max and count["worse"]["gate"] <= false_max
           and count["better"]["gate"] >= int(np.ceil(0.9 * n)))
    return {
        "benchmark": "promotion", "dataset": "sms_spam", "kind": args.kind, "trials": n,
        "setup": {"n_train": args.n, "eval_items": int(args.eval), "design": args.design, "champion_noise": args.noise, "noise_kind": args.noise_kind,
                  "equal_extra": args.equal_extra if args.design == "paired" else None,
                  "better_noise": args.better_noise, "worse_noise": args.worse_noise,
                  "gate": {"metric": pc.metric, "min_lower_bound": pc.min_lower_bound, "confidence": pc.confidence,
                           "bootstrap": pc.bootstrap, "mcnemar_alpha": pc.mcnemar_alpha,
                           "mcnemar_test": pc.mcnemar_test,
                           "resampling": "template groups"}},
        "champion_macro_f1": {"mean": round(float(np.mean(champ_f1)), 4), "sd": round(float(np.std(champ_f1, ddof=1)), 4)},
        "macro_f1_delta": {k: {"mean": round(float(np.mean(v["delta"])), 4), "sd": round(float(np.std(v["delta"], ddof=1)), 4)}
                           for k, v in outcome.items()},
        "promoted": count,
        "false_promotion_rate": {"gate": round((count["equal"]["gate"] + count["worse"]["gate"]) / (2 * n), 4),
                                 "interval_only": round((count["equal"]["interval_only"] + count["worse"]["interval_only"]) / (2 * n), 4),
                                 "naive_point_estimate": round((count["equal"]["naive"] + count["worse"]["naive"]) / (2 * n), 4),
                                 "mcnemar": round((count["equal"]["mcnemar"] + count["worse"]["mcnemar"]) / (2 * n), 4)},
        "power": {g: round(count["better"][g] / n, 4) for g in ("gate", "interval_only", "naive", "mcnemar")},
        "targets": {"equal_promoted_max": false_max, "worse_promoted_max": false_max,
                    "better_promoted_min": int(np.ceil(0.9 * n))},
        "met": bool(met), "seconds": round(time.perf_counter() - t0, 1),
    }


def tune_weight(args: argparse.Namespace) -> dict:
    """Grouped CV on the training side for `learning.human_weight` (see the module doc)."""
    from labeling.training_data import LearningData, human_weights
    from evaluation.weight_tuning import cv_human_weight
    from models.training import TrainingSet

    tax = load_taxonomy()
    cfg = load_models_config()
    params = {**cfg.kind_params(args.kind), **({"min_df": 1} if args.kind == "tfidf_lr" else {})}
    dav = load_labelled("davidson", taxonomy=tax)
    sms = load_labelled("sms_spam", taxonomy=tax)
    out = {}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(sms), args.human, replace=False)
        texts = dav.text.tolist() + [sms.text.iloc[i] for i in pick]
        labs = dav.policy_label.tolist() + [sms.policy_label.iloc[i] for i in pick]
        origin = ["source"] * len(dav) + ["decision"] * len(pick)
        ids = [f"d{i}" for i in range(len(dav))] + [f"s{i}" for i in pick]
        data = TrainingSet(ids, texts, labs, origin)
        groups = [f"text:{normalize_template(t)}" for t in texts]
        w = np.ones(len(ids))
        import datetime as dt

        now = dt.datetime(2026, 12, 1)
        w[len(dav):] = human_weights([now] * len(pick), ["sms_spam"] * len(pick), now,
                                     cfg.learning.model_copy(update={"human_weight": 1.0}))
        ld = LearningData(data, np.array(["train"] * len(ids), dtype=object), groups, w, [None] * len(ids))
        res = cv_human_weight(ld, tax.labels, args.kind, params, args.grid or cfg.learning.weight_grid,
                              cfg.learning.tune_folds,
                              seed, 1.0, cfg.learning.max_weight)
        out[str(seed)] = res
        log(f"weight CV seed {seed}: {res}")
    chosen = [r["chosen"] for r in out.values()]
    return {"base": "davidson (source labels)", "human": f"{args.human} sms_spam decisions", "kind": args.kind,
            "note": "weights below are before the scarcity factor (x min(3, sqrt(200/n)))",
            "per_seed": out, "chosen": chosen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kind", default="tfidf_lr")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--noise-kind", choices=("missed", "uniform"), default="missed")
    ap.add_argument("--better-noise", type=float, default=0.0)
    ap.add_argument("--worse-noise", type=float, default=0.6)
    ap.add_argument("--eval", type=int, default=600)
    ap.add_argument("--design", choices=("paired", "independent"), default="paired")
    ap.add_argument("--equal-extra", type=float, default=0.05)
    ap.add_argument("--tune-weight", action="store_true")
    ap.add_argument("--gate-metric", default=None,
                    help="The gate's metric (default: models.yaml promotion.metric), e.g. brier or auc_mean.")
    ap.add_argument("--mcnemar-test", choices=("exact", "mid_p"), default=None,
                    help="McNemar's p the gate uses (default: models.yaml promotion.mcnemar_test).")
    ap.add_argument("--human", type=int, default=300)
    ap.add_argument("--grid", type=lambda s: [float(x) for x in s.split(",")], default=None,
                    help="weights to cross-validate (default: learning.weight_grid)")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[13, 17, 23])
    args = ap.parse_args()
    result = run_trials(args) if args.trials > 0 else {"benchmark": "promotion"}
    if args.tune_weight:
        result["human_weight_cv"] = tune_weight(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
