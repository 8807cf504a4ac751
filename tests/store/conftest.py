"""The store's tests run on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth, user root, database test).

Each PostgreSQL test gets a database of its own, made from ``test`` with a unique name and dropped after.
PostgreSQL is skipped only when no server answers there (CI always runs one)."""

from __future__ import annotations

import uuid

import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=root dbname=test connect_timeout=3"
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/{name}"


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN, autocommit=True)


@pytest.fixture(scope="session")
def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg

    try:
        with _pg_admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL answers at 127.0.0.1:5432 (user root, database test): {exc}".strip()
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, pg_available):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'series.db'}"
        return
    if pg_available:
        pytest.skip(pg_available)
    name = f"seqcast_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(store_url):
    from pipelines.store import SeriesStore

    s = SeriesStore(store_url, max_points=5000)
    yield s
    s.close()
