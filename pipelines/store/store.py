"""The series store: named series of observations keyed by (series, timestamp), in SQLite or PostgreSQL.

A write is one transaction: the batch is checked by the training data's own checks
(:func:`pipelines.forecasting.data.check_observations`), the series is created on its first batch (its
frequency given or inferred, its grid through its first timestamp), and every observation is upserted:
new timestamps are inserted, a new value for a stored timestamp replaces it (a revision), the same value
changes nothing. The result counts inserted / updated / unchanged; a batch that fails a check writes nothing.
A file (:meth:`SeriesStore.ingest`, one series or many) is one write of any size: all of it or nothing, a
kill included; its errors name the file's column and row.

Every call is bounded (``timeout_seconds``, see :mod:`pipelines.store.db`): a lock, statement or connection
that waits past it raises :class:`StoreUnavailable`.

Counting under concurrency: SQLite writes hold the database's write lock from ``BEGIN IMMEDIATE``, so the
rows in the batch's time range counted before and after the upsert are exact, and so is ``created``.
PostgreSQL writers run side by side; ``INSERT ... ON CONFLICT DO UPDATE ... WHERE value IS DISTINCT FROM
excluded.value RETURNING (xmax = 0)`` reports per row whether it was inserted or updated (unchanged rows are
not returned), decided under the row lock, so concurrent writers of overlapping timestamps count each row once and the last commit wins;
concurrent first batches each ``INSERT ... ON CONFLICT DO NOTHING`` the series row, and only the one whose
insert returned the row answers ``created``.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Double,
    Engine,
    Integer,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pipelines.forecasting.data import (
    RANGE,
    DataError,
    Observations,
    Series,
    check_freq,
    check_observations,
    from_frame,
)
from pipelines.store import db
from pipelines.store.schema import NAME_MAX, observations, series
from pipelines.tracking.tags import store_source

if TYPE_CHECKING:
    from pipelines.settings import Settings

NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{NAME_MAX - 1}}}")
NAME_RULE = f"names are 1 to {NAME_MAX} letters, digits, '_', '.' or '-', starting with a letter or digit"
DEFAULT_MAX_POINTS = 100_000
WRITE_CHUNK = 10_000  # rows per INSERT statement (Settings.store_write_chunk's default)
IN_CHUNK = 900  # names or ids per IN (...) list: under SQLite's bound-parameter limit before 3.32 (999)


class SeriesNotFound(LookupError):
    pass


class StoreUnavailable(RuntimeError):
    """The database cannot be reached, or a lock or statement waited past the store's timeout."""


class IngestError(DataError):
    """A file's rows that fail the checks: the message names the file's column and row, ``series`` the series."""

    def __init__(self, series: str, message: str):
        super().__init__(message)
        self.series = series


@dataclass(frozen=True)
class FileRows:
    """One series' rows of a file: times and values, the file's row of each entry, and the two columns' names."""

    timestamps: Sequence[Any] | pd.Series
    values: Sequence[Any] | pd.Series
    rows: np.ndarray
    columns: tuple[str, str]


@dataclass(frozen=True)
class _Batch:
    name: str
    timestamps: Sequence[Any] | pd.Series
    values: Sequence[Any] | pd.Series
    file: FileRows | None = None


# how the checks name an entry of a batch (``values[3]``, ``timestamps[2, 7]``): rewritten for a file's rows
_ENTRY = re.compile(r"\b(timestamps|values)\[(\d+(?:, \d+)*)\]")


def _at_file_rows(message: str, file: FileRows) -> str:
    """A check's message about a batch, with its first entry named as the file's column and row."""

    def rows(match: re.Match) -> str:
        column = file.columns[0] if match[1] == "timestamps" else file.columns[1]
        at = [str(int(file.rows[int(i)])) for i in match[2].split(", ")]
        return f"column {column!r} row{'s' if len(at) > 1 else ''} {', '.join(at)}"

    return _ENTRY.sub(rows, message, count=1)


def _timed_out(exc: OperationalError) -> bool:
    """A wait the store's timeout ended: PostgreSQL's lock or statement timeout, SQLite's busy handler."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in ("55P03", "57014")  # lock_not_available, query_canceled
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DataError(f"series name {name!r} is not allowed; {NAME_RULE}")
    return name


@dataclass(frozen=True)
class SeriesInfo:
    id: int
    name: str
    freq: str
    tz: str | None
    origin: int | None

    @property
    def anchor(self) -> pd.Timestamp | None:
        return None if self.origin is None else pd.Timestamp(self.origin, tz=self.tz)


@dataclass(frozen=True)
class WriteResult:
    series: str
    created: bool
    freq: str
    inserted: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class Summary:
    name: str
    freq: str
    tz: str | None
    length: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class Page:
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    next_cursor: str | None


def to_index(ts: Sequence[int] | np.ndarray, tz: str | None) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(ts, dtype="int64").view("datetime64[ns]"))
    return index.tz_localize(tz) if tz else index


def _ns(t: pd.Timestamp, tz: str | None, field: str) -> int:
    if (t.tzinfo is None) != (tz is None):
        raise DataError(
            f"{field} is {t.isoformat()}; this series' timestamps are {'with' if tz else 'without'} a time zone"
        )
    try:
        return int((t.tz_convert("UTC") if t.tzinfo is not None else t).value)
    except (OverflowError, ValueError):  # a date pandas reads but nanoseconds cannot hold, e.g. 9999-01-01
        raise DataError(f"{field} is {t.isoformat()}; allowed are times from {RANGE}") from None


class SeriesStore:
    def __init__(
        self,
        url: str,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        timeout_seconds: float = db.DEFAULT_TIMEOUT_SECONDS,
        write_chunk: int = WRITE_CHUNK,
        upgrade: bool = True,
    ):
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.engine: Engine = db.make_engine(url, timeout_seconds)
        self.max_points = max_points
        self.write_chunk = max(1, write_chunk)
        if upgrade:
            self.upgrade()

    @classmethod
    def from_settings(cls, settings: Settings, *, upgrade: bool = True) -> SeriesStore:
        """The store ``Settings`` name (URL, batch limit, timeout, write chunk)."""
        return cls(
            settings.series_store_url,
            max_points=settings.max_batch_points,
            timeout_seconds=settings.store_timeout_seconds,
            write_chunk=settings.store_write_chunk,
            upgrade=upgrade,
        )

    def upgrade(self) -> None:
        self._guard(db.upgrade, self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _guard(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"the series store ({self.dialect}) is busy: no connection was free within "
                f"{self.timeout_seconds:g} s; try again later"
            ) from exc
        except OperationalError as exc:
            if _timed_out(exc):
                raise StoreUnavailable(
                    f"the series store ({self.dialect}) is busy: a lock or statement waited over "
                    f"{db.database_wait(self.timeout_seconds):g} s; try again later"
                ) from exc
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise StoreUnavailable(f"the series store ({self.dialect}) cannot be used now: {reason}") from exc

    # --- writes -----------------------------------------------------------------------------------
    def write(self, name: str, timestamps, values, *, freq: str | None = None) -> WriteResult:
        """Store a batch of at most ``max_points`` (one transaction); raises :class:`DataError` naming the first
        bad entry (``values[3]``)."""
        [result] = self._write_all([_Batch(name, timestamps, values)], freq, self.max_points)
        return result

    def ingest(self, tables: Mapping[str, FileRows], *, freq: str | None = None) -> list[WriteResult]:
        """A file's series (one or many, in the order given), all in one transaction or none, of any size
        (``write_chunk`` rows per statement); a check that fails raises :class:`IngestError` naming the series,
        the file's column and row, before anything is written."""
        return self._write_all([_Batch(name, f.timestamps, f.values, f) for name, f in tables.items()], freq, None)

    def _write_all(self, batches: list[_Batch], freq: str | None, max_points: int | None) -> list[WriteResult]:
        for batch in batches:
            check_name(batch.name)
        if freq is not None:
            freq = check_freq(freq)

        def lookup() -> dict[str, SeriesInfo]:
            with db.transaction(self.engine) as conn:
                return self._infos(conn, [b.name for b in batches])

        # checked before the transaction (parsing a big file holds no lock), again inside it only for a series
        # created or dropped in between
        known = self._guard(lookup)
        checked = [self._check(known.get(b.name), b, freq, max_points) for b in batches]
        return self._guard(self._write_checked, batches, checked, known, freq, max_points)

    def _check(self, info: SeriesInfo | None, batch: _Batch, freq: str | None, max_points: int | None) -> Observations:
        try:
            if info is not None and freq is not None and freq != info.freq:
                raise DataError(
                    f"freq is {freq!r}, but series {info.name!r} is at {info.freq!r} (set by its first batch)"
                )
            return check_observations(
                batch.timestamps,
                batch.values,
                freq=info.freq if info else freq,
                anchor=info.anchor if info else None,
                max_points=max_points,
            )
        except DataError as exc:
            if batch.file is None:
                raise
            raise IngestError(batch.name, _at_file_rows(str(exc), batch.file)) from None

    def _write_checked(
        self,
        batches: list[_Batch],
        checked: list[Observations],
        known: dict[str, SeriesInfo],
        freq: str | None,
        max_points: int | None,
    ) -> list[WriteResult]:
        results = []
        with db.transaction(self.engine, write=True) as conn:
            now = self._infos(conn, [b.name for b in batches])
            for batch, observed in zip(batches, checked, strict=True):
                info = now.get(batch.name)
                if info != known.get(batch.name):  # created or dropped since the check: check against what is there
                    observed = self._check(info, batch, freq, max_points)
                created = False
                if info is None:
                    info, created = self._create(conn, batch.name, observed)
                    if not created:  # a concurrent first batch made it: theirs stands, and this one is re-checked
                        observed = self._check(info, batch, freq, max_points)
                ts = observed.timestamps.asi8
                if db.is_sqlite(self.engine):
                    inserted, updated = self._upsert_sqlite(conn, info.id, ts, observed.values)
                else:
                    inserted, updated = self._upsert_postgres(conn, info.id, ts, observed.values)
                if inserted or updated:
                    conn.execute(series.update().where(series.c.id == info.id).values(updated_at=datetime.now(UTC)))
                results.append(
                    WriteResult(batch.name, created, info.freq, inserted, updated, len(ts) - inserted - updated)
                )
        return results

    def _create(self, conn, name: str, checked: Observations) -> tuple[SeriesInfo, bool]:
        """The series row for a first batch, and whether this insert made it (a concurrent one may have)."""
        row = {
            "name": name,
            "freq": checked.freq,
            "tz": "UTC" if checked.timestamps.tz is not None else None,
            "origin": int(checked.timestamps.asi8[0]),
            "created_at": datetime.now(UTC),
            "updated_at": datetime.now(UTC),
        }
        # SQLite holds the write lock (no one else can insert it); PostgreSQL's second insert waits for the first
        # to commit and then inserts nothing: whether a row comes back decides
        insert = sqlite.insert(series) if db.is_sqlite(self.engine) else postgresql.insert(series)
        made = insert.values(**row).on_conflict_do_nothing(index_elements=["name"]).returning(series.c.id)
        created = conn.execute(made).first() is not None
        info = self._info(conn, name)
        assert info is not None
        return info, created

    def _upsert_sqlite(self, conn, series_id: int, ts: np.ndarray, values: np.ndarray) -> tuple[int, int]:
        lo, hi = int(ts[0]), int(ts[-1])
        in_range = (
            select(func.count())
            .select_from(observations)
            .where(observations.c.series_id == series_id, observations.c.ts.between(lo, hi))
        )
        before = conn.execute(in_range).scalar_one()
        stmt = sqlite.insert(observations)
        stmt = stmt.on_conflict_do_update(
            index_elements=[observations.c.series_id, observations.c.ts],
            set_={"value": stmt.excluded.value},
            where=observations.c.value != stmt.excluded.value,
        )
        changed = 0
        step = self.write_chunk
        for start in range(0, len(ts), step):
            rows = [
                {"series_id": series_id, "ts": t, "value": v}
                for t, v in zip(ts[start : start + step].tolist(), values[start : start + step].tolist(), strict=True)
            ]
            changed += conn.execute(stmt, rows).rowcount
        inserted = conn.execute(in_range).scalar_one() - before
        return inserted, changed - inserted

    def _upsert_postgres(self, conn, series_id: int, ts: np.ndarray, values: np.ndarray) -> tuple[int, int]:
        rows = select(
            literal(series_id, Integer).label("series_id"),
            func.unnest(bindparam("ts", type_=postgresql.ARRAY(BigInteger))).label("ts"),
            func.unnest(bindparam("values", type_=postgresql.ARRAY(Double))).label("value"),
        )
        insert = postgresql.insert(observations).from_select(["series_id", "ts", "value"], rows)
        upsert: Any = insert.on_conflict_do_update(
            index_elements=[observations.c.series_id, observations.c.ts],
            set_={"value": insert.excluded.value},
            where=observations.c.value.is_distinct_from(insert.excluded.value),
        ).returning(literal_column("xmax = 0"))
        inserted = changed = 0
        step = self.write_chunk  # each statement is bounded by the statement timeout: a big file is many
        for start in range(0, len(ts), step):
            chunk = {"ts": ts[start : start + step].tolist(), "values": values[start : start + step].tolist()}
            flags = conn.execute(upsert, chunk).scalars().all()
            inserted += sum(1 for f in flags if f)
            changed += len(flags)
        return inserted, changed - inserted

    def delete(self, name: str) -> int:
        """Drop a series and its observations; the number of observations dropped."""
        check_name(name)

        def run() -> int:
            with db.transaction(self.engine, write=True) as conn:
                info = self._info(conn, name)
                if info is None:
                    raise self._not_found(name)
                count = conn.execute(observations.delete().where(observations.c.series_id == info.id)).rowcount
                conn.execute(series.delete().where(series.c.id == info.id))
                return count

        return self._guard(run)

    # --- reads ------------------------------------------------------------------------------------
    @staticmethod
    def _not_found(name: str) -> SeriesNotFound:
        return SeriesNotFound(f"no series named {name!r}; GET /v1/series or seqcast series lists them")

    def _info(self, conn, name: str) -> SeriesInfo | None:
        row = conn.execute(
            select(series.c.id, series.c.name, series.c.freq, series.c.tz, series.c.origin).where(series.c.name == name)
        ).first()
        return None if row is None else SeriesInfo(*row)

    def info(self, name: str, *, missing_ok: bool = False) -> SeriesInfo | None:
        def run():
            with db.transaction(self.engine) as conn:
                return self._info(conn, name)

        found = self._guard(run)
        if found is None and not missing_ok:
            raise self._not_found(name)
        return found

    def summaries(self, name: str | None = None) -> list[Summary]:
        """Each series (or the one named): frequency, time zone, number of observations, first and last."""
        query = (
            select(
                series.c.name,
                series.c.freq,
                series.c.tz,
                func.count(observations.c.ts),
                func.min(observations.c.ts),
                func.max(observations.c.ts),
            )
            .select_from(series.outerjoin(observations, observations.c.series_id == series.c.id))
            .group_by(series.c.id, series.c.name, series.c.freq, series.c.tz)
            .order_by(series.c.name)
        )
        if name is not None:
            query = query.where(series.c.name == name)

        def run():
            with db.transaction(self.engine) as conn:
                return conn.execute(query).all()

        out = []
        for n, freq, tz, count, first, last in self._guard(run):
            stamp = lambda v, tz=tz: None if v is None else pd.Timestamp(int(v), tz=tz)  # noqa: E731
            out.append(Summary(n, freq, tz, int(count), stamp(first), stamp(last)))
        if name is not None and not out:
            raise self._not_found(name)
        return out

    # built once: the forecast path runs this per request
    _LATEST = (
        select(series.c.id, series.c.freq, series.c.tz, series.c.origin, observations.c.ts, observations.c.value)
        .select_from(series.outerjoin(observations, observations.c.series_id == series.c.id))
        .where(series.c.name == bindparam("name"))
        .order_by(observations.c.ts.desc())
        .limit(bindparam("n", type_=Integer))
    )

    def latest(self, name: str, n: int) -> tuple[SeriesInfo, pd.DatetimeIndex, np.ndarray]:
        """The last ``n`` observations (fewer if fewer are stored), oldest first."""

        def run():
            with self.engine.connect() as conn, conn.begin():
                return conn.execute(self._LATEST, {"name": name, "n": max(n, 1)}).all()

        rows = self._guard(run)
        if not rows:
            raise self._not_found(name)
        sid, freq, tz, origin = rows[0][:4]
        if rows[-1][4] is None:  # a series without observations (the outer join's one row)
            rows = []
        info = SeriesInfo(sid, name, freq, tz, origin)
        ts = np.fromiter((r[4] for r in reversed(rows)), dtype=np.int64, count=len(rows))
        values = np.fromiter((r[5] for r in reversed(rows)), dtype=np.float64, count=len(rows))
        return info, to_index(ts, tz), values

    def page(
        self,
        name: str,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page:
        """Observations in ``[start, end]`` oldest first, ``limit`` at a time; ``cursor`` continues a page."""
        info = self.info(name)
        assert info is not None
        conds = [observations.c.series_id == info.id]
        if start is not None:
            conds.append(observations.c.ts >= _ns(start, info.tz, "start"))
        if end is not None:
            conds.append(observations.c.ts <= _ns(end, info.tz, "end"))
        if cursor is not None:
            try:
                after = int(cursor)
                np.int64(after)  # the column's range: SQLite refuses a larger one
            except (ValueError, OverflowError):
                raise DataError(f"cursor is {cursor!r}; pass the next_cursor of the previous page") from None
            conds.append(observations.c.ts > after)
        query = (
            select(observations.c.ts, observations.c.value)
            .where(and_(*conds))
            .order_by(observations.c.ts)
            .limit(limit + 1)
        )

        def run():
            with db.transaction(self.engine) as conn:
                return conn.execute(query).all()

        rows = self._guard(run)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = str(rows[-1][0]) if more else None
        return Page(to_index([r[0] for r in rows], info.tz), np.array([r[1] for r in rows], np.float64), next_cursor)

    def _infos(self, conn, names: Sequence[str]) -> dict[str, SeriesInfo]:
        found: dict[str, SeriesInfo] = {}
        cols = (series.c.id, series.c.name, series.c.freq, series.c.tz, series.c.origin)
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), IN_CHUNK):
            rows = conn.execute(select(*cols).where(series.c.name.in_(unique[start : start + IN_CHUNK]))).all()
            found.update((row[1], SeriesInfo(*row)) for row in rows)
        return found

    def names(self, patterns: Sequence[str]) -> list[str]:
        """The stored names matching any of the patterns (fnmatch style, case-sensitive: ``sales-*``,
        ``sku-?``, or an exact name), sorted; a pattern that matches none raises :class:`DataError`."""

        def run() -> list[str]:
            with db.transaction(self.engine) as conn:
                return list(conn.execute(select(series.c.name)).scalars())

        stored = sorted(self._guard(run))
        matched: set[str] = set()
        for pattern in patterns:
            hits = [n for n in stored if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise DataError(
                    f"no stored series matches {pattern!r} ({len(stored)} series stored; see seqcast series)"
                )
            matched.update(hits)
        return sorted(matched)

    def panel(self, names: Sequence[str], *, chunk: int = 500) -> Iterator[Series]:
        """Each named series as :meth:`series` gives it, in the order named, reading ``chunk`` series per query.

        Every name is looked up before the first series is read: a missing one raises :class:`SeriesNotFound`."""
        if chunk < 1:
            raise ValueError(f"chunk is {chunk}; at least 1")

        def lookup() -> dict[str, SeriesInfo]:
            with db.transaction(self.engine) as conn:
                return self._infos(conn, names)

        infos = self._guard(lookup)
        for name in names:
            if name not in infos:
                raise self._not_found(name)

        def read(ids: list[int]) -> Sequence[Any]:
            query = (
                select(observations.c.series_id, observations.c.ts, observations.c.value)
                .where(observations.c.series_id.in_(ids))
                .order_by(observations.c.series_id, observations.c.ts)
            )
            with db.transaction(self.engine) as conn:
                return conn.execute(query).all()

        for start in range(0, len(names), chunk):
            part = names[start : start + chunk]
            rows = self._guard(read, sorted({infos[n].id for n in part}))
            sid = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            ts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            values = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
            del rows
            for name in part:
                info = infos[name]
                lo, hi = np.searchsorted(sid, info.id, "left"), np.searchsorted(sid, info.id, "right")
                yield self._to_series(info, ts[lo:hi], values[lo:hi])

    @staticmethod
    def _to_series(info: SeriesInfo, ts: np.ndarray, values: np.ndarray) -> Series:
        """Stored observations through the training data's checks (short gaps interpolated)."""
        name = info.name
        if len(values) == 0:
            raise DataError(f"series {name!r} has no observations")
        timestamps = to_index(ts, info.tz)
        frame = pd.DataFrame({"timestamp": timestamps, "value": values})
        checked = from_frame(frame, name=name, source=store_source(name))
        window = {"first": timestamps[0].isoformat(), "last": timestamps[-1].isoformat(), "count": len(values)}
        return Series(
            name,
            checked.values,
            checked.timestamps,
            info.freq,
            checked.season,
            checked.source,
            checked.interpolated,
            {"window": window},
        )

    def series(self, name: str) -> Series:
        """The whole stored series for training, through the training data's checks (short gaps
        interpolated); ``meta["window"]`` holds the stored first/last timestamp and count."""
        return next(self.panel([name]))

    def latest_many(self, names: Sequence[str], n: int) -> dict[str, tuple[SeriesInfo, pd.DatetimeIndex, np.ndarray]]:
        """:meth:`latest` for many series, one query per ``IN_CHUNK`` names (``row_number()`` over each
        series, newest first, kept while ``<= n``); names not stored are left out."""
        out: dict[str, tuple[SeriesInfo, pd.DatetimeIndex, np.ndarray]] = {}
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), IN_CHUNK):
            rows = self._guard(self._latest_rows, unique[start : start + IN_CHUNK], max(n, 1))
            for _, group in itertools.groupby(rows, key=lambda r: r[0]):
                grp = list(group)
                sid, name, freq, tz, origin = grp[0][:5]
                if grp[0][5] is None:  # a series without observations (the outer join's one row)
                    grp = []
                ts = np.fromiter((r[5] for r in grp), dtype=np.int64, count=len(grp))
                values = np.fromiter((r[6] for r in grp), dtype=np.float64, count=len(grp))
                out[name] = (SeriesInfo(sid, name, freq, tz, origin), to_index(ts, tz), values)
        return out

    def _latest_rows(self, names: list[str], n: int) -> Sequence[Any]:
        rank = func.row_number().over(partition_by=series.c.id, order_by=observations.c.ts.desc()).label("rank")
        ranked = (
            select(
                series.c.id,
                series.c.name,
                series.c.freq,
                series.c.tz,
                series.c.origin,
                observations.c.ts,
                observations.c.value,
                rank,
            )
            .select_from(series.outerjoin(observations, observations.c.series_id == series.c.id))
            .where(series.c.name.in_(names))
            .subquery()
        )
        query = (
            select(*[ranked.c[k] for k in ("id", "name", "freq", "tz", "origin", "ts", "value")])
            .where(ranked.c.rank <= n)
            .order_by(ranked.c.id, ranked.c.ts)
        )
        with db.transaction(self.engine) as conn:
            return conn.execute(query).all()
