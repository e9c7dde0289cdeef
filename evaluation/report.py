"""The model measured against human decisions, and drift between time windows, from the store.

`model_quality` joins each current human label with the prediction the analyst saw (same item,
same model version) and reports override rates (per model label and per day), precision /
recall / F1 and calibration; the same figures on the uniformly drawn QA-audit cases give
estimates free of the bias of model-ranked review. `agreement` reads calibration sets;
`score_drift` compares score distributions of two windows (halves of item time; the alarms of
`evaluation.drift` are what the report shows). `evaluation_summary` gathers every figure (QA-audit
estimates with intervals, override telemetry, calibration, agreement, slices, analyst quality for
leads, drift); `write_report` writes it as report.md with PNGs and as one self-contained
report.html, and the UI's Evaluation tab shows `summary_html` of the same summary.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

import numpy as np
from sqlalchemy import and_, func, select

from core.hooks import PermissionDenied, check_permission
from core.principals import SYSTEM, Actor
from core.predictions import champion_version
from core.schema import Case, Decision, Item, Prediction
from core.store import Store
from core.taxonomy import Taxonomy

from . import estimates as es
from . import metrics as em
from .analysts import analyst_quality
from .config import EvaluationConfig
from .overrides import override_telemetry
from .slices import slice_report
from .data import decision_rows, retired_counts, score_row


def _quality(rows: list[dict[str, Any]], taxonomy: Taxonomy) -> dict[str, Any]:
    from models.metrics import classification_summary

    if not rows:
        return {"n": 0}
    # a retired label (`data.decision_rows` keeps it) is a class of its own after the current ones,
    # so the confusion stays exact: an index lookup of it raised KeyError, ending the report
    retired = sorted({lab for r in rows for lab in (r["human"], r["model"]) if lab not in taxonomy.policies}, key=str)
    labels = list(taxonomy.labels) + [f"{lab} (retired)" for lab in retired]
    idx = {lab: i for i, lab in enumerate(list(taxonomy.labels) + retired)}
    y = np.array([idx[r["human"]] for r in rows])
    yhat = np.array([idx[r["model"]] for r in rows])
    out = classification_summary(y, yhat, labels)
    out["retired"] = sum(bool(r.get("retired")) for r in rows)
    # a retired model label's own score is gone; a stored score that is no probability calibrates
    # nothing and is left out, counted (one such row dropped the whole ECE, silently)
    cal = np.array([r["model"] in taxonomy.policies and em.finite_row(r["proba"]) for r in rows], dtype=bool)
    out["ece_n"] = int(cal.sum())
    out["ece_unscored"] = sum(r["model"] in taxonomy.policies for r in rows) - out["ece_n"]
    if cal.any():
        proba = np.array([r["proba"] for r, ok in zip(rows, cal) if ok], dtype=np.float64)
        proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
        from models.metrics import expected_calibration_error

        out["ece"] = expected_calibration_error(proba, y[cal])  # a retired human label: top label wrong
    out["override_rate"] = em.override_rate([r["model"] for r in rows], [r["human"] for r in rows])
    return out


def model_quality(store: Store, taxonomy: Taxonomy, model_version: Optional[str] = None) -> dict[str, Any]:
    """Override rates, precision/recall/F1 and ECE of a model (default: every version) on human labels."""
    rows = decision_rows(store, taxonomy)
    if model_version:
        rows = [r for r in rows if r["model_version"] == model_version]
    audit = [r for r in rows if r["is_audit"]]
    model, human = [r["model"] for r in rows], [r["human"] for r in rows]
    by_day = em.override_rates_by([r["decided_at"].date().isoformat() for r in rows], model, human)
    return {
        "model_version": model_version, "decisions": len(rows), "qa_audit_decisions": len(audit),
        "override_rate": em.override_rate(model, human),
        "override_by_model_label": em.override_rates_by(model, model, human),
        "override_by_day": dict(sorted(by_day.items())),
        "all_decisions": _quality(rows, taxonomy),
        "qa_audit_sample": _quality(audit, taxonomy),
    }


def agreement(store: Store) -> dict[str, Any]:
    """Inter-analyst agreement per calibration set: Fleiss' kappa over the items with the most
    raters (for 2 raters that is Scott's pi: Cohen's kappa needs a fixed "rater 1" and "rater 2",
    which differ from item to item here). Only live answers count (`analysts.live_calibration`:
    not undone; a correction by someone other than the rater drops that answer)."""
    from .analysts import live_calibration

    D, C = Decision.__table__, Case.__table__
    with store.read() as conn:
        rows = [dict(r) for r in conn.execute(
            select(D.c.id, D.c.supersedes_id, D.c.kind, C.c.calibration_set, D.c.item_id, D.c.reviewer, D.c.label)
            .join(C, C.c.id == D.c.case_id)
            .where(D.c.kind.in_(("calibration", "undo")), C.c.calibration_set.is_not(None))).mappings()]
    out: dict[str, Any] = {}
    sets: dict[str, dict[str, dict[str, str]]] = {}
    for e in live_calibration(rows):
        sets.setdefault(e["calibration_set"], {}).setdefault(e["item_id"], {})[e["reviewer"]] = e["label"]
    for cal, items in sets.items():
        sizes = {len(v) for v in items.values()}
        r = max(sizes) if sizes else 0
        full = {i: v for i, v in items.items() if len(v) == r and r >= 2}
        if r >= 2:
            cats = sorted({lab for v in full.values() for lab in v.values()})
            counts = np.array([[list(v.values()).count(c) for c in cats] for v in full.values()])
            kappa, method = em.fleiss_kappa(counts) if len(counts) else None, "fleiss" if r > 2 else "scott"
        else:
            kappa, method = None, None
        note = None if kappa is not None else ("undefined: one label only" if r >= 2 and len(full)
                                               else "fewer than 2 raters per item")
        out[cal] = {"items": len(full), "raters_per_item": r, "kappa": kappa, "method": method, "kappa_note": note}
    return out


def _item_time() -> Any:
    return func.coalesce(Item.created_at, Item.ingested_at)


def score_drift(store: Store, taxonomy: Taxonomy, reference: Optional[tuple[dt.datetime, dt.datetime]] = None,
                current: Optional[tuple[dt.datetime, dt.datetime]] = None,
                model_version: Optional[str] = None) -> dict[str, Any]:
    """PSI and KS of each policy's score between two windows of item time (default: halves)."""
    P, I = Prediction.__table__, Item.__table__
    with store.read() as conn:
        version = model_version or champion_version(conn)
        if version is None:
            return {"error": "no champion model and no --model given"}
        t = _item_time()
        if reference is None or current is None:
            lo, hi = conn.execute(select(func.min(t), func.max(t))).one()
            if lo is None:
                return {"error": "no items"}
            lo, hi = _as_dt(lo), _as_dt(hi)
            mid = lo + (hi - lo) / 2
            reference, current = (lo, mid), (mid, hi + dt.timedelta(seconds=1))

        def window(bounds: tuple[dt.datetime, dt.datetime]) -> np.ndarray:
            q = (select(P.c.scores).join(I, I.c.id == P.c.item_id)
                 .where(P.c.model_version == version, and_(t >= bounds[0], t < bounds[1])))
            # a null or non-number score is NaN (left out by PSI and KS); `float(None)` ended the call
            return np.array([score_row(s, list(taxonomy.labels), missing=0.0) for (s,) in conn.execute(q)],
                            dtype=np.float64).reshape(-1, len(taxonomy.labels))

        ref, cur = window(reference), window(current)
    out: dict[str, Any] = {"model_version": version, "reference": [reference[0].isoformat(), reference[1].isoformat()],
                           "current": [current[0].isoformat(), current[1].isoformat()],
                           "n_reference": len(ref), "n_current": len(cur), "per_label": {}}
    if len(ref) and len(cur):
        for j, lab in enumerate(taxonomy.labels):
            ks = em.ks_statistic(ref[:, j], cur[:, j])
            r, c = em.finite(ref[:, j]), em.finite(cur[:, j])
            out["per_label"][lab] = {"psi": em.psi(r, c), "ks": ks["statistic"], "ks_pvalue": ks["pvalue"],
                                     "mean_ref": float(r.mean()) if len(r) else float("nan"),
                                     "mean_cur": float(c.mean()) if len(c) else float("nan")}
        # over the measured policies: Python's max kept a NaN PSI met first (a policy without a finite
        # score) and hid the others' drift, or skipped it met later (the answer hung on label order)
        psis = [v["psi"] for v in out["per_label"].values() if np.isfinite(v["psi"])]
        out["max_psi"] = max(psis) if psis else float("nan")
        out["_arrays"] = (ref, cur)
    return out


def _as_dt(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))


def _audit_estimates(audit: list[dict[str, Any]], taxonomy: Taxonomy, config: EvaluationConfig) -> dict[str, Any]:
    """Precision / recall / F1 and prevalence per policy on the QA-audit sample, weighted when the
    draw was stratified."""
    pis = [r["inclusion"] for r in audit]
    w = es.inverse_probability_weights(pis, [r.get("response") for r in audit])
    weighted = w is not None
    human, model = [r["human"] for r in audit], [r["model"] for r in audit]
    per_policy = es.policy_estimates(human, model, taxonomy.labels, w, conf=config.confidence,
                                     method=config.interval_method)
    prevalence = es.prevalence_estimates(human, taxonomy.labels, model, w, conf=config.confidence)
    return {"n": len(audit), "weighted": weighted, "strata": len({p for p in pis if p}), "per_policy": per_policy,
            "accuracy": es.accuracy_estimate(human, model, w, conf=config.confidence),
            "table": es.estimates_table(per_policy, len(audit), config.target_width),
            "prevalence": prevalence,
            "prevalence_table": es.estimates_table({lab: {"prevalence": e} for lab, e in prevalence.items()},
                                                   len(audit), config.target_width)}


def evaluation_summary(store: Store, taxonomy: Taxonomy, actor: Actor, *, config: EvaluationConfig,
                       drift_config: Any = None, model_version: Optional[str] = None,
                       now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Every figure of the report and the UI's Evaluation tab, with the PNGs (`_png`, bytes).

    The analyst part needs `analyst_quality` (leads); for others it says so instead. Drift comes
    from `evaluation.drift` when `drift_config` is given."""
    from . import plots

    rows = [r for r in decision_rows(store, taxonomy) if model_version is None or r["model_version"] == model_version]
    audit = [r for r in rows if r["is_audit"]]
    human, model = [r["human"] for r in rows], [r["model"] for r in rows]
    idx = {lab: i for i, lab in enumerate(taxonomy.labels)}
    # calibration: a retired model label's own score is not among the current policies' (left out,
    # counted); a retired human label is kept as class -1, the model's top label judged wrong
    current = [r for r in rows if r["model"] in idx]
    scored = [r for r in current if em.finite_row(r["proba"])]  # NaN, or out of [0, 1]: calibrates nothing
    nonfinite = sum(r["proba"] is not None for r in current) - len(scored)
    proba = np.array([r["proba"] for r in scored], dtype=np.float64).reshape(-1, len(taxonomy.labels))
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
    y = np.array([idx.get(r["human"], -1) for r in scored], dtype=int)
    from models.metrics import expected_calibration_error

    out: dict[str, Any] = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "taxonomy_version": taxonomy.version, "model_version": model_version,
        "confidence": config.confidence, "target_width": config.target_width, "change_alpha": config.change_alpha,
        "min_slice_n": config.min_slice_n, "decisions": len(rows),
        "estimates": {"qa_audit": _audit_estimates(audit, taxonomy, config),
                      "all_decisions": {"per_policy": es.policy_estimates(human, model, taxonomy.labels,
                                                                          conf=config.confidence),
                                        "accuracy": es.accuracy_estimate(human, model, conf=config.confidence)}},
        "calibration": {"n": len(scored), "ece": expected_calibration_error(proba, y) if len(scored) else None,
                        "nonfinite": nonfinite, "retired_model": len(rows) - len(current)},
        "retired": retired_counts(rows, taxonomy),
        "overrides": override_telemetry(store, taxonomy, config, now=now, model_version=model_version),
        "agreement": agreement(store),
        "slices": slice_report(rows, taxonomy, config),
    }
    try:
        out["analysts"] = analyst_quality(store, actor, config)
    except PermissionDenied as exc:
        out["analysts"] = {"refused": str(exc)}
    png: dict[str, Optional[bytes]] = {
        "estimates": plots.estimates_png(out["estimates"]["qa_audit"]["per_policy"]),
        "override_rate": plots.override_rate_png(out["overrides"]["windows"], out["overrides"]["by_model_version"]
                                                 if len(out["overrides"]["by_model_version"]) > 1 else None,
                                                 title=f"Override rate per window of {out['overrides']['window']}"),
        "reliability": plots.reliability_png(proba, y, config.confidence) if len(scored) else None,
    }
    values = out["overrides"].pop("_score_values")
    png["score_split"] = plots.score_split_png(values["confirmed"], values["overridden"])
    if drift_config is not None:
        from .drift import drift_markdown, drift_report, plot_drift

        try:
            report = drift_report(store, drift_config, taxonomy, now=now)
        except ValueError as exc:
            out["drift"] = {"error": f"Drift not computed: {exc}"}
        else:
            out["drift"] = {**report.to_dict(), "markdown": drift_markdown(report)}
            png["drift"] = plots.figure_png(plot_drift(report))
    out["_png"] = {k: v for k, v in png.items() if v is not None}
    return out


TITLE = "Model evaluation against human decisions"


def _header(s: dict[str, Any]) -> str:
    from .render import plain

    return (f"Generated {s['generated'][:16].replace('T', ' ')} UTC · taxonomy {plain(s['taxonomy_version'])} · "
            f"model {plain(s['model_version'] or 'all versions')}")


def summary_html(summary: dict[str, Any]) -> str:
    """The report as an HTML fragment with the plots inlined: what the UI's Evaluation tab shows."""
    from .render import report_body_html
    from .sections import evaluation_sections

    return report_body_html(TITLE, _header(summary), evaluation_sections(summary), summary["_png"])


def write_report(store: Store, taxonomy: Taxonomy, out_dir: str | Path, model_version: Optional[str] = None,
                 actor: Actor = SYSTEM["system"], *, config: EvaluationConfig, drift_config: Any = None,
                 now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """report.md with PNG files beside it, and report.html with the same plots embedded (one
    self-contained file). Needs `evaluate`. Returns the figures (JSON-ready) and the paths."""
    check_permission(actor, "evaluate", str(out_dir))
    from .render import report_html, report_markdown, write_atomic
    from .sections import evaluation_sections

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = evaluation_summary(store, taxonomy, actor, config=config, drift_config=drift_config,
                                 model_version=model_version, now=now)
    pngs = summary.pop("_png")
    files = {"reliability": "reliability_human.png"}
    images = {name: files.get(name, f"{name}.png") for name in pngs}
    sections = evaluation_sections(summary)
    header = _header(summary)
    md, page = out / "report.md", out / "report.html"
    # everything rendered before anything is written, and each file replaced in one step: a
    # rendering error left a new report.md beside the last run's report.html, and a reader
    # could open a half-written PNG or page
    texts = {md: report_markdown(TITLE, header, sections, images), page: report_html(TITLE, header, sections, pngs)}
    for name, data in pngs.items():
        write_atomic(out / images[name], data)
    for path, text in texts.items():
        write_atomic(path, text)
    summary.update(report=str(md), html=str(page), plots={k: str(out / v) for k, v in images.items()})
    if summary.get("drift"):
        summary["drift"].pop("markdown", None)
    return summary
