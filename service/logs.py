"""Logging for ``seqcast serve``, configured once (uvicorn applies it in each worker): every line has its
time and level; INFO for model loads, swaps and refusals; third-party libraries at WARNING."""

from __future__ import annotations

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LOG_CONFIG: dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
        "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "uvicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        **{noisy: {"level": "WARNING"} for noisy in ("mlflow", "alembic", "urllib3", "httpx", "tensorflow", "absl")},
    },
}
