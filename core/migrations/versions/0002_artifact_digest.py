"""artifact digest: model_versions.artifact_sha256

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00.000000

Each model version records the SHA-256 of its artifact folder at training (sorted relative
paths and their bytes; derived files written after training are left out), and loading checks
it before anything is read. Rows trained before this revision have no digest and are refused
at load time with a message to retrain.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('artifact_sha256')
