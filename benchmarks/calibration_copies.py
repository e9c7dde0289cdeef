"""Calibration of a retrain with weighted human labels: folds grouped by text against folds by row.

A retrain repeats each human label by its weight (`models.training.replicate_by_weight`, up to
20 copies). The hybrid calibrates (temperature + per-label bias) and tunes its decision weights
on out-of-fold predictions of its own training rows. Folds by row (what it did before 12-06) put
most copies of a human label in the fitting rows of the fold that holds one out, so the
out-of-fold predictions are in-sample for exactly the human labels; folds grouped by text
(`models.training.grouped_folds`, as shipped) keep every copy in one fold.

Setting, per seed: the hybrid as models.yaml configures it (`kinds.hybrid`, MiniLM embeddings
from the learning benchmarks' cache) trained on 8,000 Davidson tweets (source labels, weight 1)
plus 200 SMS messages decided by humans at weight 20 (a new surface, as
`benchmarks/new_surface.py` sets it up); measured on the SMS messages nobody decided: the spam
probability (p(spam) + p(scam)) against the dataset's spam label: ECE (15 bins), log loss, and
spam F1 of the model's own decision (arg-max with its decision weights: what the gate's macro F1
and the queues read). Both fold rules get the same data, parameters and seed; nothing is chosen
here. Target: grouped folds no worse than folds by row on ECE and on F1 (ratios in the JSON).

Usage: python benchmarks/calibration_copies.py [--seeds 1,2,3] [--append]
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

from learning_data import emit, load, log, seed_list

LABELS = ["benign", "spam", "scam", "hate", "harassment"]
SPAM = [LABELS.index("spam"), LABELS.index("scam")]


def row_folds(texts: list[str], y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The rule before 12-06: stratified folds by row."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def binary_ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of probabilities `p` of the positive class against 0/1 `y`."""
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))


def fit_with(folds: Callable[..., Any], texts: list[str], ys: list[str], emb: np.ndarray, params: dict[str, Any]):
    """The hybrid fitted with `folds` as its calibration fold rule."""
    import models.training as training
    from models.kinds import make_classifier

    shipped = training.grouped_folds
    training.grouped_folds = folds
    try:
        return make_classifier("hybrid", LABELS, **params).fit(texts, ys, embeddings=emb)
    finally:
        training.grouped_folds = shipped


def one_seed(seed: int, dav, sms, params: dict[str, Any], copies: int = 20) -> dict[str, dict[str, float]]:
    from sklearn.metrics import f1_score, log_loss

    rng = np.random.default_rng(seed)
    base = rng.choice(len(dav.ids), 8000, replace=False)
    human = rng.choice(len(sms.ids), 200, replace=False)
    rest = np.setdiff1d(np.arange(len(sms.ids)), human)
    texts = [dav.texts[i] for i in base] + [sms.texts[i] for i in human for _ in range(copies)]
    ys = [dav.labels[i] for i in base] + [sms.labels[i] for i in human for _ in range(copies)]
    emb = np.vstack([dav.emb[base], np.repeat(sms.emb[human], copies, axis=0)])
    y = np.isin([LABELS.index(sms.labels[i]) for i in rest], SPAM).astype(int)
    out = {}
    for name, rule in (("row_folds", row_folds), ("grouped_folds", None)):
        from models.training import grouped_folds

        model = fit_with(rule or grouped_folds, texts, ys, emb, params)
        proba = model.predict_proba([sms.texts[i] for i in rest], embeddings=sms.emb[rest])
        p = proba[:, SPAM].sum(1)
        decided = np.isin(model.predict([sms.texts[i] for i in rest], embeddings=sms.emb[rest]),
                          ["spam", "scam"]).astype(int)
        out[name] = {"ece": round(binary_ece(p, y), 4),
                     "log_loss": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))), 4),
                     "spam_f1": round(float(f1_score(y, decided)), 4),
                     "temperature": round(float(model.temperature), 3)}
        log(f"seed {seed} {name}: {out[name]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=seed_list, default="1,2,3")
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    seeds = args.seeds
    from models.config import load_models_config

    t0 = time.time()
    params = load_models_config().kind_params("hybrid")
    dav, sms = load("davidson"), load("sms_spam")
    runs = [one_seed(s, dav, sms, params) for s in seeds]
    report: dict[str, Any] = {"benchmark": "calibration_copies", "seeds": seeds, "human_labels": 200, "copies": 20}
    for rule in ("row_folds", "grouped_folds"):
        report[rule] = {m: [round(float(np.mean([r[rule][m] for r in runs])), 4),
                            round(float(np.std([r[rule][m] for r in runs])), 4)] for m in runs[0][rule]}
    g, r = report["grouped_folds"], report["row_folds"]
    report["ratios_grouped_vs_row"] = {"ece": round(g["ece"][0] / r["ece"][0], 4),
                                       "spam_f1": round(g["spam_f1"][0] / r["spam_f1"][0], 4)}
    report["met"] = bool(g["ece"][0] <= r["ece"][0] and g["spam_f1"][0] >= r["spam_f1"][0])
    report["seconds"] = round(time.time() - t0, 1)
    emit(report, args.append)


if __name__ == "__main__":
    main()
