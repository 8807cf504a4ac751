"""The series store as the service uses it: opened (and migrated) at startup, every call on its own threads.

Store I/O never runs on the event loop: each method hands its ``SeriesStore`` call to a small pool of the
store's own daemon threads (``SEQCAST_STORE_WORKERS``), like the registry's. A store that cannot be opened at
startup (PostgreSQL down) is logged and opened again on the next call; until then store calls answer 503 and
forecasts with ``history`` are unaffected.

Every call is bounded by ``SEQCAST_STORE_TIMEOUT_SECONDS``: the database's own timeouts end a wait a little
earlier (its reason is the 503's detail), and this wait is the backstop for what they cannot end (a server
that accepts the connection and never answers): the request gets its 503 and the thread finishes on its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url

from pipelines.settings import Settings
from pipelines.store import SeriesInfo, SeriesStore, StoreUnavailable, Summary, WriteResult
from pipelines.store.store import Page
from service.workers import DaemonPool

log = logging.getLogger(__name__)
T = TypeVar("T")
Latest = tuple[SeriesInfo, pd.DatetimeIndex, np.ndarray]


class StoreAccess:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.series_store_url
        self.timeout = settings.store_timeout_seconds
        self.dialect = make_url(self.url).get_backend_name()
        self.workers = max(1, settings.store_workers)
        self._pool = DaemonPool(
            "seqcast-store",
            self.workers,
            max_backlog=64 * self.workers,
            busy=lambda waiting: StoreUnavailable(f"the series store is slow: {waiting} calls are already waiting"),
        )
        self._store: SeriesStore | None = None
        self._lock = threading.Lock()

    def open(self) -> SeriesStore:
        """The store, opened and migrated to the newest revision on first use (blocking)."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = SeriesStore.from_settings(self.settings)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    raise StoreUnavailable(f"the series store cannot be opened: {type(exc).__name__}: {exc}") from exc
            return self._store

    async def _call(self, fn: Callable[[SeriesStore], T]) -> T:
        """``fn(store)`` on the store's threads, waited for at most the store's timeout."""
        future = asyncio.wrap_future(self._pool.submit(lambda: fn(self.open())))
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise StoreUnavailable(
                f"the series store ({self.dialect}) did not answer within {self.timeout:g} s; try again later"
            ) from None

    async def start(self) -> None:
        try:
            await self._call(lambda store: store)
        except StoreUnavailable as exc:
            log.error("series store not available at startup (retried on the next call): %s", exc)

    async def write(self, name: str, timestamps: list, values: list, freq: str | None) -> WriteResult:
        return await self._call(lambda store: store.write(name, timestamps, values, freq=freq))

    async def summaries(self, name: str | None = None) -> list[Summary]:
        return await self._call(lambda store: store.summaries(name))

    async def page(
        self,
        name: str,
        *,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        return await self._call(lambda store: store.page(name, start=start, end=end, limit=limit, cursor=cursor))

    async def delete(self, name: str) -> int:
        return await self._call(lambda store: store.delete(name))

    async def latest(self, name: str, n: int) -> Latest:
        return await self._call(lambda store: store.latest(name, n))

    async def latest_many(self, names: Sequence[str], n: int) -> dict[str, Latest]:
        return await self._call(lambda store: store.latest_many(names, n))

    def close(self) -> None:
        self._pool.shutdown()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
