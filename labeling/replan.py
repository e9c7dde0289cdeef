"""Re-plans of waiting item cases after a promotion (`cases._rescore_open_cases`): what of a case's
meta the new plan replaces and what stays, a seed's place, and a case an escalation holds.

Moved out of `labeling.cases` (its size), unchanged.
"""
from __future__ import annotations

from typing import Any, Mapping

from core.taxonomy import Taxonomy

from .priority import ESCALATED_AT, tier_weight
from .queue_config import QueueConfig


def _keep_seed(row: dict[str, Any], old_meta: Mapping[str, Any], old_queue: str, config: QueueConfig) -> None:
    """A cold-start seed (`labeling.seeding`) keeps its pin, its queue and its record through a
    re-plan for a newer model: the engineer asked for it at the head of that queue, and the new
    model is the one the seeds are there to teach. An escalation criterion still wins."""
    pin = (old_meta.get("features") or {}).get("seed")
    if not pin or row["escalation_reason"] is not None:
        return
    row["meta"]["features"]["seed"] = pin
    row["meta"].update({k: old_meta[k] for k in ("seed", "seeded_from") if k in old_meta})
    row.update(queue=old_queue, state=config.waiting_state(old_queue))


# Meta a re-plan takes from the plan (`routing.plan_case`); other keys (a fold's `covered_by`, a
# packet, a seed's record) are what a person or a pass did, and stay. A learning pin does not: the
# old model's uncertainty chose it (`labeling.learning` re-plans the share); nor an uncarried seed.
_PLANNED_META = ("features", "terms", "scores", "long_text", "member_of_campaign", "learning", "seed", "seeded_from")
# The features a held case takes from the new prediction (as `labeling.rescore` refreshes one).
_MODEL_FEATURES = ("risk", "uncertainty", "label", "score", "campaign_size", "campaign_growth", "reports")


def _merged_meta(old: Mapping[str, Any], planned: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's meta over the case's own (a re-plan used to replace it all: `covered_by` went)."""
    return {**{k: v for k, v in old.items() if k not in _PLANNED_META}, **planned}


def _held_by_escalation(r: Any) -> bool:
    """True for a waiting case an escalation holds: folded under its campaign's escalated case
    (`covered_by`), or escalated itself and waiting again in an ordinary queue. Re-planned anew, it
    lost its fold, tier and window, or went back to the escalation queue beside its campaign's case."""
    meta, feats = r.case_meta or {}, (r.case_meta or {}).get("features") or {}
    return bool(meta.get("covered_by") is not None or meta.get("escalated_from") or feats.get("escalation")
                or feats.get(ESCALATED_AT) or r.case_escalation is not None)


def _refresh_held(taxonomy: Taxonomy, row: dict[str, Any], r: Any) -> None:
    """Turn the fresh plan `row` of a held case (`_held_by_escalation`) into a refresh of the
    model's part only: its queue, state, tier, due time, escalation reason and meta stay; label,
    scores and the model's features follow the new prediction. An escalated case's risk never
    drops below what the escalation set (at least its tier's weight), as in `labeling.rescore`."""
    old, fresh = dict(r.case_meta or {}), row["meta"]["features"]
    was = dict(old.get("features") or {})
    feats = dict(was, **{k: fresh[k] for k in _MODEL_FEATURES if k in fresh})
    feats["severity"] = r.case_severity
    if was.get("escalation") or r.case_escalation is not None:
        tier = r.case_severity if r.case_severity in taxonomy.severities else None
        feats["risk"] = max(float(fresh.get("risk") or 0.0), float(was.get("risk") or 0.0),
                            tier_weight(taxonomy, tier))
    meta = {**{k: v for k, v in old.items() if k != "long_text"}, "features": feats, "scores": row["meta"]["scores"],
            **{k: row["meta"][k] for k in ("long_text",) if k in row["meta"]}}
    row.update(queue=r.case_queue, state="open", severity=r.case_severity, due_at=r.case_due,
               escalation_reason=r.case_escalation, meta=meta)
