"""The data model, in one place: every table the workbench stores (DESIGN.md, "Data model").

Argilla's vocabulary maps onto it: an Item is a record, a Prediction a suggestion, a Decision a
response. Decisions and audit events are append-only (database triggers refuse UPDATE and
DELETE, see the migrations); a correction is a new decision that names the one it supersedes.

Times are stored as naive UTC datetimes; `utcnow()` is the one clock.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# Case states, in the order a case usually moves through them.
MAX_ROW_ID = 2**31 - 1  # every integer id column is 32-bit on PostgreSQL: a larger number names no row
CASE_STATES = ("open", "claimed", "decided", "escalated", "appealed")
# Decision kinds.
# "undo": an analyst took back their own decision within the undo window (labeling.undo); it
# supersedes that decision and is no label itself.
DECISION_KINDS = ("review", "qa_audit", "calibration", "appeal", "bulk", "escalation", "undo")
# Model roles.
MODEL_ROLES = ("champion", "challenger", "retired")


class Item(Base):
    """A piece of user content: the unit everything else points at."""

    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    surface: Mapped[str] = mapped_column(String(50), default="post")
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(40))
    author_id: Mapped[Optional[str]] = mapped_column(String(200))
    created_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    source_label: Mapped[Optional[str]] = mapped_column(String(100))
    # The source label mapped through the taxonomy (ground truth where the source has one).
    policy_label: Mapped[Optional[str]] = mapped_column(String(50))
    taxonomy_version: Mapped[Optional[str]] = mapped_column(String(50))
    meta: Mapped[Optional[dict[str, Any]]] = mapped_column("metadata", JSON)
    ingest_run_id: Mapped[Optional[int]] = mapped_column(Integer)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ix_items_source", "source", "policy_label"),
        Index("ix_items_text_hash", "text_hash"),
        Index("ix_items_author", "author_id"),
    )


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100), default="system")
    paths: Mapped[list[Any]] = mapped_column(JSON)
    options: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    counts: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)


class ModelVersion(Base):
    """A trained classifier in the registry; exactly one has role 'champion' at a time."""

    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    artifact_path: Mapped[str] = mapped_column(Text)
    # SHA-256 over the artifact folder's files (sorted relative paths and bytes), checked before
    # loading; NULL for versions trained before it was recorded (refused: retrain them).
    artifact_sha256: Mapped[Optional[str]] = mapped_column(String(64))
    parent_id: Mapped[Optional[str]] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="challenger")
    labels: Mapped[list[Any]] = mapped_column(JSON)
    params: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    data_fingerprint: Mapped[Optional[str]] = mapped_column(String(64))
    metrics: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    taxonomy_version: Mapped[Optional[str]] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    promoted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # Who approved the latest promotion to champion (also in the model.promote audit event).
    promoted_by: Mapped[Optional[str]] = mapped_column(String(100))


class Prediction(Base):
    """A model's suggestion for an item: per-label scores, top label and its uncertainty."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    model_version: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    uncertainty: Mapped[float] = mapped_column(Float, default=0.0)
    # Outcome notes for odd input: {"truncated": true, "empty": true, "undecodable": true}.
    flags: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    taxonomy_version: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("item_id", "model_version", name="uq_predictions_item_model"),
        Index("ix_predictions_model", "model_version", "label"),
    )


class Embedding(Base):
    """Sentence embedding cache keyed by model and normalised-text hash (copies encode once)."""

    __tablename__ = "embeddings"
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Campaign(Base):
    """A cluster of near-duplicate items (a scam wave) that can be acted on as one."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exemplar_item_id: Mapped[Optional[str]] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    last_seen: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    entities: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    top_terms: Mapped[Optional[list[Any]]] = mapped_column(JSON)
    link_reasons: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CampaignMember(Base):
    """Membership of an item in a campaign, with why it was linked (similarity or entity)."""

    __tablename__ = "campaign_members"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    linked_by: Mapped[Optional[str]] = mapped_column(String(200))
    similarity: Mapped[Optional[float]] = mapped_column(Float)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_campaign_members_campaign", "campaign_id"),)


class Case(Base):
    """An item or a campaign waiting in a queue for a human."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[Optional[str]] = mapped_column(ForeignKey("items.id"))
    campaign_id: Mapped[Optional[int]] = mapped_column(ForeignKey("campaigns.id"))
    queue: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    priority_reason: Mapped[Optional[str]] = mapped_column(Text)
    severity: Mapped[Optional[str]] = mapped_column(String(10))
    predicted_label: Mapped[Optional[str]] = mapped_column(String(50))
    model_version: Mapped[Optional[str]] = mapped_column(String(100))
    due_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    is_audit: Mapped[bool] = mapped_column(Boolean, default=False)
    # The probability the QA-audit draw had of taking this case (labeling.sampling; issue 19):
    # estimators weight an audited case by its inverse. NULL on cases built before it was stored.
    audit_inclusion: Mapped[Optional[float]] = mapped_column(Float)
    calibration_set: Mapped[Optional[str]] = mapped_column(String(100))
    escalation_reason: Mapped[Optional[str]] = mapped_column(Text)
    claimed_by: Mapped[Optional[str]] = mapped_column(String(100))
    lease_expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # When the latest claim began (the store's clock), so a heartbeat cannot renew a hold past
    # queues.yaml's max_hold_seconds (labeling.claims.renew). NULL on cases claimed before 0013:
    # the cap then starts at the first renewal.
    claimed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    first_action_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    resolved_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    reopened_from: Mapped[Optional[int]] = mapped_column(Integer)
    # Context shown to the analyst: priority features, model scores, appeal / escalation packet.
    meta: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ix_cases_item", "item_id"),
        Index("ix_cases_lease", "state", "lease_expires_at"),
        Index("ix_cases_created", "created_at"),  # the Operations tab's period (0015)
        Index("ix_cases_resolved", "resolved_at"),
    )


# The claim path: open cases of one queue, best priority first, oldest first among equals; the
# index order is the ORDER BY of `queue.next_case`, so a claim reads one index entry, not a sort.
Index("ix_cases_claim", Case.queue, Case.state, Case.priority.desc(), Case.id)


class CaseSkip(Base):
    """An analyst passed on a case (or holds a sibling calibration copy): not offered to them again."""

    __tablename__ = "case_skips"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    analyst: Mapped[str] = mapped_column(String(100), primary_key=True)
    reason: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Decision(Base):
    """A human's answer on a case. Append-only: a correction is a new row with `supersedes_id`."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[Optional[int]] = mapped_column(ForeignKey("cases.id"))
    item_id: Mapped[Optional[str]] = mapped_column(ForeignKey("items.id"))
    campaign_id: Mapped[Optional[int]] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="review")
    label: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(50))
    severity: Mapped[Optional[str]] = mapped_column(String(10))
    policy_ref: Mapped[Optional[str]] = mapped_column(String(100))
    rationale: Mapped[Optional[str]] = mapped_column(Text)
    # What the analyst saw: the model's version, label and score at decision time.
    model_version: Mapped[Optional[str]] = mapped_column(String(100))
    model_label: Mapped[Optional[str]] = mapped_column(String(50))
    model_score: Mapped[Optional[float]] = mapped_column(Float)
    is_override: Mapped[bool] = mapped_column(Boolean, default=False)
    taxonomy_version: Mapped[str] = mapped_column(String(50))
    supersedes_id: Mapped[Optional[int]] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ix_decisions_item", "item_id", "created_at"),
        Index("ix_decisions_case", "case_id"),
        Index("ix_decisions_supersedes", "supersedes_id"),  # "is it superseded": every label-of-record look-up
    )


# Account roles are the keys of configs/roles.yaml; token scopes are its action names.
class User(Base):
    """An account (core.accounts): a name, a role, an argon2 password hash, and its failed logins.

    Names are unique and never reserved system names. `failed_logins` / `locked_until` throttle
    password guessing per name, across processes. Disabling keeps the row (decisions name it).
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[Optional[str]] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("name", name="uq_users_name"),)


class ApiToken(Base):
    """A bearer token of a user: only its SHA-256 is stored; `prefix` identifies it in listings."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", name="fk_api_tokens_user"))
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    # None: everything the user's role allows; a list narrows it to these actions.
    scopes: Mapped[Optional[list[Any]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
        Index("ix_api_tokens_user", "user_id"),
    )


class WebSession(Base):
    """A signed-in browser session (core.web_sessions): only the SHA-256 of its cookie is stored.

    In the store, not in memory, so a session survives a restart and is shared by every `serve`
    process, and a disabled user, a revocation or an idle timeout ends it at once everywhere."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", name="fk_web_sessions_user"))
    client: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # logout, idle, expired, disabled, password, revoked
    end_reason: Mapped[Optional[str]] = mapped_column(String(20))

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_web_sessions_hash"),
        Index("ix_web_sessions_user", "user_id"),
    )


class AuditEvent(Base):
    """Who did what when. Append-only and hash-chained: each row's hash covers the previous one."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[Optional[str]] = mapped_column(String(50))
    entity_id: Mapped[Optional[str]] = mapped_column(String(200))
    payload: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    __table_args__ = (
        Index("ix_audit_action", "action", "id"),  # the latest gate verdict, training, redactions (0015)
        Index("ix_audit_entity", "entity_type", "entity_id", "id"),  # a case's or item's timeline
    )


# Webhook delivery states (workbench/webhooks.py); `discarded`: dead, and an operator gave up on it
# (core.outbox.discard). `status` is a plain String(20) without a CHECK: a new state needs no migration.
DELIVERY_STATES = ("pending", "delivered", "dead", "discarded")


class OutboxEvent(Base):
    """An event for the enforcement platform, written in the decision's own transaction
    (`core.outbox.enqueue`); the delivery worker fans it out to endpoints (`fanned_out_at`)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    fanned_out_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
        Index("ix_outbox_fanout", "fanned_out_at", "id"),
        Index("ix_outbox_key", "idempotency_key"),
    )


class OutboxItem(Base):
    """Which items an outbox event is about (`core.outbox.enqueue` writes them with the event):
    the index behind per-item delivery order, so a claim finds an older event about the same
    item without reading the backlog's payloads. Derived from `outbox.payload`, like the outbox
    itself not evidence: no append-only trigger."""

    __tablename__ = "outbox_items"
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", name="fk_outbox_items_event"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(200), primary_key=True)

    __table_args__ = (Index("ix_outbox_items_item", "item_id", "outbox_id"),)


class WebhookDelivery(Base):
    """One event for one endpoint: pending until delivered, dead after the last attempt, discarded
    when an operator gives up on a dead one.
    A worker holds it while sending (`lease_owner`, `lease_expires_at`)."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("outbox.event_id", name="fk_deliveries_event"))
    endpoint: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[Optional[str]] = mapped_column(String(100))
    lease_expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    last_status_code: Mapped[Optional[int]] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint", name="uq_deliveries_event_endpoint"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )


class WebhookAttempt(Base):
    """Every POST the worker made (or started: a row without `finished_at` is a worker that
    died between send and acknowledgement)."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", name="fk_attempts_delivery"))
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[Optional[str]] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    status_code: Mapped[Optional[int]] = mapped_column(Integer)
    error: Mapped[Optional[str]] = mapped_column(Text)

    __table_args__ = (Index("ix_attempts_delivery", "delivery_id"),)


# What notes and tags are attached to (labeling.notes).
NOTE_TARGETS = ("item", "campaign")


class Note(Base):
    """An analyst's note on an item or a campaign (labeling.notes). Append-only, like decisions:
    a correction is a new note."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_notes_entity", "entity_type", "entity_id", "id"),)


class Tag(Base):
    """A tag on an item or a campaign (labeling.notes). Removing one stamps `removed_at` and
    `removed_by` (a tag added again is a new row); every change is also in the audit log."""

    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(200))
    tag: Mapped[str] = mapped_column(String(50))
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    removed_by: Mapped[Optional[str]] = mapped_column(String(100))
    removed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_tags_entity", "entity_type", "entity_id"),
        Index("ix_tags_tag", "tag"),
    )



class Reveal(Base):
    """An analyst unmasked a case's texts (labeling.wellbeing): the case stays revealed for them,
    the reveal is audited once, and severe reveals count against the shift's exposure budget. A
    reveal of an item without a case has a negative `case_id` (`wellbeing.caseless_key`) and is
    found by analyst and `item_id`."""

    __tablename__ = "reveals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    analyst: Mapped[str] = mapped_column(String(100))
    case_id: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[Optional[str]] = mapped_column(String(200))
    severity: Mapped[Optional[str]] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("analyst", "case_id", name="uq_reveals_analyst_case"),
        Index("ix_reveals_analyst_time", "analyst", "created_at"),
        # a reveal of an item without a case is found by reader and item (migration 0012)
        Index("ix_reveals_analyst_item", "analyst", "item_id"),
    )


class Exposure(Base):
    """An analyst shown a case's texts unmasked again after its reveal (labeling.wellbeing): the
    case stays revealed, so a later shift's reading stored no row and counted nothing (migration
    0016). One row spans exposures of one case at one tier lying at most `wellbeing.EXPOSURE_GAP`
    apart (`first_at` to `last_at`), so a shift holds an exposure exactly when it meets a span."""

    __tablename__ = "exposures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    analyst: Mapped[str] = mapped_column(String(100))
    case_id: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[Optional[str]] = mapped_column(String(200))
    severity: Mapped[Optional[str]] = mapped_column(String(10))
    first_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_exposures_analyst_case", "analyst", "case_id", "id"),  # the span to extend
        Index("ix_exposures_analyst_time", "analyst", "last_at"),  # one reader's shift
        Index("ix_exposures_time", "last_at"),  # the team's shift (`team_exposure`)
    )


class UserPreference(Base):
    """Display settings remembered per user (labeling.wellbeing): blur, grayscale."""

    __tablename__ = "user_preferences"
    user_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    prefs: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# Sides of the campaign-grouped training split (labeling.training_data; issue 18).
SPLITS = ("train", "test")


class LearningSplit(Base):
    """The side of the training split an item was first given (labeling.training_data): stored so
    an item keeps its side across retrains, re-clustering and exports. `group_key` is the group it
    was assigned with (`campaign:<id>` or `text:<hash>`)."""

    __tablename__ = "learning_splits"
    item_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    split: Mapped[str] = mapped_column(String(10))
    group_key: Mapped[str] = mapped_column(String(120))
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

metadata = Base.metadata
