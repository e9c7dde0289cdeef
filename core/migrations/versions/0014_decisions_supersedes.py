"""decisions by the decision they supersede

Every "label of record" question (`core.labels.current_decisions`, undo's and correction's
"is this decision superseded", the label-error scan, a campaign's decided members) looks up the
decisions whose `supersedes_id` is a given decision. With no index on that column each look-up
scanned the decisions table (SQLite built a throw-away automatic index per statement; the
correlated NOT EXISTS of undo ran one scan per row). No row is changed.

Revision ID: 0014
Revises: 0013
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_decisions_supersedes', 'decisions', ['supersedes_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_decisions_supersedes', table_name='decisions')
