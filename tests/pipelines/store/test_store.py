"""The series store on SQLite and PostgreSQL: upsert counts, idempotence, atomic rejects, concurrent
writers, migrations from the first revision."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from pipelines.forecasting.data import DataError
from pipelines.store import SeriesNotFound, SeriesStore, WriteResult, db

START = pd.Timestamp("2024-01-01")


def hours(first: int, n: int, start=START) -> list[str]:
    return [t.isoformat() for t in pd.date_range(start + pd.Timedelta(hours=first), periods=n, freq="h")]


def stored(store: SeriesStore, name: str) -> dict[str, float]:
    page = store.page(name, limit=100_000)
    return dict(zip((t.isoformat() for t in page.timestamps), page.values.tolist(), strict=True))


def test_upsert_counts_inserted_updated_unchanged(store):
    first = store.write("load", hours(0, 6), [1, 2, 3, 4, 5, 6])
    assert first == WriteResult("load", True, "h", inserted=6, updated=0, unchanged=0)
    # two revised, two the same, two new
    second = store.write("load", hours(2, 6), [30, 4, 5, 60, 7, 8])
    assert second == WriteResult("load", False, "h", inserted=2, updated=2, unchanged=2)
    assert stored(store, "load") == dict(zip(hours(0, 8), [1.0, 2.0, 30.0, 4.0, 5.0, 60.0, 7.0, 8.0], strict=True))
    [summary] = store.summaries()
    assert (summary.name, summary.freq, summary.length) == ("load", "h", 8)
    assert (summary.first, summary.last) == (START, START + pd.Timedelta(hours=7))


def test_a_resent_batch_changes_nothing(store):
    batch = (hours(0, 50), np.linspace(0, 1, 50).tolist())
    store.write("s", *batch)
    before = stored(store, "s")
    assert store.write("s", *batch) == WriteResult("s", False, "h", inserted=0, updated=0, unchanged=50)
    assert stored(store, "s") == before


@pytest.mark.parametrize(
    "timestamps, values, message",
    [
        (hours(0, 3), [1.0, float("nan"), 3.0], "values[1] is nan; values must be finite numbers (none missing)"),
        (hours(0, 3), [1.0, "x", 3.0], "values[1] holds 'x'; values must be finite numbers"),
        (
            [*hours(0, 2), "2024-01-01T02:30:00"],
            [1, 2, 3],
            "timestamps[2] (2024-01-01 02:30:00) is off the series' h grid",
        ),
        (
            [*hours(0, 2), "yesterday"],
            [1, 2, 3],
            "timestamps[2] holds 'yesterday'; timestamps must be dates or ISO-8601 times from 1677-09-22 to 2262-04-11",
        ),
        ([*hours(0, 2), hours(0, 1)[0]], [1, 2, 3], "duplicate timestamp 2024-01-01 00:00:00 at timestamps[0, 2]"),
        (hours(0, 3), [1, 2], "timestamps has 3 entries and values 2; give one value per timestamp"),
    ],
)
def test_a_batch_with_one_bad_entry_stores_nothing(store, timestamps, values, message):
    store.write("s", hours(-5, 5), [9.0] * 5)
    before = stored(store, "s")
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        store.write("s", timestamps, values)
    assert stored(store, "s") == before
    with pytest.raises(DataError):
        store.write("new", timestamps, values)
    assert [s.name for s in store.summaries()] == ["s"]  # not even the series was created


def test_a_failure_inside_the_transaction_rolls_the_whole_batch_back(store, monkeypatch):
    store.write("s", hours(0, 3), [1, 2, 3])
    upsert = "_upsert_sqlite" if store.dialect == "sqlite" else "_upsert_postgres"
    original = getattr(store, upsert)

    def upsert_then_fail(*args):
        original(*args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, upsert, upsert_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write("s", hours(2, 5), [30, 40, 50, 60, 70])
    with pytest.raises(RuntimeError, match="disk full"):
        store.write("fresh", hours(0, 3), [1, 2, 3])
    monkeypatch.undo()
    assert stored(store, "s") == dict(zip(hours(0, 3), [1.0, 2.0, 3.0], strict=True))
    assert [s.name for s in store.summaries()] == ["s"]


def test_series_rules_frequency_zone_and_names(store):
    store.write("daily", ["2024-03-01", "2024-03-02"], [1, 2])
    with pytest.raises(DataError, match=r"freq is 'h', but series 'daily' is at 'D'"):
        store.write("daily", ["2024-03-03"], [3], freq="h")
    with pytest.raises(DataError, match=r"timestamps\[0\] \(2024-03-05 12:00:00\) is off the series' D grid"):
        store.write("daily", ["2024-03-05T12:00"], [3])
    assert store.write("daily", ["2024-02-20"], [0]).inserted == 1  # before the first: the same grid, backwards
    with pytest.raises(DataError, match="this series' timestamps are without a time zone"):
        store.write("daily", ["2024-03-04T00:00:00Z"], [3])
    with pytest.raises(DataError, match="one observation does not give the series' frequency"):
        store.write("one", ["2024-03-01"], [1])
    assert store.write("one", ["2024-03-01"], [1], freq="MS").freq == "MS"
    with pytest.raises(DataError, match=r"series name 'a b' is not allowed; names are 1 to 128 letters"):
        store.write("a b", ["2024-03-01"], [1], freq="D")
    zoned = store.write("zoned", ["2024-03-01T01:00:00+01:00", "2024-03-01T01:00:00Z"], [1, 2])
    assert (zoned.freq, zoned.inserted) == ("h", 2)
    assert stored(store, "zoned") == {"2024-03-01T00:00:00+00:00": 1.0, "2024-03-01T01:00:00+00:00": 2.0}
    assert store.delete("zoned") == 2
    with pytest.raises(SeriesNotFound):
        store.delete("zoned")


def test_pages_and_latest(store):
    store.write("p", hours(0, 10), list(range(10)))
    first = store.page("p", limit=4, start=START + pd.Timedelta(hours=1))
    assert first.values.tolist() == [1, 2, 3, 4] and first.next_cursor is not None
    second = store.page("p", limit=4, start=START + pd.Timedelta(hours=1), cursor=first.next_cursor)
    assert second.values.tolist() == [5, 6, 7, 8]
    last = store.page("p", limit=4, start=START + pd.Timedelta(hours=1), cursor=second.next_cursor)
    assert last.values.tolist() == [9] and last.next_cursor is None
    info, index, values = store.latest("p", 3)
    assert values.tolist() == [7, 8, 9] and index[-1] == START + pd.Timedelta(hours=9) and info.freq == "h"
    with pytest.raises(DataError, match=r"^cursor is '9{20}'; pass the next_cursor of the previous page$"):
        store.page("p", cursor="9" * 20)  # past the column's int64
    with pytest.raises(DataError, match=r"^start is 9999-01-01T00:00:00; allowed are times from 1677-09-22 to 2262"):
        store.page("p", start=pd.Timestamp(datetime(9999, 1, 1)))


def test_writes_far_from_the_first_timestamp(store):
    """Centuries from the series' first timestamp, and at a frequency whose grid is built point by point."""
    store.write("opening", ["2024-01-01T09:00", "2024-01-01T10:00"], [1, 2], freq="bh")
    assert store.write("opening", ["2262-01-02T09:00"], [3]).inserted == 1
    assert store.write("opening", ["1678-01-03T09:00"], [4]).inserted == 1
    with pytest.raises(DataError, match=r"^timestamps\[0\] \(1678-01-03 09:30:00\) is off the series' bh grid"):
        store.write("opening", ["1678-01-03T09:30"], [5])
    assert len(stored(store, "opening")) == 4
    with pytest.raises(DataError, match="^freq is '0h'; allowed are pandas frequencies with a positive step"):
        store.write("zero", hours(0, 3), [1, 2, 3], freq="0h")
    with pytest.raises(DataError, match="^timestamps 1677-09-22 00:00:00 to 2262-04-10 00:00:00 are too far apart"):
        store.write("apart", ["1677-09-22", "2262-04-10"], [1, 2])
    assert [s.name for s in store.summaries()] == ["opening"]


WRITERS, POINTS, ROUNDS, SHIFT = 8, 1000, 4, 500


def test_concurrent_writers_store_the_union_and_the_last_value(store):
    """8 writers x 1000 points, each writer's range overlapping its neighbours' by half, sent in 4 rounds
    (all writers at once in each round). A point's value depends only on (round, point), so writers that
    collide within a round send the same value and the final value of each point is that of the last round
    that wrote it, whatever the commit order; the counts must add up exactly across writers."""
    rng = np.random.default_rng(0)
    plans = []  # per writer: ROUNDS arrays of point indices
    for w in range(WRITERS):
        points = rng.permutation(np.arange(w * SHIFT, w * SHIFT + POINTS))
        plans.append(np.array_split(points, ROUNDS))
    union = (WRITERS - 1) * SHIFT + POINTS
    stamps = pd.date_range(START, periods=union, freq="h")
    store.write("race", [stamps[0].isoformat(), stamps[1].isoformat()], [-1.0, -1.0])  # the series exists

    def value(r, p):
        return float(r * 100_000 + p)

    barrier = threading.Barrier(WRITERS)
    results: list[list[WriteResult]] = [[] for _ in range(WRITERS)]

    def writer(w: int) -> None:
        for r in range(ROUNDS):
            barrier.wait()
            idx = plans[w][r]
            results[w].append(store.write("race", [stamps[i].isoformat() for i in idx], [value(r, i) for i in idx]))

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))

    # expected: the last round that wrote each point; counts: one insert per new point, one update per
    # (point, later round) pair, and the pre-written points 0 and 1 were updated by their first round too
    last_round, rounds_per_point = {}, {}
    for w in range(WRITERS):
        for r in range(ROUNDS):
            for i in plans[w][r].tolist():
                last_round[i] = max(last_round.get(i, -1), r)
                rounds_per_point.setdefault(i, set()).add(r)
    got = store.page("race", limit=100_000)
    assert len(got.values) == union
    assert got.timestamps.equals(pd.DatetimeIndex(stamps))
    assert got.values.tolist() == [value(last_round[i], i) for i in range(union)]
    flat = [res for per in results for res in per]
    assert sum(r.inserted + r.updated + r.unchanged for r in flat) == WRITERS * POINTS
    assert sum(r.inserted for r in flat) == union - 2
    assert sum(r.updated for r in flat) == sum(len(rs) - 1 for rs in rounds_per_point.values()) + 2


def test_migration_upgrades_a_store_made_by_the_first_revision(store_url):
    engine = db.make_engine(store_url)
    db.upgrade(engine, "0001")
    assert db.current(engine) == "0001"
    ns = pd.date_range("2024-01-01", periods=4, freq="D").asi8.tolist()
    with db.transaction(engine, write=True) as conn:
        conn.execute(
            text("INSERT INTO series (name, freq, created_at) VALUES ('old', 'D', :t)"), {"t": "2024-01-01 00:00:00"}
        )
        for i, t in enumerate(ns):
            conn.execute(
                text(
                    "INSERT INTO observations (series_id, ts, value) SELECT id, :ts, :v FROM series WHERE name = 'old'"
                ),
                {"ts": t, "v": float(i)},
            )
    engine.dispose()

    store = SeriesStore(store_url)  # upgrades on open
    try:
        assert db.current(store.engine) == db.head() == "0003"
        info = store.info("old")
        assert info is not None and (info.freq, info.tz, info.origin) == ("D", None, ns[0])
        assert store.write("old", ["2024-01-04", "2024-01-05"], [3, 4]) == WriteResult("old", False, "D", 1, 0, 1)
        assert store.page("old").values.tolist() == [0, 1, 2, 3, 4]
        store.upgrade()  # at head: nothing to do, nothing lost
        assert len(store.page("old").values) == 5
    finally:
        store.close()


def test_concurrent_first_batches_create_the_series_once(store):
    """Eight first batches of one new series at once: one row, and ``created`` in exactly one answer (on
    PostgreSQL four of eight said so when it was decided before the insert)."""
    barrier = threading.Barrier(WRITERS)

    def first(w: int) -> WriteResult:
        barrier.wait()
        return store.write("new", hours(w, 2), [float(w), float(w) + 0.5])

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(first, range(WRITERS)))
    assert sorted(r.created for r in results) == [False] * (WRITERS - 1) + [True]
    assert [(s.name, s.length) for s in store.summaries()] == [("new", WRITERS + 1)]
