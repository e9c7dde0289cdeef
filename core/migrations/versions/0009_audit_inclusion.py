"""evaluation: audit inclusion probabilities (issue 19)

`cases.audit_inclusion`: the probability the QA-audit draw had of taking the case, so a
stratified audit can be weighted by its inverse (evaluation.estimates). Existing rows stay NULL
(read as a uniform audit).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('audit_inclusion', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('audit_inclusion')
