"""Drift alarms benchmark: false alarms on stationary traffic, detection of a mix change and of a model swap.

Traffic: the SMS Spam Collection (and the Davidson tweets as "the other dataset"), read with
`core.sources.load_labelled`. A seeded stratified 40% of each dataset trains the champion (word
TF-IDF + logistic regression, both domains); the rest is the traffic pool, so no scored item was
seen in training. Items get synthetic item times: the SMS pool is shuffled and spread uniformly
over 14 days; the reference window is the first 7 days, the current window the last 7.

Each scenario builds two `WindowData` (scores and labels of record, MiniLM embeddings, new
campaigns, simulated analyst decisions) and runs `evaluation.drift.compare_windows` with the
shipped `configs/drift.yaml`: the code `workbench eval drift` runs, on arrays instead of a store.

- (a) stationary: both windows SMS. Target: no alarm in at least 19 of 20 seeded splits.
- (b) mix change: 30% of the current window's items replaced by Davidson tweets (same volume).
  Target: an alarm in 20 of 20.
- (c) model swap: the same SMS traffic, the current window scored by a deliberately degraded
  model (trained on 5% of the training side with 40% of its labels scrambled). Target: the
  score-drift and the override-rate checks both alarm (in 20 of 20).
- (d) sensitivity: the smallest share of replaced items (grid below) that alarms in 19 of 20.

Simulated analysts decide a seeded uniform 40% of each window's items; their label is the
dataset's label, except 2% random mistakes; an override is a decision that differs from the
model's label. Campaigns (a stand-in for `workbench cluster`): connected components of the
window items' MiniLM cosine graph at the shipped similarity threshold 0.75, at least 2 items; a
campaign is new in the window holding its earliest member.

Baselines on the same windows, in the same process: `psi_only` (the old `eval drift` figure:
any policy's score PSI > 0.2, nothing else) and `ks_p05` (any policy's two-sample KS p < 0.05).
Embeddings of the used texts are cached in workbench-data/bench-drift/ (an embeddings table
through `models.embeddings.EmbeddingCache`), so reruns skip the encoder.

Prints the detection table, then one JSON line (also appended to benchmarks/measured.jsonl
unless --no-record).

Usage: nice -n 10 python benchmarks/drift.py [--seeds 20] [--shares 0.01,0.02,...] [--no-record]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.taxonomy import load_taxonomy  # noqa: E402
from evaluation import drift_stats as ds  # noqa: E402
from evaluation.drift import DriftConfig, WindowData, compare_windows, load_drift_config  # noqa: E402

DAVIDSON_POOL = 4000  # Davidson traffic items embedded (enough for 30% of a window in every seed)
SHARES = (0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.10, 0.15, 0.20, 0.30)
REVIEW_SHARE, ANALYST_ERROR, SIM = 0.40, 0.02, 0.75


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def load(shared: str | None) -> tuple[dict, dict, list[str]]:
    from core.sources import load_labelled

    tax = load_taxonomy()
    sms = load_labelled("sms_spam", shared, taxonomy=tax)
    dav = load_labelled("davidson", shared, taxonomy=tax)
    return ({"text": sms["text"].tolist(), "y": sms["policy_label"].to_numpy(dtype=object)},
            {"text": dav["text"].tolist(), "y": dav["policy_label"].to_numpy(dtype=object)}, tax.labels)


def split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=share, stratify=y, random_state=seed)
    return np.sort(train), np.sort(rest)


def fit_tfidf_lr(texts: list[str], y: np.ndarray):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(C=4.0, max_iter=2000)).fit(texts, y)


def proba(model, texts: list[str], labels: list[str]) -> np.ndarray:
    """Scores in taxonomy label order (a label the model never saw scores 0)."""
    p = model.predict_proba(texts)
    out = np.zeros((len(texts), len(labels)))
    for j, lab in enumerate(model.classes_):
        out[:, labels.index(lab)] = p[:, j]
    return out


def embed(texts: list[str]) -> np.ndarray:
    from core.store import open_store
    from models.embeddings import Embedder, EmbeddingCache, embed_texts

    store = open_store(ROOT / "workbench-data" / "bench-drift")
    try:
        emb = Embedder()
        return embed_texts(texts, emb, EmbeddingCache(store, emb.model_id), show_progress=True)
    finally:
        store.dispose()


def campaign_labels(vectors: np.ndarray) -> np.ndarray:
    """Component id of each row in the cosine >= SIM graph; -1 for rows linked to nothing."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vectors)
    rows, cols = [], []
    for s in range(0, n, 2048):
        sims = vectors[s:s + 2048] @ vectors.T
        r, c = np.nonzero(sims >= SIM)
        keep = (r + s) != c
        rows.append(r[keep] + s)
        cols.append(c[keep])
    r, c = np.concatenate(rows), np.concatenate(cols)
    _, comp = connected_components(coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)), directed=False)
    sizes = np.bincount(comp)
    return np.where(sizes[comp] >= 2, comp, -1)


def decisions(rng: np.random.Generator, y_true: np.ndarray, predicted: np.ndarray, labels: list[str]) -> tuple[int, int]:
    """(decisions, overrides) of simulated analysts on a uniform REVIEW_SHARE of the window."""
    pick = rng.random(len(y_true)) < REVIEW_SHARE
    human = y_true[pick].copy()
    wrong = rng.random(len(human)) < ANALYST_ERROR
    human[wrong] = rng.choice(labels, wrong.sum())
    return int(pick.sum()), int((human != predicted[pick]).sum())


def windows(rng: np.random.Generator, scores: np.ndarray, y: np.ndarray, vecs: np.ndarray, labels: list[str],
            is_cur: np.ndarray, times: np.ndarray) -> tuple[WindowData, WindowData]:
    """Two WindowData from per-item arrays; campaigns are computed over both windows together."""
    comp = campaign_labels(vecs)
    first: dict[int, float] = {}
    for c, t in zip(comp, times):
        if c >= 0:
            first[c] = min(first.get(c, np.inf), t)
    cut = times[is_cur].min()
    new_cur = sum(t >= cut for t in first.values())
    out = []
    for side in (False, True):
        m = is_cur == side
        pred = np.array(labels, dtype=object)[scores[m].argmax(axis=1)]
        n_dec, n_over = decisions(rng, y[m], pred, labels)
        out.append(WindowData(n_items=int(m.sum()), scores=scores[m], predicted=pred, embeddings=vecs[m],
                              new_campaigns=new_cur if side else len(first) - new_cur,
                              decisions=n_dec, overrides=n_over))
    return out[0], out[1]


def baselines(ref: WindowData, cur: WindowData, labels: list[str]) -> dict[str, bool]:
    psi = [ds.score_shift(ref.scores[:, j], cur.scores[:, j])["psi"] for j in range(len(labels))]
    ks = [ds.score_shift(ref.scores[:, j], cur.scores[:, j])["ks_pvalue"] for j in range(len(labels))]
    return {"psi_only": any(v > 0.2 for v in psi), "ks_p05": any(p < 0.05 for p in ks if np.isfinite(p))}


def run_once(cfg: DriftConfig, labels: list[str], ref: WindowData, cur: WindowData) -> dict:
    checks = compare_windows(ref, cur, labels, cfg)
    fired = [c.check for c in checks if c.alarm]
    stats = {c.check: c.statistic for c in checks
             if c.check in ("label_mix", "embedding", "override_rate", "campaign_emergence")}
    stats["max_score_js"] = max((c.statistic for c in checks if c.check.startswith("score_js:")
                                 and c.statistic is not None), default=None)
    stats["max_score_psi"] = max((c.statistic for c in checks if c.check.startswith("score_psi:")
                                  and c.statistic is not None), default=None)
    not_enough = [c.check for c in checks if c.status == "not enough data"]
    return {"alarm": bool(fired), "fired": fired, "stats": stats, "not_enough": not_enough,
            "n_items": (ref.n_items, cur.n_items),
            **baselines(ref, cur, labels)}


def scenario(seed: int, share: float, degraded: bool, pool: dict, dav: dict, labels: list[str]) -> tuple:
    """Windows for one seeded split: SMS pool over 14 days; `share` of current items replaced."""
    rng = np.random.default_rng(seed)
    n = len(pool["y"])
    order = rng.permutation(n)
    times = np.sort(rng.uniform(0, 14, n))
    is_cur = times >= 7
    scores = pool["scores"][order].copy()
    y = pool["y"][order].copy()
    vecs = pool["vecs"][order].copy()
    if degraded:
        scores[is_cur] = pool["degraded"][order][is_cur]
    if share > 0:
        cur_idx = np.flatnonzero(is_cur)
        k = int(round(share * len(cur_idx)))
        swap = rng.choice(cur_idx, k, replace=False)
        src = rng.choice(len(dav["y"]), k, replace=False)
        scores[swap], y[swap], vecs[swap] = dav["scores"][src], dav["y"][src], dav["vecs"][src]
    return windows(rng, scores, y, vecs, labels, is_cur, times)


def summarise(runs: list[dict]) -> dict:
    out = {"alarms": sum(r["alarm"] for r in runs), "runs": len(runs),
           "psi_only_alarms": sum(r["psi_only"] for r in runs), "ks_p05_alarms": sum(r["ks_p05"] for r in runs),
           "fired_by_check": {}, "stats": {},
           "n_items": {"reference": round(float(np.mean([r["n_items"][0] for r in runs])), 1),
                       "current": round(float(np.mean([r["n_items"][1] for r in runs])), 1)}}
    for r in runs:
        for c in r["fired"]:
            key = c.split(":")[0]
            out["fired_by_check"][key] = out["fired_by_check"].get(key, 0) + 1
    for key in runs[0]["stats"]:
        vals = [r["stats"][key] for r in runs if r["stats"][key] is not None and np.isfinite(r["stats"][key])]
        if vals:
            out["stats"][key] = {"mean": round(float(np.mean(vals)), 4), "sd": round(float(np.std(vals, ddof=1)), 4)
                                 if len(vals) > 1 else 0.0}
    nes = sorted({c for r in runs for c in r["not_enough"]})
    if nes:
        out["not_enough_data"] = nes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--shares", default=",".join(str(s) for s in SHARES))
    ap.add_argument("--shared-data", default=None)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    cfg = load_drift_config()
    sms, dav, labels = load(args.shared_data)
    s_train, s_pool = split(sms["y"], 0.4, 0)
    d_train, d_pool = split(dav["y"], 0.4, 0)
    d_pool = np.random.default_rng(0).choice(d_pool, min(DAVIDSON_POOL, len(d_pool)), replace=False)
    train_texts = [sms["text"][i] for i in s_train] + [dav["text"][i] for i in d_train]
    train_y = np.r_[sms["y"][s_train], dav["y"][d_train]]
    log(f"training the champion on {len(train_y)} items")
    champion = fit_tfidf_lr(train_texts, train_y)
    rng = np.random.default_rng(1)
    small = rng.choice(len(train_y), int(0.05 * len(train_y)), replace=False)
    noisy = train_y[small].copy()
    scramble = rng.random(len(noisy)) < 0.4
    noisy[scramble] = rng.choice(sorted(set(train_y)), scramble.sum())
    degraded = fit_tfidf_lr([train_texts[i] for i in small], noisy)
    pool_texts = [sms["text"][i] for i in s_pool]
    dav_texts = [dav["text"][i] for i in d_pool]
    log(f"embedding {len(pool_texts) + len(dav_texts)} texts (cached in workbench-data/bench-drift)")
    vecs = embed(pool_texts + dav_texts)
    pool = {"y": sms["y"][s_pool], "scores": proba(champion, pool_texts, labels),
            "degraded": proba(degraded, pool_texts, labels), "vecs": vecs[:len(pool_texts)]}
    other = {"y": dav["y"][d_pool], "scores": proba(champion, dav_texts, labels), "vecs": vecs[len(pool_texts):]}
    from sklearn.metrics import f1_score

    lab_arr = np.array(labels, dtype=object)
    model_f1 = {name: {"macro_f1": round(float(f1_score(pool["y"], lab_arr[pool[key].argmax(1)], average="macro")), 4),
                       "accuracy": round(float((lab_arr[pool[key].argmax(1)] == pool["y"]).mean()), 4)}
                for name, key in (("champion", "scores"), ("degraded", "degraded"))}
    log(f"on the SMS traffic pool: {model_f1}")
    seeds = list(range(args.seeds))

    def runs(share: float, degraded_: bool) -> list[dict]:
        return [run_once(cfg, labels, *scenario(s, share, degraded_, pool, other, labels)) for s in seeds]

    res: dict = {}
    log("(a) stationary")
    res["a_stationary"] = summarise(runs(0.0, False))
    log("(b) 30% replaced")
    res["b_replaced_30pct"] = summarise(runs(0.30, False))
    log("(c) degraded model")
    c_runs = runs(0.0, True)
    res["c_degraded_model"] = summarise(c_runs)
    score_alarm = sum(any(f.startswith("score_") for f in r["fired"]) for r in c_runs)
    override_alarm = sum("override_rate" in r["fired"] for r in c_runs)
    res["c_degraded_model"].update(score_drift_alarms=score_alarm, override_rate_alarms=override_alarm)
    sens: dict = {}
    for share in [float(s) for s in args.shares.split(",")]:
        log(f"(d) share {share}")
        sens[str(share)] = summarise(runs(share, False))
    need = int(np.ceil(0.95 * len(seeds)))

    def smallest(key: str) -> float | None:
        ok = [float(s) for s, v in sens.items() if v[key] >= need]
        # the smallest share from which every larger share in the grid also detects
        grid = sorted(float(s) for s in sens)
        for s in grid:
            if all(x in ok for x in grid if x >= s):
                return s
        return None

    ours, psi_only, ks_only = smallest("alarms"), smallest("psi_only_alarms"), smallest("ks_p05_alarms")
    n = len(seeds)
    targets = {
        "a_no_alarm_in_19_of_20": {"value": n - res["a_stationary"]["alarms"], "target": int(np.ceil(0.95 * n)),
                                   "met": n - res["a_stationary"]["alarms"] >= int(np.ceil(0.95 * n))},
        "b_alarm_in_20_of_20": {"value": res["b_replaced_30pct"]["alarms"], "target": n,
                                "met": res["b_replaced_30pct"]["alarms"] == n},
        "c_score_drift_alarms": {"value": score_alarm, "target": n, "met": score_alarm == n},
        "c_override_rate_alarms": {"value": override_alarm, "target": n, "met": override_alarm == n},
        "d_sensitivity_share": {"value": ours, "met": ours is not None,
                                "note": f"smallest share in the grid alarming in >= {need} of {n}"},
    }
    out = {"benchmark": "drift", "seeds": n, "pool": {"sms": len(pool["y"]), "davidson": len(other["y"])},
           "window_items_mean": res["a_stationary"]["n_items"],
           "model": "word TF-IDF (1-2 grams) + logistic regression, trained on 40% of each dataset",
           "degraded_model": "same, trained on 5% of the training side with 40% of labels scrambled",
           "quality_on_sms_pool": model_f1, "embedding_model": "all-MiniLM-L6-v2",
           "thresholds": {"score_psi": cfg.score.psi, "score_js": cfg.score.js_distance,
                          "label_mix_js": cfg.label_mix.js_distance, "embedding_auc": cfg.embedding.auc,
                          "campaign_rate_ratio": cfg.campaigns.rate_ratio, "override_min_difference":
                          cfg.override_rate.min_difference, "alpha": cfg.override_rate.alpha},
           "scenarios": res, "sensitivity": {s: {"alarms": v["alarms"], "psi_only_alarms": v["psi_only_alarms"],
                                                 "ks_p05_alarms": v["ks_p05_alarms"],
                                                 "fired_by_check": v["fired_by_check"]} for s, v in sens.items()},
           "sensitivity_share": ours, "baseline_psi_only_sensitivity_share": psi_only,
           "baseline_ks_p05_sensitivity_share": ks_only,
           "sensitivity_ratio_vs_psi_only": round(ours / psi_only, 4) if ours and psi_only else None,
           "false_alarms": {"ours": res["a_stationary"]["alarms"], "psi_only": res["a_stationary"]["psi_only_alarms"],
                            "ks_p05": res["a_stationary"]["ks_p05_alarms"]},
           "targets": targets, "all_met": all(t["met"] for t in targets.values()),
           "seconds": round(time.time() - t0, 1)}
    print(f"{'scenario':<22}{'ours':>8}{'psi_only':>10}{'ks_p05':>8}  checks that fired")
    rows = [("(a) stationary", res["a_stationary"]), ("(b) 30% replaced", res["b_replaced_30pct"]),
            ("(c) degraded model", res["c_degraded_model"])]
    rows += [(f"(d) {float(s):.1%} replaced", v) for s, v in sens.items()]
    for name, v in rows:
        print(f"{name:<22}{v['alarms']:>5}/{n:<2}{v['psi_only_alarms']:>7}/{n:<2}{v['ks_p05_alarms']:>5}/{n:<2}  "
              + ", ".join(f"{k} {c}" for k, c in sorted(v["fired_by_check"].items())))
    print(f"sensitivity (smallest share alarming in >= {need}/{n}): ours {ours}, psi_only {psi_only}, "
          f"ks_p05 {ks_only}")
    for k, t in targets.items():
        print(f"target {k}: {t['value']} -> {'met' if t['met'] else 'MISSED'}")
    line = json.dumps(out)
    print(line)
    if not args.no_record:
        with open(ROOT / "benchmarks" / "measured.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
