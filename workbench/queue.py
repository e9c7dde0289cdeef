"""Review queues: cases, routing, priority, atomic claims with leases, QA and calibration sampling.

The queue decides what a human sees next. Every scored item (and every campaign, as one case)
becomes a case in a queue picked by the routing rules of `configs/queues.yaml`; its priority is a
configurable sum of weighted terms (severity-weighted risk, uncertainty, campaign size and growth,
user reports, SLA urgency) with a one-line explanation; its due time comes from the severity
tier's SLA in the taxonomy. A seeded hash of the item id draws the QA-audit share and the
calibration copies, so the samples are uniform and independent of the model's ranking.

Claims are atomic with a lease: on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`; on SQLite the
store's write transactions are `BEGIN IMMEDIATE`, so select-then-update is serialised across
processes. The claim reads the first entry of the `ix_cases_claim` index (queue, state,
priority DESC, id), so its cost does not grow with the backlog.

The pure functions (`risk_scores`, `priority_terms`, `sla_lapsing`, `uniform_draw`) are what the
queue simulation benchmark runs too, so the benchmark measures the product's ordering.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update

from . import audit
from .config import ConfigError, config_dir, load_model
from .schema import Campaign, CampaignMember, Case, CaseSkip, Decision, Item, ModelVersion, Prediction, utcnow
from .store import Store
from .taxonomy import EscalationCriterion, Taxonomy

QUEUES_FILE = "queues.yaml"
TERMS = ("risk", "uncertainty", "campaign_size", "campaign_growth", "reports", "urgency")
PRIORITY_EPSILON = 1e-4  # a sweep rewrites a case's priority only when it moved more than this
URGENCY_CAP = 1.5  # an overdue case keeps gaining, up to half a deadline past due

C = Case.__table__
P = Prediction.__table__
I = Item.__table__
CM = CampaignMember.__table__
CP = Campaign.__table__
SK = CaseSkip.__table__
D = Decision.__table__
_BUILD_LOCK_KEY = 0x7175_6575  # advisory lock for build/sweep on PostgreSQL


class QueueError(ValueError):
    """A queue operation a user asked for cannot be done (unknown case, not the claim holder...)."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
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


def load_queue_config(path: str | Path | None = None, taxonomy: Optional[Taxonomy] = None) -> QueueConfig:
    """Load `queues.yaml` (a file or a configs folder); with a taxonomy, also check its names."""
    p = Path(path) if path else config_dir() / QUEUES_FILE
    if p.is_dir():
        p = p / QUEUES_FILE
    cfg = load_model(p, QueueConfig)
    if taxonomy is not None:
        problems = cfg.check_against(taxonomy)
        if problems:
            raise ConfigError("\n".join(f"{p}: field '{f}': {msg}" for f, msg in problems))
    return cfg


# ---------------------------------------------------------------------------------------------
# Pure functions: draws, risk, priority, SLA
# ---------------------------------------------------------------------------------------------
def uniform_draw(key: str, salt: str) -> float:
    """A number in [0, 1) from a hash of `salt:key`: uniform, reproducible, blind to the model."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / float(16 ** 15)


def label_harm_weights(taxonomy: Taxonomy) -> np.ndarray:
    """Per policy label (taxonomy order), its tier's harm weight over the largest tier weight; benign 0."""
    top = max(s.weight for s in taxonomy.severities.values())
    return np.array([taxonomy.severities[p.severity].weight / top if p.violating and p.severity else 0.0
                     for p in taxonomy.policies.values()], dtype=float)


def tier_weight(taxonomy: Taxonomy, tier: Optional[str]) -> float:
    """A tier's harm weight over the largest tier weight (0 for no tier)."""
    if not tier:
        return 0.0
    return taxonomy.severities[tier].weight / max(s.weight for s in taxonomy.severities.values())


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
    head = f"ESCALATED {features['escalation']}; " if features.get("escalation") else ""
    return f"{head}{priority:.3f} = " + (" + ".join(parts) if parts else "no risk signal")


# ---------------------------------------------------------------------------------------------
# Routing and escalation for one candidate
# ---------------------------------------------------------------------------------------------
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

    @property
    def key(self) -> str:
        return f"campaign:{self.campaign_id}" if self.is_campaign else str(self.item_id)

    @property
    def is_campaign(self) -> bool:
        return self.campaign_id is not None and self.extra.get("campaign_case", False)


def match_escalation(taxonomy: Taxonomy, text: str, scores: Mapping[str, float],
                     campaign_size: Optional[int] = None) -> Optional[EscalationCriterion]:
    """The first taxonomy escalation criterion the case meets, or None.

    A criterion needs one of its policies at `min_score` or more, and then every trigger it
    defines: a pattern matching the text, and a campaign of at least `min_campaign_size`.
    """
    for crit in taxonomy.escalation:
        if max(float(scores.get(p, 0.0)) for p in crit.policies) < crit.min_score:
            continue
        if crit.patterns and not any(r.search(text or "") for r in crit.regexes):
            continue
        if crit.min_campaign_size is not None and (campaign_size or 0) < crit.min_campaign_size:
            continue
        return crit
    return None


def route(config: QueueConfig, cand: Candidate, severity: Optional[str]) -> str:
    """The queue of the first route whose every condition holds, else the default queue."""
    for r in config.routes:
        w = r.when
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


def _epoch(t: dt.datetime) -> float:
    return (t - dt.datetime(1970, 1, 1)).total_seconds()


def score_features(taxonomy: Taxonomy, features: Mapping[str, Any], config: QueueConfig,
                   created: dt.datetime, due: Optional[dt.datetime], now: dt.datetime) -> tuple[float, str, dict[str, float]]:
    """(priority, one-line reason, term contributions) of one case from its stored features."""
    used = float(sla_used(_epoch(created), _epoch(due), _epoch(now))) if due else 0.0
    terms = priority_terms(config.priority, risk=features.get("risk", 0.0),
                           uncertainty=features.get("uncertainty", 0.0),
                           campaign_size=features.get("campaign_size", 0),
                           campaign_growth=features.get("campaign_growth", 0.0),
                           reports=features.get("reports", 0), urgency=used,
                           tier_weight=tier_weight(taxonomy, features.get("severity")))
    flat = {k: float(v) for k, v in terms.items()}
    total = float(sum(flat.values()))
    reason = explain_priority(total, flat, {**features, "sla_used": used})
    return total, reason, {k: round(v, 6) for k, v in flat.items()}


def plan_case(taxonomy: Taxonomy, config: QueueConfig, cand: Candidate, now: dt.datetime,
              harm: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The row of the case a candidate becomes: queue, state, severity, due time, priority, QA flag."""
    harm = label_harm_weights(taxonomy) if harm is None else harm
    probs = np.array([[float(cand.scores.get(lbl, 0.0)) for lbl in taxonomy.labels]])
    risk = float(risk_scores(probs, harm)[0])
    severity = taxonomy.severity_of(cand.label) if cand.label in taxonomy.policies else None
    severity = severity or config.benign_tier
    crit = match_escalation(taxonomy, cand.text, cand.scores, cand.campaign_size if cand.is_campaign else None)
    reason = None
    if crit is not None:
        if taxonomy.severities[crit.severity].sla_minutes < taxonomy.severities[severity].sla_minutes:
            severity = crit.severity
        risk = max(risk, tier_weight(taxonomy, crit.severity))
        queue = config.escalation_queue
        reason = f"{crit.id}: {crit.description}"
    else:
        queue = route(config, cand, severity)
    due = now + dt.timedelta(minutes=taxonomy.sla_minutes(severity))
    features = {"risk": round(risk, 6), "uncertainty": round(float(cand.uncertainty), 6),
                "campaign_size": cand.campaign_size, "campaign_growth": round(cand.campaign_growth, 6),
                "reports": cand.reports, "severity": severity, "label": cand.label,
                "score": round(float(cand.score), 6), "escalation": crit.id if crit else None}
    priority, why, terms = score_features(taxonomy, features, config, now, due, now)
    is_audit = uniform_draw(cand.key, f"{config.seed}:qa") < config.qa_share
    return {
        "item_id": cand.item_id, "campaign_id": cand.campaign_id if cand.is_campaign else None,
        "queue": queue, "state": config.waiting_state(queue), "priority": priority, "priority_reason": why,
        "severity": severity, "predicted_label": cand.label, "model_version": cand.model_version,
        "due_at": due, "is_audit": is_audit, "calibration_set": None, "escalation_reason": reason,
        "created_at": now, "updated_at": now,
        "meta": {"features": features, "terms": terms, "scores": {k: round(float(v), 6) for k, v in cand.scores.items()},
                 **({"campaign_case": True} if cand.is_campaign else {}),
                 **({"member_of_campaign": cand.campaign_id} if cand.campaign_id and not cand.is_campaign else {})},
    }


def calibration_copies(config: QueueConfig, cand: Candidate, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Copies of a planned case for each calibration set that draws it (one per reviewer)."""
    out = []
    if row["campaign_id"] is not None:
        return out  # a campaign is decided in bulk; agreement is measured on items
    for cs in config.calibration_sets:
        if uniform_draw(cand.key, f"{config.seed}:cal:{cs.name}") < cs.share:
            for _ in range(cs.reviewers):
                copy = dict(row, queue=config.calibration_queue, state="open", is_audit=False,
                            calibration_set=cs.name, escalation_reason=None)
                copy["meta"] = dict(row["meta"], calibration_of=cand.key)
                out.append(copy)
    return out


# ---------------------------------------------------------------------------------------------
# Building cases from the store
# ---------------------------------------------------------------------------------------------
def champion_version(conn: Connection) -> Optional[str]:
    return conn.execute(select(ModelVersion.__table__.c.id)
                        .where(ModelVersion.__table__.c.role == "champion")
                        .order_by(ModelVersion.__table__.c.promoted_at.desc()).limit(1)).scalar()


def latest_prediction_ids(conn: Connection):  # type: ignore[no-untyped-def]
    """Subquery of the prediction id that counts per item: the champion's newest where the
    champion scored the item, else the newest of any model (so nothing scored is left out)."""
    newest = select(func.max(P.c.id)).group_by(P.c.item_id)
    champ = champion_version(conn)
    if champ is None:
        return newest
    other = P.alias("p_champ")
    by_champ = select(func.max(P.c.id)).where(P.c.model_version == champ).group_by(P.c.item_id)
    rest = (select(func.max(P.c.id)).where(~exists(select(1).where(other.c.item_id == P.c.item_id,
                                                                   other.c.model_version == champ)))
            .group_by(P.c.item_id))
    return by_champ.union_all(rest)


def _reports(meta: Any) -> int:
    if isinstance(meta, dict):
        for key in ("reports", "report_count", "user_reports"):
            v = meta.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
    return 0


def _language(meta: Any) -> Optional[str]:
    if isinstance(meta, dict):
        v = meta.get("language") or meta.get("lang")
        return str(v) if v else None
    return None


def _campaign_growth(conn: Connection, config: QueueConfig, now: dt.datetime) -> dict[int, int]:
    since = now - dt.timedelta(hours=config.priority.growth_window_hours)
    rows = conn.execute(select(CM.c.campaign_id, func.count()).where(CM.c.added_at >= since)
                        .group_by(CM.c.campaign_id))
    return {int(cid): int(n) for cid, n in rows}


def _lock_builds(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BUILD_LOCK_KEY})


def _prediction_rows(conn: Connection, *extra: Any, where: Sequence[Any] = ()):  # type: ignore[no-untyped-def]
    """Latest prediction per item joined with the item and its campaign (plus `extra` columns)."""
    return (select(P.c.item_id, P.c.model_version, P.c.label, P.c.score, P.c.scores, P.c.uncertainty,
                   I.c.text, I.c.surface, I.c.source, I.c["metadata"].label("meta"), CM.c.campaign_id, CP.c.size,
                   *extra)
            .join(I, I.c.id == P.c.item_id)
            .outerjoin(CM, CM.c.item_id == P.c.item_id)
            .outerjoin(CP, CP.c.id == CM.c.campaign_id)
            .where(P.c.id.in_(latest_prediction_ids(conn)), *where))


def _candidate(r: Any, growth: dict[int, int]) -> Candidate:
    size = int(r.size or 0)
    return Candidate(item_id=r.item_id, text=r.text, label=r.label, score=float(r.score),
                     scores=dict(r.scores or {}), uncertainty=float(r.uncertainty or 0.0),
                     model_version=r.model_version, campaign_id=r.campaign_id, surface=r.surface,
                     source=r.source, language=_language(r.meta), campaign_size=size,
                     campaign_growth=(growth.get(r.campaign_id, 0) / size) if size else 0.0,
                     reports=_reports(r.meta))


def _item_candidates(conn: Connection, now: dt.datetime, growth: dict[int, int]) -> Iterable[Candidate]:
    has_case = exists(select(1).where(C.c.item_id == P.c.item_id, C.c.campaign_id.is_(None)))
    for r in conn.execute(_prediction_rows(conn, where=[~has_case]).order_by(P.c.id)):
        yield _candidate(r, growth)


def _rescore_open_cases(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, now: dt.datetime,
                        growth: dict[int, int], harm: np.ndarray) -> dict[str, int]:
    """Re-plan waiting item cases whose item has a newer model's prediction (after a promotion).

    Only unclaimed cases in an ordinary queue move: their queue, severity, due time (from the
    case's creation), escalation and priority follow the new prediction; the audit flag and the
    case id stay.
    """
    special = [config.escalation_queue, config.appeals_queue, config.calibration_queue]
    q = _prediction_rows(conn, C.c.id.label("case_id"), C.c.created_at.label("case_created"), C.c.is_audit,
                         where=[C.c.state == "open", C.c.campaign_id.is_(None), C.c.calibration_set.is_(None),
                                C.c.queue.notin_(special), P.c.model_version != C.c.model_version]
                         ).join(C, C.c.item_id == P.c.item_id)
    out = {"rescored": 0, "rescored_escalated": 0}
    for r in conn.execute(q).all():
        row = plan_case(taxonomy, config, _candidate(r, growth), r.case_created, harm)
        priority, why, terms = score_features(taxonomy, row["meta"]["features"], config, r.case_created,
                                              row["due_at"], now)
        conn.execute(update(C).where(C.c.id == r.case_id).values(
            queue=row["queue"], state=row["state"], severity=row["severity"], predicted_label=row["predicted_label"],
            model_version=row["model_version"], due_at=row["due_at"], escalation_reason=row["escalation_reason"],
            priority=priority, priority_reason=why, meta=dict(row["meta"], terms=terms), updated_at=now))
        out["rescored"] += 1
        out["rescored_escalated"] += int(row["escalation_reason"] is not None)
    return out


def _campaign_candidates(conn: Connection, taxonomy: Taxonomy, growth: dict[int, int]) -> Iterable[Candidate]:
    has_case = exists(select(1).where(C.c.campaign_id == CP.c.id))
    camps = conn.execute(select(CP).where(CP.c.status == "active", ~has_case).order_by(CP.c.id)).mappings().all()
    if not camps:
        return
    latest = latest_prediction_ids(conn)
    for camp in camps:
        rows = conn.execute(
            select(P.c.item_id, P.c.scores, P.c.uncertainty, P.c.model_version, I.c.text, I.c.surface,
                   I.c.source, I.c["metadata"].label("meta"))
            .join(CM, CM.c.item_id == P.c.item_id).join(I, I.c.id == P.c.item_id)
            .where(CM.c.campaign_id == camp["id"], P.c.id.in_(latest))).all()
        if len(rows) < 2:
            continue  # a campaign case needs at least two scored members
        mean = {lbl: float(np.mean([float((r.scores or {}).get(lbl, 0.0)) for r in rows])) for lbl in taxonomy.labels}
        label = max(mean, key=mean.get)
        exemplar = next((r for r in rows if r.item_id == camp["exemplar_item_id"]), rows[0])
        size = max(int(camp["size"] or 0), len(rows))
        yield Candidate(item_id=exemplar.item_id, text=exemplar.text, label=label, score=mean[label],
                        scores=mean, uncertainty=float(np.mean([r.uncertainty or 0.0 for r in rows])),
                        model_version=exemplar.model_version, campaign_id=int(camp["id"]),
                        surface=exemplar.surface, source=exemplar.source, language=_language(exemplar.meta),
                        campaign_size=size, campaign_growth=growth.get(int(camp["id"]), 0) / size,
                        reports=sum(_reports(r.meta) for r in rows), extra={"campaign_case": True})


def _already_cased(conn: Connection, chunk: Sequence[Candidate]) -> set[tuple[Any, bool]]:
    """(item id, False) / (campaign id, True) of the chunk's candidates that already have a case."""
    items = [c.item_id for c in chunk if not c.is_campaign]
    camps = [c.campaign_id for c in chunk if c.is_campaign]
    out: set[tuple[Any, bool]] = set()
    for i in range(0, len(items), 900):
        out |= {(r, False) for r in conn.execute(select(C.c.item_id).where(
            C.c.item_id.in_(items[i:i + 900]), C.c.campaign_id.is_(None))).scalars()}
    for i in range(0, len(camps), 900):
        out |= {(r, True) for r in conn.execute(select(C.c.campaign_id).where(
            C.c.campaign_id.in_(camps[i:i + 900]))).scalars()}
    return out


def build_cases(store: Store, taxonomy: Taxonomy, config: Optional[QueueConfig] = None,
                now: Optional[dt.datetime] = None, actor: str = "system", progress: bool = True,
                chunk_size: int = 5000) -> dict[str, Any]:
    """Turn every scored item and every active campaign without a case into one; returns counts.

    Idempotent: an item or campaign that already has a case gets no second one, so it can run
    after every scoring batch. Waiting item cases whose item was re-scored by a newer model are
    re-planned in place (`rescored`), so a promotion re-orders the backlog.
    """
    from tqdm import tqdm

    config = config or load_queue_config(taxonomy=taxonomy)
    now = now or utcnow()
    harm = label_harm_weights(taxonomy)
    summary: dict[str, Any] = {"cases": 0, "item_cases": 0, "campaign_cases": 0, "audit": 0,
                               "escalated": 0, "calibration_copies": 0, "by_queue": {}}
    # Read and plan without the write lock; write in chunks so claims interleave with a big build.
    with store.read() as conn:
        growth = _campaign_growth(conn, config, now)
        candidates = list(_item_candidates(conn, now, growth))
        candidates += list(_campaign_candidates(conn, taxonomy, growth))
    bar = tqdm(total=len(candidates), desc="building cases", unit="case", disable=not progress, leave=False)
    for start in range(0, len(candidates), chunk_size):
        chunk = candidates[start:start + chunk_size]
        planned = [(cand, plan_case(taxonomy, config, cand, now, harm)) for cand in chunk]
        with store.begin() as conn:
            _lock_builds(conn)
            taken = _already_cased(conn, chunk)  # a concurrent build may have got there first
            rows: list[dict[str, Any]] = []
            for cand, row in planned:
                if (row["campaign_id"] if cand.is_campaign else cand.item_id, cand.is_campaign) in taken:
                    continue
                copies = calibration_copies(config, cand, row)
                rows.append(row)
                rows.extend(copies)
                summary["cases"] += 1
                summary["campaign_cases" if cand.is_campaign else "item_cases"] += 1
                summary["audit"] += int(row["is_audit"])
                summary["escalated"] += int(row["escalation_reason"] is not None)
                summary["calibration_copies"] += len(copies)
                summary["by_queue"][row["queue"]] = summary["by_queue"].get(row["queue"], 0) + 1
            if rows:
                conn.execute(insert(C), rows)
        bar.update(len(chunk))
    bar.close()
    with store.begin() as conn:
        _lock_builds(conn)
        summary.update(_rescore_open_cases(conn, taxonomy, config, now, growth, harm))
        if summary["cases"] or summary["rescored"]:
            audit.record(conn, actor, "cases.build", "queue", None,
                         {k: v for k, v in summary.items()} | {"config_version": config.version})
    return summary


# ---------------------------------------------------------------------------------------------
# Claims, leases, skip, release, escalation, sweep
# ---------------------------------------------------------------------------------------------
def _now(now: Optional[dt.datetime]) -> dt.datetime:
    return now or utcnow()


def expired_query(now: dt.datetime, limit: int = 500, dialect: str = "sqlite"):  # type: ignore[no-untyped-def]
    """Claimed cases whose lease lapsed, in `ix_cases_lease` order (ordering by id would scan the table)."""
    q = (select(C.c.id, C.c.queue, C.c.claimed_by).where(C.c.state == "claimed", C.c.lease_expires_at < now)
         .order_by(C.c.lease_expires_at, C.c.id).limit(limit))
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return q


def reclaim_expired(conn: Connection, config: QueueConfig, now: dt.datetime, limit: int = 500) -> list[int]:
    """Return cases whose lease lapsed to the queue they wait in; the ids returned (in the caller's tx)."""
    rows = conn.execute(expired_query(now, limit, conn.dialect.name)).all()
    for state in ("open", "escalated"):
        ids = [r.id for r in rows if config.waiting_state(r.queue) == state]
        if ids:
            conn.execute(update(C).where(C.c.id.in_(ids)).values(
                state=state, claimed_by=None, lease_expires_at=None, updated_at=now))
    if rows:
        audit.record(conn, "system", "case.lease_expired", "case", None,
                     {"cases": [r.id for r in rows], "holders": sorted({r.claimed_by for r in rows if r.claimed_by})})
    return [r.id for r in rows]


def claim_query(config: QueueConfig, queue: str, analyst: str, dialect: str = "sqlite"):  # type: ignore[no-untyped-def]
    """The claim SELECT: first waiting case of the queue in index order, not skipped by the analyst."""
    skipped = exists(select(1).where(SK.c.case_id == C.c.id, SK.c.analyst == analyst))
    q = (select(C.c.id).where(C.c.queue == queue, C.c.state == config.waiting_state(queue), ~skipped)
         .order_by(C.c.priority.desc(), C.c.id.asc()).limit(1))
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True, of=C)
    return q


def next_case(store: Store, analyst: str, queue: str, lease_seconds: Optional[int] = None,
              now: Optional[dt.datetime] = None, config: Optional[QueueConfig] = None,
              detail: bool = True) -> Optional[dict[str, Any]]:
    """Claim the best waiting case of `queue` for `analyst` with a lease; None when it is empty.

    Atomic: on PostgreSQL the row is taken with FOR UPDATE SKIP LOCKED, on SQLite the write
    transaction holds the database write lock from its first statement. Cases the analyst
    skipped (or a sibling calibration copy of one they hold) are not offered to them.
    """
    if not analyst:
        raise QueueError("an analyst name is required to claim a case")
    config = config or load_queue_config()
    if queue not in config.queues:
        raise QueueError(f"unknown queue {queue!r} (known: {', '.join(config.queues)})")
    now = _now(now)
    lease = int(lease_seconds or config.lease_seconds)
    with store.begin() as conn:
        reclaim_expired(conn, config, now)
        case_id = conn.execute(claim_query(config, queue, analyst, conn.dialect.name)).scalar()
        if case_id is None:
            return None
        expires = now + dt.timedelta(seconds=lease)
        conn.execute(update(C).where(C.c.id == case_id).values(
            state="claimed", claimed_by=analyst, lease_expires_at=expires,
            first_action_at=func.coalesce(C.c.first_action_at, now), updated_at=now))
        row = conn.execute(select(C.c.item_id, C.c.calibration_set).where(C.c.id == case_id)).one()
        if row.calibration_set:
            _exclude_calibration_siblings(conn, case_id, row.item_id, row.calibration_set, analyst, now)
        audit.record(conn, analyst, "case.claim", "case", case_id,
                     {"queue": queue, "lease_expires_at": expires.isoformat()})
        return case_view(conn, case_id) if detail else {"id": case_id, "queue": queue, "claimed_by": analyst,
                                                         "lease_expires_at": expires}


def _exclude_calibration_siblings(conn: Connection, case_id: int, item_id: Optional[str], cal_set: str,
                                  analyst: str, now: dt.datetime) -> None:
    already = exists(select(1).where(SK.c.case_id == C.c.id, SK.c.analyst == analyst))
    sibs = conn.execute(select(C.c.id).where(C.c.item_id == item_id, C.c.calibration_set == cal_set,
                                             C.c.id != case_id, ~already)).scalars().all()
    if sibs:
        conn.execute(insert(SK), [{"case_id": s, "analyst": analyst, "reason": "calibration sibling",
                                   "created_at": now} for s in sibs])


def lock_case(conn: Connection, case_id: int) -> dict[str, Any]:
    """The case row, locked for update on PostgreSQL; QueueError when there is no such case."""
    q = select(C).where(C.c.id == case_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise QueueError(f"no case {case_id}")
    return dict(row)


def check_actionable(case: Mapping[str, Any], analyst: str, now: dt.datetime) -> None:
    """Raise QueueError unless `analyst` may act on the case now (waiting, or claimed by them)."""
    state = case["state"]
    if state == "claimed":
        live = case["lease_expires_at"] is not None and case["lease_expires_at"] > now
        if case["claimed_by"] != analyst and live:
            raise QueueError(f"case {case['id']} is claimed by {case['claimed_by']} until "
                             f"{case['lease_expires_at']:%Y-%m-%d %H:%M:%S} UTC")
    elif state not in ("open", "escalated"):
        raise QueueError(f"case {case['id']} is {state}, not waiting for a decision")


def release(store: Store, case_id: int, analyst: str, now: Optional[dt.datetime] = None,
            config: Optional[QueueConfig] = None, reason: Optional[str] = None,
            _action: str = "case.release") -> dict[str, Any]:
    """Give a claimed case back to its queue, priority unchanged."""
    config = config or load_queue_config()
    now = _now(now)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        if case["state"] != "claimed" or case["claimed_by"] != analyst:
            holder = f"claimed by {case['claimed_by']}" if case["state"] == "claimed" else case["state"]
            raise QueueError(f"case {case_id} is not claimed by {analyst} (it is {holder})")
        if _action == "case.skip":
            if conn.execute(select(SK.c.case_id).where(SK.c.case_id == case_id, SK.c.analyst == analyst)).first() is None:
                conn.execute(insert(SK).values(case_id=case_id, analyst=analyst, reason=reason, created_at=now))
        conn.execute(update(C).where(C.c.id == case_id).values(
            state=config.waiting_state(case["queue"]), claimed_by=None, lease_expires_at=None, updated_at=now))
        audit.record(conn, analyst, _action, "case", case_id, {"queue": case["queue"], "reason": reason})
        return case_view(conn, case_id, with_history=False)


def renew(store: Store, case_id: int, analyst: str, lease_seconds: Optional[int] = None,
          now: Optional[dt.datetime] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Extend the holder's lease (a UI heartbeat while the analyst is still reading)."""
    config = config or load_queue_config()
    now = _now(now)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        live = case["lease_expires_at"] is not None and case["lease_expires_at"] > now
        if case["state"] != "claimed" or case["claimed_by"] != analyst or not live:
            raise QueueError(f"case {case_id} is not held by {analyst} (lease lapsed or never taken); claim it again")
        expires = now + dt.timedelta(seconds=int(lease_seconds or config.lease_seconds))
        conn.execute(update(C).where(C.c.id == case_id).values(lease_expires_at=expires, updated_at=now))
        return {"id": case_id, "claimed_by": analyst, "lease_expires_at": expires.isoformat()}


def skip(store: Store, case_id: int, analyst: str, reason: Optional[str] = None,
         now: Optional[dt.datetime] = None, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Give a claimed case back and never offer it to this analyst again (others still get it)."""
    return release(store, case_id, analyst, now=now, config=config, reason=reason, _action="case.skip")


def escalate(store: Store, taxonomy: Taxonomy, case_id: int, actor: str, reason: str,
             severity: Optional[str] = None, now: Optional[dt.datetime] = None,
             config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Move a waiting or claimed case to the escalation queue with the reason recorded."""
    if not reason or not reason.strip():
        raise QueueError("escalating needs a reason")
    if severity is not None and severity not in taxonomy.severities:
        raise QueueError(f"unknown severity {severity!r} (known: {', '.join(taxonomy.severities)})")
    config = config or load_queue_config(taxonomy=taxonomy)
    now = _now(now)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        check_actionable(case, actor, now)
        _move_to_escalation(conn, taxonomy, config, case, reason.strip(), now, severity)
        audit.record(conn, actor, "case.escalate", "case", case_id,
                     {"from_queue": case["queue"], "reason": reason.strip(), "severity": severity})
        return case_view(conn, case_id, with_history=False)


def _move_to_escalation(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, case: Mapping[str, Any],
                        reason: str, now: dt.datetime, severity: Optional[str] = None, human: bool = True) -> None:
    tier = case["severity"]
    if severity and (tier is None or taxonomy.sla_minutes(severity) < taxonomy.sla_minutes(tier)):
        tier = severity
    due = case["due_at"]
    if tier:
        tier_due = now + dt.timedelta(minutes=taxonomy.sla_minutes(tier))
        due = min(due, tier_due) if due else tier_due
    meta = dict(case["meta"] or {})
    features = dict(meta.get("features") or {}, severity=tier, escalation=reason.split(":")[0][:60])
    features["risk"] = max(float(features.get("risk", 0.0)), tier_weight(taxonomy, tier))
    meta.update(features=features, escalated_from=case["queue"])
    priority, why, terms = score_features(taxonomy, features, config, case["created_at"], due, now)
    meta["terms"] = terms
    conn.execute(update(C).where(C.c.id == case["id"]).values(
        queue=config.escalation_queue, state="escalated", claimed_by=None, lease_expires_at=None,
        escalation_reason=reason, severity=tier, due_at=due, priority=priority, priority_reason=why,
        first_action_at=func.coalesce(C.c.first_action_at, now) if human else C.c.first_action_at,
        meta=meta, updated_at=now))


def sweep(store: Store, taxonomy: Taxonomy, config: Optional[QueueConfig] = None,
          now: Optional[dt.datetime] = None, progress: bool = False, chunk_size: int = 5000) -> dict[str, int]:
    """Periodic upkeep: lapsed leases back to the queue, SLA-lapsing cases escalated, priorities refreshed.

    Priorities carry an SLA-urgency term, so they are recomputed here from the features stored
    with each case; run it every few minutes (cron, or the UI's timer).
    """
    from tqdm import tqdm

    config = config or load_queue_config(taxonomy=taxonomy)
    now = _now(now)
    out = {"leases_expired": 0, "sla_escalated": 0, "reprioritised": 0}
    waiting = or_(and_(C.c.state == "open", C.c.queue != config.escalation_queue),
                  C.c.state == "escalated")
    with store.begin() as conn:
        _lock_builds(conn)
        while True:
            got = reclaim_expired(conn, config, now)
            out["leases_expired"] += len(got)
            if len(got) < 500:
                break
        # SLA about to lapse -> escalation queue.
        tiers = config.sla_escalation.tiers
        if tiers:
            horizon = max(taxonomy.sla_minutes(t) for t in tiers) * config.sla_escalation.remaining_fraction
            rows = conn.execute(select(C).where(
                C.c.state == "open", C.c.severity.in_(tiers), C.c.due_at <= now + dt.timedelta(minutes=horizon),
                C.c.queue.notin_([config.escalation_queue, config.appeals_queue, config.calibration_queue])
            )).mappings().all()
            if rows:
                left = np.array([(r["due_at"] - now).total_seconds() / 60 for r in rows])
                sla = np.array([taxonomy.sla_minutes(r["severity"]) for r in rows])
                mask = sla_lapsing(left, sla, np.ones(len(rows), bool), config.sla_escalation.remaining_fraction)
                for r, hit, m in zip(rows, mask, left):
                    if hit:
                        why = (f"sla: {max(m, 0):.0f} of {taxonomy.sla_minutes(r['severity'])} minutes left "
                               f"on the {r['severity']} SLA" if m > 0 else f"sla: {r['severity']} SLA lapsed")
                        _move_to_escalation(conn, taxonomy, config, r, why, now, human=False)
                        audit.record(conn, "system", "case.escalate", "case", r["id"],
                                     {"from_queue": r["queue"], "reason": why})
                        out["sla_escalated"] += 1
        if out["sla_escalated"] or out["leases_expired"]:
            audit.record(conn, "system", "cases.sweep", "queue", None, dict(out))
        total = conn.execute(select(func.count()).select_from(C).where(waiting)).scalar() or 0
    # Refresh priorities (urgency grows with time), one short write transaction per chunk so
    # claims interleave; a claim taken meanwhile simply drops out of the `waiting` filter.
    bar = tqdm(total=total, desc="refreshing priorities", unit="case", disable=not progress, leave=False)
    last_id = 0
    stmt = (update(C).where(C.c.id == bindparam("cid"), waiting)
            .values(priority=bindparam("p"), priority_reason=bindparam("why")))
    while True:
        with store.begin() as conn:
            rows = conn.execute(select(C.c.id, C.c.created_at, C.c.due_at, C.c.meta, C.c.priority)
                                .where(waiting, C.c.id > last_id).order_by(C.c.id).limit(chunk_size)).all()
            if not rows:
                break
            last_id = rows[-1].id
            changes = []
            for r in rows:
                feats = (r.meta or {}).get("features")
                if not feats:
                    continue
                p, why, _ = score_features(taxonomy, feats, config, r.created_at, r.due_at, now)
                if abs(p - (r.priority or 0.0)) > PRIORITY_EPSILON:
                    changes.append({"cid": r.id, "p": p, "why": why})
            if changes:
                conn.execute(stmt, changes)
                out["reprioritised"] += len(changes)
        bar.update(len(rows))
    bar.close()
    return out


# ---------------------------------------------------------------------------------------------
# Reading cases
# ---------------------------------------------------------------------------------------------
def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


def case_view(conn: Connection, case_id: int, with_history: bool = True) -> dict[str, Any]:
    """A case with what an analyst needs to decide: item, model scores, campaign, earlier decisions."""
    case = conn.execute(select(C).where(C.c.id == case_id)).mappings().first()
    if case is None:
        raise QueueError(f"no case {case_id}")
    out = _jsonable(case)
    if case["item_id"]:
        item = conn.execute(select(I.c.id, I.c.text, I.c.source, I.c.surface, I.c.author_id, I.c.created_at)
                            .where(I.c.id == case["item_id"])).mappings().first()
        out["item"] = _jsonable(item) if item else None
    if case["campaign_id"] is not None:
        camp = conn.execute(select(CP.c.id, CP.c.size, CP.c.entities, CP.c.top_terms, CP.c.first_seen, CP.c.last_seen)
                            .where(CP.c.id == case["campaign_id"])).mappings().first()
        out["campaign"] = _jsonable(camp) if camp else {"id": case["campaign_id"]}
        out["campaign"]["members"] = conn.execute(select(func.count()).select_from(CM).where(
            CM.c.campaign_id == case["campaign_id"])).scalar()
    if with_history and case["item_id"]:
        decs = conn.execute(select(D).where(D.c.item_id == case["item_id"]).order_by(D.c.id)).mappings().all()
        out["decisions"] = [_jsonable(d) for d in decs]
    return out


def case_detail(store: Store, case_id: int) -> dict[str, Any]:
    """`case_view` in its own read transaction (for the CLI and the UI)."""
    with store.read() as conn:
        return case_view(conn, case_id)


def filter_cases(q: Any, queue: Optional[str] = None, state: Optional[str] = None,
                 policy: Optional[str] = None, surface: Optional[str] = None) -> Any:
    """`q` (a select over cases) joined to its items and narrowed by queue, state, policy, surface."""
    q = q.outerjoin(I, I.c.id == C.c.item_id)
    if queue:
        q = q.where(C.c.queue == queue)
    if state:
        q = q.where(C.c.state == state)
    if policy:
        q = q.where(C.c.predicted_label == policy)
    if surface:
        q = q.where(I.c.surface == surface)
    return q


def list_cases(store: Store, queue: Optional[str] = None, state: Optional[str] = None,
               policy: Optional[str] = None, surface: Optional[str] = None, audit_only: bool = False,
               limit: Optional[int] = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Cases filtered by queue, state, predicted policy and surface, best priority first."""
    q = filter_cases(select(C.c.id, C.c.item_id, C.c.campaign_id, C.c.queue, C.c.state, C.c.priority,
                            C.c.priority_reason, C.c.severity, C.c.predicted_label, C.c.due_at, C.c.is_audit,
                            C.c.calibration_set, C.c.escalation_reason, C.c.claimed_by, C.c.lease_expires_at,
                            I.c.surface, I.c.text), queue=queue, state=state, policy=policy, surface=surface)
    if audit_only:
        q = q.where(C.c.is_audit.is_(True))
    q = q.order_by(C.c.priority.desc(), C.c.id).offset(offset)
    if limit:
        q = q.limit(limit)
    with store.read() as conn:
        return [_jsonable(r) for r in conn.execute(q).mappings()]


def waiting_rank(values: Sequence[float]) -> np.ndarray:
    """Indices that sort priorities best-first, ties by arrival (the claim order of `next_case`)."""
    v = np.asarray(values, dtype=float)
    return np.lexsort((np.arange(len(v)), -v))
