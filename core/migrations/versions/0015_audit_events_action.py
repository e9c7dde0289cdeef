"""audit events by action, and by the entity they are about

The audit log is append-only and grows with every decision, claim and reveal, yet its readers
look events up by `action` (the redaction claims, `audit.redact`; the champion's training event
and the latest gate verdict, `evaluation.retrain_mark`; the failed retrains since then,
`evaluation.promotion`; the gate verdicts, `evaluation.model_overview`) and by the entity an event
is about (a case's and its item's timeline, `labeling.packets.escalation_packet`). With no index
on either each look-up scanned the whole log. Both indexes end with `id`: every one of those
reads orders by it (the newest first, or the oldest first), so PostgreSQL reads them in order too
(SQLite keeps the rowid in every index). The Operations tab reads its period's cases, those
created or resolved since a time (`evaluation.ops`, `since`): indexes on both columns. No row is
changed.

Revision ID: 0015
Revises: 0014
"""
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_action', 'audit_events', ['action', 'id'], unique=False)
    op.create_index('ix_audit_entity', 'audit_events', ['entity_type', 'entity_id', 'id'], unique=False)
    op.create_index('ix_cases_created', 'cases', ['created_at'], unique=False)
    op.create_index('ix_cases_resolved', 'cases', ['resolved_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cases_resolved', table_name='cases')
    op.drop_index('ix_cases_created', table_name='cases')
    op.drop_index('ix_audit_entity', table_name='audit_events')
    op.drop_index('ix_audit_action', table_name='audit_events')
