"""Series loading and validation: CSV, Parquet or a built-in, checked before anything trains on it (timestamps,
frequencies and grids are read by ``timeaxis.py``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.forecasting.errors import DataError
from pipelines.forecasting.timeaxis import (
    RANGE,  # noqa: F401  (the series store imports it, check_freq and DataError from here)
    check_freq,
    first_off_grid,
    infer_freq,
    mean_step_ns,
    parse_times,
)

log = logging.getLogger(__name__)

MAX_GAP = 3  # longest run of missing points that is interpolated rather than rejected
MAX_MISSING_FRACTION = 0.5
TIME_COLUMNS = ("timestamp", "time", "date", "ds", "datetime")  # the usual names, first found wins
VALUE_COLUMNS = ("value", "y", "values")
SERIES_COLUMNS = ("series", "unique_id", "item_id")  # a long table's series column

# Many-body pairing-model energies (coupled-cluster doubles correlation energy
# against the number of particles 2, 4, ..., 32): the first 16 values of y_tot.
MANYBODY_Y_TOT = (
    -0.03077640549, -0.08336233266, -0.1446729567, -0.2116753732,
    -0.2830637392, -0.3581341341, -0.436462435, -0.5177783846,
    -0.6019067271, -0.6887363571, -0.7782028952, -0.8702784034,
    -0.9649652536, -1.062292565, -1.16231451, -1.265109911,
)  # fmt: skip


@dataclass(frozen=True)
class Series:
    name: str
    values: np.ndarray  # float64, shape (n,) or (n, features)
    timestamps: pd.DatetimeIndex | None = None
    freq: str | None = None
    season: int | None = None
    source: str = ""
    interpolated: int = 0
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.values, dtype=np.float64).tobytes())
        if self.timestamps is not None:
            h.update(self.timestamps.asi8.tobytes())
        return h.hexdigest()[:16]


def _builtin_manifest() -> dict:
    return json.loads(resources.files("pipelines.forecasting.builtin").joinpath("manifest.json").read_text())


def sine_noise(n: int = 1000, seed: int = 0) -> Series:
    """The ``sin(0.02 t) + 2 U(0, 1)`` series, seeded."""
    t = np.arange(n)
    values = np.sin(0.02 * t) + 2 * np.random.default_rng(seed).random(n)
    return Series("sine_noise", values, source="generated: sin(0.02 t) + 2*U(0,1), seed 0")


def manybody() -> Series:
    return Series("manybody", np.array(MANYBODY_Y_TOT), source="built-in: many-body y_tot (16 energies)")


BUILTIN_GENERATED = {"sine_noise": sine_noise, "manybody": manybody}


def builtin_names() -> list[str]:
    return sorted([*BUILTIN_GENERATED, *_builtin_manifest()])


def load_builtin(name: str) -> Series:
    if name in BUILTIN_GENERATED:
        return BUILTIN_GENERATED[name]()
    manifest = _builtin_manifest()
    if name not in manifest:
        raise DataError(f"unknown built-in series {name!r}; built-ins are {', '.join(builtin_names())}")
    entry = manifest[name]
    path = resources.files("pipelines.forecasting.builtin").joinpath(f"{name}.csv")
    with resources.as_file(path) as p:
        frame = pd.read_csv(p)
    series = from_frame(frame, name=name, time_col="timestamp", value_col="value", source=entry["source"])
    return Series(
        name=name,
        values=series.values,
        timestamps=series.timestamps,
        freq=entry["freq"],
        season=entry["season"],
        source=entry["source"],
        interpolated=series.interpolated,
        meta={"horizon": entry["horizon"]},
    )


def load_series(data: str, *, time_col: str | None = None, value_col: str | None = None) -> Series:
    """A built-in name, or a path to a CSV or Parquet file."""
    path = Path(data)
    if not path.suffix and not path.exists():
        return load_builtin(data)
    if not path.exists():
        raise DataError(f"no file at {data!r}; give a CSV or Parquet path or a built-in ({', '.join(builtin_names())})")
    frame = read_table(path)
    return from_frame(frame, name=path.stem, time_col=time_col, value_col=value_col, source=str(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a table."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no file at {str(path)!r}; give a CSV or Parquet path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    raise DataError(f"{path.name}: unsupported file type {suffix!r}; allowed are .csv, .parquet, .pq")


def _pick_column(frame: pd.DataFrame, wanted: str | None, defaults: tuple[str, ...], role: str) -> str | None:
    if wanted is not None:
        if wanted not in frame.columns:
            raise DataError(f"no {role} column {wanted!r}; the columns are {', '.join(map(str, frame.columns))}")
        return wanted
    for name in defaults:
        if name in frame.columns:
            return name
    return None


def pick_columns(
    frame: pd.DataFrame,
    time_col: str | None = None,
    value_col: str | None = None,
    how: str = "name it with --value-col",
) -> tuple[str | None, str]:
    """The time column (None if there is none) and the value column: the ones named, else the usual names."""
    time_col = _pick_column(frame, time_col, TIME_COLUMNS, "time")
    value_col = _pick_column(frame, value_col, VALUE_COLUMNS, "value")
    if value_col is None:
        candidates = [c for c in frame.columns if c != time_col]
        if len(candidates) != 1:
            raise DataError(f"cannot tell which column holds the values among {', '.join(map(str, candidates))}; {how}")
        value_col = candidates[0]
    return time_col, value_col


def from_frame(
    frame: pd.DataFrame,
    *,
    name: str = "series",
    time_col: str | None = None,
    value_col: str | None = None,
    source: str = "",
    rows: np.ndarray | None = None,
) -> Series:
    """Validate a table into a regular, gap-filled series (see the module constants for the limits).

    ``rows``: the row number each row of ``frame`` has in the table it came from, for the messages
    (default: its position in ``frame``)."""
    if frame.empty:
        raise DataError("the table has no rows; a series needs at least one value")
    time_col, value_col = pick_columns(frame, time_col, value_col)

    def row_of(i: int) -> int:
        return int(i) if rows is None else int(rows[i])

    values = parse_numbers(
        frame[value_col],
        lambda row: f"column {value_col!r} row {row_of(row)}",
        "values must be numbers (blank cells count as missing)",
    )
    timestamps = None
    freq = None
    if time_col is not None:
        times = parse_times(frame[time_col], lambda row: f"column {time_col!r} row {row_of(row)}")
        dup = times.duplicated(keep=False)
        if dup.any():
            rows_dup = [row_of(i) for i in np.flatnonzero(dup.to_numpy())[:5]]
            raise DataError(
                f"duplicate timestamp {times[dup].iloc[0]} in column {time_col!r} at rows {rows_dup}; each time may appear once"
            )
        if not times.is_monotonic_increasing:
            log.info("%s: rows were not in time order; sorted by %r", name, time_col)
            order = np.argsort(times.to_numpy(), kind="stable")
            times, values = times.iloc[order], values.iloc[order]
        index = pd.DatetimeIndex(times.to_numpy())
        values = pd.Series(values.to_numpy(), index=index)
        if len(index) >= 3:
            freq = infer_freq(index)
            slots = (index[-1].value - index[0].value) // mean_step_ns(pd.tseries.frequencies.to_offset(freq)) + 1
            if slots > len(index) / (1 - MAX_MISSING_FRACTION):  # say so before building a grid of mostly gaps
                raise DataError(
                    f"column {value_col!r} is {1 - len(index) / slots:.0%} missing; "
                    f"at most {MAX_MISSING_FRACTION:.0%} may be missing"
                )
            grid = pd.date_range(index[0], index[-1], freq=freq)
            if len(grid) != len(index) or not grid.equals(index):
                off = first_off_grid(index, freq, index[0])
                if off is not None:
                    raise DataError(
                        f"timestamp {index[off]} in column {time_col!r} is off the series' {freq} grid; "
                        "timestamps must be evenly spaced (gaps are allowed)"
                    )
                values = values.reindex(grid)
                index = grid
        timestamps = index
        values = values.to_numpy()
    else:
        values = values.to_numpy()

    missing = np.isnan(values)
    if missing.mean() > MAX_MISSING_FRACTION:
        raise DataError(
            f"column {value_col!r} is {missing.mean():.0%} missing; at most {MAX_MISSING_FRACTION:.0%} may be missing"
        )
    interpolated = 0
    if missing.any():
        values, interpolated = _fill_short_gaps(values, value_col, timestamps)
        log.info("%s: interpolated %d missing value(s)", name, interpolated)
    return Series(name, values.astype(np.float64), timestamps, freq, season_for_freq(freq), source, interpolated)


def series_column(frame: pd.DataFrame, series_col: str | None = None) -> str | None:
    """A long table's series column: the one named, else the first of :data:`SERIES_COLUMNS` present."""
    return _pick_column(frame, series_col, SERIES_COLUMNS, "series")


def is_long_table(frame: pd.DataFrame) -> bool:
    """A table of many series (``series,timestamp,value``): a series column beside a value column.

    A table whose only columns are a time column and one called ``series`` is one series of values."""
    col = series_column(frame)
    if col is None:
        return False
    rest = [c for c in frame.columns if c != col]
    time_col = _pick_column(frame[rest], None, TIME_COLUMNS, "time")
    return any(c != time_col for c in rest)


def split_long_table(frame: pd.DataFrame, series_col: str | None = None) -> dict[str, pd.DataFrame]:
    """Each series' rows of a long table, by series name (sorted), the series column dropped; each part's
    index is its rows' positions in ``frame`` (the row numbers the messages give)."""
    col = series_column(frame, series_col)
    if col is None:
        raise DataError(
            f"no series column among {', '.join(map(str, frame.columns))}; "
            f"a table of many series has one named {', '.join(SERIES_COLUMNS)}"
        )
    if frame.empty:
        raise DataError("the table has no rows; a series needs at least one value")
    keys = frame[col]
    blank = keys.isna().to_numpy() | (keys.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise DataError(f"column {col!r} row {row} is empty; every row names its series")
    names = keys.astype(str).to_numpy()
    rest = frame.drop(columns=[col]).reset_index(drop=True)
    positions = pd.Series(np.arange(len(frame))).groupby(names, sort=True).indices
    return {str(name): rest.iloc[pos] for name, pos in positions.items()}


def panel_from_frame(
    frame: pd.DataFrame,
    *,
    series_col: str | None = None,
    time_col: str | None = None,
    value_col: str | None = None,
    source: str = "",
) -> list[Series]:
    """A long table (``series,timestamp,value``) as one checked series per name, sorted by name; each series
    goes through :func:`from_frame`, and a message names the series and the table's row."""
    out = []
    for name, part in split_long_table(frame, series_col).items():
        try:
            out.append(
                from_frame(
                    part,
                    name=name,
                    time_col=time_col,
                    value_col=value_col,
                    source=f"{source} (series {name})" if source else "",
                    rows=part.index.to_numpy(),
                )
            )
        except DataError as exc:
            raise DataError(f"series {name!r}: {exc}") from None
    return out


def load_panel(
    path: str | Path, *, series_col: str | None = None, time_col: str | None = None, value_col: str | None = None
) -> list[Series]:
    """A long CSV or Parquet table of many series (see :func:`panel_from_frame`)."""
    frame = read_table(path)
    return panel_from_frame(frame, series_col=series_col, time_col=time_col, value_col=value_col, source=str(path))


def parse_numbers(raw: pd.Series, where: Callable[[int], str], allowed: str) -> pd.Series:
    """Numbers as float (blank and infinite -> NaN); the first entry that is not a number is named by ``where``."""
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where(row)} holds {raw.iloc[row]!r}; {allowed}")
    return values.astype(float).replace([np.inf, -np.inf], np.nan)


@dataclass(frozen=True)
class Observations:
    """A checked batch of observations, sorted by time (time-zone-aware timestamps in UTC)."""

    timestamps: pd.DatetimeIndex
    values: np.ndarray
    freq: str


def check_observations(
    timestamps,
    values,
    *,
    freq: str | None = None,
    anchor: pd.Timestamp | None = None,
    max_points: int | None = None,
    fields: tuple[str, str] = ("timestamps", "values"),
) -> Observations:
    """The training data's checks on a batch of new observations (nothing is filled in): finite numbers,
    readable timestamps, none twice, all on the ``freq`` grid through ``anchor`` (a stored timestamp of the
    series; without one, the batch's first). Without ``freq`` it is inferred from the batch (2+ points).
    Errors name the field and index (``values[3]``) and what is allowed."""
    tf, vf = fields
    if len(timestamps) != len(values):
        raise DataError(f"{tf} has {len(timestamps)} entries and {vf} {len(values)}; give one value per timestamp")
    if len(values) == 0:
        raise DataError(f"{vf} is empty; send at least one observation")
    if max_points is not None and len(values) > max_points:
        raise DataError(f"the batch has {len(values)} observations; at most {max_points} are allowed per batch")
    raw_values = pd.Series(list(values) if not isinstance(values, pd.Series) else values.to_numpy(), dtype=object)
    numbers = parse_numbers(raw_values, lambda i: f"{vf}[{i}]", "values must be finite numbers").to_numpy()
    if np.isnan(numbers).any():
        i = int(np.flatnonzero(np.isnan(numbers))[0])
        raise DataError(f"{vf}[{i}] is {raw_values.iloc[i]!r}; values must be finite numbers (none missing)")
    raw_times = pd.Series(
        list(timestamps) if not isinstance(timestamps, pd.Series) else timestamps.to_numpy(), dtype=object
    )
    times = parse_times(raw_times, lambda i: f"{tf}[{i}]")
    dup = times.duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())[:5].tolist()
        raise DataError(f"duplicate timestamp {times[dup].iloc[0]} at {tf}{rows}; each time may appear once in a batch")
    order = np.argsort(times.to_numpy(), kind="stable")
    index = pd.DatetimeIndex(times.to_numpy()[order], tz=getattr(times.dt, "tz", None))
    numbers = numbers[order]
    if anchor is not None and (anchor.tzinfo is None) != (index.tz is None):
        zone = "without a time zone" if anchor.tzinfo is None else "with a time zone"
        raise DataError(
            f"{tf}[{int(order[0])}] is {raw_times.iloc[int(order[0])]!r}; this series' timestamps are {zone}"
        )
    if freq is not None:
        freq = check_freq(freq)
    elif len(index) >= 2:
        freq = infer_freq(index)
    else:
        raise DataError("one observation does not give the series' frequency; send at least 2 or give freq")
    off = first_off_grid(index, freq, anchor if anchor is not None else index[0])
    if off is not None:
        i = int(order[off])
        raise DataError(
            f"{tf}[{i}] ({index[off]}) is off the series' {freq} grid; timestamps must be evenly spaced "
            "(gaps are allowed)"
        )
    return Observations(index, numbers.astype(np.float64), freq)


def _fill_short_gaps(values: np.ndarray, value_col: str, timestamps) -> tuple[np.ndarray, int]:
    missing = np.isnan(values)
    if missing[0] or missing[-1]:
        edge = 0 if missing[0] else len(values) - 1
        raise DataError(f"column {value_col!r} row {edge} is missing; the first and last values must be present")
    # lengths of runs of missing values
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int((ends - starts).max())
    if longest > MAX_GAP:
        at = starts[np.argmax(ends - starts)]
        where = f" at {timestamps[at]}" if timestamps is not None else ""
        raise DataError(
            f"column {value_col!r} has {longest} missing values in a row from row {at}{where}; "
            f"at most {MAX_GAP} in a row are interpolated"
        )
    idx = np.arange(len(values))
    filled = values.copy()
    filled[missing] = np.interp(idx[missing], idx[~missing], values[~missing])
    return filled, int(missing.sum())


def season_for_freq(freq: str | None) -> int | None:
    """The usual season length for a frequency: 12 monthly, 4 quarterly, 7 daily, 24 hourly, 48 half-hourly."""
    if freq is None:
        return None
    off = pd.tseries.frequencies.to_offset(freq)
    o, n = pd.offsets, max(off.n, 1)
    if isinstance(off, (o.MonthBegin, o.MonthEnd, o.BusinessMonthBegin, o.BusinessMonthEnd)):
        return max(12 // n, 1)
    if isinstance(off, (o.QuarterBegin, o.QuarterEnd, o.BQuarterBegin, o.BQuarterEnd)):
        return max(4 // n, 1)
    if isinstance(off, (o.YearBegin, o.YearEnd, o.BYearBegin, o.BYearEnd)):
        return 1
    if isinstance(off, o.Week):
        return max(52 // n, 1)
    if isinstance(off, o.BusinessDay):
        return 5
    if isinstance(off, o.Day):
        return 7 if n == 1 else 1
    if isinstance(off, o.Tick):
        step = pd.Timedelta(off).total_seconds()
        for period in (86400, 3600):  # a daily cycle if it is short enough to learn, else an hourly one
            per = period / step
            if per >= 2 and per <= 720 and per == int(per):
                return int(per)
        return 1
    return None
