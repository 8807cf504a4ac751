"""The time axis (pipelines/forecasting/timeaxis.py): frequencies and their grids, a forecast request's timestamps
continued, a stored window's steps, and the errors saying which part of an input was wrong."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting.errors import DataError, ForecastInputError, HistoryError, TimestampsError
from pipelines.forecasting.timeaxis import (
    check_freq,
    check_stored_window,
    continue_timestamps,
    first_off_grid,
    future_timestamps,
    infer_freq,
    request_index,
)


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


def days(n: int, start: str = "2024-01-01") -> list[datetime]:
    return [datetime.fromisoformat(start) + timedelta(days=i) for i in range(n)]


def test_a_request_s_timestamps_continue_at_their_frequency():
    assert continue_timestamps(days(3), 2, None) == ("2024-01-04T00:00:00", "2024-01-05T00:00:00")
    months = [datetime(2024, m, 1) for m in (1, 2, 3)]  # a calendar frequency, not a fixed step
    assert continue_timestamps(months, 2, None) == ("2024-04-01T00:00:00", "2024-05-01T00:00:00")
    assert continue_timestamps(days(1), 2, "h") == ("2024-01-01T01:00:00", "2024-01-01T02:00:00")  # the model's
    with pytest.raises(TimestampsError, match="^one timestamp does not give a frequency; give at least 2$"):
        continue_timestamps(days(1), 2, None)


def test_timestamps_pandas_cannot_hold_together_are_read_in_utc():
    paris, new_york = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
    index = request_index([datetime(2024, 1, 1, 1, tzinfo=paris), datetime(2024, 1, 1, tzinfo=new_york)])
    assert list(index) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 05:00", tz="UTC")]
    with pytest.raises(TimestampsError) as info:
        request_index([datetime(2024, 1, 1, tzinfo=paris), datetime(2024, 1, 2)])
    assert str(info.value).startswith("timestamps[1] holds '2024-01-02T00:00:00'; timestamps must be dates or ISO-8601")
    with pytest.raises(TimestampsError) as info:
        request_index([*days(2), datetime(2024, 1, 2)])
    assert str(info.value) == "timestamps must be strictly increasing; timestamps[2] is not after timestamps[1]"


def test_a_continuation_past_2262_says_so():
    with pytest.raises(TimestampsError) as info:
        continue_timestamps(days(2, "2262-04-09"), 3, None)
    assert str(info.value) == (
        "3 steps of D after 2262-04-10T00:00:00 pass the last time timestamps can hold (2262-04-11); "
        "ask for a shorter horizon"
    )


def test_the_timestamps_after_a_stored_series_are_made_once():
    last = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    first = future_timestamps(last, "h", 3)
    assert first == ("2024-01-01T11:00:00+00:00", "2024-01-01T12:00:00+00:00", "2024-01-01T13:00:00+00:00")
    assert future_timestamps(last, "h", 3) is first  # cached: the next request for the series reuses them


def window(freq: str, n: int, drop: int | None = None) -> tuple[pd.DatetimeIndex, np.ndarray]:
    index = pd.date_range("2024-01-01", periods=n, freq=freq)
    if drop is not None:
        index = index.delete(drop)
    return index, np.ones(len(index))


@pytest.mark.parametrize("freq", ["h", "MS", "B"])
def test_a_stored_window_is_read_only_without_gaps(freq):
    check_stored_window("s", *window(freq, 6), freq, 6, "model 'm' version 1", "fill it")  # every step: fine
    index, values = window(freq, 7, drop=3)
    with pytest.raises(TimestampsError) as info:
        check_stored_window("s", index, values, freq, 6, "model 'm' version 1", "fill it")
    missing = pd.date_range("2024-01-01", periods=7, freq=freq)[3]
    assert str(info.value) == (
        f"series 's' has no value at {missing.isoformat()}, within the last 6 steps the model reads; fill it"
    )
    with pytest.raises(HistoryError) as info:
        check_stored_window("s", *window(freq, 4), freq, 6, "model 'm' version 1", "fill it")
    assert str(info.value) == "series 's' has 4 stored values; model 'm' version 1 needs at least 6 (its lookback)"


def test_an_input_error_keeps_its_kind_where_a_body_places_it():
    error = TimestampsError("timestamps must be strictly increasing").at("requests[3]: ")
    assert type(error) is TimestampsError and isinstance(error, ForecastInputError)
    assert str(error) == "requests[3]: timestamps must be strictly increasing"
    assert not issubclass(DataError, ForecastInputError)  # a series that cannot be stored is not a forecast's input
