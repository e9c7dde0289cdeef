"""After a redaction on PostgreSQL, VACUUM audit_events so the removed values are gone for good.

An UPDATE on PostgreSQL writes a new row version and leaves the old one, the secret in it, in the
table's pages until VACUUM reclaims it: readable with pageinspect, in the data files and in base
backups long after `audit.redact` reported it removed. VACUUM cannot run in a transaction block,
and must run after the redaction commits (before, the old version is still the live one). So
`redact` marks its connection (`after_commit`); when the connection goes back to the pool, after
its transaction ended, this runs VACUUM on it in autocommit, once. A redaction rolled back costs
one needless VACUUM. When a transaction older than the redaction still runs, VACUUM must keep the
old version for it (and a role that does not own the table cannot vacuum it): a one-line warning
then says how many dead versions are left and what to run.
SQLite rewrites the row in place (no old versions), so nothing is done there.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from sqlalchemy import Connection, event

TABLE = "audit_events"
_DUE = "wb_audit_vacuum_due"  # in the connection record's `info`: vacuum when it is checked in
_log = logging.getLogger("workbench.audit")


def after_commit(conn: Connection) -> None:
    """VACUUM audit_events once `conn`'s transaction has ended (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    conn.info[_DUE] = True
    pool = conn.engine.pool
    if not event.contains(pool, "checkin", _on_checkin):
        event.listen(pool, "checkin", _on_checkin)


def _on_checkin(dbapi_conn: Any, record: Any) -> None:
    if dbapi_conn is not None and record is not None and record.info.pop(_DUE, False):
        vacuum(dbapi_conn)


def vacuum(dbapi_conn: Any) -> Optional[int]:
    """VACUUM audit_events on an idle DBAPI connection; the dead row versions it had to leave, or
    None when it could not run (the redaction stands either way: a warning says what to run)."""
    was = dbapi_conn.autocommit
    try:
        dbapi_conn.autocommit = True
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"VACUUM {TABLE}")
            cur.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = %s::regclass", (TABLE,))
            row = cur.fetchone()
        finally:
            cur.close()
    except Exception as exc:  # noqa: BLE001 - the redaction has committed: report, never undo it
        _log.warning("audit redaction: VACUUM %s failed (%s): the removed values stay in old row versions "
                     "until it runs; run `VACUUM %s` as the table's owner", TABLE, str(exc).strip().splitlines()[0]
                     if str(exc).strip() else type(exc).__name__, TABLE)
        return None
    finally:
        try:
            dbapi_conn.autocommit = was
        except Exception:  # noqa: BLE001 - a broken connection: the pool drops it on its next use
            pass
    left = int(row[0]) if row and row[0] is not None else 0
    if left:
        _log.warning("audit redaction: %d old row versions of %s are left (a transaction older than the "
                     "redaction still runs, or this role does not own the table): run `VACUUM %s` as its "
                     "owner once it has ended", left, TABLE, TABLE)
    return left
