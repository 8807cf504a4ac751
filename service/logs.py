"""Logging for ``seqcast serve``, configured once (uvicorn applies it in each worker): every line has its
time and level; INFO for model loads, swaps and refusals; third-party libraries at WARNING.

``SEQCAST_LOG_FORMAT=json`` writes one JSON object per line (time, level, logger, message, request_id while
a request is handled, exception) for a log shipper; plain text is the default. The request id is the
client's ``X-Request-ID`` when it sent a usable one, else made here; it is returned in the response header
(see :class:`service.errors.RequestContext`)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
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


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def log_config(fmt: str = "text") -> dict:
    """uvicorn's ``log_config`` for ``fmt`` (``text`` or ``json``)."""
    formatter = {"()": JsonLines} if fmt == "json" else {"format": LOG_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
            **{n: {"level": "WARNING"} for n in ("mlflow", "alembic", "urllib3", "httpx", "tensorflow", "absl")},
        },
    }
