"""Pooled gate benchmark: does the gate's `pooled` evaluation set (`evaluation.cross_fit`) keep a
challenger that is no better out, while promoting a better one more often than the test split alone?

Setting: a young surface. Data: the SMS Spam Collection (policy labels benign / spam / scam through
the taxonomy), grouped by template-normalised text (`clustering.normalize.normalize_template`). In
each of `--trials` seeded trials (seed 2000 + trial) the groups are shuffled and partitioned into a
test-side human set (`--test` groups, one item each: a young surface's test split, just over the
gate's `min_items`), a train-side human set (`--human` groups, one item each) and the champion's
source pool. The champion is trained on `--n` source items whose labels have 'missed' noise
`--noise` (each violating label recorded as benign with that probability, as
benchmarks/promotion.py's `flip`). Each challenger is trained on the champion's source items
(same noisy labels) plus the train-side human items, weighted by
`labeling.training_data.human_weights` (models.yaml `learning`), as `LearningData.train_set` does:

- `better`: the human items carry their true labels (what real decisions give);
- `null`: the human labels (train and test sides together) are permuted at random: analysts whose
  labels carry no information about the texts, so no challenger should be promoted. (A challenger
  can still learn the surface's label mix from them: on shuffled labels, a benign majority.)

The defaults give the human labels enough weight to move the model (500 source items, 300 human
labels): with 2,000 source items and 150 human labels neither challenger disagreed with the
champion on more than ~2 items of 190, and nothing was promoted on either set.

Measured: each challenger goes through the product's gate twice, with `{test_split}` (the test
items) and with `{pooled}` (the test items plus the train-side human items the champion never
learnt from, which the challenger scores out of fold: `evaluation.cross_fit.cross_fit` with
`promotion.cross_fit_folds` fold models, on a hand-built `LearningData` whose human rows have
increasing `first_decision` ids and a champion recorded with `decisions_through` 0;
`CrossFit.extend` makes the set). Comparisons by `evaluation.compare.paired_bootstrap` resampling
template groups, verdicts by `gate` with models.yaml's `promotion` settings, as
benchmarks/promotion.py calls them. Reported per challenger and set: promoted count, mean and sd
of the macro-F1 delta (challenger - champion) and of the set size.

Targets: `null` promoted at most 1 in 20 with `pooled`; `better` promoted with `pooled` at least
as often as with the test split alone.

Prints one JSON line (progress on stderr). Usage: python benchmarks/pooled_gate.py [--trials 20]
       [--kind tfidf_lr] [--n 500] [--noise 0.3] [--test 40] [--human 300] [--bootstrap N] [--append]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.learning_data import emit  # noqa: E402
from benchmarks.promotion import flip, sms_grouped  # noqa: E402
from core.taxonomy import load_taxonomy  # noqa: E402
from evaluation.compare import gate, paired_bootstrap  # noqa: E402
from evaluation.cross_fit import cross_fit  # noqa: E402
from evaluation.scoring import score_set  # noqa: E402
from labeling.training_data import LearningData, human_weights  # noqa: E402
from models.config import load_models_config  # noqa: E402
from models.kinds import make_classifier  # noqa: E402
from models.registry import embeddings_for  # noqa: E402
from models.training import TrainingSet, replicate_by_weight  # noqa: E402

warnings.filterwarnings("ignore", "Mean of empty slice")   # AUC of a class absent from a small set
CHALLENGERS = ("better", "null")
SETS = ("test_split", "pooled")
CHAMPION = {"id": "champion", "metrics": {"train_side_only": True, "decisions_through": 0}}


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def fit_model(store, cfg, kind: str, params: dict, labels: list[str], data: TrainingSet, weights: np.ndarray,
              seed: int, cache: dict):  # noqa: ANN001, ANN201
    """A model of `kind` fitted as a retrain fits one: the rows repeated by weight (an identical
    training set reuses the fitted model)."""
    fit_on = replicate_by_weight(data, weights, seed)
    key = (tuple(fit_on.ids), tuple(fit_on.texts), tuple(fit_on.labels))
    if key in cache:
        return cache[key]
    model = cache[key] = make_classifier(kind, labels, **params)
    emb = embeddings_for(store, model, list(fit_on.texts), show_progress=False, config=cfg)
    model.fit(fit_on.texts, fit_on.labels, embeddings=emb, show_progress=False, targets=fit_on.targets(model.labels))
    return model


def run_trials(args: argparse.Namespace, store) -> dict:  # noqa: ANN001
    tax = load_taxonomy()
    cfg = load_models_config()
    pc = cfg.promotion
    if args.bootstrap:
        pc = pc.model_copy(update={"bootstrap": args.bootstrap})
    labels = list(tax.labels)
    texts, y_all, present, groups_all = sms_grouped(tax)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups_all):
        members.setdefault(g, []).append(i)
    uniq = sorted(members)
    params = {**cfg.kind_params(args.kind), **({"min_df": 1} if args.kind == "tfidf_lr" else {})}
    seed = cfg.training.seed
    now = dt.datetime(2026, 12, 1)
    rec = {c: {s: {"promoted": [], "delta": [], "lower": [], "n": [], "groups": [], "disagree": [], "for_b": []} for s in SETS} for c in CHALLENGERS}
    champ_f1, cf_notes = [], []
    t0 = time.perf_counter()
    for trial in range(args.trials):
        rng = np.random.default_rng(2000 + trial)
        order = [uniq[k] for k in rng.permutation(len(uniq))]
        pick = lambda gs: np.array([members[g][int(rng.integers(len(members[g])))] for g in gs])  # noqa: E731
        test_i = pick(order[:args.test])
        human_i = pick(order[args.test:args.test + args.human])
        pool = np.array([i for g in order[args.test + args.human:] for i in members[g]])
        base = np.sort(rng.choice(pool, args.n, replace=False))
        y_base = flip(y_all[base], args.noise, present, rng, "missed")
        perm = rng.permutation(args.test + args.human)  # the null analysts: labels shuffled over both sides
        # Rows: source (the champion's items), human train side, human test side; ids sort in that order.
        rows = np.concatenate([base, human_i, test_i])
        ns, nh = len(base), len(human_i)
        ids = [f"s{k:05d}" for k in range(ns)] + [f"u{k:05d}" for k in range(nh)] + [f"v{k:05d}" for k in range(args.test)]
        split = np.array(["train"] * (ns + nh) + ["test"] * args.test, dtype=object)
        origin = ["source"] * ns + ["decision"] * (nh + args.test)
        groups = [f"text:{groups_all[i]}" for i in rows]
        first = [None] * ns + list(range(1, nh + args.test + 1))   # decision ids, all after the champion's data
        hw = human_weights([now] * (nh + args.test), ["sms_spam"] * (nh + args.test), now, cfg.learning)
        src = TrainingSet(ids[:ns], [texts[i] for i in base], list(y_base), origin[:ns])
        cache: dict = {}
        champion = fit_model(store, cfg, args.kind, params, labels, src, np.ones(ns), seed, cache)
        test_groups = groups[ns + nh:]
        for name in CHALLENGERS:
            y_h = np.concatenate([y_all[human_i], y_all[test_i]])
            if name == "null":
                y_h = y_h[perm]
            data = TrainingSet(ids, [texts[i] for i in rows], list(y_base) + list(y_h), origin)
            w = np.concatenate([np.ones(ns), hw])
            ld = LearningData(data, split, groups, w, [None] * ns + ["review"] * (nh + args.test), {}, first)
            train = np.flatnonzero(split == "train")
            challenger = fit_model(store, cfg, args.kind, params, labels, data.subset(train), w[train], seed,
                                   cache)
            cf = cross_fit(store, tax, ld, CHAMPION, kind=args.kind, params=params, config=cfg, seed=seed)
            if name == "better":
                cf_notes.append(cf.summary())
            test_data = data.subset(np.flatnonzero(split == "test"))
            pb, predb = score_set(store, challenger, test_data, labels, cfg)
            sets = {"test_split": (test_data, test_groups, pb, predb),
                    "pooled": cf.extend(ld, test_data, list(test_groups), pb, predb)}
            for s, (d, g, pb_s, predb_s) in sets.items():
                y = np.array([labels.index(lab) for lab in d.labels], dtype=int)
                pa, preda = score_set(store, champion, d, labels, cfg)
                comp = paired_bootstrap(y, pa, pb_s, preda, predb_s, labels, groups=g, n_boot=pc.bootstrap,
                                        seed=pc.seed + trial, confidence=pc.confidence)
                verdict = gate({s: comp}, pc.metric, pc.min_lower_bound, pc.min_items, pc.mcnemar_alpha,
                               pc.mcnemar_test)
                r = rec[name][s]
                r["promoted"].append(bool(verdict["passed"]))
                r["delta"].append(float(comp["macro_f1"]["delta"]))
                r["lower"].append(float(comp["macro_f1"]["lower"]))
                r["n"].append(int(comp["n"]))
                r["groups"].append(int(comp["groups"]))
                r["disagree"].append(int(comp["mcnemar"]["disagreements"]))
                r["for_b"].append(int(comp["mcnemar"]["favour_challenger"]))
                if name == "better" and s == "test_split":
                    champ_f1.append(float(comp["macro_f1"]["champion"]))
        log(f"trial {trial + 1}/{args.trials}: " + "; ".join(
            f"{c} " + " ".join(f"{s} d={rec[c][s]['delta'][-1]:+.3f}{'P' if rec[c][s]['promoted'][-1] else '-'}"
                              for s in SETS) for c in CHALLENGERS) + f"  ({time.perf_counter() - t0:.0f}s)")
    n = args.trials

    def ms(v: list) -> dict:
        return {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 4)}

    results = {c: {s: {"promoted": int(sum(r["promoted"])), "macro_f1_delta": ms(r["delta"]),
                       "lower": ms(r["lower"]), "items": ms(r["n"]), "groups": ms(r["groups"]),
                       "disagreements": ms(r["disagree"]), "challenger_right_of_them": ms(r["for_b"])}
                   for s, r in by_set.items()} for c, by_set in rec.items()}
    false_max = max(1, int(round(n / 20)))
    checks = {"null_pooled_promoted_max": (results["null"]["pooled"]["promoted"], false_max),
              "better_pooled_vs_test_split": (results["better"]["pooled"]["promoted"],
                                              results["better"]["test_split"]["promoted"])}
    missed = [k for k, (got, bound) in checks.items() if (got > bound if k.endswith("_max") else got < bound)]
    return {
        "benchmark": "pooled_gate", "dataset": "sms_spam", "kind": args.kind, "trials": n,
        "setup": {"n_train": args.n, "champion_noise": args.noise, "noise_kind": "missed", "test_items": args.test,
                  "human_train_items": args.human, "one_item_per_template_group": True,
                  "human_weight_each": round(float(hw[0]), 4), "cross_fit_folds": cfg.promotion.cross_fit_folds,
                  "seeds": f"2000..{2000 + n - 1}",
                  "gate": {"metric": pc.metric, "min_lower_bound": pc.min_lower_bound, "confidence": pc.confidence,
                           "bootstrap": pc.bootstrap, "bootstrap_reduced": bool(args.bootstrap),
                           "min_items": pc.min_items, "mcnemar_alpha": pc.mcnemar_alpha,
                           "mcnemar_test": pc.mcnemar_test, "resampling": "template groups"}},
        "champion_macro_f1_test_split": ms(champ_f1),
        "cross_fit_first_trial": cf_notes[0] if cf_notes else None,
        "results": results,
        "targets": {"null_pooled_promoted_max": false_max,
                    "better_pooled_promoted_min": "better test_split promoted count"},
        "met": not missed, "missed": missed, "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kind", default="tfidf_lr")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--human", type=int, default=300)
    ap.add_argument("--bootstrap", type=int, default=None,
                    help="bootstrap resamples (default: models.yaml promotion.bootstrap)")
    ap.add_argument("--append", action="store_true", help="append the line to benchmarks/measured.jsonl")
    args = ap.parse_args()
    probe = make_classifier(args.kind, list(load_taxonomy().labels),
                            **{**load_models_config().kind_params(args.kind),
                               **({"min_df": 1} if args.kind == "tfidf_lr" else {})})
    if embeddings_for(None, probe, [], show_progress=False) is None:   # None before touching the store
        emit(run_trials(args, None), args.append)
        return
    from core.store import open_store

    with tempfile.TemporaryDirectory() as tmp:   # an embedding cache only
        emit(run_trials(args, open_store(tmp)), args.append)


if __name__ == "__main__":
    main()
