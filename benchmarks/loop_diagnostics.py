"""Where the loop gains and loses against random decisions (new_surface's setting, diagnostics).

`new_surface.py` found random decisions ahead of the loop at 200 on SMS. This script asks why,
on seeds of your choosing (use seeds that are not new_surface's reported 13, 17, 23 when a
choice is to be made), by swapping one part of the loop at a time, everything else as
`new_surface.Sim` runs it (same base, features, head, weights, gate):

- `loop`: as built (seed rounds from five examples, then the learning share 0.9 + risk);
- `explore<P>`: P% of each batch's learning slots drawn uniformly (seeded) instead of by the
  learning pick: does the pick beat random *after* the cold start?
- `density<B>`: the learning pick's uncertainty times (cosine to the remaining pool's mean)^B,
  the information-density correction of uncertainty sampling (Settles & Craven, 2008), against
  the k-center term's taste for outliers;
- `shadow`: the learning pick's uncertainty from the latest challenger (retrained every 20
  decisions, promoted or not) instead of the model in production, which the gate may keep for
  a long time: does a fresher model's uncertainty pick better items?
- `policy`: the learning pick's uncertainty as the binary uncertainty of the policy being
  learnt (1 - |2 p(policy) - 1|) once the model scores it, instead of the margin over every
  label (on Davidson mostly the known benign / offensive boundary);
- `crossfit` / `crossfitrandom`: the loop / random decisions through a gate on the `pooled` set
  (`promotion.sets: [pooled, qa_audit]`, `Sim.cross_fit`: the test split plus the train-side
  decisions made since the champion was trained, scored by the challenger out of fold) whatever
  models.yaml says: how much of the loop's lag in production behind its own challengers is the
  gate's lack of evidence on a young surface? (`--gate-sets` sets the gate of every mode.)
- `mix<P>`: queues.yaml `learning.among_seeds` set to P%: that share of each batch while seeds
  wait goes to the learning pick (over a champion still blind to the policy: mostly diversity)
  instead of seeds, so that the first challengers see the surface as it is, not only its
  positives (`loop` runs the shipped value);
- `adapt<P>`: `learning.among_seeds` adapted to how the seeds are paying off: P% times the share
  of the decisions so far that are positives of the policy (`among_seeds` before the first
  decision), so a surface whose seeds are mostly positives (SMS spam) gives more of its claims to
  the learning pick and a rarer policy (hate) keeps serving seeds;
- `random`: new_surface's 200 random decisions, for reference.

Prints one JSON line: per mode, production and challenger AUC @100 / @200 (mean, sd over seeds,
and per seed). Usage:
    python benchmarks/loop_diagnostics.py --variant new_surface --modes loop,explore100,density1 --seeds 1,2,3,4,5,6
"""
from __future__ import annotations

import argparse
import os
import re
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from learning_data import emit, log  # noqa: E402
from new_surface import COLD_SHARE, Sim  # noqa: E402

MODE = re.compile(r"^(loop|shadow|policy|crossfit|crossfitrandom|mix[0-9]{1,2}|adapt[0-9]{1,2}|random|"
                  r"explore(100|[1-9]?[0-9])|density([0-9]+(\.[0-9]+)?))$")


class Diagnostic(Sim):
    """`new_surface.Sim` with one part of the loop's learning pick swapped (`mode`)."""

    mode = "loop"
    seed = 0

    fixed_mix: float | None = None  # `mix<P>`
    so_far: list[int] = []  # the decisions up to the last gate step (`adapt<P>`)

    @property
    def cold_mix(self) -> float | None:  # type: ignore[override]
        """`Sim.run`'s learning share among waiting seeds: `mix<P>` fixed, `adapt<P>` from the
        positives decided so far, else None (queues.yaml)."""
        if self.mode.startswith("adapt") and self.so_far:
            return int(self.mode[5:]) / 100 * float(np.mean(self.pos[np.array(self.so_far)]))
        return self.fixed_mix

    @cold_mix.setter
    def cold_mix(self, value: float | None) -> None:
        self.fixed_mix = value

    def run(self, strategy: str, seed: int, champion: np.ndarray) -> list[dict]:
        self.so_far = []
        return super().run(strategy, seed, champion)

    def gate_step(self, decided: list[int], uniform: set[int], champ: np.ndarray, chall: np.ndarray) -> dict:
        self.so_far = list(decided)
        return super().gate_step(decided, uniform, champ, chall)

    def learning_pick(self, probs: np.ndarray, remaining: np.ndarray, n: int) -> list[int]:
        if self.mode in ("loop", "shadow", "crossfit") or self.mode.startswith(("mix", "adapt")):
            return super().learning_pick(probs, remaining, n)
        from labeling.learning import margin_uncertainty, select_learning
        from labeling.sampling import uniform_draw

        n_uni = int(round(n * int(self.mode[7:]) / 100)) if self.mode.startswith("explore") else 0
        unc = margin_uncertainty(probs[remaining])
        if self.mode == "policy":
            # Binary uncertainty of the policy being learnt (p(policy) near 1/2), where the model
            # scores the policy at all; the margin over every label before it does.
            idx = [self.labels.index(lab) for lab in self.pos_labels]
            p = probs[remaining][:, idx].sum(axis=1)
            pol = 1.0 - np.abs(2.0 * p - 1.0)
            if (pol >= self.qcfg.learning.min_uncertainty).any():
                unc = pol
        if self.mode.startswith("density"):
            E = self.sur.emb[remaining]
            mu = E.mean(axis=0)
            unc = unc * np.clip(E @ (mu / np.linalg.norm(mu)), 0.0, 1.0) ** float(self.mode[7:])
        lc = self.qcfg.learning
        learn = [int(remaining[j]) for j in select_learning(
            unc, n - n_uni, self.sur.emb[remaining], [self.sur_hash[i] for i in remaining],
            lc.min_uncertainty, lc.max_similarity)] if n > n_uni else []
        taken = set(learn)
        draw = sorted((int(i) for i in remaining if int(i) not in taken),
                      key=lambda i: uniform_draw(self.sur.ids[i], f"{self.seed}:explore"))
        return learn + draw[:n_uni]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=["new_surface", "new_policy", "tweets_surface"], default="new_surface",
                    help="tweets_surface: an SMS-only champion meets the Davidson tweets as a new surface (hate): "
                         "data no reported run measures, for choices about new surfaces.")
    ap.add_argument("--modes", default="loop,explore100,density1,random")
    ap.add_argument("--seeds", default="1,2,3,4,5,6")
    ap.add_argument("--base-n", type=int, default=8000)
    ap.add_argument("--neighbours", type=int, default=None,
                    help="Seed neighbours per cold-start round (default: seeding.neighbours in queues.yaml).")
    ap.add_argument("--gate-sets", default=None,
                    help="The gate's evaluation sets, comma-separated (default: models.yaml promotion.sets).")
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if not MODE.match(m)]
    if bad:
        ap.error(f"--modes: {', '.join(bad)} (loop, shadow, policy, crossfit, crossfitrandom, mix<0-99>, "
                 "adapt<0-99>, random, explore<0-100>, density<B>)")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
    t0 = time.time()
    if args.neighbours is not None and args.neighbours <= 0:
        ap.error("--neighbours must be a positive integer")
    sim = Diagnostic(args.base_n, COLD_SHARE, neighbours=args.neighbours, variant=args.variant,
                     gate_metric="auc:hate" if args.variant in ("new_policy", "tweets_surface") else None,
                     gate_sets=args.gate_sets.split(",") if args.gate_sets else None)
    gates = {False: sim.pcfg, True: type(sim.pcfg).model_validate({**sim.pcfg.model_dump(),
                                                                   "sets": ["pooled", "qa_audit"]})}
    champ = sim.fit([])
    out: dict = {}
    for mode in modes:
        per: dict = {"auc_100": [], "auc_200": [], "challenger_200": []}
        for seed in seeds:
            sim.mode, sim.seed = ("loop" if mode == "random" else mode), seed
            sim.pcfg = gates[mode.startswith("crossfit")]
            sim.learn_from = "challenger" if mode == "shadow" else "champion"
            sim.cold_mix = int(mode[3:]) / 100 if mode.startswith("mix") else None
            strategy = "random" if mode in ("random", "crossfitrandom") else "loop"
            curve = {p["n"]: p for p in sim.run(strategy, seed, champ)}
            per["auc_100"].append(round(curve[100]["auc"], 4))
            per["auc_200"].append(round(curve[200]["auc"], 4))
            per["challenger_200"].append(round(curve[200]["challenger_auc"], 4))
            log(f"[{args.variant} {mode} seed {seed}] @100 {per['auc_100'][-1]} @200 {per['auc_200'][-1]} "
                f"(challenger {per['challenger_200'][-1]})")
        out[mode] = {k: {"mean": round(float(np.mean(v)), 4),
                         "sd": round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else 0.0, "per_seed": v}
                     for k, v in per.items()}
    emit({"benchmark": "loop_diagnostics", "variant": args.variant, "seeds": seeds,
          "seeding_neighbours": sim.qcfg.seeding.neighbours, "modes": out, "gate_sets": gates[False].sets,
          "loop_among_seeds": sim.qcfg.learning.seed_mix(sim.share, new_surface=sim.new_surface),
          "note": "production (after the gate) and challenger AUC on unreviewed items; diagnostics, no target",
          "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d")}, args.append)


if __name__ == "__main__":
    main()
