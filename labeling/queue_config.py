"""`configs/queues.yaml`: queues, routing rules, priority weights, SLA escalation, QA and calibration shares.

Validated once on load (pydantic, errors naming file and field) and checked against the taxonomy
(every policy and tier name must exist), so the rest of the queue code can trust it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from core.config import config_file, load_model, raise_problems, version_text
from core.taxonomy import MAX_SLA_MINUTES, Taxonomy
from core.text import invisible_char

QUEUES_FILE = "queues.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteWhen(_Strict):
    """A route's conditions; a list names the values that match (an empty one would match nothing)."""
    policy: Optional[list[str]] = Field(default=None, min_length=1)
    severity: Optional[list[str]] = Field(default=None, min_length=1)
    surface: Optional[list[str]] = Field(default=None, min_length=1)
    language: Optional[list[str]] = Field(default=None, min_length=1)
    source: Optional[list[str]] = Field(default=None, min_length=1)
    campaign: Optional[bool] = None
    min_score: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    max_score: Optional[float] = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _band(self) -> "RouteWhen":
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min_score {self.min_score} is above max_score {self.max_score}: the route matches nothing")
        return self

    def covers(self, other: "RouteWhen") -> bool:
        """True when every case `other` matches, this matches too (so a later `other` is dead).

        Needs no taxonomy: a benign-only route lets long texts through (`routing.route`), but it
        covers only routes whose policy is a subset of its own, which let them through as well."""
        for name in _LIST_CONDITIONS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and (theirs is None or not set(theirs) <= set(mine)):
                return False
        if self.campaign is not None and self.campaign != other.campaign:
            return False
        if self.min_score is not None and (other.min_score is None or other.min_score < self.min_score):
            return False
        return self.max_score is None or (other.max_score is not None and other.max_score <= self.max_score)


_LIST_CONDITIONS = ("policy", "severity", "surface", "language", "source")


class Route(_Strict):
    queue: str
    when: RouteWhen = Field(default_factory=RouteWhen)


# Each term is in [0, 1.5]: a weight past this only makes the sums overflow (two weights of
# 1e308 made a priority of infinity, which no later refresh ever moves).
MAX_WEIGHT = 1000.0


class PriorityWeights(_Strict):
    risk: float = Field(default=1.0, ge=0, le=MAX_WEIGHT)
    uncertainty: float = Field(default=0.0, ge=0, le=MAX_WEIGHT)
    campaign_size: float = Field(default=0.0, ge=0, le=MAX_WEIGHT)
    campaign_growth: float = Field(default=0.0, ge=0, le=MAX_WEIGHT)
    reports: float = Field(default=0.0, ge=0, le=MAX_WEIGHT)
    urgency: float = Field(default=0.0, ge=0, le=MAX_WEIGHT)


class PriorityConfig(_Strict):
    weights: PriorityWeights = Field(default_factory=PriorityWeights)
    campaign_size_ref: int = Field(default=100, gt=1, le=10**9)  # log1p of a 400-digit ref overflowed every build
    # At most a year, as an SLA: 1e300 hours overflowed the window's start and stopped every build.
    growth_window_hours: float = Field(default=24.0, gt=0, le=MAX_SLA_MINUTES / 60)
    reports_ref: int = Field(default=10, gt=0, le=10**9)


class SlaEscalation(_Strict):
    tiers: list[str] = Field(default_factory=list)
    remaining_fraction: float = Field(default=0.25, ge=0.0, le=1.0)


# Copies of one case per calibration set: each goes to another analyst, and every copy is a row
# the build writes at once (`reviewers: 1000000` wrote a million rows per drawn case).
MAX_CALIBRATION_REVIEWERS = 20


class CalibrationSet(_Strict):
    name: str = Field(min_length=1)
    share: float = Field(ge=0.0, le=1.0)
    reviewers: int = Field(ge=2, le=MAX_CALIBRATION_REVIEWERS)


class LearningShare(_Strict):
    """The learning share: part of a queue's claims goes to the cases the model learns most from.

    `queues` maps a queue to the share of its next claims served this way (0 to 0.9); the rest
    stay in risk order. A learning case is uncertain (`measure` of the prediction of record at
    least `min_uncertainty`) and diverse: at most one per campaign, and none within cosine
    `max_similarity` of another learning case (one per embedding cluster). `horizon` is how
    many upcoming claims of a queue each pass plans (`labeling.learning`). While cold-start seeds
    wait in a queue, `among_seeds` of its claims (at most its share) are learning cases
    interleaved with the seeds; 0 serves every seed first. Where most seeds come from a source the
    champion learnt from fewer than `new_surface_below` labelled items of (a new surface, not only
    a new policy), `among_seeds_new_surface` applies instead (None, the default: `among_seeds`). A
    per-deployment choice: 0.5 helped spam on SMS as a new surface and hurt hate on tweets as one."""

    queues: dict[str, float] = Field(default_factory=dict)
    measure: Literal["margin", "entropy"] = "margin"
    min_uncertainty: float = Field(default=0.3, ge=0.0, le=1.0)
    max_similarity: float = Field(default=0.9, gt=0.0, le=1.0)
    horizon: int = Field(default=200, gt=0)
    among_seeds: float = Field(default=0.0, ge=0.0, le=0.9)
    among_seeds_new_surface: Optional[float] = Field(default=None, ge=0.0, le=0.9)
    new_surface_below: int = Field(default=100, ge=0)

    def seed_mix(self, share: float, new_surface: bool = False) -> float:
        """The learning share among a queue's waiting seeds: `among_seeds` (`among_seeds_new_surface`
        for seeds of a surface new to the champion, when set), never above the queue's `share`."""
        among = self.among_seeds_new_surface if new_surface and self.among_seeds_new_surface is not None \
            else self.among_seeds
        return min(among, share)

    @model_validator(mode="after")
    def _shares(self) -> "LearningShare":
        bad = [f"queues.{q}: share {s} must be between 0 and 0.9" for q, s in self.queues.items() if not 0.0 <= s <= 0.9]
        if bad:
            raise ValueError("; ".join(bad))
        return self


class LabelErrorSettings(_Strict):
    """Confident learning over the decided items (`labeling.label_errors`): likely label errors go
    to `queue` (a lead's re-review queue), at most `max_cases` per run, with out-of-fold
    probabilities from `folds` folds."""

    queue: Optional[str] = None
    max_cases: int = Field(default=500, gt=0)
    folds: int = Field(default=5, ge=2, le=20)
    min_label_quality: float = Field(default=0.5, ge=0.0, le=1.0)
    min_label_decisions: int = Field(default=5, ge=1, le=10**6)
    max_queued_share: float = Field(default=0.1, gt=0.0, le=1.0)


class SeedSettings(_Strict):
    """Cold start (`labeling.seeding`): how many neighbours of the examples become cases, the
    least cosine similarity a neighbour needs, the cosine above which a neighbour counts as a
    near-copy of one already seeded (passed over; None: only exact copies are), and the share of
    uniform QA-sample cases added."""

    neighbours: int = Field(default=50, gt=0)
    min_similarity: float = Field(default=0.3, ge=-1.0, le=1.0)
    max_similarity: Optional[float] = Field(default=None, gt=-1.0, le=1.0)
    uniform_share: float = Field(default=0.2, ge=0.0, le=1.0)


class QaStratum(_Strict):
    """A band of the stratified QA audit (issue 19): cases whose predicted policy is in `policy`
    and whose score of it is in [min_score, max_score) are audited with probability `share`."""
    policy: Optional[list[str]] = Field(default=None, min_length=1)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    max_score: float = Field(default=1.0, ge=0.0, le=1.0)
    share: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _band(self) -> "QaStratum":
        if self.min_score >= self.max_score:
            raise ValueError(f"min_score {self.min_score} must be below max_score {self.max_score}")
        return self

    def covers(self, other: "QaStratum") -> bool:
        """True when every case `other` takes, this takes too (so a later `other` is dead)."""
        policy = self.policy is None or (other.policy is not None and set(other.policy) <= set(self.policy))
        return policy and self.min_score <= other.min_score and other.max_score <= self.max_score


MAX_NAME = 100  # the store's column for a case's queue and calibration set


def name_problems(field: str, names: list[str]) -> list[str]:
    """Problems with names a person picks from (queues, calibration sets): blank, padded, holding
    a control or invisible character, or one differing from another only in case. Such a second
    queue loaded beside `general` as `General`, looked the same in every list, and a route to it
    filled a queue nobody drained."""
    out, seen = [], {}
    for name in names:
        ch = invisible_char(name)
        if not name.strip() or name != name.strip() or ch is not None:
            why = f"holds the character U+{ord(ch):04X}" if ch is not None else "is blank or padded with spaces"
            out.append(f"{field}: {name!r} {why}")
        elif len(name) > MAX_NAME:  # cases.queue / cases.calibration_set: PostgreSQL refused it at case creation
            out.append(f"{field}: {name[:40]!r}... is {len(name)} characters, over {MAX_NAME}")
        key = name.casefold()
        if key in seen:
            out.append(f"{field}: {name!r} and {seen[key]!r} differ only in case")
        seen.setdefault(key, name)
    return out


class QueueConfig(_Strict):
    version: str = Field(min_length=1)
    _version_as_text = field_validator("version", mode="before")(version_text)
    queues: dict[str, str] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    default_queue: str
    escalation_queue: str
    appeals_queue: str
    calibration_queue: str
    benign_tier: str
    appeal_sla_minutes: int = Field(default=1440, gt=0, le=MAX_SLA_MINUTES)
    lease_seconds: int = Field(default=900, gt=0)
    max_lease_seconds: int = Field(default=4 * 3600, gt=0, le=MAX_SLA_MINUTES * 60)
    # The longest one claim may be held, renewals included (labeling.claims.renew): a tab left
    # open renewed its lease forever. At least max_lease_seconds, or one lease outlasts the cap.
    max_hold_seconds: int = Field(default=4 * 3600, gt=0, le=MAX_SLA_MINUTES * 60)
    # Four eyes (labeling.four_eyes): whoever escalated a case may not claim or decide it. True
    # only for a team of one, where nobody else could: the escalator then takes their own.
    escalation_self_review: StrictBool = False
    qa_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # Stratified QA audit (labeling.sampling.audit_inclusion): first matching band wins, else qa_share.
    qa_strata: list[QaStratum] = Field(default_factory=list)
    seed: int = 0
    calibration_sets: list[CalibrationSet] = Field(default_factory=list)
    priority: PriorityConfig = Field(default_factory=PriorityConfig)
    sla_escalation: SlaEscalation = Field(default_factory=SlaEscalation)
    learning: LearningShare = Field(default_factory=LearningShare)
    label_errors: LabelErrorSettings = Field(default_factory=LabelErrorSettings)
    seeding: SeedSettings = Field(default_factory=SeedSettings)

    @model_validator(mode="after")
    def _queues_known(self) -> "QueueConfig":
        problems = name_problems("queues", list(self.queues)) + name_problems(
            "calibration_sets", [c.name for c in self.calibration_sets])
        for key in ("default_queue", "escalation_queue", "appeals_queue", "calibration_queue"):
            if getattr(self, key) not in self.queues:
                problems.append(f"{key}: {getattr(self, key)!r} is not listed under `queues`")
        for i, r in enumerate(self.routes):
            if r.queue not in self.queues:
                problems.append(f"routes.{i}.queue: {r.queue!r} is not listed under `queues`")
        if self.lease_seconds > self.max_lease_seconds:
            problems.append(f"lease_seconds: {self.lease_seconds} is over max_lease_seconds {self.max_lease_seconds}")
        if self.max_hold_seconds < self.max_lease_seconds:
            problems.append(f"max_hold_seconds: {self.max_hold_seconds} is under max_lease_seconds "
                            f"{self.max_lease_seconds}: one lease would outlast the cap on a whole hold")
        for q in self.learning.queues:
            if q not in self.queues:
                problems.append(f"learning.queues: {q!r} is not listed under `queues`")
        if self.label_errors.queue is not None and self.label_errors.queue not in self.queues:
            problems.append(f"label_errors.queue: {self.label_errors.queue!r} is not listed under `queues`")
        names = [c.name for c in self.calibration_sets]
        if len(names) != len(set(names)):
            problems.append("calibration_sets: names must be unique")
        for j, band in enumerate(self.qa_strata):
            earlier = next((i for i in range(j) if self.qa_strata[i].covers(band)), None)
            if earlier is not None:  # first match wins: its share was never used
                problems.append(f"qa_strata.{j}: never matches: qa_strata.{earlier} takes every case it would; "
                                f"put it first")
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
        for i, band in enumerate(self.qa_strata):
            for p in band.policy or []:
                if p not in taxonomy.policies:
                    out.append((f"qa_strata.{i}.policy", f"unknown policy {p!r}"))
        for i, r in enumerate(self.routes):
            for p in r.when.policy or []:
                if p not in taxonomy.policies:
                    out.append((f"routes.{i}.when.policy", f"unknown policy {p!r}"))
            for t in r.when.severity or []:
                if t not in tiers:
                    out.append((f"routes.{i}.when.severity", f"unknown tier {t!r}"))
        return out

    def routing_problems(self) -> list[tuple[str, str]]:
        """(field, problem) for queue roles that validate one by one but break together.

        Escalation, appeals, calibration and label re-review queues hold cases that only their
        own path creates (criteria or the SLA sweep with a reason; an appeal of a decision; a
        calibration copy; a label-error re-review): a route or the default queue sending ordinary
        cases there strands them (an appeal case without a decision can be neither decided nor
        resolved; the SLA sweep never escalates a case in the calibration or appeals queue), and two
        roles on one queue make its cases wait in a state it is never claimed in. A route that an
        earlier one covers never matches (routes are tried in order). Checked on load from the
        file; `benchmarks/estimates.py` builds a one-queue config in code for its QA draws alone."""
        out: list[tuple[str, str]] = []
        roles = {"escalation_queue": self.escalation_queue, "appeals_queue": self.appeals_queue,
                 "calibration_queue": self.calibration_queue}
        if self.label_errors.queue is not None:
            roles["label_errors.queue"] = self.label_errors.queue
        seen: dict[str, str] = {}
        for key, q in roles.items():
            if q in seen:
                out.append((key, f"{q!r} is already {seen[q]}: each of these roles needs its own queue"))
            seen.setdefault(q, key)
        if self.default_queue in seen:
            out.append(("default_queue", f"{self.default_queue!r} is the {seen[self.default_queue]}, "
                                         f"not a queue for ordinary cases"))
        for j, r in enumerate(self.routes):
            if r.queue in seen:
                out.append((f"routes.{j}.queue", f"{r.queue!r} is the {seen[r.queue]}: a route may not send cases there"))
            earlier = next((i for i in range(j) if self.routes[i].when.covers(r.when)), None)
            if earlier is not None:
                out.append((f"routes.{j}", f"never matches: routes.{earlier} (queue {self.routes[earlier].queue!r}) "
                                           f"takes every case it would; routes are tried in order, put it first"))
        return out

    def waiting_state(self, queue: str) -> str:
        """The state a case waits in: 'escalated' in the escalation queue, else 'open'."""
        return "escalated" if queue == self.escalation_queue else "open"


def load_queue_config(path: str | Path, taxonomy: Optional[Taxonomy] = None) -> QueueConfig:
    """Load `queues.yaml` (a file or a configs folder); with a taxonomy, also check its names."""
    p = config_file(path, QUEUES_FILE)
    cfg = load_model(p, QueueConfig)
    raise_problems(p, cfg.routing_problems())
    if taxonomy is not None:
        raise_problems(p, cfg.check_against(taxonomy))
    return cfg
