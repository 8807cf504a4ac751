"""The series store as the service uses it: opened (and migrated) at startup, every call on its own threads.

Store I/O never runs on the event loop: :meth:`StoreAccess.run` hands ``SeriesStore.<method>(...)`` to a
small pool of the store's own daemon threads (``SEQCAST_STORE_WORKERS``), like the registry's. A store
that cannot be opened at startup (PostgreSQL down) is logged and opened again on the next call; until then
store calls answer 503 and forecasts with ``history`` are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from pipelines.settings import Settings
from pipelines.store import SeriesStore, StoreUnavailable
from service.workers import DaemonPool

log = logging.getLogger(__name__)


class StoreAccess:
    def __init__(self, settings: Settings):
        self.url = settings.series_store_url
        self.max_points = settings.max_batch_points
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
                    self._store = SeriesStore(self.url, max_points=self.max_points)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    raise StoreUnavailable(f"the series store cannot be opened: {type(exc).__name__}: {exc}") from exc
            return self._store

    def _submit(self, fn):
        return asyncio.wrap_future(self._pool.submit(fn))

    async def start(self) -> None:
        try:
            await self._submit(self.open)
        except StoreUnavailable as exc:
            log.error("series store not available at startup (retried on the next call): %s", exc)

    async def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``SeriesStore.<method>(*args, **kwargs)`` on the store's threads."""

        def call():
            return getattr(self.open(), method)(*args, **kwargs)

        return await self._submit(call)

    def close(self) -> None:
        self._pool.shutdown()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
