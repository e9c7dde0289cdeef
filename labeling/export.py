"""Export labels as a Hugging Face dataset: the hand-off from review to training and evaluation.

Each row is an item with its current label: the latest non-superseded human decision where
there is one (`label_origin = "human"`), else, on request, the source's own label mapped
through the taxonomy (`"source"`). The label is a `ClassLabel` over the taxonomy's policies, in
the class order every model uses, and each row keeps what an auditor asks for: who decided,
the action and policy reference, the rationale, and what the model said at the time.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import select

from core.hooks import check_permission
from core.principals import SYSTEM, Actor
from core.schema import Item
from core.store import Store
from core.taxonomy import Taxonomy

from core.labels import AUTHORITATIVE_KINDS, current_decisions

from .notes import export_fields

if TYPE_CHECKING:  # pragma: no cover
    from models.config import LearningSettings

_CHUNK = 900
COLUMNS = ["id", "text", "label", "label_origin", "source", "surface", "author_id", "created_at",
           "source_label", "decision_id", "decision_kind", "reviewer", "action", "severity", "policy_ref",
           "rationale", "decided_at", "model_version", "model_label", "model_score", "is_override",
           "taxonomy_version", "notes", "tags", "split"]


class ExportError(RuntimeError):
    """Nothing to export, or the destination cannot be written."""


def label_rows(store: Store, taxonomy: Taxonomy, include_source_labels: bool = False,
               source: Optional[str] = None) -> list[dict[str, Any]]:
    """One dict per labelled item (human decisions first, source labels if asked), sorted by id."""
    I = Item.__table__
    with store.read() as conn:
        decided = current_decisions(conn, kinds=AUTHORITATIVE_KINDS)
        ids = sorted(decided)
        items: dict[str, Any] = {}
        for i in range(0, len(ids), _CHUNK):
            for r in conn.execute(select(I).where(I.c.id.in_(ids[i:i + _CHUNK]))).mappings():
                items[r["id"]] = r
        if include_source_labels:
            q = select(I).where(I.c.policy_label.is_not(None))
            if source:
                q = q.where(I.c.source == source)
            for r in conn.execute(q).mappings():
                items.setdefault(r["id"], r)
        extra = export_fields(conn, list(items))  # analysts' notes and tags travel with the labels
    rows = []
    for item_id in sorted(items):
        it = items[item_id]
        if source and it["source"] != source:
            continue
        d = decided.get(item_id)
        if d is None and not include_source_labels:
            continue
        label = d["label"] if d else it["policy_label"]
        if label not in taxonomy.policies:
            continue  # a label of an older taxonomy with no counterpart now; re-map before exporting
        rows.append({
            "id": item_id, "text": it["text"], "label": label, "label_origin": "human" if d else "source",
            "source": it["source"], "surface": it["surface"], "author_id": it["author_id"],
            "created_at": _iso(it["created_at"]), "source_label": it["source_label"],
            "decision_id": d["id"] if d else None, "decision_kind": d["kind"] if d else None,
            "reviewer": d["reviewer"] if d else None, "action": d["action"] if d else None,
            "severity": d["severity"] if d else None, "policy_ref": d["policy_ref"] if d else None,
            "rationale": d["rationale"] if d else None, "decided_at": _iso(d["created_at"]) if d else None,
            "model_version": d["model_version"] if d else None, "model_label": d["model_label"] if d else None,
            "model_score": d["model_score"] if d else None, "is_override": bool(d["is_override"]) if d else None,
            "taxonomy_version": (d["taxonomy_version"] if d else it["taxonomy_version"]) or taxonomy.version,
            **extra[item_id],
        })
    return rows


def _iso(v: Any) -> Optional[str]:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def to_dataset(rows: list[dict[str, Any]], taxonomy: Taxonomy) -> Any:
    """A `datasets.Dataset` with `label` as a ClassLabel in the taxonomy's class order."""
    import datasets

    feats = datasets.Features({
        **{c: datasets.Value("string") for c in COLUMNS},
        "label": datasets.ClassLabel(names=taxonomy.labels),
        "decision_id": datasets.Value("int64"),
        "model_score": datasets.Value("float64"),
        "is_override": datasets.Value("bool"),
    })
    cols = {c: [r.get(c) for r in rows] for c in COLUMNS}
    cols["label"] = [taxonomy.labels.index(lab) for lab in cols["label"]]
    return datasets.Dataset.from_dict(cols, features=feats)


def export_labels(store: Store, taxonomy: Taxonomy, out_dir: str | Path, include_source_labels: bool = False,
                  source: Optional[str] = None, push_to_hub: Optional[str] = None,
                  actor: Actor = SYSTEM["system"], splits: Optional["LearningSettings"] = None) -> dict[str, Any]:
    """Write the labels as a dataset folder (`save_to_disk`) plus a Parquet file; optionally push.
    Needs `export`. With `splits` (models.yaml `learning`), each row carries its side of the
    campaign-grouped training split (`split`: train / test / excluded), the one `workbench
    retrain` uses (`labeling.training_data.assign_splits`; stored, so it never moves)."""
    from core import audit

    check_permission(actor, "export", str(out_dir))

    rows = label_rows(store, taxonomy, include_source_labels, source)
    if not rows:
        raise ExportError("no labels to export: decide some cases first, or pass --include-source-labels")
    warnings: list[str] = []
    if splits is not None:
        from .training_data import assign_splits, group_keys

        with store.read() as conn:
            groups = group_keys(conn, {r["id"]: r["text"] for r in rows})
        sides = assign_splits(store, groups, splits, actor, action="export")
        for r in rows:
            r["split"] = sides[r["id"]]
        warnings = sides.warnings
    ds = to_dataset(rows, taxonomy)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        ds.save_to_disk(str(out / "dataset"))
        ds.to_parquet(str(out / "labels.parquet"))
    except OSError as exc:
        raise ExportError(f"{out}: cannot write the export: {exc}") from None
    if push_to_hub:
        ds.push_to_hub(push_to_hub)
    origins = {o: sum(1 for r in rows if r["label_origin"] == o) for o in ("human", "source")}
    counts = {lab: sum(1 for r in rows if r["label"] == lab) for lab in taxonomy.labels}
    summary = {"rows": len(rows), "by_origin": origins, "by_label": counts, "path": str(out / "dataset"),
               "parquet": str(out / "labels.parquet"), "taxonomy_version": taxonomy.version,
               "pushed_to": push_to_hub, "warnings": warnings}
    with store.begin() as conn:
        audit.record(conn, actor, "labels.export", "dataset", str(out), summary)
    return summary
