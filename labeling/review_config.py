"""`configs/review.yaml`: what the review screen shows and masks (policies, thresholds, list sizes)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config import config_file, load_model, raise_problems, version_text
from core.taxonomy import Taxonomy

if TYPE_CHECKING:
    from .queue_config import QueueConfig

REVIEW_FILE = "review.yaml"


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1)
    mask_policies: list[str] = Field(default_factory=list)
    mask_min_score: float = Field(default=0.15, ge=0.0, le=1.0)
    similar_k: int = Field(default=8, ge=0, le=100)
    author_history: int = Field(default=15, ge=0, le=500)
    timeline_events: int = Field(default=50, ge=1, le=1000)
    # 0: no sweep while serving. At most a day: a longer wait overflows the sweeper thread's
    # timer (it died at once, and cases past their SLA were never escalated).
    sweep_every_seconds: int = Field(default=300, ge=0, le=86400)
    # The screen's lease heartbeat and timers (seconds).
    heartbeat_seconds: int = Field(default=60, ge=1, le=3600)
    lease_warning_seconds: int = Field(default=120, ge=0, le=86400)
    idle_seconds: int = Field(default=900, ge=1, le=86400)
    counts_refresh_seconds: int = Field(default=30, ge=1, le=3600)
    # `u` takes back one's own last decision for this long after it was saved.
    undo_seconds: int = Field(default=120, ge=0, le=86400)
    # Well-being: severe reveals per shift before the screen offers a break or a milder queue.
    severe_tiers: list[str] = Field(default_factory=lambda: ["P0", "P1"])
    shift_hours: float = Field(default=8.0, gt=0, le=24)
    exposure_budget: int = Field(default=25, ge=1)
    break_queue: Optional[str] = None
    default_blur: bool = True
    default_grayscale: bool = False

    _version_as_text = field_validator("version", mode="before")(version_text)


def queue_problems(settings: ReviewSettings, queues: "QueueConfig") -> list[tuple[str, str]]:
    """(field, problem) where review.yaml and queues.yaml each validate but clash: a heartbeat no
    shorter than the lease lets a claim lapse between two renewals (the analyst loses every case
    read for longer than a lease), and a break queue that is unknown (the screen silently fell back
    to the default queue) or is the escalation queue (the most severe, not a milder one), or a
    lead's queue (appeals, label re-review: `start_queue` never offers it to an analyst). A lease
    warning no shorter than the lease showed "hold ending" from the moment of every claim."""
    out = []
    if settings.heartbeat_seconds >= queues.lease_seconds:
        out.append(("heartbeat_seconds", f"{settings.heartbeat_seconds} must be below queues.yaml lease_seconds "
                                         f"{queues.lease_seconds}, or a claim lapses between two renewals"))
    if settings.lease_warning_seconds >= queues.lease_seconds:
        out.append(("lease_warning_seconds", f"{settings.lease_warning_seconds} must be below queues.yaml "
                                             f"lease_seconds {queues.lease_seconds}, or every claim starts warned"))
    leads = {queues.appeals_queue: "appeals queue", queues.label_errors.queue: "label re-review queue"}
    if settings.break_queue is not None and settings.break_queue not in queues.queues:
        out.append(("break_queue", f"{settings.break_queue!r} is not a queue in queues.yaml"))
    elif settings.break_queue is not None and settings.break_queue == queues.escalation_queue:
        out.append(("break_queue", f"{settings.break_queue!r} is the escalation queue, not a milder one"))
    elif settings.break_queue is not None and settings.break_queue in leads:
        out.append(("break_queue", f"{settings.break_queue!r} is the {leads[settings.break_queue]}, a lead's"))
    return out


def load_review_settings(path: str | Path, taxonomy: Optional[Taxonomy] = None,
                         queues: Optional["QueueConfig"] = None) -> ReviewSettings:
    """Load `review.yaml` (a file or a configs folder); with a taxonomy, also check the policy names,
    with the queue config, its timers and break queue against it (`queue_problems`)."""
    p = config_file(path, REVIEW_FILE)
    settings = load_model(p, ReviewSettings)
    if taxonomy is not None:
        unknown = [m for m in settings.mask_policies if m not in taxonomy.policies]
        tiers = [t for t in settings.severe_tiers if t not in taxonomy.severities]
        raise_problems(p, ([("mask_policies", f"unknown policies {unknown}")] if unknown else [])
                       + ([("severe_tiers", f"unknown tiers {tiers}")] if tiers else []))
    if queues is not None:
        raise_problems(p, queue_problems(settings, queues))
    return settings
