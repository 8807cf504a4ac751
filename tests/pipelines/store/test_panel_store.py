"""The store's panel reads on SQLite and PostgreSQL: names by pattern, many series in chunks, the last
points of many series in one query; each must equal the one-series read it stands for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting.data import DataError
from pipelines.store import SeriesNotFound, SeriesStore
from pipelines.store.schema import observations

START = pd.Timestamp("2024-01-01")
NAMES = ["sales-1", "sales-2", "sales_3", "salesX3", "other.a"]


def days(n: int, start: pd.Timestamp = START) -> list[str]:
    return [t.isoformat() for t in pd.date_range(start, periods=n, freq="D")]


@pytest.fixture
def filled(store: SeriesStore) -> SeriesStore:
    for i, name in enumerate(NAMES):  # lengths 3..7, values i*100 + position
        store.write(name, days(3 + i), [i * 100.0 + k for k in range(3 + i)])
    store.write("gappy", [*days(2), (START + pd.Timedelta(days=3)).isoformat()], [1.0, 2.0, 4.0])
    store.write("zoned", ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"], [1, 2, 3])
    return store


def same(a, b) -> None:
    assert (a.name, a.freq, a.season, a.source, a.interpolated, a.meta) == (
        b.name,
        b.freq,
        b.season,
        b.source,
        b.interpolated,
        b.meta,
    )
    np.testing.assert_array_equal(a.values, b.values)
    assert a.timestamps.equals(b.timestamps)
    assert str(a.timestamps.tz) == str(b.timestamps.tz)


def test_names_match_patterns_sorted_and_deduplicated(filled):
    assert filled.names(["sales-*"]) == ["sales-1", "sales-2"]
    assert filled.names(["sales_3"]) == ["sales_3"]  # '_' is a literal: salesX3 is not matched
    assert filled.names(["sales?3"]) == ["salesX3", "sales_3"]  # sorted by code point, not the database's collation
    assert filled.names(["sales*", "sales-1", "other.a"]) == ["other.a", "sales-1", "sales-2", "salesX3", "sales_3"]
    assert filled.names(["other?a"]) == ["other.a"]
    assert filled.names(["*"]) == sorted([*NAMES, "gappy", "zoned"])
    assert filled.names([]) == []


def test_a_pattern_that_matches_nothing_is_named(filled):
    with pytest.raises(DataError) as err:
        filled.names(["sales-*", "sku-%"])
    assert str(err.value) == "no stored series matches 'sku-%' (7 series stored; see seqcast series)"
    with pytest.raises(DataError, match="no stored series matches 'SALES-\\*'"):  # case-sensitive
        filled.names(["SALES-*"])


def test_panel_equals_series_for_each_name(filled):
    names = [*NAMES, "gappy", "zoned"]
    got = list(filled.panel(names))
    assert [s.name for s in got] == names
    for s in got:
        same(s, filled.series(s.name))
    gappy = got[-2]
    assert gappy.values.tolist() == [1.0, 2.0, 3.0, 4.0] and gappy.interpolated == 1
    assert gappy.meta == {"window": {"first": "2024-01-01T00:00:00", "last": "2024-01-04T00:00:00", "count": 3}}
    assert got[-1].timestamps[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert got[0].values.tolist() == [0.0, 1.0, 2.0] and got[0].source == "series store: sales-1"


def test_panel_in_chunks_gives_the_same(filled):
    whole = list(filled.panel(NAMES))
    for chunk in (1, 2, 3):
        parts = list(filled.panel(list(reversed(NAMES)), chunk=chunk))
        assert [s.name for s in parts] == list(reversed(NAMES))
        for a, b in zip(reversed(parts), whole, strict=True):
            same(a, b)


def test_panel_missing_name_raises_before_any_series(filled):
    it = filled.panel(["sales-1", "nope", "sales-2"])
    with pytest.raises(SeriesNotFound, match="no series named 'nope'"):
        next(it)
    with pytest.raises(SeriesNotFound, match="no series named 'nope'"):
        filled.series("nope")


def test_latest_many_equals_latest_and_leaves_out_missing(filled):
    names = [*NAMES, "gappy", "zoned", "nope"]
    for n in (1, 3, 100):
        many = filled.latest_many(names, n)
        assert sorted(many) == sorted(names[:-1])
        for name, (info, index, values) in many.items():
            one_info, one_index, one_values = filled.latest(name, n)
            assert info == one_info
            assert index.equals(one_index) and str(index.tz) == str(one_index.tz)
            np.testing.assert_array_equal(values, one_values)
    info, index, values = filled.latest_many(["sales-2"], 2)["sales-2"]
    assert (info.name, info.freq, values.tolist()) == ("sales-2", "D", [102.0, 103.0])
    assert list(index) == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")]
    assert filled.latest_many([], 5) == {}


def test_latest_many_of_a_series_without_observations(store):
    store.write("empty", days(2), [1.0, 2.0])
    with store.engine.begin() as conn:  # a series row whose observations are gone
        conn.execute(observations.delete())
    info, index, values = store.latest_many(["empty"], 3)["empty"]
    assert info.name == "empty" and len(index) == 0 and values.dtype == np.float64 and len(values) == 0
    one = store.latest("empty", 3)
    assert one[0] == info and len(one[1]) == 0
