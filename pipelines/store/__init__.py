"""The series store (SQLite by default, PostgreSQL by URL): see ``store.py``; migrations in ``migrations/``.

May import ``pipelines.forecasting`` (its data checks); nothing in forecasting, vision or tracking imports it.
"""

from pipelines.store.store import (
    FileRows,
    IngestError,
    SeriesInfo,
    SeriesNotFound,
    SeriesStore,
    StoreUnavailable,
    Summary,
    WriteResult,
    check_name,
)

__all__ = [
    "FileRows",
    "IngestError",
    "SeriesInfo",
    "SeriesNotFound",
    "SeriesStore",
    "StoreUnavailable",
    "Summary",
    "WriteResult",
    "check_name",
]
