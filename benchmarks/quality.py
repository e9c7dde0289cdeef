"""Quality benchmark: the project's models against two baselines, on both shared datasets, over several split seeds.

For each dataset (SMS Spam Collection, Davidson et al. hate/offensive tweets) the items are read
with `core.sources.load_labelled` (policy labels through the taxonomy) and, for each split seed
(`--seeds`, default 13,17,23), split 80/20 with the seeded stratified split the registry uses.
Every model is trained on the training side and measured on the test side of the same split, in
this process. Contenders (`--kinds`, default tfidf_lr,minilm_lr,nblr,hybrid):

- `tfidf_lr`: word TF-IDF + logistic regression (baseline), reported twice: `tfidf_lr` as the kind
  ships (no class weights, arg-max decisions) and `tfidf_lr_tuned`, the same features with what
  ours gets: balanced class weights, temperature+bias calibration and per-label decision weights
  (`models.linear.tune_decision_weights`), both fitted out of fold on the training side;
- `minilm_lr`: frozen all-MiniLM-L6-v2 embedding + logistic regression (baseline);
- `hybrid`: the default kind (word + char n-grams + MiniLM in one head, calibrated out of fold,
  decision weights tuned out of fold on the training side);
- `nblr`: word + char n-grams weighted by naive-Bayes log-count ratios, one-vs-rest logistic
  regression (NBSVM-style), calibrated like the hybrid;
- `hybrid_soft` (only when listed; datasets with annotator votes): the hybrid trained on each
  item's vote shares instead of its majority label, as an ablation;
- `best` (`--best ensemble`, the default): the ensemble of models.yaml (hybrid, three fine-tuned
  transformers, nblr, blended on a held-out slice of the training side), with each member's own
  test scores. It fine-tunes three transformers: ~115 min per Davidson split on 2 CPU cores
  (checkpoints under benchmarks/.cache/ let a killed run resume). `--best none` leaves it out.

Every choice is made on the training side of each split: calibration and decision weights out of
fold; with `--c-grid`, C of the calibrated kinds is picked per split by their 5-fold out-of-fold
log loss on the training side (otherwise C is models.yaml's). Test figures are reported per seed
and as mean and sample standard deviation over the seeds; targets are judged on the mean, for the
`best` model when it runs, else for models.yaml's default kind (the hybrid).

SMS accuracy and MCC are measured on the dataset's own labels (ham vs spam; the model's spam
and scam both count as spam); macro F1 and ECE on the policy labels. MiniLM embeddings are cached
in benchmarks/.cache/ (embedding the ~30k texts takes several minutes on CPU the first time).

Prints one JSON line (progress goes to stderr); a reliability diagram and the test probabilities
of the judged model on the first seed (`quality_<dataset>_test_proba.npz`, with the ensemble's
member probabilities when it runs) go to benchmarks/results/.

Usage: python benchmarks/quality.py [--seeds 13,17,23] [--kinds tfidf_lr,minilm_lr,nblr,hybrid]
       [--best ensemble|none] [--c-grid 1,4] [--datasets sms_spam davidson]
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

try:  # the kind registry is moving from models.base to models.kinds
    from models.kinds import kind_class, make_classifier  # noqa: E402
except ImportError:  # not there yet in this checkout
    from models.base import kind_class, make_classifier  # noqa: E402
from models.config import load_models_config  # noqa: E402
from models.embeddings import Embedder, EmbeddingCache, embed_texts  # noqa: E402
from models.metrics import classification_summary, matthews_corrcoef, plot_reliability  # noqa: E402
from models.training import stratified_split, target_matrix  # noqa: E402
from core.sources import load_labelled  # noqa: E402
from core.store import open_store  # noqa: E402
from core.taxonomy import load_taxonomy  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {
    "sms_spam": {"accuracy_binary": 0.990, "mcc_binary": 0.95, "ece": 0.03},
    "davidson": {"weighted_f1": 0.91, "hate_f1": 0.50, "ece": 0.03},
}


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def fit_and_measure(model, texts_tr, y_tr, texts_te, y_te, emb_tr, emb_te, labels, benign, targets=None):
    """Fit on the training side (with soft `targets` where the kind learns from them), then
    measure on the test side (`evaluate_proba`) with fit/predict seconds. Also returns an ensemble's (m, n, k)
    member log-probabilities on the test side (None for other kinds), for `member_results`."""
    t0 = time.perf_counter()
    model.fit(texts_tr, y_tr, embeddings=emb_tr if model.uses_embeddings else None, show_progress=True,
              targets=targets)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = emb_te if model.uses_embeddings else None
    member_logp = model.member_log_proba(texts_te, embeddings=emb) if hasattr(model, "member_log_proba") else None
    proba = model.blend(member_logp) if member_logp is not None else model.predict_proba(texts_te, embeddings=emb)
    res, y = evaluate_proba(proba, model.predict_from_proba, y_te, labels, benign)
    res.update({"fit_seconds": round(fit_s, 1), "predict_seconds": round(time.perf_counter() - t0, 2)})
    return res, proba, y, member_logp


def evaluate_proba(proba, predict_from_proba, y_te, labels, benign):
    """Policy-label metrics plus benign-vs-violating accuracy and MCC of test probabilities
    (`predict_from_proba` applies the model's decision weights); also returns the label indices."""
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[v] for v in y_te])
    pred = predict_from_proba(proba)
    s = classification_summary(y, pred, labels, proba)
    b = index[benign]
    yb, pb = (y != b).astype(int), (pred != b).astype(int)
    out = {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "weighted_f1": s["weighted_f1"], "mcc": s["mcc"],
           "ece": s["ece"], "log_loss": s["log_loss"],
           "f1": {k: round(v["f1"], 4) for k, v in s["per_label"].items()},
           "accuracy_binary": float((yb == pb).mean()), "mcc_binary": matthews_corrcoef(yb, pb, 2)}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}, y


def member_results(model, member_logp, y_te, labels, benign, dump: dict | None = None) -> dict:
    """Each ensemble member's own test metrics from its test log-probabilities `member_logp`
    (averaged over its fold models when cross-fit bagged; trained on the whole training side with
    `refit`); each member's test probabilities, and the out-of-fold member log-probabilities the
    blend was fitted on, go into `dump` when given."""
    if dump is not None and model.blend_log_proba_ is not None:
        dump["blend_member_logp"], dump["blend_y"] = model.blend_log_proba_, model.blend_y_
    out = {}
    for i, m in enumerate(model.fitted_members):
        member_proba = np.exp(member_logp[i])
        member_proba /= member_proba.sum(axis=1, keepdims=True)
        res, _ = evaluate_proba(member_proba, m.predict_from_proba, y_te, labels, benign)
        if dump is not None:
            dump[f"member_{i}_{m.kind}"] = member_proba
        info = model.fit_info["members"][i]
        res.update({k: info[k] for k in ("steps", "seconds_per_step", "resumed_from", "loss_first", "loss_last")
                    if k in info})
        out[f"{i}:{m.kind}"] = res
    return out


def with_runtime(params: dict, runtime: str) -> dict:
    """`params` with the embedding runtime set wherever a kind (or ensemble member) takes one."""
    out = dict(params)
    if "embedding_runtime" in out:
        out["embedding_runtime"] = runtime
    if "members" in out:
        out["members"] = [{**m, "params": with_runtime(m.get("params", {}), runtime)} for m in out["members"]]
    return out


def _torch_device() -> str:
    """Where fine-tuning runs (`device: auto` picks the GPU when torch sees one)."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def tuned_tfidf_params(cfg) -> dict:
    """`tfidf_lr`'s features and C as a `hybrid` with the hybrid's class weights, calibration and
    out-of-fold decision weights: the baseline with the same decision tuning as ours."""
    base = cfg.kind_params("tfidf_lr")
    hyb = cfg.kind_params("hybrid")
    return {"word_ngrams": base.get("word_ngrams", (1, 2)), "char_ngrams": None, "preprocess": None,
            "embedding_weight": 0.0, "C": base.get("C", 4.0), "min_df": base.get("min_df", 2),
            "class_weight": "balanced", "calibration": hyb.get("calibration", "temperature_bias"),
            "calibration_folds": hyb.get("calibration_folds", 5),
            "decision_objective": hyb.get("decision_objective", "macro_f1")}


def aggregate(runs: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds of every number in the per-seed results
    (nested dicts such as per-label F1 included); other values are left out."""
    mean, std = {}, {}
    for key, first in runs[0].items():
        if isinstance(first, dict):
            sub = aggregate([r[key] for r in runs])
            if sub["mean"]:
                mean[key], std[key] = sub["mean"], sub["std"]
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            vals = np.array([r[key] for r in runs], dtype=float)
            mean[key] = round(float(vals.mean()), 4)
            std[key] = round(float(vals.std(ddof=1)), 4) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std}


def fit_choosing_c(name, kind, params, c_grid, data, labels, benign, targets):
    """Fit `kind` (for each C of `c_grid` when the kind calibrates out of fold, keeping the C with
    the lowest out-of-fold log loss on the training side) and measure it on the test side."""
    t_tr, y_tr, t_te, y_te, e_tr, e_te = data
    tries = c_grid if c_grid and "C" in params and params.get("calibration", "none") != "none" else [None]
    best = None
    cv = {}
    for c in tries:
        model = make_classifier(kind, labels, **(params if c is None else {**params, "C": c}))
        out = fit_and_measure(model, t_tr, y_tr, t_te, y_te, e_tr, e_te, labels, benign, targets=targets)
        if c is None:
            return model, out
        loss = model.fit_info["oof_log_loss"]
        cv[str(c)] = round(loss, 4)
        log(f"    {name} C={c}: training-side out-of-fold log loss {loss:.4f}")
        if best is None or loss < best[0]:
            best = (loss, c, model, out)
    _, c, model, out = best
    out[0].update({"C_chosen": c, "cv_oof_log_loss_by_C": cv})
    return model, out


EARLIER_ENSEMBLE = {  # README figures of the last ensemble run (split seed 13 only), kept for reference
    "split_seed": 13, "single_seed": True, "re_measured_this_run": False,
    "sms_spam": {"accuracy_binary": 0.993, "mcc_binary": 0.969, "ece": 0.005, "macro_f1": 0.956},
    "davidson": {"weighted_f1": 0.912, "hate_f1": 0.505, "ece": 0.009, "macro_f1": 0.783},
    "caveat": "one split seed; its blend slice (0.25 vs 0.15) and the nblr member were chosen with that seed's "
              "test figures in view (models.yaml comments), so the figure is optimistic, and it has no "
              "standard deviation over seeds; the SMS figure predates the 0.25 slice and hybrid C=2 (README)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["sms_spam", "davidson"])
    ap.add_argument("--seeds", default="13,17,23", help="Comma-separated split seeds (default 13,17,23).")
    ap.add_argument("--kinds", default="tfidf_lr,minilm_lr,nblr,hybrid",
                    help="Comma-separated contenders besides the best model: tfidf_lr (runs with tfidf_lr_tuned), "
                         "minilm_lr, nblr, hybrid, hybrid_soft.")
    ap.add_argument("--best", default="ensemble",
                    help="Kind of the 'best' model (default: ensemble, ~115 min per Davidson split on 2 CPU cores); "
                         "'none' leaves it out.")
    ap.add_argument("--c-grid", default="",
                    help="Comma-separated C values: the calibrated kinds pick C per split by out-of-fold log loss "
                         "on the training side (default: models.yaml's C).")
    ap.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8"], default=None,
                    help="Embedding runtime for the MiniLM features (default: embedding.runtime of models.yaml).")
    ap.add_argument("--no-checkpoints", action="store_true",
                    help="Fine-tune in memory: no checkpoints under benchmarks/.cache (for a GPU, where "
                         "writing them costs more than the training steps between them).")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - {"tfidf_lr", "minilm_lr", "nblr", "hybrid", "hybrid_soft"}
    if unknown:
        ap.error(f"unknown --kinds {sorted(unknown)}")
    c_grid = [float(c) for c in args.c_grid.split(",") if c.strip()]
    best_kind = None if args.best == "none" else args.best

    cfg = load_models_config()
    tax = load_taxonomy()
    labels = tax.labels
    judged = "best" if best_kind else cfg.training.default_kind
    store = open_store(CACHE / "store")
    runtime = args.runtime or cfg.embedding.runtime
    embedder = Embedder(max_seq_length=cfg.embedding.max_seq_length, runtime=runtime)
    cache = EmbeddingCache(store, embedder.model_id)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict = {"benchmark": "quality", "seeds": seeds, "torch_device": _torch_device(),
                    "embedding": embedder.model_id, "split": "80/20 stratified on policy label, per seed",
                    "kinds": kinds, "best_kind": best_kind, "c_grid": c_grid or None, "judged_model": judged,
                    "aggregate": "mean and sample std (ddof=1) of the test figures over the seeds; targets judged on the mean",
                    "datasets": {}, "targets": {}}
    for ds in args.datasets:
        log(f"[{ds}] loading")
        df = load_labelled(ds, taxonomy=tax)
        ids, texts, y = df["id"].tolist(), df["text"].tolist(), df["policy_label"].tolist()
        log(f"[{ds}] {len(texts)} items; embeddings (cached in {CACHE})")
        emb = embed_texts(texts, embedder, cache, show_progress=True)
        shares = df["vote_shares"].tolist()
        for problem in df.attrs.get("unreadable_votes", []):
            log(f"[{ds}] votes ignored (label kept): {problem}")
        contenders = []
        for name in kinds:
            if name == "tfidf_lr":
                contenders += [("tfidf_lr", "tfidf_lr", cfg.kind_params("tfidf_lr")),
                               ("tfidf_lr_tuned", "hybrid", tuned_tfidf_params(cfg))]
            elif name == "hybrid_soft":  # ablation: the hybrid on the annotators' vote shares instead of the majority
                if any(shares):
                    contenders.append(("hybrid_soft", "hybrid", {**with_runtime(cfg.kind_params("hybrid"), runtime),
                                                                 "soft_labels": True}))
            else:
                contenders.append((name, name, with_runtime(cfg.kind_params(name), runtime)))
        if best_kind:
            best_params = with_runtime(cfg.kind_params(best_kind), runtime)
            contenders.append(("best", best_kind, best_params))
        per_seed: dict[str, dict] = {name: {} for name, _, _ in contenders}
        for s_i, seed in enumerate(seeds):
            tr, te = stratified_split(ids, y, 0.2, seed)
            log(f"[{ds} seed {seed}] {len(tr)} train / {len(te)} test")
            t_tr, t_te = [texts[i] for i in tr], [texts[i] for i in te]
            y_tr, y_te = [y[i] for i in tr], [y[i] for i in te]
            targets = target_matrix([shares[i] for i in tr], y_tr, labels) if any(shares) else None
            data = (t_tr, y_tr, t_te, y_te, emb[tr], emb[te])
            for name, kind, params in contenders:
                log(f"[{ds} seed {seed}] {name} ({kind})")
                if name != "best" and "seed" in kind_class(kind).param_names():
                    params = {**params, "seed": seed}
                if name == "best" and "checkpoint_dir" in kind_class(kind).param_names() and not args.no_checkpoints:
                    params = {**params, "checkpoint_dir": str(CACHE / f"{kind}_{ds}_seed{seed}")}
                model, (res, proba, yi, member_logp) = fit_choosing_c(
                    name, kind, params, c_grid, data, labels, tax.benign_label,
                    targets)
                res["kind"] = kind
                log(f"[{ds} seed {seed}] {name}: " + json.dumps({k: res[k] for k in ("accuracy", "macro_f1", "weighted_f1", "ece")}))
                if name == judged and s_i == 0:
                    plot_reliability(proba, yi, str(RESULTS / f"quality_{ds}_reliability.png"),
                                     title=f"{kind} on {ds} test split (seed {seed})")
                    dump = {"y": yi, "labels": np.array(labels), "proba": proba}
                    if member_logp is not None:
                        res["members"] = member_results(model, member_logp, y_te, labels, tax.benign_label, dump)
                        res["blend"] = {k: model.fit_info[k] for k in ("weights", "n_train", "n_blend", "blend_folds", "refit")
                                        if k in model.fit_info}
                    np.savez_compressed(RESULTS / f"quality_{ds}_test_proba.npz", **dump)
                per_seed[name][str(seed)] = res
        entry: dict = {"n_items": len(texts), "n_train": len(tr), "n_test": len(te),
                       "label_counts": {k: int(v) for k, v in df["policy_label"].value_counts().items()},
                       "models": {name: {**aggregate(list(runs.values())), "per_seed": runs}
                                  for name, runs in per_seed.items()}}
        models = entry["models"]
        if judged not in models:
            raise SystemExit(f"the judged model {judged!r} was not run: add it to --kinds or give --best")
        got = models[judged]["mean"]
        base_name = "tfidf_lr_tuned" if "tfidf_lr_tuned" in models else None
        if base_name:
            base = models[base_name]["mean"]
            entry["ratios_vs_tfidf_lr_tuned"] = {k: round(got[k] / base[k], 4) for k in ("macro_f1", "weighted_f1", "accuracy")}
        report["datasets"][ds] = entry
        values = {"accuracy_binary": got["accuracy_binary"], "mcc_binary": got["mcc_binary"], "ece": got["ece"],
                  "weighted_f1": got["weighted_f1"], "hate_f1": got["f1"].get("hate", 0.0)}
        for key, target in TARGETS.get(ds, {}).items():
            ok = values[key] <= target if key == "ece" else values[key] >= target
            report["targets"][f"{ds}.{key}"] = {"target": target, "mean": values[key], "met": bool(ok)}
        if base_name:
            report["targets"][f"{ds}.macro_f1_beats_tfidf_lr_tuned"] = {
                "target": base["macro_f1"], "mean": got["macro_f1"], "met": bool(got["macro_f1"] > base["macro_f1"])}
    report["all_met"] = all(v["met"] for v in report["targets"].values())
    report["notes"] = ["sms accuracy/mcc are ham-vs-spam on the dataset's own labels (spam+scam = spam); "
                       "macro F1, ECE (top-label, 15 bins) on policy labels",
                       "calibration, decision weights (and C with --c-grid) are fitted on each split's training side "
                       "only, out of fold; each model's own seed follows the split seed",
                       "tfidf_lr_tuned: tfidf_lr's features and C with balanced class weights, temperature+bias "
                       "calibration and out-of-fold decision weights (the hybrid's machinery); the macro-F1 target is "
                       "judged against it"]
    if best_kind is None:
        report["ensemble"] = {"measured": False, **EARLIER_ENSEMBLE,
                              "why": "the ensemble fine-tunes three transformers (~115 min per Davidson split on 2 CPU "
                                     "cores); its 3-seed figures were not re-measured in this run"}
    else:
        report["notes"].append("a fine-tuned member with resumed_from == steps was read from its benchmarks/.cache "
                               "checkpoint, so fit_seconds leaves out its fine-tuning")
    print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
