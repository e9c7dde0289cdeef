"""The one clock that decides who holds a lease: the store's, never a worker host's.

A lease is set by one process and checked by others, possibly on other hosts. Compared against
each claimer's own `utcnow()`, a host whose clock runs ahead by more than the lease sees every
live lease as expired and takes it over: the same delivery sent twice at once. So a lease's end is
computed, and compared, in the store's time:

- PostgreSQL: the server's `clock_timestamp()` (the time now, not the transaction's start), in UTC
  and without a zone, like every time in the schema (`core.schema`: naive UTC).
- SQLite: the process's `utcnow()`. A SQLite file is used on one host (its locking is not safe over
  a network file system), so every worker reads the same system clock, the one SQLite's own
  `'now'` reads. A Python datetime is bound rather than SQLite's `'now'`, whose text
  ('YYYY-MM-DD HH:MM:SS.SSS') would not compare correctly with the stored text timestamps.

Read once per claim and used for both the comparison and the new lease's end, so one claim never
mixes two clocks for a lease.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select

from .schema import utcnow


def lease_now(conn: Connection) -> dt.datetime:
    """The store's time now, naive UTC: what every lease end is set from and compared with."""
    if conn.dialect.name == "postgresql":
        return conn.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()
    return utcnow()
