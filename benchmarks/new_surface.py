"""New-surface benchmark: a champion that never saw spam meets the SMS Spam Collection.

The champion is trained on Davidson tweets alone (a seeded stratified sample of `--base-n`,
default 8,000, so that the ~30 retrains per seed fit a shared 2-core machine; labels benign /
harassment / hate: no spam or scam at all). The SMS messages arrive as a new surface; a simulated
analyst answers every case with the message's true policy label. Three ways to spend 200
decisions, each retrained (logistic regression on the cached MiniLM embeddings, the Davidson
labels at weight 1 and the human labels at `labeling.training_data.human_weights` of models.yaml's
`learning` settings, balanced class weights) after every 20 decisions:

- `loop` (as built): cold-start seeds around five example spam texts (`labeling.seeding`:
  round-robin nearest neighbours, `seeding.neighbours` of queues.yaml, plus the uniform QA sample
  interleaved), then the queue: the learning share (`--share`, default 0.9 for a cold queue,
  see COLD_SHARE) of each batch picked by `labeling.learning.select_learning` (uncertainty x diversity), the rest in
  risk order (`labeling.priority.risk_scores` of the current model);
- `risk`: the same seeds and risk order, no learning share;
- `random`: 200 decisions drawn uniformly at random.

The five examples are SMS spam messages drawn per seed; they are not decisions and are left out
of the evaluation. Measured: spam AUC (p(spam) + p(scam) against the dataset's spam label) on the
SMS messages nobody reviewed, after each retrain; mean and sd over `--seeds`. Targets: the loop
reaches AUC >= 0.95 after 100 decisions and >= 0.98 after 200, above both comparisons.
Not exercised here: the promotion gate (with 100 decisions its human-labelled test side holds ~20
items, under the gate's `min_items`; benchmarks/promotion.py measures the gate): every retrain
is taken as the next champion.

`--variant new_policy`: a new policy on a known surface. The champion is trained on the SMS
messages and on the Davidson tweets with every hate label hidden (those tweets unlabelled); the
surface is the Davidson tweets, the seeds come from five example hate tweets, and the measure is
hate AUC on the tweets nobody reviewed (target >= 0.85 after 200 decisions, above both).

Prints one JSON line (appended to benchmarks/measured.jsonl with --append); the curves go to
benchmarks/results/<variant>.png.

Usage: python benchmarks/new_surface.py [--variant new_surface|new_policy] [--seeds 13,17,23] [--base-n 8000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread on a shared machine (see active_learning.py)

import numpy as np  # noqa: E402

from learning_data import RESULTS, ROOT, load, log  # noqa: E402

BUDGET = 200
STEP = 20
STRATEGIES = ("loop", "risk", "random")
# The learning share of the new surface's queue while it is cold. Chosen on seed 1 alone (not a
# reported seed), 3,000-tweet base: AUC@100 / @200 of the loop with share 0.2: 0.959 / 0.963 (seed
# 13 trial), 0.5: 0.972 / 0.975, 0.9: 0.973 / 0.983, 1.0 (20 neighbours): 0.977 / 0.985. A queue in
# steady state keeps the shipped 0.2 (configs/queues.yaml); a new surface's queue is set high.
COLD_SHARE = 0.9


class Sim:
    """The shared state of one benchmark run: data, taxonomy order, configs, the champion's base."""

    def __init__(self, base_n: int, share: float | None = None, neighbours: int | None = None,
                 uniform_share: float | None = None, variant: str = "new_surface") -> None:
        sys.path.insert(0, str(ROOT))
        from core.taxonomy import load_taxonomy
        from core.text import text_hash
        from labeling.priority import label_harm_weights
        from labeling.queue_config import load_queue_config
        from models.config import load_models_config
        from models.training import stratified_split

        self.tax = load_taxonomy()
        self.labels = list(self.tax.labels)
        self.harm = label_harm_weights(self.tax)
        self.qcfg = load_queue_config(ROOT / "configs", self.tax)
        mcfg = load_models_config()
        self.learning = mcfg.learning
        self.C = float(mcfg.kind_params("minilm_lr").get("C", 1.0))
        sms, dav = load("sms_spam"), load("davidson")
        self.variant = variant
        if variant == "new_surface":
            # Champion: Davidson alone; surface: the SMS messages; policy: spam (spam + scam).
            self.sur, self.pos_labels, base = sms, ["spam", "scam"], [(dav, None)]
        else:
            # Champion: SMS and the Davidson tweets with every hate label hidden (those tweets
            # unlabelled); surface: the Davidson tweets; policy: hate.
            self.sur, self.pos_labels, base = dav, ["hate"], [(dav, "hate"), (sms, None)]
        self.sur_y = np.array([self.labels.index(lab) for lab in self.sur.labels])
        self.sur_hash = [text_hash(t) for t in self.sur.texts]
        self.pos = np.isin(self.sur_y, [self.labels.index(lab) for lab in self.pos_labels])
        Xs, ys = [], []
        for data, hidden in base:
            keep_all = [i for i, lab in enumerate(data.labels) if lab != hidden]
            if data is dav and len(keep_all) > base_n:
                _, pick = stratified_split([data.ids[i] for i in keep_all], [data.labels[i] for i in keep_all],
                                           base_n / len(keep_all), 13)
                keep_all = [keep_all[i] for i in pick]
            Xs.append(data.emb[keep_all])
            ys.append(np.array([self.labels.index(data.labels[i]) for i in keep_all]))
        self.base_X, self.base_y = np.vstack(Xs), np.concatenate(ys)
        self.share = float(self.qcfg.learning.queues.get("general", 0.2)) if share is None else share
        upd = {k: v for k, v in (("neighbours", neighbours), ("uniform_share", uniform_share)) if v is not None}
        if upd:
            self.qcfg = self.qcfg.model_copy(update={"seeding": self.qcfg.seeding.model_copy(update=upd)})

    def fit(self, human: list[int]) -> np.ndarray:
        """Probabilities over the SMS messages (taxonomy order) of a model trained on the base plus
        the human labels of `human` (SMS indices), weighted as the product weighs them."""
        from sklearn.linear_model import LogisticRegression

        from labeling.training_data import human_weights

        now = dt.datetime(2026, 12, 1)
        w_h = human_weights([now] * len(human), ["surface"] * len(human), now, self.learning) if human else np.zeros(0)
        X = np.vstack([self.base_X, self.sur.emb[human]]) if human else self.base_X
        y = np.concatenate([self.base_y, self.sur_y[human]]) if human else self.base_y
        w = np.concatenate([np.ones(len(self.base_y)), w_h])
        clf = LogisticRegression(C=self.C, max_iter=500, class_weight="balanced")
        clf.fit(X, y, sample_weight=w)
        out = np.zeros((len(self.sur_y), len(self.labels)))
        out[:, clf.classes_] = clf.predict_proba(self.sur.emb)
        return out

    def auc(self, probs: np.ndarray, unseen: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        score = probs[:, [self.labels.index(lab) for lab in self.pos_labels]].sum(axis=1)
        return float(roc_auc_score(self.pos[unseen], score[unseen]))

    def seeds(self, examples: np.ndarray, pool: np.ndarray, seed: int) -> list[int]:
        """The cold-start order: the product's round-robin neighbours plus the uniform QA sample."""
        from labeling.sampling import uniform_draw
        from labeling.seeding import interleave_uniform, nearest_round_robin

        s = self.qcfg.seeding
        sims = self.sur.emb[pool] @ self.sur.emb[examples].T
        picks = nearest_round_robin(sims, s.neighbours, s.min_similarity, [self.sur_hash[i] for i in pool])
        chosen = {r for r, _, _ in picks}
        n_uni = int(round(s.uniform_share * len(picks)))
        rest = sorted((r for r in range(len(pool)) if r not in chosen),
                      key=lambda r: uniform_draw(self.sur.ids[pool[r]], f"{seed}:seed:{self.pos_labels[0]}"))
        order = interleave_uniform([int(pool[r]) for r, _, _ in picks], [int(pool[r]) for r in rest[:n_uni]])
        return order

    def queue_batch(self, probs: np.ndarray, remaining: np.ndarray, k: int, share: float) -> list[int]:
        """One batch of claims: `share` of it by the learning pick, the rest by risk."""
        from labeling.learning import margin_uncertainty, select_learning
        from labeling.priority import risk_scores

        n_learn = int(round(share * k))
        learn: list[int] = []
        if n_learn:
            lc = self.qcfg.learning
            pick = select_learning(margin_uncertainty(probs[remaining]), n_learn, self.sur.emb[remaining],
                                   [self.sur_hash[i] for i in remaining], lc.min_uncertainty, lc.max_similarity)
            learn = [int(remaining[j]) for j in pick]
        risk = risk_scores(probs[remaining], self.harm)
        taken = set(learn)
        by_risk = [int(remaining[j]) for j in np.argsort(-risk, kind="stable") if int(remaining[j]) not in taken]
        return learn + by_risk[: k - len(learn)]

    def run(self, strategy: str, seed: int, champion_probs: np.ndarray) -> list[tuple[int, float]]:
        rng = np.random.default_rng(seed)
        examples = rng.choice(np.flatnonzero(self.pos), size=5, replace=False)
        pool = np.setdiff1d(np.arange(len(self.sur_y)), examples)
        pending = self.seeds(examples, pool, seed) if strategy != "random" else []
        random_order = list(rng.permutation(pool)) if strategy == "random" else []
        decided: list[int] = []
        probs = champion_probs
        curve = []
        while len(decided) < BUDGET:
            need = STEP
            batch = pending[:need]
            pending = pending[need:]
            if len(batch) < need:
                if strategy == "random":
                    batch = [int(i) for i in random_order[len(decided):len(decided) + need]]
                else:
                    seen = set(decided) | set(batch)
                    remaining = np.array([i for i in pool if int(i) not in seen])
                    batch += self.queue_batch(probs, remaining, need - len(batch),
                                              self.share if strategy == "loop" else 0.0)
            decided += batch
            probs = self.fit(decided)
            unseen = np.setdiff1d(pool, np.array(decided))
            curve.append((len(decided), self.auc(probs, unseen)))
        return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="13,17,23")
    ap.add_argument("--base-n", type=int, default=8000)
    ap.add_argument("--share", type=float, default=COLD_SHARE,
                    help=f"Learning share of the new surface's queue (default {COLD_SHARE}; see the module doc).")
    ap.add_argument("--neighbours", type=int, default=None, help="Seed neighbours (default: seeding.neighbours).")
    ap.add_argument("--uniform-share", type=float, default=None, help="Default: seeding.uniform_share.")
    ap.add_argument("--variant", choices=["new_surface", "new_policy"], default="new_surface")
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t0 = time.time()
    sim = Sim(args.base_n, args.share, args.neighbours, args.uniform_share, args.variant)
    policy = "+".join(sim.pos_labels)
    log(f"[{args.variant}] champion trained on {len(sim.base_y)} items; surface {len(sim.sur_y)} "
        f"({int(sim.pos.sum())} {policy})")
    champ = sim.fit([])
    champ_auc = sim.auc(champ, np.arange(len(sim.sur_y)))
    curves: dict = {s: [] for s in STRATEGIES}
    for seed in seeds:
        for strategy in STRATEGIES:
            c = sim.run(strategy, seed, champ)
            curves[strategy].append(c)
            log(f"[{args.variant} seed {seed}] {strategy}: " + ", ".join(f"{n}:{a:.3f}" for n, a in c))
    xs = [n for n, _ in curves["loop"][0]]
    mean = {s: np.mean([[a for _, a in c] for c in curves[s]], axis=0) for s in STRATEGIES}
    sd = {s: (np.std([[a for _, a in c] for c in curves[s]], axis=0, ddof=1) if len(seeds) > 1
              else np.zeros(len(xs))) for s in STRATEGIES}

    def at(s: str, n: int) -> float:
        return float(mean[s][xs.index(n)])

    targets = {"auc_at_100": 0.95, "auc_at_200": 0.98} if args.variant == "new_surface" else {"auc_at_200": 0.85}
    met = {k: at("loop", int(k[-3:])) >= v and at("loop", int(k[-3:])) > max(at("risk", int(k[-3:])),
                                                                            at("random", int(k[-3:])))
           for k, v in targets.items()}
    report = {
        "benchmark": "new_surface", "variant": args.variant,
        "setting": ("Davidson-only champion meets the SMS surface; spam AUC (spam + scam) on unreviewed SMS"
                    if args.variant == "new_surface" else
                    "champion on SMS + Davidson with every hate label hidden meets the hate policy; hate AUC on "
                    "unreviewed Davidson tweets"),
        "seeds": seeds, "base_items": int(len(sim.base_y)), "base_davidson_sample": args.base_n,
        "model": f"LR(C={sim.C}, balanced) on MiniLM; human labels weighted by labeling.training_data.human_weights",
        "learning_share": sim.share, "seeding": sim.qcfg.seeding.model_dump(), "retrain_every": STEP,
        "gate": "not exercised (every retrain taken as champion); see benchmarks/promotion.py",
        "champion_auc": round(champ_auc, 4),
        "auc": {s: {str(n): [round(float(m), 4), round(float(e), 4)] for n, m, e in zip(xs, mean[s], sd[s])}
                for s in STRATEGIES},
        **{f"loop_over_{b}_at_{n}": round(at("loop", n) / at(b, n), 4) for b in ("risk", "random") for n in (100, 200)},
        "targets": targets, "met_each": met, "met": all(met.values()), "seconds": round(time.time() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{args.variant}.png"
    plot(xs, mean, sd, champ_auc, png, policy, args.variant, list(targets.values()))
    report["plot"] = str(png.relative_to(ROOT))
    line = json.dumps(report)
    print(line)
    if args.append:
        with open(ROOT / "benchmarks" / "measured.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def plot(xs: list[int], mean: dict, sd: dict, champ_auc: float, path, policy: str, variant: str,
         targets: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for s, colour in zip(STRATEGIES, ("tab:blue", "tab:orange", "tab:gray")):
        ax.plot(xs, mean[s], marker="o", ms=3, color=colour, label=s)
        ax.fill_between(xs, mean[s] - sd[s], mean[s] + sd[s], color=colour, alpha=0.2)
    ax.axhline(champ_auc, ls=":", color="black", lw=1, label="champion before any decision")
    for y in targets:
        ax.axhline(y, ls="--", color="tab:red", lw=0.8)
    ax.set_xlabel("human decisions")
    ax.set_ylabel(f"{policy} AUC on unreviewed items")
    ax.set_title("New surface: SMS spam, Davidson-only champion" if variant == "new_surface"
                 else "New policy: hate, champion with hate labels hidden")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
