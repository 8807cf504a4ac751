"""The store's tests run on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth, user root, database test).

Each PostgreSQL test gets a database of its own, made from ``test`` with a unique name and dropped after.
PostgreSQL is skipped only when no server answers there (CI always runs one)."""

from __future__ import annotations

import pytest
from pg_helpers import pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, pg_available):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'series.db'}"
        return
    if pg_available:
        pytest.skip(pg_available)
    with pg_database() as url:
        yield url


@pytest.fixture
def store(store_url):
    from pipelines.store import SeriesStore

    s = SeriesStore(store_url, max_points=5000)
    yield s
    s.close()
