"""PostgreSQL for the tests: the server at ``SEQCAST_TEST_POSTGRES`` (default 127.0.0.1:5432, trust auth, user
root, database test), where each test makes databases of its own and drops them after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_URL = os.environ.get("SEQCAST_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def admin():
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


def unavailable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        with admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL answers at {ADMIN_URL} (set SEQCAST_TEST_POSTGRES): {exc}".strip()
    return None


@contextmanager
def pg_database(prefix: str = "seqcast_test") -> Iterator[str]:
    """A new database's SQLAlchemy URL (psycopg 3), dropped when the block ends."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(ADMIN_URL)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
