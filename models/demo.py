"""The models step of `workbench demo`: train (or reuse) the default model, then score everything."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

    from .config import ModelsConfig
    from .training import TrainingSet


def models_demo(store: "Store", taxonomy: "Taxonomy", cfg: "ModelsConfig", echo: Callable[..., None],
                data: "TrainingSet", validation: Optional["TrainingSet"]) -> dict[str, Any]:
    """Reuse a version of the default kind trained on exactly `data` and the taxonomy (promoting
    it if needed), else train one on `data`, validate it on `validation` and promote it; then
    score every item. The caller splits (`workbench demo`: the campaign-grouped sides of
    `labeling.training_data`, as every model trained from the store)."""
    from .registry import champion, list_models, promote, train_model
    from .scoring import score_items

    kind = cfg.training.default_kind
    fingerprint = data.fingerprint()
    reuse = next((m for m in list_models(store, include_retired=False)
                  if m["kind"] == kind and m["data_fingerprint"] == fingerprint
                  and m["taxonomy_version"] == taxonomy.version
                  and m.get("artifact_sha256")), None)  # a version from before digests cannot be loaded
    if reuse is None and len(set(data.labels)) < 2:
        current = champion(store)
        if current is None:
            echo("  no labelled items to train on and no champion yet: skipping model training and scoring")
            return {"skipped": "no labelled items and no champion"}
        reuse = current
        echo(f"  too few labelled items to train; scoring with the champion {current['id']}")
    if reuse is not None:
        if reuse["data_fingerprint"] == fingerprint:
            echo(f"  reusing {reuse['id']} (same training data fingerprint {fingerprint[:12]})")
        if reuse["role"] != "champion":
            promote(store, reuse["id"], actor="demo", reason="demo: matches current training data")
        version, metrics = reuse["id"], reuse["metrics"]
    else:
        row = train_model(store, taxonomy, kind=kind, config=cfg, promote_if="always", actor="demo",
                          data=data, validation=validation, train_side_only=True, echo=echo)
        version, metrics = row["id"], row["metrics"]
        echo(f"  trained {version}: validation accuracy {metrics['accuracy']:.3f}, macro F1 "
             f"{metrics['macro_f1']:.3f}, ECE {metrics['ece']:.3f}; diagram {row['reliability_png']}")
    summary = score_items(store, taxonomy, model_version=version, config=cfg)
    echo("  " + summary.describe())
    return {"model_version": version, "reused": reuse is not None,
            "validation": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "ece")},
            "scoring": summary.as_dict()}
