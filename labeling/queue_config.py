"""`configs/queues.yaml`: queues, routing rules, priority weights, SLA escalation, QA and calibration shares.

Validated once on load (pydantic, errors naming file and field) and checked against the taxonomy
(every policy and tier name must exist), so the rest of the queue code can trust it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config import config_file, load_model, raise_problems
from core.taxonomy import Taxonomy

QUEUES_FILE = "queues.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteWhen(_Strict):
    policy: Optional[list[str]] = None
    severity: Optional[list[str]] = None
    surface: Optional[list[str]] = None
    language: Optional[list[str]] = None
    source: Optional[list[str]] = None
    campaign: Optional[bool] = None
    min_score: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    max_score: Optional[float] = Field(default=None, ge=0.0, le=1.0)


class Route(_Strict):
    queue: str
    when: RouteWhen = Field(default_factory=RouteWhen)


class PriorityWeights(_Strict):
    risk: float = Field(default=1.0, ge=0)
    uncertainty: float = Field(default=0.0, ge=0)
    campaign_size: float = Field(default=0.0, ge=0)
    campaign_growth: float = Field(default=0.0, ge=0)
    reports: float = Field(default=0.0, ge=0)
    urgency: float = Field(default=0.0, ge=0)


class PriorityConfig(_Strict):
    weights: PriorityWeights = Field(default_factory=PriorityWeights)
    campaign_size_ref: int = Field(default=100, gt=1)
    growth_window_hours: float = Field(default=24.0, gt=0)
    reports_ref: int = Field(default=10, gt=0)


class SlaEscalation(_Strict):
    tiers: list[str] = Field(default_factory=list)
    remaining_fraction: float = Field(default=0.25, ge=0.0, le=1.0)


class CalibrationSet(_Strict):
    name: str = Field(min_length=1)
    share: float = Field(ge=0.0, le=1.0)
    reviewers: int = Field(ge=2)


class QueueConfig(_Strict):
    version: str = Field(min_length=1)
    queues: dict[str, str] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    default_queue: str
    escalation_queue: str
    appeals_queue: str
    calibration_queue: str
    benign_tier: str
    appeal_sla_minutes: int = Field(default=1440, gt=0)
    lease_seconds: int = Field(default=900, gt=0)
    max_lease_seconds: int = Field(default=4 * 3600, gt=0)
    qa_share: float = Field(default=0.05, ge=0.0, le=1.0)
    seed: int = 0
    calibration_sets: list[CalibrationSet] = Field(default_factory=list)
    priority: PriorityConfig = Field(default_factory=PriorityConfig)
    sla_escalation: SlaEscalation = Field(default_factory=SlaEscalation)

    @model_validator(mode="after")
    def _queues_known(self) -> "QueueConfig":
        problems = []
        for key in ("default_queue", "escalation_queue", "appeals_queue", "calibration_queue"):
            if getattr(self, key) not in self.queues:
                problems.append(f"{key}: {getattr(self, key)!r} is not listed under `queues`")
        for i, r in enumerate(self.routes):
            if r.queue not in self.queues:
                problems.append(f"routes.{i}.queue: {r.queue!r} is not listed under `queues`")
        if self.lease_seconds > self.max_lease_seconds:
            problems.append(f"lease_seconds: {self.lease_seconds} is over max_lease_seconds {self.max_lease_seconds}")
        names = [c.name for c in self.calibration_sets]
        if len(names) != len(set(names)):
            problems.append("calibration_sets: names must be unique")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def check_against(self, taxonomy: Taxonomy) -> list[tuple[str, str]]:
        """(field, problem) for every policy or tier name the taxonomy does not know."""
        out = []
        tiers = set(taxonomy.severities)
        if self.benign_tier not in tiers:
            out.append(("benign_tier", f"unknown tier {self.benign_tier!r}"))
        for t in self.sla_escalation.tiers:
            if t not in tiers:
                out.append(("sla_escalation.tiers", f"unknown tier {t!r}"))
        for i, r in enumerate(self.routes):
            for p in r.when.policy or []:
                if p not in taxonomy.policies:
                    out.append((f"routes.{i}.when.policy", f"unknown policy {p!r}"))
            for t in r.when.severity or []:
                if t not in tiers:
                    out.append((f"routes.{i}.when.severity", f"unknown tier {t!r}"))
        return out

    def waiting_state(self, queue: str) -> str:
        """The state a case waits in: 'escalated' in the escalation queue, else 'open'."""
        return "escalated" if queue == self.escalation_queue else "open"


def load_queue_config(path: str | Path, taxonomy: Optional[Taxonomy] = None) -> QueueConfig:
    """Load `queues.yaml` (a file or a configs folder); with a taxonomy, also check its names."""
    p = config_file(path, QUEUES_FILE)
    cfg = load_model(p, QueueConfig)
    if taxonomy is not None:
        raise_problems(p, cfg.check_against(taxonomy))
    return cfg
