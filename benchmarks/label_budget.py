"""Label-budget reference: what could 100 or 200 decisions give at best, chosen knowing the answers?

`new_surface.py` measures the loop against fixed targets (spam AUC >= 0.98 after 200 decisions on
the new surface, hate AUC >= 0.85 after 200 on the new policy). This script says where such a
target sits for the model the loop trains: it replaces the loop's choice of items by an oracle's.
For each budget B (100, 200), each share q of policy positives among the labels, and each seed,
B surface items are drawn knowing the true labels: round(q x B) positives of the policy and the
rest among the other items, both uniformly at random. The model is the loop's challenger exactly
(`new_surface.Sim`: the same base, features, head chosen by training-side CV, C, and human-label
weights), trained on the base plus

- `gate_split`: the labels on the train side of the product's salted text-hash split (the loop's
  challenger never trains on the gate's held-out 35%), or
- `all_labels`: every one of the B labels (no gate at all),

and measured as `new_surface.py` measures: AUC of the policy on the surface items not drawn. The
best share is read off the unreviewed items, so the best figure is an upper reference, not a
method: no loop can choose its items knowing their labels.

Prints one JSON line (`--append`: also to benchmarks/measured.jsonl); the plot goes to
benchmarks/results/label_budget_<variant>.png.

Usage: python benchmarks/label_budget.py [--variant new_surface|new_policy] [--seeds 13,17,23]
"""
from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from learning_data import RESULTS, ROOT, emit, log, seed_list  # noqa: E402
from new_surface import Sim  # noqa: E402

BUDGETS = (100, 200)
SHARES = (0.1, 0.25, 0.5, 0.75)
TARGETS = {"new_surface": {"100": 0.95, "200": 0.98}, "new_policy": {"200": 0.85}}


def oracle_draw(pos: np.ndarray, budget: int, share: float, seed: int) -> np.ndarray:
    """`budget` surface indices: round(share x budget) of the positives `pos` (boolean per item)
    and the rest of the other items, each uniformly at random with `seed`."""
    rng = np.random.default_rng(seed)
    k = int(round(share * budget))
    return np.concatenate([rng.choice(np.flatnonzero(pos), k, replace=False),
                           rng.choice(np.flatnonzero(~pos), budget - k, replace=False)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=["new_surface", "new_policy"], default="new_policy")
    ap.add_argument("--seeds", type=seed_list, default=[13, 17, 23], help="Comma-separated (default 13,17,23).")
    ap.add_argument("--base-n", type=int, default=8000)
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    seeds = args.seeds
    t0 = time.time()
    sim = Sim(args.base_n, variant=args.variant)
    n_sur = len(sim.sur_y)
    res: dict = {}
    for budget in BUDGETS:
        for q in SHARES:
            got: dict[str, list[float]] = {"gate_split": [], "all_labels": []}
            for seed in seeds:
                drawn = oracle_draw(sim.pos, budget, q, seed)
                unseen = np.setdiff1d(np.arange(n_sur), drawn)
                train = [int(i) for i in drawn if not sim.side_test[i]]
                got["gate_split"].append(sim.auc(sim.fit(train), unseen))
                got["all_labels"].append(sim.auc(sim.fit([int(i) for i in drawn]), unseen))
            res[(budget, q)] = got
            log(f"[{args.variant}] B={budget} positives {q:.0%}: gate split "
                f"{np.mean(got['gate_split']):.4f}, all labels {np.mean(got['all_labels']):.4f}")

    def ms(v: list[float]) -> list[float]:
        return [round(float(np.mean(v)), 4), round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 4)]

    auc = {how: {str(b): {f"{q:g}": ms(res[(b, q)][how]) for q in SHARES} for b in BUDGETS}
           for how in ("gate_split", "all_labels")}
    best = {how: {str(b): max(auc[how][str(b)].values(), key=lambda m: m[0]) for b in BUDGETS} for how in auc}
    targets = TARGETS[args.variant]
    report = {
        "benchmark": "label_budget", "variant": args.variant, "seeds": seeds,
        "policy": "+".join(sim.pos_labels), "surface_items": n_sur, "surface_positives": int(sim.pos.sum()),
        "model": f"new_surface.Sim's challenger: LR(C={sim.C}, {sim.head} head) on {sim.features_name()}, "
                 "human-label weights",
        "draw": "budget items knowing the labels: share x budget policy positives + the rest among the others",
        "auc": auc, "best_over_shares": best,
        "targets_of_new_surface": targets,
        "best_reaches_target": {how: {b: best[how][b][0] >= t for b, t in targets.items()} for how in best},
        "full_label_reference_auc": round(sim.full_label_reference(), 4),
        "note": "an upper reference (labels chosen knowing the answers; best share read off unreviewed items)",
        "seconds": round(time.time() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"label_budget_{args.variant}.png"
    plot(auc, targets, report["full_label_reference_auc"], report["policy"], png)
    report["plot"] = str(png.relative_to(ROOT))
    emit(report, args.append)


def plot(auc: dict, targets: dict, full: float, policy: str, path) -> None:
    """AUC against the share of positives among the drawn labels, per budget and training side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [100 * q for q in SHARES]
    for b, colour in zip(BUDGETS, ("tab:orange", "tab:blue")):
        for how, ls in (("gate_split", "-"), ("all_labels", "--")):
            m = np.array([auc[how][str(b)][f"{q:g}"][0] for q in SHARES])
            e = np.array([auc[how][str(b)][f"{q:g}"][1] for q in SHARES])
            ax.errorbar(xs, m, yerr=e, ls=ls, marker="o", ms=3, capsize=2, color=colour,
                        label=f"{b} labels, {'train side of the gate split' if how == 'gate_split' else 'all of them'}")
    for b, t in targets.items():
        ax.axhline(t, ls=":", color="tab:red", lw=1, label=f"target after {b} decisions")
    ax.axhline(full, ls="-.", color="black", lw=0.8, label="every surface label (3-fold CV)")
    ax.set_xlabel(f"share of {policy} positives among the labels, chosen knowing the answers (%)")
    ax.set_ylabel(f"{policy} AUC on the items not drawn")
    ax.set_title("Label-budget reference: labels chosen by an oracle")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
