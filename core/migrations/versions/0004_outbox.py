"""webhook outbox: outbox events and per-endpoint webhook deliveries

An `outbox` row is written in the same transaction as the decision it announces
(`core.outbox.enqueue`); the delivery worker (workbench/webhooks.py) fans each event out to
the configured endpoints subscribed to its type as `webhook_deliveries` rows and delivers them
at least once, with retries and a dead-letter state; every attempt is a `webhook_attempts` row.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('event_type', sa.String(length=50), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('fanned_out_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', name='uq_outbox_event_id'),
    )
    op.create_index('ix_outbox_fanout', 'outbox', ['fanned_out_at', 'id'], unique=False)
    op.create_index('ix_outbox_key', 'outbox', ['idempotency_key'], unique=False)
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('endpoint', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('lease_owner', sa.String(length=100), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['outbox.event_id'], name='fk_deliveries_event'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'endpoint', name='uq_deliveries_event_endpoint'),
    )
    op.create_index('ix_deliveries_due', 'webhook_deliveries',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=100), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'],
                                name='fk_attempts_delivery'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_attempts_delivery', 'webhook_attempts', ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_attempts_delivery', table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_outbox_key', table_name='outbox')
    op.drop_index('ix_outbox_fanout', table_name='outbox')
    op.drop_table('outbox')
