"""The evaluation plots as PNG bytes: the same images go into report.html (base64), next to
report.md (files) and onto the UI's Evaluation tab.

Every rate is drawn with its interval: the override rate over time as a line with a band, the
reliability diagram with Wilson bars per bin, per-policy precision / recall / F1 with error bars.
"""
from __future__ import annotations

import io
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from core.plotting import label_text, pyplot, serialised

from .estimates import wilson
from .render import measured, percent


def short_label(name: Any, width: int = 32) -> str:
    """A name as one line of at most `width` characters, for a tick, legend or title: a policy,
    queue or model name with a newline drew on two lines, and a long one pushed the axes out of
    the figure (matplotlib's "tight layout not applied"), its ticks and labels cut off."""
    text = " ".join(str(name).split())
    return text if len(text) <= width else text[:width - 1] + "…"


@serialised
def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    pyplot().close(fig)
    return buf.getvalue()


@serialised
def override_rate_png(windows: Sequence[Mapping[str, Any]], groups: Optional[Mapping[str, Any]] = None,
                      title: str = "Override rate per window") -> Optional[bytes]:
    """Line of the override rate per window with its interval as a band (windows without
    decisions are gaps), n under each point; optional per-group lines (e.g. per model version)."""
    if not any(w["n"] for w in windows):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 3.0))
    x = np.arange(len(windows))
    short = len({w["end"][:10] for w in windows}) == len(windows)  # one window per day or longer
    labels = [w["end"][:10] if short else w["end"][5:16].replace("T", " ") for w in windows]

    def series(ws: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nan = float("nan")
        return (np.array([w["estimate"] if w["n"] else nan for w in ws], dtype=float),
                np.array([w["lo"] if w["n"] else nan for w in ws], dtype=float),
                np.array([w["hi"] if w["n"] else nan for w in ws], dtype=float))

    y, lo, hi = series(windows)
    ax.fill_between(x, lo, hi, color="#2e86c1", alpha=0.2, label="interval (all)")
    ax.plot(x, y, color="#2e86c1", marker="o", label="all decisions")
    for name, g in list((groups or {}).items())[:5]:
        gy, _, _ = series(g["windows"])
        ax.plot(x, gy, marker=".", linewidth=1, alpha=0.8, label=label_text(short_label(name)))
    for xi, w in zip(x, windows):
        ax.annotate(f"n={w['n']}", (xi, 0.0), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7,
                    color="#555")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("override rate")
    ax.set_xlabel("window ending")
    ax.set_title(label_text(title), fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _png(fig)


@serialised
def reliability_png(proba: np.ndarray, y: np.ndarray, conf: float = 0.9, n_bins: int = 10,
                    title: str = "Reliability on human labels") -> Optional[bytes]:
    """Accuracy of the model's top label against its confidence, per confidence bin, with Wilson
    bars and the bin counts; the diagonal is perfect calibration. A row with a score that is not
    a finite number is left out (it fell into the top bin and counted in n); None when none is left."""
    proba, y = np.asarray(proba, dtype=float), np.asarray(y)
    if proba.size == 0:
        return None
    if proba.ndim != 2 or len(y) != len(proba):
        raise ValueError(f"reliability: {len(y)} labels for {len(proba)} score rows")
    keep = np.isfinite(proba).all(axis=1)
    proba, y = proba[keep], y[keep]
    if not len(proba):
        return None
    top = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(top, edges[1:-1]), 0, n_bins - 1)
    plt = pyplot()
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(4.6, 4.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    xs, ys, err_lo, err_hi, counts = [], [], [], [], []
    for b in range(n_bins):
        m = idx == b
        n = int(m.sum())
        counts.append(n)
        if not n:
            continue
        k = int(correct[m].sum())
        lo, hi = wilson(k, n, conf)
        xs.append(float(top[m].mean()))
        ys.append(k / n)
        err_lo.append(max(0.0, k / n - lo))
        err_hi.append(max(0.0, hi - k / n))
    ax.errorbar(xs, ys, yerr=[err_lo, err_hi], fmt="o-", color="#c0392b", capsize=3, markersize=4)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{label_text(title)} (n={len(y)}, {percent(conf)} Wilson bars)", fontsize=9)
    axn.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / n_bins * 0.9, color="#888")
    axn.set_xlabel("model confidence (top score)")
    axn.set_ylabel("n")
    fig.tight_layout()
    return _png(fig)


@serialised
def estimates_png(per_policy: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  title: str = "QA-audit estimates per policy") -> Optional[bytes]:
    """Precision, recall and F1 per policy as points with interval error bars and their n; a
    point without a finite estimate is not drawn, one without finite bounds has no bar."""
    rows = [(lab, name, est) for lab, ms in per_policy.items() for name, est in ms.items()
            if measured(est.get("estimate"))]
    if not rows:
        return None
    plt = pyplot()
    policies = list(per_policy)
    fig, ax = plt.subplots(figsize=(6.0, 0.5 * len(policies) + 1.3))
    colours = {"precision": "#2e86c1", "recall": "#c0392b", "f1": "#27ae60"}
    offsets = {"precision": -0.22, "recall": 0.0, "f1": 0.22}
    for lab, name, est in rows:
        yv, e = policies.index(lab) + offsets[name], est["estimate"]
        lo, hi = (est["lo"], est["hi"]) if measured(est.get("lo")) and measured(est.get("hi")) else (e, e)
        ax.errorbar([e], [yv], xerr=[[max(0.0, e - lo)], [max(0.0, hi - e)]],
                    fmt="o", color=colours[name], capsize=3, markersize=4)
        ax.annotate(f"n={est.get('n', '?')}", (hi, yv), xytext=(4, -3), textcoords="offset points", fontsize=7)
    for name, c in colours.items():
        ax.plot([], [], "o", color=c, label=name)
    ax.set_yticks(range(len(policies)))
    ax.set_yticklabels([label_text(short_label(p, 24)) for p in policies])
    drawn = {lab for lab, _, _ in rows}
    for i, p in enumerate(policies):  # a policy without a figure says so, not an empty row
        if p not in drawn:
            ax.annotate("no estimate (n=0)" if not any((e or {}).get("n") for e in per_policy[p].values())
                        else "no estimate", (0.01, i), va="center", fontsize=7, color="#777")
    ax.set_ylim(len(policies) - 0.55, -0.55)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(label_text(title) + ": estimate with interval", fontsize=9)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    return _png(fig)


@serialised
def score_split_png(confirmed: Sequence[float], overridden: Sequence[float]) -> Optional[bytes]:
    """Histograms of the model's score for confirmed and for overridden decisions, each bar the
    share of its group in that bin (the groups differ in size: raw counts would hide the shape).
    A score that is not a finite number is left out (it counted in n and in every bar's share)."""
    confirmed, overridden = (np.asarray(v, dtype=float).ravel() for v in (confirmed, overridden))
    confirmed, overridden = confirmed[np.isfinite(confirmed)], overridden[np.isfinite(overridden)]
    if not len(confirmed) and not len(overridden):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    bins = np.linspace(0, 1, 21)
    for values, name, colour in ((confirmed, "confirmed", "#27ae60"), (overridden, "overridden", "#c0392b")):
        if len(values):
            ax.hist(values, bins=bins, alpha=0.6, weights=np.full(len(values), 1 / len(values)),
                    label=f"{name} (n={len(values)})", color=colour)
    ax.set_xlabel("model's score of its label")
    ax.set_ylabel("share of the group")
    ax.set_title("Scores of confirmed vs overridden decisions", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


@serialised
def figure_png(fig: Any) -> bytes:
    """A matplotlib figure made elsewhere (the drift plot) as PNG bytes."""
    return _png(fig)
