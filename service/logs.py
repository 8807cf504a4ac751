"""Logging for ``seqcast serve``, configured once (uvicorn applies it in each worker): the command's logging
(:mod:`pipelines.logs`: text, or JSON lines with ``SEQCAST_LOG_FORMAT=json``), plus the id of the request being
handled on every line written while it is (a JSON field ``request_id``), and the access line.

The request id is the client's ``X-Request-ID`` when it sent a usable one, else made here; it is returned in the
response header (see :class:`service.errors.RequestContext`, which also writes the access line: ``--access-log``).
Refusals the service expects (an unknown model, a registry too slow) are not errors: :class:`Refusals` logs them
at WARNING, one line per kind a minute at most, with how many it did not write."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from contextvars import ContextVar

from pipelines.logs import JsonLines, logging_config

__all__ = ["ACCESS_LOGGER", "REQUEST_ID", "JsonLines", "Refusals", "RequestIdFilter", "log_config", "request_id_from"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
ACCESS_LOGGER = "seqcast.access"  # one line per request: method, path, query (values redacted), status, duration_ms
_USABLE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id_from(header: bytes | None) -> str:
    """The client's request id when it is a short token, else a new one (never echo arbitrary bytes)."""
    if header:
        text = header.decode("latin-1")
        if _USABLE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex[:16]


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being handled (or None) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def redacted_query(query: bytes) -> str:
    """A query string with every value hidden (``api_key=SECRET&limit=5`` -> ``api_key=*&limit=*``): a client may put
    a secret there, and the log is read by more people than the API key is given to."""
    names = [part.split(b"=", 1)[0].decode("latin-1") for part in query.split(b"&") if part]
    return "&".join(f"{name}=*" for name in names)


class Refusals:
    """A WARNING per kind of expected refusal (unknown model, registry too slow) at most every ``every`` seconds,
    saying how many like it were not logged: enough for an operator, and no flood a client can cause."""

    def __init__(self, logger: logging.Logger, every: float = 60.0):
        self.logger = logger
        self.every = every
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every:
                self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
                return
            self._last[kind] = now
            unlogged = self._unlogged.pop(kind, 0)
        more = f" ({unlogged} more like it in the last {self.every:g} s not logged)" if unlogged else ""
        self.logger.warning("refused: %s: %s%s", kind, detail, more)


def log_config(fmt: str = "text", access_log: bool = False) -> dict:
    """uvicorn's ``log_config`` for ``fmt`` (``text`` or ``json``); the access line (ours, with the request's
    duration and id) when ``access_log``, uvicorn's own never (it writes the query string)."""
    config = logging_config(fmt, filters={"request_id": {"()": RequestIdFilter}})
    config["loggers"].update(
        {
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            ACCESS_LOGGER: {"level": "INFO" if access_log else "WARNING"},
        }
    )
    return config
