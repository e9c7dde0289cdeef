"""review context: notes, tags, exposure counters, user preferences (issue 17)

Placeholder revision: filled in by the change that needs it (kept so the revision chain is linear).

Revision ID: 0006
Revises: 0005
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
