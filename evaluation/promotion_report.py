"""The champion-versus-challenger report of `workbench retrain`: Markdown plus one PNG.

The PNG has the two reliability diagrams (champion, challenger) on the human-labelled test split
and the per-policy AUC deltas (and macro F1) with their bootstrap intervals, one colour per
evaluation set, so a lead sees at a glance where the challenger is better and how sure that is.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import numpy as np

from core.plotting import label_text, pyplot, serialised

from .compare import PREDICTION_METRICS
from .plots import short_label as _short
from .render import ident, percent, plain, prose, write_atomic


@serialised
def plot_comparison(path: str | Path, champion: str, challenger: str, comparisons: dict[str, dict[str, Any]],
                    reliability: Optional[dict[str, tuple[np.ndarray, np.ndarray]]], n_bins: int = 10) -> str:
    """Write the comparison PNG; `reliability` maps 'champion' / 'challenger' to (proba, y)."""
    plt = pyplot()

    from models.metrics import expected_calibration_error, reliability_bins

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    for ax, (who, name) in zip(axes[:2], (("champion", champion), ("challenger", challenger))):
        ax.plot([0, 1], [0, 1], "--", color="gray")
        if reliability and who in reliability and len(reliability[who][1]):
            proba, y = reliability[who]
            bins = reliability_bins(proba, y, n_bins)
            centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
            mask = bins["count"] > 0
            ax.bar(centers[mask], bins["accuracy"][mask], width=0.9 / n_bins, color="#4C72B0")
            ax.plot(centers[mask], bins["confidence"][mask], "_", color="#C44E52", ms=12, mew=2)
            ece = expected_calibration_error(proba, y, n_bins)
            ax.set_title(f"{who}: {label_text(_short(name))}\nECE {ece:.3f}, n = {len(y)} (test split)", fontsize=9)
        else:
            ax.set_title(f"{who}: {label_text(_short(name))}\n(no human-labelled test items)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top score)")
        ax.set_ylabel("accuracy")
    ax = axes[2]
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for set_name, comp in comparisons.items():
        if comp.get("macro_f1", {}).get("lower") is not None:
            rows.append((set_name, "macro F1", comp["macro_f1"]))
        for pol, entry in (comp.get("auc") or {}).items():
            if entry.get("lower") is not None:
                rows.append((set_name, f"AUC {pol}", entry))
    colours = {name: c for name, c in zip(comparisons, ("#4C72B0", "#DD8452", "#55A868", "#8172B3"))}
    for k, (set_name, what, entry) in enumerate(rows):
        # the interval drawn as it is, the point on its own: a percentile bootstrap interval need
        # not hold its point (F1 and AUC are not linear in the resample), and the error bar
        # measured from the point was negative, a ValueError that ended the retrain after training
        lo, hi = entry["lower"], entry["upper"]
        ax.errorbar((lo + hi) / 2, k, xerr=(hi - lo) / 2, fmt="none", ecolor=colours[set_name], capsize=3)
        ax.plot(entry["delta"], k, "o", color=colours[set_name])
    ax.axvline(0, color="gray", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label_text(f"{_short(what, 36)} ({_short(s, 20)}, n={comparisons[s]['n']})") for s, what, _ in rows],
                       fontsize=8)
    ax.set_xlabel("challenger - champion (bootstrap interval)")
    ax.set_title("per-policy deltas", fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> str:
    """Draw `fig` to memory, then replace `path` in one step: `savefig(path)` opened the file
    before drawing, so a drawing that failed left an empty or half PNG where the last good one was."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        pyplot().close(fig)
    return write_atomic(path, buf.getvalue())


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:+.4f}" if isinstance(v, float) else str(v)


def _val(v: Any) -> str:
    """A metric's value to 4 decimals (a delta is `_fmt`, signed)."""
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _counts(d: Any, markdown: bool = True) -> str:
    """`{"a": 2, "b": 1}` as "a 2, b 1" (`none` when empty); names as Markdown text unless for the console."""
    if not isinstance(d, dict) or not d:
        return "none"
    return ", ".join(f"{ident(k)} {prose(v)}" if markdown else f"{k} {v}" for k, v in d.items())


def left_out_line(stats: dict[str, Any]) -> Optional[str]:
    """What the training data left out (`LearningData.stats['dropped']`: labels outside the
    taxonomy, too rare, bulk copies...) as one line for the console, None when nothing was:
    `retrain` and `models train` printed only the counts kept, so a policy renamed after the
    analysts used it lost all its human labels without a word outside the report."""
    dropped = (stats or {}).get("dropped")
    return f"left out: {_counts(dropped, markdown=False)}" if isinstance(dropped, dict) and dropped else None


def training_data_lines(stats: dict[str, Any]) -> list[str]:
    """The training data's counts (`LearningData.stats`) as a small table and sentences, as the
    other sections read, instead of Python dicts."""
    if not stats:
        return ["No counts recorded."]
    split, human = stats.get("by_split") or {}, stats.get("human_by_split") or {}
    lines = [f"{stats.get('items', '-')} labelled items, {stats.get('human_labels', '-')} of them with a human "
             "label, split by campaign group:", "", "| side | items | human labels |", "|---|---|---|"]
    lines += [f"| {ident(side)} | {ident(split.get(side, 0))} | {ident(human.get(side, 0))} |"
              for side in dict.fromkeys([*split, *human])]
    lines += ["", f"- calibration copies resolved: {stats.get('calibration_resolved', 0)}",
              f"- bulk (campaign) decisions: {stats.get('bulk_decisions', 0)}, covering "
              f"{stats.get('bulk_members', 0)} members, {stats.get('bulk_kept', 0)} kept",
              f"- mean weight of a human label: {_val(stats.get('mean_human_weight'))}",
              f"- left out: {_counts(stats.get('dropped'))}"]
    known = {"items", "human_labels", "by_split", "human_by_split", "calibration_resolved", "bulk_decisions",
             "bulk_members", "bulk_kept", "mean_human_weight", "dropped", "warnings"}
    lines += [f"- {ident(str(k).replace('_', ' '))}: {_counts(v) if isinstance(v, dict) else prose(v)}"
              for k, v in stats.items() if k not in known]
    lines += [f"- **Warning:** {prose(w)}" for w in stats.get("warnings") or ()]
    return lines


def _verdict(result: dict[str, Any]) -> str:
    """The report's verdict: a challenger evaluated only (`--no-promote`) that passed the gate
    reads as passed and waiting, not as refused."""
    if result["promoted"]:
        return "promoted"
    if result.get("evaluate_only") and result["gate"].get("passed") and not result.get("promote_refused"):
        return ("passed the gate, not promoted (evaluated only: promote it on the Models tab or with "
                f"`workbench models promote` {plain(result['challenger'])})")
    return "not promoted"


def _thin(comp: dict[str, Any]) -> Optional[str]:
    """The sentence on a set too small for its figures, None otherwise: one item or one group gave
    the interval [0, 0] with P(not better) 1, read as a measured tie, and a set of one class
    dropped every AUC row without a word."""
    notes = []
    if comp.get("groups", 2) < 2:
        notes.append(f"{comp['groups']} group: a bootstrap interval needs at least 2, so lower, upper and "
                     "P(not better) read n/a")
    if comp.get("classes", 2) < 2:
        notes.append("one class only among the human labels: no AUC (it needs items of both classes)")
    return ("Not enough data: " + "; ".join(notes) + ".") if notes else None


def write_markdown(path: str | Path, result: dict[str, Any], png_name: str) -> str:
    """The Markdown report of one retrain (`evaluation.promotion.retrain_and_gate`'s result);
    `promote_refused` (the champion changed after the gate) says why a passed verdict promoted nothing."""
    g = result["gate"]
    lines = [f"# Challenger {ident(result['challenger'])} against champion {ident(result.get('champion') or '(none)')}",
             "", f"**Verdict: {_verdict(result)}**"
             + (f": {prose(result['promote_refused'])}" if result.get("promote_refused") else "")
             + (f" (forced by {plain(result.get('forced_by'))}: {plain(result.get('force_reason'))})"
                if result.get("forced") else ""),  # free text: no heading, link or tag of its own (Models tab)
             "", f"Gate: {prose(g['metric'])} lower bound of the {percent(result['confidence'])} paired bootstrap "
             f"interval above {g['min_lower_bound']:+g}"
             + (f" and McNemar's {'mid-p' if g.get('mcnemar_test') == 'mid_p' else 'exact p'} below "
                f"{g['mcnemar_alpha']} in the challenger's favour" if g.get("mcnemar_alpha") is not None
                and g["metric"] in PREDICTION_METRICS else "")
             + " on every evaluation set with enough items.",
             "", prose(g["reason"]), "",
             *(line for w in result.get("warnings") or () for line in (f"**Warning:** {prose(w)}", "")),
             "## Evaluation sets", ""]
    for name, comp in result["comparisons"].items():
        lines += [f"### {ident(name)} ({comp['n']} items, {comp['groups']} groups)", ""]
        if name == "pooled" and result.get("pooled"):
            lines += [f"The test split plus {result['pooled']['note']} (`evaluation.cross_fit`).", ""]
        if comp.get("invalid"):
            lines += [f"Not compared: {prose(comp['invalid'])}.", ""]
            continue
        if comp.get("unscored"):
            u = comp["unscored"]
            lines += [f"Not scored: {u.get('challenger', 0)} item(s) by the challenger and {u.get('champion', 0)} by "
                      f"the champion (each counted as that model's wrong answer), {u.get('both', 0)} by both (left "
                      "out).", ""]
        if not comp["n"]:
            lines += ["No items.", ""]
            continue
        thin = _thin(comp)
        if thin:
            lines += [thin, ""]
        lines += ["| metric | champion | challenger | delta | lower | upper | P(not better) |",
                  "|---|---|---|---|---|---|---|"]
        entries = [("macro F1", comp["macro_f1"])] + [(f"AUC {ident(k)}", v) for k, v in (comp.get("auc") or {}).items()]
        if comp.get("auc_mean"):
            entries.append(("mean AUC", comp["auc_mean"]))
        if comp.get("brier"):
            entries.append(("Brier (lower is better; delta = champion - challenger)", comp["brier"]))
        one = comp.get("groups", 2) < 2  # a bootstrap of one unit: an "interval" [d, d] that says nothing
        for what, e in entries:
            lo, hi, pn = ("n/a",) * 3 if one else (_fmt(e.get("lower")), _fmt(e.get("upper")), _val(e.get("p_not_better")))
            lines.append(f"| {what} | {_val(e.get('champion'))} | {_val(e.get('challenger'))} | {_fmt(e.get('delta'))} | "
                         f"{lo} | {hi} | {pn} |")
        m = comp.get("mcnemar") or {}
        if m:
            lines += ["", f"McNemar: {m['disagreements']} disagreements, champion alone right on "
                          f"{m['only_champion_right']}, challenger alone on {m['only_challenger_right']}"
                          + (f" (tested by group: {m['favour_challenger']} groups favour the challenger, "
                             f"{m['favour_champion']} the champion)" if m.get("units") == "groups" else "")
                          + f", exact p = {m['p_value']}, mid-p = {m.get('mid_p')}"]
        lines.append("")
    stats = result.get("data") or {}
    lines += ["## Training data", "", *training_data_lines(stats), "",
              f"![comparison]({png_name})", ""]
    return write_atomic(path, "\n".join(lines))


@serialised
def plot_gate_history(path: str | Path, verdicts: list[dict[str, Any]], set_name: Optional[str] = None) -> Optional[str]:
    """One PNG of the gate over time (`evaluation.model_overview.gate_verdicts`, any order): per
    verdict, challenger - champion on `set_name` (point) with its interval (the bar: the lower
    bound the gate reads, to the upper one where recorded), green when it passed the gate, red
    for the verdict a forced promotion overrode (`forced_over`: that one, not the version's earlier
    refusals), grey when refused; beside it, how many held-out human
    labels each verdict stood on. None when no verdict has the set. `set_name` defaults to
    `pooled` where a verdict has it (models.yaml `promotion.sets`), else `test_split`."""
    plt = pyplot()
    if set_name is None:
        set_name = "pooled" if any("pooled" in (v.get("sets") or {}) for v in verdicts) else "test_split"

    drawable = [v for v in sorted(verdicts, key=lambda v: v["event"])
                if isinstance((v.get("sets") or {}).get(set_name), dict) and v["sets"][set_name].get("delta") is not None]
    overridden = forced_over(verdicts)
    rows = [v for v in drawable if not v.get("forced") or v["event"] in overridden]
    if not rows:
        return None
    x = np.arange(1, len(rows) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12.5, 3.4), gridspec_kw={"width_ratios": [2.2, 1]})
    for i, v in zip(x, rows):
        s = v["sets"][set_name]
        colour = "#4a9a6a" if v.get("passed") else "#c44e52" if v["event"] in overridden else "#8c8c8c"
        top = s.get("upper") if s.get("upper") is not None else s["delta"]
        a1.plot([i, i], [s["lower"], top], color=colour, linewidth=2.5, solid_capstyle="butt")
        a1.plot(i, s["delta"], "o", color=colour, ms=6)
    bound = rows[-1].get("min_lower_bound")
    a1.axhline(0.0 if bound is None else bound, color="#333", linestyle="--", linewidth=1)
    metric = rows[-1].get("metric") or "metric"
    a1.set_title(f"Challenger - champion, {label_text(metric)} on {label_text(set_name)} (green passed, grey refused, red forced over it)",
                 fontsize=9)
    a1.set_xlabel("gate verdict, oldest first"), a1.set_ylabel("difference with interval")
    a1.set_xticks(x)
    a2.bar(x, [v["sets"][set_name].get("n", 0) for v in rows], color="#3a6ea5")
    a2.set_title(f"held-out human labels in {label_text(set_name)}", fontsize=9), a2.set_xticks(x)
    a2.set_xlabel("gate verdict, oldest first")
    fig.tight_layout()
    return _save(fig, path)


def forced_over(verdicts: list[dict[str, Any]]) -> set[int]:
    """The events (`gate_verdicts`' `event`) a forced promotion overrode: per `model.force_promote`,
    the same version's latest `model.gate` before it, or the force event itself when that gate is
    not among `verdicts` (a `--limit` cut it off). Why: every verdict of a version ever forced was
    drawn red, a refused retrain and a refused `models promote` days before included."""
    out: set[int] = set()
    gates = sorted((v for v in verdicts if not v.get("forced")), key=lambda v: v["event"])
    for f in (v for v in verdicts if v.get("forced")):
        before = [g["event"] for g in gates if g["challenger"] == f["challenger"] and g["event"] < f["event"]]
        out.add(before[-1] if before else f["event"])
    return out
