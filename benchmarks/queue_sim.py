"""Queue simulation: does the project's priority cut harm versus FIFO and raw-score sorting?

The SMS + Davidson items (policy labels mapped through the taxonomy) arrive as a seeded stream
over a simulated week with a daily peak; a constant team of analysts, whose capacity is below
the arrival rate at the peaks, decides with the true labels. Model scores come from a real cheap
model (TF-IDF + logistic regression, seeded) fitted on a held-out part of the data.

Three strategies replay the same stream in the same run:
- fifo: oldest first;
- raw_score: highest model probability of any violating policy (1 - p(benign)) first;
- priority: the product's queue. Each arrival becomes a case through `labeling.routing.plan_case`
  (routing, escalation criteria, severity, due time, priority at creation); every
  `--sweep-minutes` the waiting cases are re-scored with `labeling.priority` and SLA-lapsing
  ones escalated with `sla_lapsing`, exactly as `workbench cases sweep` does; the escalation
  queue is served first, then by priority (ties oldest first).

What counts as a true P0 item decides the P0 figures, so two variants are reported:
- `independent_p0`: true P0 owes nothing to the escalation patterns our priority strategy uses:
  each item whose true label is in the most severe labelled tier (P1: hate, scam) is P0 with
  probability `--p0-share` (default 0.05), by a seeded draw of its own; every other violating
  item keeps its true label's tier. The three strategies are as above.
- `shared_escalation`: true P0 = a violating item whose true label and text meet an escalation
  criterion's policies and patterns (the taxonomy's own definition), and every strategy gets the
  same escalation rule: cases that `plan_case` sends to the escalation queue at creation are
  served first under FIFO and raw-score sorting too (then oldest first / highest score first).

Figures per strategy (`evaluation.ops` functions): severity-weighted harm exposure (hours each
violating item waited before action x its tier weight), SLA compliance per true tier, median
minutes to action for the top tier. Targets: harm <= 0.3x FIFO and below raw-score sorting, and
P0 SLA compliance >= 95%, judged per variant. One JSON line on stdout; progress on stderr; a PNG
of the backlog and harm (independent_p0 variant, first seed) in benchmarks/results/.

Three seeds by default (stream split, model, arrival times); the targets are judged on the pooled
runs and each seed's figures are printed too.

Usage: python benchmarks/queue_sim.py [--seeds 7,11,13] [--days 7] [--capacity 1.1] [--peak 0.8] [--p0-share 0.05]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

T0 = dt.datetime(2026, 11, 23, 0, 0, 0)  # a Monday


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_stream(taxonomy, seed: int, train_share: float):
    """(train frame, stream frame) of both shared datasets, split stratified by policy label."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from core.sources import load_labelled

    frames = [load_labelled(name, taxonomy=taxonomy) for name in ("sms_spam", "davidson")]
    df = pd.concat(frames, ignore_index=True)
    df = df[df["policy_label"].isin(taxonomy.labels)].reset_index(drop=True)
    train, stream = train_test_split(df, train_size=train_share, random_state=seed, stratify=df["policy_label"])
    return train.reset_index(drop=True), stream.reset_index(drop=True)


def fit_scores(train, stream, labels: list[str], seed: int) -> np.ndarray:
    """Class probabilities (taxonomy label order) of a seeded TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
                          LogisticRegression(max_iter=2000, C=5.0, random_state=seed))
    model.fit(train["text"], train["policy_label"])
    proba = model.predict_proba(stream["text"])
    order = [list(model.classes_).index(lbl) for lbl in labels]
    return proba[:, order]


def arrival_minutes(n: int, days: int, peak: float, rng: np.random.Generator) -> np.ndarray:
    """n sorted arrival times (minutes) from a daily intensity 1 + peak*sin, peaking at 20:00."""
    horizon = days * 1440
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        t = rng.uniform(0, horizon, size=2 * n)
        phase = 2 * math.pi * ((t % 1440) / 1440 - 14 / 24)  # crest at 20:00, trough at 08:00
        keep = t[rng.uniform(0, 1 + peak, size=t.size) < 1 + peak * np.sin(phase)]
        out.append(keep)
        got += keep.size
    return np.sort(np.concatenate(out)[:n])


def pattern_tiers(taxonomy, texts, labels) -> list[str | None]:
    """Severity tier of each item's true label; P0 when it meets an escalation criterion's text test."""
    tiers = []
    for text, lab in zip(texts, labels):
        tier = taxonomy.severity_of(lab)
        for crit in taxonomy.escalation:
            if tier and lab in crit.policies and crit.patterns and any(r.search(text) for r in crit.regexes):
                tier = crit.severity
                break
        tiers.append(tier)
    return tiers


def independent_tiers(taxonomy, labels, top: str, share: float, seed: int) -> list[str | None]:
    """Severity tier of each item's true label; an item in the most severe tier any label has is
    P0 (`top`) with probability `share`, by a seeded draw that reads neither text nor model."""
    tiers = [taxonomy.severity_of(lab) for lab in labels]
    worst = min((t for t in set(tiers) if t), key=taxonomy.sla_minutes)
    draw = np.random.default_rng([seed, 0x50]).uniform(size=len(tiers))
    return [top if t == worst and u < share else t for t, u in zip(tiers, draw)]


def simulate(order_key, arrivals: np.ndarray, capacity_per_min: float, max_minutes: int,
             refresh=None, refresh_every: int = 5, weights=None) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Minute-by-minute service: action minute per item (NaN if never) and hourly samples of the
    severity weight of what is still waiting (the rate at which harm accrues).

    `order_key(idx, now)` gives, for waiting items `idx`, keys where larger is served first;
    `refresh(idx, now)` (optional) is the periodic sweep.
    """
    n = arrivals.size
    acted = np.full(n, np.nan)
    waiting = np.zeros(n, dtype=bool)
    nxt = 0
    credit = 0.0
    backlog = []
    for now in range(max_minutes):
        while nxt < n and arrivals[nxt] <= now:
            waiting[nxt] = True
            nxt += 1
        if refresh is not None and now % refresh_every == 0:
            refresh(np.flatnonzero(waiting), now)
        credit += capacity_per_min
        k = int(credit)
        if k:
            credit -= k
            idx = np.flatnonzero(waiting)
            if idx.size:
                keys = order_key(idx, now)
                pick = idx[np.argsort(-keys, kind="stable")[:k]] if idx.size > k else idx
                acted[pick] = now
                waiting[pick] = False
        if now % 60 == 0:
            backlog.append((now, float(weights[waiting].sum()) if weights is not None else float(waiting.sum())))
        if nxt >= n and not waiting.any():
            break
    return acted, backlog


def summarise(name, acted, arrivals, tiers, taxonomy, end_minute):
    from evaluation.ops import harm_exposure, sla_compliance

    violating = np.array([t is not None for t in tiers])
    weights = np.array([taxonomy.severities[t].weight if t else 0.0 for t in tiers])
    done = np.where(np.isnan(acted), end_minute, acted)
    wait_h = (done - arrivals) / 60.0
    harm = harm_exposure(wait_h[violating], weights[violating])
    sla_min = np.array([taxonomy.sla_minutes(t) if t else np.nan for t in tiers])
    sla = sla_compliance(tiers, (arrivals + sla_min) * 60, acted * 60, end_minute * 60)
    top = min((t for t in set(tiers) if t), key=lambda t: taxonomy.sla_minutes(t))
    m_top = np.array([t == top for t in tiers])
    return {
        "harm_exposure": round(harm, 1),
        "sla": {t: (round(v["rate"], 4) if v["rate"] is not None else None) for t, v in sla.items()},
        "sla_counts": {t: {"met": v["met"], "missed": v["missed"]} for t, v in sla.items()},
        f"median_minutes_to_action_{top}": float(np.median(done[m_top] - arrivals[m_top])),
        "median_minutes_to_action_violating": float(np.median(done[violating] - arrivals[violating])),
        "never_actioned": int(np.isnan(acted).sum()),
    }


def plot(backlogs: dict, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2.3, 1]})
    for name, samples in backlogs.items():
        t, b = zip(*samples)
        a1.plot(np.array(t) / 1440, b, label=name)
    a1.set_xlabel("day"), a1.set_ylabel("severity weight of waiting violating items")
    a1.set_title("Harm accruing per hour over the simulated week")
    a1.legend()
    names = list(results)
    a2.bar(names, [results[n]["harm_exposure"] for n in names], color=["#999", "#c77", "#47a"])
    a2.set_title("Harm exposure (weight x hours)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_seed(tax, cfg, R, P, seed: int, args) -> dict:
    """One seeded replay of the stream under the strategies (`R`: labeling.routing, `P`: labeling.priority),
    summarised under both definitions of true P0."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    train, stream = load_stream(tax, seed, args.train_share)
    stream = stream.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # arrival order
    log(f"[seed {seed}] fitting TF-IDF + logistic regression on {len(train):,} held-out items ...")
    probs = fit_scores(train, stream, tax.labels, seed)
    n = len(stream)
    arrivals = arrival_minutes(n, args.days, args.peak, rng)
    variants = {"independent_p0": independent_tiers(tax, stream["policy_label"], TOP, args.p0_share, seed),
                "shared_escalation": pattern_tiers(tax, stream["text"], stream["policy_label"])}
    mean_rate = n / (args.days * 1440)
    analysts = math.ceil(args.capacity * mean_rate * args.minutes_per_decision)
    capacity = analysts / args.minutes_per_decision
    peak_rate = mean_rate * (1 + args.peak)
    log(f"[seed {seed}] {n:,} items over {args.days} days: mean {mean_rate * 60:.0f}/h, peak {peak_rate * 60:.0f}/h; "
        f"{analysts} analysts decide {capacity * 60:.0f}/h")

    # The product's case planning for every arrival (routing, escalation, severity, due, priority).
    labels = tax.labels
    risk, unc, tw, due, sla_len, priority = (np.zeros(n) for _ in range(6))
    eligible = np.zeros(n, dtype=bool)
    escalated = np.zeros(n, dtype=bool)
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin_unc = 1.0 - (top2[:, 1] - top2[:, 0])
    for i in tqdm(range(n), desc=f"planning cases (seed {seed})", unit="case", mininterval=1, file=sys.stderr):
        scores = {lbl: float(probs[i, j]) for j, lbl in enumerate(labels)}
        label = labels[int(np.argmax(probs[i]))]
        cand = R.Candidate(item_id=str(stream["id"][i]), text=str(stream["text"][i]), label=label,
                           score=scores[label], scores=scores, uncertainty=float(margin_unc[i]))
        row = R.plan_case(tax, cfg, cand, T0 + dt.timedelta(minutes=float(arrivals[i])))
        f = row["meta"]["features"]
        risk[i], unc[i] = f["risk"], f["uncertainty"]
        tw[i] = P.tier_weight(tax, row["severity"])
        sla_len[i] = tax.sla_minutes(row["severity"])
        due[i] = arrivals[i] + sla_len[i]
        eligible[i] = row["severity"] in cfg.sla_escalation.tiers
        escalated[i] = row["queue"] == cfg.escalation_queue
        priority[i] = row["priority"]

    def sweep(idx: np.ndarray, now: int) -> None:
        if not idx.size:
            return
        used = P.sla_used(arrivals[idx], due[idx], now)
        priority[idx] = P.priority_scores(cfg.priority, risk=risk[idx], uncertainty=unc[idx], urgency=used,
                                          tier_weight=tw[idx])
        escalated[idx] |= P.sla_lapsing(due[idx] - now, sla_len[idx], eligible[idx],
                                        cfg.sla_escalation.remaining_fraction)

    tie = -arrivals * 1e-9  # oldest first among equals, like the claim index's id order
    raw = 1.0 - probs[:, labels.index(tax.benign_label)]
    at_creation = escalated.copy()  # the escalation rule, before the sweeps add SLA-lapsing cases
    strategies = {
        "fifo": (lambda idx, now: -arrivals[idx], None),
        "raw_score": (lambda idx, now: raw[idx] + tie[idx], None),
        "priority": (lambda idx, now: escalated[idx] * 10.0 + priority[idx] + tie[idx], sweep),
        # the same escalation rule for the two plain strategies (shared_escalation variant)
        "fifo_escalation": (lambda idx, now: at_creation[idx] * 1e6 - arrivals[idx], None),
        "raw_score_escalation": (lambda idx, now: at_creation[idx] * 10.0 + raw[idx] + tie[idx], None),
    }
    plan = {"independent_p0": {"fifo": "fifo", "raw_score": "raw_score", "priority": "priority"},
            "shared_escalation": {"fifo": "fifo_escalation", "raw_score": "raw_score_escalation",
                                  "priority": "priority"}}
    max_minutes = args.days * 1440 * 2
    acted_by, backlogs = {}, {}
    harm_w = np.array([tax.severities[t].weight if t else 0.0 for t in variants["independent_p0"]])
    for name, (key, refresh) in strategies.items():
        t0 = time.perf_counter()
        acted_by[name], backlogs[name] = simulate(key, arrivals, capacity, max_minutes, refresh, args.sweep_minutes,
                                                  harm_w)
        log(f"[seed {seed}] {name:>20}: simulated ({time.perf_counter() - t0:.1f}s)")
    results: dict = {}
    for variant, names in plan.items():
        tiers = variants[variant]
        is_p0 = np.array([t == TOP for t in tiers])
        results[variant] = {}
        for name, sim in names.items():
            acted = acted_by[sim]
            end = float(np.nanmax(acted)) if np.isfinite(acted).any() else max_minutes
            res = results[variant][name] = summarise(name, acted, arrivals, tiers, tax, max(end, arrivals.max()))
            if name == "priority":
                late = is_p0 & ((acted - arrivals) > tax.sla_minutes(TOP))
                res[f"{TOP}_late_not_escalated_by_model"] = int((late & ~escalated).sum())
            log(f"[seed {seed}] {variant} {name:>10}: harm {res['harm_exposure']:>12,.1f}  SLA {res['sla']}")
    return {"results": results, "backlogs": {k: backlogs[k] for k in plan["independent_p0"].values()},
            "items": n, "train_items": len(train),
            "true_tier_counts": {v: {t: int(sum(1 for x in tiers if x == t)) for t in sorted({x for x in tiers if x})}
                                 for v, tiers in variants.items()},
            "mean_arrivals_per_hour": round(mean_rate * 60, 1), "peak_arrivals_per_hour": round(peak_rate * 60, 1),
            "analysts": analysts, "capacity_per_hour": round(capacity * 60, 1)}


TOP = "P0"


def main() -> None:
    global TOP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="7,11,13", help="comma-separated seeds; targets are judged on the pooled runs")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--train-share", type=float, default=0.3)
    ap.add_argument("--peak", type=float, default=0.8, help="daily swing of the arrival rate (0..1)")
    ap.add_argument("--capacity", type=float, default=1.1, help="team capacity as a multiple of the mean arrival rate")
    ap.add_argument("--minutes-per-decision", type=float, default=2.0)
    ap.add_argument("--sweep-minutes", type=int, default=5)
    ap.add_argument("--p0-share", type=float, default=0.05,
                    help="independent_p0 variant: share of the most severe labelled tier's items drawn as true P0")
    args = ap.parse_args()
    started = time.perf_counter()

    try:  # the queue pieces are moving from workbench.queue into labeling.*
        from labeling import priority as P, routing as R
        from labeling.queue_config import load_queue_config
        from core.config import config_dir
    except ImportError:  # not there yet in this checkout
        from workbench import queue as P
        R = P
        load_queue_config, config_dir = P.load_queue_config, None
    from core.taxonomy import load_taxonomy

    tax = load_taxonomy()
    cfg = load_queue_config(config_dir(), taxonomy=tax) if config_dir else load_queue_config(taxonomy=tax)
    TOP = min(tax.severities, key=tax.sla_minutes)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = {seed: run_seed(tax, cfg, R, P, seed, args) for seed in seeds}

    names = ("fifo", "raw_score", "priority")
    variants: dict = {}
    for variant in ("independent_p0", "shared_escalation"):
        res = {seed: r["results"][variant] for seed, r in runs.items()}
        pooled: dict = {}
        for name in names:
            harm = sum(r[name]["harm_exposure"] for r in res.values())
            counts: dict = {}
            for r in res.values():
                for tier, c in r[name]["sla_counts"].items():
                    agg = counts.setdefault(tier, {"met": 0, "missed": 0})
                    agg["met"] += c["met"]
                    agg["missed"] += c["missed"]
            pooled[name] = {
                "harm_exposure": round(harm, 1),
                "sla": {t: round(c["met"] / (c["met"] + c["missed"]), 4) if c["met"] + c["missed"] else None
                        for t, c in sorted(counts.items())},
                f"median_minutes_to_action_{TOP}": round(float(np.median(
                    [r[name][f"median_minutes_to_action_{TOP}"] for r in res.values()])), 2),
            }
        pooled["priority"][f"{TOP}_late_not_escalated_by_model"] = sum(
            r["priority"][f"{TOP}_late_not_escalated_by_model"] for r in res.values())
        fifo, raw, ours = (pooled[k]["harm_exposure"] for k in names)
        ratio = ours / fifo if fifo else None
        p0_rate = pooled["priority"]["sla"].get(TOP)
        met = {"harm_le_0.3x_fifo": ratio is not None and ratio <= 0.3,
               "harm_below_raw_score": ours < raw,
               f"{TOP}_sla_ge_95pct": p0_rate is not None and p0_rate >= 0.95}
        per_seed = {str(seed): {
            "harm": {k: r[k]["harm_exposure"] for k in names},
            "ratio_vs_fifo": round(r["priority"]["harm_exposure"] / r["fifo"]["harm_exposure"], 4),
            "ratio_vs_raw_score": round(r["priority"]["harm_exposure"] / r["raw_score"]["harm_exposure"], 4),
            f"{TOP}_sla": {k: r[k]["sla"].get(TOP) for k in names}} for seed, r in res.items()}
        variants[variant] = {
            "true_tier_counts": runs[seeds[0]]["true_tier_counts"][variant], "pooled": pooled, "per_seed": per_seed,
            "harm_ratio_vs_fifo": round(ratio, 4) if ratio is not None else None,
            "harm_ratio_vs_raw_score": round(ours / raw, 4) if raw else None,
            "met": met, "all_met": all(met.values())}
    variants["independent_p0"]["definition"] = (
        f"true P0 = seeded draw of {args.p0_share:g} of the items whose true label is in the most severe labelled "
        "tier; no text pattern; strategies: fifo, raw_score, priority (only priority escalates)")
    variants["shared_escalation"]["definition"] = (
        "true P0 = true label and text meet an escalation criterion (taxonomy patterns); fifo and raw_score also "
        "serve the cases plan_case escalates at creation first")
    png = RESULTS / "queue_sim.png"
    first = runs[seeds[0]]
    plot(first["backlogs"], first["results"]["independent_p0"], png)
    out = {
        "benchmark": "queue_sim", "seeds": seeds, "items_per_run": first["items"], "train_items": first["train_items"],
        "days": args.days, "p0_share": args.p0_share,
        "mean_arrivals_per_hour": first["mean_arrivals_per_hour"], "peak_arrivals_per_hour": first["peak_arrivals_per_hour"],
        "analysts": first["analysts"], "capacity_per_hour": first["capacity_per_hour"], "sweep_minutes": args.sweep_minutes,
        "variants": variants,
        "targets": {"harm_ratio_vs_fifo_max": 0.3, "harm_below_raw_score": True, f"{TOP}_sla_min": 0.95},
        "all_met": all(v["all_met"] for v in variants.values()), "plot": str(png.relative_to(ROOT)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
