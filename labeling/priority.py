"""Priority: pure functions over arrays that decide the order a queue is worked in.

A case's priority is a configurable sum of weighted terms (severity-weighted risk, uncertainty,
campaign size and growth, user reports, SLA urgency) with a one-line explanation. The queue
simulation benchmark runs these same functions, so it measures the product's ordering.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping, Optional

import numpy as np

from core.taxonomy import Taxonomy

from .queue_config import PriorityConfig, QueueConfig

# A priority reason starts with this and the escalation's reason (up to "; ") when escalated: the
# reason may quote the text, so `masking.mask_packet` masks that part on a masked case.
ESCALATED = "ESCALATED "

TERMS = ("risk", "uncertainty", "campaign_size", "campaign_growth", "reports", "urgency")


PRIORITY_EPSILON = 1e-4  # a sweep rewrites a case's priority only when it moved more than this


URGENCY_CAP = 1.5  # an overdue case keeps gaining, up to half a deadline past due


def label_harm_weights(taxonomy: Taxonomy) -> np.ndarray:
    """Per policy label (taxonomy order), its tier's harm weight over the largest tier weight; benign 0."""
    top = max(s.weight for s in taxonomy.severities.values())
    return np.array([taxonomy.severities[p.severity].weight / top if p.violating and p.severity else 0.0
                     for p in taxonomy.policies.values()], dtype=float)


def tier_weight(taxonomy: Taxonomy, tier: Optional[str]) -> float:
    """A tier's harm weight over the largest tier weight (0 for no tier); a stored tier no longer
    configured weighs as the lowest tier (`Taxonomy.stored_tier`)."""
    if not tier:
        return 0.0
    return taxonomy.severities[taxonomy.stored_tier(tier)].weight / max(s.weight for s in taxonomy.severities.values())


def risk_scores(probs: np.ndarray, harm_weights: np.ndarray) -> np.ndarray:
    """Expected normalised harm per row: probs (n x labels) @ harm weights, in [0, 1]."""
    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    return np.clip(probs @ np.asarray(harm_weights, dtype=float), 0.0, 1.0)


def sla_used(created: np.ndarray, due: np.ndarray, now: np.ndarray | float) -> np.ndarray:
    """Share of the SLA window elapsed, (now - created) / (due - created), in [0, URGENCY_CAP].

    Inputs are numbers on one clock (e.g. epoch seconds); a case without a window gets 0.
    """
    created = np.asarray(created, dtype=float)
    window = np.asarray(due, dtype=float) - created
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(window > 0, (np.asarray(now, dtype=float) - created) / window, 0.0)
    return np.clip(np.nan_to_num(used), 0.0, URGENCY_CAP)


def priority_terms(config: PriorityConfig, risk: Any, uncertainty: Any = 0.0, campaign_size: Any = 0,
                   campaign_growth: Any = 0.0, reports: Any = 0, urgency: Any = 0.0,
                   tier_weight: Any = 0.0) -> dict[str, np.ndarray]:
    """Each term's weighted contribution per case (broadcast arrays); the priority is their sum.

    `urgency` is the share of the SLA used (see `sla_used`); it is scaled by the case's tier
    weight so that only urgent tiers jump the queue as their deadline nears.
    """
    w = config.weights
    size = np.log1p(np.maximum(np.asarray(campaign_size, dtype=float), 0.0)) / math.log1p(config.campaign_size_ref)
    rep = np.log1p(np.maximum(np.asarray(reports, dtype=float), 0.0)) / math.log1p(config.reports_ref)
    terms = {
        "risk": w.risk * np.clip(np.asarray(risk, dtype=float), 0.0, 1.0),
        "uncertainty": w.uncertainty * np.clip(np.asarray(uncertainty, dtype=float), 0.0, 1.0),
        "campaign_size": w.campaign_size * np.clip(size, 0.0, 1.0),
        "campaign_growth": w.campaign_growth * np.clip(np.asarray(campaign_growth, dtype=float), 0.0, 1.0),
        "reports": w.reports * np.clip(rep, 0.0, 1.0),
        "urgency": w.urgency * np.clip(np.asarray(urgency, dtype=float), 0.0, URGENCY_CAP)
        * np.clip(np.asarray(tier_weight, dtype=float), 0.0, 1.0),
    }
    n = np.broadcast(*terms.values()).shape
    return {k: np.broadcast_to(v, n).astype(float) for k, v in terms.items()}


def priority_scores(config: PriorityConfig, **features: Any) -> np.ndarray:
    """The priority of each case: the sum of `priority_terms` (higher is reviewed first)."""
    return np.sum(list(priority_terms(config, **features).values()), axis=0)


def sla_lapsing(minutes_left: Any, sla_minutes: Any, eligible: Any, remaining_fraction: float) -> np.ndarray:
    """True where an eligible case has at most `remaining_fraction` of its SLA left (or is overdue)."""
    left = np.asarray(minutes_left, dtype=float)
    return np.asarray(eligible, dtype=bool) & (left <= remaining_fraction * np.asarray(sla_minutes, dtype=float))


def explain_priority(priority: float, terms: Mapping[str, float], features: Mapping[str, Any]) -> str:
    """One line answering "why is this first?": the total and its non-zero terms, largest first."""
    def describe(name: str, value: float) -> str:
        f = features
        if name == "risk":
            return f"risk {value:.3f} ({f.get('label')} p={f.get('score', 0):.2f}, {f.get('severity') or 'no tier'})"
        if name == "urgency":
            return f"urgency {value:.3f} ({f.get('sla_used', 0):.0%} of {f.get('severity')} SLA used)"
        if name == "uncertainty":
            return f"uncertainty {value:.3f} (model unsure {f.get('uncertainty', 0):.2f})"
        if name == "campaign_size":
            return f"campaign {value:.3f} ({int(f.get('campaign_size', 0))} items)"
        if name == "campaign_growth":
            return f"growth {value:.3f} ({f.get('campaign_growth', 0):.0%} new in window)"
        return f"reports {value:.3f} ({int(f.get('reports', 0))} user reports)"

    parts = [describe(k, v) for k, v in sorted(terms.items(), key=lambda kv: -kv[1]) if v >= 5e-4]
    head = f"{ESCALATED}{features['escalation']}; " if features.get("escalation") else ""
    return f"{head}{priority:.3f} = " + (" + ".join(parts) if parts else "no risk signal")


class PriorityError(ValueError):
    """A case's features hold a number no priority can be computed from (NaN, infinite, negative)."""


_NUMERIC = ("risk", "uncertainty", "campaign_size", "campaign_growth", "reports", "score")

# A count from the feed (user reports, campaign members) as a priority feature: past this its
# term is long saturated (`reports_ref`, `campaign_size_ref`), and a float holds it exactly.
MAX_COUNT = 10**9


def feed_count(value: Any) -> int:
    """A count an item's metadata or a campaign gives (user reports, members) as a feature: 0 for a
    negative one, at most `MAX_COUNT`. A reports value of -1 in an ingested row made the item's
    case refused (`features_problem`: never queued), and one of 400 digits overflowed `float` and
    stopped every case build; the count only raises a saturating term, so neither means anything."""
    return min(max(int(value), 0), MAX_COUNT)


def features_problem(features: Mapping[str, Any]) -> Optional[str]:
    """Why a case's stored features cannot be ranked (one line naming the feature), or None.

    A NaN from a broken model passed `np.clip` untouched and made the priority NaN, which the
    store refused for the whole build (`cases.priority` is NOT NULL); `score_features` raises
    `PriorityError` with this reason instead, so a caller can skip that one case and count it.
    A feature stored as null is a missing one (its default, `score_features`)."""
    for name in _NUMERIC:
        v = features.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"feature {name} is {type(v).__name__} {str(v)[:40]!r}, not a number"
        if isinstance(v, int) and v > MAX_COUNT:  # float() of a long one overflows
            return f"feature {name} is over {MAX_COUNT:,}"
        if not math.isfinite(v) or v < 0:
            return f"feature {name} is {v:g}" + ("" if math.isfinite(v) else " (a model score was not a number)")
    return None


def utc_naive(t: dt.datetime) -> dt.datetime:
    """`t` as the store keeps times: naive UTC. An aware time (any zone, either side of a DST change)
    is converted, so an SLA window is measured in elapsed time, never in a zone's wall-clock time."""
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def _epoch(t: dt.datetime) -> float:
    return (utc_naive(t) - dt.datetime(1970, 1, 1)).total_seconds()


# Features that pin a case's place in its queue (set by `labeling.learning` and `labeling.seeding`):
# {"priority": p, "why": "..."}; a sweep keeps the pinned priority instead of recomputing it.
PINNED = ("seed", "learning")


def pinned(features: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    """(priority, reason) where a learning or seed pass placed the case, else None. A pin that is
    no finite number (NaN or infinity in hand-edited meta, a bool) is none: it made the priority
    NaN, which a sweep never rewrote (no difference from NaN exceeds `PRIORITY_EPSILON`)."""
    for key in PINNED:
        pin = features.get(key)
        p = pin.get("priority") if isinstance(pin, Mapping) else None
        if isinstance(p, (int, float)) and not isinstance(p, bool) and abs(p) <= MAX_COUNT:  # not NaN nor infinity
            return float(p), f"{key}: {pin.get('why') or ''}".rstrip(": ")
    return None


# The feature `labeling.escalation` sets when a case enters the escalation queue (ISO time, naive UTC):
# the escalation has its own SLA window, so its urgency clock starts there, not at the case's creation.
ESCALATED_AT = "escalated_at"
# The feature `routing.plan_case` sets when an item's case was built after the item arrived (its
# `ingested_at`, ISO, naive UTC): the SLA is owed from the arrival, so its clock starts there.
ARRIVED_AT = "arrived_at"


def _feature_time(features: Mapping[str, Any], key: str) -> Optional[dt.datetime]:
    at = features.get(key)
    if not isinstance(at, str):
        return None
    try:
        return utc_naive(dt.datetime.fromisoformat(at))
    except (ValueError, OverflowError):  # hand-edited meta (a year-9999 time west of UTC): none
        return None


def sla_start(features: Mapping[str, Any], created: dt.datetime, due: Optional[dt.datetime]) -> dt.datetime:
    """When a case's SLA clock started: its escalation (`ESCALATED_AT`) where one lies between its
    creation and its due time, else its item's arrival (`ARRIVED_AT`) where that came before the
    creation, else its creation. Without the first, a case escalated after 20 hours in a 24-hour
    queue showed 83% of its SLA used the moment it reached the escalation queue; without the
    second, an item cased a day after it arrived showed 0% used, beside a due time already near."""
    start = _feature_time(features, ESCALATED_AT)
    if start is not None and utc_naive(created) <= start and (due is None or start < utc_naive(due)):
        return start
    arrived = _feature_time(features, ARRIVED_AT)
    if arrived is not None and arrived < utc_naive(created) and (due is None or arrived < utc_naive(due)):
        return arrived
    return created


def score_features(taxonomy: Taxonomy, features: Mapping[str, Any], config: QueueConfig,
                   created: dt.datetime, due: Optional[dt.datetime], now: dt.datetime) -> tuple[float, str, dict[str, float]]:
    """(priority, one-line reason, term contributions) of one case from its stored features.

    A case a learning or seed pass placed (`pinned`) keeps that priority; its reason says why.
    Features no priority can come from (`features_problem`) raise `PriorityError`, never a NaN."""
    problem = features_problem(features)
    if problem is not None:
        raise PriorityError(f"no priority: {problem}")
    # A number stored as null is missing, as `features_problem` reads it: `np.asarray(None,
    # dtype=float)` is NaN, which made the priority NaN (frozen by the sweep, see `pinned`).
    features = {k: v for k, v in features.items() if not (v is None and k in _NUMERIC)}
    used = float(sla_used(_epoch(sla_start(features, created, due)), _epoch(due), _epoch(now))) if due else 0.0
    terms = priority_terms(config.priority, risk=features.get("risk", 0.0),
                           uncertainty=features.get("uncertainty", 0.0),
                           campaign_size=features.get("campaign_size", 0),
                           campaign_growth=features.get("campaign_growth", 0.0),
                           reports=features.get("reports", 0), urgency=used,
                           tier_weight=tier_weight(taxonomy, features.get("severity")))
    flat = {k: float(v) for k, v in terms.items()}
    total = float(sum(flat.values()))
    reason = explain_priority(total, flat, {**features, "sla_used": used})
    pin = pinned(features)
    if pin is not None and not features.get("escalation"):
        total, reason = pin[0], f"{pin[1]} (risk order would give {total:.3f})"
    return total, reason, {k: round(v, 6) for k, v in flat.items()}
