"""Samples blind to the model: the uniform QA-audit draw and the calibration copies.

A seeded hash of the case key draws them, so the samples are reproducible and independent of
the model's ranking: what precision and recall estimates need. The QA audit is uniform
(`qa_share`) or stratified by predicted policy and score band (`qa_strata` in queues.yaml); the
inclusion probability is stored with each case (`cases.audit_inclusion`) so the estimators of
`evaluation.estimates` can weight each audited case by its inverse.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional

from .queue_config import QueueConfig

def uniform_draw(key: str, salt: str) -> float:
    """A number in [0, 1) from a hash of `salt:key`: uniform, reproducible, blind to the model."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / float(16 ** 15)


def is_audit_draw(config: QueueConfig, key: str, label: Optional[str] = None, score: Optional[float] = None) -> bool:
    """True when the case keyed `key` falls in the QA-audit draw of `queues.yaml` (`audit_draw`)."""
    return audit_draw(config, key, label, score)[0]


def audit_inclusion(config: QueueConfig, label: Optional[str], score: Optional[float]) -> float:
    """The probability that a case with predicted `label` at `score` is drawn for the QA audit.

    Without `qa_strata` every case has `qa_share` (a uniform audit). With them, the first band
    whose policy list holds the label and whose [min_score, max_score) holds the score gives
    the share (a score of 1.0 falls in a band ending at 1.0), and cases no band takes get
    `qa_share`. Estimators weight each audited case by 1 / this probability, which keeps
    precision and recall unbiased while rare-policy bands are audited more often.
    """
    for band in config.qa_strata:
        if band.policy is not None and label not in band.policy:
            continue
        s = 0.0 if score is None else float(score)
        if band.min_score <= s and (s < band.max_score or (band.max_score >= 1.0 and s <= 1.0)):
            return float(band.share)
    return float(config.qa_share)


def audit_draw(config: QueueConfig, key: str, label: Optional[str] = None,
               score: Optional[float] = None) -> tuple[bool, float]:
    """(drawn, inclusion probability) for the case keyed `key`: a seeded hash, blind to the
    model's ranking within a band, compared with the band's probability (`audit_inclusion`)."""
    p = audit_inclusion(config, label, score)
    return uniform_draw(key, f"{config.seed}:qa") < p, p


def calibration_copies(config: QueueConfig, key: str, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Copies of a planned case for each calibration set that draws it (one per reviewer)."""
    out = []
    if row["campaign_id"] is not None:
        return out  # a campaign is decided in bulk; agreement is measured on items
    for cs in config.calibration_sets:
        if uniform_draw(key, f"{config.seed}:cal:{cs.name}") < cs.share:
            for _ in range(cs.reviewers):
                copy = dict(row, queue=config.calibration_queue, state="open", is_audit=False,
                            calibration_set=cs.name, escalation_reason=None)
                if "audit_inclusion" in copy:
                    copy["audit_inclusion"] = None  # a calibration copy is not part of the audit draw
                copy["meta"] = dict(row["meta"], calibration_of=key)
                out.append(copy)
    return out
