"""The store's tables as the newest migration leaves them (``migrations/versions/`` makes them; keep both in step).

``series``: one row per series: its name, frequency (a pandas offset alias), time zone (``UTC`` or NULL for
naive timestamps) and ``origin``, the first timestamp it was given, through which its grid runs.
``observations``: ``(series_id, ts) -> value``, ``ts`` in nanoseconds since the epoch (UTC for zoned series,
wall time for naive ones), a clustered primary key (SQLite: ``WITHOUT ROWID``).
``leases``: named locks with an expiry (epoch seconds) held by one process (``holder``, on ``host`` as ``pid``)
at a time; ``last_tick`` is the last scheduled time a retraining pass ran for (see ``lease.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

VERSION_TABLE = "series_store_version"  # not alembic_version: the database may also hold MLflow's tables
NAME_MAX = 128

metadata = MetaData()

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_MAX), nullable=False, unique=True),
    Column("freq", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("tz", String(32), nullable=True),  # revision 0002
    Column("origin", BigInteger, nullable=True),  # revision 0002
    Column("updated_at", DateTime(timezone=True), nullable=True),  # revision 0002
)

observations = Table(
    "observations",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("value", Double, nullable=False),
    PrimaryKeyConstraint("series_id", "ts", name="observations_pk"),
    sqlite_with_rowid=False,
)

leases = Table(  # revision 0003
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=True),
    Column("host", String(256), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("expires_at", Double, nullable=False),
    Column("last_tick", Double, nullable=True),
)
