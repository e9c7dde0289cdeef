"""append-only for real: no REPLACE on SQLite, no TRUNCATE on PostgreSQL

On SQLite, `REPLACE INTO` / `INSERT OR REPLACE` deletes the conflicting row without firing the
DELETE triggers of 0001 unless the connection sets `recursive_triggers` (the store does; a
hand-opened connection need not). A BEFORE INSERT guard on each append-only table refuses an
insert that would collide with an existing row, whatever the connection's settings.

On PostgreSQL, row triggers do not fire on TRUNCATE: statement-level BEFORE TRUNCATE triggers
refuse it. (Against someone who can drop triggers, the least-privilege role of
docs/deployment.md and the keyed audit chain are the defence.)

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# table -> the columns whose collision REPLACE would "resolve" by deleting the old row
GUARDED = {"decisions": ("id",), "audit_events": ("id", "hash", "prev_hash")}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, cols in GUARDED.items():
        if dialect == "sqlite":
            clash = " OR ".join(f"{c} = NEW.{c}" for c in cols)
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash}) BEGIN "
                f"SELECT RAISE(ABORT, '{table} is append-only: an insert may not replace a row'); END"
            )
        elif dialect == "postgresql":
            # wb_append_only() (0001) raises for statement-level triggers too.
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION wb_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in GUARDED:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
