"""The model measured against human decisions, and drift between time windows, from the store.

`model_quality` joins each current human label with the prediction the analyst saw (same item,
same model version) and reports override rates (per model label and per day), precision /
recall / F1 and calibration; the same figures on the uniformly drawn QA-audit cases give
estimates free of the bias of model-ranked review. `agreement` reads calibration sets;
`score_drift` compares score distributions of two windows. `write_report` puts it all in a
Markdown report with PNG plots, the same figures the UI shows.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

import numpy as np
from sqlalchemy import and_, func, select

from core.hooks import check_permission
from core.principals import SYSTEM, Actor
from core.labels import AUTHORITATIVE_KINDS, current_decisions
from core.predictions import champion_version
from core.schema import Case, Decision, Item, Prediction
from core.store import Store
from core.taxonomy import Taxonomy

from . import metrics as em

_CHUNK = 900


def one_per_labelling_act(conn: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decision rows with a bulk decision's members collapsed to one row per distinct text.

    A campaign decided in one action labels hundreds of copies of a few texts: counted as
    independent labels they would swamp every rate. Rows of other kinds pass through unchanged.
    """
    I = Item.__table__
    bulk_ids = [r["item_id"] for r in rows if r["kind"] == "bulk"]
    hashes: dict[str, str] = {}
    for i in range(0, len(bulk_ids), _CHUNK):
        hashes.update(dict(conn.execute(select(I.c.id, I.c.text_hash).where(I.c.id.in_(bulk_ids[i:i + _CHUNK]))).all()))
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        if r["kind"] == "bulk":
            key = (r["case_id"], r["label"], hashes.get(r["item_id"], r["item_id"]))
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def decision_rows(store: Store, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Current human labels joined with the scores the model showed when each was decided."""
    P, C = Prediction.__table__, Case.__table__
    with store.read() as conn:
        decided = current_decisions(conn, kinds=AUTHORITATIVE_KINDS)
        rows = one_per_labelling_act(conn, [d for d in decided.values() if d["model_version"] and d["model_label"]])
        scores: dict[tuple[str, str], dict[str, float]] = {}
        audit_cases: set[int] = set()
        ids = [r["item_id"] for r in rows]
        for i in range(0, len(ids), _CHUNK):
            part = ids[i:i + _CHUNK]
            for p in conn.execute(select(P.c.item_id, P.c.model_version, P.c.scores).where(P.c.item_id.in_(part))):
                scores[(p.item_id, p.model_version)] = p.scores
        case_ids = [r["case_id"] for r in rows if r["case_id"] is not None]
        for i in range(0, len(case_ids), _CHUNK):
            audit_cases |= {c for (c,) in conn.execute(select(C.c.id).where(
                C.c.id.in_(case_ids[i:i + _CHUNK]), C.c.is_audit.is_(True)))}
    out = []
    for r in rows:
        sc = scores.get((r["item_id"], r["model_version"]))
        if r["label"] not in taxonomy.policies or r["model_label"] not in taxonomy.policies:
            continue
        out.append({"item_id": r["item_id"], "human": r["label"], "model": r["model_label"],
                    "model_version": r["model_version"], "decided_at": r["created_at"], "kind": r["kind"],
                    "is_audit": r["case_id"] in audit_cases or r["kind"] == "qa_audit",
                    "proba": [float(sc.get(lab, 0.0)) for lab in taxonomy.labels] if sc else None})
    return out


def _quality(rows: list[dict[str, Any]], taxonomy: Taxonomy) -> dict[str, Any]:
    from models.metrics import classification_summary

    if not rows:
        return {"n": 0}
    idx = {lab: i for i, lab in enumerate(taxonomy.labels)}
    y = np.array([idx[r["human"]] for r in rows])
    yhat = np.array([idx[r["model"]] for r in rows])
    with_p = [r for r in rows if r["proba"] is not None]
    out = classification_summary(y, yhat, taxonomy.labels)
    if len(with_p) == len(rows):
        proba = np.array([r["proba"] for r in rows])
        proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
        from models.metrics import expected_calibration_error

        out["ece"] = expected_calibration_error(proba, y)
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
    """Inter-analyst agreement per calibration set: Cohen's kappa for 2 raters, Fleiss' for more."""
    D, C = Decision.__table__, Case.__table__
    with store.read() as conn:
        rows = conn.execute(select(C.c.calibration_set, D.c.item_id, D.c.reviewer, D.c.label)
                            .join(C, C.c.id == D.c.case_id)
                            .where(D.c.kind == "calibration", C.c.calibration_set.is_not(None))).all()
    out: dict[str, Any] = {}
    sets: dict[str, dict[str, dict[str, str]]] = {}
    for cal, item, reviewer, label in rows:
        sets.setdefault(cal, {}).setdefault(item, {})[reviewer] = label
    for cal, items in sets.items():
        sizes = {len(v) for v in items.values()}
        r = max(sizes) if sizes else 0
        full = {i: v for i, v in items.items() if len(v) == r and r >= 2}
        if r == 2:
            pairs = [tuple(sorted(v.values())) for v in full.values()]
            kappa = em.cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs])
            method = "cohen"
        elif r > 2:
            cats = sorted({lab for v in full.values() for lab in v.values()})
            counts = np.array([[list(v.values()).count(c) for c in cats] for v in full.values()])
            kappa, method = em.fleiss_kappa(counts) if len(counts) else None, "fleiss"
        else:
            kappa, method = None, None
        out[cal] = {"items": len(full), "raters_per_item": r, "kappa": kappa, "method": method}
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
            return np.array([[float(s.get(lab, 0.0)) for lab in taxonomy.labels] for (s,) in conn.execute(q)]
                            ).reshape(-1, len(taxonomy.labels))

        ref, cur = window(reference), window(current)
    out: dict[str, Any] = {"model_version": version, "reference": [reference[0].isoformat(), reference[1].isoformat()],
                           "current": [current[0].isoformat(), current[1].isoformat()],
                           "n_reference": len(ref), "n_current": len(cur), "per_label": {}}
    if len(ref) and len(cur):
        for j, lab in enumerate(taxonomy.labels):
            ks = em.ks_statistic(ref[:, j], cur[:, j])
            out["per_label"][lab] = {"psi": em.psi(ref[:, j], cur[:, j]), "ks": ks["statistic"],
                                     "ks_pvalue": ks["pvalue"], "mean_ref": float(ref[:, j].mean()),
                                     "mean_cur": float(cur[:, j].mean())}
        out["max_psi"] = max(v["psi"] for v in out["per_label"].values())
        out["_arrays"] = (ref, cur)
    return out


def _as_dt(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))


def write_report(store: Store, taxonomy: Taxonomy, out_dir: str | Path,
                 model_version: Optional[str] = None, actor: Actor = SYSTEM["system"]) -> dict[str, Any]:
    """Markdown report with PNG plots: override rate over time, reliability, score drift. Needs `evaluate`."""
    check_permission(actor, "evaluate", str(out_dir))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.metrics import plot_reliability

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    quality = model_quality(store, taxonomy, model_version)
    agree = agreement(store)
    drift = score_drift(store, taxonomy, model_version=model_version)
    pngs: dict[str, str] = {}

    days = quality["override_by_day"]
    if days:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(list(days), [v["rate"] for v in days.values()], marker="o")
        ax.set_ylabel("override rate")
        ax.set_ylim(0, 1)
        ax.set_title("Human overrides of the model, per day")
        fig.autofmt_xdate()
        fig.tight_layout()
        pngs["override_rate"] = str(out / "override_rate.png")
        fig.savefig(pngs["override_rate"], dpi=100)
        plt.close(fig)
    rows = [r for r in decision_rows(store, taxonomy) if r["proba"] is not None
            and (model_version is None or r["model_version"] == model_version)]
    if rows:
        idx = {lab: i for i, lab in enumerate(taxonomy.labels)}
        proba = np.array([r["proba"] for r in rows])
        pngs["reliability"] = plot_reliability(proba, np.array([idx[r["human"]] for r in rows]),
                                               str(out / "reliability_human.png"), "Calibration on human labels")
    arrays = drift.pop("_arrays", None)
    if arrays is not None:
        ref, cur = arrays
        k = len(taxonomy.labels)
        fig, axes = plt.subplots(1, k, figsize=(3 * k, 2.8), sharey=False)
        for j, lab in enumerate(taxonomy.labels):
            axes[j].hist(ref[:, j], bins=20, range=(0, 1), alpha=0.6, density=True, label="reference")
            axes[j].hist(cur[:, j], bins=20, range=(0, 1), alpha=0.6, density=True, label="current")
            axes[j].set_title(f"{lab}\nPSI {drift['per_label'][lab]['psi']:.3f}", fontsize=9)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        pngs["score_drift"] = str(out / "score_drift.png")
        fig.savefig(pngs["score_drift"], dpi=100)
        plt.close(fig)

    def pct(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = ["# Model evaluation against human decisions", "",
             f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · taxonomy {taxonomy.version} · "
             f"model {model_version or 'all versions'}", "",
             f"- decisions joined with the prediction the analyst saw: **{quality['decisions']}** "
             f"({quality['qa_audit_decisions']} from the uniform QA-audit sample)",
             f"- override rate: **{pct(quality['override_rate'])}**", ""]
    for title, key in (("All decisions (model-ranked review: recall is not estimable here)", "all_decisions"),
                       ("QA-audit sample (uniform draw: unbiased precision and recall)", "qa_audit_sample")):
        q = quality[key]
        lines += [f"## {title}", ""]
        if not q.get("n"):
            lines += ["No decisions yet.", ""]
            continue
        lines += [f"n = {q['n']}, accuracy {q['accuracy']:.3f}, macro F1 {q['macro_f1']:.3f}"
                  + (f", ECE {q['ece']:.3f}" if "ece" in q else ""), "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                  for lab, v in q["per_label"].items()]
        lines.append("")
    lines += ["## Overrides per model label", "", "| model label | decisions | overrides | rate |", "|---|---|---|---|"]
    lines += [f"| {lab} | {v['n']} | {v['overrides']} | {pct(v['rate'])} |"
              for lab, v in quality["override_by_model_label"].items()]
    lines += ["", "## Agreement between analysts (calibration sets)", ""]
    lines += [f"- {name}: {v['items']} items x {v['raters_per_item']} raters, {v['method']} kappa "
              + ("n/a" if v["kappa"] is None else f"{v['kappa']:.3f}")
              for name, v in agree.items()] or ["No calibration decisions yet."]
    lines += ["", "## Score drift", ""]
    if "per_label" in drift and drift["per_label"]:
        lines += [f"Reference {drift['reference'][0]} – {drift['reference'][1]} (n={drift['n_reference']}), current "
                  f"{drift['current'][0]} – {drift['current'][1]} (n={drift['n_current']}). PSI < 0.1 stable, "
                  "0.1–0.25 moderate, > 0.25 significant.", "", "| label | PSI | KS | mean ref | mean cur |",
                  "|---|---|---|---|---|"]
        lines += [f"| {lab} | {v['psi']:.3f} | {v['ks']:.3f} | {v['mean_ref']:.3f} | {v['mean_cur']:.3f} |"
                  for lab, v in drift["per_label"].items()]
    else:
        lines.append(drift.get("error", "Not enough scored items in both windows."))
    lines += [""] + [f"![{name}]({Path(p).name})" for name, p in pngs.items()]
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"report": str(md), "plots": pngs, "quality": quality, "agreement": agree, "drift": drift}
