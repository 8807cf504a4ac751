"""A named lease in the store's database: at most one holder at a time, across processes and hosts.

One code path for SQLite and PostgreSQL: the row is read and taken in one write transaction (SQLite's
``BEGIN IMMEDIATE`` holds the write lock, PostgreSQL's ``SELECT ... FOR UPDATE`` the row lock). A holder renews
its lease while it works (:meth:`Lease.held` does, from a thread); a holder that died stops renewing and its
lease expires, or is taken at once when it was on this host and its process is gone. ``last_tick`` makes a
scheduled run happen once per tick however many schedulers fire for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from pipelines.store import db
from pipelines.store.schema import leases
from pipelines.store.store import SeriesStore

log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """The lease is someone else's (or its tick already ran); the message says whose and until when."""


@dataclass(frozen=True)
class Holder:
    holder: str | None
    host: str | None
    pid: int | None
    expires_at: float
    last_tick: float | None


def _alive_here(host: str | None, pid: int | None) -> bool:
    """Whether a holder on this host is still running (a holder elsewhere is presumed alive until it expires)."""
    if host != socket.gethostname() or pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    def __init__(self, store: SeriesStore, name: str, *, seconds: float = 60.0):
        self.store, self.name, self.seconds = store, name, seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.token = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"

    def _ensure_row(self, conn) -> None:
        insert = (postgresql if self.store.dialect == "postgresql" else sqlite).insert(leases)
        conn.execute(insert.values(name=self.name, expires_at=0.0).on_conflict_do_nothing(index_elements=["name"]))

    def current(self) -> Holder | None:
        with db.transaction(self.store.engine) as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).one_or_none()
        return None if row is None else Holder(row.holder, row.host, row.pid, row.expires_at, row.last_tick)

    def acquire(self, tick: float | None = None) -> None:
        """Take the lease for ``seconds``; for a scheduled run, also claim ``tick`` (epoch seconds). Raises
        :class:`LeaseHeld` when another live holder has it, or this tick (or a later one) already ran."""
        now = time.time()
        with db.transaction(self.store.engine, write=True) as conn:
            self._ensure_row(conn)
            query = select(leases).where(leases.c.name == self.name)
            if self.store.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one()
            if row.holder is not None and row.expires_at > now and _alive_here(row.host, row.pid):
                raise LeaseHeld(
                    f"{self.name!r} is held by {row.holder} for another {row.expires_at - now:.0f} s "
                    "(another retraining pass is running)"
                )
            if tick is not None and row.last_tick is not None and row.last_tick >= tick:
                raise LeaseHeld(f"{self.name!r}: the run scheduled for {time.ctime(tick)} already ran")
            if row.holder is not None and row.expires_at > now:
                log.warning("%r was held by %s, which is no longer running; taking it over", self.name, row.holder)
            values = {"holder": self.token, "host": self.host, "pid": self.pid, "expires_at": now + self.seconds}
            if tick is not None:
                values["last_tick"] = tick
            conn.execute(update(leases).where(leases.c.name == self.name).values(**values))

    def renew(self) -> bool:
        """Extend our lease; False when it is no longer ours (it expired and someone took it)."""
        with db.transaction(self.store.engine, write=True) as conn:
            result = conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.token)
                .values(expires_at=time.time() + self.seconds)
            )
        return result.rowcount == 1

    def release(self) -> None:
        with db.transaction(self.store.engine, write=True) as conn:
            conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.token)
                .values(holder=None, host=None, pid=None, expires_at=0.0)
            )

    @contextmanager
    def held(self, tick: float | None = None) -> Iterator[None]:
        """Hold the lease for the block, renewing it every third of its length; released when the block ends."""
        self.acquire(tick)
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    if not self.renew():
                        log.error("lost the lease %r; another process may start a pass", self.name)
                        return
                except Exception:
                    log.warning("could not renew the lease %r", self.name, exc_info=True)

        beat = threading.Thread(target=renew, name=f"lease-{self.name}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            self.release()
