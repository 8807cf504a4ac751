"""The time axis of a series and of a forecast: reading timestamps, frequencies and their grids, continuing
timestamps past the last one, and a stored window's steps.

The training data's checks (``data.py``), the series store's batches (``pipelines/store``) and the forecast
endpoints (``service/inputs.py``) all read time through this module. Errors: :class:`DataError` where a series
or a batch is read, :class:`TimestampsError` where a forecast's time axis cannot be continued.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Tick

from pipelines.forecasting.errors import DataError, HistoryError, TimestampsError

MAX_GRID_STEPS = 100_000  # calendar-grid points built to check a batch (the store's default batch limit)
LAST_TIME = "2262-04-11"
RANGE = f"1677-09-22 to {LAST_TIME}"  # what nanosecond timestamps can hold


_ZONED = r"\d:\d\d(?::\d\d(?:[.,]\d*)?)?\s*(?:Z|UTC|[+-]\d\d(?::?\d\d)?)$"  # a time followed by a zone


def parse_times(raw: pd.Series, where: Callable[[int], str]) -> pd.Series:
    """Timestamps (time-zone-aware ones in UTC); the first that cannot be read is named by ``where``."""
    allowed = f"timestamps must be dates or ISO-8601 times from {RANGE}"
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = raw
    else:
        present = raw.notna()
        zoned = raw.astype(str).str.strip().str.contains(_ZONED, regex=True) & present
        if zoned.any() and not zoned[present].all():
            row = int(np.flatnonzero((zoned != zoned[present].iloc[0]) & present)[0])
            raise DataError(f"{where(row)} holds {raw.iloc[row]!r}; {allowed}, all with or all without a time zone")
        utc = bool(zoned.any())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns while it guesses a format
            try:
                times = pd.to_datetime(raw, errors="coerce", utc=utc)
            except (ValueError, TypeError, OverflowError):
                times = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
            if times.isna().any():  # e.g. dates and date-times mixed: read each as ISO-8601
                iso = pd.to_datetime(raw, errors="coerce", utc=utc, format="ISO8601")
                if iso.isna().sum() < times.isna().sum():
                    times = iso
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(f"{where(row)} holds {raw.iloc[row]!r}; {allowed}")
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC")
    return times


def first_off_grid(index: pd.DatetimeIndex, freq: str, anchor: pd.Timestamp) -> int | None:
    """Position of the first timestamp of ``index`` (sorted) not on the ``freq`` grid through ``anchor``."""
    off = to_offset(freq)
    if isinstance(off, pd.offsets.Tick):
        # congruent modulo the step, compared as residues: index - anchor overflows int64 past 292 years
        bad = index.asi8 % off.nanos != anchor.value % off.nanos
    else:
        bad = ~index.isin(calendar_grid(off, anchor, index[0], index[-1]))
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def calendar_grid(
    off: pd.DateOffset, anchor: pd.Timestamp, first: pd.Timestamp, last: pd.Timestamp
) -> pd.DatetimeIndex:
    """The points of the ``off`` grid through ``anchor`` from the last one at or before ``first`` to ``last``.

    The start is found by offset arithmetic (``anchor + k * off``, bisected on ``k``), so a batch far from the
    anchor does not build the grid in between; a business-hour grid costs about 25 us a point to build."""
    mean = mean_step_ns(off)
    try:  # in microseconds, k * off may span the whole range (in ns a Week or BDay multiple stops at 292 years)
        base = anchor.as_unit("us")
    except ValueError:  # an anchor with nanoseconds
        base = anchor

    def at(k: int) -> float:  # ns of the k-th grid point; past pandas' range: beyond every timestamp
        if k == 0:
            return anchor.value
        try:
            return (base + k * off).value
        except (OverflowError, ValueError):
            return math.inf if k > 0 else -math.inf

    target = first.value
    k = (target - anchor.value) // mean
    lo, hi = (k, None) if at(k) <= target else (None, k)
    stride = max(1, abs(target - anchor.value) // mean // 64)
    while lo is None or hi is None:  # gallop outwards to a bracket
        k = (hi - stride) if lo is None else (lo + stride)
        if at(k) <= target:
            lo = k
        else:
            hi = k
        stride *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid) <= target:
            lo = mid
        else:
            hi = mid
    if not math.isfinite(at(lo)):
        raise DataError(f"timestamp {first} cannot be placed on the {off.freqstr} grid within {RANGE}")
    try:  # one step back and on writes the point as date_range does (business hours: Friday 17:00 -> Monday 09:00)
        start = ((base + lo * off - off) + off).value if lo else anchor.value
    except (OverflowError, ValueError):
        start = at(lo)
    steps = (last.value - start) // mean + 1
    if steps > MAX_GRID_STEPS:
        raise DataError(
            f"timestamps from {first} to {last} span about {steps:,} steps of {off.freqstr}; "
            f"a batch may span at most {MAX_GRID_STEPS:,} steps (gaps included)"
        )
    return pd.date_range(pd.Timestamp(int(start), tz=anchor.tz), last, freq=off)


def mean_step_ns(off: pd.DateOffset) -> int:
    """A frequency's step in ns; a calendar frequency's average over 64 steps (business hours skip nights)."""
    if isinstance(off, pd.offsets.Tick):
        return off.nanos
    reference = pd.Timestamp("2000-01-03")  # a Monday, mid-range
    for steps in (64, 1):
        try:
            return max(1, ((reference + steps * off).value - reference.value) // steps)
        except (OverflowError, ValueError):
            continue
    raise DataError(f"frequency {off.freqstr} steps out of {RANGE}")


def check_freq(freq: str, field: str = "freq") -> str:
    try:
        off = to_offset(freq)
        reference = pd.Timestamp("2000-01-01")
        # "0h", "-1h" and "0MS" parse; .value overflows where one step leaves nanosecond timestamps' range
        forward = off.n > 0 and (reference + off).value > reference.value
    except (ValueError, TypeError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        forward = False
    if not forward:
        raise DataError(
            f"{field} is {freq!r}; allowed are pandas frequencies with a positive step shorter than 292 years, "
            "e.g. D, h, 15min, W, MS, QS"
        )
    return off.freqstr


def infer_freq(index: pd.DatetimeIndex) -> str:
    """pandas' inferred frequency, or the most common step where gaps hide it."""
    freq = pd.infer_freq(index) if len(index) >= 3 else None
    if freq is not None:
        return freq
    steps = pd.Series(np.diff(index.asi8.astype(object)))  # Python ints: 1677 to 2262 overflows int64
    # calendar frequencies cannot be read off a fixed step; try the common ones on the first points
    for candidate in ("MS", "ME", "QS", "QE", "YS", "YE", "W"):
        try:
            probe = pd.date_range(index[0], periods=min(len(index), 6), freq=candidate)
        except (OverflowError, ValueError):  # past 2262
            continue
        if index[: len(probe)].isin(probe).all() and len(probe) > 1:
            return candidate
    try:
        return to_offset(pd.Timedelta(int(steps.mode().iloc[0]))).freqstr
    except (OverflowError, ValueError):
        raise DataError(
            f"timestamps {index[0]} to {index[-1]} are too far apart to give a frequency (292 years at most)"
        ) from None


def next_timestamps(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """The ``horizon`` timestamps that continue a series after ``last``."""
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


def request_index(timestamps: Sequence[datetime]) -> pd.DatetimeIndex:
    """A forecast request's timestamps as an index, strictly increasing. Ones pandas cannot hold together (several
    UTC offsets, zoned and naive mixed, out of range) are read as the series store reads them: in UTC, or a
    :class:`TimestampsError` naming the first that cannot be."""
    try:
        index = pd.DatetimeIndex(timestamps)
    except (ValueError, TypeError, OverflowError):
        try:
            written = pd.Series([t.isoformat() for t in timestamps], dtype=object)
            index = pd.DatetimeIndex(parse_times(written, lambda i: f"timestamps[{i}]"))
        except DataError as exc:
            raise TimestampsError(str(exc)) from None
    later = index[1:] > index[:-1]  # compared, not subtracted: 1677 to 2262 overflows int64
    if not later.all():
        i = int(np.flatnonzero(~later)[0]) + 1
        raise TimestampsError(
            f"timestamps must be strictly increasing; timestamps[{i}] is not after timestamps[{i - 1}]"
        )
    return index


def continue_timestamps(timestamps: Sequence[datetime], horizon: int, freq: str | None) -> tuple[str, ...]:
    """The ``horizon`` timestamps after a request's ``timestamps``, at their frequency (one timestamp: at ``freq``,
    the model's), as ISO-8601 strings."""
    index = request_index(timestamps)
    try:
        step = infer_freq(index) if len(index) >= 2 else freq
    except DataError as exc:
        raise TimestampsError(str(exc)) from None
    if step is None:
        raise TimestampsError("one timestamp does not give a frequency; give at least 2")
    return future_timestamps(index[-1], step, horizon)


# a stored series' forecasts ask for the same ones until it grows (a panel's series end together); 128 entries
# bound the memory (at most 128 x the largest horizon strings)
@lru_cache(maxsize=128)
def future_timestamps(last: pd.Timestamp, freq: str, horizon: int) -> tuple[str, ...]:
    """The ``horizon`` timestamps after ``last`` at ``freq``, as ISO-8601 strings."""
    try:
        return tuple(t.isoformat() for t in next_timestamps(last, freq, horizon))
    except (ValueError, OverflowError):  # past what nanosecond timestamps hold
        raise TimestampsError(
            f"{horizon} steps of {freq} after {last.isoformat()} pass the last time timestamps can hold "
            f"({LAST_TIME}); ask for a shorter horizon"
        ) from None


def check_stored_window(
    name: str, index: pd.DatetimeIndex, values: np.ndarray, freq: str, need: int, reader: str, remedy: str
) -> None:
    """That the latest stored values of series ``name`` (``index`` and ``values`` at the series' ``freq``, as
    ``SeriesStore.latest`` reads them) are a window ``reader`` (e.g. "model 'm' version 1") can forecast from: at
    least ``need`` values (its lookback), one at every step of the last ``need``. ``remedy`` ends the message of
    a gap (how to fill it)."""
    if len(values) < need:
        raise HistoryError(
            f"series {name!r} has {len(values)} stored values; {reader} needs at least {need} (its lookback)"
        )
    step = to_offset(freq)
    if isinstance(step, Tick):  # a fixed step: the differences say it, no grid built
        contiguous = bool((np.diff(index.asi8[-need:]) == step.nanos).all())
    else:
        contiguous = index[-need:].equals(pd.date_range(end=index[-1], periods=need, freq=step))
    if not contiguous:
        missing = pd.date_range(end=index[-1], periods=need, freq=step).difference(index)
        raise TimestampsError(
            f"series {name!r} has no value at {missing[0].isoformat()}, within the last {need} steps the model "
            f"reads; {remedy}"
        )
