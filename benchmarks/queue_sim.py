"""Queue simulation: does the project's priority cut harm versus FIFO and raw-score sorting?

The SMS + Davidson items (policy labels mapped through the taxonomy) arrive as a seeded stream
over a simulated week with a daily peak; a constant team of analysts, whose capacity is below
the arrival rate at the peaks, decides with the true labels. Model scores come from a real cheap
model (TF-IDF + logistic regression, seeded) fitted on a held-out part of the data.

Three strategies replay the same stream in the same run:
- fifo: oldest first;
- raw_score: highest model probability of any violating policy (1 - p(benign)) first;
- priority: the product's queue. Each arrival becomes a case through `workbench.queue.plan_case`
  (routing, escalation criteria, severity, due time, priority at creation); every
  `--sweep-minutes` the waiting cases are re-scored with `priority_terms` and SLA-lapsing ones
  escalated with `sla_lapsing`, exactly as `workbench cases sweep` does; the escalation queue
  is served first, then by priority (ties oldest first).

Figures per strategy (`evaluation.ops` functions): severity-weighted harm exposure (hours each
violating item waited before action x its tier weight), SLA compliance per true tier, median
minutes to action for the top tier. Targets: harm <= 0.3x FIFO and below raw-score sorting, and
P0 SLA compliance >= 95%. True P0 = a violating item whose label and text meet an escalation
criterion's policies and patterns. One JSON line on stdout; progress on stderr; a PNG of the
backlog and harm in benchmarks/results/.

Three seeds by default (stream split, model, arrival times); the targets are judged on the pooled
runs and each seed's figures are printed too.

Usage: python benchmarks/queue_sim.py [--seeds 7,11,13] [--days 7] [--capacity 1.1] [--peak 0.8]
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

    from workbench.sources import load_labelled

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


def true_tiers(taxonomy, texts, labels) -> list[str | None]:
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


def run_seed(tax, cfg, Q, seed: int, args) -> dict:
    """One seeded replay of the stream under the three strategies."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    train, stream = load_stream(tax, seed, args.train_share)
    stream = stream.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # arrival order
    log(f"[seed {seed}] fitting TF-IDF + logistic regression on {len(train):,} held-out items ...")
    probs = fit_scores(train, stream, tax.labels, seed)
    n = len(stream)
    arrivals = arrival_minutes(n, args.days, args.peak, rng)
    tiers = true_tiers(tax, stream["text"], stream["policy_label"])
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
        cand = Q.Candidate(item_id=str(stream["id"][i]), text=str(stream["text"][i]), label=label,
                           score=scores[label], scores=scores, uncertainty=float(margin_unc[i]))
        row = Q.plan_case(tax, cfg, cand, T0 + dt.timedelta(minutes=float(arrivals[i])))
        f = row["meta"]["features"]
        risk[i], unc[i] = f["risk"], f["uncertainty"]
        tw[i] = Q.tier_weight(tax, row["severity"])
        sla_len[i] = tax.sla_minutes(row["severity"])
        due[i] = arrivals[i] + sla_len[i]
        eligible[i] = row["severity"] in cfg.sla_escalation.tiers
        escalated[i] = row["queue"] == cfg.escalation_queue
        priority[i] = row["priority"]

    def sweep(idx: np.ndarray, now: int) -> None:
        if not idx.size:
            return
        used = Q.sla_used(arrivals[idx], due[idx], now)
        priority[idx] = Q.priority_scores(cfg.priority, risk=risk[idx], uncertainty=unc[idx], urgency=used,
                                          tier_weight=tw[idx])
        escalated[idx] |= Q.sla_lapsing(due[idx] - now, sla_len[idx], eligible[idx],
                                        cfg.sla_escalation.remaining_fraction)

    tie = -arrivals * 1e-9  # oldest first among equals, like the claim index's id order
    strategies = {
        "fifo": (lambda idx, now: -arrivals[idx], None),
        "raw_score": (lambda idx, now: (1.0 - probs[idx, labels.index(tax.benign_label)]) + tie[idx], None),
        "priority": (lambda idx, now: escalated[idx] * 10.0 + priority[idx] + tie[idx], sweep),
    }
    max_minutes = args.days * 1440 * 2
    results, backlogs = {}, {}
    is_p0 = np.array([t == TOP for t in tiers])
    harm_w = np.array([tax.severities[t].weight if t else 0.0 for t in tiers])
    for name, (key, refresh) in strategies.items():
        t0 = time.perf_counter()
        acted, backlog = simulate(key, arrivals, capacity, max_minutes, refresh, args.sweep_minutes, harm_w)
        end = float(np.nanmax(acted)) if np.isfinite(acted).any() else max_minutes
        results[name] = summarise(name, acted, arrivals, tiers, tax, max(end, arrivals.max()))
        if name == "priority":
            late = is_p0 & ((acted - arrivals) > tax.sla_minutes(TOP))
            results[name][f"{TOP}_late_not_escalated_by_model"] = int((late & ~escalated).sum())
        backlogs[name] = backlog
        log(f"[seed {seed}] {name:>10}: harm {results[name]['harm_exposure']:>12,.1f}  SLA {results[name]['sla']}  "
            f"({time.perf_counter() - t0:.1f}s)")
    return {"results": results, "backlogs": backlogs, "items": n, "train_items": len(train),
            "true_tier_counts": {t: int(sum(1 for x in tiers if x == t)) for t in sorted({x for x in tiers if x})},
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
    args = ap.parse_args()
    started = time.perf_counter()

    from workbench import queue as Q
    from workbench.taxonomy import load_taxonomy

    tax = load_taxonomy()
    cfg = Q.load_queue_config(taxonomy=tax)
    TOP = min(tax.severities, key=tax.sla_minutes)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = {seed: run_seed(tax, cfg, Q, seed, args) for seed in seeds}

    names = ("fifo", "raw_score", "priority")
    pooled: dict = {}
    for name in names:
        harm = sum(r["results"][name]["harm_exposure"] for r in runs.values())
        counts: dict = {}
        for r in runs.values():
            for tier, c in r["results"][name]["sla_counts"].items():
                agg = counts.setdefault(tier, {"met": 0, "missed": 0})
                agg["met"] += c["met"]
                agg["missed"] += c["missed"]
        pooled[name] = {
            "harm_exposure": round(harm, 1),
            "sla": {t: round(c["met"] / (c["met"] + c["missed"]), 4) if c["met"] + c["missed"] else None
                    for t, c in sorted(counts.items())},
            f"median_minutes_to_action_{TOP}": round(float(np.median(
                [r["results"][name][f"median_minutes_to_action_{TOP}"] for r in runs.values()])), 2),
        }
    pooled["priority"][f"{TOP}_late_not_escalated_by_model"] = sum(
        r["results"]["priority"][f"{TOP}_late_not_escalated_by_model"] for r in runs.values())
    fifo, raw, ours = (pooled[k]["harm_exposure"] for k in names)
    ratio = ours / fifo if fifo else None
    p0_rate = pooled["priority"]["sla"].get(TOP)
    met = {"harm_le_0.3x_fifo": ratio is not None and ratio <= 0.3,
           "harm_below_raw_score": ours < raw,
           f"{TOP}_sla_ge_95pct": p0_rate is not None and p0_rate >= 0.95}
    per_seed = {str(seed): {
        "harm": {k: r["results"][k]["harm_exposure"] for k in names},
        "ratio_vs_fifo": round(r["results"]["priority"]["harm_exposure"] / r["results"]["fifo"]["harm_exposure"], 4),
        "ratio_vs_raw_score": round(r["results"]["priority"]["harm_exposure"] / r["results"]["raw_score"]["harm_exposure"], 4),
        f"{TOP}_sla": {k: r["results"][k]["sla"].get(TOP) for k in names}} for seed, r in runs.items()}
    png = RESULTS / "queue_sim.png"
    first = runs[seeds[0]]
    plot(first["backlogs"], first["results"], png)
    out = {
        "benchmark": "queue_sim", "seeds": seeds, "items_per_run": first["items"], "train_items": first["train_items"],
        "true_tier_counts": first["true_tier_counts"], "days": args.days,
        "mean_arrivals_per_hour": first["mean_arrivals_per_hour"], "peak_arrivals_per_hour": first["peak_arrivals_per_hour"],
        "analysts": first["analysts"], "capacity_per_hour": first["capacity_per_hour"], "sweep_minutes": args.sweep_minutes,
        "pooled": pooled, "per_seed": per_seed,
        "harm_ratio_vs_fifo": round(ratio, 4) if ratio is not None else None,
        "harm_ratio_vs_raw_score": round(ours / raw, 4) if raw else None,
        "targets": {"harm_ratio_vs_fifo_max": 0.3, "harm_below_raw_score": True, f"{TOP}_sla_min": 0.95},
        "met": met, "all_met": all(met.values()), "plot": str(png.relative_to(ROOT)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
