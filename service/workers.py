"""A few daemon threads with a bounded backlog: where the service runs blocking I/O (registry, series store).

Daemon threads, because a call stuck on a locked or unreachable database must never hold up shutdown; a
bounded backlog, because requests that gave up waiting must not leave unbounded work behind. Threads start
on first use, and again after :meth:`DaemonPool.shutdown` (an app may be started and stopped more than once).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonPool:
    def __init__(self, name: str, workers: int, max_backlog: int, busy: Callable[[int], Exception]):
        self.name = name
        self.workers = max(1, workers)
        self.max_backlog = max_backlog
        self.busy = busy  # the exception to raise, given how many calls wait, when the backlog is full
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        waiting = self._queue.qsize()
        if waiting >= self.max_backlog:
            raise self.busy(waiting)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        with self._lock:
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Each running thread ends after its current call; nothing waits for them."""
        with self._lock:
            for _ in self._threads:
                self._queue.put(None)
            self._threads.clear()
