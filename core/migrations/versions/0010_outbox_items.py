"""webhook order index: the items of each outbox event

`outbox_items`: one row per (outbox event, item its decisions are about), indexed by item then
outbox id, so a claim finds an older event about the same item in the index instead of reading
and parsing every pending delivery's payload (`core.outbox._held`). Existing events are
backfilled from their payloads. Derived data like the outbox itself: no append-only trigger.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_CHUNK = 1000


def _items(payload):  # type: ignore[no-untyped-def]
    """The rule of `core.outbox._items` as of this revision (a migration does not follow later code)."""
    rows = payload.get("decisions") if isinstance(payload, dict) else None
    return {str(d["item_id"]) for d in rows or () if isinstance(d, dict) and d.get("item_id") is not None}


def upgrade() -> None:
    items = op.create_table(
        'outbox_items',
        sa.Column('outbox_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name='fk_outbox_items_event'),
        sa.PrimaryKeyConstraint('outbox_id', 'item_id'),
    )
    with op.batch_alter_table('outbox_items', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_items_item', ['item_id', 'outbox_id'], unique=False)
    outbox = sa.table('outbox', sa.column('id', sa.Integer()), sa.column('payload', sa.JSON()))
    conn = op.get_bind()
    last = 0
    while True:
        chunk = conn.execute(sa.select(outbox.c.id, outbox.c.payload).where(outbox.c.id > last)
                             .order_by(outbox.c.id).limit(_CHUNK)).all()
        if not chunk:
            break
        rows = [{"outbox_id": oid, "item_id": item} for oid, payload in chunk for item in sorted(_items(payload))]
        if rows:
            conn.execute(sa.insert(items), rows)
        last = chunk[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('outbox_items', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_items_item')
    op.drop_table('outbox_items')
