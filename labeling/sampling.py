"""Samples blind to the model: the uniform QA-audit draw and the calibration copies.

A seeded hash of the case key draws them, so the samples are uniform, reproducible and
independent of the model's ranking: what precision and recall estimates need.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

from .queue_config import QueueConfig

def uniform_draw(key: str, salt: str) -> float:
    """A number in [0, 1) from a hash of `salt:key`: uniform, reproducible, blind to the model."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / float(16 ** 15)


def is_audit_draw(config: QueueConfig, key: str) -> bool:
    """True when the case keyed `key` falls in the uniform QA-audit share of `queues.yaml`."""
    return uniform_draw(key, f"{config.seed}:qa") < config.qa_share


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
                copy["meta"] = dict(row["meta"], calibration_of=key)
                out.append(copy)
    return out
