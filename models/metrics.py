"""Pure functions over probability arrays: uncertainty, calibration and classification figures.

Every function takes plain numpy arrays (`proba` is (n, k) with rows summing to 1, `y` holds
integer class indices into its columns) and returns numbers or arrays, so the registry, the
benchmarks and the evaluation reports all compute the same figures the same way.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from core.plotting import label_text, pyplot, serialised


def margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    """(n,) 1 - (top score - second score), in [0, 1]: 0 for a sure prediction, 1 for a tie."""
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    part = np.partition(proba, -2, axis=1)
    return np.clip(1.0 - (part[:, -1] - part[:, -2]), 0.0, 1.0)


def entropy_uncertainty(proba: np.ndarray) -> np.ndarray:
    """(n,) Shannon entropy of each row (renormalised to sum to 1: stored per-label scores of a
    one-vs-rest head need not) divided by log(k), in [0, 1]: 0 when sure, 1 when uniform."""
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    k = proba.shape[1]
    if k < 2:
        return np.zeros(proba.shape[0])
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(proba > 0, proba * np.log(proba), 0.0), axis=1)
    return np.clip(h / np.log(k), 0.0, 1.0)


UNCERTAINTY = {"margin": margin_uncertainty, "entropy": entropy_uncertainty}


def softmax(logits: np.ndarray) -> np.ndarray:
    """(n, k) row-wise softmax, numerically stable."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reliability_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label reliability table with equal-width confidence bins.

    Returns arrays `confidence` (mean top score per bin), `accuracy` (share correct per bin),
    `count` (items per bin) and `edges` (n_bins + 1); empty bins have NaN confidence/accuracy.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"confidence": mean_conf, "accuracy": acc, "count": count, "edges": edges}


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: the count-weighted mean |accuracy - confidence| over confidence bins."""
    bins = reliability_bins(proba, y, n_bins)
    count = bins["count"]
    if count.sum() == 0:
        return 0.0
    mask = count > 0
    gap = np.abs(bins["accuracy"][mask] - bins["confidence"][mask])
    return float((gap * count[mask]).sum() / count.sum())


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)
    return float(-np.log(proba[np.arange(len(y)), np.asarray(y)]).mean())


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def matthews_corrcoef(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_k); 0 when undefined."""
    c = confusion(y_true, y_pred, k).astype(np.float64)
    t, p, n = c.sum(axis=1), c.sum(axis=0), c.sum()
    cov_tp = np.trace(c) * n - t @ p
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float(cov_tp / denom) if denom > 0 else 0.0


def classification_summary(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str],
                           proba: np.ndarray | None = None, n_bins: int = 15) -> dict[str, Any]:
    """Accuracy, macro / weighted F1, MCC, per-label precision/recall/F1/support, and with
    `proba` also ECE and log loss, as a JSON-ready dict. Labels absent from both `y_true` and
    `y_pred` are left out of the macro average."""
    k = len(labels)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    c = confusion(y_true, y_pred, k).astype(np.float64)
    tp = np.diag(c)
    support = c.sum(axis=1)
    predicted = c.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support + predicted) > 0
    n = max(len(y_true), 1)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / max(support.sum(), 1)),
        "mcc": matthews_corrcoef(y_true, y_pred, k),
        "per_label": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                  "support": int(support[i])}
            for i, lab in enumerate(labels) if present[i]
        },
        "confusion": c.astype(int).tolist(),
    }
    if proba is not None:
        out["ece"] = expected_calibration_error(proba, y_true, n_bins)
        out["log_loss"] = log_loss(proba, y_true)
    return out


@serialised
def plot_reliability(proba: np.ndarray, y: np.ndarray, path: str, title: str = "Reliability",
                     n_bins: int = 15) -> str:
    """Write a reliability diagram (accuracy vs confidence, with bin counts) as PNG; returns path."""
    plt = pyplot()

    bins = reliability_bins(proba, y, n_bins)
    ece = expected_calibration_error(proba, y, n_bins)
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    width = 1.0 / n_bins
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    mask = bins["count"] > 0
    ax.bar(centers[mask], bins["accuracy"][mask], width=width * 0.9, color="#4C72B0", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot(centers[mask], bins["confidence"][mask], "_", color="#C44E52", ms=14, mew=2,
            label="mean confidence (gap = miscalibration)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{label_text(title)}\nECE = {ece:.3f}, n = {int(bins['count'].sum())}")  # a model version
    ax.legend(loc="upper left", fontsize=8)
    ax.set_ylim(0, 1)
    ax2.bar(centers, bins["count"], width=width * 0.9, color="#55A868")
    ax2.set_yscale("log")
    ax2.set_xlabel("confidence (top score)")
    ax2.set_ylabel("items")
    ax2.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
