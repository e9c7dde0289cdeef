"""The models step of `workbench demo`: train (or reuse) the default model, then score everything.

Once there is a champion, the gate is the only way to replace it: a version trained or reused
here goes through the `gate` the caller passes (the application's `promote_through_gate`;
models/ sits below evaluation/ and cannot import it), and without one stays a challenger.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

    from .config import ModelsConfig
    from .training import TrainingSet

Gate = Callable[[str], dict[str, Any]]   # version -> `evaluation.promotion.promote_through_gate`'s result


def models_demo(store: "Store", taxonomy: "Taxonomy", cfg: "ModelsConfig", echo: Callable[..., None],
                data: "TrainingSet", validation: Optional["TrainingSet"],
                gate: Optional[Gate] = None, decisions_through: Optional[int] = None) -> dict[str, Any]:
    """Reuse a version of the default kind trained on exactly `data` and the taxonomy, else train
    one on `data` and validate it on `validation`; without a champion it becomes the first, with
    one it is promoted only through `gate` (none given: it stays a challenger). Then score every
    item with the champion. The caller splits (`workbench demo`: the campaign-grouped sides of
    `labeling.training_data`, as every model trained from the store)."""
    from .registry import ChampionChanged, champion, get_model, list_models, promote, train_model
    from .scoring import score_items

    kind = cfg.training.default_kind
    fingerprint = data.fingerprint()
    current = champion(store)
    matching = [m for m in list_models(store, include_retired=False)
                if m["kind"] == kind and m["data_fingerprint"] == fingerprint
                and m["taxonomy_version"] == taxonomy.version
                and m.get("artifact_sha256")]  # a version from before digests cannot be loaded
    reuse = next((m for m in matching if m["role"] == "champion"), matching[0] if matching else None)
    if reuse is None and len(set(data.labels)) < 2:
        if current is None:
            echo("  no labelled items to train on and no champion yet: skipping model training and scoring")
            return {"skipped": "no labelled items and no champion"}
        reuse = current
        echo(f"  too few labelled items to train; scoring with the champion {current['id']}")
    out: dict[str, Any] = {}
    if reuse is not None:
        if reuse["data_fingerprint"] == fingerprint:
            echo(f"  reusing {reuse['id']} (same training data fingerprint {fingerprint[:12]})")
        candidate = reuse
    else:
        candidate = train_model(store, taxonomy, kind=kind, config=cfg, actor="demo", data=data, validation=validation,
                                promote_if="never" if current else "no_champion", train_side_only=True,
                                decisions_through=decisions_through, echo=echo)
        m = candidate["metrics"]
        echo(f"  trained {candidate['id']}: validation accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}, "
             f"ECE {m['ece']:.3f}; diagram {candidate['reliability_png']}")
    if candidate["role"] != "champion":
        if current is None:
            try:  # another process may have made the first champion since: the gate is due then
                promote(store, candidate["id"], actor="demo", reason="demo: the first champion", expect_champion=None)
            except ChampionChanged as exc:
                echo(f"  not promoted: {exc}")
        elif gate is not None:
            verdict = gate(candidate["id"])
            out["gate"] = verdict["gate"]["reason"]
            echo(f"  {candidate['id']} vs champion {current['id']}: "
                 + ("promoted" if verdict["promoted"] else "not promoted") + f" through the gate: {out['gate']}")
        else:
            echo(f"  {candidate['id']} stays a challenger beside the champion {current['id']}: promote it through "
                 f"the gate with `workbench models promote {candidate['id']}`")
    row = get_model(store, "champion")
    summary = score_items(store, taxonomy, model_version=row["id"], config=cfg)
    echo("  " + summary.describe())
    metrics = row["metrics"] or {}
    return {**out, "model_version": row["id"], "reused": reuse is not None, "candidate": candidate["id"],
            "validation": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "ece")},
            "scoring": summary.as_dict()}
