"""case hold cap: when a case's claim began

`cases.claimed_at`: the store's time the latest claim of the case began. A review tab left open
sent heartbeats that renewed its lease forever (`labeling.claims.renew` had no cap on the whole
hold), so one idle tab sat on a case and starved its queue and SLA; renewal now stops at
queues.yaml's `max_hold_seconds` after `claimed_at`. Existing rows stay NULL (claim start
unknown): a live hold of such a row starts its cap at its next renewal, never refused for it.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('claimed_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('claimed_at')
