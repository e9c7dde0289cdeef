"""exposures per shift: a case shown revealed again counts in the shift it is read in

A reveal is stored once per analyst and case (`reveals`) and the case then stays revealed for that
analyst. Read again in a later shift (the case came back through re-review, an appeal, an
escalation or the label-error queue; the API's item view; `cases show --reveal`) it exposed the
analyst again, yet `labeling.wellbeing.exposure` counted reveal rows at their first time only:
today's shift counted nothing. `exposures` keeps those later exposures: one row per analyst,
case and tier spans exposures lying at most `wellbeing.EXPOSURE_GAP` apart (`first_at` to
`last_at`), so a shift holds one exactly when it meets a span, and one (analyst, item) counts once
per shift. No row is changed: a stored reveal keeps its row, time and audit event and still counts
at its own time; the table starts empty.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'exposures',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('analyst', sa.String(length=100), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(length=200), nullable=True),
        sa.Column('severity', sa.String(length=10), nullable=True),
        sa.Column('first_at', sa.DateTime(), nullable=False),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_exposures_analyst_case', 'exposures', ['analyst', 'case_id', 'id'], unique=False)
    op.create_index('ix_exposures_analyst_time', 'exposures', ['analyst', 'last_at'], unique=False)
    op.create_index('ix_exposures_time', 'exposures', ['last_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_exposures_time', table_name='exposures')
    op.drop_index('ix_exposures_analyst_time', table_name='exposures')
    op.drop_index('ix_exposures_analyst_case', table_name='exposures')
    op.drop_table('exposures')
