"""evaluation: audit inclusion probabilities and drift alarms (issue 19)

Placeholder revision: filled in by the change that needs it (kept so the revision chain is linear).

Revision ID: 0009
Revises: 0008
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
