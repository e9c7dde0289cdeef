"""Routing: which queue, severity, due time, escalation and priority a new case gets.

`plan_case` turns a candidate (a scored item, or a campaign as one case) into the row of its
case, following the routing rules of `configs/queues.yaml` and the escalation criteria and SLA
tiers of the taxonomy.

A long text the model read in windows or only in part (prediction flags `windowed` or
`truncated`, see `models.scoring`) is never trusted as benign: it skips every route that only
takes benign predictions (the low-risk queue), so it lands in its policy's queue or the default
queue, where a person reads it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from core.taxonomy import EscalationCriterion, Taxonomy
from core.text import pattern_search

from .priority import (ARRIVED_AT, feed_count, label_harm_weights, risk_scores, score_features, tier_weight,
                       utc_naive)
from .queue_config import QueueConfig
from .sampling import audit_draw

@dataclass
class Candidate:
    """What routing and priority need to know about an item or campaign about to become a case."""

    item_id: Optional[str]
    text: str
    label: str
    score: float
    scores: dict[str, float]
    uncertainty: float = 0.0
    model_version: Optional[str] = None
    campaign_id: Optional[int] = None
    surface: Optional[str] = None
    source: Optional[str] = None
    language: Optional[str] = None
    campaign_size: int = 0
    campaign_growth: float = 0.0
    reports: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)  # the prediction's flags (models.scoring)
    arrived_at: Optional[dt.datetime] = None  # when the item arrived (`ingested_at`): its SLA starts there

    @property
    def key(self) -> str:
        return f"campaign:{self.campaign_id}" if self.is_campaign else str(self.item_id)

    @property
    def long_text(self) -> bool:
        """Scored over windows or cut short: a person must read it (see the module doc)."""
        return bool(self.flags.get("windowed") or self.flags.get("truncated"))

    @property
    def is_campaign(self) -> bool:
        return self.campaign_id is not None and self.extra.get("campaign_case", False)


def match_escalation(taxonomy: Taxonomy, text: str, scores: Mapping[str, float],
                     campaign_size: Optional[int] = None) -> Optional[EscalationCriterion]:
    """The first taxonomy escalation criterion the case meets, or None.

    A criterion needs one of its policies at `min_score` or more, and then every trigger it
    defines: a pattern matching the text (see `patterns_match`), and a campaign of at least
    `min_campaign_size`.
    """
    for crit in taxonomy.escalation:
        if max(float(scores.get(p, 0.0)) for p in crit.policies) < crit.min_score:
            continue
        if crit.patterns and not patterns_match(crit, text):
            continue
        if crit.min_campaign_size is not None and (campaign_size or 0) < crit.min_campaign_size:
            continue
        return crit
    return None


def patterns_match(crit: EscalationCriterion, text: Optional[str]) -> bool:
    """True when one of the criterion's patterns matches the text as received or its
    `normalize_light` form: an invisible character (zero-width space, soft hyphen) or a
    compatibility form inside a trigger word must not keep a case out of escalation."""
    return any(pattern_search(r, text) for r in crit.regexes)


def route(config: QueueConfig, cand: Candidate, severity: Optional[str], benign: Optional[str] = None) -> str:
    """The queue of the first route whose every condition holds, else the default queue.

    A long text (`cand.long_text`) skips the routes whose policy condition names only `benign`."""
    for r in config.routes:
        w = r.when
        if cand.long_text and w.policy is not None and benign is not None and set(w.policy) <= {benign}:
            continue
        if w.campaign is not None and w.campaign != cand.is_campaign:
            continue
        if w.policy is not None and cand.label not in w.policy:
            continue
        if w.severity is not None and severity not in w.severity:
            continue
        if w.surface is not None and cand.surface not in w.surface:
            continue
        if w.language is not None and cand.language not in w.language:
            continue
        if w.source is not None and cand.source not in w.source:
            continue
        if w.min_score is not None and cand.score < w.min_score:
            continue
        if w.max_score is not None and cand.score > w.max_score:
            continue
        return r.queue
    return config.default_queue


def plan_case(taxonomy: Taxonomy, config: QueueConfig, cand: Candidate, now: dt.datetime,
              harm: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The row of the case a candidate becomes: queue, state, severity, due time, priority, QA flag.

    Times are naive UTC as the store keeps them; an aware `now` is converted first (`utc_naive`).
    The SLA is owed from the item's arrival (`cand.arrived_at`) when it came before `now`: an item
    ingested a day before its case was built had a full fresh SLA, a P1 due 28 hours after it
    arrived instead of 4; the case's `created_at` stays `now`, the clock's start is `ARRIVED_AT`."""
    now = utc_naive(now)
    start = min(now, utc_naive(cand.arrived_at)) if cand.arrived_at is not None else now
    harm = label_harm_weights(taxonomy) if harm is None else harm
    probs = np.array([[float(cand.scores.get(lbl, 0.0)) for lbl in taxonomy.labels]])
    risk = float(risk_scores(probs, harm)[0])
    severity = taxonomy.severity_of(cand.label) if cand.label in taxonomy.policies else None
    severity = severity or config.benign_tier
    crit = match_escalation(taxonomy, cand.text, cand.scores, cand.campaign_size if cand.is_campaign else None)
    reason = home = None
    if crit is not None:
        # Its route at its policy's tier: folded under its campaign's escalation it goes back there
        # (`escalation._cover`), as an analyst-escalated case goes back to the queue it came from.
        home = route(config, cand, severity, taxonomy.benign_label)
        if taxonomy.sla_minutes(crit.severity) < taxonomy.sla_minutes(severity):
            severity = crit.severity
        risk = max(risk, tier_weight(taxonomy, crit.severity))
        queue = config.escalation_queue
        reason = f"{crit.id}: {crit.description}"
    else:
        queue = route(config, cand, severity, taxonomy.benign_label)
    due = start + dt.timedelta(minutes=taxonomy.sla_minutes(severity))
    features = {"risk": round(risk, 6), "uncertainty": round(float(cand.uncertainty), 6),
                "campaign_size": feed_count(cand.campaign_size), "campaign_growth": round(cand.campaign_growth, 6),
                "reports": feed_count(cand.reports), "severity": severity, "label": cand.label,
                "score": round(float(cand.score), 6), "escalation": crit.id if crit else None,
                **({ARRIVED_AT: start.isoformat()} if start < now else {})}
    priority, why, terms = score_features(taxonomy, features, config, now, due, now)
    is_audit, inclusion = audit_draw(config, cand.key, cand.label, cand.score)  # stratified QA (issue 19)
    return {
        "item_id": cand.item_id, "campaign_id": cand.campaign_id if cand.is_campaign else None,
        "queue": queue, "state": config.waiting_state(queue), "priority": priority, "priority_reason": why,
        "severity": severity, "predicted_label": cand.label, "model_version": cand.model_version,
        "due_at": due, "is_audit": is_audit, "audit_inclusion": inclusion, "calibration_set": None, "escalation_reason": reason,
        "created_at": now, "updated_at": now,
        "meta": {"features": features, "terms": terms, "scores": {k: round(float(v), 6) for k, v in cand.scores.items()},
                 **({"campaign_case": True} if cand.is_campaign else {}),
                 **({"long_text": dict(cand.flags)} if cand.long_text else {}),
                 **({"escalated_from": home} if home is not None else {}),
                 **({"member_of_campaign": cand.campaign_id} if cand.campaign_id and not cand.is_campaign else {})},
    }
