"""A short fine-tune on the decisions: the `transformer` kind as the loop's challenger.

The issue's "human decisions carry weight" allows, instead of (or beside) sample weights, "a
short fine-tune on the decisions". `new_surface.py` measures the hybrid (TF-IDF n-grams +
frozen MiniLM, logistic regression); this script takes the very decisions it made
(`new_surface.py --dump-decisions FILE`: base texts and labels, surface texts and labels, the
gate's side of each decision, and each strategy's decided items in order) and trains the product's
`transformer` kind (`models.transformer.TransformerClassifier`, MiniLM fine-tuned end to end) as
the challenger instead:

- training data: the base plus the train-side decisions of the first N, each human label
  repeated `labeling.training_data.human_weights` times (what `workbench retrain` does with
  rows; the kind takes no sample weights); N in `--checkpoints`;
- measured: the policy's AUC (sum of its labels' probabilities) on the surface items nobody
  reviewed (the same set as `new_surface.py`'s), mean and sd over the dumped seeds; beside it, the
  full-label reference: 3-fold cross-validation over the surface with every label known (the
  ceiling of this model kind, as `new_surface.py` reports one for the hybrid).

The kind's settings are its defaults (learning rate 5e-5, 64 tokens: what models.yaml
`kinds.transformer` sets too; the script reads no config, so it runs where only torch and
transformers are installed) with `--epochs`, `--batch-size` and `--max-steps` from the command line;
class-balanced loss and the normalised text are the settings of the shipped ensemble's
hate-reading member. They are the same for every strategy and
the reference, and none was chosen by looking at an unreviewed item. A GPU makes this minutes
(`device: auto`); on a 2-core CPU one fine-tune of ~14k texts takes most of an hour, so the
default run is one checkpoint.

Prints one JSON line (appended to benchmarks/measured.jsonl with --append).

Usage: python benchmarks/transformer_adaptation.py DUMP.json [--checkpoints 200] [--strategies loop,random]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np

from learning_data import emit, log  # offline hub settings and the project on sys.path, as every learning benchmark


def policy_auc(probs: np.ndarray, y: np.ndarray, cols: list[int]) -> float:
    """AUC of the summed probabilities of the policy's labels `cols` against y in `cols`."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.isin(y, cols), probs[:, cols].sum(axis=1)))


def human_repeats() -> int:
    """How many times a fresh human label on a new surface is repeated (the product's weight)."""
    from labeling.training_data import human_weights
    from models.config import load_models_config

    now = dt.datetime(2026, 12, 1)
    return int(round(float(human_weights([now], ["surface"], now, load_models_config().learning)[0])))


def read_dump(path: str) -> dict:
    """The decisions dump, checked: a bad file stops with one line naming the file and field."""
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable JSON dump ({exc})") from None
    need = {"variant": str, "labels": list, "pos_labels": list, "base": dict, "surface": dict, "decided": dict}
    for key, kind in need.items():
        if not isinstance(d.get(key) if isinstance(d, dict) else None, kind):
            raise SystemExit(f"{path}: field '{key}' missing or not a {kind.__name__}")
    for part, fields in (("base", ("texts", "y")), ("surface", ("texts", "y", "test_side"))):
        lengths = {f: len(d[part].get(f) or []) for f in fields}
        if len(set(lengths.values())) != 1:
            raise SystemExit(f"{path}: field '{part}' has lists of different lengths {lengths}")
        bad = [i for i, t in enumerate(d[part]["texts"]) if not isinstance(t, str)]
        if bad:
            raise SystemExit(f"{path}: field '{part}.texts' row {bad[0]} is not a string")
        ys = d[part]["y"]
        if any(not isinstance(v, int) or not 0 <= v < len(d["labels"]) for v in ys):
            raise SystemExit(f"{path}: field '{part}.y' holds a value that is not a label index")
    missing = [lab for lab in d["pos_labels"] if lab not in d["labels"]]
    if missing:
        raise SystemExit(f"{path}: field 'pos_labels' names {missing}, not in 'labels'")
    n = len(d["surface"]["texts"])
    for key, rows in d["decided"].items():
        if ":" not in key or not key.split(":")[1].isdigit():
            raise SystemExit(f"{path}: field 'decided' key {key!r} is not STRATEGY:SEED")
        if not isinstance(rows, list) or any(not isinstance(i, int) or not 0 <= i < n for i in rows):
            raise SystemExit(f"{path}: field 'decided.{key}' holds a row that is not a surface index")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", help="JSON written by new_surface.py --dump-decisions")
    ap.add_argument("--checkpoints", default="200", help="Decision counts to train at (comma-separated).")
    ap.add_argument("--strategies", default="loop,random")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=100_000)
    ap.add_argument("--base-model", default=None, help="Local model folder (default: the bundled MiniLM).")
    ap.add_argument("--repeats", type=int, default=None,
                    help="Copies of each human label (default: labeling.training_data.human_weights).")
    ap.add_argument("--no-reference", action="store_true", help="Skip the full-label reference.")
    ap.add_argument("--limit", type=int, default=None, help="Smoke test: keep only the first this many base texts.")
    ap.add_argument("--out", default=None, help="Also write the JSON line (and partial results) to this file.")
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    t0 = time.time()
    from models.transformer import TransformerClassifier

    d = read_dump(args.dump)
    labels, cols = d["labels"], [d["labels"].index(lab) for lab in d["pos_labels"]]
    base_t, base_y = d["base"]["texts"], np.array(d["base"]["y"])
    sur_t, sur_y = d["surface"]["texts"], np.array(d["surface"]["y"])
    test_side = np.array(d["surface"]["test_side"], dtype=bool)
    if args.limit:
        base_t, base_y = base_t[: args.limit], base_y[: args.limit]
    reps = human_repeats() if args.repeats is None else args.repeats
    params = dict(epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
                  class_weight="balanced", preprocess="social", calibration_fraction=0.0, seed=0)
    if args.base_model:
        params["base_model"] = args.base_model

    def fit_predict(texts: list[str], y: np.ndarray, score: list[str]) -> tuple[np.ndarray, dict]:
        clf = TransformerClassifier(labels, **params)
        clf.fit(texts, [labels[i] for i in y], show_progress=True)
        return clf.predict_proba(score), clf.fit_info

    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    strategies = [s for s in args.strategies.split(",") if s]
    keys = sorted(d["decided"], key=lambda k: (k.split(":")[0], int(k.split(":")[1])))
    results: dict = {s: {str(n): [] for n in checkpoints} for s in strategies}
    report: dict = {"benchmark": "transformer_adaptation", "variant": d["variant"], "policy": d["pos_labels"],
                    "model": {"kind": "transformer", **{k: v for k, v in params.items() if k != "base_model"},
                              "human_label_repeats": reps},
                    "base_items": len(base_t), "surface_items": len(sur_t)}

    def write(partial: bool) -> None:
        report["auc"] = {s: {n: {"per_seed": v, "mean": round(float(np.mean(v)), 4) if v else None,
                                 "sd": round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else None}
                             for n, v in r.items()} for s, r in results.items()}
        report["partial"], report["seconds"] = partial, round(time.time() - t0, 1)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(report) + "\n")

    if not args.no_reference:
        from sklearn.model_selection import StratifiedKFold

        oof = np.zeros((len(sur_t), len(labels)))
        for k, (tr, ho) in enumerate(StratifiedKFold(3, shuffle=True, random_state=1).split(sur_t, sur_y)):
            log(f"[reference] fold {k + 1}/3: {len(tr)} surface texts")
            oof[ho], _ = fit_predict([sur_t[i] for i in tr], sur_y[tr], [sur_t[i] for i in ho])
        report["full_label_reference_auc"] = round(policy_auc(oof, sur_y, cols), 4)
        log(f"[reference] {report['full_label_reference_auc']}")
        write(True)
    for key in keys:
        strategy, seed = key.split(":")
        if strategy not in strategies:
            continue
        for n in checkpoints:
            decided = d["decided"][key][:n]
            train = [i for i in decided if not test_side[i]]
            texts = list(base_t) + [sur_t[i] for i in train for _ in range(reps)]
            y = np.concatenate([base_y, np.repeat(sur_y[train], reps)])
            unseen = np.setdiff1d(np.arange(len(sur_t)), decided)
            log(f"[{strategy} seed {seed} @{n}] {len(train)} train-side decisions "
                f"({int(np.isin(sur_y[train], cols).sum())} of the policy) x{reps} + {len(base_t)} base")
            probs, info = fit_predict(texts, y, [sur_t[i] for i in unseen])
            auc = round(policy_auc(probs, sur_y[unseen], cols), 4)
            results[strategy][str(n)].append(auc)
            log(f"[{strategy} seed {seed} @{n}] AUC {auc} ({info['steps']} steps, {info['seconds_per_step']} s/step)")
            write(True)
    write(False)
    emit(report, args.append)


if __name__ == "__main__":
    main()
