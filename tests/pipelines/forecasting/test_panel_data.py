"""Long tables of many series (``series,timestamp,value``): split by series, each checked as one series is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting.data import (
    DataError,
    from_frame,
    is_long_table,
    load_panel,
    panel_from_frame,
    split_long_table,
)

PANELS = Path(__file__).parents[3].parent / "shared" / "data" / "panels"


def long_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series": ["sku-2", "sku-1", "sku-2", "sku-1", "sku-2", "sku-1", "sku-1"],
            "timestamp": [
                "2024-01-01",
                "2024-01-01",
                "2024-01-02",
                "2024-01-02",
                "2024-01-03",
                "2024-01-03",
                "2024-01-05",  # a one-day gap in sku-1
            ],
            "value": [10, 1, 20, 2, 30, 3, 5],
        }
    )


def test_panel_from_frame_splits_sorts_and_checks_each_series():
    panel = panel_from_frame(long_frame(), source="inline")
    assert [s.name for s in panel] == ["sku-1", "sku-2"]
    one, two = panel
    assert one.timestamps is not None and two.timestamps is not None
    assert one.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and one.interpolated == 1
    assert list(one.timestamps) == list(pd.date_range("2024-01-01", periods=5, freq="D"))
    assert (one.freq, one.season, one.source) == ("D", 7, "inline (series sku-1)")
    assert two.values.tolist() == [10.0, 20.0, 30.0] and two.interpolated == 0
    # the same as each series' rows given to from_frame alone
    alone = from_frame(long_frame().query("series == 'sku-2'").drop(columns="series"), name="sku-2")
    np.testing.assert_array_equal(alone.values, two.values)
    assert alone.timestamps is not None and alone.timestamps.equals(two.timestamps) and alone.freq == two.freq


@pytest.mark.parametrize("col", ["unique_id", "item_id"])
def test_other_series_column_names_and_explicit_columns(col):
    frame = long_frame().rename(columns={"series": col, "timestamp": "ds", "value": "y"})
    assert is_long_table(frame)
    assert [s.name for s in panel_from_frame(frame)] == ["sku-1", "sku-2"]
    renamed = long_frame().rename(columns={"series": "store", "timestamp": "when", "value": "units"})
    assert not is_long_table(renamed)
    panel = panel_from_frame(renamed, series_col="store", time_col="when", value_col="units")
    assert [len(s) for s in panel] == [5, 3]


def test_is_long_table():
    assert is_long_table(long_frame())
    assert is_long_table(long_frame().drop(columns="timestamp"))  # series and values, no times
    # one series whose value column happens to be called 'series'
    assert not is_long_table(pd.DataFrame({"timestamp": ["2024-01-01"], "series": [1.0]}))
    assert not is_long_table(pd.DataFrame({"timestamp": ["2024-01-01"], "value": [1.0]}))


def test_an_error_names_the_series_and_the_table_row():
    frame = long_frame()
    frame.loc[5, "value"] = "n/a"
    with pytest.raises(DataError) as err:
        panel_from_frame(frame)
    assert str(err.value) == (
        "series 'sku-1': column 'value' row 5 holds 'n/a'; values must be numbers (blank cells count as missing)"
    )
    frame = long_frame()
    frame.loc[4, "timestamp"] = "2024-01-02"
    with pytest.raises(DataError) as err:
        panel_from_frame(frame)
    assert str(err.value) == (
        "series 'sku-2': duplicate timestamp 2024-01-02 00:00:00 in column 'timestamp' at rows [2, 4]; "
        "each time may appear once"
    )
    frame = long_frame()
    frame.loc[3, "timestamp"] = "soon"
    with pytest.raises(DataError, match=r"^series 'sku-1': column 'timestamp' row 3 holds 'soon'; "):
        panel_from_frame(frame)


def test_rows_without_a_series_or_without_a_series_column():
    frame = long_frame()
    frame.loc[2, "series"] = None
    with pytest.raises(DataError) as err:
        panel_from_frame(frame)
    assert str(err.value) == "column 'series' row 2 is empty; every row names its series"
    with pytest.raises(DataError) as err:
        panel_from_frame(long_frame().drop(columns="series"))
    assert str(err.value) == (
        "no series column among timestamp, value; a table of many series has one named series, unique_id, item_id"
    )
    with pytest.raises(DataError, match="no series column 'store'"):
        panel_from_frame(long_frame(), series_col="store")


def test_split_long_table_keeps_the_table_rows():
    parts = split_long_table(long_frame())
    assert list(parts) == ["sku-1", "sku-2"]
    assert parts["sku-1"].index.tolist() == [1, 3, 5, 6]
    assert parts["sku-2"].index.tolist() == [0, 2, 4]
    assert list(parts["sku-1"].columns) == ["timestamp", "value"]


def test_numeric_series_keys_become_names():
    frame = long_frame().assign(series=[7, 3, 7, 3, 7, 3, 3])
    assert [s.name for s in panel_from_frame(frame)] == ["3", "7"]


@pytest.mark.skipif(
    not PANELS.is_dir(), reason=f"the shared panels are not at {PANELS} (a copy of shared/ beside the clone)"
)
def test_visnights_file():
    panel = load_panel(PANELS / "visnights.csv")
    assert len(panel) == 20
    assert {len(s) for s in panel} == {76}
    # the file's quarters start in January; pandas names that grid QS-OCT (the manifest says QS: the same dates)
    assert {s.freq for s in panel} == {"QS-OCT"}
    assert {s.season for s in panel} == {4}
    assert {s.interpolated for s in panel} == {0}
    assert [s.name for s in panel] == sorted(s.name for s in panel)
    assert [s.name for s in panel[:3]] == ["NSWMetro", "NSWNthCo", "NSWNthIn"]
    nsw = next(s for s in panel if s.name == "NSWMetro")
    assert nsw.timestamps is not None
    assert nsw.timestamps[0] == pd.Timestamp("1998-01-01") and nsw.timestamps[-1] == pd.Timestamp("2016-10-01")
    assert nsw.values[0] == pytest.approx(9.0470953969)
    assert nsw.source == f"{PANELS / 'visnights.csv'} (series NSWMetro)"
