"""review context: notes, tags, exposure counters, user preferences (issue 17)

`notes` (append-only, guarded like decisions) and `tags` on items and campaigns
(labeling.notes); `reveals` (who unmasked which case, for the exposure counter) and
`user_preferences` (blur, grayscale per user) for the review screen (labeling.wellbeing).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# -- notes and tags on items and campaigns (labeling.notes); notes are append-only -----------
NOTES_APPEND_ONLY = ("notes",)


def _notes_tags_upgrade() -> None:
    op.create_table(
        'notes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('entity_type', sa.String(length=20), nullable=False),
        sa.Column('entity_id', sa.String(length=200), nullable=False),
        sa.Column('author', sa.String(length=100), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notes_entity', 'notes', ['entity_type', 'entity_id', 'id'], unique=False)
    op.create_table(
        'tags',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('entity_type', sa.String(length=20), nullable=False),
        sa.Column('entity_id', sa.String(length=200), nullable=False),
        sa.Column('tag', sa.String(length=50), nullable=False),
        sa.Column('added_by', sa.String(length=100), nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.Column('removed_by', sa.String(length=100), nullable=True),
        sa.Column('removed_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_tags_entity', 'tags', ['entity_type', 'entity_id'], unique=False)
    op.create_index('ix_tags_tag', 'tags', ['tag'], unique=False)
    dialect = op.get_bind().dialect.name
    for table in NOTES_APPEND_ONLY:  # the same guards as decisions (0001, 0003)
        for verb in ("UPDATE", "DELETE"):
            name = f"{table}_no_{verb.lower()}"
            if dialect == "sqlite":
                op.execute(f"CREATE TRIGGER {name} BEFORE {verb} ON {table} BEGIN "
                           f"SELECT RAISE(ABORT, '{table} is append-only: write a new row instead'); END")
            elif dialect == "postgresql":
                op.execute(f"CREATE TRIGGER {name} BEFORE {verb} ON {table} "
                           f"FOR EACH ROW EXECUTE FUNCTION wb_append_only()")
        if dialect == "sqlite":
            op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                       f"WHEN EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id) BEGIN "
                       f"SELECT RAISE(ABORT, '{table} is append-only: an insert may not replace a row'); END")
        elif dialect == "postgresql":
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION wb_append_only()")


def _notes_tags_downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in NOTES_APPEND_ONLY:
        for suffix in ("update", "delete", "replace", "truncate"):
            if dialect == "sqlite":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{suffix}")
            elif dialect == "postgresql":
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{suffix} ON {table}")
    op.drop_index('ix_tags_tag', table_name='tags')
    op.drop_index('ix_tags_entity', table_name='tags')
    op.drop_table('tags')
    op.drop_index('ix_notes_entity', table_name='notes')
    op.drop_table('notes')


# -- reveals and user preferences (labeling.wellbeing) -------------------------------------------
def _wellbeing_upgrade() -> None:
    op.create_table(
        'reveals',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('analyst', sa.String(length=100), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(length=200), nullable=True),
        sa.Column('severity', sa.String(length=10), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('analyst', 'case_id', name='uq_reveals_analyst_case'),
    )
    op.create_index('ix_reveals_analyst_time', 'reveals', ['analyst', 'created_at'], unique=False)
    op.create_table(
        'user_preferences',
        sa.Column('user_name', sa.String(length=100), nullable=False),
        sa.Column('prefs', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('user_name'),
    )


def _wellbeing_downgrade() -> None:
    op.drop_table('user_preferences')
    op.drop_index('ix_reveals_analyst_time', table_name='reveals')
    op.drop_table('reveals')


def upgrade() -> None:
    _notes_tags_upgrade()
    _wellbeing_upgrade()


def downgrade() -> None:
    _wellbeing_downgrade()
    _notes_tags_downgrade()
