"""The store: one SQLAlchemy engine over SQLite (WAL, embedded default) or PostgreSQL (team).

Same code for both. Write transactions on SQLite start with `BEGIN IMMEDIATE`, so a transaction
that reads then writes (claiming a case, extending the audit chain) holds the write lock from its
first statement and is serialised across processes, the way `SELECT ... FOR UPDATE` is on
PostgreSQL. Read-only work uses `store.read()`, which never takes the write lock.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session

from . import audit, textsearch
from .text import lone_surrogate_at, one_line

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_DATA_DIR = "workbench-data"
DB_FILE = "workbench.db"
_MIGRATE_LOCK = 0x7773_6d67  # advisory lock id for schema upgrades on PostgreSQL


class StoreError(RuntimeError):
    """The database cannot be opened or is not at the schema this code expects."""


class Busy(StoreError):
    """A long job holds `Store.exclusive(name)` in another thread, process or host."""


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Store:
    """Database engine plus data directory (quarantine, indexes and model artefacts live there)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, url: str | None = None,
                 echo: bool = False, audit_key: bytes | str | None = None,
                 audit_key_file: str | os.PathLike[str] | None = None) -> None:
        # Where the data lives is an argument: the command line reads its options (and their
        # WORKBENCH_DATA_DIR / WORKBENCH_DB environment variables) once and passes them here.
        # So is the audit chain's key: given by the application, or a key file (default
        # `<data dir>/audit.key`, 0600, created on first use); never an environment read here.
        self.data_dir = Path(data_dir) if data_dir else Path(DEFAULT_DATA_DIR)
        self.audit_key = audit.AuditKey(audit_key, None if audit_key is not None else
                                        Path(audit_key_file) if audit_key_file else self.data_dir / audit.KEY_FILE)
        # The default file's URL is built, not formatted: a data dir holding `?`, `#` or `%xx` would
        # otherwise be read as a query string or an escape and the database land somewhere else.
        # The file itself is opened by its bytes (`_sqlite_file`): a data dir holding a byte that is
        # not UTF-8 (a surrogate-escaped str) cannot be written in a URL, which then names it escaped.
        self._sqlite_file = None if url else os.path.abspath(self.data_dir / DB_FILE)
        self.url = normalise_url(url) if url else URL.create(
            "sqlite", database=_printable_path(self._sqlite_file)).render_as_string(hide_password=False)
        self.is_sqlite = self.url.startswith("sqlite")
        if not self.is_sqlite and (at := lone_surrogate_at(self.url)) is not None:  # the driver cannot send it
            raise StoreError(f"cannot use the database URL {_mask_password(self.url)}: it holds a byte that is "
                             f"not UTF-8 at character {at} (check the terminal's encoding)")
        if self.is_sqlite:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = self._make_engine(write=True, echo=echo)
            self.read_engine = self._make_engine(write=False, echo=echo) if self.is_sqlite else self.engine
        except (ArgumentError, ValueError, ImportError) as exc:  # unparseable, bad port, unknown driver
            raise StoreError(f"cannot use the database URL {_mask_password(self.url)}: {_first_line(exc)} "
                             "(use postgresql://USER:PASSWORD@HOST:PORT/NAME, or no --db for SQLite "
                             "in the data dir)") from None
        if self.is_sqlite and (self.engine.url.database in (None, "", ":memory:")
                               or self.engine.url.query.get("mode") == "memory"):
            # Each pooled connection would open its own, empty database: "no such table" tracebacks.
            raise StoreError(f"cannot use the database URL {_mask_password(self.url)}: an in-memory SQLite "
                             "database is gone when its connection closes and is not shared by the next "
                             "(use sqlite:///PATH, or no --db for SQLite in the data dir)")
        # SQLite's read transaction is one snapshot; PostgreSQL's READ COMMITTED is one per statement.
        self._snapshot_engine = self.read_engine if self.is_sqlite else \
            self.engine.execution_options(isolation_level="REPEATABLE READ")

    # -- engines -------------------------------------------------------------------------
    def _make_engine(self, write: bool, echo: bool) -> Engine:
        if not self.is_sqlite:
            engine = create_engine(self.url, echo=echo, pool_pre_ping=True, future=True)
            self._carry_audit_key(engine)
            return engine
        args: dict[str, Any] = {"timeout": 60, "check_same_thread": False}
        path = self._sqlite_file
        engine = create_engine(self.url, echo=echo, future=True, connect_args=args, **(
            {} if path is None else {"creator": lambda: sqlite3.connect(os.fsencode(path), **args)}))
        self._carry_audit_key(engine)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # REPLACE's hidden delete then fires the append-only DELETE triggers (migration 0003
            # also guards INSERT itself, for connections that do not set this).
            cur.execute("PRAGMA recursive_triggers=ON")
            # A 256 MiB page cache holds the indexes of ~1M items, so inserts stay flat as the store
            # grows; checkpointing every ~40 MiB of WAL writes each hot page once, not once per chunk.
            cur.execute("PRAGMA cache_size=-262144")
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()
            textsearch.register_sqlite(dbapi_conn)

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _carry_audit_key(self, engine: Engine) -> None:
        """Every connection carries the chain key, so `audit.record(conn, ...)` can use it."""
        key = self.audit_key

        @event.listens_for(engine, "connect")
        def _on_connect_key(_dbapi_conn, record):  # type: ignore[no-untyped-def]
            record.info[audit.KEY_INFO] = key

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction (commits on success, rolls back on error)."""
        return self.engine.begin()

    def read(self, snapshot: bool = False) -> contextlib.AbstractContextManager[Connection]:
        """A read-only transaction that never blocks writers. `snapshot=True`: every statement sees
        the same moment on PostgreSQL too (REPEATABLE READ), for reads that must agree with each
        other, such as verifying the audit chain against the decisions and then reading its head."""
        return (self._snapshot_engine if snapshot else self.read_engine).begin()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session in a write transaction."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold `name` for a long job (a retrain: minutes) across threads, processes and hosts,
        outside any transaction; `Busy` at once when another holder has it. SQLite: an exclusive
        `flock` on `<data dir>/locks/<name>.lock` (one host by construction). PostgreSQL: a
        session advisory lock on a connection kept for the job, released when it ends or when the
        process dies (the server drops a dead session's locks)."""
        if self.is_sqlite:
            import fcntl

            with open(self.path("locks", f"{name}.lock"), "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise Busy(f"{name} is held by another run on this store") from None
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            return
        key = {"n": f"workbench-job:{name}"}
        conn = self.engine.connect()
        held = False
        try:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:n))"), key).scalar())
            conn.commit()
            if not held:
                raise Busy(f"{name} is held by another run on this database")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), key)
                conn.commit()
                held = False
        finally:
            if held:  # the unlock failed: never hand a connection holding the lock back to the pool
                conn.invalidate()
            conn.close()

    # -- paths ---------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the data directory (created on demand)."""
        p = self.data_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def quarantine_path(self) -> Path:
        return self.path("quarantine.jsonl")

    # -- schema --------------------------------------------------------------------------
    def _alembic_config(self):  # type: ignore[no-untyped-def]
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def migrate(self) -> str:
        """Bring the schema to the newest migration (creating it on an empty database), and seal a
        chain written before the audit key existed, in one transaction. Refuses, in one line and
        with nothing changed, a schema written by a newer workbench (downgrading the code must
        not touch its data) and a database that holds other tables but no workbench schema (a
        wrong `--db` must not get the workbench's tables added beside its own)."""
        from alembic import command

        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self._alembic_config()
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Processes starting at once upgrade one after the other (the next one finds the
                # schema at head); SQLite's BEGIN IMMEDIATE already serialises them.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
            current = self._check_upgradable(conn)
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except DBAPIError as exc:  # e.g. a role without DDL rights: one line, not a traceback
                raise StoreError(f"cannot upgrade the database schema at {self.display_url} from "
                                 f"{current or 'empty'} to {self.head_revision()}: {_first_line(exc)} "
                                 "(nothing was changed)") from None
            audit.seal(conn)  # key a chain with no keyed event yet (a no-op otherwise)
        return self.schema_revision() or ""

    def _check_upgradable(self, conn: Connection) -> str | None:
        """The schema revision `conn` is at, or StoreError when no migration here may start from it."""
        from alembic.script import ScriptDirectory

        tables = set(inspect(conn).get_table_names())
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            if "alembic_version" in tables else None
        if current is None:
            others = sorted(tables - {"alembic_version"})
            if others:
                raise StoreError(f"the database at {self.display_url} has {len(others)} tables "
                                 f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) but no "
                                 "workbench schema version: not a workbench database; point --db at an "
                                 "empty database or a workbench one")
            return None
        script = ScriptDirectory.from_config(self._alembic_config())
        if current not in {rev.revision for rev in script.walk_revisions()}:
            raise StoreError(f"the database at {self.display_url} is at schema revision {current!r}, "
                             f"newer than this workbench knows (its newest is {script.get_current_head()}): "
                             "it was upgraded by a newer workbench; run that version, nothing was changed")
        return current

    def schema_revision(self) -> str | None:
        with self.read() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head() or ""

    def ensure_ready(self) -> None:
        """Raise StoreError unless the schema is at head; migrate a missing SQLite store."""
        try:
            current = self.schema_revision()
        except Exception as exc:  # connection refused, bad URL, unreadable file
            raise StoreError(f"cannot open the database at {self.display_url}: {_first_line(exc)}") from None
        if current is None:
            self.migrate()
            return
        if current != self.head_revision():
            self.migrate()


    @property
    def display_url(self) -> str:
        """The URL for messages: never the password (nor one given as `?password=`, which libpq
        takes too); a SQLite file as its plain path."""
        if self.is_sqlite:
            return f"sqlite:///{_printable_path(self.engine.url.database or '')}"
        return _hide_query_secrets(self.engine.url.render_as_string(hide_password=True))


def _printable_path(path: str) -> str:
    """`path` as UTF-8 can write it: each byte that is not UTF-8 as its escape (`\\xff`)."""
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate no byte decodes to (only an API caller can pass one)
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def _mask_password(url: str) -> str:
    """`url` with any password replaced by ***, for a URL SQLAlchemy could not even parse: all
    between the user's `:` and the last `@` (a password may hold `/` or `@`), and query secrets;
    on one line, a control character (a line break, a terminal escape) shown as its escape."""
    return one_line(_hide_query_secrets(re.sub(r"^([^:/?#]*://[^/@:?#]*):.*@", r"\1:***@", url, flags=re.S)), 500)


def _hide_query_secrets(url: str) -> str:
    """`url` with the value of each query parameter naming a password or secret (libpq's
    `password`, `sslpassword`) replaced by ***."""
    return re.sub(r"([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*", r"\1***", url, flags=re.I)


def _first_line(exc: BaseException) -> str:
    """A driver error's own first line (without SQLAlchemy's statement and background link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def insert_ignore(dialect: str, table: Any, key: list[str]) -> Any:
    """INSERT that skips rows whose `key` columns already exist (both dialects say it alike)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=key)


def serialise(conn: Connection, name: str) -> None:
    """Hold `name`'s lock until the caller's write transaction ends: two transactions that read
    then write under the same name run one after the other, across processes and hosts. SQLite's
    `BEGIN IMMEDIATE` already serialises every write transaction; PostgreSQL takes a
    transaction-scoped advisory lock keyed by the name's hash."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": f"workbench:{name}"})


def open_store(data_dir: str | os.PathLike[str] | None = None, url: str | None = None, *,
               audit_key: bytes | str | None = None,
               audit_key_file: str | os.PathLike[str] | None = None) -> Store:
    """Open a store and make sure its schema is current: the one way commands get a store. A data
    dir that cannot be created, a full or read-only disk while the schema is written, or a file
    that is no database is one StoreError line naming the data dir (every caller gets it: the
    command line, the API, benchmarks), never a traceback; the store is released first."""
    where = Path(data_dir) if data_dir else Path(DEFAULT_DATA_DIR)
    try:
        store = Store(data_dir, url, audit_key=audit_key, audit_key_file=audit_key_file)
    except (OSError, DBAPIError) as exc:
        raise _cannot_open(where, _mask_password(normalise_url(url)) if url else None, exc) from None
    try:
        store.ensure_ready()
    except BaseException as exc:
        store.dispose()
        if isinstance(exc, (OSError, DBAPIError)):
            raise _cannot_open(where, None if store.is_sqlite else store.display_url, exc) from None
        raise
    return store


def _cannot_open(where: Path, db: str | None, exc: BaseException) -> StoreError:
    """The one line for a store that cannot be opened: the data dir, the database unless it is the
    SQLite file there, the cause's first line and what to check."""
    on = f" (database {db})" if db else ""
    msg = (f"cannot open the store in {where}{on}: {_first_line(exc)} (check the folder is writable and the "
           "disk has space, or pass --data-dir)")
    return StoreError(" ".join(msg.splitlines()))  # a data dir named with a line break stays one line
