import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting.data import (
    DataError,
    builtin_names,
    check_freq,
    first_off_grid,
    from_frame,
    infer_freq,
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


@pytest.mark.parametrize("freq", ["MS", "2MS", "W-SUN", "3W-WED", "B", "C", "bh", "2bh", "QS", "SME", "YS"])
def test_calendar_grid_by_offset_arithmetic_is_the_grid_date_range_builds(freq):
    """``first_off_grid`` finds the grid's start near the batch (``anchor + k * off``) instead of building it from
    the anchor: it must call on-grid exactly what a grid built through the anchor holds, before and after it."""
    off = pd.tseries.frequencies.to_offset(freq)
    anchor = pd.date_range("2020-01-01", periods=3, freq=off)[2]
    m = 100 if freq == "YS" else 300
    grid = pd.date_range(anchor - m * off, periods=2 * m, freq=off)[3:]  # past a first point written two ways
    candidates = grid.union(grid + pd.Timedelta("1h")).union(grid + pd.Timedelta("1D"))
    rng = np.random.default_rng(0)
    for _ in range(50):
        batch = pd.DatetimeIndex(np.sort(rng.choice(candidates, size=3, replace=False)))
        off_grid = [i for i, t in enumerate(batch) if t not in grid]
        assert first_off_grid(batch, freq, anchor) == (off_grid[0] if off_grid else None), batch


def test_a_grid_far_from_its_anchor_and_past_int64_differences():
    """Centuries between a timestamp and the anchor: no grid built in between, no int64 overflow."""
    nine = pd.Timestamp("2024-01-01 09:00")  # a Monday's opening hour
    for when in ("2262-01-02 09:00", "1678-01-03 09:00", "2023-12-29 16:00"):
        assert first_off_grid(pd.DatetimeIndex([when]), "bh", nine) is None
    assert first_off_grid(pd.DatetimeIndex(["2023-12-29 17:00"]), "bh", nine) == 0  # closing time: not a step
    assert first_off_grid(pd.DatetimeIndex(["1677-10-01"]), "MS", pd.Timestamp("2262-01-01")) is None
    sunday, monday = pd.DatetimeIndex(["1678-01-02"]), pd.DatetimeIndex(["1678-01-03"])
    assert first_off_grid(sunday, "W-SUN", pd.Timestamp("2262-01-05")) is None  # over 292 years of weeks back
    assert first_off_grid(monday, "W-SUN", pd.Timestamp("2262-01-05")) == 0
    assert first_off_grid(monday, "B", pd.Timestamp("2024-01-01")) is None
    late = pd.Timestamp("2262-04-10")
    assert first_off_grid(pd.DatetimeIndex(["1677-09-22 01:00", "1677-09-22 01:30"]), "h", late) == 1
    with pytest.raises(DataError, match="^timestamps from 2024-01-01 09:00:00 to 2124-01-01 09:00:00 span about "):
        first_off_grid(pd.DatetimeIndex(["2024-01-01 09:00", "2124-01-01 09:00"]), "bh", nine)


def test_a_sparse_table_is_refused_before_its_grid_is_built():
    times = pd.DatetimeIndex(["1700-01-01", "1700-01-01 00:01", "2200-01-01 00:02"])
    with pytest.raises(DataError, match=r"^column 'value' is 100% missing; at most 50% may be missing$"):
        from_frame(frame([1.0, 2.0, 3.0], times=times))


@pytest.mark.parametrize("freq", ["0h", "-1h", "0D", "0MS", "0bh", "1000000000D", "10000000000000000000h", "x"])
def test_a_frequency_must_step_forward_within_the_timestamp_range(freq):
    with pytest.raises(DataError) as info:
        check_freq(freq)
    assert str(info.value) == (
        f"freq is {freq!r}; allowed are pandas frequencies with a positive step shorter than 292 years, "
        "e.g. D, h, 15min, W, MS, QS"
    )


def test_timestamps_too_far_apart_give_no_frequency():
    with pytest.raises(DataError, match=r"^timestamps 1677-09-22 00:00:00 to 2262-04-10 00:00:00 are too far apart"):
        infer_freq(pd.DatetimeIndex(["1677-09-22", "2262-04-10"]))
