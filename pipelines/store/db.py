"""Engines for the series store and its migrations.

SQLite (the default, a file under the data dir): WAL, a busy timeout, ``synchronous=NORMAL``; the driver's
own transaction handling is off and :func:`transaction` begins ``BEGIN IMMEDIATE`` for writes (the write
lock is taken up front, so counts read inside a write are exact) and a deferred ``BEGIN`` for reads.
PostgreSQL (``postgresql+psycopg://...``): read committed, a connect timeout, and statement and lock timeouts
on every session; migrations hold an advisory lock so that two processes starting at once do not both migrate.

Every wait in the database is bounded by :func:`database_wait` of the caller's timeout: a little less than
it, so that a caller with its own bound (the service) hears the database's reason rather than its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from pipelines.store.schema import VERSION_TABLE

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_TIMEOUT_SECONDS = 5.0  # Settings.store_timeout_seconds' default
_MIGRATION_LOCK = 0x5E9CA57  # pg_advisory_xact_lock key while migrating


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def database_wait(timeout_seconds: float) -> float:
    """How long the database itself may wait (a lock, a statement, the busy handler) within a call's timeout."""
    return 0.8 * timeout_seconds


def make_engine(url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Engine:
    parsed = make_url(url)
    wait_ms = max(1, int(database_wait(timeout_seconds) * 1000))
    if parsed.get_backend_name() != "sqlite":
        connect_args = {
            # whole seconds, at least 2 (libpq's rule): a server that accepts and never answers is given up on
            "connect_timeout": max(2, math.ceil(timeout_seconds)),
            "options": f"-c statement_timeout={wait_ms} -c lock_timeout={wait_ms}",
        }
        return create_engine(
            parsed,
            connect_args=connect_args,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=timeout_seconds,
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, connect_args={"timeout": wait_ms / 1000}, pool_size=10, max_overflow=20, pool_timeout=timeout_seconds
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is ours (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("store_write") else "BEGIN")

    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with engine.connect() as conn:
        if write:
            conn.execution_options(store_write=True)
        with conn.begin():
            yield conn


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (an older store is upgraded in place, never recreated)."""
    with transaction(engine, write=True) as conn:
        if not is_sqlite(engine):
            # a migration may rewrite a big table: the session's statement timeout is for requests, not for it
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        command.upgrade(_config(conn), revision)
