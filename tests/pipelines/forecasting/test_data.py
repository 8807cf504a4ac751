import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting.data import (
    DataError,
    builtin_names,
    from_frame,
    load_series,
    season_for_freq,
)


def frame(values, start="2020-01-01", freq="D", times=None):
    times = times if times is not None else pd.date_range(start, periods=len(values), freq=freq)
    return pd.DataFrame({"timestamp": times, "value": values})


def test_builtins():
    sine = load_series("sine_noise")
    assert len(sine) == 1000 and sine.timestamps is None
    np.testing.assert_array_equal(sine.values, load_series("sine_noise").values)  # seeded
    t = np.arange(1000)
    residual = sine.values - np.sin(0.02 * t)
    assert residual.min() >= 0 and residual.max() <= 2
    body = load_series("manybody")
    assert len(body) == 16 and body.values[0] == pytest.approx(-0.03077640549)
    wine = load_series("wineind")
    assert (len(wine), wine.freq, wine.season, wine.meta["horizon"]) == (176, "MS", 12, 24)
    assert {"sine_noise", "manybody", "taylor"} <= set(builtin_names())


def test_csv_and_parquet_with_named_columns(tmp_path):
    df = pd.DataFrame({"when": pd.date_range("2021-01-01", periods=30, freq="h"), "load": np.arange(30.0)})
    df.to_csv(tmp_path / "load.csv", index=False)
    df.to_parquet(tmp_path / "load.parquet")
    for path in ("load.csv", "load.parquet"):
        s = load_series(str(tmp_path / path), time_col="when", value_col="load")
        assert s.freq == "h" and s.season == 24 and len(s) == 30
        np.testing.assert_array_equal(s.values, np.arange(30.0))


def test_unsorted_rows_are_sorted():
    times = pd.date_range("2020-01-01", periods=10, freq="D")
    s = from_frame(frame(np.arange(10.0)[::-1], times=times[::-1]))
    np.testing.assert_array_equal(s.values, np.arange(10.0))
    assert s.timestamps.equals(times)


def test_duplicate_timestamp_rejected():
    times = list(pd.date_range("2020-01-01", periods=5, freq="D"))
    times[3] = times[2]
    with pytest.raises(
        DataError, match=r"duplicate timestamp 2020-01-03 00:00:00 in column 'timestamp' at rows \[2, 3\]"
    ):
        from_frame(frame(np.arange(5.0), times=times))


def test_non_numeric_value_names_row_and_column():
    values = ["1", "2", "abc", "4"]
    with pytest.raises(DataError, match="column 'value' row 2 holds 'abc'; values must be numbers"):
        from_frame(frame(values))


def test_short_gaps_interpolated_and_counted():
    times = pd.date_range("2020-01-01", periods=12, freq="D").delete([4, 5])  # two missing days
    values = np.arange(12.0)[[i for i in range(12) if i not in (4, 5)]]
    values[7] = np.nan  # and one blank cell
    s = from_frame(frame(values, times=times))
    assert s.interpolated == 3 and s.freq == "D"
    np.testing.assert_allclose(s.values, np.arange(12.0))


def test_long_gap_rejected():
    values = np.arange(20.0)
    values[5:10] = np.nan
    with pytest.raises(DataError, match="has 5 missing values in a row from row 5 .*at most 3 in a row"):
        from_frame(frame(values))


def test_mostly_missing_rejected():
    values = np.full(10, np.nan)
    values[[0, 9]] = 1.0
    with pytest.raises(DataError, match="column 'value' is 80% missing; at most 50% may be missing"):
        from_frame(frame(values))


def test_unknown_column_and_builtin_named():
    with pytest.raises(DataError, match="no value column 'y2'; the columns are timestamp, value"):
        from_frame(frame([1.0, 2.0, 3.0]), value_col="y2")
    with pytest.raises(DataError, match="unknown built-in series 'nope'; built-ins are austres"):
        load_series("nope")
    with pytest.raises(DataError, match="unparsable|timestamps must be"):
        from_frame(pd.DataFrame({"timestamp": ["2020-01-01", "yesterday"], "value": [1, 2]}))


@pytest.mark.parametrize(
    "freq,season", [("MS", 12), ("QS", 4), ("YS", 1), ("30min", 48), ("h", 24), ("D", 7), ("W", 52)]
)
def test_season_from_frequency(freq, season):
    assert season_for_freq(freq) == season


def test_a_sparse_table_is_refused_before_its_grid_is_built():
    times = pd.DatetimeIndex(["1700-01-01", "1700-01-01 00:01", "2200-01-01 00:02"])
    with pytest.raises(DataError, match=r"^column 'value' is 100% missing; at most 50% may be missing$"):
        from_frame(frame([1.0, 2.0, 3.0], times=times))
