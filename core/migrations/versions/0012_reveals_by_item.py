"""reveals by item: a case-less reveal is found by reader and item id

A reveal of an item without a case (the API's item view) was stored and found under
`reveals.case_id` = a negative 31-bit hash of the item id alone, so two items whose keys collided
shared one row and the second item's reveal was never counted against the reader's exposure.
`labeling.wellbeing.record_caseless_reveal` now finds such a reveal by reader and item id and
stores a new one under the first key of the item's own probe sequence no other item holds (the
old key first). This index serves that look-up. No row is changed: reveals stored under the old
keys keep their keys and still count once.

Revision ID: 0012
Revises: 0011
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_reveals_analyst_item', 'reveals', ['analyst', 'item_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reveals_analyst_item', table_name='reveals')
