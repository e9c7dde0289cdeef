"""audit redaction: a payload may change only right after the event that records its redaction

Versions before the account fix wrote argon2 password hashes into `user.set_password` events
(`payload.was.password_hash`), readable by anyone who may read the audit log. `core.audit.redact`
removes such values verifiably: it first appends a keyed `audit.redact` event naming the event,
the fields, a keyed digest of each removed value and the hash of the redacted contents, then
replaces the values in that one payload. The stored `hash` and `prev_hash` never change, so the
chain, checkpoints and expected heads still verify; `audit.verify` accepts the new contents only
as the redaction event recorded them.

This migration replaces the UPDATE trigger of `audit_events` (0001) with one that still refuses
every UPDATE, except one that changes nothing but `payload` of an event whose redaction event is
the newest event in the chain (the one just appended in the same transaction). The data itself
is redacted after the upgrade, with the audit key, by `Store.migrate` (`audit.seal`): a migration
has no key and must not follow later code.

Revision ID: 0011
Revises: 0010
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_MESSAGE = "audit_events is append-only: write a new row instead (only a recorded redaction may change a payload)"
_SAME = ("id", "ts", "actor", "action", "entity_type", "entity_id", "prev_hash", "hash")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _SAME)
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"WHEN NOT ({same} AND EXISTS (SELECT 1 FROM audit_events r "
            "WHERE r.id = (SELECT MAX(id) FROM audit_events) AND r.action = 'audit.redact' "
            "AND r.entity_type = 'audit_event' AND r.entity_id = CAST(OLD.id AS TEXT))) "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )
    elif dialect == "postgresql":
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in _SAME)
        op.execute(
            "CREATE OR REPLACE FUNCTION wb_audit_redaction_only() RETURNS trigger AS $$ BEGIN "
            f"IF {same} AND EXISTS (SELECT 1 FROM audit_events r "
            "WHERE r.id = (SELECT MAX(id) FROM audit_events) AND r.action = 'audit.redact' "
            "AND r.entity_type = 'audit_event' AND r.entity_id = OLD.id::text) THEN RETURN NEW; END IF; "
            f"RAISE EXCEPTION '{_MESSAGE}'; "
            "END; $$ LANGUAGE plpgsql"
        )
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events")
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION wb_audit_redaction_only()")


def downgrade() -> None:
    """Back to 0001's trigger: no UPDATE at all (redactions already made stay made)."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN "
                   "SELECT RAISE(ABORT, 'audit_events is append-only: write a new row instead'); END")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events")
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION wb_append_only()")
        op.execute("DROP FUNCTION IF EXISTS wb_audit_redaction_only()")
