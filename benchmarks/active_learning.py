"""Active-learning benchmark: learning-share sampling against random sampling, macro F1 per label count.

For each shared dataset (SMS Spam Collection, Davidson tweets) and each split seed (`--seeds`,
default 13,17,23), the seeded stratified 80/20 split of the registry (`models.training`) gives a
training pool and a test split. Both strategies start from the same 0.5% random labels (same seed)
and grow the labelled set to the same checkpoints (fractions of the pool), retraining after each
batch; the model kind is the same for both: logistic regression on the cached frozen MiniLM
embeddings (`benchmarks/learning_data.py`), C from models.yaml's `minilm_lr`, balanced class
weights: nothing is chosen on the test split.

- `random`: each batch uniformly at random from the unlabelled pool (the full-budget baseline);
- `learning`: each batch by `labeling.learning.select_learning`, the product's own pick: margin
  uncertainty of the current model x diversity (one per distinct text, none within cosine
  `max_similarity` of another pick, greedy uncertainty-weighted k-center), topped up by
  uncertainty alone when the diverse candidates run out.

Target: the learning share reaches random's full-budget macro F1 (mean over seeds) with at most
40% of the pool's labels. Prints one JSON line (also appended with --append to
benchmarks/measured.jsonl); the curves go to benchmarks/results/active_learning.png.

Usage: python benchmarks/active_learning.py [--seeds 13,17,23] [--datasets sms_spam davidson]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# One BLAS thread: on a shared 2-core machine a multi-threaded solver spins against other jobs
# (a 5k-row fit took 52 s with the default threads, 6 s with one).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from learning_data import RESULTS, ROOT, emit, load, log

CHECKPOINTS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6, 0.8, 1.0)
LEARNING_UP_TO = 0.6  # the learning curve stops here (the target is judged at 40%)


def fit_predict(X_tr: np.ndarray, y_tr: np.ndarray, X: np.ndarray, n_labels: int, C: float) -> np.ndarray:
    """(len(X), n_labels) probabilities of a balanced logistic regression on the labelled rows."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(X), n_labels))
    present = np.unique(y_tr)
    if present.size == 1:
        out[:, present[0]] = 1.0
        return out
    clf = LogisticRegression(C=C, max_iter=1000, class_weight="balanced")
    clf.fit(X_tr, y_tr)
    out[:, clf.classes_] = clf.predict_proba(X)
    return out


def macro_f1(y: np.ndarray, probs: np.ndarray, n_labels: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, probs.argmax(axis=1), labels=list(range(n_labels)), average="macro", zero_division=0))


def learning_batch(probs_pool: np.ndarray, emb: np.ndarray, groups: list[str], k: int,
                   max_similarity: float) -> list[int]:
    """The product's learning pick over the unlabelled pool, topped up by uncertainty alone."""
    from labeling.learning import margin_uncertainty, select_learning

    unc = margin_uncertainty(probs_pool)
    pick = select_learning(unc, k, emb, groups, min_uncertainty=0.0, max_similarity=max_similarity)
    if len(pick) < k:
        taken = set(pick)
        rest = [int(i) for i in np.argsort(-unc, kind="stable") if int(i) not in taken]
        pick += rest[: k - len(pick)]
    return pick


def run_curve(strategy: str, X: np.ndarray, y: np.ndarray, hashes: list[str], tr: np.ndarray, te: np.ndarray,
              n_labels: int, C: float, seed: int, max_similarity: float) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    n_pool = len(tr)
    counts = sorted({max(2, int(round(f * n_pool))) for f in CHECKPOINTS
                     if strategy == "random" or f <= LEARNING_UP_TO})
    labelled = list(rng.choice(tr, size=counts[0], replace=False))  # same start for both strategies
    curve = []
    for target in counts:
        need = target - len(labelled)
        if need > 0:
            rest = np.setdiff1d(tr, np.array(labelled), assume_unique=False)
            if strategy == "random":
                labelled += list(rng.choice(rest, size=need, replace=False))
            else:
                probs = fit_predict(X[labelled], y[labelled], X[rest], n_labels, C)
                pick = learning_batch(probs, X[rest], [hashes[i] for i in rest], need, max_similarity)
                labelled += [int(rest[i]) for i in pick]
        probs_te = fit_predict(X[labelled], y[labelled], X[te], n_labels, C)
        curve.append((len(labelled), macro_f1(y[te], probs_te, n_labels)))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["sms_spam", "davidson"])
    ap.add_argument("--seeds", default="13,17,23")
    ap.add_argument("--max-similarity", type=float, default=0.9)
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    sys.path.insert(0, str(ROOT))
    from core.text import text_hash
    from models.config import load_models_config
    from models.training import stratified_split

    C = float(load_models_config().kind_params("minilm_lr").get("C", 1.0))
    report: dict = {"benchmark": "active_learning", "seeds": seeds, "model": f"LR(C={C}, balanced) on MiniLM",
                    "checkpoints": list(CHECKPOINTS), "max_similarity": args.max_similarity,
                    "target": "learning reaches random's full-budget macro F1 with <= 40% of the labels", "datasets": {}}
    t0 = time.time()
    curves: dict = {}
    for name in args.datasets:
        d = load(name)
        labels = sorted(set(d.labels))
        col = {lab: j for j, lab in enumerate(labels)}
        y = np.array([col[lab] for lab in d.labels])
        hashes = [text_hash(t) for t in d.texts]
        per: dict = {"random": [], "learning": []}
        for seed in seeds:
            tr, te = stratified_split(d.ids, d.labels, 0.2, seed)
            for strategy in ("random", "learning"):
                c = run_curve(strategy, d.emb, y, hashes, tr, te, len(labels), C, seed, args.max_similarity)
                per[strategy].append(c)
                log(f"[{name} seed {seed}] {strategy}: " + ", ".join(f"{n}:{f:.3f}" for n, f in c))
        pool = len(tr)
        mean = {s: np.mean([[f for _, f in c] for c in per[s]], axis=0) for s in per}
        sd = {s: np.std([[f for _, f in c] for c in per[s]], axis=0, ddof=1) if len(seeds) > 1 else
              np.zeros(len(per[s][0])) for s in per}
        n_at = {s: [n for n, _ in per[s][0]] for s in per}
        full = float(mean["random"][-1])
        reach = next((n for n, f in zip(n_at["learning"], mean["learning"]) if f >= full), None)
        share = None if reach is None else reach / pool
        curves[name] = (n_at, mean, sd, full, pool)
        at40 = {s: float(mean[s][n_at[s].index(min(n_at[s], key=lambda n: abs(n - 0.4 * pool)))]) for s in per}
        report["datasets"][name] = {
            "pool": pool, "labels": labels, "random_full_budget_f1": round(full, 4),
            "random_full_budget_f1_sd": round(float(sd["random"][-1]), 4),
            "learning_labels_to_reach_full": reach, "learning_share_of_labels_to_reach_full": None if share is None
            else round(share, 4),
            "f1_at_40pct": {s: round(v, 4) for s, v in at40.items()},
            "ratio_learning_over_random_at_40pct": round(at40["learning"] / at40["random"], 4),
            "curve_mean": {s: [[n, round(float(f), 4), round(float(e), 4)] for n, f, e in zip(n_at[s], mean[s], sd[s])]
                           for s in per},
            "met": share is not None and share <= 0.4}
    report["met"] = all(v["met"] for v in report["datasets"].values())
    report["seconds"] = round(time.time() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / "active_learning.png"
    plot(curves, png)
    report["plot"] = str(png.relative_to(ROOT))
    emit(report, args.append)


def plot(curves: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
    for ax, (name, (n_at, mean, sd, full, pool)) in zip(axes[0], curves.items()):
        for s, colour in (("random", "tab:gray"), ("learning", "tab:blue")):
            x = np.array(n_at[s]) / pool * 100
            ax.plot(x, mean[s], marker="o", ms=3, color=colour, label=f"{s} (mean of seeds)")
            ax.fill_between(x, mean[s] - sd[s], mean[s] + sd[s], color=colour, alpha=0.2)
        ax.axhline(full, ls="--", color="tab:gray", lw=1, label="random, full budget")
        ax.axvline(40, ls=":", color="tab:red", lw=1, label="40% of the labels")
        ax.set_xscale("log")
        ax.set_xlabel(f"labels, % of the pool ({pool})")
        ax.set_ylabel("macro F1 on the test split")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
