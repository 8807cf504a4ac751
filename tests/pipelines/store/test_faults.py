"""The store under faults, on SQLite and PostgreSQL: a lock held by another connection ends a call within the
store's timeout, and a file's ingest is all or nothing (a bad row late in the file, a ``kill -9`` mid-way)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from pipelines.settings import get_settings
from pipelines.store import SeriesStore, StoreUnavailable
from seqcast.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 1.0  # the store's timeout in these tests: the database gives up at 0.8 s


@contextmanager
def locked(url: str):
    """Another connection holding the lock a writer needs: SQLite's write lock, or PostgreSQL's ACCESS
    EXCLUSIVE lock on the observations table (which readers of observations wait for too)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
        conn.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")  # psycopg opened a transaction
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def test_a_held_lock_ends_a_write_within_the_timeout_and_it_writes_nothing(store_url):
    store = SeriesStore(store_url, timeout_seconds=TIMEOUT)
    try:
        store.write("held", ["2024-01-01", "2024-01-02"], [1, 2])
        with locked(store_url):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as err:
                store.write("held", ["2024-01-03"], [3])
            waited = time.monotonic() - started
        assert str(err.value) == (
            f"the series store ({store.dialect}) is busy: a lock or statement waited over 0.8 s; try again later"
        )
        assert 0.7 < waited < TIMEOUT + 0.5
        assert [(s.name, s.length) for s in store.summaries()] == [("held", 2)]
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path, monkeypatch, store_url):
    monkeypatch.setenv("SEQCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEQCAST_DATABASE_URL", store_url)
    monkeypatch.setenv("SEQCAST_STORE_WRITE_CHUNK", "50")
    monkeypatch.setenv("SEQCAST_MAX_BATCH_POINTS", "50")  # the REST batch limit: a file is not held to it
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def test_a_bad_value_late_in_a_file_names_its_row_and_column_and_stores_nothing(data_dir, store_url, capsys):
    """1,000 rows written 50 per statement: row 900 is bad. It was ``values[0]`` (the batch's index) with
    the rows before it stored; now the file's row and column, and the series as it was."""
    times = pd.date_range("2024-01-01", periods=1000, freq="h")
    frame = pd.DataFrame({"time": times.astype(str), "load": [str(float(i)) for i in range(1000)]})
    frame.iloc[:10].to_csv(data_dir / "first.csv", index=False)
    assert run("ingest", "load", "--data", str(data_dir / "first.csv")) == 0
    frame.loc[900, "load"] = "abc"
    frame.to_csv(data_dir / "all.csv", index=False)
    assert run("ingest", "load", "--data", str(data_dir / "all.csv")) == 2
    frame.loc[900, "load"] = "900.0"
    frame.loc[700, "time"] = "2024-01-30T04:30:00"  # off the hourly grid
    frame.to_csv(data_dir / "grid.csv", index=False)
    assert run("ingest", "load", "--data", str(data_dir / "grid.csv")) == 2
    out, err = capsys.readouterr()
    assert out == "load: 10 inserted, 0 updated, 0 unchanged\n"
    assert err.splitlines() == [
        "error: column 'load' row 900 holds 'abc'; values must be finite numbers",
        "error: column 'time' row 700 (2024-01-30 04:30:00) is off the series' h grid; timestamps must be evenly "
        "spaced (gaps are allowed)",
    ]
    store = SeriesStore(store_url)
    try:
        assert [(s.name, s.length) for s in store.summaries()] == [("load", 10)]
    finally:
        store.close()


def _count(url: str) -> int:
    store = SeriesStore(url, upgrade=False)
    try:
        return sum(s.length for s in store.summaries())
    finally:
        store.close()


def _writing(url: str, data_dir: Path) -> bool:
    """The ingest has written rows it has not committed: SQLite's WAL grew past its pages, or the PostgreSQL
    backend has a transaction id (it wrote)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        wal = Path(f"{parsed.database}-wal")
        return wal.exists() and wal.stat().st_size > 100_000  # past the 32 KB that opening the store writes
    import psycopg

    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        return bool(row and row[0])


ROWS = 100_000


def test_a_killed_ingest_leaves_the_series_as_it_was(data_dir, store_url, capsys, monkeypatch):
    """``seqcast ingest`` of 100,000 rows killed with SIGKILL while it writes (it left 1,700,000 of 2,000,000
    rows before): the store holds what it held; the same file ingested again is stored whole."""
    times = pd.date_range("2024-01-01", periods=ROWS, freq="min")
    pd.DataFrame({"timestamp": times, "value": range(ROWS)}).to_csv(data_dir / "big.csv", index=False)
    head = SeriesStore(store_url)  # closed, so that SQLite's WAL is the ingest's alone
    head.write("big", times[:5].astype(str).tolist(), list(range(5)))
    head.close()
    # a file is one write whatever the REST batch limit (it was written a batch at a time, each committed)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SEQCAST_STORE_WRITE_CHUNK": "500",
        "SEQCAST_MAX_BATCH_POINTS": "5000",
    }
    command = [sys.executable, "-m", "seqcast.cli", "ingest", "big", "--data", str(data_dir / "big.csv")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _writing(store_url, data_dir):
            assert proc.poll() is None, f"the ingest ended before it was seen writing: {proc.communicate()}"
            assert time.monotonic() < deadline, "the ingest was never seen writing"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert _count(store_url) == 5
    monkeypatch.setenv("SEQCAST_STORE_WRITE_CHUNK", "10000")
    get_settings.cache_clear()
    assert run("ingest", "big", "--data", str(data_dir / "big.csv")) == 0
    assert capsys.readouterr().out == f"big: {ROWS - 5} inserted, 0 updated, 5 unchanged\n"
    assert _count(store_url) == ROWS
