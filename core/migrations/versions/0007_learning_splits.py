"""learning loop: the stored campaign-grouped training split (issue 18)

`learning_splits` records the side (train / test) each labelled item was first given by
`labeling.training_data.assign_splits`, with the group it was assigned with. Stored rather than
recomputed from a hash alone because an item's group can change (a later clustering run joins
it to a campaign, or merges two campaigns): a stored side never moves, so a champion is never
evaluated on an item it was trained on, and an export names the same side as training did.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'learning_splits',
        sa.Column('item_id', sa.String(length=200), nullable=False),
        sa.Column('split', sa.String(length=10), nullable=False),
        sa.Column('group_key', sa.String(length=120), nullable=False),
        sa.Column('assigned_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('item_id'),
    )


def downgrade() -> None:
    op.drop_table('learning_splits')
