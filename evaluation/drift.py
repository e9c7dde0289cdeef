"""Drift with alarms: a reference window of item time against a current one, check by check.

`drift_report(store, config, taxonomy, now=...)` reads both windows from the store (default: the
last 7 days before the newest item time against the 28 days before those) and returns a
`DriftReport`: one `CheckResult` per check with its statistic, threshold, alarm flag and the n of
each window. `drift_markdown(report)` renders it as a Markdown section and `plot_drift(report)`
as a matplotlib figure (each statistic as a multiple of its threshold), for reports and the UI.
`workbench eval drift --check` exits 1 when any alarm fires, for cron or CI. The config comes
from `load_drift_config(config_dir)`; the windows' arrays are read by `evaluation.drift_store`
and the statistics live in `evaluation.drift_stats` (pure functions over arrays).

The checks (thresholds in `configs/drift.yaml`, Evidently's defaults where it has one):
- `score_psi:<policy>` / `score_js:<policy>`: PSI and Jensen-Shannon distance of each policy's
  score in the prediction of record (`core.predictions`): the model sees different traffic, or
  a different model scores it;
- `label_mix`: Jensen-Shannon distance of the shares of predicted labels;
- `embedding`: a domain classifier's cross-validated ROC AUC on the cached sentence embeddings
  (the `embeddings` table that scoring and `workbench cluster` fill; nothing is encoded here);
- `campaign_emergence`: campaigns first seen in the window per 1,000 distinct texts, current against
  reference (ratio, one-sided exact test): a new scam wave or brigading;
- `override_rate`: analysts overriding the model more (or less) often on the current window's
  items (two-proportion test).
A window below a check's minimum size gives "not enough data" instead of an alarm: small windows
make every distance look large. A distance alarms only where its test agrees (KS for scores, Holm-
corrected over the policies; chi-square for the label mix), as the rate checks already did. From
the store, each window counts a text once (copies of one text are one row), so flooding a window
with one text neither raises nor hides an alarm. `compare_windows` runs the checks on arrays (`WindowData`), the
same code for the store and for benchmarks/drift.py.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.config import config_file, load_model
from core.plotting import label_text, pyplot, serialised

from . import drift_stats as ds
from .drift_stats import WindowData
from .plots import short_label
from .render import plain

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from core.store import Store
    from core.taxonomy import Taxonomy

DRIFT_FILE = "drift.yaml"
OK, ALARM, NOT_ENOUGH = "ok", "alarm", "not enough data"
MAX_WINDOW_DAYS = 3650  # the bound `WindowSettings` puts on drift.yaml, for the command's options too
FUTURE_SLACK = dt.timedelta(days=1)  # a source's clock or time zone a little ahead is no future item


class DriftError(ValueError):
    """Nothing to compare (an empty store) or impossible windows; the message says which."""


# -- configuration ---------------------------------------------------------------------------
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowSettings(_Section):
    reference_days: float = Field(default=28, gt=0, le=MAX_WINDOW_DAYS)
    current_days: float = Field(default=7, gt=0, le=MAX_WINDOW_DAYS)


class ScoreCheck(_Section):
    psi: float = Field(default=0.2, gt=0)
    js_distance: float = Field(default=0.1, gt=0, le=0.84)
    bins: int = Field(default=10, ge=2, le=100)
    min_items: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)  # family-wise over the policies (Holm on KS p)


class LabelMixCheck(_Section):
    js_distance: float = Field(default=0.1, gt=0, le=0.84)
    min_items: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)  # chi-square test of the label counts


class EmbeddingCheck(_Section):
    auc: float = Field(default=0.55, gt=0.5, lt=1.0)
    folds: int = Field(default=5, ge=2, le=20)
    max_items_per_window: int = Field(default=5000, ge=10)
    min_items: int = Field(default=500, ge=2)
    model: Optional[str] = None


class CampaignCheck(_Section):
    rate_ratio: float = Field(default=2.0, gt=1.0)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_items: int = Field(default=1000, ge=1)


class OverrideCheck(_Section):
    min_difference: float = Field(default=0.05, ge=0, le=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_decisions: int = Field(default=100, ge=1)
    alternative: Literal["two-sided", "increase"] = "two-sided"


class DriftConfig(_Section):
    """`configs/drift.yaml`: windows, thresholds and minimum window sizes of every check."""

    windows: WindowSettings = WindowSettings()
    score: ScoreCheck = ScoreCheck()
    label_mix: LabelMixCheck = LabelMixCheck()
    embedding: EmbeddingCheck = EmbeddingCheck()
    campaigns: CampaignCheck = CampaignCheck()
    override_rate: OverrideCheck = OverrideCheck()
    seed: int = 0


def load_drift_config(path: str | Path | None = None) -> DriftConfig:
    """Load `drift.yaml` (a file or a configs folder); a bad key raises ConfigError naming file and key."""
    return load_model(config_file(path, DRIFT_FILE), DriftConfig)


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """One check: its statistic against its threshold; `alarm` only when status is "alarm"."""

    check: str
    statistic: Optional[float]
    threshold: float
    alarm: bool
    status: str
    n_reference: int
    n_current: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport:
    """All checks between two windows of item time; windows are (start, end], naive UTC."""

    reference: tuple[dt.datetime, dt.datetime]
    current: tuple[dt.datetime, dt.datetime]
    now: dt.datetime
    n_reference: int
    n_current: int
    checks: list[CheckResult]
    model_versions: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def alarms(self) -> list[CheckResult]:
        return [c for c in self.checks if c.alarm]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN becomes None, times ISO strings)."""
        d = asdict(self)
        d["reference"] = [t.isoformat() for t in self.reference]
        d["current"] = [t.isoformat() for t in self.current]
        d["now"] = self.now.isoformat()
        d["alarms"] = [c.check for c in self.alarms]
        return _json_safe(d)


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return v


# -- the checks on arrays --------------------------------------------------------------------
def _fmt(v: Optional[float]) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.3f}"


def _result(check: str, stat: Optional[float], threshold: float, alarm: bool, n_ref: int, n_cur: int,
            what: str, detail: dict[str, Any], extra: str = "") -> CheckResult:
    if stat is None or math.isnan(stat):  # nothing measured is no "ok"
        msg = f"{check}: could not measure the {what}{extra} (n {n_ref} reference, {n_cur} current)"
        return CheckResult(check, None, threshold, False, NOT_ENOUGH, n_ref, n_cur, msg, detail)
    status = ALARM if alarm else OK
    beyond = stat is not None and math.isfinite(abs(stat)) and abs(stat) > threshold or stat == math.inf
    op = ">" if beyond else "<="
    msg = f"{check}: {what} {_fmt(stat)} {op} {threshold:g}{extra} (n {n_ref} reference, {n_cur} current)"
    return CheckResult(check, stat, threshold, alarm, status, n_ref, n_cur, msg, detail)


def _finite_rows(x: Optional[np.ndarray]) -> int:
    if x is None or len(x) == 0:
        return 0
    arr = np.asarray(x, dtype=np.float64)
    return int(np.isfinite(arr.reshape(len(arr), -1)).all(axis=1).sum())


def _too_small(check: str, threshold: float, n_ref: int, n_cur: int, need: int, what: str = "items",
               hint: str = "") -> CheckResult:
    msg = (f"{check}: not enough data ({n_ref} reference, {n_cur} current {what}; "
           f"needs {need} in each window){hint}")
    return CheckResult(check, None, threshold, False, NOT_ENOUGH, n_ref, n_cur, msg, {"min": need})


def score_checks(ref: WindowData, cur: WindowData, policies: Sequence[str], cfg: ScoreCheck) -> list[CheckResult]:
    """PSI and JS distance of each policy's score column, over its finite scores: non-finite ones
    are left out and counted in the message and detail (`nonfinite_ref`, `nonfinite_cur`), and
    too few finite ones is "not enough data", never "ok".

    An alarm needs the distance past its threshold and the KS test significant after Holm's
    correction over the policies measured (`ks_pvalue_holm` < alpha): a distance alone on
    windows of a few hundred items passed 0.1 by chance (17.6 false alarms a run over 30
    policies at 200 items a window), and each extra policy was another draw."""
    measured: dict[int, dict[str, Any]] = {}
    for j in range(len(policies)):
        r = ref.scores[:, j] if len(ref.scores) else np.zeros(0)
        c = cur.scores[:, j] if len(cur.scores) else np.zeros(0)
        if min(int(np.isfinite(r).sum()), int(np.isfinite(c).sum())) >= cfg.min_items:
            measured[j] = ds.score_shift(r, c, cfg.bins)
    adjusted = ds.holm_adjusted([s["ks_pvalue"] for s in measured.values()])
    for (j, s), p in zip(measured.items(), adjusted):
        s.update(ks_pvalue_holm=float(p), alpha=cfg.alpha, family=len(measured))
    out = []
    for j, pol in enumerate(policies):
        r = ref.scores[:, j] if len(ref.scores) else np.zeros(0)
        c = cur.scores[:, j] if len(cur.scores) else np.zeros(0)
        n1, n2 = int(np.isfinite(r).sum()), int(np.isfinite(c).sum())
        bad = (len(r) - n1, len(c) - n2)
        extra = f"; non-finite scores left out: {bad[0]} reference, {bad[1]} current" if any(bad) else ""
        if min(n1, n2) < cfg.min_items:
            out += [_too_small(f"score_psi:{pol}", cfg.psi, n1, n2, cfg.min_items, "finite scores", extra),
                    _too_small(f"score_js:{pol}", cfg.js_distance, n1, n2, cfg.min_items, "finite scores", extra)]
            continue
        s = measured[j]
        sig = bool(s["ks_pvalue_holm"] < cfg.alpha)  # NaN compares False: nothing tested, no alarm
        extra += f", KS p {s['ks_pvalue_holm']:.2g} (Holm, {s['family']} policies) vs alpha {cfg.alpha:g}"
        out.append(_result(f"score_psi:{pol}", s["psi"], cfg.psi, sig and s["psi"] > cfg.psi, n1, n2, "PSI", s, extra))
        out.append(_result(f"score_js:{pol}", s["js"], cfg.js_distance, sig and s["js"] > cfg.js_distance, n1, n2,
                           "JS distance", s, extra))
    return out


def label_mix_check(ref: WindowData, cur: WindowData, policies: Sequence[str], cfg: LabelMixCheck) -> CheckResult:
    """Jensen-Shannon distance of predicted-label shares; an alarm also needs the chi-square test's
    p below alpha (a distance alone passes 0.1 by chance on small windows of many labels)."""
    n1, n2 = len(ref.predicted), len(cur.predicted)
    if min(n1, n2) < cfg.min_items:
        return _too_small("label_mix", cfg.js_distance, n1, n2, cfg.min_items, "scored items")
    s = ds.label_mix_shift(ref.predicted, cur.predicted, policies)
    s["alpha"] = cfg.alpha
    alarm = bool(s["js"] > cfg.js_distance and s["chi2_pvalue"] < cfg.alpha)
    return _result("label_mix", s["js"], cfg.js_distance, alarm, n1, n2, "JS distance", s,
                   f", chi-square p {s['chi2_pvalue']:.2g} vs alpha {cfg.alpha:g}")


def embedding_check(ref: WindowData, cur: WindowData, cfg: EmbeddingCheck, seed: int = 0) -> CheckResult:
    """Domain classifier AUC on the windows' cached embeddings."""
    n1, n2 = _finite_rows(ref.embeddings), _finite_rows(cur.embeddings)  # a NaN vector is no vector
    if min(n1, n2) < cfg.min_items:
        return _too_small("embedding", cfg.auc, n1, n2, cfg.min_items, "items with a cached embedding",
                          hint="; `workbench cluster` or scoring with an embedding model fills the cache")
    s = ds.domain_classifier_auc(ref.embeddings, cur.embeddings, cfg.folds, seed, cfg.max_items_per_window)
    return _result("embedding", s["auc"], cfg.auc, s["auc"] > cfg.auc, n1, n2, "domain classifier AUC", s)


def campaign_check(ref: WindowData, cur: WindowData, cfg: CampaignCheck) -> CheckResult:
    """New campaigns per 1,000 distinct texts (items where unknown): alarm when the ratio reaches
    `rate_ratio` and p < alpha. Distinct texts, because a flood of copies of one text into the
    current window diluted its rate and hid a real emergence."""
    n1 = ref.n_items if ref.n_texts is None else ref.n_texts
    n2 = cur.n_items if cur.n_texts is None else cur.n_texts
    if ref.new_campaigns is None or cur.new_campaigns is None:
        return _too_small("campaign_emergence", cfg.rate_ratio, n1, n2, cfg.min_items,
                          hint="; the store has no campaigns: run `workbench cluster`")
    if min(n1, n2) < cfg.min_items:
        return _too_small("campaign_emergence", cfg.rate_ratio, n1, n2, cfg.min_items)
    s = ds.emergence_test(ref.new_campaigns, n1, cur.new_campaigns, n2)
    s.update(new_ref=ref.new_campaigns, new_cur=cur.new_campaigns, alpha=cfg.alpha)
    ratio = s["ratio"]
    if ratio is None and not cur.new_campaigns:  # 0 / 0: the ratio read 0.000, a fall to nothing
        return _result("campaign_emergence", None, cfg.rate_ratio, False, n1, n2, "new-campaign rate ratio", s,
                       ": no new campaign in either window")
    if ratio is None:  # none in the reference: any significant emergence counts as a rise
        ratio = math.inf
    alarm = ratio >= cfg.rate_ratio and s["pvalue"] < cfg.alpha
    return _result("campaign_emergence", ratio, cfg.rate_ratio, alarm, n1, n2, "new-campaign rate ratio", s,
                   f", p {s['pvalue']:.2g} vs alpha {cfg.alpha:g}; {s['rate_ref']:.2f} -> {s['rate_cur']:.2f} per 1,000")


def override_check(ref: WindowData, cur: WindowData, cfg: OverrideCheck) -> CheckResult:
    """Two-proportion test of the override rate: alarm when |change| >= min_difference and p < alpha."""
    n1, n2 = ref.decisions, cur.decisions
    if min(n1, n2) < cfg.min_decisions:
        return _too_small("override_rate", cfg.min_difference, n1, n2, cfg.min_decisions, "decisions")
    s = ds.two_proportion_test(ref.overrides, n1, cur.overrides, n2, cfg.alternative)
    s.update(alpha=cfg.alpha, alternative=cfg.alternative)
    diff = s["difference"]
    big = diff >= cfg.min_difference if cfg.alternative == "increase" else abs(diff) >= cfg.min_difference
    alarm = bool(big and s["pvalue"] < cfg.alpha)
    return _result("override_rate", diff, cfg.min_difference, alarm, n1, n2, "override-rate change", s,
                   f", p {s['pvalue']:.2g} vs alpha {cfg.alpha:g}; {s['rate_ref']:.1%} -> {s['rate_cur']:.1%}")


def compare_windows(ref: WindowData, cur: WindowData, policies: Sequence[str], config: DriftConfig) -> list[CheckResult]:
    """Every check, in report order, on two windows given as arrays."""
    return [*score_checks(ref, cur, policies, config.score),
            label_mix_check(ref, cur, policies, config.label_mix),
            embedding_check(ref, cur, config.embedding, config.seed),
            campaign_check(ref, cur, config.campaigns),
            override_check(ref, cur, config.override_rate)]


# -- from the store --------------------------------------------------------------------------
def window_bounds(now: dt.datetime, reference_days: float, current_days: float
                  ) -> tuple[tuple[dt.datetime, dt.datetime], tuple[dt.datetime, dt.datetime]]:
    """(reference, current) as (start, end] pairs: current ends at `now`, reference ends where it starts.

    Raises DriftError (one line) when the windows would start before the year 1: `--now 0001-01-02`
    or `--current-days inf` ended the command in an OverflowError traceback."""
    try:
        cur_start = now - dt.timedelta(days=current_days)
        return (cur_start - dt.timedelta(days=reference_days), cur_start), (cur_start, now)
    except (OverflowError, ValueError):
        raise DriftError(f"windows of {reference_days:g} + {current_days:g} days before {now:%Y-%m-%d %H:%M} "
                         "start before the year 1") from None


def drift_report(store: "Store", config: DriftConfig, taxonomy: "Taxonomy", *, now: Optional[dt.datetime] = None,
                 reference_days: Optional[float] = None, current_days: Optional[float] = None) -> DriftReport:
    """Every drift check between the reference and current windows of item time, from the store.

    `now` (naive UTC, or aware and converted) ends the current window; default: the newest item
    time (created, else ingested) not after the clock (`FUTURE_SLACK` allowed), so a store
    replayed from old data is measured where its data is, and an item dated in the future (a
    typo, or planted to blind the checks) cannot move both windows past every real item; only
    when every item is dated after the clock does the newest one end them. Window lengths default
    to `config.windows`, at most `MAX_WINDOW_DAYS` each. Raises DriftError on an empty store.
    """
    from core.schema import utcnow

    from .drift_store import embedding_model_id, newest_item_time, read_windows

    if now is not None and now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if now is None:
        now = newest_item_time(store, not_after=utcnow() + FUTURE_SLACK) or newest_item_time(store)
        if now is None:
            raise DriftError("the store has no items: nothing to compare")
    ref_days = reference_days if reference_days is not None else config.windows.reference_days
    cur_days = current_days if current_days is not None else config.windows.current_days
    for name, v in (("--reference-days", ref_days), ("--current-days", cur_days)):
        if not 0 < v <= MAX_WINDOW_DAYS:  # NaN fails too
            raise DriftError(f"{name} must be more than 0 and at most {MAX_WINDOW_DAYS} days, got {v:g}")
    reference, current = window_bounds(now, ref_days, cur_days)
    ref, cur, versions = read_windows(store, embedding_model_id(config.embedding.model), taxonomy, reference, current)
    checks = compare_windows(ref, cur, taxonomy.labels, config)
    return DriftReport(reference, current, now, ref.n_items, cur.n_items, checks, versions)


# -- rendering -------------------------------------------------------------------------------
def drift_markdown(report: DriftReport) -> str:
    """A Markdown section: the windows, then one table row per check (alarms marked)."""
    r, c = report.reference, report.current
    alarms = report.alarms
    lines = ["## Drift", "",
             f"Reference {r[0]:%Y-%m-%d %H:%M} – {r[1]:%Y-%m-%d %H:%M} UTC ({report.n_reference} items), "
             f"current {c[0]:%Y-%m-%d %H:%M} – {c[1]:%Y-%m-%d %H:%M} UTC ({report.n_current} items).",
             "", f"**{len(alarms)} alarm(s)**" + (": " + ", ".join(plain(a.check) for a in alarms) if alarms else "."),
             "",
             "| check | statistic | threshold | status | n reference | n current |", "|---|---|---|---|---|---|"]
    for ch in report.checks:
        status = "**ALARM**" if ch.alarm else ch.status
        lines.append(f"| {plain(ch.check)} | {_fmt(ch.statistic)} | {ch.threshold:g} | {status} | "
                     f"{ch.n_reference} | {ch.n_current} |")
    if report.model_versions:
        lines += ["", "Scored by: " + "; ".join(
            f"{w}: " + (", ".join(f"{plain(v)} ({n})" for v, n in sorted(vs.items())) or "none")
            for w, vs in report.model_versions.items())]
    lines += ["", "Statistics: PSI and Jensen-Shannon distance (natural log) of each policy's score on "
              "reference-quantile bins; JS distance of predicted-label shares; cross-validated ROC AUC of a "
              "classifier telling the windows' embeddings apart (0.5 = indistinguishable); new campaigns per "
              "1,000 items (ratio, one-sided exact test); override-rate change (two-proportion z-test).", ""]
    return "\n".join(lines)


@serialised
def plot_drift(report: DriftReport) -> "Figure":
    """Horizontal bars: each check's statistic as a multiple of its threshold (1 = the alarm line).

    For the embedding AUC the bar is (AUC - 0.5) / (threshold - 0.5), as 0.5 is chance. Red
    bars alarmed, blue ones did not, grey labels had not enough data. The override and
    campaign checks also need p < alpha to alarm, so a bar past the line can stay blue.
    """
    plt = pyplot()
    checks = report.checks
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(checks) + 1.4))
    ys = np.arange(len(checks))[::-1]
    vals, colours = [], []
    for ch in checks:
        v = ch.statistic
        if v is None or math.isnan(v):
            ratio = 0.0
        elif math.isinf(v) or ch.threshold == 0:
            ratio = 3.0 if v else 0.0
        elif ch.check == "embedding":  # AUC starts at 0.5 (chance), not at 0
            ratio = max(v - 0.5, 0.0) / (ch.threshold - 0.5)
        else:
            ratio = abs(v) / ch.threshold
        vals.append(min(ratio, 3.0))
        colours.append("#c0392b" if ch.alarm else ("#bbbbbb" if ch.status == NOT_ENOUGH else "#2e86c1"))
    ax.barh(ys, vals, color=colours)
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_yticks(ys)
    # a check named after a long (or multiline) policy pushed the axes out of the figure: every
    # label cut off ("tight layout not applied"); one short line each
    ax.set_yticklabels([label_text(short_label(ch.check, 30)) + (" (not enough data)" if ch.status == NOT_ENOUGH else "")
                        for ch in checks], fontsize=8)
    ax.set_xlim(0, 3.05)
    ax.set_xlabel("statistic / threshold, capped at 3 (AUC: its excess over 0.5)")
    ax.set_title(f"Drift: {len(report.alarms)} alarm(s); current {report.current[0]:%Y-%m-%d} – "
                 f"{report.current[1]:%Y-%m-%d} vs the "
                 f"{(report.reference[1] - report.reference[0]).total_seconds() / 86400:g} days before",
                 fontsize=9)
    fig.tight_layout()
    return fig
